package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/connectsso/connect/scim/store"
)

var _ store.Clients = (*Store)(nil)

const clientCols = `id, name, url, entity_id, restrict_audience, add_new_audiences, add_new_courses, comment, scope_version, created, modified`

// CreateClient implements store.Clients.
func (s *Store) CreateClient(ctx context.Context, c store.Client, t store.Token) (store.Client, error) {
	if err := checkClient(&c); err != nil {
		return store.Client{}, fmt.Errorf("create client: %w", err)
	}
	if t.Name == "" || len(t.Hash) == 0 {
		return store.Client{}, fmt.Errorf("create client: token name and hash are required: %w", store.ErrInvalid)
	}
	now := s.now()
	c.ID = uuid.NewString()
	c.ScopeVersion = 1
	c.Created, c.Modified = now, now
	err := s.write(ctx, func(tx *txn) error {
		if err := s.checkClientGroups(ctx, tx, &c); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO clients (`+clientCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.Name, c.URL, c.EntityID, c.RestrictAudience, b01(c.AddNewAudiences), b01(c.AddNewCourses), c.Comment,
			c.ScopeVersion, now.UnixMicro(), now.UnixMicro())
		if err != nil {
			if s.d.IsUnique(err) {
				return fmt.Errorf("client %q (%s): name or URL already registered: %w", c.Name, c.URL, store.ErrConflict)
			}
			return fmt.Errorf("insert client: %w", err)
		}
		if err := s.writeClientGroups(ctx, tx, c.ID, c.Groups); err != nil {
			return err
		}
		return s.insertClientToken(ctx, tx, c.ID, &t)
	})
	if err != nil {
		return store.Client{}, err
	}
	return c, nil
}

func (s *Store) insertClientToken(ctx context.Context, tx *txn, clientID string, t *store.Token) error {
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	t.ClientID = clientID
	t.ReadOnly = true // bridge tokens never write (DESIGN.md §4)
	if t.Created.IsZero() {
		t.Created = s.now()
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO tokens (id, name, hash, read_only, client_id, created, last_used, revoked) VALUES (?, ?, ?, 1, ?, ?, 0, 0)`),
		t.ID, t.Name, t.Hash, t.ClientID, t.Created.UnixMicro())
	if err != nil {
		if s.d.IsUnique(err) {
			return fmt.Errorf("client token %q: %w", t.Name, store.ErrConflict)
		}
		return fmt.Errorf("insert client token: %w", err)
	}
	return nil
}

// checkClient validates the fields a client must have and de-duplicates its
// group list, keeping the first occurrence's position.
func checkClient(c *store.Client) error {
	c.Name, c.URL = strings.TrimSpace(c.Name), strings.TrimSpace(c.URL)
	if c.Name == "" || c.URL == "" {
		return fmt.Errorf("name and URL are required: %w", store.ErrInvalid)
	}
	seen := make(map[string]bool, len(c.Groups))
	groups := c.Groups[:0:0]
	for _, g := range c.Groups {
		if g == "" {
			return fmt.Errorf("empty group id: %w", store.ErrInvalid)
		}
		if !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	c.Groups = groups
	return nil
}

// checkClientGroups refuses group ids that name no audience or course, and a
// restrict audience that is not an audience.
func (s *Store) checkClientGroups(ctx context.Context, tx *txn, c *store.Client) error {
	ids := slices.Clone(c.Groups)
	if c.RestrictAudience != "" {
		ids = append(ids, c.RestrictAudience)
	}
	if len(ids) == 0 {
		return nil
	}
	kinds := map[string]string{}
	err := chunks(len(ids), memberBatch, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`SELECT id, COALESCE(kind, '') FROM groups WHERE id IN `).in(ids[lo:hi])
		rows, err := tx.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("check client groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, kind string
			if err := rows.Scan(&id, &kind); err != nil {
				return err
			}
			kinds[id] = kind
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, g := range c.Groups {
		if k, ok := kinds[g]; !ok || (k != "audience" && k != "course") {
			return fmt.Errorf("client group %s is not an audience or course: %w", g, store.ErrInvalid)
		}
	}
	if c.RestrictAudience != "" && kinds[c.RestrictAudience] != "audience" {
		return fmt.Errorf("restrict audience %s is not an audience: %w", c.RestrictAudience, store.ErrInvalid)
	}
	return nil
}

// writeClientGroups replaces the client's synced groups.
func (s *Store) writeClientGroups(ctx context.Context, tx *txn, id string, groups []string) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM client_groups WHERE client_id = ?`), id); err != nil {
		return fmt.Errorf("client groups: %w", err)
	}
	for i, g := range groups {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO client_groups (client_id, group_id, idx) VALUES (?, ?, ?)`), id, g, i+1); err != nil {
			return fmt.Errorf("client groups: %w", err)
		}
	}
	return nil
}

