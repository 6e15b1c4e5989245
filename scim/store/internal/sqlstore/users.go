package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// userCols are the users columns derived from the resource on every write, in
// the order userRow returns them. doc holds the whole resource (minus meta,
// groups and password) so that a read is one row.
const userCols = `user_name, external_id, display_name, nick_name, profile_url, title, user_type,
preferred_language, locale, timezone, formatted_name, family_name, given_name, middle_name,
honorific_prefix, honorific_suffix, active, employee_number, cost_center, organization, division,
department, manager_value, manager_display, email_verified, doc`

const nUserCols = 26

// userSelect reads a user with its groups (groupsAgg) in one statement and
// one row.
var userSelect = `SELECT u.id, u.doc, u.version, u.created, u.modified, ` + groupsAgg("u") + ` FROM users u WHERE `

// groupsAgg is a correlated subquery giving the direct groups of the users row
// alias as one text (parseGroups reads it; NULL for none) in group creation
// order, so that a user and its groups are one row of one statement.
// string_agg with ORDER BY is standard SQL that PostgreSQL and SQLite (3.44+)
// share. scopedGroupsAgg is its form limited to a client's synced groups.
func groupsAgg(alias string) string {
	return groupsAggHead + alias + ".id)"
}

var groupsAggHead = `(SELECT string_agg(` + escGroupText("gg.id") + ` || '|' || ` + escGroupText("gg.display_name") + `, ',' ORDER BY gg.pk)
FROM group_members gm JOIN groups gg ON gg.pk = gm.group_pk WHERE gm.member_id = `

// escGroupText percent-encodes the separators of groupsAgg in a column.
func escGroupText(col string) string {
	return "replace(replace(replace(" + col + ", '%', '%25'), ',', '%2C'), '|', '%7C')"
}

// scopedGroupsAgg writes groupsAgg(alias) to b, limited to sc's synced groups
// when sc is set.
func scopedGroupsAgg(b *builder, alias string, sc *store.Scope) {
	if sc == nil {
		b.w(groupsAgg(alias))
		return
	}
	b.w(groupsAggHead, alias, ".id")
	scopeGroupIDs(b, "gg.id", sc)
	b.w(")")
}

// unescGroup undoes escGroupText.
var unescGroup = strings.NewReplacer("%2C", ",", "%7C", "|", "%25", "%")

// parseGroups reads the text of groupsAgg: "id|displayName" items separated
// by commas, each part percent-encoded by escGroupText.
func parseGroups(text string) []scim.GroupRef {
	if text == "" {
		return nil
	}
	out := make([]scim.GroupRef, 0, strings.Count(text, ",")+1)
	for item := range strings.SplitSeq(text, ",") {
		id, name, _ := strings.Cut(item, "|")
		if strings.IndexByte(item, '%') >= 0 {
			id, name = unescGroup.Replace(id), unescGroup.Replace(name)
		}
		out = append(out, scim.GroupRef{Value: id, Display: name, Type: "direct"})
	}
	return out
}

// prepareUser normalises u for storage and validates what the store relies on.
func prepareUser(u *scim.User) error {
	u.UserName = strings.TrimSpace(u.UserName)
	if u.UserName == "" {
		return fmt.Errorf("%w: userName is required", store.ErrInvalid)
	}
	u.Password = ""
	u.Groups = nil
	u.Meta = nil
	u.SetSchemas()
	return nil
}

// userRow returns the users column values of u, doc last.
func userRow(u *scim.User) ([]any, error) {
	doc, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode user: %w", err)
	}
	var n scim.Name
	if u.Name != nil {
		n = *u.Name
	}
	var e scim.EnterpriseUser
	if u.Enterprise != nil {
		e = *u.Enterprise
	}
	var mgr scim.Manager
	if e.Manager != nil {
		mgr = *e.Manager
	}
	var verified any
	if u.Connect != nil && u.Connect.EmailVerified != nil {
		verified = b01(bool(*u.Connect.EmailVerified))
	}
	var active any
	if u.Active != nil {
		active = b01(bool(*u.Active))
	}
	return []any{
		u.UserName, ns(u.ExternalID), ns(u.DisplayName), ns(u.NickName), ns(u.ProfileURL), ns(u.Title), ns(u.UserType),
		ns(u.PreferredLanguage), ns(u.Locale), ns(u.Timezone), ns(n.Formatted), ns(n.FamilyName), ns(n.GivenName), ns(n.MiddleName),
		ns(n.HonorificPrefix), ns(n.HonorificSuffix), active, ns(e.EmployeeNumber), ns(e.CostCenter), ns(e.Organization), ns(e.Division),
		ns(e.Department), ns(mgr.Value), ns(mgr.DisplayName), verified, string(doc),
	}, nil
}

