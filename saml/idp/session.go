package idp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/crewjam/saml"
)

// Cookie names (stable: test drivers keep cookies by name). A hub served
// over https puts HostCookiePrefix before each (see CookieName).
const (
	SessionCookie = "connect_hub_session"
	CSRFCookie    = "connect_hub_csrf"
)

// HostCookiePrefix starts the name of every cookie the IdP sets when its
// URL is https. Browsers accept a "__Host-" cookie only when it is Secure,
// has Path=/ and no Domain, so another host of the same site (a sibling
// subdomain, a plain-http page) can neither set nor shadow it: no session
// fixation or CSRF-token planting through a cookie scoped to the parent
// domain. Plain http (--insecure-http, a loopback demo) cannot have a
// Secure cookie, so there the names stay unprefixed.
const HostCookiePrefix = "__Host-"

// CookieName is the name the IdP served at baseURL gives the cookie named
// name (SessionCookie, CSRFCookie): name with HostCookiePrefix when baseURL
// is https, name itself otherwise.
func CookieName(baseURL, name string) string {
	if u, err := url.Parse(baseURL); err == nil && u.Scheme == "https" {
		return HostCookiePrefix + name
	}
	return name
}

// cookieNames are the names (and the upstream cookie's path) of one IdP.
type cookieNames struct {
	session, csrf, upstream string
	upstreamPath            string
	// legacy are the names a hub served over https used before the
	// __Host- prefix, by path: a request still carrying one gets it deleted
	// (the session it holds is not honoured; the user logs in again).
	legacy map[string]string
}

func newCookieNames(secure bool) cookieNames {
	if !secure {
		return cookieNames{session: SessionCookie, csrf: CSRFCookie, upstream: upstreamPendingCookie, upstreamPath: upstreamPendingPath}
	}
	return cookieNames{
		session: HostCookiePrefix + SessionCookie, csrf: HostCookiePrefix + CSRFCookie,
		upstream: HostCookiePrefix + upstreamPendingCookie, upstreamPath: "/",
		legacy: map[string]string{SessionCookie: "/", CSRFCookie: "/", upstreamPendingCookie: upstreamPendingPath},
	}
}

// dropLegacyCookies deletes the unprefixed cookies of an older hub version
// that the request carries (https only).
func (p *IdP) dropLegacyCookies(w http.ResponseWriter, r *http.Request) {
	if len(p.cookies.legacy) == 0 || len(r.Header["Cookie"]) == 0 {
		return
	}
	for _, c := range r.Cookies() {
		if path, ok := p.cookies.legacy[c.Name]; ok {
			http.SetCookie(w, &http.Cookie{Name: c.Name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
		}
	}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *IdP) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
	}
}

// startSession creates a session for u (a fresh id: the old cookie, if any,
// is ended, so a session id planted before login is useless) and sets its
// cookie on w.
func (p *IdP) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u User) (Session, error) {
	if c, err := r.Cookie(p.cookies.session); err == nil && c.Value != "" {
		if err := p.cfg.Sessions.DeleteSession(ctx, hashSecret(c.Value)); err != nil {
			p.requestLog(r).Warn("end previous session", "err", err)
		}
	}
	secret := randomToken()
	idx := make([]byte, 16)
	_, _ = rand.Read(idx)
	now := p.now()
	s := Session{
		Hash:    hashSecret(secret),
		Index:   "_" + hex.EncodeToString(idx),
		UserID:  u.ID,
		Created: now,
		Expires: now.Add(p.cfg.SessionLifetime),
	}
	if err := p.cfg.Sessions.CreateSession(ctx, s); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	http.SetCookie(w, p.cookie(p.cookies.session, secret, int(p.cfg.SessionLifetime/time.Second)))
	return s, nil
}

// currentSession returns the valid session of the request's cookie and its
// user. ok is false when there is none (no cookie, unknown, expired). A
// session whose user is gone is ended. A suspended user's session is ended
// and reported with errSuspended.
func (p *IdP) currentSession(ctx context.Context, r *http.Request) (Session, User, bool, error) {
	c, err := r.Cookie(p.cookies.session)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return Session{}, User{}, false, nil
	}
	s, err := p.cfg.Sessions.Session(ctx, hashSecret(c.Value))
	if errors.Is(err, ErrNotFound) {
		return Session{}, User{}, false, nil
	}
	if err != nil {
		return Session{}, User{}, false, err
	}
	if !p.now().Before(s.Expires) {
		return Session{}, User{}, false, nil
	}
	u, err := p.cfg.Users.UserByID(ctx, s.UserID)
	if errors.Is(err, ErrNotFound) {
		_ = p.cfg.Sessions.DeleteSession(ctx, s.Hash)
		return Session{}, User{}, false, nil
	}
	if err != nil {
		return Session{}, User{}, false, err
	}
	if !u.Active {
		_ = p.cfg.Sessions.DeleteSession(ctx, s.Hash)
		return Session{}, u, false, errSuspended
	}
	return s, u, true, nil
}

