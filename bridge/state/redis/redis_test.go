package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/connectsso/connect/bridge/state"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/bridge/state/statetest"
	"github.com/connectsso/connect/internal/testenv"
)

// newClient returns a client on the test Redis, closed when tb ends.
func newClient(tb testing.TB, opts *goredis.Options) *goredis.Client {
	tb.Helper()
	if opts == nil {
		opts = &goredis.Options{}
	}
	if opts.Addr == "" {
		opts.Addr = testenv.RedisAddr(tb)
	}
	c := goredis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// newState returns a State with a key prefix unique to tb and deletes every key
// under that prefix when tb ends (SCAN + DEL: the Redis is shared, never FLUSHALL).
func newState(tb testing.TB, opts *goredis.Options) (*redisstate.State, string) {
	tb.Helper()
	prefix := testenv.Name(tb)
	c := newClient(tb, opts)
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cleanup(tb, prefix) })
	return s, prefix
}

func cleanup(tb testing.TB, prefix string) {
	c := goredis.NewClient(&goredis.Options{Addr: testenv.RedisAddr(tb)})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Errorf("cleanup scan: %v", err)
	}
	for i := 0; i < len(keys); i += 500 {
		if err := c.Del(ctx, keys[i:min(i+500, len(keys))]...).Err(); err != nil {
			tb.Errorf("cleanup del: %v", err)
		}
	}
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(tb testing.TB) state.State {
		s, _ := newState(tb, nil)
		return s
	})
}

