package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/state"
)

// TestSweep checks expired sessions, replay ids and locks leave memory even when
// nobody reads them again.
func TestSweep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{Clock: func() time.Time { return now }})
	ctx := context.Background()
	for i := range 1000 {
		if err := s.PutSession(ctx, state.Session{ID: fmt.Sprint("s", i), Hub: "h", Subject: fmt.Sprint("u", i%10)}, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Seen(ctx, "h", fmt.Sprint("m", i), now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Acquire(ctx, "h", "users", "o", time.Second); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * sweepEvery)
	if _, err := s.Ready(ctx, "h"); err != nil { // any call sweeps
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs["h"]
	if len(s.sessions) != 0 || len(h.replay) != 0 || len(h.subject) != 0 || len(h.locks) != 0 {
		t.Fatalf("after expiry: %d sessions, %d replay ids, %d subjects, %d locks remain",
			len(s.sessions), len(h.replay), len(h.subject), len(h.locks))
	}
	if h.fences["users"].token == 0 {
		t.Fatal("the sweep dropped a fence: a stale lease would pass again")
	}
}

func BenchmarkApplyPage(b *testing.B) {
	s := New(Config{})
	ctx := context.Background()
	const page = 100
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		batch := state.Batch{Kind: state.KindUser}
		for j := range page {
			id := fmt.Sprintf("u%d-%d", i, j)
			batch.Put = append(batch.Put, state.Link{HubID: id, LocalID: "L" + id, Hash: "0123456789abcdef"})
			batch.Get = append(batch.Get, fmt.Sprintf("u%d-%d", i+1, j))
		}
		if _, err := s.Apply(ctx, "hub", state.Fence{}, batch); err != nil {
			b.Fatal(err)
		}
	}
}
