package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/connectsso/connect/scim/store"
)

// touchEvery is how often TouchToken records a use of the same token.
const touchEvery = time.Minute

// CreateToken implements store.Store. The name of an unrevoked token is
// unique (ErrConflict).
func (s *Store) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	if t.Name == "" || len(t.Hash) == 0 {
		return store.Token{}, fmt.Errorf("create token: name and hash are required: %w", store.ErrInvalid)
	}
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	if t.Created.IsZero() {
		t.Created = s.now()
	}
	t.Created = t.Created.UTC().Truncate(time.Microsecond)
	var last int64
	if !t.LastUsed.IsZero() {
		last = t.LastUsed.UnixMicro()
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO tokens (id, name, hash, read_only, client_id, created, last_used, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.Name, t.Hash, b01(t.ReadOnly), t.ClientID, t.Created.UnixMicro(), last, b01(t.Revoked))
	if err != nil {
		if s.d.IsUnique(err) {
			return store.Token{}, fmt.Errorf("create token %q: %w", t.Name, store.ErrConflict)
		}
		return store.Token{}, fmt.Errorf("create token: %w", err)
	}
	return t, nil
}

const tokenCols = `id, name, hash, read_only, client_id, created, last_used, revoked`

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var ro, rev, created, last int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Hash, &ro, &t.ClientID, &created, &last, &rev); err != nil {
		return store.Token{}, err
	}
	t.ReadOnly, t.Revoked = ro != 0, rev != 0
	t.Created = fromMicro(created)
	if last != 0 {
		t.LastUsed = fromMicro(last)
	}
	return t, nil
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(bounded(ctx), s.q(`SELECT `+tokenCols+` FROM tokens WHERE hash = ? AND revoked = 0`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// ListTokens implements store.Store.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken implements store.Store: the token with that id, else the
// unrevoked token with that name.
func (s *Store) RevokeToken(ctx context.Context, idOrName string) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE tokens SET revoked = 1 WHERE revoked = 0 AND (id = ? OR name = ?)`), idOrName, idOrName)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("revoke token %q: %w", idOrName, store.ErrNotFound)
	}
	return nil
}

// TouchToken implements store.Store. Uses are recorded at most once per
// touchEvery per token and process; the database check makes replicas agree.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	if v, ok := s.touched.Load(id); ok && at.Sub(v.(time.Time)) < touchEvery {
		return nil
	}
	s.touched.Store(id, at)
	_, err := s.w.ExecContext(ctx, s.q(`UPDATE tokens SET last_used = ? WHERE id = ? AND last_used < ?`),
		at.UnixMicro(), id, at.Add(-touchEvery).UnixMicro())
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}
