package samlinterop

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// goSP is a service provider on github.com/russellhaering/gosaml2 served on
// loopback: /login sends a signed HTTP-Redirect AuthnRequest, /acs validates
// the HTTP-POST response and answers a JSON spResult.
type goSP struct {
	Base     string
	EntityID string
	sp       *saml2.SAMLServiceProvider
	idpMD    idpMetadata

	// post sends the AuthnRequest with the HTTP-POST binding (an XML
	// signature inside the request) instead of HTTP-Redirect.
	post bool

	mu      sync.Mutex
	pending map[string]string // state cookie → AuthnRequest ID
}

const goSPCookie = "gosp_state"

// startGoSP runs a gosaml2 SP that trusts the signing certificates of the
// provider's metadata.
func startGoSP(tb testing.TB, provider idp) *goSP {
	tb.Helper()
	md, certs := parseIdPMetadata(tb, fetch(tb, provider.MetadataURL()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &goSP{pending: map[string]string{}, idpMD: md}
	s.Base = fmt.Sprintf("http://localhost:%d", l.Addr().(*net.TCPAddr).Port)
	s.EntityID = s.Base + "/metadata"
	keys := newKeyPair(tb, tb.TempDir(), "gosp")
	s.sp = &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      md.ssoURL(tb, bindingRedirect),
		IdentityProviderSSOBinding:  bindingRedirect,
		IdentityProviderIssuer:      md.EntityID,
		ServiceProviderIssuer:       s.EntityID,
		AssertionConsumerServiceURL: s.Base + "/acs",
		AudienceURI:                 s.EntityID,
		SignAuthnRequests:           true,
		NameIdFormat:                nameIDPersist,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: certs},
		SPKeyStore:                  dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{keys.Cert.Raw}, PrivateKey: keys.Key}),
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	tb.Cleanup(srv.Close)
	return s
}

// metadata returns the SP's metadata document. gosaml2 offers its key for
// encryption too; without encryption only the signing key is published, so
// the IdP sends the assertion in the clear.
func (s *goSP) metadata(tb testing.TB, encryption bool) []byte {
	tb.Helper()
	ed, err := s.sp.Metadata()
	if err != nil {
		tb.Fatal(err)
	}
	if !encryption {
		kds := ed.SPSSODescriptor.KeyDescriptors[:0]
		for _, kd := range ed.SPSSODescriptor.KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		ed.SPSSODescriptor.KeyDescriptors = kds
	}
	raw, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func (s *goSP) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		doc, err := s.sp.BuildAuthRequestDocument()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		state := rand.Text()
		s.mu.Lock()
		s.pending[state] = doc.Root().SelectAttrValue("ID", "")
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: goSPCookie, Value: state, Path: "/", HttpOnly: true})
		if s.post {
			body, err := s.sp.BuildAuthBodyPostFromDocument("gosp-relay", doc)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(body)
			return
		}
		u, err := s.sp.BuildAuthURLRedirect("gosp-relay", doc)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	case "/acs":
		res := s.acs(r)
		w.Header().Set("Content-Type", "application/json")
		if !res.OK {
			w.WriteHeader(http.StatusForbidden)
		}
		_ = json.NewEncoder(w).Encode(res)
	default:
		http.NotFound(w, r)
	}
}

// goSPResult is spResult plus gosaml2's warnings.
type goSPResult struct {
	spResult
	Warnings *saml2.WarningInfo `json:"warnings"`
}

func (s *goSP) acs(r *http.Request) goSPResult {
	fail := func(format string, args ...any) goSPResult {
		return goSPResult{spResult: spResult{Errors: []string{fmt.Sprintf(format, args...)}}}
	}
	if err := r.ParseForm(); err != nil {
		return fail("form: %v", err)
	}
	c, err := r.Cookie(goSPCookie)
	if err != nil {
		return fail("no state cookie")
	}
	s.mu.Lock()
	requestID, ok := s.pending[c.Value]
	delete(s.pending, c.Value)
	s.mu.Unlock()
	if !ok {
		return fail("no pending AuthnRequest for this browser")
	}
	encoded := r.PostForm.Get("SAMLResponse")
	info, err := s.sp.RetrieveAssertionInfo(encoded)
	if err != nil {
		return fail("gosaml2: %v", err)
	}
	// gosaml2 leaves InResponseTo to its caller.
	resp, err := s.sp.ValidateEncodedResponse(encoded)
	if err != nil {
		return fail("gosaml2: %v", err)
	}
	var errs []string
	if resp.InResponseTo != requestID {
		errs = append(errs, fmt.Sprintf("Response InResponseTo %q, want %q", resp.InResponseTo, requestID))
	}
	if a := info.Assertions[0]; a.Subject == nil || a.Subject.SubjectConfirmation == nil ||
		a.Subject.SubjectConfirmation.SubjectConfirmationData == nil ||
		a.Subject.SubjectConfirmation.SubjectConfirmationData.InResponseTo != requestID {
		errs = append(errs, "SubjectConfirmationData InResponseTo is not the request's ID")
	}
	if !info.ResponseSignatureValidated {
		errs = append(errs, "the Response itself was not signed")
	}
	attrs := map[string][]string{}
	for name, a := range info.Values {
		for _, v := range a.Values {
			attrs[name] = append(attrs[name], v.Value)
		}
	}
	return goSPResult{
		spResult: spResult{
			OK: len(errs) == 0, Errors: errs, NameID: info.NameID, NameIDFormat: info.NameIDFormat,
			Attributes: attrs, SessionIndex: info.SessionIndex, RequestID: requestID,
			RelayState: r.PostForm.Get("RelayState"),
		},
		Warnings: info.WarningInfo,
	}
}

