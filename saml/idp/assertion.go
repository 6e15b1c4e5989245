package idp

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/crewjam/saml"
)

// Attribute names in assertions (NameFormat basic). Stable: service
// providers map them.
const (
	AttrUserName    = "userName"
	AttrEmail       = "email"
	AttrGivenName   = "givenName"
	AttrSurname     = "sn"
	AttrDisplayName = "displayName"
	AttrGroups      = "groups"
)

const attrFormatBasic = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

// notBeforeSkew backdates NotBefore for service providers whose clock runs a
// little behind.
const notBeforeSkew = 60 // seconds

func newID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "_" + hex.EncodeToString(b)
}

// assertionMaker builds the hub's assertions: persistent NameID = SCIM id,
// the six attributes, Audience, Recipient and InResponseTo, valid for
// AssertionValidity from the real clock.
type assertionMaker struct{ p *IdP }

func (m assertionMaker) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	p := m.p
	now := p.now().UTC()
	until := now.Add(p.cfg.AssertionValidity)
	notBefore := now.Add(-notBeforeSkew * 1e9)
	spID := req.ServiceProviderMetadata.EntityID
	var attrs []saml.Attribute
	add := func(name string, values ...string) {
		var vs []saml.AttributeValue
		for _, v := range values {
			if v != "" {
				vs = append(vs, saml.AttributeValue{Type: "xs:string", Value: v})
			}
		}
		if len(vs) > 0 {
			attrs = append(attrs, saml.Attribute{Name: name, FriendlyName: name, NameFormat: attrFormatBasic, Values: vs})
		}
	}
	add(AttrUserName, session.UserName)
	add(AttrEmail, session.UserEmail)
	add(AttrGivenName, session.UserGivenName)
	add(AttrSurname, session.UserSurname)
	add(AttrDisplayName, session.UserCommonName)
	add(AttrGroups, session.Groups...)
	classRef := "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
	if p.secure {
		classRef = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	}
	sessionEnd := session.ExpireTime
	req.Assertion = &saml.Assertion{
		ID:           newID(),
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: p.EntityID()},
		Subject: &saml.Subject{
			NameID: &saml.NameID{
				Format:          string(saml.PersistentNameIDFormat),
				NameQualifier:   p.EntityID(),
				SPNameQualifier: spID,
				Value:           session.NameID,
			},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: req.Request.ID,
					NotOnOrAfter: until,
					Recipient:    req.ACSEndpoint.Location,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore:            notBefore,
			NotOnOrAfter:         until,
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: spID}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant:        session.CreateTime.UTC(),
			SessionIndex:        session.Index,
			SessionNotOnOrAfter: &sessionEnd,
			AuthnContext: saml.AuthnContext{
				AuthnContextClassRef: &saml.AuthnContextClassRef{Value: classRef},
			},
		}},
	}
	if len(attrs) > 0 {
		req.Assertion.AttributeStatements = []saml.AttributeStatement{{Attributes: attrs}}
	}
	return nil
}

// responseWriter stamps the Response with the real clock (the request may
// have been validated against the time its login form was shown), signs it
// and posts it with crewjam's auto-submitting form: through
// writeSignedResponse (response.go) when it renders the request, otherwise
// through crewjam.
type responseWriter struct {
	p      *IdP
	signer xmlSigner
}

func (rw responseWriter) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	req.Now = rw.p.now().UTC()
	write := req.WriteResponse
	if fastWritable(req) {
		write = func(w http.ResponseWriter) error { return writeSignedResponse(w, req, rw.signer, newResponseID()) }
	}
	if err := write(w); err != nil {
		return err
	}
	switch {
	case req.Assertion == nil:
		rw.p.m.responses.WithLabelValues("error").Inc()
	case req.Request.ID == "":
		rw.p.m.responses.WithLabelValues("idp_initiated").Inc()
	default:
		rw.p.m.responses.WithLabelValues("sso").Inc()
	}
	return nil
}
