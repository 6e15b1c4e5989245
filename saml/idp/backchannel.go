package idp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/connectsso/connect/saml/internal/metadata"
	dsig "github.com/russellhaering/goxmldsig"
)

// Back-channel single logout (SAML SOAP binding, saml-bindings §3.2).
//
// When a hub session ends (logout at the hub, or a LogoutRequest from one of
// its service providers), every other participant of the session whose
// registered metadata lists a SOAP SingleLogoutService is sent a signed
// LogoutRequest server to server, all of them at once, each bounded by
// Config.BackChannelTimeout. Their answers, or their silence, never hold
// the browser: crewjam then walks the browser only through the participants
// without a SOAP endpoint (front channel), which is where a site that is
// down would stop the chain. crewjam can send SOAP logouts itself, but one
// participant at a time and, when one fails, falls back to sending the
// browser there, which is exactly what a dead bridge must not get. Here
// only an SP that is up (it answered, with an error or a bad message, or
// showed a certificate the hub does not trust) is left to crewjam and the
// browser; an unreachable or silent one is given up on, logged, counted and
// named on the hub's logged-out page.

// DefaultBackChannelTimeout bounds one back-channel LogoutRequest: connect,
// send, and read the answer.
const DefaultBackChannelTimeout = 3 * time.Second

// maxSOAPAnswer bounds a service provider's SOAP answer.
const maxSOAPAnswer = 64 << 10

// Back-channel logout results (the result label of
// connect_hub_saml_backchannel_logouts_total).
const (
	backChannelSuccess = "success" // the SP answered with a valid signed Success
	backChannelFailed  = "failed"  // unreachable or timed out: given up, the browser is not sent there
	// backChannelFront: the SP is up but the back channel did not log it
	// out (an error status, a bad answer, a certificate the hub does not
	// trust); the browser is sent there, as to an SP without SOAP.
	backChannelFront = "front_channel"
)

// ctxBackChannel carries the entity IDs of the service providers already
// logged out (or tried) over the back channel, so that SessionParticipants
// hides them from crewjam's front-channel walk.
const ctxBackChannel ctxKey = 100

// backChannelResult is what a back-channel logout did.
type backChannelResult struct {
	handled map[string]bool // SP entity IDs done with: logged out, or unreachable
	failed  []string        // the unreachable ones
}

// answeredError is a back-channel failure after the SP answered: it is up,
// so the browser can log it out instead.
type answeredError struct{ err error }

func (e answeredError) Error() string { return e.err.Error() }
func (e answeredError) Unwrap() error { return e.err }

