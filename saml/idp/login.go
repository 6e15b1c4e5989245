package idp

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/crewjam/saml"

	"github.com/connectsso/connect/scim/password"
)

// dummyArgon2Hash is verified when the user name is unknown, so that the
// answer takes as long as for a wrong password. Nothing hashes to it.
const dummyArgon2Hash = "$argon2id$v=19$m=19456,t=2,p=1$wG2OYGUgiSpT0tk8jAKL7Q$Ok4syLOKMyFq6gPTHhnoRCuBdiIZnCG/JHE+wqmFWa8"

// Limits on what the login form and SAML requests may carry.
const (
	maxUserName = 256
	// maxInflated bounds an HTTP-Redirect SAMLRequest once inflated: real
	// AuthnRequests are a few kilobytes; a deflate bomb stops here.
	maxInflated = 64 << 10
	// maxPending bounds the SAML request carried through the login form.
	maxPending = 48 << 10
)

// pending is the SAML request a login form resumes.
type pending struct {
	Kind  string // "redirect", "post", "idp" or "" (plain login)
	Query string // redirect and idp: the raw query of the original GET
	Form  string // post: the SAML fields of the original POST, form-encoded
}

func pendingFrom(r *http.Request, req *saml.IdpAuthnRequest) pending {
	switch {
	case r.URL.Path == PathIdPInitiated:
		return pending{Kind: "idp", Query: r.URL.RawQuery}
	case r.Method == http.MethodGet:
		return pending{Kind: "redirect", Query: r.URL.RawQuery}
	default:
		v := url.Values{}
		for _, k := range []string{"SAMLRequest", "RelayState", "SigAlg", "Signature", "KeyInfo"} {
			if x, ok := r.PostForm[k]; ok {
				v[k] = x
			}
		}
		return pending{Kind: "post", Form: v.Encode()}
	}
}

// csrfToken returns the request's CSRF cookie value, setting a new cookie
// when there is none.
func (p *IdP) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.cookies.csrf); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		return c.Value
	}
	t := randomToken()
	http.SetCookie(w, p.cookie(p.cookies.csrf, t, 0))
	return t
}

func (p *IdP) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(p.cookies.csrf)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(FieldCSRF))) == 1
}

func (p *IdP) renderLogin(w http.ResponseWriter, r *http.Request, status int, pend pending, msg string) {
	page := loginPage{Hub: p.cfg.Name, Error: msg, Action: PathLogin, CSRF: p.csrfToken(w, r), Pending: pend}
	if p.up != nil {
		page.UpstreamName, page.UpstreamLink = p.up.cfg.Name, p.upstreamLink(pend)
	}
	if msg != "" {
		page.UserName = r.PostFormValue(FieldUserName)
		if len(page.UserName) > maxUserName {
			page.UserName = ""
		}
	}
	writeHTML(w, status, loginTemplate, page)
}

// serveLoginPage shows the login form, or who is logged in.
func (p *IdP) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	_, u, ok, err := p.currentSession(r.Context(), r)
	if err != nil && !errors.Is(err, errSuspended) {
		p.internalError(w, r, err)
		return
	}
	if ok {
		writeHTML(w, http.StatusOK, messageTemplate, messagePage{
			Hub: p.cfg.Name, Title: "Logged in", Message: "You are logged in to " + p.cfg.Name + " as " + u.UserName + ".",
			Logout: PathLogout, CSRF: p.csrfToken(w, r),
		})
		return
	}
	p.renderLogin(w, r, http.StatusOK, pending{}, "")
}

