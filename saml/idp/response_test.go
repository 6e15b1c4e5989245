package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html"
	"math/big"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// responseFixture is an IdP key and an SSO request answered with the hub's
// assertion for one session.
type responseFixture struct {
	idp  *saml.IdentityProvider
	sign xmlSigner
	pub  crypto.PublicKey
	sp   *saml.EntityDescriptor
}

func newResponseFixture(tb testing.TB, alg, acs string) *responseFixture {
	tb.Helper()
	k, err := GenerateKey(alg, "idp", time.Now().Add(-time.Hour), time.Time{})
	if err != nil {
		tb.Fatal(err)
	}
	signer, cert, _, err := ParseKeyPair(k.KeyPEM, k.CertPEM)
	if err != nil {
		tb.Fatal(err)
	}
	sk := newSigningKey("k", alg, signer, cert, time.Time{})
	md, _ := url.Parse("https://idp.example.org/saml/metadata")
	sso, _ := url.Parse("https://idp.example.org/saml/sso")
	ip := &saml.IdentityProvider{Signer: xmldsigSigner(signer), Certificate: cert, MetadataURL: *md, SSOURL: *sso, SignatureMethod: sk.method()}
	spMD := &saml.EntityDescriptor{EntityID: "https://sp.example.org/saml/metadata", SPSSODescriptors: []saml.SPSSODescriptor{{
		AssertionConsumerServices: []saml.IndexedEndpoint{{Binding: saml.HTTPPostBinding, Location: acs}},
	}}}
	return &responseFixture{
		idp: ip, sp: spMD, pub: signer.Public(),
		sign: xmlSigner{signer: ip.Signer, method: sk.method(), certB64: sk.certB64},
	}
}

// request is the IdpAuthnRequest for s answering requestID ("" for
// IdP-initiated), with the hub's assertion made at now.
func (f *responseFixture) request(tb testing.TB, s *saml.Session, requestID, relay string, now time.Time, secure bool) *saml.IdpAuthnRequest {
	tb.Helper()
	p := &IdP{base: "https://idp.example.org", secure: secure, cfg: Config{Clock: func() time.Time { return now }, AssertionValidity: DefaultAssertionValidity}}
	req := &saml.IdpAuthnRequest{
		IDP: f.idp, HTTPRequest: httptest.NewRequest("GET", "/", nil), Now: now.UTC(), RelayState: relay,
		Request:                 saml.AuthnRequest{ID: requestID, IssueInstant: now},
		ServiceProviderMetadata: f.sp, SPSSODescriptor: &f.sp.SPSSODescriptors[0],
		ACSEndpoint: &f.sp.SPSSODescriptors[0].AssertionConsumerServices[0],
	}
	if err := (assertionMaker{p}).MakeAssertion(req, s); err != nil {
		tb.Fatal(err)
	}
	return req
}

var samlResponseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`)

// formResponse returns the page with the SAMLResponse value cut out, and
// the decoded Response.
func formResponse(tb testing.TB, page string) (string, []byte) {
	tb.Helper()
	m := samlResponseField.FindStringSubmatchIndex(page)
	if m == nil {
		tb.Fatalf("no SAMLResponse in %.300s", page)
	}
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(page[m[2]:m[3]]))
	if err != nil {
		tb.Fatal(err)
	}
	return page[:m[2]] + page[m[3]:], raw
}

// verifyEnveloped checks, with goxmldsig's exclusive canonicaliser (not the
// writer's), each ds:Signature of doc: the Reference names its parent, the
// digest is that of the parent's canonical form without the Signature, and
// the SignatureValue verifies over the canonical SignedInfo with pub (RSA
// PKCS #1 v1.5, or ECDSA r || s). It returns the signature values by the
// signed element's local name.
func verifyEnveloped(tb testing.TB, doc []byte, pub crypto.PublicKey) map[string]string {
	tb.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		tb.Fatal(err)
	}
	c14n := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	canon := func(el *etree.Element) []byte {
		ctx, err := etreeutils.NSBuildParentContext(el)
		if err != nil {
			tb.Fatal(err)
		}
		det, err := etreeutils.NSDetatch(ctx, el)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := c14n.Canonicalize(det)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	out := map[string]string{}
	for _, sig := range d.FindElements("//Signature") {
		parent := sig.Parent()
		si := sig.FindElement("./SignedInfo")
		ref := si.FindElement("./Reference")
		if got, want := ref.SelectAttrValue("URI", ""), "#"+parent.SelectAttrValue("ID", ""); got != want {
			tb.Fatalf("%s: Reference URI %q, want %q", parent.Tag, got, want)
		}
		unsigned := parent.Copy()
		for _, c := range unsigned.ChildElements() {
			if c.Tag == "Signature" {
				unsigned.RemoveChild(c)
			}
		}
		// Copy loses the parent's namespace context: put the copy back
		// where the original was to canonicalise it in context.
		if pp := parent.Parent(); pp != nil {
			i := parent.Index()
			pp.RemoveChildAt(i)
			pp.InsertChildAt(i, unsigned)
			h := sha256.Sum256(canon(unsigned))
			pp.RemoveChildAt(i)
			pp.InsertChildAt(i, parent)
			checkDigest(tb, parent.Tag, ref, h)
		} else {
			h := sha256.Sum256(canon(unsigned))
			checkDigest(tb, parent.Tag, ref, h)
		}
		sv := sig.FindElement("./SignatureValue").Text()
		raw, err := base64.StdEncoding.DecodeString(sv)
		if err != nil {
			tb.Fatal(err)
		}
		h := sha256.Sum256(canon(si))
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], raw); err != nil {
				tb.Fatalf("%s: RSA signature: %v", parent.Tag, err)
			}
		case *ecdsa.PublicKey:
			if len(raw) != 64 || !ecdsa.Verify(k, h[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
				tb.Fatalf("%s: ECDSA signature (%d bytes) does not verify", parent.Tag, len(raw))
			}
		}
		out[parent.Tag] = sv
	}
	if len(out) != 2 {
		tb.Fatalf("signed elements %v, want Response and Assertion", out)
	}
	return out
}

func checkDigest(tb testing.TB, what string, ref *etree.Element, h [32]byte) {
	tb.Helper()
	if got, want := ref.FindElement("./DigestValue").Text(), base64.StdEncoding.EncodeToString(h[:]); got != want {
		tb.Fatalf("%s: DigestValue %s, canonical form hashes to %s", what, got, want)
	}
}

var responseCases = []struct {
	name      string
	session   saml.Session
	requestID string
	relay     string
	acs       string
	secure    bool
}{
	{name: "plain", session: saml.Session{NameID: "2f1c", UserName: "alice", UserEmail: "alice@example.org", UserGivenName: "Alice", UserSurname: "Liddell", UserCommonName: "Alice Liddell", Groups: []string{"staff", "students"}},
		requestID: "id-4c1f", relay: "/course/1", acs: "https://sp.example.org/saml/acs", secure: true},
	{name: "markup and quotes", session: saml.Session{NameID: "n&<>\"'", UserName: `a<b>&c"d'e`, UserEmail: "x@example.org", UserCommonName: "]]> <![CDATA[ &amp;", Groups: []string{"<g>", "&", `"`}},
		requestID: `id"<&>'`, relay: `"><script>alert(1)</script>`, acs: "https://sp.example.org/acs?a=1&b=<2>"},
	{name: "whitespace", session: saml.Session{NameID: "u", UserName: "tab\there", UserGivenName: " lead", UserSurname: "trail ", UserCommonName: "line\nbreak", Groups: []string{"a b"}},
		requestID: "id\t\n1", acs: "https://sp.example.org/acs"},
	{name: "carriage return", session: saml.Session{NameID: "u", UserName: "cr\rhere", UserCommonName: "crlf\r\nx"},
		requestID: "id-1", acs: "https://sp.example.org/acs"},
	{name: "not XML characters", session: saml.Session{NameID: "u\x00", UserName: "ctl\x01\x1f\x7f", UserEmail: "bad\xffutf8", UserCommonName: "\ufffe\uffff\ufffd", Groups: []string{"\xed\xa0\x80"}},
		requestID: "id-1", acs: "https://sp.example.org/acs"},
	{name: "unicode", session: saml.Session{NameID: "ü", UserName: "Łukasz", UserGivenName: "日本", UserSurname: "😀", UserCommonName: "Zoë"},
		requestID: "id-1", acs: "https://sp.example.org/acs"},
	{name: "IdP-initiated, no attributes", session: saml.Session{NameID: "u"}, acs: "https://sp.example.org/acs"},
}

// TestSignedResponseMatchesCrewjam: for the same assertion, Response ID and
// time, the writer's RSA signatures (deterministic) equal those crewjam
// makes for its own document, so both canonical forms are byte for byte
// the same; the form around the Response is the same too; the writer's
// document verifies with goxmldsig's canonicaliser and with crewjam's
// service provider, and carries the values unchanged (crewjam's own
// document loses a CR, which its signature covers).
func TestSignedResponseMatchesCrewjam(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for _, tt := range responseCases {
		t.Run(tt.name, func(t *testing.T) {
			f := newResponseFixture(t, AlgRSA, tt.acs)
			s := tt.session
			s.Index, s.CreateTime, s.ExpireTime = "_idx", now.Add(-time.Minute), now.Add(time.Hour)
			req := f.request(t, &s, tt.requestID, tt.relay, now, tt.secure)
			if !fastWritable(req) {
				t.Fatal("the hub's assertion is not rendered by writeSignedResponse")
			}

			// crewjam's document, on a copy (it sets Assertion.Signature).
			creq := *req
			ca := *req.Assertion
			creq.Assertion = &ca
			cw := httptest.NewRecorder()
			if err := creq.WriteResponse(cw); err != nil {
				t.Fatal(err)
			}
			cpage, cdoc := formResponse(t, cw.Body.String())
			cd := etree.NewDocument()
			if err := cd.ReadFromBytes(cdoc); err != nil {
				t.Fatal(err)
			}
			respID := cd.Root().SelectAttrValue("ID", "")

			w := httptest.NewRecorder()
			if err := writeSignedResponse(w, req, f.sign, respID); err != nil {
				t.Fatal(err)
			}
			page, doc := formResponse(t, w.Body.String())
			if page != cpage {
				t.Errorf("form\n%s\nwant (crewjam)\n%s", page, cpage)
			}
			for _, h := range []string{"Cache-Control", "Pragma"} {
				if got, want := w.Header().Get(h), cw.Header().Get(h); got != want {
					t.Errorf("%s: %q, crewjam %q", h, got, want)
				}
			}
			sigs := verifyEnveloped(t, doc, f.pub)
			d := etree.NewDocument()
			if err := d.ReadFromBytes(doc); err != nil {
				t.Fatal(err)
			}
			crewjamSigs := map[string]string{}
			for _, sig := range cd.FindElements("//Signature") {
				crewjamSigs[sig.Parent().Tag] = sig.FindElement("./SignatureValue").Text()
			}
			for el, v := range sigs {
				if crewjamSigs[el] != v {
					t.Errorf("%s: signature differs from crewjam's: the canonical forms differ\n%s\n---\n%s", el, doc, cdoc)
				}
			}
			// The Response start tag keeps crewjam's declarations.
			if got, want := d.Root().Attr, cd.Root().Attr; len(got) != len(want) {
				t.Errorf("Response attributes %v, crewjam %v", got, want)
			} else {
				for i := range got {
					if got[i].Space != want[i].Space || got[i].Key != want[i].Key || got[i].Value != want[i].Value {
						t.Errorf("Response attribute %d: %v, crewjam %v", i, got[i], want[i])
					}
				}
			}

			// A service provider built on crewjam accepts it and reads the
			// values as they were given (after XML's character rules).
			acsURL, _ := url.Parse(tt.acs)
			sp := saml.ServiceProvider{EntityID: f.sp.EntityID, AcsURL: *acsURL, IDPMetadata: f.idp.Metadata(), AllowIDPInitiated: tt.requestID == ""}
			var ids []string
			if tt.requestID != "" {
				ids = []string{tt.requestID}
			}
			a, err := sp.ParseXMLResponse(doc, ids, *acsURL)
			if err != nil {
				var ire *saml.InvalidResponseError
				if errors.As(err, &ire) {
					err = ire.PrivateErr
				}
				t.Fatalf("crewjam SP: %v\n%s", err, doc)
			}
			if got, want := a.Subject.NameID.Value, xmlClean(s.NameID); got != want {
				t.Errorf("NameID %q, want %q", got, want)
			}
			got := map[string][]string{}
			for _, as := range a.AttributeStatements {
				for _, at := range as.Attributes {
					for _, v := range at.Values {
						got[at.Name] = append(got[at.Name], v.Value)
					}
				}
			}
			want := map[string][]string{}
			for name, v := range map[string][]string{AttrUserName: {s.UserName}, AttrEmail: {s.UserEmail}, AttrGivenName: {s.UserGivenName},
				AttrSurname: {s.UserSurname}, AttrDisplayName: {s.UserCommonName}, AttrGroups: s.Groups} {
				for _, x := range v {
					if x != "" {
						want[name] = append(want[name], xmlClean(x))
					}
				}
			}
			if len(got) != len(want) {
				t.Errorf("attributes %q, want %q", got, want)
			}
			for k, v := range want {
				if strings.Join(got[k], "\x00") != strings.Join(v, "\x00") {
					t.Errorf("attribute %s = %q, want %q", k, got[k], v)
				}
			}
			if tt.requestID != "" && a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo != tt.requestID {
				t.Errorf("InResponseTo %q", a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo)
			}
		})
	}
}

// xmlClean is s as crewjam's service provider reads it back: characters
// XML does not allow became U+FFFD, and a CR (sent as &#xD;, which the
// signature covers) a LF, because that SP writes the verified assertion out
// again with etree, which writes CR raw, and parses that.
func xmlClean(s string) string {
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !xmlChar(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

// TestSignedResponseECDSA: with a P-256 key both signatures are r || s and
// verify over goxmldsig's canonical forms.
func TestSignedResponseECDSA(t *testing.T) {
	now := time.Now()
	for _, tt := range responseCases {
		t.Run(tt.name, func(t *testing.T) {
			f := newResponseFixture(t, AlgECDSA, tt.acs)
			s := tt.session
			s.Index, s.CreateTime, s.ExpireTime = "_idx", now.Add(-time.Minute), now.Add(time.Hour)
			req := f.request(t, &s, tt.requestID, tt.relay, now, tt.secure)
			w := httptest.NewRecorder()
			if err := writeSignedResponse(w, req, f.sign, newResponseID()); err != nil {
				t.Fatal(err)
			}
			_, doc := formResponse(t, w.Body.String())
			verifyEnveloped(t, doc, f.pub)
		})
	}
}

// TestFastWritable: what the writer does not render goes to crewjam.
func TestFastWritable(t *testing.T) {
	f := newResponseFixture(t, AlgRSA, "https://sp.example.org/acs")
	now := time.Now()
	base := func() *saml.IdpAuthnRequest {
		return f.request(t, &saml.Session{NameID: "u", UserName: "a"}, "id-1", "", now, true)
	}
	tests := []struct {
		name   string
		change func(r *saml.IdpAuthnRequest)
		want   bool
	}{
		{"hub assertion", func(*saml.IdpAuthnRequest) {}, true},
		{"signing key only", func(r *saml.IdpAuthnRequest) {
			d := *r.SPSSODescriptor
			d.KeyDescriptors = []saml.KeyDescriptor{{Use: "signing"}}
			r.SPSSODescriptor = &d
		}, true},
		{"encryption key", func(r *saml.IdpAuthnRequest) {
			d := *r.SPSSODescriptor
			d.KeyDescriptors = []saml.KeyDescriptor{{Use: "encryption"}}
			r.SPSSODescriptor = &d
		}, false},
		{"key for both uses", func(r *saml.IdpAuthnRequest) {
			d := *r.SPSSODescriptor
			d.KeyDescriptors = []saml.KeyDescriptor{{Use: "signing"}, {}}
			r.SPSSODescriptor = &d
		}, false},
		{"SimpleSign endpoint", func(r *saml.IdpAuthnRequest) {
			e := *r.ACSEndpoint
			e.Binding = saml.HTTPPostSimpleSignBinding
			r.ACSEndpoint = &e
		}, false},
		{"error response", func(r *saml.IdpAuthnRequest) { r.Assertion = nil }, false},
		{"own form template", func(r *saml.IdpAuthnRequest) {
			ip := *r.IDP
			ip.ResponseFormTemplate = responseFormTemplate
			r.IDP = &ip
		}, false},
		{"OneTimeUse", func(r *saml.IdpAuthnRequest) { r.Assertion.Conditions.OneTimeUse = &saml.OneTimeUse{} }, false},
		{"SubjectLocality", func(r *saml.IdpAuthnRequest) {
			r.Assertion.AuthnStatements[0].SubjectLocality = &saml.SubjectLocality{Address: "10.0.0.1"}
		}, false},
		{"nil attribute value", func(r *saml.IdpAuthnRequest) {
			r.Assertion.AttributeStatements[0].Attributes[0].Values[0].Nil = true
		}, false},
		{"already signed", func(r *saml.IdpAuthnRequest) { r.Assertion.Signature = etree.NewElement("ds:Signature") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.change(r)
			if got := fastWritable(r); got != tt.want {
				t.Fatalf("fastWritable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []struct{ in, attr, text string }{
		{"plain", "plain", "plain"},
		{`&<>"'`, `&amp;&lt;>&quot;'`, `&amp;&lt;&gt;"'`},
		{"\t\n\r", "&#x9;&#xA;&#xD;", "\t\n&#xD;"},
		{"a\x00b\x1fc", "a\ufffdb\ufffdc", "a\ufffdb\ufffdc"},
		{"\xff\ufffd\ufffe", "\ufffd\ufffd\ufffd", "\ufffd\ufffd\ufffd"},
		{"é😀", "é😀", "é😀"},
	}
	for _, tt := range tests {
		if got := string(appendAttrValue(nil, tt.in)); got != tt.attr {
			t.Errorf("attr %q = %q, want %q", tt.in, got, tt.attr)
		}
		if got := string(appendText(nil, tt.in)); got != tt.text {
			t.Errorf("text %q = %q, want %q", tt.in, got, tt.text)
		}
	}
}
