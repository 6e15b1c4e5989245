package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// jrow is a journal row about to be written.
type jrow struct {
	typ, id, op, reason string
	// via is the group of a membership row, or " g1 g2 " (the groups it left)
	// on a deleted user's row; "" otherwise.
	via string
}

// journal appends rows to the change journal inside tx. It is the last
// statement of every write so that the dialect's journal lock is held only
// from here to the commit.
func (s *Store) journal(ctx context.Context, tx *txn, now time.Time, rows []jrow) error {
	if len(rows) == 0 {
		return nil
	}
	if s.d.JournalLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.JournalLock); err != nil {
			return fmt.Errorf("journal lock: %w", err)
		}
	}
	// Creations and deletions move the resource counters.
	var users, groups int64
	for _, r := range rows {
		d := int64(0)
		switch {
		case r.op == scim.ChangeUpsert && r.reason == scim.ReasonCreated:
			d = 1
		case r.op == scim.ChangeRemove && r.reason == scim.ReasonDeleted:
			d = -1
		}
		if r.typ == "User" {
			users += d
		} else {
			groups += d
		}
	}
	for _, c := range []struct {
		key string
		d   int64
	}{{"users", users}, {"groups", groups}} {
		if c.d == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE store_meta SET value = value + ? WHERE key = ?`), c.d, c.key); err != nil {
			return fmt.Errorf("count %s: %w", c.key, err)
		}
	}
	at := now.UnixMicro()
	return chunks(len(rows), 500, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`INSERT INTO changes (resource_type, resource_id, op, reason, at, via) VALUES `)
		for i, r := range rows[lo:hi] {
			if i > 0 {
				b.w(", ")
			}
			b.w("(", b.arg(r.typ), ", ", b.arg(r.id), ", ", b.arg(r.op), ", ", b.arg(r.reason), ", ", b.arg(at), ", ", b.arg(ns(r.via)), ")")
		}
		if _, err := tx.ExecContext(ctx, b.String(), b.args...); err != nil {
			return fmt.Errorf("write journal: %w", err)
		}
		return nil
	})
}

// JournalHead implements store.Store.
func (s *Store) JournalHead(ctx context.Context) (int64, error) {
	var head int64
	if err := s.r.QueryRowContext(bounded(ctx), `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&head); err != nil {
		return 0, fmt.Errorf("journal head: %w", err)
	}
	return head, nil
}

// Journal implements store.Store. The cursor has expired when entries after it
// were trimmed, which the store records exactly (store_meta journal_trimmed =
// the highest seq ever trimmed), so gaps in the sequence never look like loss.
func (s *Store) Journal(ctx context.Context, after int64, limit int) ([]store.JournalEntry, error) {
	if after < 0 || limit < 0 {
		return nil, fmt.Errorf("journal: negative cursor or limit: %w", store.ErrInvalid)
	}
	// An index range of at most limit rows (the Changes feed clamps it).
	rows, err := s.r.QueryContext(bounded(ctx), s.q(`SELECT seq, resource_type, resource_id, op, reason, at, COALESCE(via, '') FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []store.JournalEntry
	for rows.Next() {
		var e store.JournalEntry
		var at int64
		if err := rows.Scan(&e.Seq, &e.ResourceType, &e.ID, &e.Op, &e.Reason, &at, &e.Via); err != nil {
			rows.Close()
			return nil, fmt.Errorf("journal: %w", err)
		}
		e.At = fromMicro(at)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// Checked after the read: a trim racing with it can only make the answer
	// "expired", never hand out a page with a hole.
	trimmed, err := s.journalTrimmed(ctx)
	if err != nil {
		return nil, err
	}
	if after < trimmed {
		return nil, fmt.Errorf("journal cursor %d is older than the retained journal (trimmed through %d): %w", after, trimmed, store.ErrExpiredCursor)
	}
	return out, nil
}

func (s *Store) journalTrimmed(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(bounded(ctx), `SELECT value FROM store_meta WHERE key = 'journal_trimmed'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	return v, nil
}

// The trimmer's reads (see TrimJournal).
const (
	trimNewestOld = `SELECT seq FROM changes WHERE at < ? ORDER BY at DESC, seq DESC LIMIT 1`
	trimBelowHead = `SELECT COALESCE(MAX(seq), 0) FROM changes WHERE seq < ?`
)

// TrimJournal implements store.Store.
func (s *Store) TrimJournal(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		var head, cut int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&head); err != nil {
			return fmt.Errorf("trim journal: %w", err)
		}
		// The newest entry older than before, read from the end of the at
		// index: MAX(seq) with a condition on at would walk the journal
		// backwards from its head through every young entry (a million on a
		// busy hub, and the writer's page cache filled with them) to find
		// that nothing is old yet.
		err := tx.QueryRowContext(ctx, s.q(trimNewestOld), before.UnixMicro()).Scan(&cut)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("trim journal: %w", err)
		}
		if cut >= head && head > 0 {
			// Everything is old: keep the head, trim what precedes it.
			if err := tx.QueryRowContext(ctx, s.q(trimBelowHead), head).Scan(&cut); err != nil {
				return fmt.Errorf("trim journal: %w", err)
			}
		}
		if cut == 0 {
			n = 0
			return nil
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM changes WHERE seq <= ?`), cut)
		if err != nil {
			return fmt.Errorf("trim journal: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("trim journal: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO store_meta (key, value) VALUES ('journal_trimmed', ?)
ON CONFLICT (key) DO UPDATE SET value = CASE WHEN excluded.value > store_meta.value THEN excluded.value ELSE store_meta.value END`), cut)
		if err != nil {
			return fmt.Errorf("trim journal: %w", err)
		}
		return nil
	})
	return n, err
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, e store.AuditEntry) error {
	at := e.At
	if at.IsZero() {
		at = s.now()
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`),
		at.UnixMicro(), e.Actor, e.Action, e.Target, e.Detail)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// auditIn appends the entry of store.WithAudit, when ctx carries one, inside
// tx: the record commits with the change it describes. Call it before journal
// (the last statement of a write).
func (s *Store) auditIn(ctx context.Context, tx *txn, now time.Time, target, name string) error {
	e, ok := store.AuditFrom(ctx)
	if !ok {
		return nil
	}
	if e.At.IsZero() {
		e.At = now
	}
	if e.Target == "" {
		e.Target = target
	}
	if e.Detail == "" {
		e.Detail = name
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`),
		e.At.UnixMicro(), e.Actor, e.Action, e.Target, e.Detail); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditLog implements store.Store.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	if limit < 0 {
		return nil, fmt.Errorf("audit log: negative limit: %w", store.ErrInvalid)
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.At = fromMicro(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Setting implements store.Store.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(bounded(ctx), s.q(`SELECT value FROM settings WHERE key = ?`), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("setting %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("setting %q: %w", key, err)
	}
	return v, nil
}

// SetSetting implements store.Store.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return fmt.Errorf("set setting: empty key: %w", store.ErrInvalid)
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`), key, value)
	if err != nil {
		return fmt.Errorf("set setting %q: %w", key, err)
	}
	return nil
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT value FROM store_meta WHERE key = 'users'), (SELECT value FROM store_meta WHERE key = 'groups'), (SELECT COUNT(*) FROM group_members)`).
		Scan(&st.Users, &st.Groups, &st.Members)
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