// joinNewGroup adds a new audience or course to the synced groups of every
// client with the matching "add new" option, in the group's transaction.
func (s *Store) joinNewGroup(ctx context.Context, tx *txn, groupID, kind string) error {
	var col string
	switch kind {
	case "audience":
		col = "add_new_audiences"
	case "course":
		col = "add_new_courses"
	default:
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO client_groups (client_id, group_id, idx)
SELECT c.id, ?, (SELECT COALESCE(MAX(cg.idx), 0) + 1 FROM client_groups cg WHERE cg.client_id = c.id)
FROM clients c WHERE c.`+col+` = 1`), groupID)
	if err != nil {
		return fmt.Errorf("add new group to clients: %w", err)
	}
	return nil
}

func scanClient(sc interface{ Scan(...any) error }) (store.Client, error) {
	var c store.Client
	var aa, ac, created, modified int64
	if err := sc.Scan(&c.ID, &c.Name, &c.URL, &c.EntityID, &c.RestrictAudience, &aa, &ac, &c.Comment, &c.ScopeVersion, &created, &modified); err != nil {
		return store.Client{}, err
	}
	c.AddNewAudiences, c.AddNewCourses = aa != 0, ac != 0
	c.Created, c.Modified = fromMicro(created), fromMicro(modified)
	return c, nil
}

// clientGroups returns the client's synced groups that still exist, in order.
func (s *Store) clientGroups(ctx context.Context, q queryer, id string) ([]string, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT cg.group_id FROM client_groups cg JOIN groups g ON g.id = cg.group_id WHERE cg.client_id = ? ORDER BY cg.idx`), id)
	if err != nil {
		return nil, fmt.Errorf("client groups: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func (s *Store) getClient(ctx context.Context, q interface {
	queryer
	QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row
}, where string, arg string) (store.Client, error) {
	c, err := scanClient(q.QueryRowContext(ctx, s.q(`SELECT `+clientCols+` FROM clients WHERE `+where), arg))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Client{}, fmt.Errorf("client %s: %w", arg, store.ErrNotFound)
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("client %s: %w", arg, err)
	}
	if c.Groups, err = s.clientGroups(ctx, q, c.ID); err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// GetClient implements store.Clients.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	return s.getClient(ctx, s.r, `id = ?`, id)
}

// ClientByURL implements store.Clients.
func (s *Store) ClientByURL(ctx context.Context, url string) (store.Client, error) {
	return s.getClient(ctx, s.r, `url = ?`, url)
}

// ListClients implements store.Clients.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY lower(name), id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	for i := range out {
		if out[i].Groups, err = s.clientGroups(ctx, s.r, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UpdateClient implements store.Clients.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) (store.Client, error) {
	var out store.Client
	err := s.write(ctx, func(tx *txn) error {
		old, err := s.getClient(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		c := old
		c.Groups = slices.Clone(old.Groups)
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.Created, c.ScopeVersion = old.ID, old.Created, old.ScopeVersion
		if err := checkClient(&c); err != nil {
			return fmt.Errorf("update client: %w", err)
		}
		if err := s.checkClientGroups(ctx, tx, &c); err != nil {
			return err
		}
		if c.RestrictAudience != old.RestrictAudience || !slices.Equal(c.Groups, old.Groups) {
			c.ScopeVersion++
		}
		c.Modified = s.now()
		_, err = tx.ExecContext(ctx, s.q(`UPDATE clients SET name = ?, url = ?, entity_id = ?, restrict_audience = ?, add_new_audiences = ?, add_new_courses = ?, comment = ?, scope_version = ?, modified = ? WHERE id = ?`),
			c.Name, c.URL, c.EntityID, c.RestrictAudience, b01(c.AddNewAudiences), b01(c.AddNewCourses), c.Comment, c.ScopeVersion, c.Modified.UnixMicro(), c.ID)
		if err != nil {
			if s.d.IsUnique(err) {
				return fmt.Errorf("client %q (%s): name or URL already registered: %w", c.Name, c.URL, store.ErrConflict)
			}
			return fmt.Errorf("update client: %w", err)
		}
		if !slices.Equal(c.Groups, old.Groups) {
			if err := s.writeClientGroups(ctx, tx, c.ID, c.Groups); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	return out, err
}

// DeleteClient implements store.Clients.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM clients WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("delete client: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete client: %w", err)
		} else if n == 0 {
			return fmt.Errorf("client %s: %w", id, store.ErrNotFound)
		}
		// client_groups go with ON DELETE CASCADE; delete explicitly as well
		// for engines or connections without foreign keys enforced.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM client_groups WHERE client_id = ?`), id); err != nil {
			return fmt.Errorf("delete client: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET revoked = 1 WHERE client_id = ?`), id); err != nil {
			return fmt.Errorf("delete client: revoke tokens: %w", err)
		}
		return nil
	})
}

