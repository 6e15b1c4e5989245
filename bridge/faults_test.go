package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
)

// assertConverged checks the local directory holds exactly one live account
// per hub user and nothing else of this server.
func assertConverged(t *testing.T, e *env, hubIDs []string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range hubIDs {
		want[id] = true
	}
	byHub := map[string]int{}
	for _, a := range e.accounts() {
		if a.Server != e.srv.ID {
			continue
		}
		byHub[a.HubUserID]++
		if byHub[a.HubUserID] > 1 {
			t.Fatalf("duplicate account for hub user %s", a.HubUserID)
		}
		if want[a.HubUserID] && (a.IsDeleted() || a.Suspended) {
			t.Fatalf("hub user %s is served but its account is %+v", a.HubUserID, a)
		}
	}
	for id := range want {
		if byHub[id] != 1 {
			t.Fatalf("hub user %s has %d accounts", id, byHub[id])
		}
	}
}

func liveIDs(us []scim.User) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

// noDestructive fails when any account of hubIDs was suspended or deleted.
func noDestructive(t *testing.T, e *env, hubIDs []string) {
	t.Helper()
	for _, id := range hubIDs {
		a, err := e.dir.AccountByHubID(e.ctx, e.srv.ID, id)
		if errors.Is(err, local.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.Suspended || a.IsDeleted() {
			t.Fatalf("account of %s removed from an incomplete listing: %+v", id, a)
		}
	}
}

// TestListingFaults: the hub answering 500, timing out, or returning a short,
// empty or replayed page at page k of a full reconcile. Each time: the run stops
// before any removal, the plan is held with the reason, no account is
// duplicated, and the next good run converges.
func TestListingFaults(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	const k = 3
	tests := []struct {
		name  string
		fault func(p *hubtest.Proxy) hubtest.Fault
	}{
		{"500 at page k", func(*hubtest.Proxy) hubtest.Fault {
			return func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n >= k {
					hubtest.Status(w, http.StatusInternalServerError)
					return true
				}
				return false
			}
		}},
		{"timeout at page k", func(*hubtest.Proxy) hubtest.Fault {
			return func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n < k {
					return false
				}
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return true
			}
		}},
		{"short page k", func(p *hubtest.Proxy) hubtest.Fault {
			return p.RewritePage(k, func(m, _ map[string]any) {
				res := m["Resources"].([]any)
				m["Resources"] = res[:len(res)-7]
			})
		}},
		{"empty page k", func(p *hubtest.Proxy) hubtest.Fault {
			return p.RewritePage(k, func(m, _ map[string]any) {
				m["Resources"] = []any{}
				delete(m, "nextCursor")
			})
		}},
		{"page k replays page k-1", func(p *hubtest.Proxy) hubtest.Fault {
			return p.RewritePage(k, func(m, prev map[string]any) { m["Resources"] = prev["Resources"] })
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := hubtest.NewProxy(t, h)
			e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader, pageSize: 40, clientTimeout: 800 * time.Millisecond,
				settings: map[string]string{"removal-action": "delete"}})
			before := h.CreateUsers(t, fmt.Sprintf("f%d-old-", i), 100)
			e.full() // lists every user of the shared hub
			after := h.CreateUsers(t, fmt.Sprintf("f%d-new-", i), 60)

			p.SetFault(tt.fault(p))
			plan, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
			if !errors.Is(err, bridge.ErrIncomplete) {
				t.Fatalf("err = %v, want ErrIncomplete", err)
			}
			if !plan.Held() || len(plan.Reasons) == 0 || !strings.Contains(plan.Reasons[0], "incomplete") {
				t.Fatalf("plan not held:\n%s", planText(plan))
			}
			if plan.Counts[bridge.ActDelete]+plan.Counts[bridge.ActSuspend] != 0 {
				t.Fatalf("destructive items from an incomplete listing:\n%s", planText(plan))
			}
			noDestructive(t, e, liveIDs(before))
			stored, err := e.eng.Plans(e.ctx, e.srv.ID)
			if err != nil || len(stored) != 1 || !stored[0].Held() {
				t.Fatalf("stored plans %+v %v", stored, err)
			}
			if got := gauge(t, e, "connect_bridge_sync_held_plans"); got != 1 {
				t.Fatalf("held gauge %v", got)
			}

			p.SetFault(nil)
			plan = e.full()
			if plan.Held() || plan.Counts[bridge.ActDelete] != 0 {
				t.Fatalf("good run:\n%s", planText(plan))
			}
			all := append(liveIDs(before), liveIDs(after)...)
			noDestructive(t, e, all)
			for _, id := range all {
				e.account(id)
			}
			byHub := map[string]int{}
			for _, a := range e.accounts() {
				byHub[a.HubUserID]++
				if byHub[a.HubUserID] > 1 {
					t.Fatalf("duplicate account for %s", a.HubUserID)
				}
			}
			if got := gauge(t, e, "connect_bridge_sync_held_plans"); got != 0 {
				t.Fatalf("held gauge after a good run %v", got)
			}
		})
	}
}

