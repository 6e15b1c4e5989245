package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/scim"
)

// users runs the users task: an approved plan first, then a full reconcile,
// a Changes feed increment or a meta.lastModified increment.
func (r *run) users(ctx context.Context) (*Plan, error) {
	if p, err := r.applyApproved(ctx); err != nil || (p != nil && r.opts.approvedOnly) {
		return p, err
	}
	mode, err := r.usersMode(ctx)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "changes":
		return r.usersChanges(ctx)
	case "modified":
		return r.usersModified(ctx)
	}
	return r.usersFull(ctx, "")
}

// usersMode picks full, changes or modified.
func (r *run) usersMode(ctx context.Context) (string, error) {
	if r.opts.Full {
		return "full", nil
	}
	ready, err := r.e.cfg.State.Ready(ctx, r.srv.ID)
	if err != nil {
		r.e.stateErr("ready", err)
		return "", fmt.Errorf("state: %w", err)
	}
	if !ready {
		// A new server, or state lost (Redis restarted empty): rebuild the map
		// from the local directory with a full reconcile.
		return "full", nil
	}
	last, err := r.cursor(ctx, curUsersFull)
	if err != nil {
		return "", err
	}
	if t, perr := time.Parse(time.RFC3339Nano, last); perr != nil || r.e.now().Sub(t) >= r.set.UsersFullInterval {
		return "full", nil
	}
	if _, ok := r.src.(ChangeFeed); ok {
		noFeed, err := r.cursor(ctx, curUsersNoFeed)
		if err != nil {
			return "", err
		}
		if noFeed == "" {
			c, err := r.cursor(ctx, curUsersChanges)
			if err != nil {
				return "", err
			}
			if c != "" {
				return "changes", nil
			}
		}
	}
	if _, ok := r.src.(ModifiedLister); ok {
		c, err := r.cursor(ctx, curUsersModified)
		if err != nil {
			return "", err
		}
		if c != "" {
			return "modified", nil
		}
	}
	return "full", nil
}

// userPager plans and applies one page of hub users at a time.
type userPager struct {
	r    *run
	p    *Plan
	full bool // compare every user with the local account (no hash skip)
	// seen holds the hub ids listed by a full reconcile; true once this run
	// wrote the user's account (tracked when fresh).
	seen map[string]bool
	// wrote counts the hub ids of seen marked true: the distinct accounts of
	// this server a fresh run wrote.
	wrote int
	// pending are link writes made by the last page, sent with the next batch.
	pending []state.Link
	// claimed maps local ids linked by mapping in this run to their hub id, so
	// two hub users never take the same local account.
	claimed map[string]string
	// fresh: the server had no local account when this full reconcile began
	// (and the task lock keeps it so): no user can have one, so none is read.
	fresh       bool
	maxModified time.Time
	done        int
	total       int
	// groups caches hub group id → local group id ("" when there is none yet)
	// for joining new accounts to their groups.
	groups map[string]string
	// deferred holds, per hub group that had no local group when looked up,
	// the accounts this run made for its members: the group may be made
	// after the lookup (by the collections task, which reads the members'
	// accounts only once it made the group), so the run looks again at its
	// end (finishJoins). deferredN counts the ids; past maxDeferred they are
	// dropped and the next collections run is made a full pass instead.
	deferred      map[string][]string
	deferredN     int
	deferOverflow bool
}

// maxDeferred bounds the account ids a run keeps for groups not made yet
// (about 5 MB).
const maxDeferred = 100_000

func (r *run) newUserPager(p *Plan, full bool) *userPager {
	g := &userPager{r: r, p: p, full: full, claimed: map[string]string{}, total: -1, groups: map[string]string{}}
	if full {
		g.seen = make(map[string]bool, 1024)
	}
	return g
}

// putMeta ties a local.Put to the user it came from.
type putMeta struct {
	user *scim.User
	hash string // the profile's
	// item is the index of the plan item in p.Items, -1 when not kept (an
	// index: a pointer would go stale as p.Items grows).
	item    int
	action  Action
	create  bool
	attempt int
}