var errSuspended = errors.New("user is suspended")

// freshLogin is a session just created by the login form, handed to the
// resumed SAML request through the context (its cookie is only on the
// response).
type freshLogin struct {
	s Session
	u User
}

// samlSession is the crewjam session of s for u: the NameID, the attributes
// and the session index. Attributes are built by the assertion maker from
// the fields set here.
func (p *IdP) samlSession(s Session, u User) *saml.Session {
	return &saml.Session{
		ID:             hex.EncodeToString(s.Hash),
		CreateTime:     s.Created,
		ExpireTime:     s.Expires,
		Index:          s.Index,
		NameID:         u.ID,
		NameIDFormat:   string(saml.PersistentNameIDFormat),
		UserName:       u.UserName,
		UserEmail:      u.Email,
		UserGivenName:  u.GivenName,
		UserSurname:    u.FamilyName,
		UserCommonName: u.DisplayName,
		Groups:         u.Groups,
	}
}

// sessionProvider implements crewjam's SessionProvider, SessionInvalidator
// and SessionParticipantTracker over Sessions.
type sessionProvider struct{ p *IdP }

// GetSession returns the session of the login that just happened, or of the
// cookie; otherwise it answers with the login page (or, for IsPassive, a
// NoPassive error Response) and returns nil.
func (sp *sessionProvider) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	p := sp.p
	ctx := r.Context()
	if f, ok := ctx.Value(ctxFreshSession).(*freshLogin); ok {
		return p.allowed(w, r, req, f.s, f.u)
	}
	force := req.Request.ForceAuthn != nil && *req.Request.ForceAuthn
	passive := req.Request.IsPassive != nil && *req.Request.IsPassive
	s, u, ok, err := p.currentSession(ctx, r)
	switch {
	case errors.Is(err, errSuspended):
		p.refuse(w, r, "suspended", http.StatusForbidden, "Account suspended", "Your account is suspended, so the hub cannot log you in to "+spName(req)+". Ask your administrator.")
		return nil
	case err != nil:
		p.internalError(w, r, err)
		return nil
	case ok && !force:
		return p.allowed(w, r, req, s, u)
	}
	// A request with a cookie that is no (valid) session was not charged
	// as a login start on the way in (serveSSO): it is now.
	if p.hasSessionCookie(r) && !p.allowStart(w, r) {
		return nil
	}
	if passive {
		if err := req.IDP.SendErrorResponse(w, req, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoPassive}); err != nil {
			p.internalError(w, r, err)
		}
		p.m.responses.WithLabelValues("error").Inc()
		return nil
	}
	p.renderLogin(w, r, http.StatusOK, pendingFrom(r, req), "")
	return nil
}

// allowed returns the crewjam session of s when Scopes lets the SP receive
// u; otherwise it shows an error page and returns nil.
func (p *IdP) allowed(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest, s Session, u User) *saml.Session {
	if p.cfg.Scopes != nil && req.ServiceProviderMetadata != nil {
		ok, err := p.cfg.Scopes.MayAssert(r.Context(), req.ServiceProviderMetadata.EntityID, u.ID)
		if err != nil {
			p.internalError(w, r, err)
			return nil
		}
		if !ok {
			p.requestLog(r).Info("user outside the SP's scope", "user_id", u.ID, "sp", req.ServiceProviderMetadata.EntityID)
			p.refuse(w, r, "out_of_scope", http.StatusForbidden, "No access", "Your account is not allowed to use "+spName(req)+". Ask your administrator if you need access.")
			return nil
		}
	}
	return p.samlSession(s, u)
}

func spName(req *saml.IdpAuthnRequest) string {
	if req != nil && req.ServiceProviderMetadata != nil {
		return req.ServiceProviderMetadata.EntityID
	}
	return "the application"
}

func (p *IdP) toSAML(s Session, userID string) *saml.Session {
	return &saml.Session{ID: hex.EncodeToString(s.Hash), Index: s.Index, NameID: userID, NameIDFormat: string(saml.PersistentNameIDFormat), CreateTime: s.Created, ExpireTime: s.Expires}
}

