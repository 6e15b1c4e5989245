package idp

import (
	"io"
	"log/slog"
	"testing"

	"github.com/crewjam/saml"
)

// TestSOAPEndpointOrigin: the hub calls an SP's SOAP logout endpoint only on
// the origin of the SP's ACS, so registered metadata cannot aim the hub's
// server-side POST at another host.
func TestSOAPEndpointOrigin(t *testing.T) {
	p := &IdP{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ed := func(acs, slo string) *saml.EntityDescriptor {
		return &saml.EntityDescriptor{EntityID: "sp", SPSSODescriptors: []saml.SPSSODescriptor{{
			SSODescriptor:             saml.SSODescriptor{SingleLogoutServices: []saml.Endpoint{{Binding: saml.SOAPBinding, Location: slo}}},
			AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: saml.HTTPPostBinding, Location: acs}},
		}}}
	}
	for _, tt := range []struct{ acs, slo, want string }{
		{"https://site.example/saml/acs", "https://site.example/saml/slo/soap", "https://site.example/saml/slo/soap"},
		{"https://site.example/saml/acs", "https://SITE.example/saml/slo/soap", "https://SITE.example/saml/slo/soap"},
		{"https://site.example/saml/acs", "https://internal.example/admin", ""},
		{"https://site.example/saml/acs", "https://site.example:8443/x", ""},
		{"https://site.example/saml/acs", "http://site.example/x", ""},
		{"http://127.0.0.1:8080/saml/acs", "http://127.0.0.1:8080/saml/slo/soap", "http://127.0.0.1:8080/saml/slo/soap"},
		{"http://127.0.0.1:8080/saml/acs", "http://127.0.0.1:6379/", ""},
		{"https://site.example/saml/acs", "https://user@site.example/x", ""},
	} {
		if got := p.soapEndpoint(ed(tt.acs, tt.slo)); got != tt.want {
			t.Errorf("ACS %s, SOAP %s: endpoint %q, want %q", tt.acs, tt.slo, got, tt.want)
		}
	}
}
