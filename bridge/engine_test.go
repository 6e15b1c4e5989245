package bridge_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
)

// TestPlainSource: a SCIM server without a Changes feed is synced by full
// listings and meta.lastModified increments (de-duplicated); removals wait for
// the periodic full reconcile.
func TestPlainSource(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	p := hubtest.NewProxy(t, h)
	p.HideChanges()
	e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader})
	users := h.CreateUsers(t, "plain", 40)
	if pl := e.users(); pl.Mode != "full" || pl.Counts[bridge.ActCreate] != 40 {
		t.Fatalf("first run:\n%s", planText(pl))
	}
	u := users[5]
	u.Name.GivenName = "Changed"
	h.ReplaceUser(t, u)
	pl := e.users()
	if pl.Mode != "modified" || pl.Counts[bridge.ActUpdate] != 1 || pl.Total() != 1 {
		t.Fatalf("increment:\n%s", planText(pl))
	}
	if e.account(u.ID).GivenName != "Changed" {
		t.Fatal("update not applied")
	}
	// The overlap lists the same user again: skipped, nothing to do.
	if pl := e.users(); pl.Mode != "modified" || pl.Total() != 0 {
		t.Fatalf("repeat increment:\n%s", planText(pl))
	}
	// A deletion is invisible to increments; the daily full reconcile finds it.
	h.DeleteUser(t, users[6].ID)
	e.users()
	if a := e.account(users[6].ID); a.Suspended {
		t.Fatal("suspended by an increment")
	}
	e.clk.advance(25 * time.Hour)
	pl = e.users()
	if pl.Mode != "full" || pl.Counts[bridge.ActSuspend] != 1 {
		t.Fatalf("daily reconcile:\n%s", planText(pl))
	}
	if a := e.account(users[6].ID); !a.Suspended {
		t.Fatalf("%+v", a)
	}
}

// countingState counts State calls.
type countingState struct {
	bridge.State
	apply, other atomic.Int64
}

func (c *countingState) Apply(ctx context.Context, hub string, f state.Fence, b state.Batch) (map[string]state.Link, error) {
	c.apply.Add(1)
	return c.State.Apply(ctx, hub, f, b)
}
func (c *countingState) Cursor(ctx context.Context, hub, name string) (string, error) {
	c.other.Add(1)
	return c.State.Cursor(ctx, hub, name)
}
func (c *countingState) Ready(ctx context.Context, hub string) (bool, error) {
	c.other.Add(1)
	return c.State.Ready(ctx, hub)
}
func (c *countingState) GetPlan(ctx context.Context, hub, task string) (state.Plan, error) {
	c.other.Add(1)
	return c.State.GetPlan(ctx, hub, task)
}
func (c *countingState) SavePlan(ctx context.Context, hub string, f state.Fence, p state.Plan) error {
	c.other.Add(1)
	return c.State.SavePlan(ctx, hub, f, p)
}
func (c *countingState) MarkReady(ctx context.Context, hub string, f state.Fence) error {
	c.other.Add(1)
	return c.State.MarkReady(ctx, hub, f)
}
func (c *countingState) Acquire(ctx context.Context, hub, task, owner string, ttl time.Duration) (state.Lease, error) {
	c.other.Add(1)
	return c.State.Acquire(ctx, hub, task, owner, ttl)
}
func (c *countingState) Release(ctx context.Context, hub string, l state.Lease) error {
	c.other.Add(1)
	return c.State.Release(ctx, hub, l)
}
func (c *countingState) LinkByLocal(ctx context.Context, hub string, k state.Kind, id string) (state.Link, error) {
	c.other.Add(1)
	return c.State.LinkByLocal(ctx, hub, k, id)
}

// TestStateRoundTrips: a full reconcile makes one state round trip per page,
// plus a fixed handful per run.
func TestStateRoundTrips(t *testing.T) {
	cs := &countingState{State: memory.New(memory.Config{})}
	e := newEnv(t, envOpts{state: cs, pageSize: 25})
	e.hub.CreateUsers(t, "rt", 250) // 10 pages
	for _, full := range []bool{true, true} {
		cs.apply.Store(0)
		cs.other.Store(0)
		e.sync(bridge.TaskUsers, bridge.RunOptions{Full: full})
		pages := int64(10)
		t.Logf("pages %d: Apply %d, other calls %d", pages, cs.apply.Load(), cs.other.Load())
		if cs.apply.Load() > pages+1 {
			t.Fatalf("%d Apply calls for %d pages", cs.apply.Load(), pages)
		}
		if cs.other.Load() > 8 {
			t.Fatalf("%d other state calls per run", cs.other.Load())
		}
	}
}

