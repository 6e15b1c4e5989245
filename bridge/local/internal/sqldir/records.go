package sqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/connectsso/connect/bridge/local"
)

const maxRecordValue = 1 << 20

func checkRecordKey(kind, key string) error {
	if kind == "" || key == "" || len(kind) > local.MaxFieldLen || len(key) > local.MaxFieldLen {
		return fmt.Errorf("record (%q, %q): %w", kind, key, local.ErrInvalid)
	}
	return nil
}

func scanRecord(sc scanner) (local.Record, error) {
	var r local.Record
	var expires, modified sql.NullInt64
	if err := sc.Scan(&r.Kind, &r.Key, &r.Value, &expires, &modified); err != nil {
		return r, err
	}
	r.Expires, r.Modified = fromMicro(expires), fromMicro(modified)
	if r.Value == nil {
		r.Value = []byte{}
	}
	return r, nil
}

// PutRecord creates or replaces a record.
func (s *Dir) PutRecord(ctx context.Context, r local.Record) error {
	if err := checkRecordKey(r.Kind, r.Key); err != nil {
		return err
	}
	if len(r.Value) > maxRecordValue {
		return fmt.Errorf("record (%s, %s): value over 1 MiB: %w", r.Kind, r.Key, local.ErrInvalid)
	}
	v := r.Value
	if v == nil {
		v = []byte{}
	}
	_, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO local_records (kind, rkey, value, expires, modified) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, rkey) DO UPDATE SET value = excluded.value, expires = excluded.expires, modified = excluded.modified`),
		r.Kind, r.Key, v, micro(r.Expires), s.now().UnixMicro())
	if err != nil {
		return s.dbErr("put record", err)
	}
	return nil
}

const recordCols = `kind, rkey, value, expires, modified`

// live is the condition of an unexpired record; its argument is now.
const live = `(expires IS NULL OR expires > ?)`

// GetRecord returns an unexpired record.
func (s *Dir) GetRecord(ctx context.Context, kind, key string) (local.Record, error) {
	r, err := scanRecord(s.r.QueryRowContext(ctx, s.d.rebind(`SELECT `+recordCols+` FROM local_records WHERE kind = ? AND rkey = ? AND `+live),
		kind, key, s.now().UnixMicro()))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("record (%s, %s): %w", kind, key, local.ErrNotFound)
	}
	if err != nil {
		return r, s.dbErr("get record", err)
	}
	return r, nil
}

// TakeRecord reads and deletes an unexpired record in one statement.
func (s *Dir) TakeRecord(ctx context.Context, kind, key string) (local.Record, error) {
	r, err := scanRecord(s.w.QueryRowContext(ctx, s.d.rebind(`DELETE FROM local_records WHERE kind = ? AND rkey = ? AND `+live+` RETURNING `+recordCols),
		kind, key, s.now().UnixMicro()))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("record (%s, %s): %w", kind, key, local.ErrNotFound)
	}
	if err != nil {
		return r, s.dbErr("take record", err)
	}
	return r, nil
}

// DeleteRecord removes a record.
func (s *Dir) DeleteRecord(ctx context.Context, kind, key string) error {
	if _, err := s.w.ExecContext(ctx, s.d.rebind(`DELETE FROM local_records WHERE kind = ? AND rkey = ?`), kind, key); err != nil {
		return s.dbErr("delete record", err)
	}
	return nil
}

// ListRecords returns the unexpired records of kind, ordered by key.
func (s *Dir) ListRecords(ctx context.Context, kind string) ([]local.Record, error) {
	out, err := queryAll(ctx, s, "list records", scanRecord, `SELECT `+recordCols+` FROM local_records WHERE kind = ? AND `+live, kind, s.now().UnixMicro())
	if err != nil {
		return nil, err
	}
	// Byte order, the same on every engine (a PostgreSQL collation may differ).
	slices.SortFunc(out, func(a, b local.Record) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// DeleteExpiredRecords removes records expired now.
func (s *Dir) DeleteExpiredRecords(ctx context.Context) (int, error) {
	res, err := s.w.ExecContext(ctx, s.d.rebind(`DELETE FROM local_records WHERE expires IS NOT NULL AND expires <= ?`), s.now().UnixMicro())
	if err != nil {
		return 0, s.dbErr("delete expired records", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