// serveLogin checks the form and, on success, starts a session and resumes
// the SAML request the form carries.
func (p *IdP) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "The login form could not be read.")
		return
	}
	pend := pending{Kind: r.PostFormValue(FieldSAMLKind), Query: r.PostFormValue(FieldSAMLQuery), Form: r.PostFormValue(FieldSAMLForm)}
	switch pend.Kind {
	case "", "redirect", "post", "idp":
	default:
		pend = pending{}
	}
	if len(pend.Query) > maxPending || len(pend.Form) > maxPending {
		p.refuse(w, r, "too_large", http.StatusBadRequest, "Bad request", "The login request is too large or cannot be read.")
		return
	}
	log := p.requestLog(r)
	if !p.csrfOK(r) {
		p.m.logins.WithLabelValues(resultCSRF).Inc()
		log.Info("login refused: CSRF token missing or wrong")
		p.renderLogin(w, r, http.StatusForbidden, pend, "The login form expired. Please try again.")
		return
	}
	userName := strings.TrimSpace(r.PostFormValue(FieldUserName))
	pw := r.PostFormValue(FieldPassword)
	ip := p.clientIP(r)
	fail := func(result string) {
		p.m.logins.WithLabelValues(result).Inc()
		p.renderLogin(w, r, http.StatusUnauthorized, pend, LoginFailedMessage)
	}
	if userName == "" || pw == "" || len(userName) > maxUserName || len(pw) > password.MaxLength {
		fail(resultBad)
		return
	}
	now := p.now()
	ipThrottle, err := p.cfg.Throttles.LoginThrottle(ctx, AddressKey(ip))
	if err != nil {
		p.loginError(w, r, err)
		return
	}
	if now.Before(ipThrottle.LockedUntil) {
		log.Warn("login refused: source address blocked", "addr", ip, "until", ipThrottle.LockedUntil.UTC().Format(time.RFC3339))
		fail(resultThrottled)
		return
	}
	acctKey := AccountKey(userName)
	acct, err := p.cfg.Throttles.LoginThrottle(ctx, acctKey)
	if err != nil {
		p.loginError(w, r, err)
		return
	}
	if now.Before(acct.LockedUntil) {
		log.Warn("login refused: account locked", "user", userName, "until", acct.LockedUntil.UTC().Format(time.RFC3339))
		p.recordFailure(ctx, r, AddressKey(ip), p.cfg.AddressWindow, p.cfg.AddressLimit, p.cfg.AddressLockout)
		fail(resultLocked)
		return
	}

	u, err := p.cfg.Users.UserByUserName(ctx, userName)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		p.loginError(w, r, err)
		return
	}
	hash := u.PasswordHash
	if !known || hash == "" {
		hash = p.dummyHash
	}
	ok, rehash, err := p.verify(ctx, hash, pw)
	if errors.Is(err, errBusy) {
		p.m.logins.WithLabelValues(resultBusy).Inc()
		log.Warn("login refused: no password hashing slot in time")
		w.Header().Set("Retry-After", "5")
		p.errorPage(w, r, http.StatusServiceUnavailable, "The hub is busy", "Too many people are logging in right now. Please try again in a few seconds.")
		return
	}
	if err != nil {
		// A malformed stored hash: log it (not the hash), answer as a failure.
		log.Error("verify password", "user_id", u.ID, "err", err)
		ok = false
	}
	if !known || u.PasswordHash == "" || !ok {
		p.recordFailure(ctx, r, AddressKey(ip), p.cfg.AddressWindow, p.cfg.AddressLimit, p.cfg.AddressLockout)
		p.recordFailure(ctx, r, acctKey, p.cfg.AccountWindow, p.cfg.AccountLimit, p.cfg.AccountLockout)
		log.Info("login failed", "user", userName, "addr", ip, "known", known)
		fail(resultBad)
		return
	}
	if !u.Active {
		p.m.logins.WithLabelValues(resultSuspended).Inc()
		log.Info("login refused: user suspended", "user_id", u.ID)
		p.refuse(w, r, "suspended", http.StatusForbidden, "Account suspended", "Your account is suspended, so you cannot log in. Ask your administrator.")
		return
	}
	if err := p.cfg.Throttles.ClearLoginThrottle(ctx, acctKey); err != nil {
		log.Warn("clear login throttle", "err", err)
	}
	if rehash {
		p.upgradeHash(ctx, r, u.ID, pw)
	}
	s, err := p.startSession(ctx, w, r, u)
	if err != nil {
		p.loginError(w, r, err)
		return
	}
	// A new CSRF token for the new session.
	http.SetCookie(w, p.cookie(p.cookies.csrf, randomToken(), 0))
	p.m.logins.WithLabelValues(resultSuccess).Inc()
	log.Info("login", "user_id", u.ID)
	p.resume(w, r, pend, &freshLogin{s: s, u: u})
}

