package sp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
)

const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
)

// Replay-cache key prefixes: one id space per kind of message.
const (
	replayRequest  = "authn-request:"
	replayResponse = "response:"
	replaySAML     = "saml:" // what crewjam records: assertion ids, LogoutRequest ids
)

// serveACS consumes a hub's Response (HTTP-POST binding).
func (s *SP) serveACS(w http.ResponseWriter, r *http.Request) {
	log := s.requestLog(r)
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	// derSignatures parses the form and makes a hub's r || s ECDSA
	// signatures verifiable by crewjam (see ecdsa.go).
	if err := derSignatures(r); err != nil || r.PostForm.Get("SAMLResponse") == "" {
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "The login answer could not be read. Please start again.")
		return
	}
	relay := r.PostForm.Get("RelayState")
	p, err := s.getPending(ctx, kindLogin, relay)
	if errors.Is(err, ErrNotFound) {
		// No pending request: unsolicited (IdP-initiated logins are off), too
		// old, or already answered.
		log.Warn("acs: no pending request for this answer", "err", err)
		s.m.login(resultExpired)
		s.message(w, http.StatusBadRequest, "Login expired", "This login has expired or was already used. Please start again.")
		return
	}
	if err != nil {
		log.Error("acs: pending request", "err", err)
		s.m.login(resultError)
		s.message(w, http.StatusServiceUnavailable, "Login failed", "Login is unavailable right now. Please try again later.")
		return
	}
	// The browser that posts the answer must be the one that started the
	// login (no login CSRF: an attacker cannot make a victim's browser
	// complete the attacker's login).
	cname := s.requestCookieName(relay)
	if c, ok := cookieValue(r, cname); !ok || !sameToken(c, relay) {
		log.Warn("acs: login started in another browser", "hub", p.Hub)
		s.m.login(resultCSRF)
		s.message(w, http.StatusBadRequest, "Login failed", "This login was started in another browser or your browser blocked cookies. Please start again.")
		return
	}
	s.clearCookie(w, cname, s.reqCookiePath)
	h, err := s.hubByID(ctx, p.Hub)
	if err != nil || h == nil {
		log.Warn("acs: hub no longer connected", "hub", p.Hub, "err", err)
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "This site is no longer connected to that server.")
		return
	}
	log = log.With("hub", h.hub.ID)
	// Each AuthnRequest is answered once, whichever replica gets the answer.
	first, err := s.cfg.Replay.Seen(ctx, p.Hub, replayRequest+p.RequestID, p.Created.Add(s.cfg.RequestLifetime+s.cfg.ClockSkew))
	if err != nil {
		log.Error("acs: replay cache", "err", err)
		s.m.login(resultError)
		s.message(w, http.StatusServiceUnavailable, "Login failed", "Login is unavailable right now. Please try again later.")
		return
	}
	if !first {
		log.Warn("acs: request answered twice (replay)", "request_id", p.RequestID)
		s.m.login(resultReplayed)
		s.message(w, http.StatusBadRequest, "Login expired", "This login has expired or was already used. Please start again.")
		return
	}
	if err := s.cfg.Sessions.DeleteSession(ctx, storeID(kindLogin, tokenHash(relay))); err != nil {
		log.Warn("acs: could not delete the pending request", "err", err)
	}

	raw, err := base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLResponse"))
	if err != nil {
		log.Warn("acs: response refused", "err", err)
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "The login answer could not be read. Please start again.")
		return
	}
	shape, err := checkResponseShape(raw)
	if err != nil {
		log.Warn("acs: response refused", "err", err)
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "The login answer was refused. Please start again.")
		return
	}
	spc := *h.sp
	spc.ReplayCache = replayAdapter{ctx: ctx, rc: s.cfg.Replay, hub: p.Hub}
	a, err := spc.ParseResponse(r, []string{p.RequestID})
	if err != nil {
		s.refuseResponse(w, r, h, shape, err)
		return
	}
	if err := s.checkAssertion(a, p); err != nil {
		log.Warn("acs: assertion refused", "err", err)
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "The login answer was refused. Please start again.")
		return
	}
	first, err = s.cfg.Replay.Seen(ctx, p.Hub, replayResponse+shape.id, s.now().Add(s.cfg.RequestLifetime+2*s.cfg.ClockSkew))
	if err != nil {
		log.Error("acs: replay cache", "err", err)
		s.m.login(resultError)
		s.message(w, http.StatusServiceUnavailable, "Login failed", "Login is unavailable right now. Please try again later.")
		return
	}
	if !first {
		log.Warn("acs: response id seen before (replay)", "response_id", shape.id)
		s.m.login(resultReplayed)
		s.message(w, http.StatusBadRequest, "Login expired", "This login has expired or was already used. Please start again.")
		return
	}

	id := identityFrom(h.hub.ID, a)
	u, err := s.cfg.Accounts.Login(ctx, h.hub.ID, id)
	switch {
	case err == nil:
	case errors.Is(err, ErrOutOfScope):
		log.Info("acs: user out of scope", "subject", id.Subject, "username", id.UserName)
		s.m.login(resultOutOfScope)
		s.message(w, http.StatusForbidden, "Access denied", fmt.Sprintf("Your account on %s does not give access to %s. Ask your administrator if you need it.", h.hub.Name, s.cfg.SiteName))
		return
	case errors.Is(err, ErrNotAllowed):
		log.Info("acs: account not allowed", "subject", id.Subject, "username", id.UserName, "err", err)
		s.m.login(resultDenied)
		s.message(w, http.StatusForbidden, "Access denied", fmt.Sprintf("Your account on %s cannot log in to %s right now. Ask the site's administrator.", h.hub.Name, s.cfg.SiteName))
		return
	default:
		log.Error("acs: accounts", "subject", id.Subject, "err", err)
		s.m.login(resultError)
		s.message(w, http.StatusServiceUnavailable, "Login failed", "Login is unavailable right now. Please try again later.")
		return
	}
	d := &sessionData{User: u, Hub: h.hub.ID, Subject: id.Subject, SubjectFormat: id.SubjectFormat, SessionIndex: id.SessionIndex}
	if err := s.startSession(w, r, d); err != nil {
		log.Error("acs: session", "err", err)
		s.m.login(resultError)
		s.message(w, http.StatusServiceUnavailable, "Login failed", "Login is unavailable right now. Please try again later.")
		return
	}
	// Login just read the account as Allowed would: that answer is the
	// session's first, and the protected page the browser goes to next
	// needs no directory read (Accounts.Login's contract).
	now := s.now()
	s.cache.putAllowed(userKey(u), newCachedAllowed(u, now), now)
	s.m.login(resultSuccess)
	log.Info("sso login", "username", u.Username, "subject", id.Subject)
	http.Redirect(w, r, p.ReturnTo, http.StatusSeeOther)
}

