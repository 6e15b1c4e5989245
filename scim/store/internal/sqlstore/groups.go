package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// memberBatch bounds the ids in one membership statement.
const memberBatch = 500

const groupCols = `g.pk, g.id, g.display_name, g.external_id, g.kind, g.version, g.created, g.modified`

func scanGroup(sc interface{ Scan(...any) error }) (int64, scim.Group, error) {
	var pk, version, created, modified int64
	var g scim.Group
	var ext, kind sql.NullString
	if err := sc.Scan(&pk, &g.ID, &g.DisplayName, &ext, &kind, &version, &created, &modified); err != nil {
		return 0, scim.Group{}, err
	}
	g.ExternalID = ext.String
	if kind.String != "" {
		g.Connect = &scim.ConnectGroup{Kind: kind.String}
	}
	g.SetSchemas()
	g.Meta = &scim.Meta{ResourceType: "Group", Created: fromMicro(created), LastModified: fromMicro(modified), Version: scim.ETag(version)}
	return pk, g, nil
}

func prepareGroup(g *scim.Group) error {
	g.DisplayName = strings.TrimSpace(g.DisplayName)
	if g.DisplayName == "" {
		return fmt.Errorf("%w: displayName is required", store.ErrInvalid)
	}
	if g.Connect != nil && g.Connect.Kind == "" {
		g.Connect = nil
	}
	g.Meta = nil
	g.SetSchemas()
	return nil
}

