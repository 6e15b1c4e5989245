package statetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

func acquire(t *testing.T, s state.State, hub, task, owner string, d time.Duration) state.Lease {
	t.Helper()
	l, err := s.Acquire(ctxFor(t), hub, task, owner, d)
	if err != nil {
		t.Fatalf("Acquire(%s, %s, %s): %v", hub, task, owner, err)
	}
	if l.Task != task || l.Owner != owner || l.Token <= 0 {
		t.Fatalf("Acquire returned %+v", l)
	}
	return l
}

func testLock(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if _, _, err := s.LockHolder(ctx, hubA, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("LockHolder of a free lock: %v, want ErrNotFound", err)
	}
	l1 := acquire(t, s, hubA, "users", "owner-1", long)
	holder, left, err := s.LockHolder(ctx, hubA, "users")
	if err != nil || holder != l1 || left <= 0 || left > long {
		t.Fatalf("LockHolder = %+v, %v, %v; want %+v with a TTL in (0, %v]", holder, left, err, l1, long)
	}
	// Another owner is refused.
	if l, err := s.Acquire(ctx, hubA, "users", "owner-2", long); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second owner Acquire = %+v, %v; want ErrLocked", l, err)
	}
	// Another task of the same hub is independent.
	other := acquire(t, s, hubA, "collections", "owner-2", long)
	// The same owner again (a retried Acquire) gets the same token.
	again := acquire(t, s, hubA, "users", "owner-1", long)
	if again != l1 {
		t.Fatalf("re-Acquire by the holder = %+v, want %+v", again, l1)
	}
	if err := s.CheckFence(ctx, hubA, l1.Fence()); err != nil {
		t.Fatalf("CheckFence of the holder: %v", err)
	}
	if err := s.Renew(ctx, hubA, l1, long); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	// A lease with the right token but another owner, or the right owner but another
	// token, is not the holder.
	for _, bad := range []state.Lease{
		{Task: "users", Owner: "owner-2", Token: l1.Token},
		{Task: "users", Owner: "owner-1", Token: l1.Token - 1},
	} {
		if err := s.Renew(ctx, hubA, bad, long); !errors.Is(err, state.ErrLockLost) {
			t.Fatalf("Renew(%+v) = %v, want ErrLockLost", bad, err)
		}
	}
	// Release, twice (the second is a retry), then the lock is free.
	for range 2 {
		if err := s.Release(ctx, hubA, l1); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if _, _, err := s.LockHolder(ctx, hubA, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("LockHolder after Release: %v, want ErrNotFound", err)
	}
	l2 := acquire(t, s, hubA, "users", "owner-2", long)
	if l2.Token <= l1.Token {
		t.Fatalf("token after release %d, want > %d", l2.Token, l1.Token)
	}
	// The first lease is now stale everywhere.
	if err := s.CheckFence(ctx, hubA, l1.Fence()); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("CheckFence of a superseded lease: %v, want ErrLockLost", err)
	}
	if err := s.Renew(ctx, hubA, l1, long); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("Renew of a superseded lease: %v, want ErrLockLost", err)
	}
	if err := s.Release(ctx, hubA, l1); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("Release of a superseded lease: %v, want ErrLockLost", err)
	}
	if holder, _, err := s.LockHolder(ctx, hubA, "users"); err != nil || holder != l2 {
		t.Fatalf("a stale Release freed the lock: holder %+v, %v", holder, err)
	}
	if err := s.Release(ctx, hubA, other); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name        string
		task, owner string
		d           time.Duration
	}{
		{"empty task", "", "o", long},
		{"empty owner", "users", "", long},
		{"zero ttl", "users", "o", 0},
		{"negative ttl", "users", "o", -time.Second},
	} {
		if _, err := s.Acquire(ctx, hubA, tt.task, tt.owner, tt.d); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Acquire %s: %v, want ErrInvalid", tt.name, err)
		}
	}
	if err := s.Renew(ctx, hubA, l2, 0); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("Renew with ttl 0: %v, want ErrInvalid", err)
	}
	if err := s.CheckFence(ctx, hubA, state.Fence{}); err != nil {
		t.Errorf("CheckFence of the zero fence: %v", err)
	}
	if err := s.CheckFence(ctx, hubA, state.Fence{Task: "never-locked", Token: 1}); !errors.Is(err, state.ErrLockLost) {
		t.Errorf("CheckFence of a task never locked: %v, want ErrLockLost", err)
	}
}

