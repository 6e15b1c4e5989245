package hub

import (
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// samlEnv is a hub serving HTTPS through httptest with a SQLite store.
type samlEnv struct {
	st   *sqlite.Store
	hub  *httptest.Server
	reg  *prometheus.Registry
	logs *syncBuffer
}

func newSAMLEnv(t *testing.T, configure func(*Config)) *samlEnv {
	t.Helper()
	st, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newSAMLEnvOn(t, st, configure)
}

func newSAMLEnvOn(t *testing.T, st *sqlite.Store, configure func(*Config)) *samlEnv {
	t.Helper()
	return newSAMLEnvHost(t, st, "", configure)
}

// newSAMLEnvHost serves the hub as https://HOST:PORT when host is set (a
// name under example.com, which the httptest certificate covers; browser()
// dials it on loopback), so that two hubs in one test keep separate cookies.
func newSAMLEnvHost(t *testing.T, st *sqlite.Store, host string, configure func(*Config)) *samlEnv {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if host != "" {
		srv.URL = strings.Replace(srv.URL, "127.0.0.1", host, 1)
	}
	e := &samlEnv{st: st, hub: srv, reg: prometheus.NewRegistry(), logs: newSyncBuffer()}
	// One RSA key for the hubs of these tests (generating RSA-2048 per test
	// is most of their time); tests of generated keys clear it.
	k := sharedKey(t)
	cfg := Config{
		Listen: "127.0.0.1:0", URL: srv.URL, Name: "Test hub", Store: st,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registry: e.reg, Version: "test",
		SAML: SAMLConfig{KeyPEM: k.KeyPEM, CertPEM: k.CertPEM},
	}
	if configure != nil {
		configure(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h.Handler()
	return e
}

func (e *samlEnv) addUser(t testing.TB, userName, pw string, active bool, audiences ...string) scim.User {
	t.Helper()
	ctx := context.Background()
	u := scim.User{
		UserName: userName, DisplayName: "Display " + userName,
		Name:   &scim.Name{GivenName: "Given" + userName, FamilyName: "Family" + userName},
		Emails: []scim.MultiValue{{Value: userName + "@example.org", Primary: true}},
		Active: scim.BoolPtr(active),
	}
	if pw != "" {
		h, err := password.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		u.Connect = &scim.ConnectUser{PasswordHash: h}
	}
	u, err := e.st.CreateUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audiences {
		g, err := e.st.CreateGroup(ctx, scim.Group{DisplayName: a, Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		_ = g
	}
	return u
}

// browser is an HTTP client with a cookie jar that trusts the test servers.
func (e *samlEnv) browser(t testing.TB) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := e.hub.Client().Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".example.com") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
}

// testSP is a crewjam/saml service provider (samlsp) behind its own TLS server.
type testSP struct {
	mw  *samlsp.Middleware
	srv *httptest.Server
}

func (e *samlEnv) idpMetadata(t testing.TB) *saml.EntityDescriptor {
	t.Helper()
	resp, err := e.browser(t).Get(e.hub.URL + idp.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %s", resp.StatusCode, body)
	}
	ed, err := samlsp.ParseMetadata(body)
	if err != nil {
		t.Fatalf("parse hub metadata: %v", err)
	}
	return ed
}

// newSP starts an SP that trusts the hub's current metadata; register adds
// it to the hub.
func (e *samlEnv) newSP(t testing.TB, register bool, configure func(*samlsp.Options)) *testSP {
	t.Helper()
	k := sharedKey(t)
	signer, cert, _, err := idp.ParseKeyPair(k.KeyPEM, k.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	opts := samlsp.Options{
		URL: *u, Key: signer, Certificate: cert,
		IDPMetadata: e.idpMetadata(t), HTTPClient: e.browser(t),
	}
	if configure != nil {
		configure(&opts)
	}
	mw, err := samlsp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mw.ServiceProvider.AuthnNameIDFormat = saml.PersistentNameIDFormat
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := samlsp.SessionFromContext(r.Context())
		attrs := s.(samlsp.SessionWithAttributes).GetAttributes()
		fmt.Fprintf(w, "hello userName=%s email=%s groups=%s", attrs.Get("userName"), attrs.Get("email"), strings.Join(attrs["groups"], ","))
	})
	mux := http.NewServeMux()
	mux.Handle("/saml/", mw)
	mux.Handle("/app", mw.RequireAccount(app))
	srv.Config.Handler = mux
	sp := &testSP{mw: mw, srv: srv}
	if register {
		e.register(t, sp)
	}
	return sp
}

func (sp *testSP) metadata(t testing.TB) []byte {
	t.Helper()
	b, err := xml.Marshal(sp.mw.ServiceProvider.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *samlEnv) register(t testing.TB, sp *testSP) {
	t.Helper()
	if _, err := RegisterServiceProvider(context.Background(), e.st, "test", sp.metadata(t), "test", false); err != nil {
		t.Fatal(err)
	}
}

var inputRE = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
var actionRE = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// formFields returns the named inputs with values and the form action.
func formFields(body string) (string, url.Values) {
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	action := ""
	if m := actionRE.FindStringSubmatch(body); m != nil {
		action = html.UnescapeString(m[1])
	}
	return action, v
}

func browse(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	return readBody(t, resp, err)
}

func submit(t testing.TB, c *http.Client, u string, v url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	return readBody(t, resp, err)
}

func readBody(t testing.TB, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// submitLogin posts the login form in page (the hub's login page).
func (e *samlEnv) submitLogin(t testing.TB, c *http.Client, page, user, pw string) (int, string) {
	t.Helper()
	_, v := formFields(page)
	if v.Get(idp.FieldCSRF) == "" {
		t.Fatalf("no CSRF field in login page:\n%s", page)
	}
	v.Set(idp.FieldUserName, user)
	v.Set(idp.FieldPassword, pw)
	return submit(t, c, e.hub.URL+idp.PathLogin, v)
}

// postResponse submits the auto-posting SAMLResponse form in page.
func postResponse(t testing.TB, c *http.Client, page string) (int, string) {
	t.Helper()
	action, v := formFields(page)
	if v.Get("SAMLResponse") == "" {
		t.Fatalf("no SAMLResponse in page:\n%s", page)
	}
	return submit(t, c, action, v)
}

// spLogin runs a full SP-initiated login and returns the app page.
func (e *samlEnv) spLogin(t testing.TB, c *http.Client, sp *testSP, user, pw string) string {
	t.Helper()
	code, page := browse(t, c, sp.srv.URL+"/app")
	if code != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("expected the hub login page, got %d:\n%s", code, page)
	}
	code, page = e.submitLogin(t, c, page, user, pw)
	if code != 200 {
		t.Fatalf("login: %d\n%s", code, page)
	}
	code, page = postResponse(t, c, page)
	if code != 200 {
		t.Fatalf("ACS: %d\n%s\nhub log:\n%s", code, page, e.logs.String())
	}
	return page
}

func TestSAMLLoginThroughCrewjamSP(t *testing.T) {
	e := newSAMLEnv(t, nil)
	e.addUser(t, "alice", "correct horse", true, "Staff", "Alumni")
	sp := e.newSP(t, true, nil)
	c := e.browser(t)
	page := e.spLogin(t, c, sp, "alice", "correct horse")
	if want := "hello userName=alice email=alice@example.org groups=Alumni,Staff"; page != want {
		t.Fatalf("app page = %q, want %q", page, want)
	}
	// The hub session now logs in without the form.
	code, page := browse(t, c, sp.srv.URL+"/app")
	if code != 200 || !strings.HasPrefix(page, "hello userName=alice") {
		t.Fatalf("second visit: %d %s", code, page)
	}
}

var _ store.IdP = (*sqlite.Store)(nil)

var testKey struct {
	once sync.Once
	k    idp.Key
	err  error
}

// sharedKey is one RSA-2048 key pair for the test hubs and SPs.
func sharedKey(t testing.TB) idp.Key {
	t.Helper()
	testKey.once.Do(func() { testKey.k, testKey.err = idp.GenerateKey(idp.AlgRSA, "test", time.Now(), time.Time{}) })
	if testKey.err != nil {
		t.Fatal(testKey.err)
	}
	return testKey.k
}