// ReplaceClientToken implements store.Clients.
func (s *Store) ReplaceClientToken(ctx context.Context, id string, t store.Token) (store.Token, error) {
	if t.Name == "" || len(t.Hash) == 0 {
		return store.Token{}, fmt.Errorf("replace client token: name and hash are required: %w", store.ErrInvalid)
	}
	err := s.write(ctx, func(tx *txn) error {
		var one int
		err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM clients WHERE id = ?`), id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("client %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("replace client token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET revoked = 1 WHERE client_id = ?`), id); err != nil {
			return fmt.Errorf("replace client token: %w", err)
		}
		return s.insertClientToken(ctx, tx, id, &t)
	})
	if err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// InScope implements store.Clients.
func (s *Store) InScope(ctx context.Context, sc store.Scope, userIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(userIDs))
	err := chunks(len(userIDs), memberBatch, func(lo, hi int) error {
		b := s.newBuilder()
		if sc.RestrictAudience == "" {
			b.w(`SELECT id FROM users WHERE id IN `).in(userIDs[lo:hi])
		} else {
			b.w(`SELECT gm.member_id FROM group_members gm JOIN groups g ON g.pk = gm.group_pk WHERE g.id = `, b.arg(sc.RestrictAudience),
				` AND gm.member_type = 'User' AND gm.member_id IN `).in(userIDs[lo:hi])
		}
		rows, err := s.r.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("in scope: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	return out, err
}

// ScopeGroups implements store.Clients.
func (s *Store) ScopeGroups(ctx context.Context, sc store.Scope, groupIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(groupIDs))
	err := chunks(len(groupIDs), memberBatch, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`SELECT group_id FROM client_groups WHERE client_id = `, b.arg(sc.ClientID), ` AND group_id IN `).in(groupIDs[lo:hi])
		rows, err := s.r.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("scope groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	return out, err
}

// scopeUsers writes the condition that keeps users (alias u) inside sc.
func scopeUsers(b *builder, alias string, sc *store.Scope) {
	if sc == nil || sc.RestrictAudience == "" {
		return
	}
	b.w(` AND EXISTS (SELECT 1 FROM group_members sm JOIN groups sg ON sg.pk = sm.group_pk WHERE sg.id = `, b.arg(sc.RestrictAudience),
		` AND sm.member_id = `, alias, `.id)`)
}

// scopeGroupIDs writes the condition that keeps a group id column inside the
// synced groups of sc's client.
func scopeGroupIDs(b *builder, col string, sc *store.Scope) {
	if sc == nil {
		return
	}
	b.w(` AND `, col, ` IN (SELECT cg.group_id FROM client_groups cg WHERE cg.client_id = `, b.arg(sc.ClientID), `)`)
}

// scopeMembers writes the condition that keeps group_members rows (alias gm)
// whose member is visible in sc: users in scope, groups synced by the client.
func scopeMembers(b *builder, sc *store.Scope) {
	if sc == nil {
		return
	}
	b.w(` AND ((gm.member_type = 'Group' AND gm.member_id IN (SELECT cg.group_id FROM client_groups cg WHERE cg.client_id = `, b.arg(sc.ClientID), `))`)
	if sc.RestrictAudience == "" {
		b.w(` OR gm.member_type = 'User')`)
		return
	}
	b.w(` OR (gm.member_type = 'User' AND EXISTS (SELECT 1 FROM group_members sm JOIN groups sg ON sg.pk = sm.group_pk WHERE sg.id = `, b.arg(sc.RestrictAudience),
		` AND sm.member_id = gm.member_id)))`)
}
