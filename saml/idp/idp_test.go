package idp

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const spMetadata = `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.org/sp">
<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="SLO"/>
<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="ACS" index="0"/>
<AssertionConsumerService Binding="BINDING" Location="ACS2" index="1"/>
</SPSSODescriptor></EntityDescriptor>`

func spMD(acs, binding, acs2, slo string) []byte {
	return []byte(strings.NewReplacer("ACS2", acs2, "ACS", acs, "BINDING", binding, "SLO", slo).Replace(spMetadata))
}

func TestParseSPMetadata(t *testing.T) {
	const ok = "https://sp.example.org/acs"
	const art = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
	tests := []struct {
		name string
		md   []byte
		ok   bool
	}{
		{"valid", spMD(ok, art, ok, "https://sp.example.org/slo"), true},
		{"http ACS", spMD("http://127.0.0.1:8081/acs", art, ok, "https://sp.example.org/slo"), true},
		{"javascript ACS", spMD("javascript:alert(1)", art, ok, "https://sp.example.org/slo"), false},
		{"JavaScript ACS upper case", spMD("JavaScript:alert(1)", art, ok, "https://sp.example.org/slo"), false},
		{"data ACS", spMD("data:text/html,x", art, ok, "https://sp.example.org/slo"), false},
		{"scheme-relative ACS", spMD("//evil.example/acs", art, ok, "https://sp.example.org/slo"), false},
		{"javascript ACS under an unknown binding", spMD(ok, "urn:example:unknown", "javascript:alert(1)", "https://sp.example.org/slo"), false},
		{"javascript SLO", spMD(ok, art, ok, "javascript:alert(1)"), false},
		{"no POST ACS", []byte(strings.Replace(string(spMD(ok, art, ok, "https://sp.example.org/slo")), "HTTP-POST", "HTTP-Redirect", 1)), false},
		{"no SPSSODescriptor", []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`), false},
		{"no entityID", []byte(strings.Replace(string(spMD(ok, art, ok, "https://sp.example.org/slo")), `entityID="https://sp.example.org/sp"`, "", 1)), false},
		{"not XML", []byte("hello"), false},
		{"other root", []byte(`<foo/>`), false},
		{"too large", append(spMD(ok, art, ok, "https://sp.example.org/slo"), bytes.Repeat([]byte(" "), MaxMetadataSize)...), false},
		{"aggregate with one SP", []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
			strings.Replace(string(spMD(ok, art, ok, "https://sp.example.org/slo")), ` xmlns="urn:oasis:names:tc:SAML:2.0:metadata"`, "", 1) + `</EntitiesDescriptor>`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ed, err := ParseSPMetadata(tt.md)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if ed.EntityID != "https://sp.example.org/sp" {
					t.Fatalf("entity id %q", ed.EntityID)
				}
				return
			}
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("err = %v, want ErrBadMetadata", err)
			}
		})
	}
}

// TestSafeRelayState: the classic open-redirect payloads. Browsers strip
// tab, CR and LF anywhere in a URL and leading C0 controls and spaces, read
// "\\" as "/", and an SP may percent-decode RelayState before redirecting.
func TestSafeRelayState(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"/", true},
		{"/app?x=1", true},
		{"/a/b#c", true},
		{"/kurs/%C3%9Cbung?q=a%20b", true},
		{"/kurs/Übung", true},
		{"/a:b/c", true},
		{"/path/with//double", true},

		{"", false},
		{"//evil.example/", false},
		{"//x", false},
		{"/\\x", false},
		{"/\\/x", false},
		{"\\\\x", false},
		{"/x\\y", false},
		{"/\t/x", false},  // "/%09/x" once decoded
		{"/%09/x", false}, // decoded by the SP
		{"/\n/x", false},
		{"/\r/x", false},
		{"/\r\n/x", false},
		{"/ok\r\nSet-Cookie: x", false},
		{"/\x00/x", false},
		{"/\x7f/x", false},
		{"/%2F/x", false}, // "//x" once decoded
		{"/%2f%2fx", false},
		{"/%5C/x", false}, // "/\\/x" once decoded
		{"/%0d%0a/x", false},
		{"/%zz", false}, // does not decode
		{" /x", false},
		{"\t/x", false},
		{"/ /x", false},
		{"/x y", false},
		{"/\u00a0/x", false}, // no-break space
		{"/\u2028/x", false}, // line separator
		{"/\u202e/x", false}, // right-to-left override
		{"/\u200b/x", false}, // zero-width space
		{"/\xff/x", false},   // not UTF-8
		{"https:x", false},
		{"https://evil.example/", false},
		{"http:/x", false},
		{"javascript:alert(1)", false},
		{"JavaScript:alert(1)", false},
		{"data:text/html,x", false},
		{"evil.example", false},
		{"x/y", false},
		{"./x", false},
		{"?x=1", false},
		{"#x", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := safeRelayState(tt.in); got != tt.want {
				t.Errorf("safeRelayState(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{"rsa", "ecdsa", AlgRSA, AlgECDSA, ""} {
		k, err := GenerateKey(alg, "hub.example", now, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		_, cert, got, err := ParseKeyPair(k.KeyPEM, k.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := NormalizeAlgorithm(alg)
		if got != want || k.Algorithm != want || cert.Subject.CommonName != "hub.example" {
			t.Errorf("%q: algorithm %s/%s, cn %s", alg, got, k.Algorithm, cert.Subject.CommonName)
		}
	}
	if _, err := NormalizeAlgorithm("dsa"); err == nil {
		t.Error("dsa accepted")
	}
	a, _ := GenerateKey(AlgRSA, "a", now, time.Time{})
	b, _ := GenerateKey(AlgRSA, "b", now, time.Time{})
	if _, _, _, err := ParseKeyPair(a.KeyPEM, b.CertPEM); err == nil {
		t.Error("mismatched pair accepted")
	}
	if _, _, _, err := ParseKeyPair([]byte("nope"), a.CertPEM); err == nil {
		t.Error("garbage key accepted")
	}
}

func deflate64(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	w.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestRedirectRequestBounds(t *testing.T) {
	small := deflate64(t, []byte(`<AuthnRequest IssueInstant="2030-01-02T03:04:05Z"/>`))
	if err := checkRedirectRequest(small); err != nil {
		t.Fatal(err)
	}
	if ii, ok := issueInstant(small, true); !ok || !ii.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("issueInstant = %v %v", ii, ok)
	}
	bomb := deflate64(t, bytes.Repeat([]byte("A"), 8<<20))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	if err := checkRedirectRequest(bomb); !errors.Is(err, errTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	if _, ok := issueInstant(bomb, true); ok {
		t.Fatal("bomb parsed")
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{BaseURL: "ftp://x", Algorithm: "dsa", SessionLifetime: -1}.Validate()
	for _, want := range []string{"base url", "users", "sessions", "keys", "dsa", "session lifetime"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestPendingCookie(t *testing.T) {
	in := pending{Kind: "post", Form: "SAMLRequest=" + strings.Repeat("PHNhbWxwOkF1dGhuUmVxdWVzdC8+", 100) + "&RelayState=%2Fx"}
	enc, err := encodePending(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > maxPendingCookie {
		t.Fatalf("encoded %d bytes", len(enc))
	}
	out, err := decodePending(enc)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	random := make([]byte, 6000)
	rand.Read(random)
	if _, err := encodePending(pending{Kind: "redirect", Query: base64.StdEncoding.EncodeToString(random)}); err == nil {
		t.Error("an incompressible request larger than a cookie was accepted")
	}
	if _, err := decodePending("!!!"); err == nil {
		t.Error("garbage decoded")
	}
}
