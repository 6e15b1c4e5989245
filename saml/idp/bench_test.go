package idp

import (
	"crypto"
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

// benchmarkWriter measures this package's Response writer alone (the same
// assertion, two signatures, the form): what an SSO costs once the request
// is parsed and the session found.
func benchmarkWriter(b *testing.B, alg string) {
	f := newResponseFixture(b, alg, "https://sp.example/acs")
	now := time.Now()
	s := &saml.Session{ID: "s", NameID: "u", UserName: "alice", UserEmail: "a@example.org", CreateTime: now, ExpireTime: now.Add(time.Hour), Index: "_i"}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		req := f.request(b, s, "id-1", "", now, true)
		if err := writeSignedResponse(httptest.NewRecorder(), req, f.sign, newResponseID()); err != nil {
			b.Fatal(err)
		}
	}
	if used := cpuTime() - cpu0; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "responses/cpu-s")
	}
}

func BenchmarkResponseWriterRSA(b *testing.B)   { benchmarkWriter(b, AlgRSA) }
func BenchmarkResponseWriterECDSA(b *testing.B) { benchmarkWriter(b, AlgECDSA) }

// benchmarkSignatures measures the two bare signatures (over SHA-256
// digests) every Response needs: the ceiling of any SSO path with that key.
func benchmarkSignatures(b *testing.B, alg string) {
	k, err := GenerateKey(alg, "idp", time.Now(), time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	signer, _, _, _ := ParseKeyPair(k.KeyPEM, k.CertPEM)
	s := xmldsigSigner(signer)
	digest := make([]byte, 32)
	cpu0 := cpuTime()
	for b.Loop() {
		for range 2 {
			if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	}
	if used := cpuTime() - cpu0; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "pairs/cpu-s")
	}
}

func BenchmarkTwoSignaturesRSA(b *testing.B)   { benchmarkSignatures(b, AlgRSA) }
func BenchmarkTwoSignaturesECDSA(b *testing.B) { benchmarkSignatures(b, AlgECDSA) }
