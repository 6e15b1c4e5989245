package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/connectsso/connect/scim/store"
)

var _ store.IdP = (*Store)(nil)

func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicroOrZero(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicro(us)
}

// CreateIdPSession implements store.IdP.
func (s *Store) CreateIdPSession(ctx context.Context, ses store.IdPSession) error {
	if len(ses.Hash) == 0 || ses.UserID == "" || ses.Expires.IsZero() {
		return fmt.Errorf("create idp session: hash, user and expiry are required: %w", store.ErrInvalid)
	}
	if ses.Created.IsZero() {
		ses.Created = s.now()
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO idp_sessions (hash, session_index, user_id, created, expires) VALUES (?, ?, ?, ?, ?)`),
		ses.Hash, ses.Index, ses.UserID, ses.Created.UnixMicro(), ses.Expires.UnixMicro())
	if err != nil {
		if s.d.IsUnique(err) {
			return fmt.Errorf("create idp session: %w", store.ErrConflict)
		}
		return fmt.Errorf("create idp session: %w", err)
	}
	return nil
}

const idpSessionCols = `hash, session_index, user_id, created, expires`

func scanIdPSession(sc interface{ Scan(...any) error }) (store.IdPSession, error) {
	var ses store.IdPSession
	var created, expires int64
	if err := sc.Scan(&ses.Hash, &ses.Index, &ses.UserID, &created, &expires); err != nil {
		return store.IdPSession{}, err
	}
	ses.Created, ses.Expires = fromMicro(created), fromMicro(expires)
	return ses, nil
}

// IdPSession implements store.IdP.
func (s *Store) IdPSession(ctx context.Context, hash []byte) (store.IdPSession, error) {
	ses, err := scanIdPSession(s.r.QueryRowContext(ctx, s.q(`SELECT `+idpSessionCols+` FROM idp_sessions WHERE hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.IdPSession{}, fmt.Errorf("idp session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.IdPSession{}, fmt.Errorf("idp session: %w", err)
	}
	return ses, nil
}

// IdPSessionsOfUser implements store.IdP.
func (s *Store) IdPSessionsOfUser(ctx context.Context, userID string) ([]store.IdPSession, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+idpSessionCols+` FROM idp_sessions WHERE user_id = ? ORDER BY created, hash`), userID)
	if err != nil {
		return nil, fmt.Errorf("idp sessions of user: %w", err)
	}
	defer rows.Close()
	var out []store.IdPSession
	for rows.Next() {
		ses, err := scanIdPSession(rows)
		if err != nil {
			return nil, fmt.Errorf("idp sessions of user: %w", err)
		}
		out = append(out, ses)
	}
	return out, rows.Err()
}

// DeleteIdPSession implements store.IdP.
func (s *Store) DeleteIdPSession(ctx context.Context, hash []byte) error {
	return s.write(ctx, func(tx *txn) error {
		// Explicit, so that engines without enforced foreign keys agree.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM idp_session_participants WHERE session_hash = ?`), hash); err != nil {
			return fmt.Errorf("delete idp session: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM idp_sessions WHERE hash = ?`), hash); err != nil {
			return fmt.Errorf("delete idp session: %w", err)
		}
		return nil
	})
}

// DeleteExpiredIdPSessions implements store.IdP.
func (s *Store) DeleteExpiredIdPSessions(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM idp_session_participants WHERE session_hash IN (SELECT hash FROM idp_sessions WHERE expires < ?)`), t.UnixMicro()); err != nil {
			return fmt.Errorf("delete expired idp sessions: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM idp_sessions WHERE expires < ?`), t.UnixMicro())
		if err != nil {
			return fmt.Errorf("delete expired idp sessions: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// AddIdPSessionParticipant implements store.IdP.
func (s *Store) AddIdPSessionParticipant(ctx context.Context, hash []byte, p store.IdPParticipant) error {
	if p.ServiceProvider == "" {
		return fmt.Errorf("add idp session participant: service provider is required: %w", store.ErrInvalid)
	}
	return s.write(ctx, func(tx *txn) error {
		var one int
		err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM idp_sessions WHERE hash = ?`+s.d.ForUpdate), hash).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("add idp session participant: session: %w", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("add idp session participant: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO idp_session_participants (session_hash, sp, seq, name_id, name_id_format, name_qualifier, sp_name_qualifier, session_index)
			VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM idp_session_participants WHERE session_hash = ?), ?, ?, ?, ?, ?)
			ON CONFLICT (session_hash, sp) DO UPDATE SET name_id = excluded.name_id, name_id_format = excluded.name_id_format,
				name_qualifier = excluded.name_qualifier, sp_name_qualifier = excluded.sp_name_qualifier, session_index = excluded.session_index`),
			hash, p.ServiceProvider, hash, p.NameID, p.NameIDFormat, p.NameQualifier, p.SPNameQualifier, p.SessionIndex)
		if err != nil {
			return fmt.Errorf("add idp session participant: %w", err)
		}
		return nil
	})
}

