package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
)

// run is one task run of one server.
type run struct {
	e     *Engine
	srv   Server
	task  string
	opts  RunOptions
	set   Settings
	dry   bool
	fence state.Fence
	src   Source

	// stored is the task's plan as stored when the run started (nil if none).
	stored *Plan
	// fields are the account fields the target stores.
	fields local.Fields
}

// Cursor names in State.
const (
	curUsersChanges  = "users.changes"
	curUsersModified = "users.modified"
	curUsersFull     = "users.full"
	curUsersNoFeed   = "users.nofeed"
	curGroupsChanges = "collections.changes"
	curGroupsFull    = "collections.full"
)

// cursor reads a cursor; "" when unset.
func (r *run) cursor(ctx context.Context, name string) (string, error) {
	v, err := r.e.cfg.State.Cursor(ctx, r.srv.ID, name)
	if errors.Is(err, state.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		r.e.stateErr("cursor", err)
		return "", fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, nil
}

// applyLinks runs one State batch: the pending link writes, the cursors, and the
// reads of the next page — one round trip. A dry run only reads.
func (r *run) applyLinks(ctx context.Context, kind state.Kind, put []state.Link, del []string, get []string, cursors map[string]string) (map[string]state.Link, error) {
	f := r.fence
	if r.dry {
		put, del, cursors, f = nil, nil, nil, state.Fence{}
	}
	if len(put) == 0 && len(del) == 0 && len(cursors) == 0 && len(get) == 0 {
		return map[string]state.Link{}, nil
	}
	put = dedupLinks(put, del)
	b := state.Batch{Kind: kind, Put: put, Delete: del, Cursors: cursors, Get: get}
	links, err := r.e.cfg.State.Apply(ctx, r.srv.ID, f, b)
	if errors.Is(err, state.ErrConflict) {
		// A local id still linked to another hub id (a stale link, e.g. of a
		// purged and re-made account): the local directory is the truth, so drop
		// the stale links and write again.
		stale, lerr := r.staleLinks(ctx, kind, put)
		if lerr != nil {
			return nil, lerr
		}
		b.Delete = append(append([]string(nil), del...), stale...)
		links, err = r.e.cfg.State.Apply(ctx, r.srv.ID, f, b)
	}
	if err != nil {
		r.e.stateErr("apply", err)
		return nil, fmt.Errorf("state: %w", err)
	}
	return links, nil
}

// dedupLinks keeps the last link of each hub id and of each local id, and
// drops hub ids being deleted (Batch forbids duplicates).
func dedupLinks(put []state.Link, del []string) []state.Link {
	if len(put) < 2 && len(del) == 0 {
		return put
	}
	gone := make(map[string]bool, len(del))
	for _, id := range del {
		gone[id] = true
	}
	hubs := make(map[string]bool, len(put))
	locals := make(map[string]bool, len(put))
	out := make([]state.Link, 0, len(put))
	for i := len(put) - 1; i >= 0; i-- {
		l := put[i]
		if gone[l.HubID] || hubs[l.HubID] || locals[l.LocalID] {
			continue
		}
		hubs[l.HubID], locals[l.LocalID] = true, true
		out = append(out, l)
	}
	return out
}

func (r *run) staleLinks(ctx context.Context, kind state.Kind, put []state.Link) ([]string, error) {
	mine := make(map[string]bool, len(put))
	for _, l := range put {
		mine[l.HubID] = true
	}
	var stale []string
	for _, l := range put {
		old, err := r.e.cfg.State.LinkByLocal(ctx, r.srv.ID, kind, l.LocalID)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			r.e.stateErr("link-by-local", err)
			return nil, fmt.Errorf("state: %w", err)
		}
		if old.HubID != l.HubID && !mine[old.HubID] {
			stale = append(stale, old.HubID)
		}
	}
	return stale, nil
}

// savePlan stores p as the task's plan, unless a held plan must survive: an
// incremental run that held nothing new leaves a held plan in place, so the
// operator approves what they saw.
func (r *run) savePlan(ctx context.Context, p *Plan) error {
	if r.dry {
		return nil
	}
	if r.stored != nil && r.stored.Held() && !p.Held() && p.Mode != "full" && p.ID != r.stored.ID {
		return nil
	}
	if (p.Mode == "changes" || p.Mode == "modified") && p.Total() == 0 && len(p.Reasons) == 0 && p.Status != StatusFailed {
		// An idle increment (a long-poll that saw nothing) keeps the last
		// plan worth reading.
		return nil
	}
	data, err := p.encode()
	if err != nil {
		return err
	}
	status := state.PlanStatus(p.Status)
	switch p.Status {
	case StatusFailed, StatusDryRun, "":
		status = state.PlanApplied
	}
	err = r.e.cfg.State.SavePlan(ctx, r.srv.ID, r.fence, state.Plan{
		ID: p.ID, Task: r.task, Status: status, Reason: strings.Join(p.Reasons, "; "), At: r.e.now(), Data: data,
	})
	r.e.stateErr("save-plan", err)
	return err
}