// reachable reports whether a back-channel failure shows the SP up: it
// answered, or it presented a certificate the hub does not trust (that the
// browser may). A refused or reset connection, a name that does not resolve
// or a timeout mean it is down, and sending the browser there would stop the
// logout of the SPs after it.
func reachable(err error) bool {
	var (
		answered answeredError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &answered) || errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// withBackChannel returns ctx marked with the SPs res handled.
func withBackChannel(ctx context.Context, res backChannelResult) context.Context {
	if len(res.handled) == 0 {
		return ctx
	}
	return context.WithValue(ctx, ctxBackChannel, res.handled)
}

// backChannelHandled reports whether sp was already sent a back-channel
// LogoutRequest in this request.
func backChannelHandled(ctx context.Context, sp string) bool {
	m, _ := ctx.Value(ctxBackChannel).(map[string]bool)
	return m[sp]
}

// soapEndpoint returns the first SOAP SingleLogoutService of ed that the hub
// may call: https, or plain http on a loopback host (or anywhere with
// Config.InsecureBackChannel), and on the origin (scheme, host, port) of one
// of the SP's AssertionConsumerServices — the hub calls it from the server,
// so metadata must not be able to aim it at another host (SSRF into the
// hub's network). "" when there is none.
func (p *IdP) soapEndpoint(ed *saml.EntityDescriptor) string {
	origins := map[string]bool{}
	for _, sd := range ed.SPSSODescriptors {
		for _, a := range sd.AssertionConsumerServices {
			if u, err := url.Parse(a.Location); err == nil && u.Host != "" {
				origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
			}
		}
	}
	for _, sd := range ed.SPSSODescriptors {
		for _, e := range sd.SingleLogoutServices {
			if e.Binding != saml.SOAPBinding {
				continue
			}
			u, err := url.Parse(e.Location)
			if err != nil || u.Host == "" || u.User != nil {
				continue
			}
			if !origins[strings.ToLower(u.Scheme+"://"+u.Host)] {
				p.log.Warn("back-channel logout: SOAP endpoint ignored (not on the origin of the SP's ACS)", "sp", ed.EntityID, "location", e.Location)
				continue
			}
			switch {
			case u.Scheme == "https":
			case u.Scheme == "http" && (p.cfg.InsecureBackChannel || loopbackHost(u.Hostname())):
			default:
				p.log.Warn("back-channel logout: SOAP endpoint ignored (plain http on a non-loopback host)", "sp", ed.EntityID, "location", e.Location)
				continue
			}
			return e.Location
		}
	}
	return ""
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// backChannelClient is the client SOAP LogoutRequests go out with: the
// configured one (or a plain one) that never follows a redirect, so a
// service provider cannot point the hub's signed request somewhere else.
func (p *IdP) backChannelClient() *http.Client {
	c := http.Client{}
	if p.cfg.BackChannelClient != nil {
		c = *p.cfg.BackChannelClient
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = p.cfg.BackChannelTimeout
	return &c
}

// backChannelLogout sends a signed SOAP LogoutRequest to every participant
// in parts whose service provider is not exclude and lists a SOAP
// SingleLogoutService, concurrently, and waits for them all (each bounded by
// BackChannelTimeout). Failures are logged and counted; they never stop the
// logout.
func (p *IdP) backChannelLogout(ctx context.Context, r *http.Request, idp *saml.IdentityProvider, parts []Participant, exclude string) backChannelResult {
	res := backChannelResult{handled: map[string]bool{}}
	log := p.requestLog(r)
	type job struct {
		sp, location, id string
		ed               *saml.EntityDescriptor
		body             []byte
	}
	var jobs []job
	seen := map[string]bool{}
	for _, pt := range parts {
		if pt.ServiceProvider == "" || pt.ServiceProvider == exclude {
			continue
		}
		key := pt.ServiceProvider + "\x00" + pt.NameID + "\x00" + pt.SessionIndex
		if seen[key] {
			continue
		}
		seen[key] = true
		ed, err := p.serviceProvider(ctx, pt.ServiceProvider)
		if err != nil {
			// Unknown now (removed): crewjam logs it and skips it too.
			continue
		}
		loc := p.soapEndpoint(ed)
		if loc == "" {
			continue // front channel
		}
		res.handled[pt.ServiceProvider] = true
		id, body, err := p.soapLogoutRequest(idp, pt, loc)
		if err != nil {
			log.Error("back-channel logout: make request", "sp", pt.ServiceProvider, "err", err)
			p.m.backChannel.WithLabelValues(backChannelFailed).Inc()
			res.failed = append(res.failed, pt.ServiceProvider)
			continue
		}
		jobs = append(jobs, job{sp: pt.ServiceProvider, location: loc, id: id, ed: ed, body: body})
	}
	if len(jobs) == 0 {
		return res
	}
	client := p.backChannel
	errs := make([]error, len(jobs))
	took := make([]time.Duration, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			start := time.Now()
			// The request must not end with the browser's (a closed tab):
			// the logout goes on for the bound it has.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.BackChannelTimeout)
			defer cancel()
			errs[i] = p.sendSOAPLogout(cctx, client, j.location, j.body, j.sp, j.ed, j.id)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, j := range jobs {
		switch err := errs[i]; {
		case err != nil && reachable(err):
			log.Warn("back-channel logout failed; the browser is sent there", "sp", j.sp, "location", j.location, "took", took[i].Round(time.Millisecond), "err", err)
			p.m.backChannel.WithLabelValues(backChannelFront).Inc()
			delete(res.handled, j.sp)
			continue
		case err != nil:
			log.Warn("back-channel logout failed", "sp", j.sp, "location", j.location, "took", took[i].Round(time.Millisecond), "err", err)
			p.m.backChannel.WithLabelValues(backChannelFailed).Inc()
			res.failed = append(res.failed, j.sp)
			continue
		}
		log.Info("back-channel logout", "sp", j.sp, "took", took[i].Round(time.Millisecond))
		p.m.backChannel.WithLabelValues(backChannelSuccess).Inc()
	}
	return res
}

// soapLogoutRequest returns the ID and the SOAP envelope of a LogoutRequest
// for participant pt, signed enveloped with the IdP's current key.
func (p *IdP) soapLogoutRequest(idp *saml.IdentityProvider, pt Participant, location string) (string, []byte, error) {
	nameID := saml.NameID{Value: pt.NameID, Format: pt.NameIDFormat, NameQualifier: pt.NameQualifier, SPNameQualifier: pt.SPNameQualifier}
	lr := &saml.LogoutRequest{
		ID:           "id-" + strings.ReplaceAll(randomToken(), "-", "_"),
		Version:      "2.0",
		IssueInstant: p.now().UTC(),
		Destination:  location,
		Issuer:       &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: p.EntityID()},
		NameID:       &nameID,
	}
	if pt.SessionIndex != "" {
		lr.SessionIndex = &saml.SessionIndex{Value: pt.SessionIndex}
	}
	certs := [][]byte{idp.Certificate.Raw}
	sc, err := dsig.NewSigningContext(idp.Signer, certs)
	if err != nil {
		return "", nil, err
	}
	// Exclusive C14N, as crewjam signs (saml-core §5.4.3).
	sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := sc.SetSignatureMethod(idp.SignatureMethod); err != nil {
		return "", nil, err
	}
	signed, err := sc.SignEnveloped(lr.Element())
	if err != nil {
		return "", nil, fmt.Errorf("sign: %w", err)
	}
	env := etree.NewElement("soapenv:Envelope")
	env.CreateAttr("xmlns:soapenv", soapNS)
	env.CreateElement("soapenv:Body").AddChild(signed)
	doc := etree.NewDocument()
	doc.SetRoot(env)
	body, err := doc.WriteToBytes()
	if err != nil {
		return "", nil, err
	}
	return lr.ID, body, nil
}

const soapNS = "http://schemas.xmlsoap.org/soap/envelope/"

// sendSOAPLogout posts body to location and checks the LogoutResponse: SOAP
// envelope, signed (not SHA-1) by a signing key of the SP's registered
// metadata, from the SP, answering requestID, recent, status Success.
func (p *IdP) sendSOAPLogout(ctx context.Context, c *http.Client, location string, body []byte, sp string, ed *saml.EntityDescriptor, requestID string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, location, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "http://www.oasis-open.org/committees/security")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSOAPAnswer+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return answeredError{fmt.Errorf("HTTP status %d", resp.StatusCode)}
	}
	if len(raw) > maxSOAPAnswer {
		return answeredError{errors.New("answer too large")}
	}
	if err := p.checkSOAPLogoutResponse(raw, sp, ed, requestID); err != nil {
		return answeredError{err}
	}
	return nil
}

// checkSOAPLogoutResponse validates a SOAP answer to the LogoutRequest
// requestID sent to the service provider sp (metadata ed).
func (p *IdP) checkSOAPLogoutResponse(raw []byte, sp string, ed *saml.EntityDescriptor, requestID string) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" || root.NamespaceURI() != soapNS {
		return errors.New("answer is not a SOAP envelope")
	}
	var body *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Body" && c.NamespaceURI() == soapNS {
			if body != nil {
				return errors.New("answer has two SOAP bodies")
			}
			body = c
		}
	}
	if body == nil || len(body.ChildElements()) != 1 {
		return errors.New("answer has no single SOAP body element")
	}
	el := body.ChildElements()[0]
	if el.Tag != "LogoutResponse" || el.NamespaceURI() != "urn:oasis:names:tc:SAML:2.0:protocol" {
		return fmt.Errorf("answer holds %s, not a LogoutResponse", el.Tag)
	}
	certs := spSigningCerts(ed)
	if len(certs) == 0 {
		return errors.New("the SP's registered metadata has no signing certificate")
	}
	sig := el.FindElement("./Signature/SignedInfo/SignatureMethod")
	if sig == nil {
		return errors.New("LogoutResponse is not signed")
	}
	if alg := sig.SelectAttrValue("Algorithm", ""); strings.HasSuffix(alg, "sha1") {
		return errors.New("LogoutResponse is signed with SHA-1")
	}
	for _, dm := range el.FindElements("./Signature/SignedInfo/Reference/DigestMethod") {
		if strings.HasSuffix(dm.SelectAttrValue("Algorithm", ""), "sha1") {
			return errors.New("LogoutResponse digest is SHA-1")
		}
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: certs})
	vc.IdAttribute = "ID"
	vc.Clock = dsig.NewFakeClockAt(p.now())
	signed, err := vc.Validate(el.Copy())
	if err != nil {
		return fmt.Errorf("LogoutResponse signature: %w", err)
	}
	var lr saml.LogoutResponse
	d := etree.NewDocument()
	d.SetRoot(signed)
	buf, err := d.WriteToBytes()
	if err != nil {
		return err
	}
	if err := xml.Unmarshal(buf, &lr); err != nil {
		return fmt.Errorf("LogoutResponse: %w", err)
	}
	now := p.now()
	switch {
	case lr.Issuer == nil || lr.Issuer.Value != sp:
		return errors.New("LogoutResponse is not from the service provider it was sent to")
	case lr.InResponseTo != requestID:
		return errors.New("LogoutResponse answers another request")
	case lr.IssueInstant.Before(now.Add(-saml.MaxIssueDelay)) || lr.IssueInstant.After(now.Add(saml.MaxClockSkew)):
		return errors.New("LogoutResponse IssueInstant out of range")
	case lr.Status.StatusCode.Value != saml.StatusSuccess:
		return fmt.Errorf("LogoutResponse status %s", lr.Status.StatusCode.Value)
	}
	return nil
}

