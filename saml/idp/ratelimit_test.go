package idp

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestStartLimiterBucket(t *testing.T) {
	l := newStartLimiter(20, 60, startTracked)
	now := time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := range 60 {
		if ok, _, _ := l.take("192.0.2.1", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry, first := l.take("192.0.2.1", now)
	if ok || !first || retry != 50*time.Millisecond {
		t.Fatalf("61st: ok=%v first=%v retry=%v, want refused, first, 50ms", ok, first, retry)
	}
	if _, _, first := l.take("192.0.2.1", now); first {
		t.Error("second refusal reported as first")
	}
	if ok, _, _ := l.take("192.0.2.2", now); !ok {
		t.Error("another address refused")
	}
	// One second refills 20.
	now = now.Add(time.Second)
	for i := range 20 {
		if ok, _, _ := l.take("192.0.2.1", now); !ok {
			t.Fatalf("refilled request %d refused", i+1)
		}
	}
	if ok, _, first := l.take("192.0.2.1", now); ok || !first {
		t.Fatalf("after the refill: ok=%v first=%v", ok, first)
	}
	// A clock going back refills nothing and breaks nothing.
	if ok, _, _ := l.take("192.0.2.1", now.Add(-time.Hour)); ok {
		t.Error("a clock step back refilled the bucket")
	}
	// Idle for long: a full bucket, not more.
	now = now.Add(time.Hour)
	n := 0
	for {
		if ok, _, _ := l.take("192.0.2.1", now); !ok {
			break
		}
		n++
	}
	if n != 60 {
		t.Errorf("after an hour idle %d tokens, want the burst 60", n)
	}
}

func TestStartKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":      "2001:db8:1:2::/64",
		"2001:db8:1:3::1":           "2001:db8:1:3::/64",
		"fe80::1%eth0":              "fe80::/64",
		"not an address":            "not an address",
		"[2001:db8::1]:443 garbage": "[2001:db8::1]:443 garbage",
	} {
		if got := startKey(in); got != want {
			t.Errorf("startKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStartLimiterBounded: a flood from ever new addresses keeps at most
// startTracked of them (and their memory), while the address that keeps
// flooding stays remembered and refused.
func TestStartLimiterBounded(t *testing.T) {
	l := newStartLimiter(20, 60, startTracked)
	now := time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC)
	for range 61 {
		l.take("198.51.100.7", now)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 10 * startTracked {
		l.take(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
		if i%100 == 0 {
			if ok, _, _ := l.take("198.51.100.7", now); ok {
				t.Fatalf("the flooding address was forgotten after %d others", i)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.len(); n > startTracked {
		t.Fatalf("%d addresses remembered, bound %d", n, startTracked)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d addresses remembered, heap +%d KiB (%d B each)", l.len(), grown>>10, grown/int64(l.len()))
	if grown > 16<<20 {
		t.Errorf("heap grew %d MiB", grown>>20)
	}
}
