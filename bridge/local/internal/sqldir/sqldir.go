// Package sqldir is the SQL implementation of the local directory shared by the
// SQLite and PostgreSQL backends: the schema, its migrations and every query.
// Only the Dialect differs between engines.
//
// It imports bridge/local and database/sql only.
package sqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

// Dialect is what differs between SQL engines.
type Dialect struct {
	// Name is "sqlite" or "postgres" (errors and logs).
	Name string
	// Numbered reports whether bind parameters are "$n" (true) or "?".
	Numbered bool
	// Types replaces the type tokens of the migrations: %PK% (an integer primary
	// key assigned by the database) and %BLOB% (bytes).
	Types map[string]string
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
	// Retryable reports whether a write transaction failed in a way a retry cures
	// (deadlock, serialization failure). May be nil.
	Retryable func(error) bool
	// ForUpdate is appended to a SELECT that reads rows a write transaction will
	// update (" FOR UPDATE" on engines with row locks).
	ForUpdate string
	// MigrationLock, when set, runs first in the migration transaction and holds
	// a lock until it ends.
	MigrationLock string
}

func (d *Dialect) rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Options configure New.
type Options struct {
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives operational messages; discarded when nil.
	Logger *slog.Logger
}

// Dir is the SQL local directory. Reads go to r, writes to w (the same pool on
// PostgreSQL; SQLite has one writer connection and a read-only pool).
type Dir struct {
	d   *Dialect
	r   *sql.DB
	w   *sql.DB
	ws  *writeStmts
	now func() time.Time
	log *slog.Logger
}

var (
	_ local.Directory = (*Dir)(nil)
	_ local.Records   = (*Dir)(nil)
)

// New migrates the schema and returns the directory. It does not take ownership
// of r and w until it succeeds; Close closes both.
func New(ctx context.Context, d *Dialect, r, w *sql.DB, opts Options) (*Dir, error) {
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := migrate(ctx, d, w, now().UnixMicro()); err != nil {
		return nil, err
	}
	ws, err := prepareWrites(ctx, d, w)
	if err != nil {
		return nil, err
	}
	return &Dir{d: d, r: r, w: w, ws: ws, now: now, log: log}, nil
}

// Capabilities reports that the SQL directory stores everything.
func (s *Dir) Capabilities() local.Capabilities {
	return local.Capabilities{Transactions: true, Fields: local.AllFields, PasswordHashes: true, SoftDelete: true, Privileged: true, LocalMetadata: true, DuplicateGroupNames: true}
}

// Ping checks both pools.
func (s *Dir) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return s.dbErr("ping", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return s.dbErr("ping", err)
		}
	}
	return nil
}

// Close closes the pools.
func (s *Dir) Close() error {
	err := errors.Join(s.ws.close(), s.w.Close())
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// dbErr wraps a database failure: cancellation stays itself, anything else is
// ErrUnavailable (the caller may retry; every write is idempotent).
func (s *Dir) dbErr(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
	}
	return fmt.Errorf("%s: %s: %w: %w", s.d.Name, op, local.ErrUnavailable, err)
}

// execCount runs the write q (rebound for the engine) and returns how many
// rows it changed; op names it in a database failure.
func (s *Dir) execCount(ctx context.Context, op, q string, args ...any) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return 0, s.dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.dbErr(op, err)
	}
	return n, nil
}

// queryAll runs the read q (rebound for the engine) and returns every row as
// scan reads it, in the engine's order; op names it in a database failure.
func queryAll[T any](ctx context.Context, s *Dir, op string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, s.dbErr(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.dbErr(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(op, err)
	}
	return out, nil
}

// withTx runs fn in a write transaction, retrying it from the start when the
// engine reports a retryable failure (deadlock, serialization) or fn lost a
// race (errRace).
func (s *Dir) withTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil {
			return nil
		}
		if (errors.Is(err, errRace) || s.d.Retryable != nil && s.d.Retryable(err)) && attempt < 8 && ctx.Err() == nil {
			s.log.DebugContext(ctx, "local directory: retrying transaction", "op", op, "attempt", attempt+1, "err", err)
			time.Sleep(time.Duration(1+rand.IntN(10<<attempt)) * time.Millisecond)
			continue
		}
		var ce contractErr
		if errors.As(err, &ce) {
			return ce.err
		}
		return s.dbErr(op, err)
	}
}

func (s *Dir) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// contractErr carries an error of the contract (ErrNotFound, ErrLocked, …) out
// of a transaction unchanged.
type contractErr struct{ err error }

func (e contractErr) Error() string { return e.err.Error() }
func (e contractErr) Unwrap() error { return e.err }

func fail(err error) error { return contractErr{err} }

// parsePK turns a local id into the primary key; ok is false for an id no row
// can have.
func parsePK(id string) (int64, bool) {
	if id == "" || len(id) > 19 || id[0] == '0' || id[0] == '+' || id[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0
}

func fmtPK(pk int64) string { return strconv.FormatInt(pk, 10) }

// parseCursor reads an After cursor ("" = start).
func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	pk, ok := parsePK(c)
	if !ok {
		return 0, fmt.Errorf("cursor %q: %w", c, local.ErrInvalid)
	}
	return pk, nil
}

func micro(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicro(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// placeholders returns "?, ?, …" (n of them).
func placeholders(n int) string {
	if n == 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