func (p *IdP) loginError(w http.ResponseWriter, r *http.Request, err error) {
	p.m.logins.WithLabelValues(resultError).Inc()
	p.internalError(w, r, err)
}

func (p *IdP) recordFailure(ctx context.Context, r *http.Request, key string, window time.Duration, limit int, lockout time.Duration) {
	t, err := p.cfg.Throttles.RecordLoginFailure(ctx, key, p.now(), window, limit, lockout)
	if err != nil {
		p.requestLog(r).Error("record login failure", "err", err)
		return
	}
	if limit > 0 && t.Failures == limit {
		p.requestLog(r).Warn("login lockout", "key", key, "until", t.LockedUntil.UTC().Format(time.RFC3339))
	}
}

var errBusy = errors.New("idp: no hashing slot")

// verify checks pw against hash holding one of the MaxConcurrentHashes
// slots, so that a login storm cannot allocate more than that many argon2id
// work areas at once.
func (p *IdP) verify(ctx context.Context, hash, pw string) (ok, rehash bool, err error) {
	if err := p.acquire(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-p.hashSem }()
	return password.Verify(hash, pw)
}

func (p *IdP) acquire(ctx context.Context) error {
	t := time.NewTimer(p.cfg.HashWait)
	defer t.Stop()
	select {
	case p.hashSem <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// upgradeHash replaces a bcrypt or weak hash with argon2id after a login.
func (p *IdP) upgradeHash(ctx context.Context, r *http.Request, userID, pw string) {
	if err := p.acquire(ctx); err != nil {
		return
	}
	h, err := password.Hash(pw)
	<-p.hashSem
	if err == nil {
		err = p.cfg.Users.SetPasswordHash(ctx, userID, h)
	}
	if err != nil {
		p.requestLog(r).Warn("upgrade password hash", "user_id", userID, "err", err)
		return
	}
	p.requestLog(r).Info("upgraded password hash to argon2id", "user_id", userID)
}

// resume finishes what the login form was shown for: the SAML request it
// carries, or the logged-in page.
func (p *IdP) resume(w http.ResponseWriter, r *http.Request, pend pending, f *freshLogin) {
	ctx := context.WithValue(r.Context(), ctxFreshSession, f)
	switch pend.Kind {
	case "idp":
		q, err := url.ParseQuery(pend.Query)
		if err != nil {
			p.refuse(w, r, "malformed", http.StatusBadRequest, "Bad request", "The request could not be read.")
			return
		}
		r2 := r.Clone(ctx)
		r2.Method = http.MethodGet
		r2.URL = &url.URL{Path: PathIdPInitiated, RawQuery: pend.Query}
		r2.Body, r2.ContentLength, r2.Form, r2.PostForm = http.NoBody, 0, nil, nil
		p.idpInitiated(w, r2, q.Get("sp"), q.Get("RelayState"))
	case "redirect", "post":
		r2 := r.Clone(ctx)
		r2.Form, r2.PostForm = nil, nil
		var samlRequest string
		if pend.Kind == "redirect" {
			r2.Method = http.MethodGet
			r2.URL = &url.URL{Path: PathSSO, RawQuery: pend.Query}
			r2.Body, r2.ContentLength = http.NoBody, 0
			r2.Header.Del("Content-Type")
			q, _ := url.ParseQuery(pend.Query)
			samlRequest = q.Get("SAMLRequest")
		} else {
			r2.Method = http.MethodPost
			r2.URL = &url.URL{Path: PathSSO}
			r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(pend.Form)), int64(len(pend.Form))
			r2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			q, _ := url.ParseQuery(pend.Form)
			samlRequest = q.Get("SAMLRequest")
		}
		at := p.resumeTime(samlRequest, pend.Kind == "redirect")
		idp, err := p.provider(ctx, at)
		if err != nil {
			p.internalError(w, r, err)
			return
		}
		if pend.Kind == "redirect" {
			if err := checkRedirectRequest(samlRequest); err != nil {
				p.refuse(w, r, "too_large", http.StatusBadRequest, "Bad request", "The login request is too large or cannot be read.")
				return
			}
		}
		idp.ServeSSO(w, r2)
	default:
		http.Redirect(w, r, PathLogin, http.StatusSeeOther)
	}
}

// resumeTime is the time a resumed request's timestamps are checked against:
// the real time, unless the request was issued less than LoginWindow ago
// and would now count as expired only because the user spent time on the
// login form; then a moment after its IssueInstant.
func (p *IdP) resumeTime(samlRequest string, deflated bool) time.Time {
	now := p.now()
	ii, ok := issueInstant(samlRequest, deflated)
	if !ok {
		return now
	}
	age := now.Sub(ii)
	if age <= saml.MaxIssueDelay/2 || age > p.cfg.LoginWindow {
		return now
	}
	return ii.Add(time.Second)
}

// issueInstant reads the IssueInstant of an encoded AuthnRequest.
func issueInstant(samlRequest string, deflated bool) (time.Time, bool) {
	raw, err := base64.StdEncoding.DecodeString(samlRequest)
	if err != nil {
		return time.Time{}, false
	}
	if deflated {
		raw, err = inflate(raw)
		if err != nil {
			return time.Time{}, false
		}
	}
	var v struct {
		IssueInstant string `xml:"IssueInstant,attr"`
	}
	if err := xml.Unmarshal(raw, &v); err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v.IssueInstant)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

var errTooLarge = errors.New("idp: SAMLRequest inflates beyond the limit")

func inflate(b []byte) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(b))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, maxInflated+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflated {
		return nil, errTooLarge
	}
	return out, nil
}

