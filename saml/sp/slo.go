package sp

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
)

// serveLogout ends the browser's session here and, for a session that came
// from a hub, at the hub too (SP-initiated single logout; the hub then logs
// the user out of its other service providers).
//
// GET logs out at once when the browser says the link came from this site or
// was typed (Sec-Fetch-Site same-origin or none); otherwise it asks for a
// confirmation, so that a page of another site cannot log users out. POST
// needs the CSRF token.
func (s *SP) serveLogout(w http.ResponseWriter, r *http.Request) {
	var rd string
	if r.Method == http.MethodGet {
		rd = r.URL.Query().Get("rd")
		if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "same-origin" && sfs != "none" {
			render(w, http.StatusOK, "logout", logoutPage{Title: "Log out", Site: s.cfg.SiteName, CSRF: s.csrfToken(w, r), ReturnTo: safeReturnTo(rd)})
			return
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			s.message(w, http.StatusBadRequest, "Log out", "The form could not be read.")
			return
		}
		rd = r.PostForm.Get("rd")
		if err := s.checkCSRF(r); err != nil {
			s.requestLog(r).Warn("logout refused", "reason", "csrf", "err", err)
			render(w, http.StatusForbidden, "logout", logoutPage{Title: "Log out", Site: s.cfg.SiteName, CSRF: s.csrfToken(w, r), ReturnTo: safeReturnTo(rd)})
			return
		}
	}
	s.logout(w, r, safeReturnTo(rd))
}

