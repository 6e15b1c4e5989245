// Package sqlstore is the SQL implementation of the hub directory contract
// (scim/store) shared by the SQLite and PostgreSQL backends: schema and
// migrations, every query, transactions, the filter mappings, paging and the
// change journal. A backend supplies a Dialect (what differs between the
// engines) and its connection pools.
//
// It imports package scim, scim/filter, scim/store, database/sql and
// github.com/google/uuid; never a database driver.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/connectsso/connect/scim/store"
)

// Options are the backend-independent settings.
type Options struct {
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives operational messages; discarded when nil.
	Logger *slog.Logger
}

// Store implements store.Store and store.Batcher over database/sql.
type Store struct {
	d     *Dialect
	rdb   *sql.DB // reads
	wdb   *sql.DB // writes (may be rdb)
	clock func() time.Time
	log   *slog.Logger

	r, w    *pool    // rdb and wdb with their prepared statements
	queries sync.Map // static query → rebound text
	touched sync.Map // token id → time.Time of the last recorded use

	users, groups *mapping
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Batcher = (*Store)(nil)
)

// New migrates the database and returns a store reading through rdb and
// writing through wdb (the same pool when the engine has no single-writer
// constraint). Close closes both pools.
func New(ctx context.Context, d *Dialect, rdb, wdb *sql.DB, opts Options) (*Store, error) {
	s := &Store{d: d, rdb: rdb, wdb: wdb, clock: opts.Clock, log: opts.Logger}
	s.r = &pool{db: rdb}
	s.w = s.r
	if wdb != rdb {
		s.w = &pool{db: wdb}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.users = userMapping()
	s.groups = groupMapping()
	if err := migrate(ctx, d, wdb, s.clock().UnixMicro()); err != nil {
		return nil, err
	}
	return s, nil
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.d.Name, err)
	}
	return nil
}

// Close releases the pools.
func (s *Store) Close() error {
	s.r.close()
	if s.w != s.r {
		s.w.close()
	}
	err := s.rdb.Close()
	if s.wdb != s.rdb {
		err = errors.Join(err, s.wdb.Close())
	}
	return err
}

func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// bounded returns ctx without its cancellation, for a read whose work is
// bounded: a unique-index lookup or a short LIMITed index range. Watching a
// cancellable context costs database/sql and the SQLite driver a goroutine
// each per statement — on SQLite as much CPU as such a lookup itself — and
// the statement ends within microseconds anyway. Reads that can run long
// (filters, counts, member lists) keep their context.
func bounded(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// q returns the dialect's text of a static query (cached).
func (s *Store) q(query string) string {
	if v, ok := s.queries.Load(query); ok {
		return v.(string)
	}
	r := s.d.rebind(query)
	s.queries.Store(query, r)
	return r
}

// write runs fn in a write transaction and commits it, retrying a few times
// when the engine reports a transient conflict (deadlock, serialization).
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	for attempt := 0; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || s.d.Retryable == nil || !s.d.Retryable(err) || attempt >= 4 || ctx.Err() != nil {
			return err
		}
		s.log.DebugContext(ctx, "retrying write transaction", "attempt", attempt+1)
	}
}

func (s *Store) writeOnce(ctx context.Context, fn func(tx *txn) error) error {
	defer s.w.preparePending(context.WithoutCancel(ctx))
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &txn{tx: sqlTx, p: s.w}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Store) newBuilder() *builder { return &builder{d: s.d} }

// ns maps "" to NULL so that "pr" and sorting treat it as unassigned.
func ns(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func b01(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

// chunks splits n items into [lo, hi) ranges of at most size.
func chunks(n, size int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		if err := fn(lo, hi); err != nil {
			return err
		}
	}
	return nil
}