// spSigningCerts returns the signing certificates of an SP's metadata.
func spSigningCerts(ed *saml.EntityDescriptor) []*x509.Certificate {
	var out []*x509.Certificate
	for _, sd := range ed.SPSSODescriptors {
		out = append(out, metadata.SigningCerts(sd.KeyDescriptors)...)
	}
	return out
}

// logoutCompleteTemplate is crewjam's logged-out page with the service
// providers the back channel could not log out listed first.
func logoutCompleteTemplate(failed []string) *template.Template {
	return template.Must(template.New("logout-complete").Funcs(template.FuncMap{
		"all": func(f []string) []string { return append(append([]string(nil), failed...), f...) },
	}).Parse(`<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Logged out</title></head><body>` +
		`<p>You have been logged out.</p>` +
		`{{with all .Failed}}<p>The logout could not be confirmed by:</p><ul id="logout-failed">{{range .}}<li>{{.}}</li>{{end}}</ul>` +
		`<p>Close your browser to be sure you are logged out there.</p>{{end}}</body></html>`))
}

// sloBackChannel logs out, over the back channel, the other participants of
// the sessions the validated LogoutRequest req names, and returns r's
// context marked with them. A request from an SP that is not a participant
// of those sessions is left alone (crewjam refuses it).
func (p *IdP) sloBackChannel(r *http.Request, idp *saml.IdentityProvider, req *saml.IdpLogoutRequest) context.Context {
	ctx := r.Context()
	if req.ServiceProviderMetadata == nil {
		return ctx
	}
	initiator := req.ServiceProviderMetadata.EntityID
	cands, err := (&sessionProvider{p: p}).candidates(r)
	if err != nil {
		p.requestLog(r).Error("logout: sessions", "err", err)
		return ctx
	}
	var parts []Participant
	participant := false
	for _, s := range cands {
		if !req.MatchesSession(p.toSAML(s, s.UserID)) {
			continue
		}
		ps, err := p.cfg.Sessions.Participants(ctx, s.Hash)
		if err != nil {
			p.requestLog(r).Error("logout: session participants", "err", err)
			return ctx
		}
		for _, pt := range ps {
			participant = participant || pt.ServiceProvider == initiator
		}
		parts = append(parts, ps...)
	}
	if len(parts) > 0 && !participant {
		return ctx
	}
	return withBackChannel(ctx, p.backChannelLogout(ctx, r, idp, parts, initiator))
}
