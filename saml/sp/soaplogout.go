package sp

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
)

// PathSLOSOAP is the bridge's back-channel SingleLogoutService (SAML SOAP
// binding): the hub posts a signed LogoutRequest here, server to server,
// when a hub session ends, so that single logout does not depend on the
// browser reaching every site in turn. The SP metadata lists it after the
// HTTP-Redirect and HTTP-POST endpoints.
const PathSLOSOAP = "/saml/slo/soap"

// maxSOAPRequest bounds a back-channel LogoutRequest.
const maxSOAPRequest = 64 << 10

// addSOAPLogout lists PathSLOSOAP in SP metadata ed.
func (s *SP) addSOAPLogout(ed *saml.EntityDescriptor) {
	if len(ed.SPSSODescriptors) == 0 {
		return
	}
	sd := &ed.SPSSODescriptors[0]
	sd.SingleLogoutServices = append(sd.SingleLogoutServices, saml.Endpoint{Binding: saml.SOAPBinding, Location: s.base + PathSLOSOAP})
}

// serveSOAPLogout answers a hub's back-channel LogoutRequest. The request
// must be signed (enveloped, not SHA-1) by a key of the pinned metadata of
// the hub it names as Issuer, current, addressed here (or to no
// Destination), and new to the replay cache shared by the replicas;
// anything else gets a SOAP fault and ends nothing. A valid request ends
// every session of its NameID from that hub (as the front-channel
// LogoutRequest does: the bridge indexes sessions by hub and subject) and is
// answered with a LogoutResponse signed with the bridge's key for that hub.
func (s *SP) serveSOAPLogout(w http.ResponseWriter, r *http.Request) {
	log := s.requestLog(r).With("binding", "soap")
	ctx := r.Context()
	refuse := func(why string, err error) {
		log.Warn("slo: back-channel logout request refused", "reason", why, "err", err)
		s.m.logout(logoutHubRefused)
		_ = saml.WriteSOAPFault(w, "the logout request is refused")
	}
	if !saml.IsSOAPRequest(r) {
		refuse("not a SOAP message", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSOAPRequest))
	if err != nil {
		refuse("unreadable", err)
		return
	}
	issuer, err := soapLogoutIssuer(body)
	if err != nil {
		refuse("malformed", err)
		return
	}
	h, err := s.hubByEntityID(ctx, issuer)
	if err != nil || h == nil {
		refuse("unknown issuer", err)
		return
	}
	log = log.With("hub", h.hub.ID)
	spc := *h.sp
	spc.ReplayCache = replayAdapter{ctx: ctx, rc: s.cfg.Replay, hub: h.hub.ID}
	spc.SloURL = mustURL(s.base + PathSLOSOAP)
	lr, err := spc.ParseXMLSOAPLogoutRequest(body)
	if err != nil {
		var ivr *saml.InvalidResponseError
		if errors.As(err, &ivr) && ivr.PrivateErr != nil {
			err = ivr.PrivateErr
		}
		refuse("invalid", err)
		return
	}
	status := saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}}
	if lr.NameID == nil || lr.NameID.Value == "" {
		log.Warn("slo: back-channel logout request without NameID")
		status.StatusCode.Value = saml.StatusRequester
		s.m.logout(logoutHubRefused)
	} else {
		sub := lr.NameID.Value
		status.StatusCode.Value = s.endHubSessions(ctx, log, h.hub.ID, sub)
	}
	resp, err := spc.MakeSOAPLogoutResponse(lr.ID, status)
	if err != nil {
		log.Error("slo: back-channel logout response", "err", err)
		_ = saml.WriteSOAPFault(w, "the logout response could not be made")
		return
	}
	if err := saml.WriteSOAPLogoutResponse(w, resp); err != nil {
		log.Warn("slo: write back-channel logout response", "err", err)
	}
}

// soapLogoutIssuer reads the Issuer of the LogoutRequest in a SOAP envelope,
// before anything is verified, to pick the hub whose keys verify it.
func soapLogoutIssuer(body []byte) (string, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil {
		return "", err
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" || root.NamespaceURI() != "http://schemas.xmlsoap.org/soap/envelope/" {
		return "", errors.New("not a SOAP envelope")
	}
	lr := root.FindElement("./Body/LogoutRequest")
	if lr == nil || lr.NamespaceURI() != nsProtocol {
		return "", errors.New("no samlp:LogoutRequest in the SOAP body")
	}
	iss := lr.FindElement("./Issuer")
	if iss == nil || iss.NamespaceURI() != nsAssertion {
		return "", errors.New("logout request has no Issuer")
	}
	return strings.TrimSpace(iss.Text()), nil
}