func testLockExpiry(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	l1 := acquire(t, s, hubA, "users", "owner-1", ttl)
	if _, err := s.Acquire(ctx, hubA, "users", "owner-2", ttl); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("Acquire before expiry: %v, want ErrLocked", err)
	}
	h.wait(lapse)
	// Lapsed but nobody took it: the holder's lease is still the newest.
	if err := s.CheckFence(ctx, hubA, l1.Fence()); err != nil {
		t.Fatalf("CheckFence after a lapse without a contender: %v", err)
	}
	if _, _, err := s.LockHolder(ctx, hubA, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("LockHolder of a lapsed lock: %v, want ErrNotFound", err)
	}
	// Renew re-establishes it.
	if err := s.Renew(ctx, hubA, l1, ttl); err != nil {
		t.Fatalf("Renew after a lapse without a contender: %v", err)
	}
	if _, err := s.Acquire(ctx, hubA, "users", "owner-2", ttl); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("Acquire after Renew: %v, want ErrLocked", err)
	}
	h.wait(lapse)
	// Now another owner takes it, with a newer token.
	l2 := acquire(t, s, hubA, "users", "owner-2", long)
	if l2.Token <= l1.Token {
		t.Fatalf("token after expiry %d, want > %d", l2.Token, l1.Token)
	}
	if err := s.Renew(ctx, hubA, l1, ttl); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("Renew by the expired holder: %v, want ErrLockLost", err)
	}
	if err := s.CheckFence(ctx, hubA, l1.Fence()); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("CheckFence by the expired holder: %v, want ErrLockLost", err)
	}
	if err := s.CheckFence(ctx, hubA, l2.Fence()); err != nil {
		t.Fatalf("CheckFence by the new holder: %v", err)
	}
	// Renew with a short TTL then a long one: the later TTL wins.
	if err := s.Renew(ctx, hubA, l2, ttl); err != nil {
		t.Fatal(err)
	}
	if err := s.Renew(ctx, hubA, l2, long); err != nil {
		t.Fatal(err)
	}
	h.wait(lapse)
	if holder, _, err := s.LockHolder(ctx, hubA, "users"); err != nil || holder != l2 {
		t.Fatalf("holder after a long Renew = %+v, %v; want %+v", holder, err, l2)
	}
}

// testLockRace starts many owners at once: exactly one gets the lock.
func testLockRace(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	const owners = 16
	for round := range 3 {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			won    []state.Lease
			locked int
		)
		start := make(chan struct{})
		for i := range owners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := s.Acquire(ctx, hubA, "users", fmt.Sprintf("owner-%d-%d", round, i), long)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case errors.Is(err, state.ErrLocked):
					locked++
				default:
					t.Errorf("Acquire: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(won) != 1 || locked != owners-1 {
			t.Fatalf("round %d: %d winners, %d refused; want 1 and %d", round, len(won), locked, owners-1)
		}
		if err := s.Release(ctx, hubA, won[0]); err != nil {
			t.Fatal(err)
		}
	}
}

