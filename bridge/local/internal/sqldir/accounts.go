package sqldir

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/connectsso/connect/bridge/local"
)

const accountCols = `pk, username, auth, server, hub_user_id, email, email_verified, given_name,
	family_name, display_name, id_number, language, timezone, city, country, phone, title,
	organization, department, interests, custom_fields, password_hash, privileged, suspended,
	suspended_by, deleted, created, modified`

// writeCols are the columns an insert or update writes, in accountArgs order.
var writeCols = []string{
	"username", "username_key", "auth", "server", "hub_user_id", "hub_key", "email", "email_key",
	"email_verified", "given_name", "family_name", "display_name", "id_number", "language",
	"timezone", "city", "country", "phone", "title", "organization", "department", "interests",
	"custom_fields", "password_hash", "privileged", "suspended", "suspended_by", "deleted",
	"created", "modified",
}

type scanner interface{ Scan(dest ...any) error }

func scanAccount(sc scanner) (local.Account, int64, error) {
	var (
		a                                   local.Account
		pk                                  int64
		server, hub, idNumber, intr, custom sql.NullString
		verified, priv, susp                int64
		deleted, created, modified          sql.NullInt64
		auth                                string
	)
	err := sc.Scan(&pk, &a.Username, &auth, &server, &hub, &a.Email, &verified, &a.GivenName,
		&a.FamilyName, &a.DisplayName, &idNumber, &a.Language, &a.Timezone, &a.City, &a.Country,
		&a.Phone, &a.Title, &a.Organization, &a.Department, &intr, &custom, &a.PasswordHash,
		&priv, &susp, &a.SuspendedBy, &deleted, &created, &modified)
	if err != nil {
		return a, 0, err
	}
	a.ID = fmtPK(pk)
	a.Auth = local.Auth(auth)
	a.Server, a.HubUserID, a.IDNumber = server.String, hub.String, idNumber.String
	a.EmailVerified, a.Privileged, a.Suspended = verified != 0, priv != 0, susp != 0
	if intr.Valid {
		if err := json.Unmarshal([]byte(intr.String), &a.Interests); err != nil {
			return a, 0, fmt.Errorf("account %d: interests: %w", pk, err)
		}
	}
	if custom.Valid {
		if err := json.Unmarshal([]byte(custom.String), &a.CustomFields); err != nil {
			return a, 0, fmt.Errorf("account %d: custom fields: %w", pk, err)
		}
	}
	a.Deleted, a.Created, a.Modified = fromMicro(deleted), fromMicro(created), fromMicro(modified)
	return local.Normalize(a), pk, nil
}

