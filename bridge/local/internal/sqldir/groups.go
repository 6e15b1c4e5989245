package sqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/connectsso/connect/bridge/local"
)

const groupCols = `pk, name, kind, server, hub_group_id, locked, created, modified`

func scanGroup(sc scanner) (local.Group, error) {
	var (
		g                 local.Group
		pk, locked        int64
		kind              string
		server, hub       sql.NullString
		created, modified sql.NullInt64
	)
	if err := sc.Scan(&pk, &g.Name, &kind, &server, &hub, &locked, &created, &modified); err != nil {
		return g, err
	}
	g.ID, g.Kind, g.Server, g.HubGroupID, g.Locked = fmtPK(pk), local.Kind(kind), server.String, hub.String, locked != 0
	g.Created, g.Modified = fromMicro(created), fromMicro(modified)
	return g, nil
}

func (s *Dir) groupWhere(ctx context.Context, q querier, where string, args ...any) (local.Group, error) {
	g, err := scanGroup(q.QueryRowContext(ctx, s.d.rebind(`SELECT `+groupCols+` FROM local_groups WHERE `+where), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return g, local.ErrNotFound
	}
	return g, err
}

// PutGroup upserts a group (see local.Directory).
func (s *Dir) PutGroup(ctx context.Context, actor local.Actor, g local.Group) (local.Group, local.Op, error) {
	if err := local.CheckGroup(g); err != nil {
		return local.Group{}, "", err
	}
	var out local.Group
	var op local.Op
	err := s.withTx(ctx, "put group", func(tx *sql.Tx) error {
		var stored local.Group
		var err error
		switch {
		case g.ID != "":
			pk, ok := parsePK(g.ID)
			if !ok {
				return fail(fmt.Errorf("group %q: %w", g.ID, local.ErrNotFound))
			}
			stored, err = s.groupWhere(ctx, tx, `pk = ?`+s.d.ForUpdate, pk)
			if errors.Is(err, local.ErrNotFound) {
				return fail(fmt.Errorf("group %q: %w", g.ID, local.ErrNotFound))
			}
		case g.HubGroupID != "":
			stored, err = s.groupWhere(ctx, tx, `server = ? AND hub_group_id = ?`+s.d.ForUpdate, g.Server, g.HubGroupID)
			if errors.Is(err, local.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(1000)
		if stored.ID == "" {
			if actor != local.ActorConnect && g.Locked {
				return fail(fmt.Errorf("group %q: only Connect makes locked groups: %w", g.Name, local.ErrLocked))
			}
			var pk int64
			err := tx.QueryRowContext(ctx, s.d.rebind(`INSERT INTO local_groups (name, kind, server, hub_group_id, locked, created, modified)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING pk`),
				g.Name, string(g.Kind), nullStr(g.Server), nullStr(g.HubGroupID), b2i(g.Locked), now.UnixMicro(), now.UnixMicro()).Scan(&pk)
			if errors.Is(err, sql.ErrNoRows) {
				return fail(fmt.Errorf("group (%s, %s) exists: %w", g.Server, g.HubGroupID, local.ErrConflict))
			}
			if err != nil {
				return err
			}
			out, op = g, local.OpCreated
			out.ID, out.Created, out.Modified = fmtPK(pk), now, now
			return nil
		}
		if actor != local.ActorConnect && stored.Locked {
			return fail(fmt.Errorf("group %s (%q): %w", stored.ID, stored.Name, local.ErrLocked))
		}
		if stored.Name == g.Name && stored.Kind == g.Kind && stored.Server == g.Server && stored.HubGroupID == g.HubGroupID && stored.Locked == g.Locked {
			out, op = stored, local.OpUnchanged
			return nil
		}
		if !now.After(stored.Modified) {
			now = stored.Modified.Add(1000)
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT put_group`); err != nil {
			return err
		}
		pk, _ := parsePK(stored.ID)
		_, err = tx.ExecContext(ctx, s.d.rebind(`UPDATE local_groups SET name = ?, kind = ?, server = ?, hub_group_id = ?, locked = ?, modified = ? WHERE pk = ?`),
			g.Name, string(g.Kind), nullStr(g.Server), nullStr(g.HubGroupID), b2i(g.Locked), now.UnixMicro(), pk)
		if err != nil {
			if !s.d.IsUnique(err) {
				return err
			}
			tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT put_group`)
			return fail(fmt.Errorf("group (%s, %s) exists: %w", g.Server, g.HubGroupID, local.ErrConflict))
		}
		out, op = g, local.OpUpdated
		out.ID, out.Created, out.Modified = stored.ID, stored.Created, now
		return nil
	})
	if err != nil {
		return local.Group{}, "", err
	}
	return out, op, nil
}

func (s *Dir) oneGroup(ctx context.Context, op, where string, args ...any) (local.Group, error) {
	g, err := s.groupWhere(ctx, s.r, where, args...)
	if errors.Is(err, local.ErrNotFound) {
		return g, fmt.Errorf("%s: %w", op, local.ErrNotFound)
	}
	if err != nil {
		return g, s.dbErr(op, err)
	}
	return g, nil
}

// Group returns the group with id.
func (s *Dir) Group(ctx context.Context, id string) (local.Group, error) {
	pk, ok := parsePK(id)
	if !ok {
		return local.Group{}, fmt.Errorf("group %q: %w", id, local.ErrNotFound)
	}
	return s.oneGroup(ctx, "group "+id, `pk = ?`, pk)
}

// GroupByHubID returns the group made from (server, hubGroupID).
func (s *Dir) GroupByHubID(ctx context.Context, server, hubGroupID string) (local.Group, error) {
	return s.oneGroup(ctx, fmt.Sprintf("group of (%s, %s)", server, hubGroupID), `server = ? AND hub_group_id = ?`, server, hubGroupID)
}

// ListGroups pages through groups in primary-key order.
func (s *Dir) ListGroups(ctx context.Context, q local.GroupQuery) ([]local.Group, string, error) {
	after, err := parseCursor(q.After)
	if err != nil {
		return nil, "", err
	}
	limit := local.Limit(q.Limit)
	where, args := "pk > ?", []any{after}
	if q.Server != "" {
		where += " AND server = ?"
		args = append(args, q.Server)
	}
	if q.Kind != "" {
		where += " AND kind = ?"
		args = append(args, string(q.Kind))
	}
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT `+groupCols+` FROM local_groups WHERE `+where+` ORDER BY pk LIMIT ?`), args...)
	if err != nil {
		return nil, "", s.dbErr("list groups", err)
	}
	defer rows.Close()
	var gs []local.Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, "", s.dbErr("list groups", err)
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.dbErr("list groups", err)
	}
	next := ""
	if len(gs) > limit {
		gs = gs[:limit]
		next = gs[limit-1].ID
	}
	return gs, next, nil
}

// lockGroup reads the group for a write by actor: ErrNotFound, ErrLocked.
func (s *Dir) lockGroup(ctx context.Context, tx *sql.Tx, actor local.Actor, id string) (int64, error) {
	pk, ok := parsePK(id)
	if !ok {
		return 0, fail(fmt.Errorf("group %q: %w", id, local.ErrNotFound))
	}
	g, err := s.groupWhere(ctx, tx, `pk = ?`+s.d.ForUpdate, pk)
	if errors.Is(err, local.ErrNotFound) {
		return 0, fail(fmt.Errorf("group %q: %w", id, local.ErrNotFound))
	}
	if err != nil {
		return 0, err
	}
	if g.Locked && actor != local.ActorConnect {
		return 0, fail(fmt.Errorf("group %s (%q): %w", g.ID, g.Name, local.ErrLocked))
	}
	return pk, nil
}

// DeleteGroup removes a group and its memberships.
func (s *Dir) DeleteGroup(ctx context.Context, actor local.Actor, id string) error {
	return s.withTx(ctx, "delete group", func(tx *sql.Tx) error {
		pk, err := s.lockGroup(ctx, tx, actor, id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.d.rebind(`DELETE FROM local_groups WHERE pk = ?`), pk)
		return err
	})
}

// accountPKs turns ids into distinct primary keys; ErrInvalid for an id no
// account can have.
func accountPKs(ids []string) ([]int64, error) {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		pk, ok := parsePK(id)
		if !ok {
			return nil, fmt.Errorf("account %q: %w", id, local.ErrInvalid)
		}
		if !seen[pk] {
			seen[pk] = true
			out = append(out, pk)
		}
	}
	return out, nil
}

func int64Args(pks []int64) []any {
	args := make([]any, len(pks))
	for i, pk := range pks {
		args[i] = pk
	}
	return args
}

// addMembers inserts memberships (at most MaxBatch pks), after checking every
// account exists.
func (s *Dir) addMembers(ctx context.Context, tx *sql.Tx, gpk int64, pks []int64) (int, error) {
	if len(pks) == 0 {
		return 0, nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM local_accounts WHERE pk IN (`+placeholders(len(pks))+`)`), int64Args(pks)...).Scan(&n); err != nil {
		return 0, err
	}
	if n != len(pks) {
		return 0, fail(fmt.Errorf("%d of %d member accounts do not exist: %w", len(pks)-n, len(pks), local.ErrInvalid))
	}
	args := make([]any, 0, 2*len(pks))
	vals := make([]byte, 0, 8*len(pks))
	for i, pk := range pks {
		if i > 0 {
			vals = append(vals, ", "...)
		}
		vals = append(vals, "(?, ?)"...)
		args = append(args, gpk, pk)
	}
	res, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO local_members (group_pk, account_pk) VALUES `+string(vals)+` ON CONFLICT DO NOTHING`), args...)
	if err != nil {
		return 0, err
	}
	added, err := res.RowsAffected()
	return int(added), err
}

func (s *Dir) removeMembers(ctx context.Context, tx *sql.Tx, gpk int64, pks []int64) (int, error) {
	if len(pks) == 0 {
		return 0, nil
	}
	args := append([]any{gpk}, int64Args(pks)...)
	res, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM local_members WHERE group_pk = ? AND account_pk IN (`+placeholders(len(pks))+`)`), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Dir) memberOp(ctx context.Context, op string, actor local.Actor, groupID string, ids []string,
	fn func(tx *sql.Tx, gpk int64, pks []int64) (int, error)) (int, error) {
	if err := local.CheckIDs("account ids", ids); err != nil {
		return 0, err
	}
	pks, err := accountPKs(ids)
	var n int
	err2 := s.withTx(ctx, op, func(tx *sql.Tx) error {
		gpk, gerr := s.lockGroup(ctx, tx, actor, groupID)
		if gerr != nil {
			return gerr
		}
		if err != nil {
			return fail(err)
		}
		n, gerr = fn(tx, gpk, pks)
		return gerr
	})
	return n, err2
}

