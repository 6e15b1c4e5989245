package hub

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"

	"github.com/connectsso/connect/saml/idp"
)

// verifyRawECDSA checks every ds:Signature in doc: the SignatureValue is r || s
// (XML-DSig 1.1 §6.4.3, 64 bytes for P-256, not DER) and verifies over the
// canonical SignedInfo with pub. It returns how many it checked.
func verifyRawECDSA(t *testing.T, doc []byte, pub *ecdsa.PublicKey) int {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sig := range d.FindElements("//Signature") {
		si := sig.FindElement("./SignedInfo")
		sv := sig.FindElement("./SignatureValue")
		if si == nil || sv == nil {
			t.Fatal("signature without SignedInfo/SignatureValue")
		}
		if m := si.FindElement("./SignatureMethod"); m == nil || m.SelectAttrValue("Algorithm", "") != dsig.ECDSASHA256SignatureMethod {
			t.Fatalf("signature method is not ecdsa-sha256")
		}
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.Text()), ""))
		if err != nil || len(raw) != 64 {
			t.Fatalf("SignatureValue is %d bytes, want 64 (r || s): %v", len(raw), err)
		}
		ctx, err := etreeutils.NSBuildParentContext(si)
		if err != nil {
			t.Fatal(err)
		}
		detached, err := etreeutils.NSDetatch(ctx, si)
		if err != nil {
			t.Fatal(err)
		}
		canon, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(detached)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(canon)
		if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
			t.Fatal("ECDSA signature does not verify over SignedInfo")
		}
		n++
	}
	return n
}

func ecdsaPub(t *testing.T, certPEM []byte) *ecdsa.PublicKey {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.PublicKey.(*ecdsa.PublicKey)
}

// TestSAMLECDSA: with an ECDSA P-256 key (static here; generated with
// --saml-signing ecdsa) the metadata, the Response and the Assertion carry
// standard r || s signatures, and a logout propagated to an SP completes
// (crewjam's logout-state cookie keeps its DER signature).
func TestSAMLECDSA(t *testing.T) {
	k, err := idp.GenerateKey(idp.AlgECDSA, "static", time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	pub := ecdsaPub(t, k.CertPEM)
	e := newSAMLEnv(t, func(c *Config) { c.SAML.KeyPEM, c.SAML.CertPEM = k.KeyPEM, k.CertPEM })
	u := e.addUser(t, "alice", "pw-alice", true)

	_, md := browse(t, e.browser(t), e.hub.URL+idp.PathMetadata)
	if n := verifyRawECDSA(t, []byte(md), pub); n != 1 {
		t.Fatalf("metadata has %d signatures", n)
	}
	if keys, _ := SigningKeys(context.Background(), e.st); len(keys) != 0 {
		t.Fatalf("a static key must not generate stored keys (%d)", len(keys))
	}

	sp := e.newSP(t, false, func(o *samlsp.Options) { o.SignRequest = true })
	plain := encKeyRE.ReplaceAll(sp.metadata(t), nil)
	if _, err := RegisterServiceProvider(context.Background(), e.st, "test", plain, "test", false); err != nil {
		t.Fatal(err)
	}
	c := e.browser(t)
	page := e.loginUntilResponse(t, c, sp, "alice", "pw-alice")
	if n := verifyRawECDSA(t, []byte(mustDecode(t, page)), pub); n != 2 {
		t.Fatalf("response has %d signatures, want 2 (Response and Assertion)", n)
	}

	// Hub logout with that SP as a participant: the LogoutRequest goes to the
	// SP, whose LogoutResponse comes back and finishes the logout.
	hubURL, _ := url.Parse(e.hub.URL)
	secret := cookieValue(c, hubURL, idp.CookieName(e.hub.URL, idp.SessionCookie))
	parts, _ := e.st.IdPSessionParticipants(context.Background(), hashFor(secret))
	if len(parts) != 1 {
		t.Fatalf("participants %+v", parts)
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(e.hub.URL+idp.PathLogout, url.Values{idp.FieldCSRF: {cookieValue(c, hubURL, idp.CookieName(e.hub.URL, idp.CSRFCookie))}})
	code, body := readBody(t, resp, err)
	var reqID string
	switch {
	case code == http.StatusFound:
		loc, _ := url.Parse(resp.Header.Get("Location"))
		raw, _ := base64.StdEncoding.DecodeString(loc.Query().Get("SAMLRequest"))
		inflated, _ := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
		var lr saml.LogoutRequest
		if err := xml.Unmarshal(inflated, &lr); err != nil {
			t.Fatalf("LogoutRequest: %v", err)
		}
		reqID = lr.ID
	case code == http.StatusOK:
		_, v := formFields(body)
		raw, _ := base64.StdEncoding.DecodeString(v.Get("SAMLRequest"))
		if verifyRawECDSA(t, raw, pub) != 1 {
			t.Fatal("LogoutRequest not signed")
		}
		var lr saml.LogoutRequest
		if err := xml.Unmarshal(raw, &lr); err != nil {
			t.Fatalf("LogoutRequest: %v\n%s", err, body)
		}
		reqID = lr.ID
	default:
		t.Fatalf("logout: %d %s", code, body)
	}
	sawState := false
	for _, sc := range resp.Cookies() {
		if sc.Name == "saml_idp_logout" {
			sawState = true
			_, sig, _ := strings.Cut(sc.Value, ".")
			der, _ := base64.RawURLEncoding.DecodeString(sig)
			var rs struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(der, &rs); err != nil {
				t.Fatalf("logout state signature is not DER: %v", err)
			}
		}
	}
	if !sawState {
		t.Fatal("no logout-state cookie: the logout was not propagated")
	}
	spsp := sp.mw.ServiceProvider
	back, err := spsp.MakeRedirectLogoutResponse(reqID, "")
	if err != nil {
		t.Fatal(err)
	}
	code, body = browse(t, c, back.String())
	if code != http.StatusOK || strings.Contains(strings.ToLower(body), "invalid") {
		t.Fatalf("finishing the logout: %d\n%s\n%s", code, body, e.logs.String())
	}
	if _, err := e.st.IdPSession(context.Background(), hashFor(secret)); err == nil {
		t.Fatal("session survived the logout")
	}
	_ = u
}