// valueRow is one user_values row.
type valueRow struct {
	attr                                                     string
	typ, value, display, formatted, street, locality, region string
	postal, country, name                                    string
	prim                                                     bool
}

func userValues(u *scim.User) []valueRow {
	var rows []valueRow
	mv := func(attr string, vs []scim.MultiValue) {
		for _, v := range vs {
			rows = append(rows, valueRow{attr: attr, typ: v.Type, value: v.Value, display: v.Display, prim: bool(v.Primary)})
		}
	}
	mv("emails", u.Emails)
	mv("phoneNumbers", u.PhoneNumbers)
	mv("ims", u.IMs)
	mv("photos", u.Photos)
	for _, a := range u.Addresses {
		rows = append(rows, valueRow{attr: "addresses", typ: a.Type, prim: bool(a.Primary), formatted: a.Formatted,
			street: a.StreetAddress, locality: a.Locality, region: a.Region, postal: a.PostalCode, country: a.Country})
	}
	mv("entitlements", u.Entitlements)
	mv("roles", u.Roles)
	mv("x509Certificates", u.X509Certificates)
	if c := u.Connect; c != nil {
		for _, i := range c.Interests {
			rows = append(rows, valueRow{attr: "interests", value: i})
		}
		for _, f := range c.CustomFields {
			rows = append(rows, valueRow{attr: "customFields", name: f.Name, value: f.Value})
		}
	}
	return rows
}

// insertValues writes the user_values rows of u.
func (s *Store) insertValues(ctx context.Context, tx *txn, pk int64, u *scim.User) error {
	rows := userValues(u)
	idx := map[string]int{}
	return chunks(len(rows), 200, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`INSERT INTO user_values (user_pk, attr, idx, type, prim, value, display, formatted, street_address, locality, region, postal_code, country, name) VALUES `)
		for i, r := range rows[lo:hi] {
			if i > 0 {
				b.w(", ")
			}
			n := idx[r.attr]
			idx[r.attr] = n + 1
			b.w("(", b.arg(pk), ", ", b.arg(r.attr), ", ", b.arg(n), ", ", b.arg(ns(r.typ)), ", ", b.arg(b01(r.prim)), ", ",
				b.arg(ns(r.value)), ", ", b.arg(ns(r.display)), ", ", b.arg(ns(r.formatted)), ", ", b.arg(ns(r.street)), ", ",
				b.arg(ns(r.locality)), ", ", b.arg(ns(r.region)), ", ", b.arg(ns(r.postal)), ", ", b.arg(ns(r.country)), ", ",
				b.arg(ns(r.name)), ")")
		}
		if _, err := tx.ExecContext(ctx, b.String(), b.args...); err != nil {
			return fmt.Errorf("insert user values: %w", err)
		}
		return nil
	})
}

var insertUserSQL = `INSERT INTO users (id, ` + userCols + `, version, created, modified) VALUES (?` +
	strings.Repeat(", ?", nUserCols) + `, ?, ?, ?) RETURNING pk`

var updateUserSQL = func() string {
	cols := strings.Split(userCols, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i]) + " = ?"
	}
	return `UPDATE users SET ` + strings.Join(cols, ", ") + `, version = ?, modified = ? WHERE pk = ?`
}()

