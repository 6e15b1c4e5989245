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
)

// TokenFrom returns the authenticated token of a request handled by this
// package, or false outside one.
func TokenFrom(ctx context.Context) (store.Token, bool) {
	t, ok := ctx.Value(tokenKey).(store.Token)
	return t, ok
}

// WithToken returns ctx carrying t, as the handler does after authentication.
func WithToken(ctx context.Context, t store.Token) context.Context {
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
// SHA-256 of the secret, so no secret is ever compared byte by byte here.
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
	h.touch(r.Context(), t)
	return t, nil
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
