package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// ErrRefused: the rules of the sync refuse to make or map an account for the
// user (an ambiguous or privileged mapping, a write the directory refused).
// The error text says which rule.
var ErrRefused = errors.New("refused by the account rules")

// SyncUser brings one hub user into the local directory now, with exactly the
// rules of the users task (account mapping, generated username, exclusions,
// suspension, restore). SSO calls it at login for a user the sync has not
// reached yet (just-in-time accounts) and for an account Connect had
// suspended or deleted, so it is reactivated when the hub says it may be.
//
// It reads the user through the server's scoped token: ErrGone when the
// source does not serve it (out of this bridge's scope, or deleted);
// ErrRefused when the rules refuse it. Writes are not fenced by the users
// task lock: they are idempotent upserts keyed by (server, hub id), so a run
// of the task writing the same user at the same time converges.
func (e *Engine) SyncUser(ctx context.Context, ref, hubUserID string) (local.Account, error) {
	srv, err := FindServer(ctx, e.cfg.Records, ref)
	if err != nil {
		return local.Account{}, err
	}
	settings, err := LoadSettings(ctx, e.cfg.Records)
	if err != nil {
		return local.Account{}, err
	}
	src, err := e.source(srv)
	if err != nil {
		return local.Account{}, err
	}
	u, err := src.GetUser(ctx, hubUserID)
	if err != nil {
		return local.Account{}, fmt.Errorf("%s user %s: %w", srv, hubUserID, err)
	}
	r := &run{e: e, srv: srv, task: TaskUsers, set: settings, fields: storable(e.cfg.Target), src: src}
	p := newPlan(srv.ID, TaskUsers, "login", e.now())
	g := r.newUserPager(p, true)
	if err := g.page(ctx, []scim.User{u}); err != nil {
		return local.Account{}, err
	}
	if err := g.flush(ctx, nil, nil); err != nil {
		// The account is written; a missing link is rebuilt by the next run.
		e.log.Warn("login sync: link not recorded", "server", srv.ID, "hub_user", u.ID, "err", err)
	}
	for _, it := range p.Items {
		switch {
		case it.Action == ActRefuse:
			return local.Account{}, fmt.Errorf("%w: %s", ErrRefused, it.Rule)
		case it.Error != "":
			return local.Account{}, fmt.Errorf("%w: %s", ErrRefused, it.Error)
		}
		e.m.items.WithLabelValues(srv.ID, "login", string(it.Action), "applied").Inc()
		e.log.Info("login sync", "server", srv.ID, "action", it.Action, "username", it.Name, "hub_user", u.ID, "rule", it.Rule)
	}
	a, err := e.cfg.Target.AccountByHubID(ctx, srv.ID, u.ID)
	if err != nil {
		return local.Account{}, fmt.Errorf("local directory: %w", err)
	}
	return a, nil
}

// RemovalResult counts what RemoveServerAccounts did.
type RemovalResult struct {
	Action RemovalAction
	// Changed accounts got the action; Unchanged already had it (or keep).
	Changed, Unchanged, Failed int
}

// String is the one-line summary an operator reads.
func (r RemovalResult) String() string {
	s := fmt.Sprintf("removal action %s: %d account(s) changed, %d unchanged", r.Action, r.Changed, r.Unchanged)
	if r.Failed > 0 {
		s += fmt.Sprintf(", %d failed", r.Failed)
	}
	return s
}

// RemoveServerAccounts applies the removal action setting (keep, suspend or
// delete) to every account of server id, as when its users leave the
// bridge's scope: `connect bridge servers remove` calls it before forgetting
// a hub. Unlike a sync run it asks nothing of the source (the hub is being
// disconnected, its token may already be revoked) and trips no safety valve:
// the operator asked for it by name.
func (e *Engine) RemoveServerAccounts(ctx context.Context, id string) (RemovalResult, error) {
	settings, err := LoadSettings(ctx, e.cfg.Records)
	if err != nil {
		return RemovalResult{}, err
	}
	res := RemovalResult{Action: settings.RemovalAction}
	now := e.now()
	q := local.AccountQuery{Server: id, Limit: local.MaxBatch}
	var errs []string
	for {
		accts, next, err := e.cfg.Target.ListAccounts(ctx, q)
		if err != nil {
			return res, fmt.Errorf("local directory: %w", err)
		}
		var puts []local.Put
		for _, a := range accts {
			switch {
			case settings.RemovalAction == RemovalKeep, a.IsDeleted(),
				settings.RemovalAction == RemovalSuspend && a.Suspended:
				res.Unchanged++
			case settings.RemovalAction == RemovalDelete:
				puts = append(puts, local.Put{Account: local.Account{ID: a.ID, Deleted: now}, Fields: local.FieldDeleted})
			default:
				puts = append(puts, local.Put{Account: local.Account{ID: a.ID, Suspended: true, SuspendedBy: local.SuspendedByConnect}, Fields: local.FieldSuspended})
			}
		}
		if len(puts) > 0 {
			rs, err := e.cfg.Target.PutAccounts(ctx, puts)
			if err != nil {
				return res, fmt.Errorf("local directory: %w", err)
			}
			for _, r := range rs {
				if r.Err != nil {
					res.Failed++
					errs = append(errs, r.Err.Error())
					continue
				}
				res.Changed++
			}
		}
		if next == "" {
			break
		}
		q.After = next
	}
	act := ActSuspend
	if settings.RemovalAction == RemovalDelete {
		act = ActDelete
	}
	if res.Changed > 0 {
		e.m.items.WithLabelValues(id, "remove-server", string(act), "applied").Add(float64(res.Changed))
	}
	e.log.Info("server removed: removal action applied", "server", id, "summary", res.String())
	if len(errs) > 0 {
		return res, fmt.Errorf("%d account(s) not changed: %s", len(errs), strings.Join(errs, "; "))
	}
	return res, nil
}