// gauge reads a metric of the engine (summed over labels).
func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestEmptyListing: a source listing nothing while accounts come from it holds
// the plan; nothing is removed; the next good run converges.
func TestEmptyListing(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	p := hubtest.NewProxy(t, h)
	e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader, settings: map[string]string{"removal-action": "delete"}})
	users := h.CreateUsers(t, "empty", 20)
	e.users()
	p.SetFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		hubtest.WriteJSON(w, map[string]any{"schemas": []string{scim.SchemaListResponse}, "totalResults": 0, "itemsPerPage": 0, "Resources": []any{}})
		return true
	})
	plan, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Held() || !strings.Contains(strings.Join(plan.Reasons, ";"), "listed nothing") {
		t.Fatalf("not held:\n%s", planText(plan))
	}
	noDestructive(t, e, liveIDs(users))
	p.SetFault(nil)
	plan = e.full()
	if plan.Held() || plan.Total() != 0 {
		t.Fatalf("good run:\n%s", planText(plan))
	}
	assertConverged(t, e, liveIDs(users))
}

// TestDeletionThreshold: more destructive changes than the count threshold hold
// the plan; approving applies it, rejecting drops it.
func TestDeletionThreshold(t *testing.T) {
	e := newEnv(t, envOpts{settings: map[string]string{"delete-threshold-count": "5"}})
	users := e.hub.CreateUsers(t, "thr", 30)
	e.users()
	for _, u := range users[:8] {
		e.hub.DeleteUser(t, u.ID)
	}
	plan := e.users()
	if !plan.Held() || !strings.Contains(strings.Join(plan.Reasons, ";"), "threshold of 5") {
		t.Fatalf("not held:\n%s", planText(plan))
	}
	noDestructive(t, e, liveIDs(users))
	if gauge(t, e, "connect_bridge_sync_valve_trips_total") != 1 {
		t.Fatal("valve trip not counted")
	}
	// A following increment without destructive changes keeps the held plan.
	e.hub.CreateUser(t, hubtest.User("thr-new"))
	e.users()
	stored, _ := e.eng.Plans(e.ctx, e.srv.ID)
	if len(stored) != 1 || stored[0].ID != plan.ID || !stored[0].Held() {
		t.Fatalf("held plan replaced: %+v", stored)
	}
	// Approving a plan id that is not the stored one is refused.
	if _, err := e.eng.DecidePlan(e.ctx, e.srv.ID, bridge.TaskUsers, "not-it", true); err == nil {
		t.Fatal("approved a wrong plan id")
	}
	if _, err := e.eng.DecidePlan(e.ctx, e.srv.ID, bridge.TaskUsers, plan.ID, true); err != nil {
		t.Fatal(err)
	}
	applied, err := e.eng.ApplyApproved(e.ctx, e.srv.ID, bridge.TaskUsers)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Status != "applied" {
		t.Fatalf("status %s", applied.Status)
	}
	for _, u := range users[:8] {
		if !e.account(u.ID).IsDeleted() {
			t.Fatalf("approved deletion not applied to %s", u.ID)
		}
	}
	noDestructive(t, e, liveIDs(users[8:]))

	// Rejecting drops the held plan.
	for _, u := range users[8:16] {
		e.hub.DeleteUser(t, u.ID)
	}
	plan = e.users()
	if !plan.Held() {
		t.Fatalf("second batch not held:\n%s", planText(plan))
	}
	if _, err := e.eng.DecidePlan(e.ctx, e.srv.ID, bridge.TaskUsers, plan.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.ApplyApproved(e.ctx, e.srv.ID, bridge.TaskUsers); !errors.Is(err, bridge.ErrNoPlan) {
		t.Fatalf("apply after reject: %v", err)
	}
	e.users()
	noDestructive(t, e, liveIDs(users[8:16]))
	// The daily full reconcile plans them again (as absent users), and holds.
	plan = e.full()
	if !plan.Held() {
		t.Fatalf("full reconcile:\n%s", planText(plan))
	}
}

// TestShrunkListing: a consistent listing that lost more than the percent
// threshold of the known accounts holds the plan.
func TestShrunkListing(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	p := hubtest.NewProxy(t, h)
	e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader, settings: map[string]string{
		"delete-threshold-min": "3", "delete-threshold-percent": "20", "removal-action": "delete"}})
	users := h.CreateUsers(t, "shrink", 30)
	e.users()
	// A consistent listing (one page) that misses 10 users.
	p.SetFault(p.RewritePage(1, func(m, _ map[string]any) {
		res := m["Resources"].([]any)
		m["Resources"] = res[10:]
		m["totalResults"] = len(res) - 10
		m["itemsPerPage"] = len(res) - 10
	}))
	plan, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Held() || !strings.Contains(strings.Join(plan.Reasons, ";"), "shrank") {
		t.Fatalf("not held:\n%s", planText(plan))
	}
	noDestructive(t, e, liveIDs(users))
	p.SetFault(nil)
	if plan = e.full(); plan.Held() || plan.Total() != 0 {
		t.Fatalf("good run:\n%s", planText(plan))
	}
}