// loadStored reads the task's stored plan into r.stored.
func (r *run) loadStored(ctx context.Context) error {
	sp, err := r.e.cfg.State.GetPlan(ctx, r.srv.ID, r.task)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		r.e.stateErr("get-plan", err)
		return fmt.Errorf("read plan: %w", err)
	}
	p, err := DecodePlan(sp)
	if err != nil {
		// An unreadable plan (an older version's) is replaced by this run's.
		r.e.log.Warn("stored plan unreadable; replacing it", "server", r.srv.ID, "task", r.task, "err", err)
		return nil
	}
	r.stored = p
	return nil
}

// applyApproved applies the destructive items of an approved stored plan and
// stores it as applied. It returns the plan (nil when none was approved).
func (r *run) applyApproved(ctx context.Context) (*Plan, error) {
	if err := r.loadStored(ctx); err != nil {
		return nil, err
	}
	if r.stored == nil || r.stored.Status != string(state.PlanApproved) || r.dry {
		return nil, nil
	}
	p := r.stored
	r.e.log.Info("applying approved plan", "server", r.srv.ID, "task", r.task, "plan", p.ID, "items", len(p.Destructive()))
	var (
		pending []state.Link
		del     []string
		err     error
	)
	kind := state.KindUser
	if r.task == TaskCollections {
		kind = state.KindGroup
	}
	pending, del, err = r.applyDestructive(ctx, p, p.Items)
	if err == nil {
		_, err = r.applyLinks(ctx, kind, pending, del, nil, nil)
	}
	p.Status = string(state.PlanApplied)
	p.Reasons = append(p.Reasons, "approved by an operator")
	if serr := r.savePlan(ctx, p); serr != nil && err == nil {
		err = serr
	}
	r.stored = p
	return p, err
}

// applyDestructive applies the destructive items of items (in place: Done,
// Error) after confirming each with the source: a user or group the source
// still serves is not removed. It returns the link writes to make.
func (r *run) applyDestructive(ctx context.Context, p *Plan, items []Item) (put []state.Link, del []string, err error) {
	now := r.e.now()
	var puts []local.Put
	var idx []int
	for i := range items {
		it := &items[i]
		if !it.Destructive || it.Done {
			continue
		}
		if err := ctx.Err(); err != nil {
			return put, del, err
		}
		if !r.confirmGone(ctx, it) {
			continue
		}
		switch it.Action {
		case ActSuspend:
			puts = append(puts, local.Put{Account: local.Account{ID: it.LocalID, Suspended: true, SuspendedBy: local.SuspendedByConnect}, Fields: local.FieldSuspended})
			idx = append(idx, i)
		case ActDelete:
			puts = append(puts, local.Put{Account: local.Account{ID: it.LocalID, Deleted: now}, Fields: local.FieldDeleted})
			idx = append(idx, i)
		case ActGroupDel:
			err := r.e.cfg.Target.DeleteGroup(ctx, local.ActorConnect, it.LocalID)
			if err != nil && !errors.Is(err, local.ErrNotFound) {
				it.Error = err.Error()
				p.fail(it.Action)
				continue
			}
			it.Done = true
			del = append(del, it.HubID)
		}
	}
	for start := 0; start < len(puts); start += local.MaxBatch {
		end := min(start+local.MaxBatch, len(puts))
		res, err := r.e.cfg.Target.PutAccounts(ctx, puts[start:end])
		if err != nil {
			return put, del, fmt.Errorf("local directory: %w", err)
		}
		for j, rs := range res {
			it := &items[idx[start+j]]
			if rs.Err != nil {
				if errors.Is(rs.Err, local.ErrNotFound) {
					it.Done, it.Error = true, "the local account no longer exists"
					del = append(del, it.HubID)
					continue
				}
				it.Error = rs.Err.Error()
				p.fail(it.Action)
				continue
			}
			it.Done = true
			// The hash is cleared so that the user coming back is compared with
			// the local account (and reactivated) instead of skipped.
			put = append(put, state.Link{HubID: it.HubID, LocalID: it.LocalID})
		}
	}
	return put, del, nil
}

// confirmGone asks the source whether the item's resource is really gone: a
// listing that skipped a resource (index paging while the source changed) must
// never remove it. It records the outcome on the item.
func (r *run) confirmGone(ctx context.Context, it *Item) bool {
	var err error
	if it.Kind == "group" {
		_, err = r.src.GroupMembers(ctx, it.HubID)
	} else {
		_, err = r.src.GetUser(ctx, it.HubID)
	}
	switch {
	case errors.Is(err, ErrGone):
		return true
	case err == nil:
		it.Done, it.Error = true, "still served by the source: not removed"
		return false
	default:
		it.Error = "could not confirm with the source: " + err.Error()
		return false
	}
}
