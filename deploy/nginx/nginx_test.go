// Package nginx_test runs the shipped auth_request configuration on real nginx
// in front of a bridge's SSO handler (saml/sp) and a stand-in site.
package nginx_test

import (
	"context"
	"errors"
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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	"github.com/connectsso/connect/internal/testenv/hubproc"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// sessions adapts the bridge state to the SP's Sessions and ReplayCache.
type sessions struct{ st state.State }

func (a sessions) PutSession(ctx context.Context, s sp.StoredSession, ttl time.Duration) error {
	return a.st.PutSession(ctx, state.Session{ID: s.ID, Hub: s.Hub, Subject: s.Subject, Data: s.Data}, ttl)
}

func (a sessions) GetSession(ctx context.Context, id string) (sp.StoredSession, error) {
	s, err := a.st.GetSession(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return sp.StoredSession{}, fmt.Errorf("%w: %w", sp.ErrNotFound, err)
	}
	return sp.StoredSession{ID: s.ID, Hub: s.Hub, Subject: s.Subject, Data: s.Data, Expires: s.Expires}, err
}

func (a sessions) DeleteSession(ctx context.Context, id string) error {
	return a.st.DeleteSession(ctx, id)
}

func (a sessions) DeleteSessions(ctx context.Context, hub, subject string) (int, error) {
	return a.st.DeleteSessions(ctx, hub, subject)
}

func (a sessions) Seen(ctx context.Context, hub, id string, expiry time.Time) (bool, error) {
	return a.st.Seen(ctx, hub, id, expiry)
}

type noHubs struct{}

func (noHubs) Hubs(context.Context) ([]sp.Hub, error) { return nil, nil }

// accounts: one manual account, bob, whose access the test can withdraw.
type accounts struct {
	mu      sync.Mutex
	blocked bool
}

func (a *accounts) Login(context.Context, string, sp.Identity) (sp.LocalUser, error) {
	return sp.LocalUser{}, sp.ErrNotAllowed
}

func (a *accounts) Allowed(_ context.Context, u sp.LocalUser) (sp.LocalUser, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.blocked {
		return sp.LocalUser{}, sp.ErrNotAllowed
	}
	return u, nil
}

func (a *accounts) Authenticate(_ context.Context, username, password string) (sp.LocalUser, error) {
	if username == "bob" && password == "bob-pw" {
		return sp.LocalUser{ID: "M1", Username: "bob", Email: "bob@site.example", DisplayName: "Bob Builder", Groups: []string{"editors", "staff"}}, nil
	}
	return sp.LocalUser{}, sp.ErrInvalid
}

var freePort = hubproc.FreePort

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// startNginx runs the shipped configuration with the two upstreams and a
// listener.
func startNginx(t *testing.T, port int, bridge, site string) {
	t.Helper()
	hubproc.StartNginx(t, hubproc.NginxOptions{Includes: ".", Port: port, Bridge: bridge, Site: site})
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestAuthRequest(t *testing.T) {
	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)

	// The site echoes what nginx passed on.
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s\nuser=%s\nemail=%s\nname=%s\ngroups=%s\n", r.URL.RequestURI(),
			r.Header.Get("X-Connect-User"), r.Header.Get("X-Connect-Email"), r.Header.Get("X-Connect-Name"), r.Header.Get("X-Connect-Groups"))
	}))
	t.Cleanup(site.Close)

	keyPEM, certPEM, err := sp.NewKeyPair("bridge.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st := sessions{memory.New(memory.Config{})}
	acc := &accounts{}
	s, err := sp.New(sp.Config{
		BaseURL: origin, SiteName: "Example Site", KeyPEM: keyPEM, CertPEM: certPEM,
		Hubs: noHubs{}, Sessions: st, Replay: st, Accounts: acc, Local: acc,
		AllowedCache: -1, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bridge := httptest.NewServer(s.Handler())
	t.Cleanup(bridge.Close)
	startNginx(t, port, hostPort(t, bridge.URL), hostPort(t, site.URL))

	jar, _ := cookiejar.New(nil)
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &http.Client{Jar: jar, CheckRedirect: noFollow, Timeout: 10 * time.Second}
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", origin+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// No session: a redirect to the bridge's login page that comes back here.
	// Headers a client sends under the Connect names change nothing.
	resp, _ := get("/app/page?a=1&b=2", "X-Connect-User", "admin")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/login" || loc.Query().Get("rd") != "/app/page?a=1&b=2" {
		t.Fatalf("without a session: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Host != "" && loc.Host != hostPort(t, origin) {
		t.Fatalf("login redirect leaves the site: %q", loc)
	}

	// The login page, through nginx.
	resp, page := get(loc.RequestURI())
	m := csrfField.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || !strings.Contains(page, "Log in to Example Site") {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	form := url.Values{"csrf": {m[1]}, "rd": {"/app/page?a=1&b=2"}, "username": {"bob"}, "password": {"bob-pw"}}
	resp, err = c.PostForm(origin+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page?a=1&b=2" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// With the session: the site gets the page and who is asking.
	resp, body := get("/app/page?a=1&b=2", "X-Connect-User", "admin", "X-Connect-Groups", "admins")
	want := "path=/app/page?a=1&b=2\nuser=bob\nemail=bob@site.example\nname=Bob Builder\ngroups=editors,staff\n"
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("with a session: %d\n%s\nwant\n%s", resp.StatusCode, body, want)
	}

	// A POST with a body passes too (the subrequest carries no body).
	resp, err = c.Post(origin+"/app/form", "application/x-www-form-urlencoded", strings.NewReader("a=1"))
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body2), "user=bob\n") {
		t.Fatalf("POST with a session: %d %s", resp.StatusCode, body2)
	}

	// Known but no longer allowed: 403, the site never sees the request.
	acc.mu.Lock()
	acc.blocked = true
	acc.mu.Unlock()
	if resp, _ := get("/app/page"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("blocked account: %d", resp.StatusCode)
	}
	acc.mu.Lock()
	acc.blocked = false
	acc.mu.Unlock()

	// Logout through nginx ends it.
	resp, _ = get("/logout", "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := get("/app/page"); resp.StatusCode != http.StatusFound {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
	// The subrequest location is not reachable from outside.
	if resp, _ := get("/_connect_auth"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/_connect_auth from outside: %d", resp.StatusCode)
	}
}

// hubs lists one connected hub.
type hubs []sp.Hub

func (h hubs) Hubs(context.Context) ([]sp.Hub, error) { return h, nil }

// hubAccounts maps every asserted hub user to a connect account "tc<userName>".
type hubAccounts struct{}

func (hubAccounts) Login(_ context.Context, hub string, id sp.Identity) (sp.LocalUser, error) {
	return sp.LocalUser{ID: "C-" + id.Subject, Username: "tc" + id.UserName, Email: id.Email, Groups: id.Groups, Hub: hub}, nil
}

func (hubAccounts) Allowed(_ context.Context, u sp.LocalUser) (sp.LocalUser, error) { return u, nil }

var formInput = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
var formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)

func parseForm(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form:\n%s", page)
	}
	v := url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(page, -1) {
		v.Set(in[1], html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), v
}

// TestAuthRequestSSO logs in through a real Connect hub with the bridge behind
// nginx: the login page's hub button, the hub's login form, the ACS post
// through nginx, the protected page, and single logout.
func TestAuthRequestSSO(t *testing.T) {
	ctx := context.Background()
	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s groups=%s", r.Header.Get("X-Connect-User"), r.Header.Get("X-Connect-Groups"))
	}))
	t.Cleanup(site.Close)

	// The hub.
	st, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hubSrv := httptest.NewUnstartedServer(nil)
	hubSrv.StartTLS()
	t.Cleanup(hubSrv.Close)
	hubSrv.URL = strings.Replace(hubSrv.URL, "127.0.0.1", "hub.example.com", 1)
	hh, err := hub.New(hub.Config{Listen: "127.0.0.1:0", URL: hubSrv.URL, Name: "Connect Hub", Store: st,
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hubSrv.Config.Handler = hh.Handler()
	pw, _ := password.Hash("alice-pw")
	alice, err := st.CreateUser(ctx, scim.User{UserName: "alice", Active: scim.BoolPtr(true),
		Emails: []scim.MultiValue{{Value: "alice@example.org", Primary: true}}, Connect: &scim.ConnectUser{PasswordHash: pw}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(ctx, scim.Group{DisplayName: "Staff", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: alice.ID}}}); err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	tr := hubSrv.Client().Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".example.com") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}
	read := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, md := read(c.Get(hubSrv.URL + "/saml/metadata"))

	// The bridge, behind nginx.
	keyPEM, certPEM, err := sp.NewKeyPair("bridge.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ss := sessions{memory.New(memory.Config{})}
	s, err := sp.New(sp.Config{
		BaseURL: origin, SiteName: "Example Site", KeyPEM: keyPEM, CertPEM: certPEM,
		Hubs: hubs{{ID: "hub1", Name: "Connect Hub", Metadata: []byte(md)}}, Sessions: ss, Replay: ss, Accounts: hubAccounts{},
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bridge := httptest.NewServer(s.Handler())
	t.Cleanup(bridge.Close)
	spMD, err := s.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.RegisterServiceProvider(ctx, st, "test", spMD, "test", false); err != nil {
		t.Fatal(err)
	}
	startNginx(t, port, hostPort(t, bridge.URL), hostPort(t, site.URL))

	// Protected page → login page → the hub's button → the hub's login form.
	resp, page := read(c.Get(origin + "/reports?q=1"))
	if resp.Request.URL.Path != "/login" || !strings.Contains(page, "Log in using your account on: Connect Hub") {
		t.Fatalf("login page: %s %s", resp.Request.URL, page)
	}
	m := regexp.MustCompile(`href="(/saml/login\?[^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no hub button: %s", page)
	}
	resp, hubPage := read(c.Get(origin + html.UnescapeString(m[1])))
	action, fields := parseForm(t, hubPage)
	fields.Set("username", "alice")
	fields.Set("password", "alice-pw")
	ref, _ := resp.Request.URL.Parse(action)
	_, answer := read(c.PostForm(ref.String(), fields))
	acs, fields := parseForm(t, answer)
	if acs != origin+"/saml/acs" {
		t.Fatalf("the hub posts to %q", acs)
	}
	// Posting the answer lands, through nginx, on the page asked for.
	resp, body := read(c.PostForm(acs, fields))
	if resp.Request.URL.RequestURI() != "/reports?q=1" || body != "user=tcalice groups=Staff" {
		t.Fatalf("after login: %s %q", resp.Request.URL, body)
	}
	// Single logout through nginx: the site's session and the hub's end.
	req, _ := http.NewRequest("GET", origin+"/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, body = read(c.Do(req))
	if resp.Request.URL.Path != "/login" || !strings.Contains(body, "You have been logged out.") {
		t.Fatalf("after logout: %s %s", resp.Request.URL, body)
	}
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if resp, _ := read(noFollow.Get(origin + "/reports")); resp.StatusCode != http.StatusFound {
		t.Fatalf("protected page after logout: %d", resp.StatusCode)
	}
	if _, again := read(c.Get(origin + html.UnescapeString(m[1]))); !strings.Contains(again, `name="password"`) {
		t.Fatal("the hub session survived single logout")
	}
}