// insertUser stores a new user inside tx and returns it with id and meta set,
// and its pk.
func (s *Store) insertUser(ctx context.Context, tx *txn, u scim.User, now time.Time) (scim.User, int64, error) {
	if err := prepareUser(&u); err != nil {
		return scim.User{}, 0, err
	}
	u.ID = uuid.NewString()
	row, err := userRow(&u)
	if err != nil {
		return scim.User{}, 0, err
	}
	args := append([]any{u.ID}, row...)
	args = append(args, int64(1), now.UnixMicro(), now.UnixMicro())
	var pk int64
	if err := tx.QueryRowContext(ctx, s.q(insertUserSQL), args...).Scan(&pk); err != nil {
		if s.d.IsUnique(err) {
			return scim.User{}, 0, fmt.Errorf("create user: userName %q is taken: %w", u.UserName, store.ErrConflict)
		}
		return scim.User{}, 0, fmt.Errorf("create user: %w", err)
	}
	if err := s.insertValues(ctx, tx, pk, &u); err != nil {
		return scim.User{}, 0, err
	}
	u.Meta = &scim.Meta{ResourceType: "User", Created: now, LastModified: now, Version: scim.ETag(1)}
	return u, pk, nil
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u scim.User) (scim.User, error) {
	var out scim.User
	err := s.write(ctx, func(tx *txn) error {
		now := s.now()
		var err error
		if out, _, err = s.insertUser(ctx, tx, u, now); err != nil {
			return err
		}
		if err := s.auditIn(ctx, tx, now, out.ID, out.UserName); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, []jrow{{"User", out.ID, scim.ChangeUpsert, scim.ReasonCreated, ""}})
	})
	if err != nil {
		return scim.User{}, err
	}
	return out, nil
}

// CreateUsers implements store.Batcher: one transaction, one savepoint per user.
func (s *Store) CreateUsers(ctx context.Context, us []scim.User) ([]scim.User, []error) {
	out := make([]scim.User, len(us))
	errs := make([]error, len(us))
	err := s.write(ctx, func(tx *txn) error {
		now := s.now()
		var jr []jrow
		var blocks map[int64]int64 // rows added per pk block, when the batch counts them
		if s.d.BatchCounts != "" {
			if _, err := tx.ExecContext(ctx, s.d.BatchCounts); err != nil {
				return fmt.Errorf("batch counts: %w", err)
			}
			blocks = map[int64]int64{}
		}
		for i := range us {
			out[i], errs[i] = scim.User{}, nil
			if _, err := tx.ExecContext(ctx, "SAVEPOINT batch_row"); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			u, pk, err := s.insertUser(ctx, tx, us[i], now)
			if err != nil {
				if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT batch_row"); rerr != nil {
					return fmt.Errorf("rollback to savepoint: %w", rerr)
				}
				errs[i] = err
				continue
			}
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT batch_row"); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
			out[i] = u
			jr = append(jr, jrow{"User", u.ID, scim.ChangeUpsert, scim.ReasonCreated, ""})
			if blocks != nil {
				blocks[pk>>bucketShift]++
			}
		}
		// The journal first: it takes the journal lock, which single writes
		// take before their (deferred) bucket trigger updates the newest
		// block's row at commit. Counting first would hold that row while
		// waiting for the lock — a deadlock with a concurrent single create.
		if err := s.journal(ctx, tx, now, jr); err != nil {
			return err
		}
		for b, n := range blocks {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO user_buckets (bucket, n) VALUES (?, ?) ON CONFLICT (bucket) DO UPDATE SET n = user_buckets.n + excluded.n`), b, n); err != nil {
				return fmt.Errorf("batch counts: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			out[i] = scim.User{}
			errs[i] = fmt.Errorf("create users: %w", err)
		}
	}
	return out, errs
}

// lockedUser is a user row read inside a write transaction.
type lockedUser struct {
	pk, version, created, modified int64
	active                         bool
	doc                            string
}

func (s *Store) lockUser(ctx context.Context, tx *txn, id string, ifMatch int64) (lockedUser, error) {
	var l lockedUser
	var active sql.NullInt64
	err := tx.QueryRowContext(ctx, s.q(`SELECT pk, version, created, modified, active, doc FROM users WHERE id = ?`+s.d.ForUpdate), id).
		Scan(&l.pk, &l.version, &l.created, &l.modified, &active, &l.doc)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("user %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("read user %s: %w", id, err)
	}
	if ifMatch > 0 && ifMatch != l.version {
		return l, fmt.Errorf("user %s is at version %d, not %d: %w", id, l.version, ifMatch, store.ErrPreconditionFailed)
	}
	l.active = !active.Valid || active.Int64 != 0
	return l, nil
}

// storeUser rewrites the user row of l with u (already prepared) inside tx.
// When u encodes to the stored document it writes nothing and returns the
// stored user with no journal rows: every column and user_values row derives
// from that document, so equal documents are equal users.
func (s *Store) storeUser(ctx context.Context, tx *txn, l lockedUser, u *scim.User, now time.Time) (scim.User, []jrow, error) {
	row, err := userRow(u)
	if err != nil {
		return scim.User{}, nil, err
	}
	if row[len(row)-1].(string) == l.doc {
		out := *u
		out.Meta = &scim.Meta{ResourceType: "User", Created: fromMicro(l.created), LastModified: fromMicro(l.modified), Version: scim.ETag(l.version)}
		groups, err := s.userGroups(ctx, tx, []string{u.ID}, nil)
		if err != nil {
			return scim.User{}, nil, err
		}
		out.Groups = groups[u.ID]
		return out, nil, nil
	}
	args := append(row, l.version+1, now.UnixMicro(), l.pk)
	if _, err := tx.ExecContext(ctx, s.q(updateUserSQL), args...); err != nil {
		if s.d.IsUnique(err) {
			return scim.User{}, nil, fmt.Errorf("update user: userName %q is taken: %w", u.UserName, store.ErrConflict)
		}
		return scim.User{}, nil, fmt.Errorf("update user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM user_values WHERE user_pk = ?`), l.pk); err != nil {
		return scim.User{}, nil, fmt.Errorf("update user values: %w", err)
	}
	if err := s.insertValues(ctx, tx, l.pk, u); err != nil {
		return scim.User{}, nil, err
	}
	out := *u
	out.Meta = &scim.Meta{ResourceType: "User", Created: fromMicro(l.created), LastModified: now, Version: scim.ETag(l.version + 1)}
	groups, err := s.userGroups(ctx, tx, []string{u.ID}, nil)
	if err != nil {
		return scim.User{}, nil, err
	}
	out.Groups = groups[u.ID]
	reason := scim.ReasonUpdated
	if l.active && !u.IsActive() {
		reason = scim.ReasonSuspended
	}
	return out, []jrow{{"User", u.ID, scim.ChangeUpsert, reason, ""}}, nil
}