func (s *Store) groupConflict(err error, g *scim.Group) error {
	if s.d.IsUnique(err) {
		return fmt.Errorf("group %q (kind %q) exists: %w", g.DisplayName, g.Kind(), store.ErrConflict)
	}
	return fmt.Errorf("store group: %w", err)
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(ctx context.Context, g scim.Group) (scim.Group, error) {
	if err := prepareGroup(&g); err != nil {
		return scim.Group{}, err
	}
	var out scim.Group
	err := s.write(ctx, func(tx *txn) error {
		now := s.now()
		v := g
		v.ID = uuid.NewString()
		var pk int64
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO groups (id, display_name, external_id, kind, version, created, modified) VALUES (?, ?, ?, ?, 1, ?, ?) RETURNING pk`),
			v.ID, v.DisplayName, ns(v.ExternalID), ns(v.Kind()), now.UnixMicro(), now.UnixMicro()).Scan(&pk)
		if err != nil {
			return s.groupConflict(err, &v)
		}
		jr := []jrow{{"Group", v.ID, scim.ChangeUpsert, scim.ReasonCreated, ""}}
		if err := s.joinNewGroup(ctx, tx, v.ID, v.Kind()); err != nil {
			return err
		}
		added, err := s.addMembers(ctx, tx, pk, v.ID, v.Members)
		if err != nil {
			return err
		}
		jr = append(jr, memberRows(v.ID, added)...)
		v.Meta = &scim.Meta{ResourceType: "Group", Created: now, LastModified: now, Version: scim.ETag(1)}
		out = v
		if err := s.auditIn(ctx, tx, now, v.ID, v.DisplayName); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, jr)
	})
	if err != nil {
		return scim.Group{}, err
	}
	return out, nil
}

// member is a stored membership: id and resource type.
type member struct{ id, typ string }

// memberRows are the journal rows of members whose membership of group gid
// changed; via names the group (see migration 4).
func memberRows(gid string, ms []member) []jrow {
	out := make([]jrow, len(ms))
	for i, m := range ms {
		out[i] = jrow{m.typ, m.id, scim.ChangeUpsert, scim.ReasonMembers, gid}
	}
	return out
}

// resolveMembers returns the type ("User" or "Group") of each id, checking
// existence in bulk. An unknown id, or the group itself, is ErrInvalid.
func (s *Store) resolveMembers(ctx context.Context, tx *txn, groupID string, ids []string) ([]member, error) {
	found := make(map[string]string, len(ids))
	err := chunks(len(ids), memberBatch, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`SELECT id, 'User' FROM users WHERE id IN `).in(ids[lo:hi]).w(` UNION ALL SELECT id, 'Group' FROM groups WHERE id IN `).in(ids[lo:hi])
		rows, err := tx.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("check members: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, typ string
			if err := rows.Scan(&id, &typ); err != nil {
				return err
			}
			found[id] = typ
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(ids))
	for _, id := range ids {
		typ, ok := found[id]
		if id == "" {
			return nil, fmt.Errorf("%w: a member has no value", store.ErrInvalid)
		}
		if !ok || id == groupID {
			return nil, fmt.Errorf("%w: member %q is not a user or group of this directory", store.ErrInvalid, id)
		}
		out = append(out, member{id, typ})
	}
	return out, nil
}

// uniqueIDs returns the distinct member values in order.
func uniqueIDs(ms []scim.Member) []string {
	seen := make(map[string]bool, len(ms))
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if seen[m.Value] {
			continue
		}
		seen[m.Value] = true
		out = append(out, m.Value)
	}
	return out
}

// addMembers adds members (ignoring those already present) and returns the
// ones actually added.
func (s *Store) addMembers(ctx context.Context, tx *txn, pk int64, groupID string, ms []scim.Member) ([]member, error) {
	ids := uniqueIDs(ms)
	var added []member
	err := chunks(len(ids), memberBatch, func(lo, hi int) error {
		resolved, err := s.resolveMembers(ctx, tx, groupID, ids[lo:hi])
		if err != nil {
			return err
		}
		types := make(map[string]string, len(resolved))
		b := s.newBuilder()
		b.w(`INSERT INTO group_members (group_pk, member_id, member_type) VALUES `)
		for i, m := range resolved {
			if i > 0 {
				b.w(", ")
			}
			types[m.id] = m.typ
			b.w("(", b.arg(pk), ", ", b.arg(m.id), ", ", b.arg(m.typ), ")")
		}
		b.w(` ON CONFLICT (group_pk, member_id) DO NOTHING RETURNING member_id`)
		rows, err := tx.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			added = append(added, member{id, types[id]})
		}
		return rows.Err()
	})
	return added, err
}

// removeMembers removes the listed members and returns those that were there.
func (s *Store) removeMembers(ctx context.Context, tx *txn, pk int64, ids []string) ([]member, error) {
	var removed []member
	err := chunks(len(ids), memberBatch, func(lo, hi int) error {
		b := s.newBuilder()
		b.w(`DELETE FROM group_members WHERE group_pk = `, b.arg(pk), ` AND member_id IN `).in(ids[lo:hi]).w(` RETURNING member_id, member_type`)
		var err error
		removed, err = scanMembers(ctx, tx, b, removed)
		return err
	})
	return removed, err
}

func scanMembers(ctx context.Context, q queryer, b *builder, into []member) ([]member, error) {
	rows, err := q.QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return into, fmt.Errorf("members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m member
		if err := rows.Scan(&m.id, &m.typ); err != nil {
			return into, err
		}
		into = append(into, m)
	}
	return into, rows.Err()
}

// removeAll removes every member and returns them.
func (s *Store) removeAll(ctx context.Context, tx *txn, pk int64) ([]member, error) {
	b := s.newBuilder()
	b.w(`DELETE FROM group_members WHERE group_pk = `, b.arg(pk), ` RETURNING member_id, member_type`)
	return scanMembers(ctx, tx, b, nil)
}

// replaceMembers makes the member list exactly ms, touching only the rows that
// change, and returns the affected members.
func (s *Store) replaceMembers(ctx context.Context, tx *txn, pk int64, groupID string, ms []scim.Member) ([]member, error) {
	b := s.newBuilder()
	b.w(`SELECT member_id, member_type FROM group_members WHERE group_pk = `, b.arg(pk))
	cur, err := scanMembers(ctx, tx, b, nil)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(ms))
	for _, m := range ms {
		want[m.Value] = true
	}
	have := make(map[string]bool, len(cur))
	var drop []string
	for _, m := range cur {
		have[m.id] = true
		if !want[m.id] {
			drop = append(drop, m.id)
		}
	}
	var add []scim.Member
	for _, m := range ms {
		if !have[m.Value] {
			add = append(add, m)
		}
	}
	removed, err := s.removeMembers(ctx, tx, pk, drop)
	if err != nil {
		return nil, err
	}
	added, err := s.addMembers(ctx, tx, pk, groupID, add)
	if err != nil {
		return nil, err
	}
	return append(removed, added...), nil
}

// lockedGroup is a group row read inside a write transaction.
type lockedGroup struct {
	pk    int64
	group scim.Group
}

func (s *Store) lockGroup(ctx context.Context, tx *txn, id string, ifMatch int64) (lockedGroup, error) {
	pk, g, err := scanGroup(tx.QueryRowContext(ctx, s.q(`SELECT `+groupCols+` FROM groups g WHERE g.id = ?`+s.d.ForUpdate), id))
	if errors.Is(err, sql.ErrNoRows) {
		return lockedGroup{}, fmt.Errorf("group %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lockedGroup{}, fmt.Errorf("read group %s: %w", id, err)
	}
	if v, _ := scim.ParseETag(g.Meta.Version); ifMatch > 0 && ifMatch != v {
		return lockedGroup{}, fmt.Errorf("group %s is at version %d, not %d: %w", id, v, ifMatch, store.ErrPreconditionFailed)
	}
	return lockedGroup{pk: pk, group: g}, nil
}

// storeGroup writes the attributes of g over l and bumps its version.
func (s *Store) storeGroup(ctx context.Context, tx *txn, l lockedGroup, g *scim.Group, now time.Time) (scim.Group, error) {
	ver, _ := scim.ParseETag(l.group.Meta.Version)
	_, err := tx.ExecContext(ctx, s.q(`UPDATE groups SET display_name = ?, external_id = ?, kind = ?, version = ?, modified = ? WHERE pk = ?`),
		g.DisplayName, ns(g.ExternalID), ns(g.Kind()), ver+1, now.UnixMicro(), l.pk)
	if err != nil {
		return scim.Group{}, s.groupConflict(err, g)
	}
	out := *g
	out.Members = nil
	out.Meta = &scim.Meta{ResourceType: "Group", Created: l.group.Meta.Created, LastModified: now, Version: scim.ETag(ver + 1)}
	return out, nil
}

// sameAttrs reports whether two groups have the same stored attributes
// (displayName, externalId, kind; members aside).
func sameAttrs(a, b *scim.Group) bool {
	return a.DisplayName == b.DisplayName && a.ExternalID == b.ExternalID && a.Kind() == b.Kind()
}

func groupReason(before, after *scim.Group) string {
	if !sameAttrs(before, after) {
		return scim.ReasonUpdated
	}
	return scim.ReasonMembers
}

// ReplaceGroup implements store.Store. Members are replaced when g.Members is
// non-nil (an empty non-nil slice removes them all).
func (s *Store) ReplaceGroup(ctx context.Context, g scim.Group, ifMatch int64) (scim.Group, error) {
	if err := prepareGroup(&g); err != nil {
		return scim.Group{}, err
	}
	var out scim.Group
	err := s.write(ctx, func(tx *txn) error {
		l, err := s.lockGroup(ctx, tx, g.ID, ifMatch)
		if err != nil {
			return err
		}
		now := s.now()
		// Members first: only then is it known whether anything changed.
		var changed []member
		if g.Members != nil {
			if changed, err = s.replaceMembers(ctx, tx, l.pk, g.ID, g.Members); err != nil {
				return err
			}
		}
		unchanged := sameAttrs(&l.group, &g) && len(changed) == 0
		if unchanged {
			out = l.group
		} else if out, err = s.storeGroup(ctx, tx, l, &g, now); err != nil {
			return err
		}
		if g.Members != nil {
			members, err := s.groupMembers(ctx, tx, []int64{l.pk}, nil)
			if err != nil {
				return err
			}
			out.Members = members[l.pk]
			if out.Members == nil {
				out.Members = []scim.Member{}
			}
		}
		if unchanged {
			return nil // no version, journal or audit entry
		}
		if err := s.auditIn(ctx, tx, now, g.ID, g.DisplayName); err != nil {
			return err
		}
		jr := append([]jrow{{"Group", g.ID, scim.ChangeUpsert, scim.ReasonUpdated, ""}}, memberRows(g.ID, changed)...)
		return s.journal(ctx, tx, now, jr)
	})
	if err != nil {
		return scim.Group{}, err
	}
	return out, nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, ifMatch int64, fn func(*scim.Group, *store.MemberOps) error) (scim.Group, error) {
	var out scim.Group
	err := s.write(ctx, func(tx *txn) error {
		l, err := s.lockGroup(ctx, tx, id, ifMatch)
		if err != nil {
			return err
		}
		g := l.group
		var ops store.MemberOps
		if err := fn(&g, &ops); err != nil {
			return err
		}
		g.ID = id
		if err := prepareGroup(&g); err != nil {
			return err
		}
		now := s.now()
		// Members first: only then is it known whether anything changed.
		changed, err := s.applyOps(ctx, tx, l.pk, id, &ops)
		if err != nil {
			return err
		}
		if sameAttrs(&l.group, &g) && len(changed) == 0 {
			out = l.group // unchanged: no version, journal or audit entry
			return nil
		}
		if out, err = s.storeGroup(ctx, tx, l, &g, now); err != nil {
			return err
		}
		if err := s.auditIn(ctx, tx, now, id, g.DisplayName); err != nil {
			return err
		}
		jr := append([]jrow{{"Group", id, scim.ChangeUpsert, groupReason(&l.group, &g), ""}}, memberRows(id, changed)...)
		return s.journal(ctx, tx, now, jr)
	})
	if err != nil {
		return scim.Group{}, err
	}
	return out, nil
}

// applyOps applies membership operations row by row and returns every member
// whose membership changed (once, even when removed and re-added).
func (s *Store) applyOps(ctx context.Context, tx *txn, pk int64, id string, ops *store.MemberOps) ([]member, error) {
	var changed []member
	switch {
	case ops.Replace != nil:
		c, err := s.replaceMembers(ctx, tx, pk, id, *ops.Replace)
		if err != nil {
			return nil, err
		}
		changed = append(changed, c...)
	case ops.RemoveAll:
		c, err := s.removeAll(ctx, tx, pk)
		if err != nil {
			return nil, err
		}
		changed = append(changed, c...)
	}
	if len(ops.Remove) > 0 {
		c, err := s.removeMembers(ctx, tx, pk, ops.Remove)
		if err != nil {
			return nil, err
		}
		changed = append(changed, c...)
	}
	if len(ops.Add) > 0 {
		c, err := s.addMembers(ctx, tx, pk, id, ops.Add)
		if err != nil {
			return nil, err
		}
		changed = append(changed, c...)
	}
	seen := make(map[string]bool, len(changed))
	out := changed[:0]
	for _, m := range changed {
		if !seen[m.id] {
			seen[m.id] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, id string, ifMatch int64) error {
	return s.write(ctx, func(tx *txn) error {
		l, err := s.lockGroup(ctx, tx, id, ifMatch)
		if err != nil {
			return err
		}
		now := s.now()
		members, err := s.removeAll(ctx, tx, l.pk)
		if err != nil {
			return err
		}
		jr := append([]jrow{{"Group", id, scim.ChangeRemove, scim.ReasonDeleted, ""}}, memberRows(id, members)...)
		parents, err := s.dropMemberships(ctx, tx, id, now)
		if err != nil {
			return err
		}
		jr = append(jr, parents...)
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM groups WHERE pk = ?`), l.pk); err != nil {
			return fmt.Errorf("delete group %s: %w", id, err)
		}
		if err := s.auditIn(ctx, tx, now, id, l.group.DisplayName); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, jr)
	})
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, id string, members bool) (scim.Group, error) {
	pk, g, err := scanGroup(s.r.QueryRowContext(bounded(ctx), s.q(`SELECT `+groupCols+` FROM groups g WHERE g.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return scim.Group{}, fmt.Errorf("group %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return scim.Group{}, fmt.Errorf("get group %s: %w", id, err)
	}
	if members {
		ms, err := s.groupMembers(ctx, s.r, []int64{pk}, nil)
		if err != nil {
			return scim.Group{}, err
		}
		g.Members = ms[pk]
		if g.Members == nil {
			g.Members = []scim.Member{}
		}
	}
	return g, nil
}

// groupMembers loads the members of the groups (by pk) with their display.
// With a scope, only the members visible in it are returned.
func (s *Store) groupMembers(ctx context.Context, q queryer, pks []int64, sc *store.Scope) (map[int64][]scim.Member, error) {
	out := map[int64][]scim.Member{}
	for lo := 0; lo < len(pks); lo += memberBatch {
		hi := min(lo+memberBatch, len(pks))
		b := s.newBuilder()
		b.w(`SELECT gm.group_pk, gm.member_id, gm.member_type, COALESCE(mu.display_name, mu.user_name, mg.display_name, '')
FROM group_members gm
LEFT JOIN users mu ON gm.member_type = 'User' AND mu.id = gm.member_id
LEFT JOIN groups mg ON gm.member_type = 'Group' AND mg.id = gm.member_id
WHERE gm.group_pk IN (`)
		for i, pk := range pks[lo:hi] {
			if i > 0 {
				b.w(", ")
			}
			b.w(b.arg(pk))
		}
		b.w(`)`)
		scopeMembers(b, sc)
		b.w(` ORDER BY gm.group_pk, gm.member_id`)
		rows, err := q.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return nil, fmt.Errorf("read members: %w", err)
		}
		for rows.Next() {
			var pk int64
			var m scim.Member
			if err := rows.Scan(&pk, &m.Value, &m.Type, &m.Display); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read members: %w", err)
			}
			out[pk] = append(out[pk], m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read members: %w", err)
		}
	}
	return out, nil
}
