package statetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/bridge/state"
)

func testCursors(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if _, err := s.Cursor(ctx, hubA, "users.changes"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("unset cursor: %v, want ErrNotFound", err)
	}
	for _, v := range []string{"c1", "c2", "c2", "2026-01-02T03:04:05.123456Z", strings.Repeat("x", 4000)} {
		if err := s.SetCursor(ctx, hubA, state.Fence{}, "users.changes", v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Cursor(ctx, hubA, "users.changes"); err != nil || got != v {
			t.Fatalf("Cursor = %.40q, %v; want %.40q", got, err, v)
		}
	}
	if err := s.SetCursor(ctx, hubA, state.Fence{}, "users.watermark", "w"); err != nil {
		t.Fatal(err)
	}
	// "" deletes, twice (a retry) is fine.
	for range 2 {
		if err := s.SetCursor(ctx, hubA, state.Fence{}, "users.changes", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Cursor(ctx, hubA, "users.changes"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted cursor: %v, want ErrNotFound", err)
	}
	if got, err := s.Cursor(ctx, hubA, "users.watermark"); err != nil || got != "w" {
		t.Fatalf("other cursor = %q, %v", got, err)
	}
	if err := s.SetCursor(ctx, hubA, state.Fence{}, "", "x"); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("SetCursor with an empty name: %v, want ErrInvalid", err)
	}
	if _, err := s.Cursor(ctx, hubA, ""); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Cursor with an empty name: %v, want ErrInvalid", err)
	}
}

func plan(task, id string, status state.PlanStatus) state.Plan {
	return state.Plan{
		ID: id, Task: task, Status: status,
		At:   time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC),
		Data: []byte(`{"deletes":["u1","u2"]}` + "\x00\xff binary"),
	}
}

func testPlans(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if _, err := s.GetPlan(ctx, hubA, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("no plan: %v, want ErrNotFound", err)
	}
	if ps, err := s.Plans(ctx, hubA); err != nil || len(ps) != 0 {
		t.Fatalf("Plans on empty = %v, %v", ps, err)
	}
	held := plan("users", "p1", state.PlanHeld)
	held.Reason = "deletion threshold: 612 deletes > 500"
	for range 2 { // a retry
		if err := s.SavePlan(ctx, hubA, state.Fence{}, held); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetPlan(ctx, hubA, "users")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(held, got, timeEqual); diff != "" {
		t.Fatalf("GetPlan (-want +got):\n%s", diff)
	}
	// A newer plan replaces the old one of the same task; other tasks keep theirs.
	coll := plan("collections", "p2", state.PlanApplied)
	coll.Data = nil
	next := plan("users", "p3", state.PlanApplied)
	for _, p := range []state.Plan{coll, next} {
		if err := s.SavePlan(ctx, hubA, state.Fence{}, p); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := s.Plans(ctx, hubA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]state.Plan{coll, next}, ps, timeEqual, emptyBytes); diff != "" {
		t.Fatalf("Plans, ordered by task (-want +got):\n%s", diff)
	}
	for _, bad := range []state.Plan{
		{Task: "users", Status: state.PlanHeld},
		{ID: "x", Status: state.PlanHeld},
		{ID: "x", Task: "users"},
		{ID: "x", Task: "users", Status: "maybe"},
	} {
		if err := s.SavePlan(ctx, hubA, state.Fence{}, bad); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("SavePlan(%+v): %v, want ErrInvalid", bad, err)
		}
	}
	if got, err := s.GetPlan(ctx, hubA, "users"); err != nil || got.ID != "p3" {
		t.Fatalf("after refused saves: %+v, %v", got, err)
	}
}

var (
	timeEqual  = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
	emptyBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })
)