// TestMetrics: the engine's series on the injected registerer, with server,
// task and action labels and never a user id.
func TestMetrics(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "met", 5)
	e.users()
	e.hub.DeleteUser(t, users[0].ID)
	e.users()
	e.groups()
	if got := series(t, e, "connect_bridge_sync_items_total", map[string]string{
		"server": e.srv.ID, "task": "users", "action": "create", "result": "applied"}); got != 5 {
		t.Fatalf("items created %v", got)
	}
	if got := gauge(t, e, "connect_bridge_sync_runs_total"); got != 3 {
		t.Fatalf("runs %v", got)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, u := range users {
					if strings.Contains(l.GetValue(), u.ID) {
						t.Fatalf("%s carries a user id in %s", mf.GetName(), l.GetName())
					}
				}
			}
		}
	}
	for _, n := range []string{"connect_bridge_sync_runs_total", "connect_bridge_sync_items_total", "connect_bridge_sync_duration_seconds",
		"connect_bridge_sync_last_success_timestamp_seconds", "connect_bridge_sync_held_plans", "connect_bridge_sync_lag_seconds",
		"connect_bridge_source_requests_total", "connect_bridge_source_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
}

// series returns the value of one series of a metric, found by its labels.
func series(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestDryRun plans without writing anything: no account, no link, no plan.
func TestDryRun(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "dry", 7)
	e.hub.CreateGroup(t, "G", "course", users[0].ID)
	p := e.sync(bridge.TaskUsers, bridge.RunOptions{DryRun: true})
	if p.Status != bridge.StatusDryRun || p.Counts[bridge.ActCreate] != 7 {
		t.Fatalf("%s", planText(p))
	}
	gp := e.sync(bridge.TaskCollections, bridge.RunOptions{DryRun: true})
	if gp.Counts[bridge.ActGroupPut] != 1 {
		t.Fatalf("%s", planText(gp))
	}
	if n := e.connectCount(); n != 0 {
		t.Fatalf("dry run wrote %d accounts", n)
	}
	if _, ok := e.link(users[0].ID); ok {
		t.Fatal("dry run wrote a link")
	}
	if ps, err := e.eng.Plans(e.ctx, e.srv.ID); err != nil || len(ps) != 0 {
		t.Fatalf("dry run stored plans: %v %v", ps, err)
	}
	if ready, _ := e.st.Ready(e.ctx, e.srv.ID); ready {
		t.Fatal("dry run marked the map ready")
	}
}

// TestBusy: a task whose lock another owner holds is not run.
func TestBusy(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.st.Acquire(e.ctx, e.srv.ID, bridge.TaskUsers, "someone-else", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{}); !errors.Is(err, bridge.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	// Other tasks are free.
	e.groups()
}

// TestWhy explains connect and manual accounts.
func TestWhy(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "why", 2)
	e.users()
	e.hub.SetActive(t, users[1].ID, false)
	e.users()
	rule := func(username string) string {
		t.Helper()
		_, rs, err := e.eng.Why(e.ctx, username)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range rs {
			b.WriteString(r.Rule + ": " + r.Detail + "\n")
		}
		return b.String()
	}
	out := rule(e.account(users[1].ID).Username)
	for _, want := range []string{"connect account of server hub", "generated", "linked to hub user", "active=false", "suspended by Connect", "last plan"} {
		if !strings.Contains(out, want) {
			t.Errorf("why lacks %q:\n%s", want, out)
		}
	}
	m := e.manual(local.Account{Username: "siteadmin", Privileged: true})
	out = rule(m.Username)
	if !strings.Contains(out, "manual account") || !strings.Contains(out, "migrate-local-accounts is off") {
		t.Errorf("why manual:\n%s", out)
	}
}