// refuseResponse explains a Response crewjam refused: a hub that declined to
// log the user in gets a clear page, anything else a generic one (the cause
// is logged, never shown).
func (s *SP) refuseResponse(w http.ResponseWriter, r *http.Request, h *hubSP, shape responseShape, err error) {
	log := s.requestLog(r).With("hub", h.hub.ID)
	var ivr *saml.InvalidResponseError
	cause := err
	if errors.As(err, &ivr) && ivr.PrivateErr != nil {
		cause = ivr.PrivateErr
	}
	var bad saml.ErrBadStatus
	switch {
	case errors.As(cause, &bad):
		log.Info("acs: hub declined the login", "status", shape.status, "second", shape.subStatus, "message", shape.statusMessage)
		if shape.subStatus == saml.StatusRequestDenied {
			s.m.login(resultOutOfScope)
			s.message(w, http.StatusForbidden, "Access denied", fmt.Sprintf("Your account on %s does not give access to %s. Ask your administrator if you need it.", h.hub.Name, s.cfg.SiteName))
			return
		}
		s.m.login(resultDenied)
		s.message(w, http.StatusForbidden, "Login failed", fmt.Sprintf("%s did not log you in. Please try again.", h.hub.Name))
	case errors.Is(cause, saml.ErrAssertionReplayed):
		log.Warn("acs: assertion replayed", "err", cause)
		s.m.login(resultReplayed)
		s.message(w, http.StatusBadRequest, "Login expired", "This login has expired or was already used. Please start again.")
	default:
		log.Warn("acs: response refused", "err", cause)
		s.m.login(resultInvalid)
		s.message(w, http.StatusBadRequest, "Login failed", "The login answer was refused. Please start again.")
	}
}

// checkAssertion adds our own bounds to crewjam's checks: the clock skew is
// Config.ClockSkew (crewjam allows a fixed 180 s), the assertion may not
// predate the request it answers, and it must name a subject.
func (s *SP) checkAssertion(a *saml.Assertion, p pending) error {
	now, skew := s.now(), s.cfg.ClockSkew
	if a.IssueInstant.After(now.Add(skew)) {
		return fmt.Errorf("assertion issued in the future (%s)", a.IssueInstant)
	}
	if a.IssueInstant.Before(p.Created.Add(-skew)) {
		return fmt.Errorf("assertion issued before the request it answers (%s < %s)", a.IssueInstant, p.Created)
	}
	if c := a.Conditions; c != nil {
		if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(skew)) {
			return fmt.Errorf("assertion not valid before %s", c.NotBefore)
		}
		if !c.NotOnOrAfter.IsZero() && !now.Add(-skew).Before(c.NotOnOrAfter) {
			return fmt.Errorf("assertion expired at %s", c.NotOnOrAfter)
		}
	}
	if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Value == "" {
		return errors.New("assertion has no NameID")
	}
	if a.Subject.NameID.Format == string(saml.TransientNameIDFormat) {
		return errors.New("assertion has a transient NameID: a hub must send a persistent one")
	}
	return nil
}

