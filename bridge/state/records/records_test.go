package records_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local/postgres"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/bridge/state/records"
	"github.com/connectsso/connect/bridge/state/statetest"
	"github.com/connectsso/connect/internal/testenv"
)

func openSQLite(tb testing.TB, path string, clock func() time.Time) *sqlite.Dir {
	tb.Helper()
	d, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{Clock: clock})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// TestConformanceSQLite runs the state suite over a memory state and a SQLite
// records database, on a manual clock both follow.
func TestConformanceSQLite(t *testing.T) {
	statetest.RunHarness(t, func(tb testing.TB) statetest.Harness {
		c := statetest.NewClock(time.Now().Truncate(time.Millisecond))
		db := openSQLite(tb, filepath.Join(tb.TempDir(), "bridge.db"), c.Now)
		s := records.New(memory.New(memory.Config{Clock: c.Now}), db, records.Config{Clock: c.Now})
		tb.Cleanup(func() { s.Close() })
		return statetest.Harness{State: s, Advance: c.Advance, Now: c.Now}
	})
}

// TestConformanceSQLiteRealTime runs it on the wall clock, as a bridge runs.
func TestConformanceSQLiteRealTime(t *testing.T) {
	statetest.Run(t, func(tb testing.TB) state.State {
		s := records.New(memory.New(memory.Config{}), openSQLite(tb, filepath.Join(tb.TempDir(), "bridge.db"), nil), records.Config{})
		tb.Cleanup(func() { s.Close() })
		return s
	})
}

// TestConformancePostgres runs the suite over a PostgreSQL records database.
func TestConformancePostgres(t *testing.T) {
	statetest.RunHarness(t, func(tb testing.TB) statetest.Harness {
		c := statetest.NewClock(time.Now().Truncate(time.Millisecond))
		db, err := postgres.Open(context.Background(), testenv.PostgresSchema(tb), postgres.Options{Clock: c.Now})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		s := records.New(memory.New(memory.Config{Clock: c.Now}), db, records.Config{Clock: c.Now})
		tb.Cleanup(func() { s.Close() })
		return statetest.Harness{State: s, Advance: c.Advance, Now: c.Now}
	})
}

// TestTwoProcesses: two states on one SQLite file, each with its own memory
// (two bridge processes of one site), share locks and plans and nothing else.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bridge.db")
	serve := records.New(memory.New(memory.Config{}), openSQLite(t, path, nil), records.Config{})
	cli := records.New(memory.New(memory.Config{}), openSQLite(t, path, nil), records.Config{})
	const hub = "hub-1"

	lease, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Acquire(ctx, hub, "users", "cli", time.Minute); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("the second process took a held lock: %v", err)
	}
	if holder, _, err := cli.LockHolder(ctx, hub, "users"); err != nil || holder != lease {
		t.Fatalf("LockHolder from the other process = %+v, %v; want %+v", holder, err, lease)
	}
	held := state.Plan{ID: "p1", Task: "users", Status: state.PlanHeld, Reason: "2 deletions over 1", At: time.Now(), Data: []byte(`{}`)}
	if err := serve.SavePlan(ctx, hub, lease.Fence(), held); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.Apply(ctx, hub, lease.Fence(), state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "u1", LocalID: "1"}}}); err != nil {
		t.Fatal(err)
	}
	plans, err := cli.Plans(ctx, hub)
	if err != nil || len(plans) != 1 || plans[0].ID != "p1" || plans[0].Status != state.PlanHeld {
		t.Fatalf("the other process sees plans %+v, %v", plans, err)
	}
	if err := cli.SetPlanStatus(ctx, hub, "users", "p1", state.PlanApproved, time.Now()); err != nil {
		t.Fatal(err)
	}
	if p, err := serve.GetPlan(ctx, hub, "users"); err != nil || p.Status != state.PlanApproved {
		t.Fatalf("the serving process sees %+v, %v; want the plan approved", p, err)
	}
	// Links stay private to each process (a fresh process rebuilds them with a
	// full reconcile).
	if n, err := cli.CountLinks(ctx, hub, state.KindUser); err != nil || n != 0 {
		t.Fatalf("links leaked across processes: %d, %v", n, err)
	}
	if err := serve.Release(ctx, hub, lease); err != nil {
		t.Fatal(err)
	}
	l2, err := cli.Acquire(ctx, hub, "users", "cli", time.Minute)
	if err != nil || l2.Token <= lease.Token {
		t.Fatalf("Acquire after release = %+v, %v", l2, err)
	}
	// The serving process's old fence is now stale for every fenced write.
	if _, err := serve.Apply(ctx, hub, lease.Fence(), state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "u2", LocalID: "2"}}}); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("stale Apply: %v, want ErrLockLost", err)
	}
	if err := serve.SavePlan(ctx, hub, lease.Fence(), held); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("stale SavePlan: %v, want ErrLockLost", err)
	}
	if err := serve.MarkReady(ctx, hub, state.Fence{}); err != nil {
		t.Fatal(err)
	}
	// The serving process takes the lock back after the other one held it: the
	// links it cached may be stale now, so it forgets them and reconciles in full.
	if err := cli.Release(ctx, hub, l2); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ready, err := serve.Ready(ctx, hub); err != nil || ready {
		t.Fatalf("Ready after another process held the lock = %v, %v; want false", ready, err)
	}
	if n, _ := serve.CountLinks(ctx, hub, state.KindUser); n != 0 {
		t.Fatalf("%d cached links kept after another process held the lock", n)
	}
	// Its own re-acquisition keeps them.
	if err := serve.MarkReady(ctx, hub, state.Fence{}); err != nil {
		t.Fatal(err)
	}
	l3, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Release(ctx, hub, l3); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ready, _ := serve.Ready(ctx, hub); !ready {
		t.Fatal("the holder's own re-acquisition dropped its cache")
	}
}

// failingWipe is an inner state whose Wipe fails while fail is set.
type failingWipe struct {
	state.State
	fail bool
}

func (f *failingWipe) Wipe(ctx context.Context, hub string) error {
	if f.fail {
		return errors.New("wipe failed")
	}
	return f.State.Wipe(ctx, hub)
}

// TestWipeRetried: when forgetting the cache after another process ran the
// task fails, the next Acquire (whose previous owner is now this process)
// still forgets it.
func TestWipeRetried(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bridge.db")
	inner := &failingWipe{State: memory.New(memory.Config{})}
	serve := records.New(inner, openSQLite(t, path, nil), records.Config{})
	cli := records.New(memory.New(memory.Config{}), openSQLite(t, path, nil), records.Config{})
	const hub = "hub-1"
	lease, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serve.Apply(ctx, hub, lease.Fence(), state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "u1", LocalID: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := serve.Release(ctx, hub, lease); err != nil {
		t.Fatal(err)
	}
	cl, err := cli.Acquire(ctx, hub, "users", "cli", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Release(ctx, hub, cl); err != nil {
		t.Fatal(err)
	}
	inner.fail = true
	if _, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute); err == nil {
		t.Fatal("Acquire succeeded although the cache could not be forgotten")
	}
	inner.fail = false
	if _, err := serve.Acquire(ctx, hub, "users", "serve", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := serve.CountLinks(ctx, hub, state.KindUser); err != nil || n != 0 {
		t.Fatalf("links after the retried wipe: %d, %v; want 0", n, err)
	}
}
