package sp

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/internal/testenv"
)

// stateSessions adapts the bridge state (bridge/state) to Sessions and
// ReplayCache: this is the adapter `connect bridge serve` uses.
type stateSessions struct{ st state.State }

func (a stateSessions) PutSession(ctx context.Context, s StoredSession, ttl time.Duration) error {
	return a.st.PutSession(ctx, state.Session{ID: s.ID, Hub: s.Hub, Subject: s.Subject, Data: s.Data}, ttl)
}

func (a stateSessions) GetSession(ctx context.Context, id string) (StoredSession, error) {
	s, err := a.st.GetSession(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return StoredSession{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return StoredSession{}, err
	}
	return StoredSession{ID: s.ID, Hub: s.Hub, Subject: s.Subject, Data: s.Data, Expires: s.Expires}, nil
}

func (a stateSessions) DeleteSession(ctx context.Context, id string) error {
	return a.st.DeleteSession(ctx, id)
}

func (a stateSessions) DeleteSessions(ctx context.Context, hub, subject string) (int, error) {
	return a.st.DeleteSessions(ctx, hub, subject)
}

func (a stateSessions) Seen(ctx context.Context, hub, id string, expiry time.Time) (bool, error) {
	return a.st.Seen(ctx, hub, id, expiry)
}

// newState returns the bridge state the test runs on: Redis when reachable
// (the production backend), else the in-process one.
func newState(tb testing.TB, useRedis bool) state.State {
	tb.Helper()
	if !useRedis {
		return memory.New(memory.Config{})
	}
	addr := testenv.RedisAddr(tb)
	st, err := redisstate.New(redisstate.Config{Client: goredis.NewClient(&goredis.Options{Addr: addr}), Prefix: testenv.Name(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// testHub is a SAML IdP standing in for a Connect hub: crewjam's samlidp with
// an assertion maker that sends what the hub sends (persistent NameID = the
// user's id, the hub's attribute names). Tests can change each assertion or
// the way the response is written.
type testHub struct {
	t   testing.TB
	srv *httptest.Server
	idp *samlidp.Server

	mu     sync.Mutex
	mutate func(req *saml.IdpAuthnRequest)
	write  func(w http.ResponseWriter, req *saml.IdpAuthnRequest) error
	refuse bool
}

func newTestHub(tb testing.TB) *testHub {
	tb.Helper()
	keyPEM, certPEM := testKeyPair(tb, 0)
	kp, err := parseKeyPair(keyPEM, certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	th := &testHub{t: tb}
	th.srv = httptest.NewUnstartedServer(nil)
	th.srv.StartTLS()
	tb.Cleanup(th.srv.Close)
	u, _ := url.Parse(th.srv.URL)
	idp, err := samlidp.New(samlidp.Options{
		URL: *u, Key: kp.signer.(crypto.PrivateKey), Certificate: kp.cert,
		Store: &samlidp.MemoryStore{}, Logger: log.New(io.Discard, "", 0),
	})
	if err != nil {
		tb.Fatal(err)
	}
	idp.IDP.AssertionMaker = hubAssertions{th}
	idp.IDP.ResponseWriter = hubWriter{th}
	th.idp = idp
	th.srv.Config.Handler = idp
	for _, u := range []samlidp.User{
		{Name: "alice", Email: "alice@example.com", GivenName: "Alice", Surname: "Liddell", CommonName: "Alice Liddell", Groups: []string{"staff", "course-101"}},
		{Name: "carol", Email: "carol@example.com", Groups: []string{"guests"}},
	} {
		// Stored directly with a cheap bcrypt cost: the hub's own hashing is
		// not what these tests measure.
		u.HashedPassword, err = bcrypt.GenerateFromPassword([]byte(u.Name+"-pw"), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		if err := idp.Store.Put("/users/"+u.Name, u); err != nil {
			tb.Fatal(err)
		}
	}
	return th
}

// testKeyPairs are generated once per test binary (RSA generation is slow).
var (
	testKeysMu sync.Mutex
	testKeys   = map[int][2][]byte{}
)

func testKeyPair(tb testing.TB, i int) (keyPEM, certPEM []byte) {
	tb.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[i]; ok {
		return k[0], k[1]
	}
	keyPEM, certPEM, err := NewKeyPair(fmt.Sprintf("key%d.test", i), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	testKeys[i] = [2][]byte{keyPEM, certPEM}
	return keyPEM, certPEM
}

func (th *testHub) admin(method, path, body string) {
	th.t.Helper()
	rec := httptest.NewRecorder()
	th.idp.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	if rec.Code/100 != 2 {
		th.t.Fatalf("hub admin %s %s: %d %s", method, path, rec.Code, rec.Body)
	}
}

func (th *testHub) metadata() []byte {
	th.t.Helper()
	rec := httptest.NewRecorder()
	th.idp.ServeHTTP(rec, httptest.NewRequest("GET", "/metadata", nil))
	if rec.Code != 200 {
		th.t.Fatalf("hub metadata: %d", rec.Code)
	}
	return rec.Body.Bytes()
}

// register registers an SP's metadata with the hub.
func (th *testHub) register(name string, md []byte) {
	th.t.Helper()
	th.admin("PUT", "/services/"+name, string(md))
}

func (th *testHub) set(f func(th *testHub)) {
	th.mu.Lock()
	defer th.mu.Unlock()
	f(th)
}

func (th *testHub) sessions() int {
	keys, err := th.idp.Store.List("/sessions/")
	if err != nil {
		th.t.Fatal(err)
	}
	return len(keys)
}

type hubAssertions struct{ th *testHub }

func (m hubAssertions) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	m.th.mu.Lock()
	refuse, mutate := m.th.refuse, m.th.mutate
	m.th.mu.Unlock()
	if refuse {
		return &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusRequestDenied, Message: "user outside the client's scope"}
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	a := req.Assertion
	a.Subject.NameID = &saml.NameID{
		Format: string(saml.PersistentNameIDFormat), NameQualifier: req.IDP.MetadataURL.String(),
		// The session's NameID (the email with samlidp): its SP-initiated
		// logout matches sessions on it.
		SPNameQualifier: req.ServiceProviderMetadata.EntityID, Value: session.NameID,
	}
	attr := func(name string, vs ...string) saml.Attribute {
		at := saml.Attribute{Name: name, FriendlyName: name, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
		for _, v := range vs {
			at.Values = append(at.Values, saml.AttributeValue{Type: "xs:string", Value: v})
		}
		return at
	}
	a.AttributeStatements = []saml.AttributeStatement{{Attributes: []saml.Attribute{
		attr("userName", session.UserName), attr("email", session.UserEmail), attr("givenName", session.UserGivenName),
		attr("sn", session.UserSurname), attr("displayName", session.UserCommonName), attr("groups", session.Groups...),
	}}}
	if mutate != nil {
		mutate(req)
	}
	return nil
}

// aliceSubject is alice's NameID as the test hub asserts it.
const aliceSubject = "alice@example.com"

// plainAssertions makes the hub sign the assertion without encrypting it (as
// if the SP published no encryption key), for tests that edit it.
func plainAssertions(req *saml.IdpAuthnRequest) {
	var kds []saml.KeyDescriptor
	for _, kd := range req.SPSSODescriptor.KeyDescriptors {
		if kd.Use != "encryption" {
			kds = append(kds, kd)
		}
	}
	sd := *req.SPSSODescriptor
	sd.KeyDescriptors = kds
	req.SPSSODescriptor = &sd
}

type hubWriter struct{ th *testHub }

func (w hubWriter) WriteResponse(rw http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	w.th.mu.Lock()
	write := w.th.write
	w.th.mu.Unlock()
	if write != nil {
		return write(rw, req)
	}
	return req.WriteResponse(rw)
}

// testAccounts maps hub users to local accounts in memory.
type testAccounts struct {
	mu         sync.Mutex
	outOfScope map[string]bool // hub subject
	blocked    map[string]bool // local id
	groups     map[string][]string
	logins     int
	allowed    int
}

func newTestAccounts() *testAccounts {
	return &testAccounts{outOfScope: map[string]bool{}, blocked: map[string]bool{}, groups: map[string][]string{}}
}

func (a *testAccounts) Login(ctx context.Context, hub string, id Identity) (LocalUser, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logins++
	if a.outOfScope[id.Subject] {
		return LocalUser{}, fmt.Errorf("user %s: %w", id.Subject, ErrOutOfScope)
	}
	u := LocalUser{ID: "L-" + id.Subject, Username: "tc" + id.UserName, Email: id.Email, DisplayName: id.DisplayName, Groups: id.Groups, Hub: hub}
	if a.blocked[u.ID] {
		return LocalUser{}, fmt.Errorf("account %s: %w", u.ID, ErrNotAllowed)
	}
	return u, nil
}

func (a *testAccounts) Allowed(ctx context.Context, u LocalUser) (LocalUser, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allowed++
	if a.blocked[u.ID] {
		return LocalUser{}, fmt.Errorf("account %s: %w", u.ID, ErrNotAllowed)
	}
	if g, ok := a.groups[u.ID]; ok {
		u.Groups = g
	}
	return u, nil
}

func (a *testAccounts) set(f func(a *testAccounts)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

// testLocal is the local form's directory: one manual account.
type testLocal struct{}

func (testLocal) Authenticate(ctx context.Context, username, password string) (LocalUser, error) {
	if username == "bob" && password == "bob-pw" {
		return LocalUser{ID: "M-bob", Username: "bob", Email: "bob@site.example", Groups: []string{"editors"}}, nil
	}
	return LocalUser{}, fmt.Errorf("user %q: %w", username, ErrInvalid)
}

type hubsList struct {
	mu   sync.Mutex
	hubs []Hub
}

func (h *hubsList) Hubs(context.Context) ([]Hub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Hub(nil), h.hubs...), nil
}

// fixture is a bridge (one or more SP replicas behind one URL, sharing one
// state) connected to a test hub.
type fixture struct {
	t        testing.TB
	hub      *testHub
	st       state.State
	store    stateSessions
	accounts *testAccounts
	hubs     *hubsList
	replicas []*SP
	regs     []*prometheus.Registry
	srv      *httptest.Server
	autoSSO  bool
}

type fixtureOpts struct {
	replicas     int
	redis        bool
	sessionCache time.Duration
	allowedCache time.Duration
	autoSSO      bool
	noLocal      bool
	clockSkew    time.Duration
	// sign and encrypt turn on SignAuthnRequests and EncryptAssertions.
	sign, encrypt bool
}

func newFixture(tb testing.TB, o fixtureOpts) *fixture {
	tb.Helper()
	if o.replicas == 0 {
		o.replicas = 1
	}
	f := &fixture{t: tb, hub: newTestHub(tb), accounts: newTestAccounts(), hubs: &hubsList{}, autoSSO: o.autoSSO}
	f.st = newState(tb, o.redis)
	f.store = stateSessions{f.st}
	var current []http.Handler
	var mu sync.Mutex
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.Header.Get("X-Test-Replica"))
		mu.Lock()
		h := current[i%len(current)]
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	f.srv.StartTLS()
	tb.Cleanup(f.srv.Close)
	keyPEM, certPEM := testKeyPair(tb, 1)
	f.hubs.hubs = []Hub{{ID: "hub1", Name: "Test Hub", Metadata: f.hub.metadata()}}
	for i := 0; i < o.replicas; i++ {
		reg := prometheus.NewRegistry()
		cfg := Config{
			BaseURL: f.srv.URL, SiteName: "Example Site", KeyPEM: keyPEM, CertPEM: certPEM,
			Hubs: f.hubs, Sessions: f.store, Replay: f.store, Accounts: f.accounts,
			AutoSSO:      func(context.Context) bool { return f.autoSSO },
			SessionCache: o.sessionCache, AllowedCache: o.allowedCache, ClockSkew: o.clockSkew,
			SignAuthnRequests: o.sign, EncryptAssertions: o.encrypt,
			Registerer: reg,
		}
		if os.Getenv("SP_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		if !o.noLocal {
			cfg.Local = testLocal{}
		}
		s, err := New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		f.replicas = append(f.replicas, s)
		f.regs = append(f.regs, reg)
	}
	mu.Lock()
	for _, s := range f.replicas {
		current = append(current, s.Handler())
	}
	mu.Unlock()
	md, err := f.replicas[0].Metadata(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	f.hub.register("bridge", md)
	return f
}

// browser is a cookie-keeping HTTP client trusting both test servers.
type browser struct {
	t       testing.TB
	c       *http.Client
	replica int
	header  http.Header
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: f.t, header: http.Header{}}
	b.c = &http.Client{Jar: jar, Transport: f.srv.Client().Transport, Timeout: 20 * time.Second}
	return b
}

// do sends req; follow makes it follow redirects. It returns the last
// response with its body read.
func (b *browser) do(req *http.Request, follow bool) (*http.Response, string) {
	b.t.Helper()
	c := *b.c
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	} else {
		c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			r.Header.Set("X-Test-Replica", strconv.Itoa(b.replica))
			if len(via) > 15 {
				return errors.New("too many redirects")
			}
			return nil
		}
	}
	req.Header.Set("X-Test-Replica", strconv.Itoa(b.replica))
	for k, v := range b.header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string, follow bool) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req, follow)
}

func (b *browser) post(u string, form url.Values, follow bool) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req, follow)
}

// cookie returns the value of a cookie the browser holds for u, or "".
func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.c.Jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(u, name, value string) {
	pu, _ := url.Parse(u)
	b.c.Jar.SetCookies(pu, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// form reads the first form of an HTML page: its action and its inputs (a
// small scanner: the pages carry kilobytes of base64 that a regexp crawls).
func form(tb testing.TB, page string) (string, url.Values) {
	tb.Helper()
	attr := func(tag, name string) (string, bool) {
		i := strings.Index(tag, " "+name+`="`)
		if i < 0 {
			return "", false
		}
		rest := tag[i+len(name)+3:]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			return "", false
		}
		return html.UnescapeString(rest[:j]), true
	}
	start := strings.Index(page, "<form")
	if start < 0 {
		tb.Fatalf("no form in page:\n%s", page)
	}
	end := strings.IndexByte(page[start:], '>')
	action, _ := attr(page[start:start+end], "action")
	v := url.Values{}
	rest := page[start:]
	if stop := strings.Index(rest, "</form>"); stop >= 0 {
		rest = rest[:stop]
	}
	for {
		i := strings.Index(rest, "<input")
		if i < 0 {
			break
		}
		rest = rest[i:]
		j := strings.IndexByte(rest, '>')
		if j < 0 {
			break
		}
		tag := rest[:j]
		rest = rest[j:]
		if name, ok := attr(tag, "name"); ok {
			val, _ := attr(tag, "value")
			v.Set(name, val)
		}
	}
	return action, v
}

// hubLogin logs the browser in at the hub (so that SSO passes straight
// through, as for a user with a hub session).
func (f *fixture) hubLogin(b *browser, user, password string) {
	f.t.Helper()
	resp, body := b.post(f.hub.srv.URL+"/login", url.Values{"user": {user}, "password": {password}}, false)
	if resp.StatusCode != 200 || !strings.Contains(body, `"ID"`) {
		f.t.Fatalf("hub login: %d %s", resp.StatusCode, body)
	}
}

// startSSO starts a login at the hub through the bridge and returns the hub's
// auto-posting response form (action and fields), not yet posted.
func (f *fixture) startSSO(b *browser, rd string) (string, url.Values) {
	f.t.Helper()
	resp, body := b.get(f.srv.URL+PathSAMLLogin+"?"+url.Values{"hub": {"hub1"}, "rd": {rd}}.Encode(), true)
	if resp.StatusCode != 200 || !strings.Contains(body, "SAMLResponse") {
		f.t.Fatalf("start sso: %d %s", resp.StatusCode, body)
	}
	return form(f.t, body)
}

// sso runs a whole SSO login and returns the ACS answer (not followed).
func (f *fixture) sso(b *browser, rd string) *http.Response {
	f.t.Helper()
	action, fields := f.startSSO(b, rd)
	resp, _ := b.post(action, fields, false)
	return resp
}

// auth asks /connect/auth with the browser's cookies.
func (f *fixture) auth(b *browser) *http.Response {
	f.t.Helper()
	resp, _ := b.get(f.srv.URL+PathAuth, false)
	return resp
}

func (f *fixture) metric(replica int, name string, labels ...string) float64 {
	f.t.Helper()
	return gathered(f.t, f.regs[replica], name, labels...)
}

// gathered reads one counter (or a histogram's sample count) from reg.
func gathered(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						ok = true
					}
				}
				if !ok {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// pemCert returns a PEM certificate's DER.
func pemCert(tb testing.TB, p []byte) *x509.Certificate {
	tb.Helper()
	b, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