// responseShape is what checkResponseShape read from a Response before
// crewjam validates it.
type responseShape struct {
	id                               string
	status, subStatus, statusMessage string
}

// checkResponseShape refuses a Response that is not exactly one samlp:Response
// holding exactly one assertion anywhere in the document (signed or not,
// encrypted or not): a second assertion is how signature-wrapping attacks hide
// the one that was signed. It also reads the Response ID (replay) and the
// status codes (for the page shown when a hub declines).
func checkResponseShape(raw []byte) (responseShape, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(raw); err != nil {
		return responseShape{}, fmt.Errorf("response xml: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Response" || root.NamespaceURI() != nsProtocol {
		return responseShape{}, errors.New("root element is not samlp:Response")
	}
	var sh responseShape
	sh.id = root.SelectAttrValue("ID", "")
	if sh.id == "" {
		return responseShape{}, errors.New("response has no ID")
	}
	assertions := 0
	stack := []*etree.Element{root}
	for len(stack) > 0 {
		el := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if (el.Tag == "Assertion" || el.Tag == "EncryptedAssertion") && el.NamespaceURI() == nsAssertion {
			assertions++
		}
		stack = append(stack, el.ChildElements()...)
	}
	if st := root.FindElement("./Status/StatusCode"); st != nil {
		sh.status = st.SelectAttrValue("Value", "")
		if sub := st.FindElement("./StatusCode"); sub != nil {
			sh.subStatus = sub.SelectAttrValue("Value", "")
		}
	}
	if m := root.FindElement("./Status/StatusMessage"); m != nil {
		sh.statusMessage = m.Text()
	}
	if sh.status != saml.StatusSuccess {
		// A refusal carries no assertion; crewjam reports the status.
		return sh, nil
	}
	if assertions != 1 {
		return responseShape{}, fmt.Errorf("response holds %d assertions, want exactly one", assertions)
	}
	return sh, nil
}

// replayAdapter lets crewjam record assertion and LogoutRequest ids in the
// shared ReplayCache.
type replayAdapter struct {
	ctx context.Context
	rc  ReplayCache
	hub string
}

func (a replayAdapter) Consume(id string, expiresAt time.Time) error {
	// Keep the record a little past the moment the message stops being
	// acceptable anywhere (crewjam allows saml.MaxClockSkew).
	first, err := a.rc.Seen(a.ctx, a.hub, replaySAML+id, expiresAt.Add(saml.MaxClockSkew))
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	if !first {
		return saml.ErrAssertionReplayed
	}
	return nil
}

// Attribute names read from assertions, in order of preference: the Connect
// hub's names first, then the usual LDAP OIDs and Entra/ADFS claim URIs, so
// that a bridge also works with other IdPs.
var (
	attrUserName    = []string{"userName", "uid", "urn:oid:0.9.2342.19200300.100.1.1", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"}
	attrEmail       = []string{"email", "mail", "urn:oid:0.9.2342.19200300.100.1.3", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}
	attrGivenName   = []string{"givenName", "urn:oid:2.5.4.42", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"}
	attrFamilyName  = []string{"sn", "familyName", "surname", "urn:oid:2.5.4.4", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"}
	attrDisplayName = []string{"displayName", "cn", "urn:oid:2.16.840.1.113730.3.1.241", "urn:oid:2.5.4.3"}
	attrGroups      = []string{"groups", "memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"}
)

// identityFrom reads the Identity out of a validated assertion.
func identityFrom(hub string, a *saml.Assertion) Identity {
	id := Identity{Hub: hub, Attributes: map[string][]string{}}
	if a.Subject != nil && a.Subject.NameID != nil {
		id.Subject, id.SubjectFormat = a.Subject.NameID.Value, a.Subject.NameID.Format
	}
	if len(a.AuthnStatements) > 0 {
		id.SessionIndex = a.AuthnStatements[0].SessionIndex
	}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vs []string
			for _, v := range at.Values {
				if v.Value != "" {
					vs = append(vs, v.Value)
				}
			}
			id.Attributes[at.Name] = append(id.Attributes[at.Name], vs...)
			if at.FriendlyName != "" && at.FriendlyName != at.Name {
				id.Attributes[at.FriendlyName] = append(id.Attributes[at.FriendlyName], vs...)
			}
		}
	}
	first := func(names []string) string {
		for _, n := range names {
			if v := id.Attributes[n]; len(v) > 0 {
				return v[0]
			}
		}
		return ""
	}
	id.UserName = first(attrUserName)
	id.Email = first(attrEmail)
	id.GivenName = first(attrGivenName)
	id.FamilyName = first(attrFamilyName)
	id.DisplayName = first(attrDisplayName)
	for _, n := range attrGroups {
		if v := id.Attributes[n]; len(v) > 0 {
			id.Groups = append([]string(nil), v...)
			break
		}
	}
	return id
}
