package sp

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/crewjam/saml"
)

// csrfToken returns the browser's CSRF token, setting a new cookie when it
// has none (double-submit: the form field must equal the cookie, which a page
// of another origin can neither read nor set).
func (s *SP) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if tok, ok := cookieValue(r, s.csrfCookie); ok && validToken(tok) {
		return tok
	}
	tok := newToken()
	http.SetCookie(w, &http.Cookie{Name: s.csrfCookie, Value: tok, Path: "/", Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return tok
}

// checkCSRF checks the form's token against the cookie and, when the browser
// sent them, the Origin / Sec-Fetch-Site headers.
func (s *SP) checkCSRF(r *http.Request) error {
	if err := s.crossOrigin().Check(r); err != nil {
		return err
	}
	c, ok := cookieValue(r, s.csrfCookie)
	if !ok || !validToken(c) || !sameToken(c, r.PostForm.Get("csrf")) {
		return errors.New("csrf token missing or wrong")
	}
	return nil
}

func (s *SP) crossOrigin() *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	_ = p.AddTrustedOrigin(s.origin)
	return p
}

// serveLoginPage shows one button per connected hub and the local form, or
// goes straight to the only hub when auto-sso is on.
func (s *SP) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rd := safeReturnTo(q.Get("rd"))
	if s.currentSession(r) != nil && q.Get("logged_out") == "" {
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	page := loginPage{Title: "Log in", Site: s.cfg.SiteName, Local: s.cfg.Local != nil, ReturnTo: rd}
	if q.Get("logged_out") != "" {
		page.Note = "You have been logged out."
	}
	hubs, err := s.connectedHubs(r.Context())
	if err != nil {
		s.requestLog(r).Error("login page: hubs", "err", err)
		page.Error = "Single sign-on is unavailable right now."
	}
	if len(hubs) == 1 && q.Get("local") == "" && q.Get("logged_out") == "" && s.cfg.AutoSSO(r.Context()) {
		s.startLogin(w, r, hubs[0], rd)
		return
	}
	for _, h := range hubs {
		page.Hubs = append(page.Hubs, hubButton{ID: h.hub.ID, Name: h.hub.Name, Href: PathSAMLLogin + "?" + url.Values{"hub": {h.hub.ID}, "rd": {rd}}.Encode()})
	}
	if page.Local {
		page.CSRF = s.csrfToken(w, r)
	}
	render(w, http.StatusOK, "login", page)
}

// serveLocalLogin checks the local form. Every refusal shows the same
// message; the cause is logged.
func (s *SP) serveLocalLogin(w http.ResponseWriter, r *http.Request) {
	log := s.requestLog(r)
	if s.cfg.Local == nil {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.message(w, http.StatusBadRequest, "Log in", "The form could not be read.")
		return
	}
	rd := safeReturnTo(r.PostForm.Get("rd"))
	page := func(status int, msg, username string) {
		hubs, _ := s.connectedHubs(r.Context())
		p := loginPage{Title: "Log in", Site: s.cfg.SiteName, Local: true, ReturnTo: rd, Error: msg, Username: username, CSRF: s.csrfToken(w, r)}
		for _, h := range hubs {
			p.Hubs = append(p.Hubs, hubButton{ID: h.hub.ID, Name: h.hub.Name, Href: PathSAMLLogin + "?" + url.Values{"hub": {h.hub.ID}, "rd": {rd}}.Encode()})
		}
		render(w, status, "login", p)
	}
	if err := s.checkCSRF(r); err != nil {
		log.Warn("local login refused", "reason", "csrf", "err", err)
		s.m.login(resultCSRF)
		page(http.StatusForbidden, "Your login form expired. Please try again.", "")
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || password == "" || len(username) > 255 || len(password) > 1024 {
		s.m.login(resultLocalFailure)
		page(http.StatusUnauthorized, "Invalid username or password.", "")
		return
	}
	now, acct, addr := s.now(), accountKey(username), s.cfg.ClientIP(r)
	if s.accountFails.blocked(acct, now) || s.addressFails.blocked(addr, now) {
		log.Warn("local login refused", "reason", "throttled", "username", username, "address", addr)
		s.m.login(resultThrottled)
		page(http.StatusTooManyRequests, "Too many failed logins. Please try again later.", username)
		return
	}
	u, err := s.cfg.Local.Authenticate(r.Context(), username, password)
	switch {
	case err == nil:
		s.accountFails.reset(acct)
	case errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrOutOfScope):
		log.Info("local login refused", "username", username, "err", err)
		s.accountFails.fail(acct, now)
		s.addressFails.fail(addr, now)
		s.m.login(resultLocalFailure)
		page(http.StatusUnauthorized, "Invalid username or password.", username)
		return
	default:
		log.Error("local login", "username", username, "err", err)
		s.m.login(resultError)
		page(http.StatusServiceUnavailable, "Login is unavailable right now. Please try again later.", username)
		return
	}
	if err := s.startSession(w, r, &sessionData{User: u}); err != nil {
		log.Error("local login: session", "err", err)
		s.m.login(resultError)
		page(http.StatusServiceUnavailable, "Login is unavailable right now. Please try again later.", username)
		return
	}
	s.cache.forgetUser(userKey(u))
	s.m.login(resultLocalSuccess)
	log.Info("local login", "username", u.Username)
	http.Redirect(w, r, rd, http.StatusSeeOther)
}