// IdPSessionParticipants implements store.IdP.
func (s *Store) IdPSessionParticipants(ctx context.Context, hash []byte) ([]store.IdPParticipant, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT sp, name_id, name_id_format, name_qualifier, sp_name_qualifier, session_index FROM idp_session_participants WHERE session_hash = ? ORDER BY seq`), hash)
	if err != nil {
		return nil, fmt.Errorf("idp session participants: %w", err)
	}
	defer rows.Close()
	var out []store.IdPParticipant
	for rows.Next() {
		var p store.IdPParticipant
		if err := rows.Scan(&p.ServiceProvider, &p.NameID, &p.NameIDFormat, &p.NameQualifier, &p.SPNameQualifier, &p.SessionIndex); err != nil {
			return nil, fmt.Errorf("idp session participants: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// CreateServiceProvider implements store.IdP.
func (s *Store) CreateServiceProvider(ctx context.Context, sp store.ServiceProvider) (store.ServiceProvider, error) {
	if sp.EntityID == "" || len(sp.Metadata) == 0 {
		return store.ServiceProvider{}, fmt.Errorf("create service provider: entity id and metadata are required: %w", store.ErrInvalid)
	}
	now := s.now()
	sp.Created, sp.Modified = now, now
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO idp_service_providers (entity_id, metadata, source, client_id, created, modified) VALUES (?, ?, ?, ?, ?, ?)`),
		sp.EntityID, sp.Metadata, sp.Source, sp.ClientID, now.UnixMicro(), now.UnixMicro())
	if err != nil {
		if s.d.IsUnique(err) {
			return store.ServiceProvider{}, fmt.Errorf("create service provider %q: %w", sp.EntityID, store.ErrConflict)
		}
		return store.ServiceProvider{}, fmt.Errorf("create service provider: %w", err)
	}
	return sp, nil
}

// ReplaceServiceProvider implements store.IdP.
func (s *Store) ReplaceServiceProvider(ctx context.Context, sp store.ServiceProvider) (store.ServiceProvider, error) {
	if sp.EntityID == "" || len(sp.Metadata) == 0 {
		return store.ServiceProvider{}, fmt.Errorf("replace service provider: entity id and metadata are required: %w", store.ErrInvalid)
	}
	var out store.ServiceProvider
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE idp_service_providers SET metadata = ?, source = ?, client_id = ?, modified = ? WHERE entity_id = ?`),
			sp.Metadata, sp.Source, sp.ClientID, s.now().UnixMicro(), sp.EntityID)
		if err != nil {
			return fmt.Errorf("replace service provider: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("replace service provider: %w", err)
		} else if n == 0 {
			return fmt.Errorf("replace service provider %q: %w", sp.EntityID, store.ErrNotFound)
		}
		out, err = scanServiceProvider(tx.QueryRowContext(ctx, s.q(`SELECT `+spCols+` FROM idp_service_providers WHERE entity_id = ?`), sp.EntityID))
		return err
	})
	return out, err
}

const spCols = `entity_id, metadata, source, client_id, created, modified`

func scanServiceProvider(sc interface{ Scan(...any) error }) (store.ServiceProvider, error) {
	var sp store.ServiceProvider
	var created, modified int64
	if err := sc.Scan(&sp.EntityID, &sp.Metadata, &sp.Source, &sp.ClientID, &created, &modified); err != nil {
		return store.ServiceProvider{}, err
	}
	sp.Created, sp.Modified = fromMicro(created), fromMicro(modified)
	return sp, nil
}

// ServiceProvider implements store.IdP.
func (s *Store) ServiceProvider(ctx context.Context, entityID string) (store.ServiceProvider, error) {
	sp, err := scanServiceProvider(s.r.QueryRowContext(ctx, s.q(`SELECT `+spCols+` FROM idp_service_providers WHERE entity_id = ?`), entityID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.ServiceProvider{}, fmt.Errorf("service provider %q: %w", entityID, store.ErrNotFound)
	}
	if err != nil {
		return store.ServiceProvider{}, fmt.Errorf("service provider: %w", err)
	}
	return sp, nil
}

// ListServiceProviders implements store.IdP.
func (s *Store) ListServiceProviders(ctx context.Context) ([]store.ServiceProvider, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+spCols+` FROM idp_service_providers ORDER BY entity_id`)
	if err != nil {
		return nil, fmt.Errorf("list service providers: %w", err)
	}
	defer rows.Close()
	var out []store.ServiceProvider
	for rows.Next() {
		sp, err := scanServiceProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("list service providers: %w", err)
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// DeleteServiceProvider implements store.IdP.
func (s *Store) DeleteServiceProvider(ctx context.Context, entityID string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM idp_service_providers WHERE entity_id = ?`), entityID)
	if err != nil {
		return fmt.Errorf("delete service provider: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete service provider: %w", err)
	} else if n == 0 {
		return fmt.Errorf("delete service provider %q: %w", entityID, store.ErrNotFound)
	}
	return nil
}