// testFencedWrites checks that every fenced write is refused once a newer lease
// exists, and that a refused write changes nothing.
func testFencedWrites(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	old := acquire(t, s, hubA, "users", "owner-1", ttl)
	plan := state.Plan{ID: "p1", Task: "users", Status: state.PlanApplied, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Data: []byte("v1")}
	writes := []struct {
		name  string
		write func(f state.Fence) error
	}{
		{"Apply", func(f state.Fence) error {
			_, err := s.Apply(ctx, hubA, f, state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "a", LocalID: "L" + fmt.Sprint(f.Token)}}})
			return err
		}},
		{"SetCursor", func(f state.Fence) error { return s.SetCursor(ctx, hubA, f, "users.changes", fmt.Sprint(f.Token)) }},
		{"SavePlan", func(f state.Fence) error {
			p := plan
			p.Reason = fmt.Sprint(f.Token)
			return s.SavePlan(ctx, hubA, f, p)
		}},
		{"MarkReady", func(f state.Fence) error { return s.MarkReady(ctx, hubA, f) }},
	}
	for _, w := range writes {
		if err := w.write(old.Fence()); err != nil {
			t.Fatalf("%s with the current fence: %v", w.name, err)
		}
	}
	if err := s.Wipe(ctx, hubA); err != nil {
		t.Fatal(err)
	}
	h.wait(lapse)
	cur := acquire(t, s, hubA, "users", "owner-2", long)
	for _, w := range writes {
		if err := w.write(old.Fence()); !errors.Is(err, state.ErrLockLost) {
			t.Fatalf("%s with a stale fence: %v, want ErrLockLost", w.name, err)
		}
	}
	// Nothing was written by the refused writes (Wipe emptied everything before).
	if got := get(t, s, hubA, state.KindUser, "a"); len(got) != 0 {
		t.Fatalf("stale Apply wrote %v", got)
	}
	if _, err := s.Cursor(ctx, hubA, "users.changes"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("stale SetCursor wrote: %v", err)
	}
	if _, err := s.GetPlan(ctx, hubA, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("stale SavePlan wrote: %v", err)
	}
	if ok, err := s.Ready(ctx, hubA); err != nil || ok {
		t.Fatalf("stale MarkReady wrote: %v, %v", ok, err)
	}
	// A fence of another task does not guard this one's writes: it is checked
	// against its own task only.
	coll := acquire(t, s, hubA, "collections", "owner-1", long)
	for _, w := range writes {
		if err := w.write(cur.Fence()); err != nil {
			t.Fatalf("%s with the current fence: %v", w.name, err)
		}
		if err := w.write(coll.Fence()); err != nil {
			t.Fatalf("%s with the current fence of another task: %v", w.name, err)
		}
		if err := w.write(state.Fence{}); err != nil {
			t.Fatalf("%s unfenced: %v", w.name, err)
		}
	}
	// A fence for a task that was never locked is stale (a backend that lost its
	// locks must not accept writes from before).
	for _, w := range writes {
		if err := w.write(state.Fence{Task: "cleanup", Token: cur.Token}); !errors.Is(err, state.ErrLockLost) {
			t.Fatalf("%s with a fence of a task never locked: %v, want ErrLockLost", w.name, err)
		}
	}
	// A read-only batch is not a write: a stale fence does not refuse it.
	if _, err := s.Apply(ctx, hubA, old.Fence(), state.Batch{Kind: state.KindUser, Get: []string{"a"}}); err != nil {
		t.Fatalf("read-only batch with a stale fence: %v", err)
	}
}

// testFenceMonotonic checks tokens strictly increase across many acquisitions
// by alternating owners, across tasks, and across a Wipe.
func testFenceMonotonic(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	var last int64
	for i := range 30 {
		owner := fmt.Sprintf("owner-%d", i%3)
		l := acquire(t, s, hubA, "users", owner, long)
		if l.Token <= last {
			t.Fatalf("acquisition %d: token %d after %d", i, l.Token, last)
		}
		last = l.Token
		if i == 10 {
			if err := s.Wipe(ctx, hubA); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Release(ctx, hubA, l); err != nil {
			t.Fatal(err)
		}
	}
	// Tokens are seeded from the clock: a fresh task starts at or after now in ms,
	// so a backend that lost its counters cannot hand out an old token again.
	fresh := acquire(t, s, hubA, "fresh-task", "o", long)
	if fresh.Token < time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("first token %d is not seeded from the clock", fresh.Token)
	}
}
