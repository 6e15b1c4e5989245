// Package statetest is the conformance suite every bridge/state backend passes:
// a backend's test calls Run (backends on real time) or RunHarness (backends
// whose TTLs follow an injected clock).
//
// It imports bridge/state and go-cmp only; backends bring their own services.
package statetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

// Harness is one backend under test.
type Harness struct {
	State state.State
	// Advance lets d pass on the clock the backend's TTLs follow (a fake clock). Nil
	// means real time: the suite sleeps, with TTLs kept short.
	Advance func(d time.Duration)
	// Now is that clock; nil means time.Now.
	Now func() time.Time
}

// Run runs the suite against fresh states from newState, on real time. Each call
// of newState must return an empty state not shared with any other call (a fresh
// key prefix for a shared Redis); it registers its own cleanup on tb.
func Run(t *testing.T, newState func(tb testing.TB) state.State) {
	RunHarness(t, func(tb testing.TB) Harness { return Harness{State: newState(tb)} })
}

// RunHarness runs the suite against fresh harnesses from newHarness.
func RunHarness(t *testing.T, newHarness func(tb testing.TB) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"Links", testLinks},
		{"LinksRelink", testLinksRelink},
		{"LinksConflict", testLinksConflict},
		{"LinksInvalid", testLinksInvalid},
		{"LinksIdempotent", testLinksIdempotent},
		{"LinksBatchCursors", testLinksBatchCursors},
		{"LinksKinds", testLinksKinds},
		{"LinksConcurrent", testLinksConcurrent},
		{"ScanLinks", testScanLinks},
		{"Cursors", testCursors},
		{"Plans", testPlans},
		{"PlanStatus", testPlanStatus},
		{"Lock", testLock},
		{"LockExpiry", testLockExpiry},
		{"LockRace", testLockRace},
		{"FencedWrites", testFencedWrites},
		{"FenceMonotonic", testFenceMonotonic},
		{"ReadyAndWipe", testReadyAndWipe},
		{"Sessions", testSessions},
		{"SessionExpiry", testSessionExpiry},
		{"SingleLogout", testSingleLogout},
		{"Replay", testReplay},
		{"ReplayExpiry", testReplayExpiry},
		{"ReplayRace", testReplayRace},
		{"Attempts", testAttempts},
		{"AttemptsExpiry", testAttemptsExpiry},
		{"AttemptsRace", testAttemptsRace},
		{"HubIsolation", testHubIsolation},
		{"InvalidNames", testInvalidNames},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newHarness(t))
		})
	}
}

// Clock is a manual clock for backends with an injected clock. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// wait lets d pass for h's TTLs.
func (h Harness) wait(d time.Duration) {
	if h.Advance != nil {
		h.Advance(d)
		return
	}
	time.Sleep(d)
}

func (h Harness) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// ttl is the short TTL the expiry tests use; lapse is a wait that outlasts it.
const (
	ttl   = 200 * time.Millisecond
	lapse = 300 * time.Millisecond
	long  = time.Hour
)

func ctxFor(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
