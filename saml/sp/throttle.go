package sp

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// throttle counts failed local logins per key (an account or a source
// address) in process: limit failures within window block the key until the
// window ends. Each replica counts on its own; the hub's own login (the usual
// path) has its shared limits.
type throttle struct {
	limit  int
	window time.Duration

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

// maxThrottleKeys bounds the map; beyond it old entries are swept.
const maxThrottleKeys = 50_000

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, m: map[string]*failures{}}
}

// blocked reports whether key reached the limit within the current window.
func (t *throttle) blocked(key string, now time.Time) bool {
	if t.limit <= 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	return f != nil && now.Sub(f.start) < t.window && f.n >= t.limit
}

// fail counts one failure of key.
func (t *throttle) fail(key string, now time.Time) {
	if t.limit <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= maxThrottleKeys {
		for k, f := range t.m {
			if now.Sub(f.start) >= t.window {
				delete(t.m, k)
			}
		}
		if len(t.m) >= maxThrottleKeys {
			clear(t.m)
		}
	}
	f := t.m[key]
	if f == nil || now.Sub(f.start) >= t.window {
		f = &failures{start: now}
		t.m[key] = f
	}
	f.n++
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// clientIP is the default Config.ClientIP: the host of RemoteAddr.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func accountKey(username string) string { return "user:" + strings.ToLower(username) }
