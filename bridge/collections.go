package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/scim"
)

// collections runs the collections task: the hub's audiences and courses
// become locked local groups whose members are the local accounts of their hub
// members. A full pass lists every group; an increment re-syncs the groups the
// Changes feed names.
func (r *run) collections(ctx context.Context) (*Plan, error) {
	if p, err := r.applyApproved(ctx); err != nil || (p != nil && r.opts.approvedOnly) {
		return p, err
	}
	full := r.opts.Full
	cursor := ""
	feed, hasFeed := r.src.(ChangeFeed)
	if !full {
		last, err := r.cursor(ctx, curGroupsFull)
		if err != nil {
			return nil, err
		}
		t, perr := time.Parse(time.RFC3339Nano, last)
		full = perr != nil || r.e.now().Sub(t) >= r.set.CollectionsFull
		if !full && hasFeed {
			if cursor, err = r.cursor(ctx, curGroupsChanges); err != nil {
				return nil, err
			}
		}
		full = full || !hasFeed || cursor == ""
	}
	if full {
		return r.collectionsFull(ctx, "")
	}

	p := newPlan(r.srv.ID, r.task, "changes", r.e.now())
	changed := map[string]bool{}
	removed := map[string]bool{}
	for i := 0; i < r.e.cfg.ChangesPerRun; i++ {
		wait := time.Duration(0)
		if i == 0 {
			wait = r.opts.Wait
		}
		pg, err := feed.Changes(ctx, cursor, r.e.cfg.PageSize, wait)
		if errors.Is(err, ErrExpiredCursor) || errors.Is(err, ErrNoFeed) {
			return r.collectionsFull(ctx, "full pass: "+err.Error())
		}
		if err != nil {
			return p, err
		}
		for _, ch := range pg.Changes {
			if ch.ResourceType != "Group" {
				continue
			}
			if ch.Op == scim.ChangeRemove {
				removed[ch.ID], changed[ch.ID] = true, false
			} else {
				changed[ch.ID], removed[ch.ID] = true, false
			}
		}
		p.Listed += len(pg.Changes)
		cursor = pg.NextCursor
		if len(pg.Changes) < r.e.cfg.PageSize {
			break
		}
	}
	var pending []state.Link
	for id, ok := range changed {
		if !ok {
			continue
		}
		g, err := r.groupOf(ctx, id)
		if errors.Is(err, ErrGone) {
			removed[id] = true
			continue
		}
		if err != nil {
			return p, err
		}
		l, err := r.syncGroup(ctx, p, g, nil)
		if err != nil {
			return p, err
		}
		if l != nil {
			pending = append(pending, *l)
		}
	}
	var cands []Item
	for id, ok := range removed {
		if !ok {
			continue
		}
		lg, err := r.e.cfg.Target.GroupByHubID(ctx, r.srv.ID, id)
		if errors.Is(err, local.ErrNotFound) {
			continue
		}
		if err != nil {
			return p, fmt.Errorf("local directory: %w", err)
		}
		cands = append(cands, groupDelete(lg, "removed from the hub or out of scope"))
	}
	if len(cands) > 0 {
		p.Known = r.countGroups(ctx)
	}
	r.mergeHeld(p, cands)
	r.valves(p, cands, false)
	if _, err := r.finishGroupDeletes(ctx, p, cands); err != nil {
		return p, err
	}
	_, err := r.applyLinks(ctx, state.KindGroup, pending, nil, nil, map[string]string{curGroupsChanges: cursor})
	return p, err
}

// groupOf reads one group's attributes through a one-group listing is not
// possible on every server; the members call doubles as the existence check.
func (r *run) groupOf(ctx context.Context, id string) (scim.Group, error) {
	var found *scim.Group
	if gs, ok := r.src.(interface {
		GetGroup(context.Context, string) (scim.Group, error)
	}); ok {
		g, err := gs.GetGroup(ctx, id)
		if err != nil {
			return scim.Group{}, err
		}
		found = &g
	}
	if found == nil {
		return scim.Group{}, fmt.Errorf("source cannot read one group: %w", ErrNoFeed)
	}
	return *found, nil
}

