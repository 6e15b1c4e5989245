package hub

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml/samlsp"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/connectsso/connect/saml/idp"
)

var certRE = regexp.MustCompile(`<ds:X509Certificate>([^<]+)</ds:X509Certificate>`)

// signingCerts returns the certificates in the ds:Signature elements of a
// posted SAMLResponse page, in document order (Response first).
func signingCerts(t *testing.T, page string) []string {
	t.Helper()
	_, v := formFields(page)
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range certRE.FindAllStringSubmatch(string(raw), -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), ""))
	}
	return out
}

func certB64(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM")
	}
	return base64.StdEncoding.EncodeToString(b.Bytes)
}

// loginUntilResponse logs in through sp and returns the hub's SAMLResponse
// page without posting it.
func (e *samlEnv) loginUntilResponse(t *testing.T, c *http.Client, sp *testSP, user, pw string) string {
	t.Helper()
	code, page := browse(t, c, sp.srv.URL+"/app")
	if code != 200 {
		t.Fatal(code, page)
	}
	code, page = e.submitLogin(t, c, page, user, pw)
	if code != 200 || !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("login: %d\n%s", code, page)
	}
	return page
}

// TestSAMLKeyRotation: an SP holding the metadata from before a rotation
// keeps working through the overlap; one that refreshed it keeps working
// after the switch.
func TestSAMLKeyRotation(t *testing.T) {
	fc := clockwork.NewFakeClockAt(time.Now().Truncate(time.Second))
	e := newSAMLEnv(t, func(c *Config) {
		c.Clock = fc.Now
		c.SAML.Algorithm = "rsa"
		c.SAML.KeyPEM, c.SAML.CertPEM = nil, nil // keys in the store
	})
	e.addUser(t, "alice", "pw-alice", true)
	spClock := func(o *samlsp.Options) { o.Clock = dsig.NewFakeClock(fc) }
	stale := e.newSP(t, true, spClock) // holds the metadata with the first key only
	keys, err := SigningKeys(context.Background(), e.st)
	if err != nil || len(keys) != 1 {
		t.Fatalf("first key: %v %v", keys, err)
	}
	first := certB64(t, keys[0].CertPEM)

	next, err := RotateSigningKey(context.Background(), e.st, "test", e.hub.URL, "rsa", time.Hour, fc.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RotateSigningKey(context.Background(), e.st, "test", e.hub.URL, "rsa", time.Hour, fc.Now()); err == nil {
		t.Fatal("a second rotation while one is pending was accepted")
	}
	fc.Advance(idp.DefaultKeyRefresh + time.Second) // replicas pick the new key up
	md := e.idpMetadata(t)
	var published []string
	for _, kd := range md.IDPSSODescriptors[0].KeyDescriptors {
		if kd.Use == "signing" {
			published = append(published, kd.KeyInfo.X509Data.X509Certificates[0].Data)
		}
	}
	if len(published) != 2 || published[0] != first || published[1] != certB64(t, next.CertPEM) {
		t.Fatalf("metadata during the overlap lists %d signing keys, want the current then the next", len(published))
	}
	fresh := e.newSP(t, true, spClock) // refreshed: trusts both

	// During the overlap the first key signs and both SPs log in.
	for name, sp := range map[string]*testSP{"stale": stale, "fresh": fresh} {
		page := e.loginUntilResponse(t, e.browser(t), sp, "alice", "pw-alice")
		if certs := signingCerts(t, page); len(certs) == 0 || certs[0] != first {
			t.Fatalf("%s: response not signed with the first key during the overlap", name)
		}
	}
	for name, sp := range map[string]*testSP{"stale": stale, "fresh": fresh} {
		if page := e.spLogin(t, e.browser(t), sp, "alice", "pw-alice"); !strings.HasPrefix(page, "hello userName=alice") {
			t.Fatalf("%s SP during the overlap: %s", name, page)
		}
	}

	// After the overlap the next key signs; the refreshed SP works.
	fc.Advance(time.Hour)
	c := e.browser(t)
	page := e.loginUntilResponse(t, c, fresh, "alice", "pw-alice")
	if certs := signingCerts(t, page); len(certs) == 0 || certs[0] != certB64(t, next.CertPEM) {
		t.Fatal("response not signed with the next key after the overlap")
	}
	code, body := postResponse(t, c, page)
	if code != 200 || !strings.HasPrefix(body, "hello userName=alice") {
		t.Fatalf("refreshed SP after the switch: %d %s", code, body)
	}
	md = e.idpMetadata(t)
	if n := len(md.IDPSSODescriptors[0].KeyDescriptors); n != 2 { // signing + encryption, the old key gone
		t.Fatalf("metadata after the switch has %d key descriptors", n)
	}
}

func mustDecode(t *testing.T, page string) string {
	t.Helper()
	_, v := formFields(page)
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