func jsonOrNil(v any, n int) (any, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func accountArgs(a local.Account) ([]any, error) {
	intr, err := jsonOrNil(a.Interests, len(a.Interests))
	if err != nil {
		return nil, err
	}
	custom, err := jsonOrNil(a.CustomFields, len(a.CustomFields))
	if err != nil {
		return nil, err
	}
	return []any{
		a.Username, local.FoldKey(a.Username), string(a.Auth), nullStr(a.Server), nullStr(a.HubUserID),
		hubKeyArg(a.Server, a.HubUserID), a.Email, nullStr(local.FoldKey(a.Email)), b2i(a.EmailVerified), a.GivenName, a.FamilyName,
		a.DisplayName, nullStr(a.IDNumber), a.Language, a.Timezone, a.City, a.Country, a.Phone, a.Title,
		a.Organization, a.Department, intr, custom, a.PasswordHash, b2i(a.Privileged), b2i(a.Suspended),
		a.SuspendedBy, micro(a.Deleted), a.Created.UnixMicro(), a.Modified.UnixMicro(),
	}, nil
}

type hubKey struct{ server, hub string }

// hubKeyOf is the hub_key column: both parts, unambiguously joined.
func hubKeyOf(server, hub string) string {
	return strconv.Itoa(len(server)) + ":" + server + ":" + hub
}

func hubKeyArg(server, hub string) any {
	if server == "" || hub == "" {
		return nil
	}
	return hubKeyOf(server, hub)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// accountWhere returns the one account matching where. ErrNotFound.
func (s *Dir) accountWhere(ctx context.Context, q querier, where string, args ...any) (local.Account, int64, error) {
	a, pk, err := scanAccount(q.QueryRowContext(ctx, s.d.rebind(`SELECT `+accountCols+` FROM local_accounts WHERE `+where), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return local.Account{}, 0, local.ErrNotFound
	}
	return a, pk, err
}

func (s *Dir) accountsWhere(ctx context.Context, q querier, where string, args ...any) ([]local.Account, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(`SELECT `+accountCols+` FROM local_accounts WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []local.Account
	for rows.Next() {
		a, _, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Dir) one(ctx context.Context, op, where string, args ...any) (local.Account, error) {
	a, _, err := s.accountWhere(ctx, s.r, where, args...)
	if errors.Is(err, local.ErrNotFound) {
		return a, fmt.Errorf("%s: %w", op, local.ErrNotFound)
	}
	if err != nil {
		return a, s.dbErr(op, err)
	}
	return a, nil
}

// Account returns the account with id.
func (s *Dir) Account(ctx context.Context, id string) (local.Account, error) {
	pk, ok := parsePK(id)
	if !ok {
		return local.Account{}, fmt.Errorf("account %q: %w", id, local.ErrNotFound)
	}
	return s.one(ctx, "account "+id, `pk = ?`, pk)
}

// AccountByUsername finds an account case-insensitively.
func (s *Dir) AccountByUsername(ctx context.Context, username string) (local.Account, error) {
	return s.one(ctx, fmt.Sprintf("account %q", username), `username_key = ?`, local.FoldKey(username))
}

// AccountByHubID returns the account linked to (server, hubUserID).
func (s *Dir) AccountByHubID(ctx context.Context, server, hubUserID string) (local.Account, error) {
	if server == "" || hubUserID == "" {
		return local.Account{}, fmt.Errorf("account of (%q, %q): %w", server, hubUserID, local.ErrNotFound)
	}
	return s.one(ctx, fmt.Sprintf("account of (%s, %s)", server, hubUserID), `hub_key = ?`, hubKeyOf(server, hubUserID))
}

// AccountsByHubID returns the accounts of server linked to hubUserIDs.
func (s *Dir) AccountsByHubID(ctx context.Context, server string, hubUserIDs []string) (map[string]local.Account, error) {
	if err := local.CheckIDs("hub user ids", hubUserIDs); err != nil {
		return nil, err
	}
	out := make(map[string]local.Account, len(hubUserIDs))
	if len(hubUserIDs) == 0 || server == "" {
		return out, nil
	}
	args := make([]any, len(hubUserIDs))
	for i, id := range hubUserIDs {
		args[i] = hubKeyOf(server, id)
	}
	as, err := s.accountsWhere(ctx, s.r, `hub_key IN (`+placeholders(len(hubUserIDs))+`)`, args...)
	if err != nil {
		return nil, s.dbErr("accounts by hub id", err)
	}
	for _, a := range as {
		out[a.HubUserID] = a
	}
	return out, nil
}

// AccountsByEmail returns every account with that email, case-insensitively.
func (s *Dir) AccountsByEmail(ctx context.Context, email string) ([]local.Account, error) {
	if email == "" {
		return nil, nil
	}
	as, err := s.accountsWhere(ctx, s.r, `email_key = ? ORDER BY pk`, local.FoldKey(email))
	if err != nil {
		return nil, s.dbErr("accounts by email", err)
	}
	return as, nil
}

// AccountsByIDNumber returns every account with that ID number.
func (s *Dir) AccountsByIDNumber(ctx context.Context, idNumber string) ([]local.Account, error) {
	if idNumber == "" {
		return nil, nil
	}
	as, err := s.accountsWhere(ctx, s.r, `id_number = ? ORDER BY pk`, idNumber)
	if err != nil {
		return nil, s.dbErr("accounts by id number", err)
	}
	return as, nil
}

// where compiles the filters of q.
func accountFilter(q local.AccountQuery) (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	if q.Server != "" {
		conds = append(conds, "server = ?")
		args = append(args, q.Server)
	}
	if q.Auth != "" {
		conds = append(conds, "auth = ?")
		args = append(args, string(q.Auth))
	}
	switch q.Deleted {
	case local.DeletedExclude:
		conds = append(conds, "deleted IS NULL")
	case local.DeletedOnly:
		conds = append(conds, "deleted IS NOT NULL")
		if !q.DeletedBefore.IsZero() {
			conds = append(conds, "deleted < ?")
			args = append(args, q.DeletedBefore.UnixMicro())
		}
	}
	return strings.Join(conds, " AND "), args
}

// ListAccounts pages through accounts in primary-key order.
func (s *Dir) ListAccounts(ctx context.Context, q local.AccountQuery) ([]local.Account, string, error) {
	after, err := parseCursor(q.After)
	if err != nil {
		return nil, "", err
	}
	limit := local.Limit(q.Limit)
	where, args := accountFilter(q)
	args = append(args, after, limit+1)
	as, err := s.accountsWhere(ctx, s.r, where+` AND pk > ? ORDER BY pk LIMIT ?`, args...)
	if err != nil {
		return nil, "", s.dbErr("list accounts", err)
	}
	next := ""
	if len(as) > limit {
		as = as[:limit]
		next = as[limit-1].ID
	}
	return as, next, nil
}

// CountAccounts counts the accounts matching q.
func (s *Dir) CountAccounts(ctx context.Context, q local.AccountQuery) (int64, error) {
	where, args := accountFilter(q)
	var n int64
	if err := s.r.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM local_accounts WHERE `+where), args...).Scan(&n); err != nil {
		return 0, s.dbErr("count accounts", err)
	}
	return n, nil
}

// PurgeAccounts removes soft-deleted accounts for good.
func (s *Dir) PurgeAccounts(ctx context.Context, ids []string) (int, error) {
	if err := local.CheckIDs("account ids", ids); err != nil {
		return 0, err
	}
	var args []any
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if pk, ok := parsePK(id); ok && !seen[pk] {
			seen[pk] = true
			args = append(args, pk)
		}
	}
	if len(args) == 0 {
		return 0, nil
	}
	var n int64
	err := s.withTx(ctx, "purge accounts", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM local_accounts WHERE deleted IS NOT NULL AND pk IN (`+placeholders(len(args))+`)`), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
