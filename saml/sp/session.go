package sp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Record kinds in the Sessions store: the prefix of StoredSession.ID before
// the token hash.
const (
	kindSession = "s:" // a browser session
	kindLogin   = "r:" // a pending AuthnRequest
	kindLogout  = "l:" // a pending SP-initiated LogoutRequest
)

// tokenLen is the length of a token as the browser holds it: 256 random bits
// in unpadded base64url.
const tokenLen = 43

// newToken returns 256 random bits, base64url without padding.
func newToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenHash is the SHA-256 of a token's text. It hashes without allocating for
// well-formed tokens (the forward-auth hot path).
func tokenHash(tok string) [32]byte {
	var buf [tokenLen]byte
	if len(tok) == tokenLen {
		copy(buf[:], tok)
		return sha256.Sum256(buf[:])
	}
	return sha256.Sum256([]byte(tok))
}

// validToken reports whether tok looks like a token we issued, so junk never
// reaches the store.
func validToken(tok string) bool {
	if len(tok) != tokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func storeID(kind string, h [32]byte) string { return kind + hex.EncodeToString(h[:]) }

// sessionData is a browser session as stored (JSON in StoredSession.Data).
type sessionData struct {
	User LocalUser `json:"user"`
	// Hub, Subject, SubjectFormat and SessionIndex name the hub session it
	// came from (empty for a local login); single logout uses them.
	Hub           string    `json:"hub,omitempty"`
	Subject       string    `json:"sub,omitempty"`
	SubjectFormat string    `json:"subFmt,omitempty"`
	SessionIndex  string    `json:"sidx,omitempty"`
	Created       time.Time `json:"created"`
	// Touched is the last time the idle timer was reset.
	Touched time.Time `json:"touched"`
}

// expires is when the session ends: idle timeout or absolute lifetime.
func (s *SP) expires(d *sessionData) time.Time {
	idle := d.Touched.Add(s.cfg.SessionIdle)
	abs := d.Created.Add(s.cfg.SessionLifetime)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// touchEvery is how stale Touched may get before a read writes it again: a
// small fraction of the idle timeout, at most a minute, so an active session
// costs a store write at most once a minute.
func (s *SP) touchEvery() time.Duration {
	d := s.cfg.SessionIdle / 20
	if d > time.Minute {
		d = time.Minute
	}
	return d
}

// putSession stores d under the hash of tok.
func (s *SP) putSession(ctx context.Context, h [32]byte, d *sessionData) error {
	ttl := s.expires(d).Sub(s.now())
	if ttl <= 0 {
		return errors.New("session already expired")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.cfg.Sessions.PutSession(ctx, StoredSession{ID: storeID(kindSession, h), Hub: d.Hub, Subject: d.Subject, Data: data}, ttl)
}

// loadSession reads the session of hash h from the store, ends it when
// expired, and resets its idle timer when due. It returns ErrNotFound (wrapped)
// when there is no live session.
func (s *SP) loadSession(ctx context.Context, h [32]byte) (*sessionData, error) {
	rec, err := s.cfg.Sessions.GetSession(ctx, storeID(kindSession, h))
	if err != nil {
		return nil, err
	}
	var d sessionData
	if err := json.Unmarshal(rec.Data, &d); err != nil {
		// An unreadable record is no session (and never a 503 for ever).
		s.log.Warn("unreadable session record deleted", "err", err)
		_ = s.cfg.Sessions.DeleteSession(ctx, rec.ID)
		return nil, fmt.Errorf("session record: %w: %w", ErrNotFound, err)
	}
	now := s.now()
	if !now.Before(s.expires(&d)) {
		_ = s.cfg.Sessions.DeleteSession(ctx, rec.ID)
		return nil, fmt.Errorf("session expired: %w", ErrNotFound)
	}
	if now.Sub(d.Touched) >= s.touchEvery() {
		d.Touched = now
		if err := s.touchSession(ctx, h, &d); err != nil {
			// The session stays valid until its stored TTL; a failed touch
			// only shortens it.
			s.log.Warn("session touch failed", "err", err)
		}
	}
	return &d, nil
}

// touchSession writes d back with a new TTL. With a SessionUpdater it never
// brings back a session that a logout deleted since it was read; with a plain
// Sessions store that can happen in the instant between the read and this
// write (the session then lives until its idle timeout).
func (s *SP) touchSession(ctx context.Context, h [32]byte, d *sessionData) error {
	up, ok := s.cfg.Sessions.(SessionUpdater)
	if !ok {
		return s.putSession(ctx, h, d)
	}
	ttl := s.expires(d).Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = up.UpdateSession(ctx, StoredSession{ID: storeID(kindSession, h), Hub: d.Hub, Subject: d.Subject, Data: data}, ttl)
	return err
}

// startSession creates a new session for d, ends the one the browser held (id
// rotation at login) and sets the cookie.
func (s *SP) startSession(w http.ResponseWriter, r *http.Request, d *sessionData) error {
	ctx := r.Context()
	if old, ok := cookieValue(r, s.sessionCookie); ok && validToken(old) {
		oh := tokenHash(old)
		s.cache.evict(oh)
		if err := s.cfg.Sessions.DeleteSession(ctx, storeID(kindSession, oh)); err != nil {
			s.requestLog(r).Warn("could not end the previous session", "err", err)
		}
	}
	now := s.now()
	d.Created, d.Touched = now, now
	tok := newToken()
	h := tokenHash(tok)
	if err := s.putSession(ctx, h, d); err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	// The session just written is what a read would find: the forward-auth
	// check that follows the login need not read it back.
	s.cache.putSession(h, &cachedSession{d: d, userKey: userKey(d.User), fetched: now, expires: s.expires(d)}, now)
	http.SetCookie(w, &http.Cookie{
		Name: s.sessionCookie, Value: tok, Path: "/",
		MaxAge: int(s.cfg.SessionLifetime / time.Second), Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// endSession deletes the browser's session (store and cache) and clears its
// cookie. It returns the session that was ended, or nil.
func (s *SP) endSession(w http.ResponseWriter, r *http.Request) (*sessionData, error) {
	s.clearCookie(w, s.sessionCookie, "/")
	tok, ok := cookieValue(r, s.sessionCookie)
	if !ok || !validToken(tok) {
		return nil, nil
	}
	h := tokenHash(tok)
	s.cache.evict(h)
	d, err := s.loadSession(r.Context(), h)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := s.cfg.Sessions.DeleteSession(r.Context(), storeID(kindSession, h)); err != nil {
		return nil, err
	}
	return d, nil
}

// currentSession returns the browser's live session, or nil.
func (s *SP) currentSession(r *http.Request) *sessionData {
	tok, ok := cookieValue(r, s.sessionCookie)
	if !ok || !validToken(tok) {
		return nil
	}
	d, err := s.loadSession(r.Context(), tokenHash(tok))
	if err != nil {
		return nil
	}
	return d
}

func (s *SP) clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// cookieValue finds a cookie in the request without allocating (the forward
// auth hot path calls it on every check).
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if ok && k == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

// pending is a login or logout started at a hub, stored under the hash of its
// RelayState token until the hub answers.
type pending struct {
	Hub       string    `json:"hub"`
	RequestID string    `json:"req"`
	ReturnTo  string    `json:"rd"`
	Created   time.Time `json:"created"`
}

func (s *SP) putPending(ctx context.Context, kind string, tok string, p pending) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.cfg.Sessions.PutSession(ctx, StoredSession{ID: storeID(kind, tokenHash(tok)), Data: data}, s.cfg.RequestLifetime)
}

func (s *SP) getPending(ctx context.Context, kind, tok string) (pending, error) {
	if !validToken(tok) {
		return pending{}, fmt.Errorf("relay state: %w", ErrNotFound)
	}
	rec, err := s.cfg.Sessions.GetSession(ctx, storeID(kind, tokenHash(tok)))
	if err != nil {
		return pending{}, err
	}
	var p pending
	if err := json.Unmarshal(rec.Data, &p); err != nil {
		return pending{}, fmt.Errorf("pending record: %w", err)
	}
	if !s.now().Before(p.Created.Add(s.cfg.RequestLifetime)) {
		return pending{}, fmt.Errorf("request expired: %w", ErrNotFound)
	}
	return p, nil
}

// requestCookieName binds a pending login to the browser that started it: the
// cookie's name carries part of the token's hash, its value the token.
func (s *SP) requestCookieName(tok string) string {
	h := tokenHash(tok)
	return s.reqCookie + hex.EncodeToString(h[:6])
}

// sameToken compares two tokens in constant time.
func sameToken(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sessionCache keeps sessions and Allowed answers in process for the forward
// auth path. Entries are immutable; a refresh replaces them.
type sessionCache struct {
	sessionTTL, allowedTTL time.Duration

	mu       sync.RWMutex
	sessions map[[32]byte]*cachedSession
	allowed  map[string]*cachedAllowed
}

type cachedSession struct {
	d       *sessionData
	userKey string
	fetched time.Time
	expires time.Time
}

// cachedAllowed is an Accounts.Allowed answer with the response headers built
// once.
type cachedAllowed struct {
	at      time.Time
	allowed bool
	user    []string
	email   []string
	name    []string
	groups  []string
	// memberOf holds the local group names, for ?group= checks.
	memberOf map[string]bool
}

// maxCached bounds each cache map; beyond it, expired entries are swept and,
// if that is not enough, the map starts over.
const maxCached = 100_000

func newSessionCache(sessionTTL, allowedTTL time.Duration) *sessionCache {
	return &sessionCache{
		sessionTTL: sessionTTL, allowedTTL: allowedTTL,
		sessions: map[[32]byte]*cachedSession{},
		allowed:  map[string]*cachedAllowed{},
	}
}

func (c *sessionCache) session(h [32]byte, now time.Time) *cachedSession {
	if c.sessionTTL <= 0 {
		return nil
	}
	c.mu.RLock()
	e := c.sessions[h]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) >= c.sessionTTL || !now.Before(e.expires) {
		return nil
	}
	return e
}

func (c *sessionCache) putSession(h [32]byte, e *cachedSession, now time.Time) {
	if c.sessionTTL <= 0 {
		return
	}
	c.mu.Lock()
	if len(c.sessions) >= maxCached {
		for k, v := range c.sessions {
			if now.Sub(v.fetched) >= c.sessionTTL {
				delete(c.sessions, k)
			}
		}
		if len(c.sessions) >= maxCached {
			clear(c.sessions)
		}
	}
	c.sessions[h] = e
	c.mu.Unlock()
}

func (c *sessionCache) allowedFor(key string, now time.Time) *cachedAllowed {
	if c.allowedTTL <= 0 {
		return nil
	}
	c.mu.RLock()
	e := c.allowed[key]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.at) >= c.allowedTTL {
		return nil
	}
	return e
}

func (c *sessionCache) putAllowed(key string, e *cachedAllowed, now time.Time) {
	if c.allowedTTL <= 0 {
		return
	}
	c.mu.Lock()
	if len(c.allowed) >= maxCached {
		for k, v := range c.allowed {
			if now.Sub(v.at) >= c.allowedTTL {
				delete(c.allowed, k)
			}
		}
		if len(c.allowed) >= maxCached {
			clear(c.allowed)
		}
	}
	c.allowed[key] = e
	c.mu.Unlock()
}

func (c *sessionCache) evict(h [32]byte) {
	c.mu.Lock()
	delete(c.sessions, h)
	c.mu.Unlock()
}

// evictSubject drops every cached session of (hub, subject): single logout.
func (c *sessionCache) evictSubject(hub, subject string) {
	c.mu.Lock()
	for k, v := range c.sessions {
		if v.d.Hub == hub && v.d.Subject == subject {
			delete(c.sessions, k)
		}
	}
	c.mu.Unlock()
}

// forgetUser drops the cached Allowed answer of a user (a new login asks
// again).
func (c *sessionCache) forgetUser(key string) {
	c.mu.Lock()
	delete(c.allowed, key)
	c.mu.Unlock()
}

func userKey(u LocalUser) string { return u.Hub + "\x00" + u.ID }

// EndSessions ends every session of a hub user (hub, the hub's NameID
// subject) at once, for the bridge to call when the user is deleted or
// suspended on the hub or leaves the bridge's scope. Other replicas stop
// honouring the sessions within Config.SessionCache; until then Allowed
// (Config.AllowedCache) already refuses a user the directory no longer
// allows. It returns how many sessions there were.
func (s *SP) EndSessions(ctx context.Context, hub, subject string) (int, error) {
	if hub == "" || subject == "" {
		return 0, errors.New("end sessions: hub and subject are required")
	}
	n, err := s.cfg.Sessions.DeleteSessions(ctx, hub, subject)
	s.cache.evictSubject(hub, subject)
	if err != nil {
		return n, fmt.Errorf("end sessions of %s on %s: %w", subject, hub, err)
	}
	return n, nil
}