// candidates are the sessions a logout may concern: the cookie's and, when
// the LogoutRequest named a user, that user's.
func (sp *sessionProvider) candidates(r *http.Request) ([]Session, error) {
	p := sp.p
	ctx := r.Context()
	var out []Session
	seen := map[string]bool{}
	if c, err := r.Cookie(p.cookies.session); err == nil && c.Value != "" && len(c.Value) <= 128 {
		s, err := p.cfg.Sessions.Session(ctx, hashSecret(c.Value))
		if err == nil {
			out = append(out, s)
			seen[string(s.Hash)] = true
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if uid, ok := ctx.Value(ctxLogoutUser).(string); ok && uid != "" {
		ss, err := p.cfg.Sessions.SessionsOfUser(ctx, uid)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if !seen[string(s.Hash)] {
				out = append(out, s)
				seen[string(s.Hash)] = true
			}
		}
	}
	return out, nil
}

// InvalidateSession ends the sessions a validated LogoutRequest names.
func (sp *sessionProvider) InvalidateSession(w http.ResponseWriter, r *http.Request, req *saml.IdpLogoutRequest) error {
	p := sp.p
	cands, err := sp.candidates(r)
	if err != nil {
		return err
	}
	var cookieHash []byte
	if c, err := r.Cookie(p.cookies.session); err == nil && c.Value != "" {
		cookieHash = hashSecret(c.Value)
	}
	for _, s := range cands {
		if !req.MatchesSession(p.toSAML(s, s.UserID)) {
			continue
		}
		if err := p.cfg.Sessions.DeleteSession(r.Context(), s.Hash); err != nil {
			return err
		}
		if cookieHash != nil && string(cookieHash) == string(s.Hash) {
			http.SetCookie(w, p.cookie(p.cookies.session, "", -1))
		}
	}
	return nil
}

// maxRecorded bounds the participants remembered in process.
const maxRecorded = 100000

// remember notes a recorded participant; the set is dropped when it grows
// past maxRecorded (it is only a shortcut).
func (p *IdP) remember(key string) {
	if p.recordedN.Add(1) > maxRecorded {
		p.recorded.Clear()
		p.recordedN.Store(0)
	}
	p.recorded.Store(key, struct{}{})
}

// AddSessionParticipant records the SP an assertion went to.
func (sp *sessionProvider) AddSessionParticipant(r *http.Request, session *saml.Session, part saml.SessionParticipant) error {
	hash, err := hex.DecodeString(session.ID)
	if err != nil {
		return fmt.Errorf("session id: %w", err)
	}
	p := Participant{
		ServiceProvider: part.ServiceProviderID,
		NameID:          part.NameID.Value,
		NameIDFormat:    part.NameID.Format,
		NameQualifier:   part.NameID.NameQualifier,
		SPNameQualifier: part.NameID.SPNameQualifier,
		SessionIndex:    part.SessionIndex,
	}
	// Most SSO requests come back to an SP the session already knows: this
	// process remembers what it recorded, and otherwise a read spares the
	// (single, on SQLite) writer.
	key := string(hash) + "\x00" + p.ServiceProvider + "\x00" + p.NameID + "\x00" + p.SessionIndex
	if _, ok := sp.p.recorded.Load(key); ok {
		return nil
	}
	known, err := sp.p.cfg.Sessions.Participants(r.Context(), hash)
	if err != nil {
		return err
	}
	for _, k := range known {
		if k == p {
			sp.p.remember(key)
			return nil
		}
	}
	if err := sp.p.cfg.Sessions.AddParticipant(r.Context(), hash, p); err != nil {
		return err
	}
	sp.p.remember(key)
	return nil
}

// SessionParticipants returns the participants of the candidate sessions
// that match.
func (sp *sessionProvider) SessionParticipants(r *http.Request, match func(*saml.Session) bool) ([]saml.SessionParticipant, error) {
	p := sp.p
	cands, err := sp.candidates(r)
	if err != nil {
		return nil, err
	}
	var out []saml.SessionParticipant
	for _, s := range cands {
		if !match(p.toSAML(s, s.UserID)) {
			continue
		}
		parts, err := p.cfg.Sessions.Participants(r.Context(), s.Hash)
		if err != nil {
			return nil, err
		}
		for _, pt := range parts {
			if backChannelHandled(r.Context(), pt.ServiceProvider) {
				continue // already logged out server to server
			}
			out = append(out, saml.SessionParticipant{
				ServiceProviderID: pt.ServiceProvider,
				NameID: saml.NameID{
					Value: pt.NameID, Format: pt.NameIDFormat,
					NameQualifier: pt.NameQualifier, SPNameQualifier: pt.SPNameQualifier,
				},
				SessionIndex: pt.SessionIndex,
			})
		}
	}
	return out, nil
}