// TestChangesWhilePaging: users inserted and deleted on the hub while a full
// reconcile pages, with cursor paging and with index paging (where deletions
// shift the pages). No account of a user still on the hub is removed, none is
// duplicated, and the next runs converge.
func TestChangesWhilePaging(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	for i, paging := range []string{"cursor", "index"} {
		t.Run(paging, func(t *testing.T) {
			p := hubtest.NewProxy(t, h)
			if paging == "index" {
				p.HideCursors()
			}
			e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader, pageSize: 20,
				settings: map[string]string{"removal-action": "delete"}})
			users := h.CreateUsers(t, fmt.Sprintf("move%d-", i), 100)
			e.full()
			var once sync.Once
			var added []scim.User
			gone := map[string]bool{}
			p.SetFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 3 {
					once.Do(func() {
						// Delete users already listed (shifting index pages) and
						// ones not yet listed; create new ones.
						for _, u := range users[:10] {
							h.DeleteUser(t, u.ID)
							gone[u.ID] = true
						}
						for _, u := range users[90:95] {
							h.DeleteUser(t, u.ID)
							gone[u.ID] = true
						}
						added = h.CreateUsers(t, fmt.Sprintf("move%d-add-", i), 10)
					})
				}
				return false
			})
			plan, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			p.SetFault(nil)
			var live []string
			for _, u := range users {
				if !gone[u.ID] {
					live = append(live, u.ID)
				}
			}
			noDestructive(t, e, live)
			for _, it := range plan.Items {
				if it.Destructive && it.Done && !gone[it.HubID] {
					t.Fatalf("removed %s, which the hub still serves:\n%s", it.HubID, planText(plan))
				}
			}
			// Converge: increments and a full reconcile.
			e.users()
			e.full()
			for id := range gone {
				if a := e.account(id); !a.IsDeleted() {
					t.Fatalf("deleted hub user %s still live: %+v", id, a)
				}
			}
			all := append(live, liveIDs(added)...)
			for _, id := range all {
				if a := e.account(id); a.IsDeleted() || a.Suspended {
					t.Fatalf("%+v", a)
				}
			}
		})
	}
}

// redisProc is a private redis-server (never the shared one on 6379).
type redisProc struct {
	addr string
	cmd  *exec.Cmd
	t    testing.TB
}

func startRedis(t testing.TB, addr string) *redisProc {
	t.Helper()
	bin := testenv.Binary(t, "redis-server")
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &redisProc{addr: addr, cmd: cmd, t: t}
	t.Cleanup(r.kill9)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the server with SIGKILL (idempotent).
func (r *redisProc) kill9() {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_ = r.cmd.Wait()
}

func openRedisState(t testing.TB, addr string) *redisstate.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstate.Open(ctx, "redis://"+addr+"/0?dial_timeout=500ms&read_timeout=1s&write_timeout=1s&max_retries=1", redisstate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRedisKilled: Redis is killed (-9) in the middle of a full reconcile and
// restarted empty. The run fails; the next one rebuilds the map from the local
// directory: no duplicate, no removal, every link back.
func TestRedisKilled(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	addr := hubtest.FreeAddr(t)
	rp := startRedis(t, addr)
	st := openRedisState(t, addr)
	p := hubtest.NewProxy(t, h)
	e := newEnv(t, envOpts{hub: h, scimURL: p.SCIM, token: h.Reader, state: st, pageSize: 40,
		settings: map[string]string{"removal-action": "delete"}})
	users := h.CreateUsers(t, "redis", 200)
	var killed atomic.Bool
	p.SetFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 3 && !killed.Swap(true) {
			rp.kill9()
		}
		return false
	})
	_, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{})
	if err == nil || !killed.Load() {
		t.Fatalf("run with Redis killed: err %v", err)
	}
	partial := e.connectCount()
	if partial == 0 || partial >= 200 {
		t.Fatalf("%d accounts after the failed run", partial)
	}
	p.SetFault(nil)

	// While Redis is down every run fails fast, writing nothing.
	if _, err := e.eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{}); err == nil {
		t.Fatal("a run without Redis succeeded")
	}
	if gauge(t, e, "connect_bridge_state_errors_total") == 0 {
		t.Fatal("state errors not counted")
	}

	startRedis(t, addr) // empty
	plan := e.users()
	if plan.Mode != "full" || plan.Counts[bridge.ActDelete]+plan.Counts[bridge.ActSuspend] != 0 {
		t.Fatalf("after the restart:\n%s", planText(plan))
	}
	if plan.Counts[bridge.ActCreate] != int(200-partial) {
		t.Fatalf("created %d, want %d", plan.Counts[bridge.ActCreate], 200-partial)
	}
	assertConverged(t, e, liveIDs(users))
	n, err := st.CountLinks(e.ctx, e.srv.ID, state.KindUser)
	if err != nil || n != 200 {
		t.Fatalf("links %d %v", n, err)
	}
}