// ReplaceUser implements store.Store.
func (s *Store) ReplaceUser(ctx context.Context, u scim.User, ifMatch int64) (scim.User, error) {
	var out scim.User
	err := s.write(ctx, func(tx *txn) error {
		l, err := s.lockUser(ctx, tx, u.ID, ifMatch)
		if err != nil {
			return err
		}
		v := u
		if err := prepareUser(&v); err != nil {
			return err
		}
		now := s.now()
		var jr []jrow
		if out, jr, err = s.storeUser(ctx, tx, l, &v, now); err != nil || jr == nil {
			return err
		}
		if err := s.auditIn(ctx, tx, now, out.ID, out.UserName); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, jr)
	})
	if err != nil {
		return scim.User{}, err
	}
	return out, nil
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, ifMatch int64, fn func(*scim.User) error) (scim.User, error) {
	var out scim.User
	err := s.write(ctx, func(tx *txn) error {
		l, err := s.lockUser(ctx, tx, id, ifMatch)
		if err != nil {
			return err
		}
		var u scim.User
		if err := json.Unmarshal([]byte(l.doc), &u); err != nil {
			return fmt.Errorf("decode user %s: %w", id, err)
		}
		u.ID = id
		u.Meta = &scim.Meta{ResourceType: "User", Created: fromMicro(l.created), Version: scim.ETag(l.version)}
		groups, err := s.userGroups(ctx, tx, []string{id}, nil)
		if err != nil {
			return err
		}
		u.Groups = groups[id]
		if err := fn(&u); err != nil {
			return err
		}
		u.ID = id
		if err := prepareUser(&u); err != nil {
			return err
		}
		now := s.now()
		var jr []jrow
		if out, jr, err = s.storeUser(ctx, tx, l, &u, now); err != nil || jr == nil {
			return err
		}
		if err := s.auditIn(ctx, tx, now, out.ID, out.UserName); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, jr)
	})
	if err != nil {
		return scim.User{}, err
	}
	return out, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, id string, ifMatch int64) error {
	return s.write(ctx, func(tx *txn) error {
		l, err := s.lockUser(ctx, tx, id, ifMatch)
		if err != nil {
			return err
		}
		now := s.now()
		more, err := s.dropMemberships(ctx, tx, id, now)
		if err != nil {
			return err
		}
		// The remove row names the groups the user was in, so a client-scoped
		// Changes feed can tell whether the user was visible to it.
		via := " "
		for _, r := range more {
			via += r.id + " "
		}
		jr := append([]jrow{{"User", id, scim.ChangeRemove, scim.ReasonDeleted, via}}, more...)
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM users WHERE pk = ?`), l.pk); err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		if _, ok := store.AuditFrom(ctx); ok {
			var named struct {
				UserName string `json:"userName"`
			}
			_ = json.Unmarshal([]byte(l.doc), &named) // the name is a courtesy to the reader
			if err := s.auditIn(ctx, tx, now, id, named.UserName); err != nil {
				return err
			}
		}
		return s.journal(ctx, tx, now, jr)
	})
}

// dropMemberships removes memberOf rows of a deleted resource, bumps the
// version of the groups that lose it and returns their journal rows.
func (s *Store) dropMemberships(ctx context.Context, tx *txn, memberID string, now time.Time) ([]jrow, error) {
	rows, err := tx.QueryContext(ctx, s.q(`DELETE FROM group_members WHERE member_id = ? RETURNING group_pk`), memberID)
	if err != nil {
		return nil, fmt.Errorf("drop memberships: %w", err)
	}
	var pks []int64
	for rows.Next() {
		var pk int64
		if err := rows.Scan(&pk); err != nil {
			rows.Close()
			return nil, err
		}
		pks = append(pks, pk)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drop memberships: %w", err)
	}
	var jr []jrow
	for _, pk := range pks {
		var gid string
		if err := tx.QueryRowContext(ctx, s.q(`UPDATE groups SET version = version + 1, modified = ? WHERE pk = ? RETURNING id`), now.UnixMicro(), pk).Scan(&gid); err != nil {
			return nil, fmt.Errorf("touch group: %w", err)
		}
		jr = append(jr, jrow{"Group", gid, scim.ChangeUpsert, scim.ReasonMembers, ""})
	}
	return jr, nil
}

// userGroups returns the direct groups of the users (by id), batched.
// With a scope, only the client's synced groups are returned.
func (s *Store) userGroups(ctx context.Context, q queryer, ids []string, sc *store.Scope) (map[string][]scim.GroupRef, error) {
	out := map[string][]scim.GroupRef{}
	err := chunks(len(ids), 500, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`SELECT gm.member_id, gg.id, gg.display_name FROM group_members gm JOIN groups gg ON gg.pk = gm.group_pk WHERE gm.member_id IN `).
			in(ids[lo:hi])
		scopeGroupIDs(b, "gg.id", sc)
		b.w(` ORDER BY gg.pk`)
		rows, err := q.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("read user groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var mid string
			var g scim.GroupRef
			if err := rows.Scan(&mid, &g.Value, &g.Display); err != nil {
				return err
			}
			g.Type = "direct"
			out[mid] = append(out[mid], g)
		}
		return rows.Err()
	})
	return out, err
}

// decodeUser builds a user from its stored row. doc is only read (it may be a
// sql.RawBytes of the row being scanned).
func decodeUser(id string, doc []byte, version, created, modified int64) (scim.User, error) {
	var u scim.User
	if err := json.Unmarshal(doc, &u); err != nil {
		return scim.User{}, fmt.Errorf("decode user %s: %w", id, err)
	}
	u.ID = id
	u.Meta = &scim.Meta{ResourceType: "User", Created: fromMicro(created), LastModified: fromMicro(modified), Version: scim.ETag(version)}
	return u, nil
}

// getUser runs userSelect with cond, which matches at most one user.
func (s *Store) getUser(ctx context.Context, cond string, arg any, what string) (scim.User, error) {
	rows, err := s.r.QueryContext(bounded(ctx), s.q(userSelect+cond), arg)
	if err != nil {
		return scim.User{}, fmt.Errorf("get user: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return scim.User{}, fmt.Errorf("get user: %w", err)
		}
		return scim.User{}, fmt.Errorf("user %s: %w", what, store.ErrNotFound)
	}
	var id string
	var doc sql.RawBytes // decoded before the row is released: no copy
	var version, created, modified int64
	var groups sql.NullString
	if err := rows.Scan(&id, &doc, &version, &created, &modified, &groups); err != nil {
		return scim.User{}, fmt.Errorf("get user: %w", err)
	}
	u, err := decodeUser(id, doc, version, created, modified)
	if err != nil {
		return scim.User{}, err
	}
	u.Groups = parseGroups(groups.String)
	return u, nil
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (scim.User, error) {
	return s.getUser(ctx, `u.id = ?`, id, id)
}

// UserByUserName implements store.Store.
func (s *Store) UserByUserName(ctx context.Context, userName string) (scim.User, error) {
	return s.getUser(ctx, `lower(u.user_name) = lower(?)`, userName, userName)
}
