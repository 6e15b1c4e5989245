package idp

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

// benchmarkCrewjam measures crewjam's own Response path (assertion, two
// signatures, serialisation) with nothing of this package around it: the
// reference the hub's end-to-end SSO benchmarks (scim/hub) compare with.
func benchmarkCrewjam(b *testing.B, alg string) {
	now := time.Now()
	k, err := GenerateKey(alg, "idp", now, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	signer, cert, _, _ := ParseKeyPair(k.KeyPEM, k.CertPEM)
	md, _ := url.Parse("https://idp.example/saml/metadata")
	sso, _ := url.Parse("https://idp.example/saml/sso")
	sig := (&signingKey{alg: alg}).method()
	idp := &saml.IdentityProvider{Signer: signer, Certificate: cert, MetadataURL: *md, SSOURL: *sso, SignatureMethod: sig}
	acs := "https://sp.example/acs"
	spMD := &saml.EntityDescriptor{EntityID: "https://sp.example", SPSSODescriptors: []saml.SPSSODescriptor{{
		AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: saml.HTTPPostBinding, Location: acs}},
	}}}
	session := &saml.Session{ID: "s", NameID: "u", UserName: "alice", UserEmail: "a@example.org", CreateTime: now, Index: "_i"}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		req := &saml.IdpAuthnRequest{
			IDP: idp, HTTPRequest: httptest.NewRequest("GET", "/", nil), Now: now,
			Request:                 saml.AuthnRequest{ID: "id-1", IssueInstant: now},
			ServiceProviderMetadata: spMD, SPSSODescriptor: &spMD.SPSSODescriptors[0],
			ACSEndpoint: &spMD.SPSSODescriptors[0].AssertionConsumerServices[0],
		}
		if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
			b.Fatal(err)
		}
		if _, err := req.PostBinding(); err != nil {
			b.Fatal(err)
		}
	}
	if used := cpuTime() - cpu0; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "responses/cpu-s")
	}
}

func BenchmarkCrewjamResponseRSA(b *testing.B)   { benchmarkCrewjam(b, AlgRSA) }
func BenchmarkCrewjamResponseECDSA(b *testing.B) { benchmarkCrewjam(b, AlgECDSA) }
