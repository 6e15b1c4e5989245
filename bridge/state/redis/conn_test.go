package redis_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/internal/testenv"
)

// proxy is a TCP proxy in front of Redis that can lose replies: when armed, the
// next reply Redis sends is not forwarded and both connections are closed — the
// command ran, the client sees EOF, and go-redis resends it on a new connection.
// It can also go down (refuse and cut every connection) and come back.
type proxy struct {
	target string
	addr   string
	drop   atomic.Int32 // replies still to lose
	drops  atomic.Int32 // replies lost
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func startProxy(tb testing.TB) *proxy {
	tb.Helper()
	p := &proxy{target: testenv.RedisAddr(tb), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	tb.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) handle(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	go func() {
		io.Copy(s, c)
		s.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if v := p.drop.Load(); v > 0 && p.drop.CompareAndSwap(v, v-1) {
				p.drops.Add(1)
				c.Close()
				s.Close()
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				s.Close()
				return
			}
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

// down closes the listener and cuts every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// up listens again on the same address.
func (p *proxy) up(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		tb.Fatal(err)
	}
	p.serve(ln)
}

// loseNextReply arms the proxy to lose the reply to the next command.
func (p *proxy) loseNextReply() { p.drop.Store(1) }

// TestLostReplies runs every write with its reply lost once: Redis ran it,
// go-redis resent it on a new connection, and the outcome must be the one of a
// single run — the same fencing token, "first" for the first use of a message id,
// the same links.
func TestLostReplies(t *testing.T) {
	p := startProxy(t)
	s, _ := newState(t, &goredis.Options{Addr: p.addr, PoolSize: 1, MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	ctx := testenv.Context(t, 30*time.Second)
	const hub = "hub-1"
	warm := func() {
		t.Helper()
		// Load the scripts and settle the pooled connection before arming.
		if _, err := s.Acquire(ctx, hub, "warm", "w", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lossy := func(name string, fn func() error) {
		t.Helper()
		warm()
		before := p.drops.Load()
		p.loseNextReply()
		if err := fn(); err != nil {
			t.Fatalf("%s with a lost reply: %v", name, err)
		}
		if p.drops.Load() != before+1 {
			t.Fatalf("%s: the proxy lost %d replies, want 1 (the test did not test)", name, p.drops.Load()-before)
		}
	}
	// Everything runs once with the current fence to load every script.
	var lease state.Lease
	lossy("Acquire", func() (err error) {
		lease, err = s.Acquire(ctx, hub, "users", "owner-1", time.Minute)
		return err
	})
	holder, _, err := s.LockHolder(ctx, hub, "users")
	if err != nil || holder != lease {
		t.Fatalf("after a resent Acquire: holder %+v, %v; caller got %+v", holder, err, lease)
	}
	lossy("Renew", func() error { return s.Renew(ctx, hub, lease, time.Minute) })

	a := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	b := state.Link{HubID: "b", LocalID: "L2", Hash: "y"}
	lossy("Apply put", func() error {
		_, err := s.Apply(ctx, hub, lease.Fence(), state.Batch{Kind: state.KindUser, Put: []state.Link{a, b}, Cursors: map[string]string{"users.full": "1"}})
		return err
	})
	var got map[string]state.Link
	lossy("Apply swap", func() (err error) {
		got, err = s.Apply(ctx, hub, lease.Fence(), state.Batch{Kind: state.KindUser,
			Put: []state.Link{{HubID: "a", LocalID: "L2"}, {HubID: "b", LocalID: "L1"}}, Get: []string{"a", "b"}})
		return err
	})
	if got["a"].LocalID != "L2" || got["b"].LocalID != "L1" {
		t.Fatalf("swap read back %v", got)
	}
	for local, hubID := range map[string]string{"L1": "b", "L2": "a"} {
		if l, err := s.LinkByLocal(ctx, hub, state.KindUser, local); err != nil || l.HubID != hubID {
			t.Fatalf("reverse of %s = %+v, %v; want %s", local, l, err, hubID)
		}
	}
	lossy("Apply delete", func() error {
		return state.DeleteLinks(ctx, s, hub, lease.Fence(), state.KindUser, []string{"a"})
	})
	if n, err := s.CountLinks(ctx, hub, state.KindUser); err != nil || n != 1 {
		t.Fatalf("CountLinks after a resent delete = %d, %v", n, err)
	}
	lossy("SetCursor", func() error { return s.SetCursor(ctx, hub, lease.Fence(), "users.changes", "c9") })
	lossy("SavePlan", func() error {
		return s.SavePlan(ctx, hub, lease.Fence(), state.Plan{ID: "p1", Task: "users", Status: state.PlanHeld, Reason: "threshold", At: time.Now()})
	})
	lossy("SetPlanStatus", func() error { return s.SetPlanStatus(ctx, hub, "users", "p1", state.PlanApproved, time.Now()) })
	lossy("MarkReady", func() error { return s.MarkReady(ctx, hub, lease.Fence()) })
	lossy("PutSession", func() error {
		return s.PutSession(ctx, state.Session{ID: "sid", Hub: hub, Subject: "alice"}, time.Minute)
	})
	var first bool
	lossy("Seen", func() (err error) {
		first, err = s.Seen(ctx, hub, "_msg", time.Now().Add(time.Minute))
		return err
	})
	if !first {
		t.Fatal("Seen whose reply was lost and resent reported a replay: a legitimate login would be refused")
	}
	if again, err := s.Seen(ctx, hub, "_msg", time.Now().Add(time.Minute)); err != nil || again {
		t.Fatalf("a real replay after a resent Seen = %v, %v; want false", again, err)
	}
	// A resent attempt counts once: with INCR it would count twice, and a
	// user would be locked out after fewer failures than configured.
	var n int
	var admitted bool
	lossy("Attempt", func() (err error) {
		n, admitted, err = s.Attempt(ctx, "acct:lossy", "a1", 2, time.Minute)
		return err
	})
	if n != 1 || !admitted {
		t.Fatalf("resent Attempt = %d, %v; want 1, true", n, admitted)
	}
	if n, admitted, err = s.Attempt(ctx, "acct:lossy", "a2", 2, time.Minute); err != nil || n != 2 || !admitted {
		t.Fatalf("second Attempt = %d, %v, %v; want 2, true", n, admitted, err)
	}
	lossy("ForgetAttempts", func() error { return s.ForgetAttempts(ctx, "acct:lossy", "a2") })
	if n, admitted, err = s.Attempt(ctx, "acct:lossy", "a3", 2, time.Minute); err != nil || n != 2 || !admitted {
		t.Fatalf("Attempt after a resent ForgetAttempts = %d, %v, %v; want 2, true", n, admitted, err)
	}
	lossy("Release", func() error { return s.Release(ctx, hub, lease) })
	if _, _, err := s.LockHolder(ctx, hub, "users"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("lock after a resent Release: %v", err)
	}
	next, err := s.Acquire(ctx, hub, "users", "owner-2", time.Minute)
	if err != nil || next.Token <= lease.Token {
		t.Fatalf("next lease %+v, %v; want a token above %d", next, err, lease.Token)
	}
}

// TestConnectionLoss cuts Redis away: every call fails with ErrUnavailable (not a
// wrong answer such as "not found" or "not ready"), and the state works again
// once Redis is back, with nothing lost.
func TestConnectionLoss(t *testing.T) {
	p := startProxy(t)
	s, _ := newState(t, &goredis.Options{Addr: p.addr, MaxRetries: 1, DialTimeout: 200 * time.Millisecond, DialerRetries: 1, DialerRetryTimeout: time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	ctx := testenv.Context(t, 30*time.Second)
	const hub = "hub-1"
	lease, err := s.Acquire(ctx, hub, "users", "owner-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	link := state.Link{HubID: "a", LocalID: "L1", Hash: "x"}
	if err := state.PutLinks(ctx, s, hub, lease.Fence(), state.KindUser, []state.Link{link}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkReady(ctx, hub, lease.Fence()); err != nil {
		t.Fatal(err)
	}

	p.down()
	calls := map[string]error{}
	_, calls["Apply"] = state.GetLinks(ctx, s, hub, state.KindUser, []string{"a"})
	calls["PutLinks"] = state.PutLinks(ctx, s, hub, lease.Fence(), state.KindUser, []state.Link{{HubID: "b", LocalID: "L2"}})
	_, calls["LinkByLocal"] = s.LinkByLocal(ctx, hub, state.KindUser, "L1")
	_, calls["Ready"] = s.Ready(ctx, hub)
	_, calls["Cursor"] = s.Cursor(ctx, hub, "c")
	calls["CheckFence"] = s.CheckFence(ctx, hub, lease.Fence())
	calls["Renew"] = s.Renew(ctx, hub, lease, time.Minute)
	_, calls["Acquire"] = s.Acquire(ctx, hub, "users", "owner-2", time.Minute)
	_, calls["GetSession"] = s.GetSession(ctx, "sid")
	_, calls["Seen"] = s.Seen(ctx, hub, "_m", time.Now().Add(time.Minute))
	_, _, calls["Attempt"] = s.Attempt(ctx, "acct:x", "1", 3, time.Minute)
	calls["ForgetAttempts"] = s.ForgetAttempts(ctx, "acct:x")
	calls["Ping"] = s.Ping(ctx)
	for name, err := range calls {
		if !errors.Is(err, state.ErrUnavailable) {
			t.Errorf("%s with Redis unreachable: %v, want ErrUnavailable", name, err)
		}
	}

	p.up(t)
	deadline := time.Now().Add(5 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("state did not come back after Redis did")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := state.GetLinks(ctx, s, hub, state.KindUser, []string{"a", "b"}); err != nil || len(got) != 1 || got["a"] != link {
		t.Fatalf("links after reconnect = %v, %v", got, err)
	}
	if ok, err := s.Ready(ctx, hub); err != nil || !ok {
		t.Fatalf("Ready after reconnect = %v, %v", ok, err)
	}
	if err := s.CheckFence(ctx, hub, lease.Fence()); err != nil {
		t.Fatalf("lease after reconnect: %v", err)
	}
}