// flateReaders reuses decompressors: each holds a 32 KiB window, and every
// HTTP-Redirect request is measured here before crewjam reads it.
var flateReaders = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// checkRedirectRequest bounds the inflated size of an HTTP-Redirect
// SAMLRequest before crewjam reads it (crewjam's own limit is 1 MiB).
func checkRedirectRequest(samlRequest string) error {
	if samlRequest == "" {
		return nil // crewjam reports it
	}
	raw, err := base64.StdEncoding.DecodeString(samlRequest)
	if err != nil {
		return nil // crewjam reports it
	}
	fr := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(fr)
	if err := fr.(flate.Resetter).Reset(bytes.NewReader(raw), nil); err != nil {
		return nil
	}
	n, _ := io.CopyN(io.Discard, fr, maxInflated+1)
	if n > maxInflated {
		return errTooLarge
	}
	return nil // a corrupt stream is crewjam's to report
}

// serveSSO answers an AuthnRequest (HTTP-Redirect or HTTP-POST).
func (p *IdP) serveSSO(w http.ResponseWriter, r *http.Request) {
	// Without a session cookie this starts a login: throttled per address
	// before any work (a stale cookie is charged when it turns out so, in
	// GetSession).
	if !p.hasSessionCookie(r) && !p.allowStart(w, r) {
		return
	}
	if r.Method == http.MethodGet {
		if err := checkRedirectRequest(r.URL.Query().Get("SAMLRequest")); err != nil {
			p.refuse(w, r, "too_large", http.StatusBadRequest, "Bad request", "The login request is too large or cannot be read.")
			return
		}
	}
	if r.Method == http.MethodPost && p.resubmitCrossSite(w, r) {
		return
	}
	idp, err := p.provider(r.Context(), time.Time{})
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	idp.ServeSSO(w, r)
}

