package statetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

// testAttempts: a counter admits limit distinct ids, counts a repeated id
// once, and forgets ids or the whole counter on demand.
func testAttempts(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	attempt := func(name, id string, wantN int, wantOK bool) {
		t.Helper()
		n, ok, err := s.Attempt(ctx, name, id, 3, long)
		if err != nil || n != wantN || ok != wantOK {
			t.Fatalf("Attempt(%s, %s) = %d, %v, %v; want %d, %v", name, id, n, ok, err, wantN, wantOK)
		}
	}
	attempt("acct:a", "1", 1, true)
	attempt("acct:a", "1", 1, true) // a resent call
	attempt("acct:a", "2", 2, true)
	attempt("acct:b", "1", 1, true) // counters are independent
	attempt("acct:a", "3", 3, true)
	attempt("acct:a", "4", 3, false)
	attempt("acct:a", "3", 3, true) // a resent admitted call stays admitted
	attempt("acct:a", "4", 3, false)

	if err := s.ForgetAttempts(ctx, "acct:a", "2", "absent"); err != nil {
		t.Fatal(err)
	}
	attempt("acct:a", "5", 3, true)
	attempt("acct:a", "6", 3, false)
	if err := s.ForgetAttempts(ctx, "acct:a"); err != nil {
		t.Fatal(err)
	}
	attempt("acct:a", "6", 1, true)
	attempt("acct:b", "2", 2, true)
	if err := s.ForgetAttempts(ctx, "never-counted"); err != nil {
		t.Fatalf("forget an absent counter: %v", err)
	}

	for _, bad := range []struct {
		name, id string
		limit    int
		window   time.Duration
	}{
		{"", "1", 3, long},
		{"n", "", 3, long},
		{"n\x00", "1", 3, long},
		{"n", "1", 0, long},
		{"n", "1", state.MaxAttemptLimit + 1, long},
		{"n", "1", 3, 0},
	} {
		if _, _, err := s.Attempt(ctx, bad.name, bad.id, bad.limit, bad.window); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Attempt(%q, %q, %d, %v): %v, want ErrInvalid", bad.name, bad.id, bad.limit, bad.window, err)
		}
	}
	if err := s.ForgetAttempts(ctx, ""); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("ForgetAttempts(\"\"): %v, want ErrInvalid", err)
	}
}

// testAttemptsExpiry: a counter lasts window from its first attempt (a fixed
// window: later attempts do not extend it).
func testAttemptsExpiry(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	// On real time a stalled machine can let the window pass between the
	// attempts that must fall inside it: such a round proves nothing and is
	// run again under a new name.
	for round := 0; ; round++ {
		name := fmt.Sprintf("acct:x-%d", round)
		start := time.Now()
		if _, ok, err := s.Attempt(ctx, name, "1", 2, ttl); err != nil || !ok {
			t.Fatalf("Attempt = %v, %v", ok, err)
		}
		h.wait(ttl / 2)
		_, ok2, err2 := s.Attempt(ctx, name, "2", 2, ttl)
		_, ok3, err3 := s.Attempt(ctx, name, "3", 2, ttl)
		if h.Advance == nil && time.Since(start) >= ttl*9/10 && round < 5 {
			continue
		}
		if err2 != nil || !ok2 {
			t.Fatalf("Attempt = %v, %v", ok2, err2)
		}
		if err3 != nil || ok3 {
			t.Fatalf("Attempt over the limit = %v, %v; want not admitted", ok3, err3)
		}
		h.wait(lapse - ttl/2)
		if n, ok, err := s.Attempt(ctx, name, "3", 2, ttl); err != nil || !ok || n != 1 {
			t.Fatalf("Attempt after the window = %d, %v, %v; want 1, true", n, ok, err)
		}
		return
	}
}

// testAttemptsRace: many callers at once (replicas sharing the backend) are
// admitted exactly limit times.
func testAttemptsRace(t *testing.T, h Harness) {
	s := h.State
	ctx := ctxFor(t)
	const racers, limit = 40, 7
	for round := range 3 {
		name := fmt.Sprintf("acct:race-%d", round)
		var (
			wg       sync.WaitGroup
			admitted atomic.Int32
		)
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, ok, err := s.Attempt(ctx, name, fmt.Sprint(i), limit, long)
				if err != nil {
					t.Errorf("Attempt: %v", err)
				}
				if ok {
					admitted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := admitted.Load(); got != limit {
			t.Fatalf("round %d: %d of %d racers admitted, want exactly %d", round, got, racers, limit)
		}
	}
}