func testPlanStatus(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := s.SetPlanStatus(ctx, hubA, "users", "p1", state.PlanApproved, at); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("SetPlanStatus without a plan: %v, want ErrNotFound", err)
	}
	held := plan("users", "p1", state.PlanHeld)
	held.Reason = "empty listing"
	if err := s.SavePlan(ctx, hubA, state.Fence{}, held); err != nil {
		t.Fatal(err)
	}
	// The engine replaced the plan the operator saw: approving the old id fails.
	if err := s.SetPlanStatus(ctx, hubA, "users", "p0", state.PlanApproved, at); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("SetPlanStatus of another plan id: %v, want ErrConflict", err)
	}
	for range 2 { // a retry
		if err := s.SetPlanStatus(ctx, hubA, "users", "p1", state.PlanApproved, at); err != nil {
			t.Fatalf("SetPlanStatus: %v", err)
		}
	}
	got, err := s.GetPlan(ctx, hubA, "users")
	if err != nil {
		t.Fatal(err)
	}
	want := held
	want.Status, want.At = state.PlanApproved, at
	if diff := cmp.Diff(want, got, timeEqual); diff != "" {
		t.Fatalf("after approve (-want +got):\n%s", diff)
	}
	if err := s.SetPlanStatus(ctx, hubA, "users", "p1", "", at); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("SetPlanStatus to \"\": %v, want ErrInvalid", err)
	}
}