// serveStartLogin starts a login at the hub named by ?hub= (or at the only
// connected hub when there is one and none is named).
func (s *SP) serveStartLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var h *hubSP
	var err error
	if id := q.Get("hub"); id != "" {
		h, err = s.hubByID(r.Context(), id)
	} else {
		var hubs []*hubSP
		if hubs, err = s.connectedHubs(r.Context()); len(hubs) == 1 {
			h = hubs[0]
		}
	}
	if err != nil {
		s.requestLog(r).Error("start login: hubs", "err", err)
		s.message(w, http.StatusServiceUnavailable, "Single sign-on unavailable", "Single sign-on is unavailable right now. Please try again later.")
		return
	}
	if h == nil {
		s.message(w, http.StatusNotFound, "Unknown server", "This site is not connected to that server.")
		return
	}
	s.startLogin(w, r, h, safeReturnTo(q.Get("rd")))
}

// startLogin records a pending AuthnRequest in the shared store (so the ACS
// of any replica can check InResponseTo), binds it to this browser with a
// cookie, and sends the browser to the hub.
func (s *SP) startLogin(w http.ResponseWriter, r *http.Request, h *hubSP, rd string) {
	log := s.requestLog(r)
	binding := saml.HTTPRedirectBinding
	loc := h.sp.GetSSOBindingLocation(binding)
	if loc == "" {
		binding = saml.HTTPPostBinding
		loc = h.sp.GetSSOBindingLocation(binding)
	}
	req, err := h.sp.MakeAuthenticationRequest(loc, binding, saml.HTTPPostBinding)
	if err != nil {
		log.Error("start login: authn request", "hub", h.hub.ID, "err", err)
		s.message(w, http.StatusInternalServerError, "Single sign-on unavailable", "The login could not be started. Please try again later.")
		return
	}
	tok := newToken()
	if err := s.putPending(r.Context(), kindLogin, tok, pending{Hub: h.hub.ID, RequestID: req.ID, ReturnTo: rd, Created: s.now()}); err != nil {
		log.Error("start login: store", "hub", h.hub.ID, "err", err)
		s.message(w, http.StatusServiceUnavailable, "Single sign-on unavailable", "The login could not be started. Please try again later.")
		return
	}
	// The hub posts the response from its own origin: on https the cookie
	// must be SameSite=None to come along; on http (loopback only) browsers
	// refuse None without Secure, and Lax works because ports do not make
	// sites differ.
	c := &http.Cookie{Name: s.requestCookieName(tok), Value: tok, Path: s.reqCookiePath, MaxAge: int(s.cfg.RequestLifetime / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if s.secure {
		c.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
	if binding == saml.HTTPRedirectBinding {
		u, err := s.redirectURL(h, req, tok)
		if err != nil {
			log.Error("start login: redirect", "hub", h.hub.ID, "err", err)
			s.message(w, http.StatusInternalServerError, "Single sign-on unavailable", "The login could not be started. Please try again later.")
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	// MakeAuthenticationRequest signed it (enveloped) for this binding.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(req.Post(tok))
}