// TestRedisRestartedEmpty: after a complete sync, Redis comes back empty; the
// next run is a full reconcile that creates and removes nothing.
func TestRedisRestartedEmpty(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	addr := hubtest.FreeAddr(t)
	rp := startRedis(t, addr)
	st := openRedisState(t, addr)
	e := newEnv(t, envOpts{hub: h, state: st, settings: map[string]string{"removal-action": "delete"}})
	users := h.CreateUsers(t, "empty-redis", 120)
	e.users()
	if p := e.users(); p.Mode != "changes" {
		t.Fatalf("second run mode %s", p.Mode)
	}
	rp.kill9()
	startRedis(t, addr)
	plan := e.users()
	if plan.Mode != "full" || plan.Total() != 0 {
		t.Fatalf("after an empty restart:\n%s", planText(plan))
	}
	assertConverged(t, e, liveIDs(users))
	if p := e.users(); p.Mode != "changes" {
		t.Fatalf("increments did not resume: %s", p.Mode)
	}
}

// countingTarget flags PutAccounts calls of two engines overlapping.
type countingTarget struct {
	bridge.Target
	mine, other *atomic.Int64
	overlap     *atomic.Bool
}

func (c countingTarget) PutAccounts(ctx context.Context, puts []local.Put) ([]local.Result, error) {
	c.mine.Add(1)
	defer c.mine.Add(-1)
	if c.other.Load() > 0 {
		c.overlap.Store(true)
	}
	time.Sleep(2 * time.Millisecond) // widen the window
	return c.Target.PutAccounts(ctx, puts)
}

// TestTwoEngines: two bridges on one Redis and one local database run each task
// once at a time, and end where one bridge would.
func TestTwoEngines(t *testing.T) {
	addr := testenv.RedisAddr(t)
	h := hubtest.Start(t, hubtest.Options{})
	st, err := redisstate.Open(context.Background(), "redis://"+addr+"/0", redisstate.Config{Prefix: testenv.Name(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, envOpts{hub: h, state: st, pageSize: 20})
	defer func() { _ = st.Wipe(context.Background(), e.srv.ID) }()
	users := h.CreateUsers(t, "two", 150)
	var inA, inB atomic.Int64
	var overlap atomic.Bool
	mk := func(mine, other *atomic.Int64) *bridge.Engine {
		eng, err := bridge.New(bridge.Config{Target: countingTarget{e.dir, mine, other, &overlap}, Records: e.dir, State: st, PageSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	engines := []*bridge.Engine{mk(&inA, &inB), mk(&inB, &inA)}
	var ok, busy atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		for _, eng := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := eng.RunTask(e.ctx, e.srv.ID, bridge.TaskUsers, bridge.RunOptions{Full: i%2 == 0})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, bridge.ErrBusy):
					busy.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		if i == 2 {
			h.CreateUser(t, hubtest.User("two-late"))
		}
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("both engines wrote at once")
	}
	if ok.Load() == 0 || busy.Load() == 0 {
		t.Fatalf("ok %d busy %d: the lock was never contended", ok.Load(), busy.Load())
	}
	e.users()
	ids := liveIDs(users)
	late, err := e.dir.CountAccounts(e.ctx, local.AccountQuery{Server: e.srv.ID})
	if err != nil || late != 151 {
		t.Fatalf("%d accounts, want 151 (%v)", late, err)
	}
	assertConverged(t, e, append(ids, lateID(t, e)))
}

func lateID(t *testing.T, e *env) string {
	t.Helper()
	for _, a := range e.accounts() {
		if a.HubUserID != "" {
			if u, err := e.dir.AccountByUsername(e.ctx, a.Username); err == nil && strings.Contains(u.Email, "two-late") {
				return a.HubUserID
			}
		}
	}
	t.Fatal("late user not synced")
	return ""
}