// fieldResubmitted marks an HTTP-POST AuthnRequest the hub posted to itself.
const fieldResubmitted = "connect_resubmitted"

// resubmitCrossSite answers an HTTP-POST AuthnRequest that arrived without
// the session cookie by posting it again from the hub's own page. A browser
// does not send SameSite=Lax cookies with the SP's cross-site POST, so
// without this every POST-binding SP would get the login form although the
// user has a hub session; the same-site repost carries the cookie. It
// reports whether it answered.
func (p *IdP) resubmitCrossSite(w http.ResponseWriter, r *http.Request) bool {
	if _, err := r.Cookie(p.cookies.session); err == nil {
		return false
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("SAMLRequest") == "" || r.PostForm.Get(fieldResubmitted) != "" {
		return false
	}
	fields := map[string]string{fieldResubmitted: "1"}
	for _, k := range []string{"SAMLRequest", "RelayState", "SigAlg", "Signature", "KeyInfo"} {
		if vs, ok := r.PostForm[k]; ok && len(vs) == 1 {
			fields[k] = vs[0]
		} else if ok {
			return false // crewjam refuses duplicates; let it answer
		}
	}
	writeHTML(w, http.StatusOK, resubmitTemplate, resubmitPage{Action: PathSSO, Fields: fields})
	return true
}

// serveIdPInitiated sends an unsolicited Response to a registered SP:
// GET /saml/idp-initiated?sp=ENTITY_ID[&RelayState=R].
func (p *IdP) serveIdPInitiated(w http.ResponseWriter, r *http.Request) {
	if !p.hasSessionCookie(r) && !p.allowStart(w, r) {
		return
	}
	q := r.URL.Query()
	p.idpInitiated(w, r, q.Get("sp"), q.Get("RelayState"))
}

func (p *IdP) idpInitiated(w http.ResponseWriter, r *http.Request, spID, relay string) {
	if spID == "" {
		p.refuse(w, r, "malformed", http.StatusBadRequest, "Bad request", "Name the application with ?sp=ENTITY_ID.")
		return
	}
	if relay != "" && !safeRelayState(relay) {
		p.refuse(w, r, "relay_state", http.StatusBadRequest, "Bad request", "RelayState must be a path on the application (starting with a single /).")
		return
	}
	idp, err := p.provider(r.Context(), time.Time{})
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	idp.LimitRelayStateLength = true
	idp.ServeIDPInitiated(w, r, spID, relay)
}

// safeRelayState accepts only a path on the SP's own origin, so that an
// IdP-initiated link cannot make an SP redirect the user off-site
// (DESIGN.md §8). Browsers resolve "//host" and "/\\host" as another host
// and delete tab, CR and LF anywhere in a URL before resolving it (so
// "/\t/evil" becomes "//evil"); an SP may also percent-decode RelayState
// before redirecting. So both the value and its percent-decoding must be a
// single-slash path with no control character, no backslash and no white
// space, and the value itself no bare "%" that does not decode.
func safeRelayState(s string) bool {
	if !localPath(s, false) {
		return false
	}
	d, err := url.PathUnescape(s)
	return err == nil && localPath(d, true)
}

// localPath reports whether s starts with exactly one "/" and holds no
// backslash, no control, format or white-space character and only valid
// UTF-8. decoded allows a space (a decoded "%20" inside the path is not a
// way off-site) but no leading one.
func localPath(s string, decoded bool) bool {
	if len(s) == 0 || s[0] != '/' || (len(s) > 1 && (s[1] == '/' || s[1] == '\\')) || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\\':
			return false
		case r == ' ' && decoded:
		case unicode.IsControl(r), unicode.IsSpace(r), unicode.Is(unicode.Cf, r):
			return false
		}
	}
	return true
}