func groupDelete(lg local.Group, why string) Item {
	return Item{Action: ActGroupDel, Kind: "group", HubID: lg.HubGroupID, LocalID: lg.ID, Name: lg.Name,
		Rule: why + ": locked local group deleted (member accounts stay)", Destructive: true}
}

func (r *run) countGroups(ctx context.Context) int64 {
	var n int64
	q := local.GroupQuery{Server: r.srv.ID, Limit: local.MaxBatch}
	for {
		gs, next, err := r.e.cfg.Target.ListGroups(ctx, q)
		if err != nil {
			return n
		}
		n += int64(len(gs))
		if next == "" {
			return n
		}
		q.After = next
	}
}

// groupKind maps a hub group to a local kind: a plain SCIM group (no Connect
// kind) is an audience.
func groupKind(g *scim.Group) local.Kind {
	if strings.EqualFold(g.Kind(), scim.KindCourse) {
		return local.KindCourse
	}
	return local.KindAudience
}

// collectionsFull lists every group, syncs each, and deletes the locked local
// groups of this server the listing did not include (valves permitting).
func (r *run) collectionsFull(ctx context.Context, why string) (*Plan, error) {
	p := newPlan(r.srv.ID, r.task, "full", r.e.now())
	if why != "" {
		p.Reasons = append(p.Reasons, why)
	}
	p.Known = r.countGroups(ctx)
	cursors := map[string]string{}
	if feed, ok := r.src.(ChangeFeed); ok {
		if pg, err := feed.Changes(ctx, "", 0, 0); err == nil {
			cursors[curGroupsChanges] = pg.NextCursor
		}
	}
	seen := map[string]bool{}
	var pending []state.Link
	listErr := r.src.ListGroups(ctx, func(gs []scim.Group) error {
		ids := make([]string, 0, len(gs))
		for _, g := range gs {
			ids = append(ids, g.ID)
		}
		links, err := r.applyLinks(ctx, state.KindGroup, pending, nil, ids, nil)
		if err != nil {
			return err
		}
		pending = pending[:0]
		for i := range gs {
			g := gs[i]
			if g.ID == "" || seen[g.ID] {
				continue
			}
			seen[g.ID] = true
			p.Listed++
			l, err := r.syncGroup(ctx, p, g, links)
			if err != nil {
				return err
			}
			if l != nil {
				pending = append(pending, *l)
			}
		}
		return nil
	})
	if listErr != nil {
		if _, err := r.applyLinks(ctx, state.KindGroup, pending, nil, nil, nil); err != nil && ctx.Err() == nil {
			r.e.log.Warn("write group links after a failed listing", "server", r.srv.ID, "err", err)
		}
		if errors.Is(listErr, ErrIncomplete) {
			p.Status = string(state.PlanHeld)
			p.Reasons = append(p.Reasons, fmt.Sprintf("group listing incomplete after %d groups: %v; nothing removed", p.Listed, listErr))
			r.e.m.valves.WithLabelValues(r.srv.ID, r.task, "incomplete").Inc()
		}
		return p, listErr
	}
	p.Complete = true
	var cands []Item
	q := local.GroupQuery{Server: r.srv.ID, Limit: local.MaxBatch}
	for {
		gs, next, err := r.e.cfg.Target.ListGroups(ctx, q)
		if err != nil {
			return p, fmt.Errorf("local directory: %w", err)
		}
		for _, lg := range gs {
			if lg.HubGroupID != "" && !seen[lg.HubGroupID] {
				cands = append(cands, groupDelete(lg, "not in the source's listing"))
			}
		}
		if next == "" {
			break
		}
		q.After = next
	}
	r.valves(p, cands, true)
	if _, err := r.finishGroupDeletes(ctx, p, cands); err != nil {
		return p, err
	}
	cursors[curGroupsFull] = r.e.now().Format(time.RFC3339Nano)
	_, err := r.applyLinks(ctx, state.KindGroup, pending, nil, nil, cursors)
	return p, err
}

