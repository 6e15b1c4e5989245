package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

type ctxKey int

const (
	tokenKey ctxKey = iota
	requestIDKey
	callerKey
)

// Caller is filled by the handler with who made a request, for an access log
// written around it (which sees the request before authentication).
type Caller struct {
	// Token is the name of the token the request authenticated with ("" when
	// it did not authenticate). A name, never the secret.
	Token string
}

// WithCaller returns ctx in which the handler records the request's caller in c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey, c)
}

// TokenFrom returns the authenticated token of a request handled by this
// package, or false outside one.
func TokenFrom(ctx context.Context) (store.Token, bool) {
	t, ok := ctx.Value(tokenKey).(store.Token)
	return t, ok
}

// WithToken returns ctx carrying t, as the handler does after authentication.
func WithToken(ctx context.Context, t store.Token) context.Context {
	if c, ok := ctx.Value(callerKey).(*Caller); ok && c != nil {
		c.Token = t.Name
	}
	return context.WithValue(ctx, tokenKey, t)
}

// RequestID returns the request id of a request handled by this package (the
// X-Request-Id header, or one generated), or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestIDFrom accepts a client-supplied X-Request-Id only when it is short and
// printable, so it cannot forge log lines.
func requestIDFrom(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 {
		return newRequestID()
	}
	for _, c := range id {
		if c <= ' ' || c > '~' {
			return newRequestID()
		}
	}
	return id
}

var (
	errUnauthorized = &scim.Error{Status: http.StatusUnauthorized, Detail: "a valid bearer token is required"}
	errReadOnly     = &scim.Error{Status: http.StatusForbidden, Detail: "this token is read-only"}
)

// authenticate resolves the bearer token. The store looks tokens up by the
// SHA-256 of the secret, so no secret is ever compared byte by byte here; a
// token seen within Config.TokenCacheTTL is taken from the cache.
func (h *handler) authenticate(r *http.Request) (store.Token, error) {
	auth := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return store.Token{}, errUnauthorized
	}
	secret = strings.TrimSpace(secret)
	if secret == "" || len(secret) > 512 {
		return store.Token{}, errUnauthorized
	}
	sum := sha256.Sum256([]byte(secret))
	now := h.cfg.Clock()
	if t, ok := h.tokens.get(sum, now); ok {
		h.touch(r.Context(), t)
		return t, nil
	}
	t, err := h.cfg.Store.TokenByHash(r.Context(), sum[:])
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, errUnauthorized
	}
	if err != nil {
		return store.Token{}, err
	}
	if t.Revoked {
		return store.Token{}, errUnauthorized
	}
	h.tokens.put(sum, t, now)
	h.touch(r.Context(), t)
	return t, nil
}

// maxCachedTokens bounds the token cache; a hub has a handful of tokens.
const maxCachedTokens = 1024

// tokenCache remembers authenticated tokens for ttl, keyed by the SHA-256 of
// the secret, so that a request costs no token query while its token was seen
// less than ttl ago. That is also the bound on revocation: a token revoked in
// the store (by `connect hub tokens revoke` in another process, say) is still
// accepted for at most ttl after it was last looked up. Failed lookups are
// never cached, so a new token works at once. A ttl ≤ 0 disables the cache.
type tokenCache struct {
	ttl time.Duration
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	tok   store.Token
	until time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, m: map[[sha256.Size]byte]cachedToken{}}
}

// get returns the token cached under sum unless its entry expired by now.
func (c *tokenCache) get(sum [sha256.Size]byte, now time.Time) (store.Token, bool) {
	if c.ttl <= 0 {
		return store.Token{}, false
	}
	c.mu.RLock()
	e, ok := c.m[sum]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return store.Token{}, false
	}
	return e.tok, true
}

// put caches t, looked up at now, until now+ttl.
func (c *tokenCache) put(sum [sha256.Size]byte, t store.Token, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedTokens {
			clear(c.m)
		}
	}
	c.m[sum] = cachedToken{tok: t, until: now.Add(c.ttl)}
}

// touch records token use at most once a minute per token.
func (h *handler) touch(ctx context.Context, t store.Token) {
	now := h.cfg.Clock()
	h.touchMu.Lock()
	last, seen := h.touched[t.ID]
	if seen && now.Sub(last) < time.Minute {
		h.touchMu.Unlock()
		return
	}
	h.touched[t.ID] = now
	h.touchMu.Unlock()
	if err := h.cfg.Store.TouchToken(ctx, t.ID, now); err != nil {
		h.cfg.Logger.Warn("record token use", "token_id", t.ID, "err", err)
	}
}

type toucher struct {
	touchMu sync.Mutex
	touched map[string]time.Time
}

// isWrite reports whether the request changes the directory. POST /.search is a
// read (RFC 7644 §3.4.3).
func isWrite(r *http.Request, route string) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	case http.MethodPost:
		return !strings.HasSuffix(route, "/.search")
	}
	return true
}

func contextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}