// serveSLO handles LogoutRequests from SPs (and LogoutResponses of the
// logouts the hub propagates).
func (p *IdP) serveSLO(w http.ResponseWriter, r *http.Request) {
	idp, err := p.provider(r.Context(), time.Time{})
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	ctx := r.Context()
	// A LogoutRequest sent with HTTP-POST arrives without the session cookie
	// (SameSite=Lax); the sessions it ends are found through its NameID.
	if r.URL.Query().Get("SAMLResponse") == "" && r.PostFormValue("SAMLResponse") == "" {
		if req, err := saml.NewIdpLogoutRequest(idp, r); err == nil {
			if err := req.Validate(); err == nil && req.Request.NameID != nil {
				// A LogoutRequest is accepted once, on any replica: replayed
				// within its validity it would end the user's new sessions
				// again, now at every SP over the back channel too. (Not
				// crewjam's IdP ReplayCache: ServeSLO validates the request
				// a second time below, which would refuse every logout.)
				issuer := ""
				if req.Request.Issuer != nil {
					issuer = req.Request.Issuer.Value
				}
				if err := (sharedReplays{p}).Consume("LogoutRequest:"+issuer+" "+req.Request.ID, req.Request.IssueInstant.Add(saml.MaxIssueDelay)); err != nil {
					p.log.Warn("SAML LogoutRequest refused", "sp", issuer, "err", err)
					p.errorPage(w, r, http.StatusBadRequest, "Log out", "This logout request was already used.")
					return
				}
				ctx = context.WithValue(ctx, ctxLogoutUser, req.Request.NameID.Value)
				// The other SPs with a SOAP endpoint are logged out server to
				// server first; crewjam walks the browser through the rest.
				ctx = p.sloBackChannel(r.WithContext(ctx), idp, req)
			}
		}
	}
	idp.ServeSLO(p.logoutWriter(w, idp), r.WithContext(ctx))
}

// logoutWriter fixes crewjam's logout-state cookie for ECDSA keys (see
// derLogoutState).
func (p *IdP) logoutWriter(w http.ResponseWriter, idp *saml.IdentityProvider) http.ResponseWriter {
	if _, ok := idp.Signer.Public().(*ecdsa.PublicKey); ok {
		return &derLogoutState{ResponseWriter: w}
	}
	return w
}

func (p *IdP) serveLogoutPage(w http.ResponseWriter, r *http.Request) {
	_, u, ok, err := p.currentSession(r.Context(), r)
	if err != nil && !errors.Is(err, errSuspended) {
		p.internalError(w, r, err)
		return
	}
	if !ok {
		writeHTML(w, http.StatusOK, messageTemplate, messagePage{Hub: p.cfg.Name, Title: "Logged out", Message: "You are not logged in to " + p.cfg.Name + "."})
		return
	}
	writeHTML(w, http.StatusOK, messageTemplate, messagePage{
		Hub: p.cfg.Name, Title: "Log out", Message: "Log out of " + p.cfg.Name + " (" + u.UserName + ") and the applications you used through it?",
		Logout: PathLogout, CSRF: p.csrfToken(w, r),
	})
}