func testReadyAndWipe(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if ok, err := s.Ready(ctx, hubA); err != nil || ok {
		t.Fatalf("Ready of a new hub = %v, %v; want false", ok, err)
	}
	for range 2 {
		if err := s.MarkReady(ctx, hubA, state.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Ready(ctx, hubA); err != nil || !ok {
		t.Fatalf("Ready after MarkReady = %v, %v", ok, err)
	}
	// Fill every kind of state, then wipe.
	put(t, s, hubA, state.KindUser, state.Link{HubID: "u1", LocalID: "L1", Hash: "h"})
	put(t, s, hubA, state.KindGroup, state.Link{HubID: "g1", LocalID: "G1", Hash: "h"})
	if err := s.SetCursor(ctx, hubA, state.Fence{}, "users.changes", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePlan(ctx, hubA, state.Fence{}, plan("users", "p", state.PlanHeld)); err != nil {
		t.Fatal(err)
	}
	lease := acquire(t, s, hubA, "users", "owner-1", long)
	if first, err := s.Seen(ctx, hubA, "msg-1", h.now().Add(long)); err != nil || !first {
		t.Fatalf("Seen = %v, %v", first, err)
	}
	for range 2 {
		if err := s.Wipe(ctx, hubA); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Ready(ctx, hubA); err != nil || ok {
		t.Fatalf("Ready after Wipe = %v, %v; want false", ok, err)
	}
	wantLinks(t, s, hubA, state.KindUser)
	wantLinks(t, s, hubA, state.KindGroup)
	if _, err := s.Cursor(ctx, hubA, "users.changes"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("cursor after Wipe: %v", err)
	}
	if ps, err := s.Plans(ctx, hubA); err != nil || len(ps) != 0 {
		t.Fatalf("plans after Wipe: %v, %v", ps, err)
	}
	// The lease and the replay cache survive.
	if err := s.CheckFence(ctx, hubA, lease.Fence()); err != nil {
		t.Fatalf("lease after Wipe: %v", err)
	}
	if holder, _, err := s.LockHolder(ctx, hubA, "users"); err != nil || holder != lease {
		t.Fatalf("holder after Wipe = %+v, %v", holder, err)
	}
	if first, err := s.Seen(ctx, hubA, "msg-1", h.now().Add(long)); err != nil || first {
		t.Fatalf("Seen after Wipe = %v, %v; want a replay", first, err)
	}
	// Wiping a hub with no state is fine.
	if err := s.Wipe(ctx, "hub-never-seen"); err != nil {
		t.Fatal(err)
	}
}

func testSessions(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	if _, err := s.GetSession(ctx, "nope"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("GetSession of an absent id: %v, want ErrNotFound", err)
	}
	sess := state.Session{ID: "sid-1", Hub: hubA, Subject: "user-42", Data: []byte("\x00opaque\xff")}
	before := h.now()
	for range 2 {
		if err := s.PutSession(ctx, sess, long); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSession(ctx, "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sess.ID || got.Hub != sess.Hub || got.Subject != sess.Subject || !bytes.Equal(got.Data, sess.Data) {
		t.Fatalf("GetSession = %+v, want %+v", got, sess)
	}
	if got.Expires.Before(before.Add(long-time.Minute)) || got.Expires.After(h.now().Add(long+time.Minute)) {
		t.Fatalf("Expires = %v, want about now+%v", got.Expires, long)
	}
	// Replace it (new data), and a session without a hub.
	sess.Data = []byte("v2")
	if err := s.PutSession(ctx, sess, long); err != nil {
		t.Fatal(err)
	}
	local := state.Session{ID: "sid-local", Data: []byte("local login")}
	if err := s.PutSession(ctx, local, long); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSession(ctx, "sid-1"); err != nil || string(got.Data) != "v2" {
		t.Fatalf("replaced session = %+v, %v", got, err)
	}
	if got, err := s.GetSession(ctx, "sid-local"); err != nil || string(got.Data) != "local login" || got.Hub != "" {
		t.Fatalf("session without a hub = %+v, %v", got, err)
	}
	for range 2 {
		if err := s.DeleteSession(ctx, "sid-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetSession(ctx, "sid-1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted session: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "sid-local"); err != nil {
		t.Fatalf("other session after a delete: %v", err)
	}
	for _, bad := range []struct {
		s state.Session
		d time.Duration
	}{
		{state.Session{ID: ""}, long},
		{state.Session{ID: "x\ny"}, long},
		{state.Session{ID: "x"}, 0},
		{state.Session{ID: "x", Hub: "a{b}"}, long},
	} {
		if err := s.PutSession(ctx, bad.s, bad.d); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("PutSession(%+v, %v): %v, want ErrInvalid", bad.s, bad.d, err)
		}
	}
}

func testSessionExpiry(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	short := state.Session{ID: "short", Hub: hubA, Subject: "u1", Data: []byte("s")}
	kept := state.Session{ID: "kept", Hub: hubA, Subject: "u1", Data: []byte("k")}
	if err := s.PutSession(ctx, short, ttl); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, kept, long); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "short"); err != nil {
		t.Fatalf("session before expiry: %v", err)
	}
	h.wait(lapse)
	if _, err := s.GetSession(ctx, "short"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("expired session: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "kept"); err != nil {
		t.Fatalf("unexpired session: %v", err)
	}
	// Putting it again extends it (sliding sessions).
	if err := s.PutSession(ctx, short, ttl); err != nil {
		t.Fatal(err)
	}
	h.wait(ttl / 2)
	if err := s.PutSession(ctx, short, long); err != nil {
		t.Fatal(err)
	}
	h.wait(lapse)
	if _, err := s.GetSession(ctx, "short"); err != nil {
		t.Fatalf("session extended by a second Put: %v", err)
	}
	// An expired session is not counted by single logout.
	gone := state.Session{ID: "gone", Hub: hubA, Subject: "u1"}
	if err := s.PutSession(ctx, gone, ttl); err != nil {
		t.Fatal(err)
	}
	h.wait(lapse)
	if n, err := s.DeleteSessions(ctx, hubA, "u1"); err != nil || n != 2 {
		t.Fatalf("DeleteSessions = %d, %v; want 2", n, err)
	}
}

func testSingleLogout(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	for _, sess := range []state.Session{
		{ID: "a1", Hub: hubA, Subject: "alice"},
		{ID: "a2", Hub: hubA, Subject: "alice"},
		{ID: "b1", Hub: hubA, Subject: "bob"},
		{ID: "x1", Hub: hubB, Subject: "alice"}, // same subject, other hub
		{ID: "moved", Hub: hubA, Subject: "alice"},
	} {
		if err := s.PutSession(ctx, sess, long); err != nil {
			t.Fatal(err)
		}
	}
	// A session id reused for another subject is not logged out with the first.
	if err := s.PutSession(ctx, state.Session{ID: "moved", Hub: hubA, Subject: "bob"}, long); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteSessions(ctx, hubA, "alice")
	if err != nil || n != 1 {
		t.Fatalf("DeleteSessions(alice) = %d, %v; want 1", n, err)
	}
	for id, alive := range map[string]bool{"a1": false, "a2": false, "b1": true, "x1": true, "moved": true} {
		_, err := s.GetSession(ctx, id)
		if alive && err != nil || !alive && !errors.Is(err, state.ErrNotFound) {
			t.Errorf("session %s after logout: %v (alive: %v)", id, err, alive)
		}
	}
	if n, err := s.DeleteSessions(ctx, hubA, "alice"); err != nil || n != 0 {
		t.Fatalf("second DeleteSessions = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteSessions(ctx, hubA, "bob"); err != nil || n != 2 {
		t.Fatalf("DeleteSessions(bob) = %d, %v; want 2", n, err)
	}
	if _, err := s.DeleteSessions(ctx, hubA, ""); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("DeleteSessions with no subject: %v, want ErrInvalid", err)
	}
}

func testReplay(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	exp := h.now().Add(long)
	if first, err := s.Seen(ctx, hubA, "_id1", exp); err != nil || !first {
		t.Fatalf("first Seen = %v, %v; want true", first, err)
	}
	for range 3 {
		if first, err := s.Seen(ctx, hubA, "_id1", exp); err != nil || first {
			t.Fatalf("replayed Seen = %v, %v; want false", first, err)
		}
	}
	if first, err := s.Seen(ctx, hubA, "_id2", exp); err != nil || !first {
		t.Fatalf("Seen of another id = %v, %v; want true", first, err)
	}
	for _, bad := range []struct {
		id  string
		exp time.Time
	}{
		{"", exp},
		{"x\ty", exp},
		{"_past", h.now().Add(-time.Hour)},
	} {
		if _, err := s.Seen(ctx, hubA, bad.id, bad.exp); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Seen(%q, %v): %v, want ErrInvalid", bad.id, bad.exp, err)
		}
	}
}

func testReplayExpiry(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	now := h.now()
	if first, err := s.Seen(ctx, hubA, "_short", now.Add(ttl)); err != nil || !first {
		t.Fatalf("Seen = %v, %v", first, err)
	}
	if first, err := s.Seen(ctx, hubA, "_short", now.Add(ttl)); err != nil || first {
		t.Fatalf("replay before expiry = %v, %v; want false", first, err)
	}
	h.wait(lapse)
	// After the assertion expired, its id may be forgotten: the SP refuses the
	// expired assertion on its own, so a "first" here is harmless and expected.
	if first, err := s.Seen(ctx, hubA, "_short", now.Add(lapse+ttl)); err != nil || !first {
		t.Fatalf("Seen after expiry = %v, %v; want true", first, err)
	}
}

// testReplayRace sends one message id from many goroutines at once: exactly one
// is first.
func testReplayRace(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	exp := h.now().Add(long)
	const racers = 32
	for round := range 5 {
		id := fmt.Sprintf("_race-%d", round)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first int
		)
		start := make(chan struct{})
		for range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := s.Seen(ctx, hubA, id, exp)
				if err != nil {
					t.Errorf("Seen: %v", err)
					return
				}
				if ok {
					mu.Lock()
					first++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if first != 1 {
			t.Fatalf("round %d: %d goroutines saw %s first, want exactly 1", round, first, id)
		}
	}
}

// testHubIsolation writes every kind of state for hub A and checks hub B sees none
// of it, and that wiping B leaves A intact.
func testHubIsolation(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	put(t, s, hubA, state.KindUser, state.Link{HubID: "u1", LocalID: "L1", Hash: "h"})
	put(t, s, hubA, state.KindGroup, state.Link{HubID: "g1", LocalID: "G1"})
	if err := s.SetCursor(ctx, hubA, state.Fence{}, "users.changes", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePlan(ctx, hubA, state.Fence{}, plan("users", "p", state.PlanHeld)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx, hubA, state.Fence{}); err != nil {
		t.Fatal(err)
	}
	la := acquire(t, s, hubA, "users", "owner-1", long)
	exp := h.now().Add(long)
	if first, err := s.Seen(ctx, hubA, "_m", exp); err != nil || !first {
		t.Fatal(first, err)
	}

	if got := get(t, s, hubB, state.KindUser, "u1"); len(got) != 0 {
		t.Fatalf("hub B sees hub A's link: %v", got)
	}
	wantLinks(t, s, hubB, state.KindUser)
	wantLinks(t, s, hubB, state.KindGroup)
	if _, err := s.LinkByLocal(ctx, hubB, state.KindUser, "L1"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("hub B reverse lookup: %v", err)
	}
	if _, err := s.Cursor(ctx, hubB, "users.changes"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("hub B cursor: %v", err)
	}
	if ps, err := s.Plans(ctx, hubB); err != nil || len(ps) != 0 {
		t.Fatalf("hub B plans: %v, %v", ps, err)
	}
	if ok, err := s.Ready(ctx, hubB); err != nil || ok {
		t.Fatalf("hub B ready: %v, %v", ok, err)
	}
	if err := s.CheckFence(ctx, hubB, la.Fence()); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("hub A's fence on hub B: %v, want ErrLockLost", err)
	}
	lb := acquire(t, s, hubB, "users", "owner-2", long) // not locked by A's lease
	if first, err := s.Seen(ctx, hubB, "_m", exp); err != nil || !first {
		t.Fatalf("hub B Seen of hub A's message id = %v, %v; want true", first, err)
	}
	// The same local id may be linked on both hubs (separate maps).
	put(t, s, hubB, state.KindUser, state.Link{HubID: "u9", LocalID: "L1"})

	if err := s.Wipe(ctx, hubB); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, s, hubA, state.KindUser, state.Link{HubID: "u1", LocalID: "L1", Hash: "h"})
	wantLinks(t, s, hubA, state.KindGroup, state.Link{HubID: "g1", LocalID: "G1"})
	if ok, err := s.Ready(ctx, hubA); err != nil || !ok {
		t.Fatalf("hub A ready after wiping B: %v, %v", ok, err)
	}
	if _, err := s.Cursor(ctx, hubA, "users.changes"); err != nil {
		t.Fatalf("hub A cursor after wiping B: %v", err)
	}
	if _, err := s.GetPlan(ctx, hubA, "users"); err != nil {
		t.Fatalf("hub A plan after wiping B: %v", err)
	}
	if err := s.Release(ctx, hubB, lb); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFence(ctx, hubA, la.Fence()); err != nil {
		t.Fatalf("hub A lease after B's release: %v", err)
	}
}

func testInvalidNames(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	for _, hub := range []string{"", "a{b", "a}b", "a b", "a\nb", strings.Repeat("h", state.MaxHubLen+1)} {
		calls := map[string]error{}
		_, calls["Apply"] = s.Apply(ctx, hub, state.Fence{}, state.Batch{Kind: state.KindUser, Get: []string{"x"}})
		_, calls["LinkByLocal"] = s.LinkByLocal(ctx, hub, state.KindUser, "x")
		_, _, calls["ScanLinks"] = s.ScanLinks(ctx, hub, state.KindUser, "", 10)
		_, calls["CountLinks"] = s.CountLinks(ctx, hub, state.KindUser)
		_, calls["Cursor"] = s.Cursor(ctx, hub, "c")
		calls["SetCursor"] = s.SetCursor(ctx, hub, state.Fence{}, "c", "v")
		calls["SavePlan"] = s.SavePlan(ctx, hub, state.Fence{}, plan("users", "p", state.PlanHeld))
		_, calls["GetPlan"] = s.GetPlan(ctx, hub, "users")
		_, calls["Plans"] = s.Plans(ctx, hub)
		calls["SetPlanStatus"] = s.SetPlanStatus(ctx, hub, "users", "p", state.PlanApproved, h.now())
		_, calls["Acquire"] = s.Acquire(ctx, hub, "users", "o", long)
		calls["Renew"] = s.Renew(ctx, hub, state.Lease{Task: "users", Owner: "o", Token: 1}, long)
		calls["Release"] = s.Release(ctx, hub, state.Lease{Task: "users", Owner: "o", Token: 1})
		calls["CheckFence"] = s.CheckFence(ctx, hub, state.Fence{Task: "users", Token: 1})
		_, _, calls["LockHolder"] = s.LockHolder(ctx, hub, "users")
		_, calls["Ready"] = s.Ready(ctx, hub)
		calls["MarkReady"] = s.MarkReady(ctx, hub, state.Fence{})
		calls["Wipe"] = s.Wipe(ctx, hub)
		_, calls["DeleteSessions"] = s.DeleteSessions(ctx, hub, "subject")
		_, calls["Seen"] = s.Seen(ctx, hub, "_m", h.now().Add(long))
		for name, err := range calls {
			if !errors.Is(err, state.ErrInvalid) {
				t.Errorf("%s(hub %.20q): %v, want ErrInvalid", name, hub, err)
			}
		}
	}
	// Task, owner and cursor names with control characters.
	if _, err := s.Acquire(ctx, hubA, "users\n", "o", long); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("Acquire with a control character: %v", err)
	}
	if _, err := s.GetPlan(ctx, hubA, ""); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("GetPlan with an empty task: %v", err)
	}
	if _, _, err := s.LockHolder(ctx, hubA, ""); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("LockHolder with an empty task: %v", err)
	}
}

func testPing(t *testing.T, h Harness) {
	if err := h.State.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