func (s *SP) logout(w http.ResponseWriter, r *http.Request, rd string) {
	log := s.requestLog(r)
	after := rd
	if after == "/" {
		after = PathLogin + "?logged_out=1"
	}
	d, err := s.endSession(w, r)
	if err != nil {
		// The cookie is gone from this browser; the record expires on its own.
		log.Error("logout: session store", "err", err)
	}
	if d == nil || d.Hub == "" {
		s.m.logout(logoutLocal)
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	log = log.With("hub", d.Hub, "username", d.User.Username)
	h, err := s.hubByID(r.Context(), d.Hub)
	if err != nil || h == nil {
		log.Warn("logout: hub not reachable for single logout", "err", err)
		s.m.logout(logoutLocal)
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	binding := saml.HTTPRedirectBinding
	loc := h.sp.GetSLOBindingLocation(binding)
	if loc == "" {
		binding = saml.HTTPPostBinding
		loc = h.sp.GetSLOBindingLocation(binding)
	}
	if loc == "" {
		log.Info("logout: the hub has no single logout service")
		s.m.logout(logoutLocal)
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	opts := []saml.LogoutRequestOption{func(req *saml.LogoutRequest) {
		if d.SubjectFormat != "" {
			req.NameID.Format = d.SubjectFormat
		}
	}}
	if d.SessionIndex != "" {
		opts = append(opts, saml.WithSessionIndex(d.SessionIndex))
	}
	req, err := h.sp.MakeLogoutRequest(loc, d.Subject, opts...)
	if err != nil {
		log.Error("logout: logout request", "err", err)
		s.m.logout(logoutLocal)
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	tok := newToken()
	if err := s.putPending(r.Context(), kindLogout, tok, pending{Hub: d.Hub, RequestID: req.ID, ReturnTo: after, Created: s.now()}); err != nil {
		log.Error("logout: store", "err", err)
		s.m.logout(logoutLocal)
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	s.m.logout(logoutSingle)
	w.Header().Set("Cache-Control", "no-store")
	if binding == saml.HTTPRedirectBinding {
		u, err := h.sp.RedirectLogoutRequestURL(req, tok)
		if err != nil {
			log.Error("logout: redirect", "err", err)
			http.Redirect(w, r, after, http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(req.Post(tok))
}

// serveSLO handles the hub's side of single logout: its LogoutResponse to our
// LogoutRequest, or its LogoutRequest when the user logged out at the hub or
// at another of its service providers.
func (s *SP) serveSLO(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := derSignatures(r); err != nil {
		s.message(w, http.StatusBadRequest, "Log out", "The logout message could not be read.")
		return
	}
	switch {
	case r.Form.Get("SAMLResponse") != "":
		s.sloResponse(w, r)
	case r.Form.Get("SAMLRequest") != "":
		s.sloRequest(w, r)
	default:
		s.message(w, http.StatusBadRequest, "Log out", "The logout message could not be read.")
	}
}

func (s *SP) sloResponse(w http.ResponseWriter, r *http.Request) {
	log := s.requestLog(r)
	relay := r.Form.Get("RelayState")
	p, err := s.getPending(r.Context(), kindLogout, relay)
	if err != nil {
		// The local session ended before the browser went to the hub.
		log.Warn("slo: logout response without a pending request", "err", err)
		http.Redirect(w, r, PathLogin+"?logged_out=1", http.StatusSeeOther)
		return
	}
	_ = s.cfg.Sessions.DeleteSession(r.Context(), storeID(kindLogout, tokenHash(relay)))
	h, err := s.hubByID(r.Context(), p.Hub)
	if err == nil && h != nil {
		_, err = h.sp.ParseLogoutResponse(r, []string{p.RequestID})
	} else if err == nil {
		err = errors.New("hub no longer connected")
	}
	if err != nil {
		var ivr *saml.InvalidResponseError
		if errors.As(err, &ivr) && ivr.PrivateErr != nil {
			err = ivr.PrivateErr
		}
		log.Warn("slo: the hub did not confirm the logout", "hub", p.Hub, "err", err)
		s.m.logout(logoutHubFailed)
		render(w, http.StatusOK, "message", messagePage{
			Title:   "Logged out of " + s.cfg.SiteName,
			Message: "You are logged out of this site, but the server you log in with did not confirm that it ended your session there. Close your browser to be sure.",
			Link:    p.ReturnTo, LinkText: "Continue",
		})
		return
	}
	log.Info("slo: single logout complete", "hub", p.Hub)
	http.Redirect(w, r, p.ReturnTo, http.StatusSeeOther)
}

// sloRequest ends every session of the user the hub names and answers the hub,
// even when something fails (with a non-success status): the hub is walking
// the browser through all its service providers, and an SP that does not
// answer would stop the logout of the ones after it.
func (s *SP) sloRequest(w http.ResponseWriter, r *http.Request) {
	log := s.requestLog(r)
	ctx := r.Context()
	peek, err := peekLogoutRequest(r)
	if err != nil {
		log.Warn("slo: unreadable logout request", "err", err)
		s.message(w, http.StatusBadRequest, "Log out", "The logout message could not be read.")
		return
	}
	h, err := s.hubByEntityID(ctx, peek.issuer)
	if err != nil || h == nil {
		log.Warn("slo: logout request from an unknown issuer", "issuer", peek.issuer, "err", err)
		s.message(w, http.StatusBadRequest, "Log out", "The logout message came from a server this site is not connected to.")
		return
	}
	log = log.With("hub", h.hub.ID)
	spc := *h.sp
	spc.ReplayCache = replayAdapter{ctx: ctx, rc: s.cfg.Replay, hub: h.hub.ID}
	status := saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}}
	reqID := peek.id
	lr, err := spc.ValidateLogoutRequest(r)
	switch {
	case err != nil:
		var ivr *saml.InvalidResponseError
		if errors.As(err, &ivr) && ivr.PrivateErr != nil {
			err = ivr.PrivateErr
		}
		log.Warn("slo: logout request refused", "err", err)
		status.StatusCode.Value = saml.StatusRequester
		s.m.logout(logoutHubRefused)
	case lr.NameID == nil || lr.NameID.Value == "":
		log.Warn("slo: logout request without NameID")
		status.StatusCode.Value = saml.StatusRequester
		s.m.logout(logoutHubRefused)
	default:
		reqID = lr.ID
		sub := lr.NameID.Value
		if cur := s.currentSessionRaw(r); cur != nil && cur.Hub == h.hub.ID && cur.Subject == sub {
			s.clearCookie(w, s.sessionCookie, "/")
		}
		status.StatusCode.Value = s.endHubSessions(ctx, log, h.hub.ID, sub)
	}
	relay := r.Form.Get("RelayState")
	w.Header().Set("Cache-Control", "no-store")
	if h.sp.GetSLOBindingLocation(saml.HTTPRedirectBinding) != "" {
		u, err := spc.MakeRedirectLogoutResponseWithStatus(reqID, relay, status)
		if err != nil {
			log.Error("slo: logout response", "err", err)
			s.message(w, http.StatusInternalServerError, "Log out", "The logout could not be completed.")
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	body, err := spc.MakePostLogoutResponseWithStatus(reqID, relay, status)
	if err != nil {
		log.Error("slo: logout response", "err", err)
		s.message(w, http.StatusInternalServerError, "Log out", "The logout could not be completed.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// endHubSessions ends the sessions of sub from hub, as a logout request of
// that hub asks (front or back channel), and returns the status code to
// answer it with.
func (s *SP) endHubSessions(ctx context.Context, log *slog.Logger, hub, sub string) string {
	n, err := s.cfg.Sessions.DeleteSessions(ctx, hub, sub)
	s.cache.evictSubject(hub, sub)
	if err != nil {
		log.Error("slo: could not end the sessions", "subject", sub, "err", err)
		s.m.logout(logoutHubFailed)
		return saml.StatusResponder
	}
	log.Info("slo: sessions ended by the hub", "subject", sub, "sessions", n)
	s.m.logout(logoutFromHub)
	return saml.StatusSuccess
}

// currentSessionRaw reads the browser's session record without resetting its
// idle timer, or nil.
func (s *SP) currentSessionRaw(r *http.Request) *sessionData {
	tok, ok := cookieValue(r, s.sessionCookie)
	if !ok || !validToken(tok) {
		return nil
	}
	rec, err := s.cfg.Sessions.GetSession(r.Context(), storeID(kindSession, tokenHash(tok)))
	if err != nil {
		return nil
	}
	var d sessionData
	if json.Unmarshal(rec.Data, &d) != nil {
		return nil
	}
	return &d
}

type logoutPeek struct{ issuer, id string }

// peekLogoutRequest reads the Issuer and ID of a LogoutRequest before it is
// validated, to pick the hub whose keys validate it.
func peekLogoutRequest(r *http.Request) (logoutPeek, error) {
	var raw []byte
	if q := r.URL.Query().Get("SAMLRequest"); q != "" {
		dec, err := base64.StdEncoding.DecodeString(q)
		if err != nil {
			return logoutPeek{}, fmt.Errorf("base64: %w", err)
		}
		fr := flate.NewReader(bytes.NewReader(dec))
		defer fr.Close()
		raw, err = io.ReadAll(io.LimitReader(fr, maxRequestBody+1))
		if err != nil {
			return logoutPeek{}, fmt.Errorf("inflate: %w", err)
		}
		if len(raw) > maxRequestBody {
			return logoutPeek{}, errors.New("logout request too large")
		}
	} else {
		var err error
		raw, err = base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLRequest"))
		if err != nil {
			return logoutPeek{}, fmt.Errorf("base64: %w", err)
		}
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return logoutPeek{}, fmt.Errorf("xml: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "LogoutRequest" || root.NamespaceURI() != nsProtocol {
		return logoutPeek{}, errors.New("not a samlp:LogoutRequest")
	}
	iss := root.FindElement("./Issuer")
	if iss == nil || iss.NamespaceURI() != nsAssertion {
		return logoutPeek{}, errors.New("logout request has no Issuer")
	}
	return logoutPeek{issuer: strings.TrimSpace(iss.Text()), id: root.SelectAttrValue("ID", "")}, nil
}
