package idp

import (
	"container/list"
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Defaults of the throttle on anonymous login starts (Config.StartRate,
// Config.StartBurst): per source address, a token bucket of 60 refilled at
// 20 a second. A person starts a login a few times a minute; a school or
// office behind one NAT address at 8 a.m. stays far below 20 a second.
const (
	DefaultStartRate  = 20.0
	DefaultStartBurst = 60
)

// Bounds of the throttle's memory: at most startTracked addresses (about
// 200 bytes each, 6 MiB in all) in startShards independently locked
// shards; a full shard forgets its least recently seen address.
const (
	startTracked = 1 << 15
	startShards  = 64
)

// startLimiter is an in-process token bucket per source address. It needs
// no store: it protects the process (and the store reads a login start
// costs) from one address, and a replica's share of a flood is what that
// replica sees. An address forgotten for lack of room starts again with a
// full bucket; flooding from enough addresses to push one out is beyond
// what a per-address limit can stop anyway.
type startLimiter struct {
	rate, burst float64
	perShard    int
	seed        maphash.Seed
	shards      [startShards]startShard
}

type startShard struct {
	mu  sync.Mutex
	m   map[string]*list.Element // key → element whose Value is *bucket
	lru list.List                // front: most recently seen
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
	// warned: this address's refusal was logged since its bucket last had
	// a token (a flood logs one line, not one per request).
	warned bool
}

func newStartLimiter(rate float64, burst, tracked int) *startLimiter {
	return &startLimiter{rate: rate, burst: float64(burst), perShard: max(1, tracked/startShards), seed: maphash.MakeSeed()}
}

// take spends one token of key at now. When there is none it returns
// ok=false, how long until there is one, and whether this is the first
// refusal since the bucket last had a token.
func (l *startLimiter) take(key string, now time.Time) (ok bool, retry time.Duration, first bool) {
	sh := &l.shards[maphash.String(l.seed, key)%startShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[string]*list.Element)
	}
	var b *bucket
	if e, found := sh.m[key]; found {
		b = e.Value.(*bucket)
		sh.lru.MoveToFront(e)
		if d := now.Sub(b.last); d > 0 {
			b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
			b.last = now
		}
	} else {
		if sh.lru.Len() >= l.perShard {
			old := sh.lru.Back()
			sh.lru.Remove(old)
			delete(sh.m, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		sh.m[key] = sh.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		b.warned = false
		return true, 0, false
	}
	retry = time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	first = !b.warned
	b.warned = true
	return false, retry, first
}

// len is the number of addresses remembered.
func (l *startLimiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}

// startKey is the throttle's key of a source address: the address itself,
// or for IPv6 its /64, which one subscriber usually holds whole.
func startKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

// hasSessionCookie reports whether the request carries a session cookie
// (valid or not).
func (p *IdP) hasSessionCookie(r *http.Request) bool {
	c, err := r.Cookie(p.cookies.session)
	return err == nil && c.Value != ""
}

// allowStart spends one of the source address's login-start tokens. With
// none left it answers 429 with Retry-After and a generic page, and
// reports false.
func (p *IdP) allowStart(w http.ResponseWriter, r *http.Request) bool {
	if p.starts == nil {
		return true
	}
	addr := p.clientIP(r)
	ok, retry, first := p.starts.take(startKey(addr), p.now())
	if ok {
		return true
	}
	secs := max(1, int(math.Ceil(retry.Seconds())))
	p.m.refusals.WithLabelValues("rate_limited").Inc()
	log := p.requestLog(r)
	if first {
		log.Warn("login starts throttled", "addr", addr, "rate", p.cfg.StartRate, "burst", p.cfg.StartBurst)
	} else {
		log.Debug("login start throttled", "addr", addr)
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	p.errorPage(w, r, http.StatusTooManyRequests, "Too many requests", "Too many logins were started from your network in a short time. Wait a few seconds, then try again.")
	return false
}