// usePOST makes the SP send its AuthnRequests with the HTTP-POST binding.
func (s *goSP) usePOST(tb testing.TB) {
	tb.Helper()
	s.post = true
	s.sp.IdentityProviderSSOBinding = bindingPOST
	s.sp.IdentityProviderSSOURL = s.idpMD.ssoURL(tb, bindingPOST)
}

// goSPLogin registers a gosaml2 SP with provider (its metadata offering an
// encryption key or not), logs in through it and returns the SAMLResponse the
// browser carried and the SP's verdict.
func goSPLogin(tb testing.TB, provider idp, encryption bool, user, password string) (string, goSPResult) {
	tb.Helper()
	return goSPLoginWith(tb, provider, startGoSP(tb, provider), encryption, user, password)
}

// goSPLoginWith is goSPLogin with an SP the caller started (and tuned).
func goSPLoginWith(tb testing.TB, provider idp, s *goSP, encryption bool, user, password string) (string, goSPResult) {
	tb.Helper()
	if got := provider.AddSP(tb, writeFile(tb, tb.TempDir(), "gosp.xml", s.metadata(tb, encryption))); got != s.EntityID {
		tb.Errorf("sps add printed %q, want %q", got, s.EntityID)
	}
	samlResponse, final := ssoLogin(tb, newBrowser(tb), s.Base+"/login", user, password)
	var res goSPResult
	if err := json.NewDecoder(strings.NewReader(final.Body)).Decode(&res); err != nil {
		tb.Fatalf("gosaml2 SP answer: %v\n%s", err, final)
	}
	return samlResponse, res
}

// TestGosaml2: github.com/russellhaering/gosaml2 validates the hub's signed
// response and (encrypted, then plain) assertion, reports no warning
// (audience, time, one-time-use, proxy restriction), and the response answers
// the request it sent, whether that came with the HTTP-Redirect or the
// HTTP-POST binding. IsPassive without a hub session gets a NoPassive status
// (no login page, no assertion); ForceAuthn asks for the password despite one.
func TestGosaml2(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	for _, tt := range []struct {
		name             string
		post, encryption bool
	}{
		{name: "redirect binding, encrypted assertion", encryption: true},
		{name: "POST binding, plain assertion", post: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startGoSP(t, h)
			if tt.post {
				s.usePOST(t)
			}
			_, res := goSPLoginWith(t, h, s, tt.encryption, u.UserName, u.Password)
			if !res.OK {
				t.Fatalf("gosaml2 refused the hub's response: %v", res.Errors)
			}
			if w := res.Warnings; w == nil || *w != (saml2.WarningInfo{}) {
				t.Errorf("gosaml2 WarningInfo = %+v, want empty", w)
			}
			checkIdentity(t, "gosaml2", res.NameID, res.NameIDFormat, res.Attributes, u)
			if res.RelayState != "gosp-relay" {
				t.Errorf("RelayState came back as %q, want the SP's %q", res.RelayState, "gosp-relay")
			}
		})
	}

	s := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "gosp.xml", s.metadata(t, false)))
	b := newBrowser(t)
	t.Run("IsPassive without a hub session", func(t *testing.T) {
		s.sp.IsPassive = true
		defer func() { s.sp.IsPassive = false }()
		p := b.get(s.Base + "/login")
		if hasLoginForm(p) {
			t.Fatalf("IsPassive: the hub showed its login form: %s", p)
		}
		resp, final := postSAMLResponse(t, b, p)
		raw, _ := base64.StdEncoding.DecodeString(resp)
		if !bytes.Contains(raw, []byte(`Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"`)) || bytes.Contains(raw, []byte("Assertion ")) {
			t.Errorf("IsPassive: want a Response with status NoPassive and no assertion; got\n%s", raw)
		}
		if strings.Contains(final.Body, `"ok":true`) {
			t.Errorf("IsPassive: gosaml2 accepted a login: %s", final)
		}
	})
	t.Run("ForceAuthn with a hub session", func(t *testing.T) {
		if res := loginWith(t, b, s.Base, u.UserName, u.Password); !res.OK {
			t.Fatalf("login: %v", res.Errors)
		}
		s.sp.ForceAuthn = true
		defer func() { s.sp.ForceAuthn = false }()
		if p := b.get(s.Base + "/login"); !hasLoginForm(p) {
			t.Errorf("ForceAuthn: want the login form despite the session; got %s", p)
		}
	})
}