func (r *run) finishGroupDeletes(ctx context.Context, p *Plan, cands []Item) (int, error) {
	start := len(p.Items)
	for _, it := range cands {
		p.add(it)
	}
	if r.dry || p.Held() {
		return 0, nil
	}
	_, del, err := r.applyDestructive(ctx, p, p.Items[start:])
	if len(del) > 0 {
		if _, derr := r.applyLinks(ctx, state.KindGroup, nil, del, nil, nil); derr != nil && err == nil {
			err = derr
		}
	}
	return len(del), err
}

// syncGroup makes the locked local group of g and sets its members. links (may
// be nil) holds the group's link when the caller read it. It returns the link
// to write (nil when unchanged).
func (r *run) syncGroup(ctx context.Context, p *Plan, g scim.Group, links map[string]state.Link) (*state.Link, error) {
	if links == nil {
		var err error
		if links, err = r.applyLinks(ctx, state.KindGroup, nil, nil, []string{g.ID}, nil); err != nil {
			return nil, err
		}
	}
	kind := groupKind(&g)
	name := strings.TrimSpace(g.DisplayName)
	if name == "" {
		name = g.ID
	}
	name = clip(name)
	want := local.Group{Name: name, Kind: kind, Server: r.srv.ID, HubGroupID: g.ID, Locked: true}

	hubMembers, err := r.src.GroupMembers(ctx, g.ID)
	if errors.Is(err, ErrGone) {
		return nil, nil // deleted since the listing: the next pass removes it
	}
	if err != nil {
		return nil, fmt.Errorf("group %s members: %w", g.ID, err)
	}
	accts, err := r.accountsByHubID(ctx, hubMembers)
	if err != nil {
		return nil, err
	}
	members := make([]string, 0, len(accts))
	var missing []string // hub members without a live local account (yet)
	for _, id := range hubMembers {
		if a, ok := accts[id]; ok && !a.IsDeleted() {
			members = append(members, a.ID)
		} else {
			missing = append(missing, id)
		}
	}
	slices.Sort(members)
	members = slices.Compact(members)
	hash := membersHash(name, kind, members)
	l, linked := links[g.ID]

	if r.dry {
		lg, err := r.e.cfg.Target.GroupByHubID(ctx, r.srv.ID, g.ID)
		switch {
		case errors.Is(err, local.ErrNotFound):
			p.add(Item{Action: ActGroupPut, Kind: "group", HubID: g.ID, Name: name, Rule: "new hub " + string(kind) + ": locked local group created"})
			p.add(Item{Action: ActMembers, Kind: "group", HubID: g.ID, Name: name, Fields: []string{fmt.Sprintf("+%d", len(members))}, Rule: "members of the hub " + string(kind)})
		case err != nil:
			return nil, fmt.Errorf("local directory: %w", err)
		default:
			if lg.Name != name || lg.Kind != kind || !lg.Locked {
				p.add(Item{Action: ActGroupPut, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name, Rule: "hub " + string(kind) + " changed"})
			}
			if !linked || l.Hash != hash {
				add, rem, err := r.memberDiff(ctx, lg.ID, members)
				if err != nil {
					return nil, err
				}
				if add+rem > 0 {
					p.add(Item{Action: ActMembers, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name,
						Fields: []string{fmt.Sprintf("+%d", add), fmt.Sprintf("-%d", rem)}, Rule: "members of the hub " + string(kind)})
				}
			}
		}
		return nil, nil
	}

	lg, op, err := r.e.cfg.Target.PutGroup(ctx, local.ActorConnect, want)
	if errors.Is(err, local.ErrConflict) && !r.e.cfg.Target.Capabilities().DuplicateGroupNames {
		// A target with unique group names: an audience and a course (or two
		// hubs) may share a name; tell them apart.
		for _, alt := range []string{name + " (" + string(kind) + ")", name + " (" + g.ID + ")"} {
			want.Name = clip(alt)
			if lg, op, err = r.e.cfg.Target.PutGroup(ctx, local.ActorConnect, want); !errors.Is(err, local.ErrConflict) {
				break
			}
		}
		name = want.Name
	}
	if err != nil {
		p.add(Item{Action: ActGroupPut, Kind: "group", HubID: g.ID, Name: name, Rule: "hub " + string(kind), Error: err.Error()})
		p.fail(ActGroupPut)
		return nil, nil
	}
	switch op {
	case local.OpCreated:
		p.add(Item{Action: ActGroupPut, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name, Rule: "new hub " + string(kind) + ": locked local group created"})
	case local.OpUpdated:
		p.add(Item{Action: ActGroupPut, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name, Rule: "hub " + string(kind) + " changed (name, kind or lock)"})
	}
	if linked && l.LocalID == lg.ID && l.Hash == hash && op == local.OpUnchanged {
		return nil, nil
	}
	added, removed, err := r.e.cfg.Target.SetMembers(ctx, local.ActorConnect, lg.ID, members)
	if err != nil {
		p.add(Item{Action: ActMembers, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name, Rule: "members of the hub " + string(kind), Error: err.Error()})
		p.fail(ActMembers)
		return nil, nil
	}
	// The users task may have made (or restored) a member's account between
	// the read above and SetMembers, and looked for this group before it
	// existed or joined the account before SetMembers replaced the list. Read
	// the missing members again now that the list is written: an account made
	// after this read finds the group and joins it itself (users.join).
	if len(missing) > 0 {
		late, err := r.accountsByHubID(ctx, missing)
		if err != nil {
			return nil, err
		}
		var join []string
		for _, a := range late {
			if !a.IsDeleted() {
				join = append(join, a.ID)
			}
		}
		for start := 0; start < len(join); start += local.MaxBatch {
			n, err := r.e.cfg.Target.AddMembers(ctx, local.ActorConnect, lg.ID, join[start:min(start+local.MaxBatch, len(join))])
			if err != nil {
				p.add(Item{Action: ActMembers, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name, Rule: "members of the hub " + string(kind), Error: err.Error()})
				p.fail(ActMembers)
				return nil, nil
			}
			added += n
		}
		if len(join) > 0 {
			members = append(members, join...)
			slices.Sort(members)
			members = slices.Compact(members)
			hash = membersHash(name, kind, members)
		}
	}
	if added+removed > 0 {
		p.add(Item{Action: ActMembers, Kind: "group", HubID: g.ID, LocalID: lg.ID, Name: name,
			Fields: []string{fmt.Sprintf("+%d", added), fmt.Sprintf("-%d", removed)}, Rule: "members of the hub " + string(kind)})
	}
	return &state.Link{HubID: g.ID, LocalID: lg.ID, Hash: hash}, nil
}

// membersHash is the link hash of a group: its name, kind and sorted local
// member ids. An unchanged hash lets a pass skip the group's member write.
func membersHash(name string, kind local.Kind, members []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", name, kind)
	for _, m := range members {
		h.Write([]byte(m))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// memberDiff counts what SetMembers would add and remove (dry runs).
func (r *run) memberDiff(ctx context.Context, groupID string, want []string) (add, rem int, err error) {
	have := map[string]bool{}
	after := ""
	for {
		ids, next, err := r.e.cfg.Target.GroupMembers(ctx, groupID, after, local.MaxBatch)
		if err != nil {
			return 0, 0, fmt.Errorf("local directory: %w", err)
		}
		for _, id := range ids {
			have[id] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	for _, id := range want {
		if have[id] {
			delete(have, id)
		} else {
			add++
		}
	}
	return add, len(have), nil
}