// page processes one page of users: one State round trip (the previous page's
// links written, this page's read), one local read, one local batch write. On
// a fresh run nothing is read, and the previous page's links are written while
// this page is planned and written locally.
func (g *userPager) page(ctx context.Context, users []scim.User) (err error) {
	r := g.r
	// The last occurrence of an id wins (an increment may list a user twice).
	last := make(map[string]int, len(users))
	for i := range users {
		if users[i].ID != "" {
			last[users[i].ID] = i
		}
	}
	ids := make([]string, 0, len(last))
	var list []*scim.User
	for i := range users {
		u := &users[i]
		if u.ID == "" || last[u.ID] != i {
			continue
		}
		ids = append(ids, u.ID)
		list = append(list, u)
		if g.seen != nil && !g.seen[u.ID] {
			g.seen[u.ID] = false
		}
		if u.Meta != nil && u.Meta.LastModified.After(g.maxModified) {
			g.maxModified = u.Meta.LastModified
		}
	}
	g.p.Listed += len(list)
	links := map[string]state.Link{}
	switch {
	case !g.fresh:
		if links, err = r.applyLinks(ctx, state.KindUser, g.pending, nil, ids, nil); err != nil {
			return err
		}
		g.pending = g.pending[:0]
	case len(g.pending) > 0:
		// The links name accounts already committed, so they may be written
		// along with this page's accounts; the next batch of links waits.
		pending, done := g.pending, make(chan error, 1)
		g.pending = nil
		go func() {
			_, err := r.applyLinks(ctx, state.KindUser, pending, nil, nil, nil)
			done <- err
		}()
		defer func() {
			if lerr := <-done; err == nil {
				err = lerr
			}
		}()
	}

	// profs[i] is the profile of list[i]; list[i] is set to nil when the user
	// needs nothing (applied before and unchanged since).
	profs := make([]profile, len(list))
	need := make([]string, 0, len(list))
	for i, u := range list {
		profs[i] = makeProfile(u, r.set.Exclusions, r.fields)
		if l, ok := links[u.ID]; ok && !g.full && l.Hash != "" && l.Hash == profs[i].hash {
			list[i] = nil
			continue
		}
		need = append(need, u.ID)
	}
	accts := map[string]local.Account{}
	if !g.fresh {
		if accts, err = r.accountsByHubID(ctx, need); err != nil {
			return err
		}
	}

	puts := make([]local.Put, 0, len(need))
	metas := make([]putMeta, 0, len(need))
	for i, u := range list {
		if u == nil {
			continue
		}
		prof := &profs[i]
		var put local.Put
		var meta putMeta
		var ok bool
		if a, found := accts[u.ID]; found {
			if put, meta, ok = g.planExisting(u, prof, a); !ok {
				// Nothing to write; make sure the link is right (a rebuilt map).
				if l, ok := links[u.ID]; !ok || l.LocalID != a.ID || l.Hash != prof.hash {
					g.pending = append(g.pending, state.Link{HubID: u.ID, LocalID: a.ID, Hash: prof.hash})
				}
				continue
			}
		} else {
			if put, meta, ok, err = g.planNew(ctx, u, prof); err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		puts = append(puts, put)
		metas = append(metas, meta)
	}
	if err := g.write(ctx, puts, metas); err != nil {
		return err
	}
	g.done += len(list)
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{Server: r.srv.ID, Task: r.task, Done: g.done, Total: g.total})
	}
	return nil
}

// add records a plan item and returns its index for putMeta.item.
func (g *userPager) add(it Item) int {
	if g.p.add(it) == nil {
		return -1
	}
	return len(g.p.Items) - 1
}

// item returns the plan item of m, nil when not kept.
func (g *userPager) item(m putMeta) *Item {
	if m.item < 0 {
		return nil
	}
	return &g.p.Items[m.item]
}