// AddSigningKey implements store.IdP.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	if k.ID == "" || k.Algorithm == "" || len(k.KeyPEM) == 0 || len(k.CertPEM) == 0 {
		return fmt.Errorf("add signing key: id, algorithm, key and certificate are required: %w", store.ErrInvalid)
	}
	if k.Created.IsZero() {
		k.Created = s.now()
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO idp_keys (id, algorithm, key_pem, cert_pem, active_from, created) VALUES (?, ?, ?, ?, ?, ?)`),
		k.ID, k.Algorithm, k.KeyPEM, k.CertPEM, micro(k.ActiveFrom), k.Created.UnixMicro())
	if err != nil {
		if s.d.IsUnique(err) {
			return fmt.Errorf("add signing key: %w", store.ErrConflict)
		}
		return fmt.Errorf("add signing key: %w", err)
	}
	return nil
}

// SigningKeys implements store.IdP.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, algorithm, key_pem, cert_pem, active_from, created FROM idp_keys ORDER BY active_from`)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var from, created int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.KeyPEM, &k.CertPEM, &from, &created); err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		k.ActiveFrom, k.Created = fromMicroOrZero(from), fromMicro(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteSigningKey implements store.IdP.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM idp_keys WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete signing key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("delete signing key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanThrottle(key string, sc interface{ Scan(...any) error }) (store.LoginThrottle, error) {
	t := store.LoginThrottle{Key: key}
	var start, locked int64
	if err := sc.Scan(&t.Failures, &start, &locked); err != nil {
		return t, err
	}
	t.WindowStart, t.LockedUntil = fromMicroOrZero(start), fromMicroOrZero(locked)
	return t, nil
}

// LoginThrottle implements store.IdP.
func (s *Store) LoginThrottle(ctx context.Context, key string) (store.LoginThrottle, error) {
	t, err := scanThrottle(key, s.r.QueryRowContext(ctx, s.q(`SELECT failures, window_start, locked_until FROM login_throttle WHERE key = ?`), key))
	if errors.Is(err, sql.ErrNoRows) {
		return store.LoginThrottle{Key: key}, nil
	}
	if err != nil {
		return store.LoginThrottle{Key: key}, fmt.Errorf("login throttle: %w", err)
	}
	return t, nil
}

// RecordLoginFailure implements store.IdP in one statement, so that
// concurrent failures on several replicas all count.
func (s *Store) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, limit int, lockout time.Duration) (store.LoginThrottle, error) {
	if key == "" {
		return store.LoginThrottle{}, fmt.Errorf("record login failure: empty key: %w", store.ErrInvalid)
	}
	n := now.UnixMicro()
	cutoff := now.Add(-window).UnixMicro()
	lim := int64(limit)
	if limit <= 0 {
		lim = 1 << 62
	}
	until := now.Add(lockout).UnixMicro()
	// Every parameter is cast: PostgreSQL would otherwise infer int4 for some.
	newFailures := `CASE WHEN login_throttle.window_start < CAST(? AS BIGINT) THEN 1 ELSE login_throttle.failures + 1 END`
	var t store.LoginThrottle
	err := s.write(ctx, func(tx *txn) error {
		var err error
		t, err = scanThrottle(key, tx.QueryRowContext(ctx, s.q(`INSERT INTO login_throttle (key, failures, window_start, locked_until)
			VALUES (?, 1, CAST(? AS BIGINT), CASE WHEN 1 >= CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE 0 END)
			ON CONFLICT (key) DO UPDATE SET
				failures = `+newFailures+`,
				window_start = CASE WHEN login_throttle.window_start < CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE login_throttle.window_start END,
				locked_until = CASE WHEN `+newFailures+` >= CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE login_throttle.locked_until END
			RETURNING failures, window_start, locked_until`),
			key, n, lim, until,
			cutoff,
			cutoff, n,
			cutoff, lim, until))
		if err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
		return nil
	})
	return t, err
}

// ClearLoginThrottle implements store.IdP.
func (s *Store) ClearLoginThrottle(ctx context.Context, key string) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM login_throttle WHERE key = ?`), key); err != nil {
		return fmt.Errorf("clear login throttle: %w", err)
	}
	return nil
}

// DeleteStaleLoginThrottles implements store.IdP.
func (s *Store) DeleteStaleLoginThrottles(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM login_throttle WHERE window_start < ? AND locked_until < ?`), t.UnixMicro(), t.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete stale login throttles: %w", err)
	}
	return res.RowsAffected()
}

// UserGroupNames implements store.IdP.
func (s *Store) UserGroupNames(ctx context.Context, userID, kind string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT g.display_name FROM group_members gm JOIN groups g ON g.pk = gm.group_pk WHERE gm.member_id = ? AND g.kind = ?`), userID, kind)
	if err != nil {
		return nil, fmt.Errorf("user group names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("user group names: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user group names: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i]), strings.ToLower(out[j])
		if a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out, nil
}