// AddMembers adds accounts to a group.
func (s *Dir) AddMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, error) {
	return s.memberOp(ctx, "add members", actor, groupID, accountIDs, func(tx *sql.Tx, gpk int64, pks []int64) (int, error) {
		return s.addMembers(ctx, tx, gpk, pks)
	})
}

// RemoveMembers removes accounts from a group. Unknown ids are not members.
func (s *Dir) RemoveMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, error) {
	if err := local.CheckIDs("account ids", accountIDs); err != nil {
		return 0, err
	}
	var known []string
	for _, id := range accountIDs {
		if _, ok := parsePK(id); ok {
			known = append(known, id)
		}
	}
	return s.memberOp(ctx, "remove members", actor, groupID, known, func(tx *sql.Tx, gpk int64, pks []int64) (int, error) {
		return s.removeMembers(ctx, tx, gpk, pks)
	})
}

// SetMembers replaces the member list by its difference, in one transaction.
func (s *Dir) SetMembers(ctx context.Context, actor local.Actor, groupID string, accountIDs []string) (int, int, error) {
	want, err := accountPKs(accountIDs)
	if err != nil {
		// Still report ErrNotFound / ErrLocked for the group first.
		_, gerr := s.memberOp(ctx, "set members", actor, groupID, nil, func(*sql.Tx, int64, []int64) (int, error) { return 0, nil })
		if gerr != nil {
			return 0, 0, gerr
		}
		return 0, 0, err
	}
	var added, removed int
	err = s.withTx(ctx, "set members", func(tx *sql.Tx) error {
		added, removed = 0, 0
		gpk, err := s.lockGroup(ctx, tx, actor, groupID)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT account_pk FROM local_members WHERE group_pk = ?`), gpk)
		if err != nil {
			return err
		}
		have := map[int64]bool{}
		for rows.Next() {
			var pk int64
			if err := rows.Scan(&pk); err != nil {
				rows.Close()
				return err
			}
			have[pk] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var add []int64
		for _, pk := range want {
			if have[pk] {
				delete(have, pk)
			} else {
				add = append(add, pk)
			}
		}
		del := make([]int64, 0, len(have))
		for pk := range have {
			del = append(del, pk)
		}
		slices.Sort(del)
		for chunk := range slices.Chunk(del, local.MaxBatch) {
			n, err := s.removeMembers(ctx, tx, gpk, chunk)
			if err != nil {
				return err
			}
			removed += n
		}
		for chunk := range slices.Chunk(add, local.MaxBatch) {
			n, err := s.addMembers(ctx, tx, gpk, chunk)
			if err != nil {
				return err
			}
			added += n
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return added, removed, nil
}

// GroupMembers pages through a group's member ids in primary-key order.
func (s *Dir) GroupMembers(ctx context.Context, groupID, after string, limit int) ([]string, string, error) {
	if _, err := s.Group(ctx, groupID); err != nil {
		return nil, "", err
	}
	gpk, _ := parsePK(groupID)
	apk, err := parseCursor(after)
	if err != nil {
		return nil, "", err
	}
	limit = local.Limit(limit)
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT account_pk FROM local_members WHERE group_pk = ? AND account_pk > ? ORDER BY account_pk LIMIT ?`), gpk, apk, limit+1)
	if err != nil {
		return nil, "", s.dbErr("group members", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var pk int64
		if err := rows.Scan(&pk); err != nil {
			return nil, "", s.dbErr("group members", err)
		}
		ids = append(ids, fmtPK(pk))
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.dbErr("group members", err)
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	return ids, next, nil
}

// AccountGroups returns the ids of the account's groups, sorted.
func (s *Dir) AccountGroups(ctx context.Context, accountID string) ([]string, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	pk, _ := parsePK(accountID)
	rows, err := s.r.QueryContext(ctx, s.d.rebind(`SELECT group_pk FROM local_members WHERE account_pk = ?`), pk)
	if err != nil {
		return nil, s.dbErr("account groups", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var g int64
		if err := rows.Scan(&g); err != nil {
			return nil, s.dbErr("account groups", err)
		}
		ids = append(ids, strconv.FormatInt(g, 10))
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr("account groups", err)
	}
	slices.Sort(ids)
	return ids, nil
}