// accountsByHubID reads the connect accounts of ids, MaxBatch at a time.
func (r *run) accountsByHubID(ctx context.Context, ids []string) (map[string]local.Account, error) {
	out := make(map[string]local.Account, len(ids))
	for start := 0; start < len(ids); start += local.MaxBatch {
		m, err := r.e.cfg.Target.AccountsByHubID(ctx, r.srv.ID, ids[start:min(start+local.MaxBatch, len(ids))])
		if err != nil {
			return nil, fmt.Errorf("local directory: %w", err)
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// planExisting plans the update of a linked account: changed profile fields,
// restore, suspension by or reactivation from Connect. nil when nothing changes.
func (g *userPager) planExisting(u *scim.User, prof *profile, a local.Account) (local.Put, putMeta, bool) {
	want := prof.acct
	want.ID = a.ID
	mask := prof.mask
	if prof.copyUserName {
		mask |= local.FieldUsername
	}
	action, rule := ActUpdate, "hub user changed"
	active := u.IsActive()
	if a.IsDeleted() {
		want.Deleted = time.Time{}
		mask |= local.FieldDeleted
		action, rule = ActRestore, "back in scope within the grace period: restored"
	}
	switch {
	case prof.syncActive && !active && !a.Suspended:
		want.Suspended, want.SuspendedBy = true, local.SuspendedByConnect
		mask |= local.FieldSuspended
		if action == ActUpdate {
			action, rule = ActSuspend, "hub user is inactive (active=false)"
		}
	case (active || !prof.syncActive) && a.Suspended && a.SuspendedBy == local.SuspendedByConnect:
		want.Suspended, want.SuspendedBy = false, ""
		mask |= local.FieldSuspended
		if action == ActUpdate {
			action, rule = ActUnsuspend, "active and in scope again: Connect had suspended it"
		}
	}
	changed := changedFields(a, want, mask)
	if changed == 0 {
		return local.Put{}, putMeta{}, false
	}
	it := g.add(Item{Action: action, Kind: "user", HubID: u.ID, LocalID: a.ID, Name: a.Username,
		HubName: u.UserName, Fields: fieldNames(changed), Rule: rule})
	return local.Put{Account: want, Fields: changed}, putMeta{user: u, hash: prof.hash, item: it, action: action}, true
}

// planNew plans a hub user without a local account: mapping (when migrating
// local accounts), else a new account with a generated username.
func (g *userPager) planNew(ctx context.Context, u *scim.User, prof *profile) (local.Put, putMeta, bool, error) {
	r := g.r
	status := local.Fields(0)
	want := prof.acct
	want.Auth, want.Server, want.HubUserID = local.AuthConnect, r.srv.ID, u.ID
	if prof.syncActive && !u.IsActive() {
		want.Suspended, want.SuspendedBy = true, local.SuspendedByConnect
		status = local.FieldSuspended
	}
	var noMatch string
	if r.set.MigrateLocalAccounts {
		m, err := r.mapAccount(ctx, u)
		if err != nil {
			return local.Put{}, putMeta{}, false, err
		}
		if m.refuse != "" {
			g.p.add(Item{Action: ActRefuse, Kind: "user", HubID: u.ID, HubName: u.UserName, Rule: m.refuse})
			return local.Put{}, putMeta{}, false, nil
		}
		if m.account != nil {
			c := *m.account
			if other, taken := g.claimed[c.ID]; taken && other != u.ID {
				g.p.add(Item{Action: ActRefuse, Kind: "user", HubID: u.ID, HubName: u.UserName, LocalID: c.ID, Name: c.Username,
					Rule: fmt.Sprintf("ambiguous: local account %q already mapped to another hub user in this run", c.Username)})
				return local.Put{}, putMeta{}, false, nil
			}
			g.claimed[c.ID] = u.ID
			want.ID = c.ID
			mask := local.FieldAuth | prof.mask
			if prof.copyUserName {
				mask |= local.FieldUsername
			}
			if status != 0 && !c.Suspended {
				mask |= status
			}
			it := g.add(Item{Action: ActLink, Kind: "user", HubID: u.ID, LocalID: c.ID, Name: c.Username, HubName: u.UserName,
				Fields: fieldNames(changedFields(c, want, mask)), Rule: m.rule})
			return local.Put{Account: want, Fields: mask}, putMeta{user: u, hash: prof.hash, item: it, action: ActLink}, true, nil
		}
		noMatch = m.rule
	}
	rule := "new hub user: account created with a generated tc username"
	if prof.copyUserName {
		want.Username = u.UserName
		rule = "new hub user: account created with the hub userName (userName not excluded)"
	} else {
		want.Username = GeneratedUsername(r.srv.ID, u.ID, 0)
	}
	if noMatch != "" {
		rule += "; " + noMatch
	}
	it := g.add(Item{Action: ActCreate, Kind: "user", HubID: u.ID, Name: want.Username, HubName: u.UserName, Rule: rule})
	mask := prof.mask | status
	if prof.copyUserName {
		mask |= local.FieldUsername
	}
	return local.Put{Account: want, Fields: mask}, putMeta{user: u, hash: prof.hash, item: it, action: ActCreate, create: true}, true, nil
}

// write applies the page's puts (dry runs write nothing) and records links. A
// create whose username is taken is retried with the next generated name.
func (g *userPager) write(ctx context.Context, puts []local.Put, metas []putMeta) error {
	r := g.r
	joins := map[string][]string{} // hub group id → new local account ids
	defer func() {
		if len(joins) > 0 {
			g.join(ctx, joins)
		}
	}()
	for len(puts) > 0 {
		if r.dry {
			return nil
		}
		var retryPuts []local.Put
		var retryMetas []putMeta
		for start := 0; start < len(puts); start += local.MaxBatch {
			end := min(start+local.MaxBatch, len(puts))
			res, err := r.e.cfg.Target.PutAccounts(ctx, puts[start:end])
			if err != nil {
				return fmt.Errorf("local directory: %w", err)
			}
			for j, rs := range res {
				m := metas[start+j]
				if rs.Err == nil {
					if it := g.item(m); it != nil {
						it.LocalID, it.Name = rs.Account.ID, rs.Account.Username
						if m.action == ActCreate && rs.Op == local.OpUpdated {
							it.Rule += " (found from an earlier attempt: updated)"
						}
					}
					g.pending = append(g.pending, state.Link{HubID: m.user.ID, LocalID: rs.Account.ID, Hash: m.hash})
					if g.fresh && !g.seen[m.user.ID] {
						g.seen[m.user.ID] = true
						g.wrote++
					}
					if m.action == ActCreate || m.action == ActLink || m.action == ActRestore {
						for _, gr := range m.user.Groups {
							if gr.Value != "" && (gr.Type == "" || gr.Type == "direct" || gr.Type == "indirect") {
								joins[gr.Value] = append(joins[gr.Value], rs.Account.ID)
							}
						}
					}
					continue
				}
				if m.create && errors.Is(rs.Err, local.ErrConflict) && m.attempt < 5 {
					p := puts[start+j]
					m.attempt++
					p.Account.Username = GeneratedUsername(r.srv.ID, m.user.ID, m.attempt)
					if it := g.item(m); it != nil {
						it.Name = p.Account.Username
						it.Rule = "new hub user: username taken locally; account created with a generated tc username"
					}
					retryPuts, retryMetas = append(retryPuts, p), append(retryMetas, m)
					continue
				}
				g.p.fail(m.action)
				msg := rs.Err.Error()
				if errors.Is(rs.Err, local.ErrPrivileged) {
					msg = "privileged local account: never taken over"
				}
				if it := g.item(m); it != nil {
					it.Error = msg
				}
				r.e.log.Warn("sync item failed", "server", r.srv.ID, "action", m.action, "hub_user", m.user.ID, "err", rs.Err)
			}
		}
		puts, metas = retryPuts, retryMetas
	}
	return nil
}

// join adds accounts just created (or linked, or restored) to the locked local
// groups of their hub groups, so a new member does not wait for the next full
// collections pass when the collections task handled the group before the
// account existed. Groups not made yet are left to the collections task.
// Failures are logged: the collections task converges anyway.
func (g *userPager) join(ctx context.Context, joins map[string][]string) {
	r := g.r
	for hubGroup, ids := range joins {
		lid, ok := g.groups[hubGroup]
		if !ok {
			lg, err := r.e.cfg.Target.GroupByHubID(ctx, r.srv.ID, hubGroup)
			switch {
			case err == nil && lg.Locked:
				lid = lg.ID
			case errors.Is(err, local.ErrNotFound):
				if g.deferred == nil {
					g.deferred = map[string][]string{}
				}
				g.deferred[hubGroup] = nil
			case err != nil:
				r.e.log.Warn("join new accounts to their group", "server", r.srv.ID, "hub_group", hubGroup, "err", err)
				continue
			}
			g.groups[hubGroup] = lid
		}
		if lid == "" {
			if have, missing := g.deferred[hubGroup]; missing && !g.deferOverflow {
				g.deferred[hubGroup] = append(have, ids...)
				if g.deferredN += len(ids); g.deferredN > maxDeferred {
					g.deferOverflow, g.deferred = true, map[string][]string{}
				}
			}
			continue
		}
		for start := 0; start < len(ids); start += local.MaxBatch {
			if _, err := r.e.cfg.Target.AddMembers(ctx, local.ActorConnect, lid, ids[start:min(start+local.MaxBatch, len(ids))]); err != nil {
				r.e.log.Warn("join new accounts to their group", "server", r.srv.ID, "hub_group", hubGroup, "err", err)
				break
			}
		}
	}
}

// flush writes the pending links with cursors in one batch.
func (g *userPager) flush(ctx context.Context, extra []state.Link, cursors map[string]string) error {
	if cursors != nil && g.finishJoins(ctx) {
		// Too many deferred joins to keep: the next collections run reads
		// every group's members again.
		cursors[curGroupsFull] = ""
	}
	_, err := g.r.applyLinks(ctx, state.KindUser, append(g.pending, extra...), nil, nil, cursors)
	if err == nil {
		g.pending = g.pending[:0]
	}
	return err
}

// finishJoins, at the end of a run, looks again for the groups that had no
// local group when the run's new accounts were to join them, and joins the
// accounts to those made since. A group made after this look is made by a
// collections run that reads the members' accounts after making it, and
// finds these. It reports whether ids were dropped (deferOverflow).
func (g *userPager) finishJoins(ctx context.Context) bool {
	r := g.r
	for hubGroup, ids := range g.deferred {
		if len(ids) == 0 {
			continue
		}
		lg, err := r.e.cfg.Target.GroupByHubID(ctx, r.srv.ID, hubGroup)
		if err != nil || !lg.Locked {
			if err != nil && !errors.Is(err, local.ErrNotFound) {
				r.e.log.Warn("join new accounts to their group", "server", r.srv.ID, "hub_group", hubGroup, "err", err)
			}
			continue
		}
		for start := 0; start < len(ids); start += local.MaxBatch {
			if _, err := r.e.cfg.Target.AddMembers(ctx, local.ActorConnect, lg.ID, ids[start:min(start+local.MaxBatch, len(ids))]); err != nil {
				r.e.log.Warn("join new accounts to their group", "server", r.srv.ID, "hub_group", hubGroup, "err", err)
				break
			}
		}
	}
	g.deferred, g.deferredN = nil, 0
	return g.deferOverflow
}

// onlyOwn reports whether a fresh run can skip looking for accounts of this
// server the listing did not include, because the server has none but the
// accounts this run wrote (every one of them for a listed user). Other writers
// run outside the task lock — a login's SyncUser makes the account of a user
// it finds on the hub, who may be gone before the listing reaches them — so
// the server's accounts are counted, deleted ones included: as many as this
// run wrote means none other (each account has one hub id, each hub id one
// account of a server). Any other count, or an error, reads them all.
func (g *userPager) onlyOwn(ctx context.Context) bool {
	if !g.fresh {
		return false
	}
	n, err := g.r.e.cfg.Target.CountAccounts(ctx, local.AccountQuery{Server: g.r.srv.ID, Deleted: local.DeletedInclude})
	return err == nil && n == int64(g.wrote)
}

// usersFull lists every user of the source. Accounts of this server the listing
// did not include get the removal action — only when the listing completed and
// the valves pass, and only after the source confirms each one is gone.
func (r *run) usersFull(ctx context.Context, why string) (*Plan, error) {
	p := newPlan(r.srv.ID, r.task, "full", r.e.now())
	if why != "" {
		p.Reasons = append(p.Reasons, why)
	}
	known, err := r.e.cfg.Target.CountAccounts(ctx, local.AccountQuery{Server: r.srv.ID})
	if err != nil {
		return p, fmt.Errorf("local directory: %w", err)
	}
	p.Known = known

	// The feed head is read before listing: changes made while listing are
	// replayed by the next increment (idempotently).
	cursors := map[string]string{}
	if feed, ok := r.src.(ChangeFeed); ok {
		pg, err := feed.Changes(ctx, "", 0, 0)
		switch {
		case err == nil:
			cursors[curUsersChanges] = pg.NextCursor
			cursors[curUsersNoFeed] = ""
		case errors.Is(err, ErrNoFeed):
			cursors[curUsersNoFeed] = "1"
		case ctx.Err() != nil:
			return p, err
		default:
			r.e.log.Warn("changes feed head unavailable; the next run lists again", "server", r.srv.ID, "err", err)
		}
	}
	g := r.newUserPager(p, true)
	if known == 0 && !r.dry {
		all, err := r.e.cfg.Target.CountAccounts(ctx, local.AccountQuery{Server: r.srv.ID, Deleted: local.DeletedInclude})
		g.fresh = err == nil && all == 0
	}
	if c, ok := r.src.(interface {
		CountUsers(context.Context) (int, error)
	}); ok && r.opts.Progress != nil {
		if n, err := c.CountUsers(ctx); err == nil {
			g.total = n
		}
	}
	listErr := r.src.ListUsers(ctx, func(us []scim.User) error { return g.page(ctx, us) })
	if listErr != nil {
		// Stop before any delete: what the listing did not reach is unknown.
		if ferr := g.flush(ctx, nil, nil); ferr != nil && ctx.Err() == nil {
			r.e.log.Warn("write links after a failed listing", "server", r.srv.ID, "err", ferr)
		}
		if errors.Is(listErr, ErrIncomplete) {
			p.Status = string(state.PlanHeld)
			p.Reasons = append(p.Reasons, fmt.Sprintf("listing incomplete after %d users: %v; nothing removed", p.Listed, listErr))
			r.e.m.valves.WithLabelValues(r.srv.ID, r.task, "incomplete").Inc()
		}
		return p, listErr
	}
	p.Complete = true

	// Accounts of this server the listing did not include.
	var cands []Item
	q := local.AccountQuery{Server: r.srv.ID, Limit: local.MaxBatch}
	for listed := g.onlyOwn(ctx); !listed; {
		accts, next, err := r.e.cfg.Target.ListAccounts(ctx, q)
		if err != nil {
			return p, fmt.Errorf("local directory: %w", err)
		}
		for _, a := range accts {
			if a.HubUserID == "" {
				continue
			}
			if _, ok := g.seen[a.HubUserID]; ok {
				continue
			}
			if it, ok := r.removal(a, "", "not in the source's listing"); ok {
				cands = append(cands, it)
			}
		}
		listed = next == ""
		q.After = next
	}
	g.seen = nil // free the set before the destructive phase

	r.valves(p, cands, true)
	extra, err := r.finishDestructive(ctx, p, cands)
	if err != nil {
		return p, err
	}
	if !g.maxModified.IsZero() {
		cursors[curUsersModified] = g.maxModified.UTC().Format(time.RFC3339Nano)
	}
	cursors[curUsersFull] = r.e.now().Format(time.RFC3339Nano)
	if err := g.flush(ctx, extra, cursors); err != nil {
		return p, err
	}
	if !r.dry {
		if err := r.e.cfg.State.MarkReady(ctx, r.srv.ID, r.fence); err != nil {
			r.e.stateErr("mark-ready", err)
			return p, fmt.Errorf("state: %w", err)
		}
	}
	r.e.m.lag.WithLabelValues(r.srv.ID).Set(0)
	return p, nil
}

// removal returns the plan item for an account whose hub user is no longer
// served: hub deletion soft-deletes; leaving scope applies the removal action.
func (r *run) removal(a local.Account, reason, rule string) (Item, bool) {
	if a.IsDeleted() {
		return Item{}, false
	}
	it := Item{Kind: "user", HubID: a.HubUserID, LocalID: a.ID, Name: a.Username, Reason: reason, Destructive: true}
	switch {
	case reason == "deleted":
		it.Action, it.Rule = ActDelete, "deleted on the hub: soft delete, purged after the grace period"
		return it, true
	case reason == "suspended":
		if a.Suspended {
			return Item{}, false
		}
		it.Action, it.Rule, it.Destructive = ActSuspend, "hub user suspended (left the feed)", false
		return it, true
	}
	switch r.set.RemovalAction {
	case RemovalKeep:
		it.Action, it.Rule, it.Destructive = ActKeep, rule+": removal action keep", false
	case RemovalDelete:
		it.Action, it.Rule = ActDelete, rule+": removal action delete (soft delete, purged after the grace period)"
	default:
		if a.Suspended {
			return Item{}, false
		}
		it.Action, it.Rule = ActSuspend, rule+": removal action suspend"
	}
	return it, true
}

// valves holds p when the destructive items in cands trip a safety valve.
func (r *run) valves(p *Plan, cands []Item, full bool) {
	d := 0
	for _, it := range cands {
		if it.Destructive {
			d++
		}
	}
	trip := func(valve, reason string) {
		p.Status = string(state.PlanHeld)
		p.Reasons = append(p.Reasons, reason)
		r.e.m.valves.WithLabelValues(r.srv.ID, r.task, valve).Inc()
	}
	noun := "accounts"
	if r.task == TaskCollections {
		noun = "groups"
	}
	if full && p.Listed == 0 && p.Known > 0 {
		trip("empty", fmt.Sprintf("the source listed nothing while %d local %s come from it", p.Known, noun))
	} else if full && d > r.set.DeletePercentMin && int64(d)*100 > int64(r.set.DeleteMaxPercent)*p.Known {
		trip("shrunk", fmt.Sprintf("the listing shrank: %d of %d local %s are missing from it (more than %d%%)", d, p.Known, noun, r.set.DeleteMaxPercent))
	} else if !full && d > r.set.DeletePercentMin && int64(d)*100 > int64(r.set.DeleteMaxPercent)*p.Known {
		trip("threshold", fmt.Sprintf("%d destructive changes are more than %d%% of %d local %s", d, r.set.DeleteMaxPercent, p.Known, noun))
	}
	if d > r.set.DeleteMaxCount {
		trip("threshold", fmt.Sprintf("%d destructive changes exceed the threshold of %d", d, r.set.DeleteMaxCount))
	}
}

// finishDestructive adds cands to p and applies the destructive ones unless p
// is held (or the run is dry). It returns link writes.
func (r *run) finishDestructive(ctx context.Context, p *Plan, cands []Item) ([]state.Link, error) {
	start := len(p.Items)
	for _, it := range cands {
		p.add(it)
	}
	if r.dry || p.Held() {
		return nil, nil
	}
	put, del, err := r.applyDestructive(ctx, p, p.Items[start:])
	if len(del) > 0 {
		if _, derr := r.applyLinks(ctx, state.KindUser, nil, del, nil, nil); derr != nil && err == nil {
			err = derr
		}
	}
	return put, err
}

// usersChanges applies the hub's Changes feed from the stored cursor.
func (r *run) usersChanges(ctx context.Context) (*Plan, error) {
	feed := r.src.(ChangeFeed)
	cursor, err := r.cursor(ctx, curUsersChanges)
	if err != nil {
		return nil, err
	}
	p := newPlan(r.srv.ID, r.task, "changes", r.e.now())
	g := r.newUserPager(p, false)
	removed := map[string]string{} // hub id → reason
	caughtUp := false
	var lastAt time.Time
	for i := 0; i < r.e.cfg.ChangesPerRun; i++ {
		wait := time.Duration(0)
		if i == 0 {
			wait = r.opts.Wait
		}
		pg, err := feed.Changes(ctx, cursor, r.e.cfg.PageSize, wait)
		if errors.Is(err, ErrExpiredCursor) || errors.Is(err, ErrNoFeed) {
			if ferr := g.flush(ctx, nil, nil); ferr != nil {
				return p, ferr
			}
			r.e.log.Warn("changes feed unusable; running a full reconcile", "server", r.srv.ID, "err", err)
			return r.usersFull(ctx, "full reconcile: "+err.Error())
		}
		if err != nil {
			if ferr := g.flush(ctx, nil, nil); ferr != nil && ctx.Err() == nil {
				r.e.log.Warn("write links after a failed feed read", "server", r.srv.ID, "err", ferr)
			}
			return p, err
		}
		// Last event per user wins.
		var users []scim.User
		upsert := map[string]int{}
		for _, ch := range pg.Changes {
			if ch.ResourceType != "User" {
				continue
			}
			lastAt = ch.At
			switch {
			case ch.Op == scim.ChangeUpsert && ch.User != nil:
				delete(removed, ch.ID)
				if j, ok := upsert[ch.ID]; ok {
					users[j] = *ch.User
				} else {
					upsert[ch.ID] = len(users)
					users = append(users, *ch.User)
				}
			case ch.Op == scim.ChangeRemove:
				removed[ch.ID] = ch.Reason
				if j, ok := upsert[ch.ID]; ok {
					users[j].ID = "" // dropped by page()
					delete(upsert, ch.ID)
				}
			}
		}
		p.Listed += len(pg.Changes) - len(users)
		if len(users) > 0 {
			if err := g.page(ctx, users); err != nil {
				return p, err
			}
		}
		cursor = pg.NextCursor
		if len(pg.Changes) < r.e.cfg.PageSize {
			caughtUp = true
			break
		}
	}
	if caughtUp || lastAt.IsZero() {
		r.e.m.lag.WithLabelValues(r.srv.ID).Set(0)
	} else {
		r.e.m.lag.WithLabelValues(r.srv.ID).Set(r.e.now().Sub(lastAt).Seconds())
	}

	cands, err := r.removalsOf(ctx, removed)
	if err != nil {
		return p, err
	}
	if len(cands) > 0 {
		known, err := r.e.cfg.Target.CountAccounts(ctx, local.AccountQuery{Server: r.srv.ID})
		if err != nil {
			return p, fmt.Errorf("local directory: %w", err)
		}
		p.Known = known
	}
	r.mergeHeld(p, cands)
	r.valves(p, cands, false)
	extra, err := r.finishDestructive(ctx, p, cands)
	if err != nil {
		return p, err
	}
	return p, g.flush(ctx, extra, map[string]string{curUsersChanges: cursor})
}

// removalsOf turns feed removals into plan items for the accounts that exist.
func (r *run) removalsOf(ctx context.Context, removed map[string]string) ([]Item, error) {
	if len(removed) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(removed))
	for id := range removed {
		ids = append(ids, id)
	}
	accts, err := r.accountsByHubID(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, id := range ids {
		a, ok := accts[id]
		if !ok {
			continue
		}
		reason := removed[id]
		rule := "left the bridge's scope on the hub (" + reason + ")"
		if it, ok := r.removal(a, reason, rule); ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// mergeHeld carries the undone destructive items of a held stored plan into p
// when this run has destructive candidates of its own, so one approval covers
// both (otherwise the held plan stays as it is, under its id).
func (r *run) mergeHeld(p *Plan, cands []Item) {
	if r.stored == nil || !r.stored.Held() {
		return
	}
	fresh := false
	for _, it := range cands {
		fresh = fresh || it.Destructive
	}
	if !fresh {
		return
	}
	for _, it := range r.stored.Destructive() {
		p.add(it)
	}
	if len(r.stored.Destructive()) > 0 {
		p.Status = string(state.PlanHeld)
		p.Reasons = append(p.Reasons, r.stored.Reasons...)
	}
}

// usersModified lists users changed since the last seen meta.lastModified (a
// plain SCIM source). Removals are found by the periodic full reconcile.
func (r *run) usersModified(ctx context.Context) (*Plan, error) {
	c, err := r.cursor(ctx, curUsersModified)
	if err != nil {
		return nil, err
	}
	since, err := time.Parse(time.RFC3339Nano, c)
	if err != nil {
		return r.usersFull(ctx, "")
	}
	p := newPlan(r.srv.ID, r.task, "modified", r.e.now())
	g := r.newUserPager(p, false)
	g.maxModified = since
	err = r.src.(ModifiedLister).ListUsersModifiedSince(ctx, since.Add(-r.set.ModifiedOverlap), func(us []scim.User) error { return g.page(ctx, us) })
	if err != nil {
		if ferr := g.flush(ctx, nil, nil); ferr != nil && ctx.Err() == nil {
			r.e.log.Warn("write links after a failed increment", "server", r.srv.ID, "err", ferr)
		}
		var se *scim.Error
		if errors.As(err, &se) && se.Status == 400 {
			// The server cannot filter on meta.lastModified: list everything.
			return r.usersFull(ctx, "the source refused a meta.lastModified filter")
		}
		return p, err
	}
	r.e.m.lag.WithLabelValues(r.srv.ID).Set(0)
	return p, g.flush(ctx, nil, map[string]string{curUsersModified: g.maxModified.UTC().Format(time.RFC3339Nano)})
}