// TestKeyLayout checks every key of a hub carries its hash tag (Redis Cluster puts
// them in one slot) and the TTLs Redis holds: locks, replay ids and sessions
// expire on their own; fences and links never do.
func TestKeyLayout(t *testing.T) {
	s, prefix := newState(t, nil)
	ctx := testenv.Context(t, 30*time.Second)
	hub := "hub-1"
	if err := state.PutLinks(ctx, s, hub, state.Fence{}, state.KindUser, []state.Link{{HubID: "u1", LocalID: "L1", Hash: "h"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctx, hub, state.Fence{}, "users.changes", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx, hub, state.Fence{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, hub, "users", "o", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seen(ctx, hub, "_m1", time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, state.Session{ID: "sid", Hub: hub, Subject: "alice"}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	wantTTL := map[string]time.Duration{
		"{hub-1}:link:user":     -1,
		"{hub-1}:rlink:user":    -1,
		"{hub-1}:cursor":        -1,
		"{hub-1}:ready":         -1,
		"{hub-1}:fence:users":   -1,
		"{hub-1}:lock:users":    90 * time.Second,
		"{hub-1}:replay:_m1":    2 * time.Minute,
		"{hub-1}:subject:alice": 3 * time.Minute,
		"session:sid":           3 * time.Minute,
	}
	keys, err := c.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(wantTTL) {
		t.Errorf("keys %v, want %d", keys, len(wantTTL))
	}
	for suffix, want := range wantTTL {
		k := prefix + ":" + suffix
		got, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want < 0 && got != -1*time.Nanosecond && got != -1:
			t.Errorf("%s: PTTL %v, want none", suffix, got)
		case want > 0 && (got <= want-10*time.Second || got > want):
			t.Errorf("%s: PTTL %v, want about %v", suffix, got, want)
		}
		if strings.HasPrefix(suffix, "{") && !strings.HasPrefix(k, prefix+":{hub-1}:") {
			t.Errorf("%s lacks the hub's hash tag", k)
		}
	}
}

// roundTrips counts what go-redis sends: one per command, one per pipeline.
type roundTrips struct{ n int }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.n++
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.n++
		return next(ctx, cmds)
	}
}

// TestRoundTripsPerPage replays a full reconcile of 10,000 users in pages of 100:
// each page commits the previous page's links (with the cursor) and reads the
// next page's in one Batch. It must cost one round trip per page.
func TestRoundTripsPerPage(t *testing.T) {
	s, _ := newState(t, nil)
	ctx := testenv.Context(t, 60*time.Second)
	rt := &roundTrips{}
	s.Client().AddHook(rt)
	lease, err := s.Acquire(ctx, "hub", "users", "o", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Warm the script cache so the count is the steady state (after a Redis restart
	// the first EVALSHA costs one extra EVAL, once).
	if _, err := s.Apply(ctx, "hub", lease.Fence(), state.Batch{Kind: state.KindUser, Put: []state.Link{{HubID: "warm", LocalID: "warm"}}}); err != nil {
		t.Fatal(err)
	}
	const users, page = 10000, 100
	ids := func(p int) []string {
		out := make([]string, 0, page)
		for i := p * page; i < (p+1)*page; i++ {
			out = append(out, fmt.Sprintf("u%06d", i))
		}
		return out
	}
	rt.n = 0
	var pending []state.Link
	pages := users / page
	for p := 0; p <= pages; p++ {
		b := state.Batch{Kind: state.KindUser, Put: pending, Cursors: map[string]string{"users.full": fmt.Sprint(p)}}
		if p < pages {
			b.Get = ids(p)
		}
		got, err := s.Apply(ctx, "hub", lease.Fence(), b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("page %d: fresh ids already linked: %d", p, len(got))
		}
		pending = pending[:0]
		if p < pages {
			for _, id := range b.Get {
				pending = append(pending, state.Link{HubID: id, LocalID: "L" + id, Hash: "h" + id})
			}
		}
	}
	if rt.n != pages+1 {
		t.Fatalf("%d round trips for %d pages (+1 final commit), want %d", rt.n, pages, pages+1)
	}
	t.Logf("full reconcile of %d users in pages of %d: %d Redis round trips", users, page, rt.n)
	// A second reconcile reads every page back with its hashes, still one round trip per page.
	rt.n = 0
	for p := 0; p < pages; p++ {
		got, err := state.GetLinks(ctx, s, "hub", state.KindUser, ids(p))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != page || got[ids(p)[0]].Hash != "h"+ids(p)[0] {
			t.Fatalf("page %d: %d links back", p, len(got))
		}
	}
	if rt.n != pages {
		t.Fatalf("%d round trips to read %d pages", rt.n, pages)
	}
	if n, err := s.CountLinks(ctx, "hub", state.KindUser); err != nil || n != users+1 {
		t.Fatalf("CountLinks = %d, %v", n, err)
	}
}

// TestRestartedEmpty simulates Redis restarting without its data (every key of
// the prefix gone): the engine must see Ready = false, a lease from before must
// be stale for every fenced write, and the next lease's token must still be
// higher than any token handed out before (tokens are seeded from the clock).
func TestRestartedEmpty(t *testing.T) {
	s, prefix := newState(t, nil)
	ctx := testenv.Context(t, 30*time.Second)
	const hub = "hub-1"
	old, err := s.Acquire(ctx, hub, "users", "owner-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.PutLinks(ctx, s, hub, old.Fence(), state.KindUser, []state.Link{{HubID: "u1", LocalID: "L1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx, hub, old.Fence()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Millisecond)
	cleanup(t, prefix) // the restart

	if ok, err := s.Ready(ctx, hub); err != nil || ok {
		t.Fatalf("Ready after the restart = %v, %v; want false (full reconcile)", ok, err)
	}
	if err := s.CheckFence(ctx, hub, old.Fence()); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("CheckFence of a lease from before the restart: %v, want ErrLockLost", err)
	}
	if err := state.PutLinks(ctx, s, hub, old.Fence(), state.KindUser, []state.Link{{HubID: "u2", LocalID: "L2"}}); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("fenced write with a lease from before the restart: %v, want ErrLockLost", err)
	}
	if err := s.Renew(ctx, hub, old, time.Minute); !errors.Is(err, state.ErrLockLost) {
		t.Fatalf("Renew of a lease from before the restart: %v, want ErrLockLost", err)
	}
	if err := s.Release(ctx, hub, old); err != nil {
		t.Fatalf("Release of a lease from before the restart: %v, want nil (nothing is held)", err)
	}
	next, err := s.Acquire(ctx, hub, "users", "owner-2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token <= old.Token {
		t.Fatalf("token after the restart %d, want > %d", next.Token, old.Token)
	}
	if n, err := s.CountLinks(ctx, hub, state.KindUser); err != nil || n != 0 {
		t.Fatalf("links after the restart = %d, %v", n, err)
	}
}

// BenchmarkApplyPage measures one page of a full reconcile: commit 100 links with
// the cursor and read the next 100 (one round trip).
func BenchmarkApplyPage(b *testing.B) {
	s, _ := newState(b, nil)
	ctx := context.Background()
	lease, err := s.Acquire(ctx, "hub", "users", "o", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	const page = 100
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		batch := state.Batch{Kind: state.KindUser, Cursors: map[string]string{"users.full": fmt.Sprint(i)}}
		for j := range page {
			id := fmt.Sprintf("u%d-%d", i, j)
			batch.Put = append(batch.Put, state.Link{HubID: id, LocalID: "L" + id, Hash: "0123456789abcdef0123456789abcdef"})
			batch.Get = append(batch.Get, fmt.Sprintf("u%d-%d", i+1, j))
		}
		if _, err := s.Apply(ctx, "hub", lease.Fence(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/page, "µs/user")
}

func TestOpen(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ctx := testenv.Context(t, 30*time.Second)
	prefix := testenv.Name(t)
	t.Cleanup(func() { cleanup(t, prefix) })
	s, err := redisstate.Open(ctx, "redis://"+addr+"/0", redisstate.Config{Prefix: prefix})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.MarkReady(ctx, "h", state.Fence{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url string
		cfg       redisstate.Config
		want      error
	}{
		{"not a redis URL", "http://" + addr, redisstate.Config{}, state.ErrInvalid},
		{"bad prefix", "redis://" + addr, redisstate.Config{Prefix: "a{b}"}, state.ErrInvalid},
		{"nobody listening", "redis://127.0.0.1:1/0", redisstate.Config{}, state.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			s, err := redisstate.Open(ctx, tt.url, tt.cfg)
			if !errors.Is(err, tt.want) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open(%s) = %v, want %v", tt.url, err, tt.want)
			}
		})
	}
	if _, err := redisstate.New(redisstate.Config{}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("New without a client: %v, want ErrInvalid", err)
	}
}