// serveLogout ends the hub session and sends a LogoutRequest to every SP it
// was used for.
func (p *IdP) serveLogout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !p.csrfOK(r) {
		p.errorPage(w, r, http.StatusForbidden, "Log out", "The logout form expired. Please try again.")
		return
	}
	ctx := r.Context()
	c, err := r.Cookie(p.cookies.session)
	if err != nil || c.Value == "" {
		http.Redirect(w, r, PathLogin, http.StatusSeeOther)
		return
	}
	hash := hashSecret(c.Value)
	s, err := p.cfg.Sessions.Session(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		http.SetCookie(w, p.cookie(p.cookies.session, "", -1))
		http.Redirect(w, r, PathLogin, http.StatusSeeOther)
		return
	}
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	idp, err := p.provider(ctx, time.Time{})
	if err != nil {
		p.internalError(w, r, err)
		return
	}
	http.SetCookie(w, p.cookie(p.cookies.session, "", -1))
	// SPs with a SOAP endpoint are logged out server to server, all at once;
	// crewjam walks the browser through the others only.
	parts, err := p.cfg.Sessions.Participants(ctx, hash)
	if err != nil {
		p.requestLog(r).Error("logout: session participants", "err", err)
	}
	bc := p.backChannelLogout(ctx, r, idp, parts, "")
	if len(bc.failed) > 0 {
		idp.LogoutCompleteTemplate = logoutCompleteTemplate(bc.failed)
	}
	idp.StartLogout(p.logoutWriter(w, idp), r.WithContext(withBackChannel(ctx, bc)), p.toSAML(s, s.UserID), "")
	if err := p.cfg.Sessions.DeleteSession(ctx, hash); err != nil {
		p.requestLog(r).Error("end session", "err", err)
	}
	p.requestLog(r).Info("logout", "user_id", s.UserID)
}

// refuse shows an error page for a request the IdP will not answer with an
// assertion, and counts it.
func (p *IdP) refuse(w http.ResponseWriter, r *http.Request, reason string, status int, title, msg string) {
	p.m.refusals.WithLabelValues(reason).Inc()
	p.requestLog(r).Info("saml request refused", "reason", reason, "status", status)
	p.errorPage(w, r, status, title, msg)
}

// onError is crewjam's OnError: a clear page per cause, the cause logged.
func (p *IdP) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	log := p.requestLog(r)
	reason, title, msg := "malformed", "Bad request", "The login request could not be read. Go back to the application and try again."
	switch {
	case errors.Is(err, saml.ErrUnknownServiceProvider):
		reason, status, title = "unknown_sp", http.StatusForbidden, "Unknown application"
		msg = "The application that sent you here is not registered with " + p.cfg.Name + ", so you cannot log in to it through the hub."
	case errors.Is(err, saml.ErrUnknownAssertionConsumerService):
		reason, status, title = "acs_not_in_metadata", http.StatusForbidden, "Login address not allowed"
		msg = "The application asked for the login to be sent to an address that is not in its registered metadata. Nothing was sent."
	case errors.Is(err, saml.ErrInvalidSignature), errors.Is(err, saml.ErrUntrustedCertificate):
		reason, status, title = "signature", http.StatusForbidden, "Request not signed"
		msg = "The application's login request is not signed, or its signature does not verify, and this application must sign its requests."
	case errors.Is(err, saml.ErrExpired), errors.Is(err, saml.ErrNotYetValid):
		reason, title = "expired", "Login request expired"
		msg = "The login request has expired. Go back to the application and start again."
	case errors.Is(err, saml.ErrDestinationMismatch):
		reason, title = "destination", "Wrong destination"
		msg = "The login request was meant for another identity provider."
	case errors.Is(err, saml.ErrUnsupported):
		reason, title = "unsupported", "Not supported"
		msg = "The login request asks for something this hub does not support (" + "bindings: HTTP-Redirect and HTTP-POST; SHA-1 is refused)."
	case errors.Is(err, saml.ErrRelayStateTooLong):
		reason, title = "relay_state", "Bad request"
		msg = "RelayState is longer than 80 bytes."
	case status >= 500:
		log.Error("saml idp", "err", err)
		p.m.refusals.WithLabelValues("internal").Inc()
		p.errorPage(w, r, status, "Something went wrong", "The hub could not complete the request. Try again later.")
		return
	}
	p.m.refusals.WithLabelValues(reason).Inc()
	log.Info("saml request refused", "reason", reason, "status", status, "err", err)
	p.errorPage(w, r, status, title, msg)
}
