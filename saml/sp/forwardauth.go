package sp

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Forward-auth response headers (oauth2-proxy's contract, with Connect names).
const (
	HeaderUser   = "X-Connect-User"
	HeaderEmail  = "X-Connect-Email"
	HeaderName   = "X-Connect-Name"
	HeaderGroups = "X-Connect-Groups"
	// HeaderLogin is set on a 401: the login URL (same origin, relative) that
	// returns to the page nginx was asked for (from X-Original-URI or
	// X-Forwarded-Uri). nginx redirects to it with auth_request_set.
	HeaderLogin = "X-Connect-Login"
)

// serveAuth is the forward-auth endpoint: 202 with identity headers for a live
// session of an allowed user, 401 without a session, 403 for a user that is
// known but no longer allowed (or, with ?group=G (repeatable), in none of the
// groups asked for), 503 when the answer cannot be known. With ?redirect=1 a
// request without a session gets 302 to the login page instead of 401.
//
// The hot path reads the session from an in-process cache (Config.SessionCache)
// and the Allowed answer from another (Config.AllowedCache); a logout here
// evicts at once, a logout on another replica within SessionCache.
func (s *SP) serveAuth(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	code := s.authorize(w, r, start)
	s.m.authDone(code, s.now().Sub(start))
}

func (s *SP) authorize(w http.ResponseWriter, r *http.Request, now time.Time) int {
	h := w.Header()
	h["Cache-Control"] = noStore
	tok, ok := cookieValue(r, s.sessionCookie)
	if !ok || !validToken(tok) {
		return s.unauthorized(w, r)
	}
	key := tokenHash(tok)
	cs := s.cache.session(key, now)
	if cs == nil {
		d, err := s.loadSession(r.Context(), key)
		if errors.Is(err, ErrNotFound) {
			return s.unauthorized(w, r)
		}
		if err != nil {
			s.requestLog(r).Error("forward auth: session store", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
		cs = &cachedSession{d: d, userKey: userKey(d.User), fetched: now, expires: s.expires(d)}
		s.cache.putSession(key, cs, now)
	}
	a := s.cache.allowedFor(cs.userKey, now)
	if a == nil {
		u, err := s.cfg.Accounts.Allowed(r.Context(), cs.d.User)
		switch {
		case err == nil:
			a = newCachedAllowed(u, now)
		case errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrOutOfScope):
			a = &cachedAllowed{at: now}
		default:
			s.requestLog(r).Error("forward auth: accounts", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
		s.cache.putAllowed(cs.userKey, a, now)
	}
	if !a.allowed || (r.URL.RawQuery != "" && !a.inGroups(r.URL.Query()["group"])) {
		w.WriteHeader(http.StatusForbidden)
		return http.StatusForbidden
	}
	h[HeaderUser] = a.user
	if a.email != nil {
		h[HeaderEmail] = a.email
	}
	if a.name != nil {
		h[HeaderName] = a.name
	}
	if a.groups != nil {
		h[HeaderGroups] = a.groups
	}
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}

var noStore = []string{"no-store"}

// inGroups reports whether the user is in one of want (no want: yes). A site
// location can require groups with /connect/auth?group=A&group=B.
func (a *cachedAllowed) inGroups(want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, g := range want {
		if a.memberOf[g] {
			return true
		}
	}
	return false
}

func newCachedAllowed(u LocalUser, now time.Time) *cachedAllowed {
	a := &cachedAllowed{at: now, allowed: true, user: []string{headerValue(u.Username)}, memberOf: make(map[string]bool, len(u.Groups))}
	for _, g := range u.Groups {
		a.memberOf[g] = true
	}
	if u.Email != "" {
		a.email = []string{headerValue(u.Email)}
	}
	if u.DisplayName != "" {
		a.name = []string{headerValue(u.DisplayName)}
	}
	if len(u.Groups) > 0 {
		gs := make([]string, len(u.Groups))
		for i, g := range u.Groups {
			// A comma inside a group name would split it: those names are
			// percent-encoded (only the comma and the percent sign).
			gs[i] = strings.NewReplacer("%", "%25", ",", "%2C").Replace(headerValue(g))
		}
		a.groups = []string{strings.Join(gs, ",")}
	}
	return a
}

// headerValue drops control characters so that no value can break the header
// block (Go's server would refuse to write them anyway).
func headerValue(v string) string {
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

// unauthorized answers 401 with the login URL that returns to the original
// page, when the proxy said which page that was.
func (s *SP) unauthorized(w http.ResponseWriter, r *http.Request) int {
	orig := r.Header.Get("X-Original-URI")
	if orig == "" {
		orig = r.Header.Get("X-Forwarded-Uri")
	}
	login := PathLogin
	if rd := safeReturnTo(orig); rd != "/" {
		login += "?rd=" + url.QueryEscape(rd)
	}
	w.Header().Set(HeaderLogin, login)
	if r.URL.RawQuery != "" && r.URL.Query().Get("redirect") != "" {
		// For proxies that hand the auth answer to the browser as is
		// (Traefik forwardAuth): send it to the login page directly.
		w.Header().Set("Location", login)
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	}
	w.WriteHeader(http.StatusUnauthorized)
	return http.StatusUnauthorized
}
