package hub

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/saml/idp"
)

// newPlainSAMLEnv serves the hub over plain http on loopback (what
// --insecure-http and the demo do).
func newPlainSAMLEnv(t *testing.T, configure func(*Config)) *samlEnv {
	t.Helper()
	st := openTestStore(t)
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	e := &samlEnv{st: st, hub: srv, reg: prometheus.NewRegistry(), logs: newSyncBuffer()}
	k := sharedKey(t)
	cfg := Config{
		Listen: "127.0.0.1:0", URL: srv.URL, Name: "Test hub", Store: st,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)), Registry: e.reg, Version: "test",
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

// setCookies returns the response's Set-Cookie headers by cookie name.
func setCookies(resp *http.Response) map[string]string {
	out := map[string]string{}
	for _, h := range resp.Header.Values("Set-Cookie") {
		name, _, _ := strings.Cut(h, "=")
		out[name] = h
	}
	return out
}

// postLogin posts the login form of a fresh GET /login and returns the
// answer (not following its redirect).
func postLogin(t *testing.T, e *samlEnv, c *http.Client, user, pw string) *http.Response {
	t.Helper()
	_, page := browse(t, c, e.hub.URL+idp.PathLogin)
	_, v := formFields(page)
	v.Set(idp.FieldUserName, user)
	v.Set(idp.FieldPassword, pw)
	resp, err := c.PostForm(e.hub.URL+idp.PathLogin, v)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	return resp
}

// TestSAMLHostCookies: over https every IdP cookie is a __Host- cookie
// (Secure, Path=/, no Domain), so a sibling host cannot plant or shadow the
// session or CSRF cookie; a cookie under the old name is ignored and
// deleted. Over plain http the names stay as they were.
func TestSAMLHostCookies(t *testing.T) {
	t.Run("https", func(t *testing.T) {
		e := newSAMLEnv(t, nil)
		e.addUser(t, "alice", "pw-alice", true)
		c := e.browser(t)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp := postLogin(t, e, c, "alice", "pw-alice")
		set := setCookies(resp)
		for _, name := range []string{idp.SessionCookie, idp.CSRFCookie} {
			if _, ok := set[name]; ok {
				t.Errorf("unprefixed cookie %s set over https: %s", name, set[name])
			}
			h, ok := set["__Host-"+name]
			if !ok {
				t.Fatalf("no __Host-%s cookie; Set-Cookie: %q", name, resp.Header.Values("Set-Cookie"))
			}
			for _, attr := range []string{"Secure", "Path=/", "HttpOnly", "SameSite=Lax"} {
				if !strings.Contains(h, attr) {
					t.Errorf("%s lacks %s", h, attr)
				}
			}
			if strings.Contains(strings.ToLower(h), "domain=") {
				t.Errorf("%s has a Domain", h)
			}
			if got := idp.CookieName(e.hub.URL, name); got != "__Host-"+name {
				t.Errorf("CookieName = %q", got)
			}
		}
		hubURL, _ := url.Parse(e.hub.URL)
		secret := cookieValue(c, hubURL, "__Host-"+idp.SessionCookie)
		if _, page := browse(t, c, e.hub.URL+idp.PathLogin); !strings.Contains(page, "Logged in") {
			t.Fatalf("the __Host- session is not honoured:\n%s", page)
		}

		// A browser upgraded from a hub that set the unprefixed name: that
		// cookie (even with a live session behind it) is not a session any
		// more, and the hub deletes it.
		old := e.browser(t)
		old.Jar.SetCookies(hubURL, []*http.Cookie{{Name: idp.SessionCookie, Value: secret, Path: "/"}, {Name: idp.CSRFCookie, Value: strings.Repeat("c", 43), Path: "/"}})
		resp, err := old.Get(e.hub.URL + idp.PathLogin)
		if err != nil {
			t.Fatal(err)
		}
		code, page := readBody(t, resp, nil)
		if code != 200 || !strings.Contains(page, `id="login-form"`) {
			t.Fatalf("old cookie name: want the login form, got %d\n%s", code, page)
		}
		set = setCookies(resp)
		for _, name := range []string{idp.SessionCookie, idp.CSRFCookie} {
			if h := set[name]; !strings.Contains(h, "Max-Age=0") {
				t.Errorf("old cookie %s not deleted: %q", name, h)
			}
		}
		if cookieValue(old, hubURL, idp.SessionCookie) != "" {
			t.Error("the jar still holds the old session cookie")
		}
	})

	t.Run("plain http", func(t *testing.T) {
		e := newPlainSAMLEnv(t, nil)
		e.addUser(t, "alice", "pw-alice", true)
		c := e.browser(t)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		set := setCookies(postLogin(t, e, c, "alice", "pw-alice"))
		for _, name := range []string{idp.SessionCookie, idp.CSRFCookie} {
			h, ok := set[name]
			if !ok {
				t.Fatalf("no %s cookie over http: %v", name, set)
			}
			if strings.Contains(h, "Secure") || strings.HasPrefix(h, "__Host-") {
				t.Errorf("http cookie %s", h)
			}
			if got := idp.CookieName(e.hub.URL, name); got != name {
				t.Errorf("CookieName = %q", got)
			}
		}
		if _, page := browse(t, c, e.hub.URL+idp.PathLogin); !strings.Contains(page, "Logged in") {
			t.Fatalf("http session not honoured:\n%s", page)
		}
	})
}

// TestSAMLUpstreamReplay: a Response of the upstream IdP, posted again
// with the tracked-request cookie it came with (captured from a proxy log or
// a shared computer), is refused by the replica that accepted it and by
// another replica over the same store.
func TestSAMLUpstreamReplay(t *testing.T) {
	entStore := openTestStore(t)
	ent := newSAMLEnvHost(t, entStore, "idp.example.com", func(c *Config) { c.Name = "Enterprise" })
	ent.addUser(t, "ada", "enterprise pw", true)
	_, md := browse(t, ent.browser(t), ent.hub.URL+idp.PathMetadata)
	mdFile := filepath.Join(t.TempDir(), "enterprise.xml")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	var cfgA Config
	a := newSAMLEnvHost(t, st, "hub.example.com", func(c *Config) {
		c.SAML.Upstream = UpstreamConfig{Metadata: mdFile, Name: "Enterprise", MatchAttribute: "email"}
		cfgA = *c
	})
	a.addUser(t, "ada", "", true)
	_, upMD := browse(t, a.browser(t), a.hub.URL+idp.PathUpstreamMetadata)
	if _, err := RegisterServiceProvider(context.Background(), entStore, "test", []byte(upMD), "hub", true); err != nil {
		t.Fatal(err)
	}
	// Replica B: another hub process over the same store and URL.
	cfgB := cfgA
	cfgB.Registry = prometheus.NewRegistry()
	b, err := New(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	replicaB := b.Handler()

	// capture logs in at the enterprise IdP and returns the Response form
	// the browser would post to the hub, with the hub's tracked-request
	// cookies.
	capture := func() (string, url.Values, []*http.Cookie) {
		t.Helper()
		c := a.browser(t)
		code, page := browse(t, c, a.hub.URL+idp.PathUpstreamLogin)
		if code != 200 || !strings.Contains(page, "Log in to Enterprise") {
			t.Fatalf("want the enterprise login page: %d\n%s", code, page)
		}
		code, page = ent.submitLogin(t, c, page, "ada", "enterprise pw")
		if code != 200 || !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("enterprise login: %d\n%s", code, page)
		}
		action, v := formFields(page)
		hubURL, _ := url.Parse(a.hub.URL)
		var tracked []*http.Cookie
		for _, k := range c.Jar.Cookies(hubURL) {
			if strings.HasPrefix(k.Name, "__Host-saml_") {
				tracked = append(tracked, k)
			}
		}
		if len(tracked) == 0 {
			t.Fatalf("no __Host-saml_ tracked-request cookie: %v", c.Jar.Cookies(hubURL))
		}
		return action, v, tracked
	}
	request := func(action string, v url.Values, cookies []*http.Cookie) *http.Request {
		r := httptest.NewRequest("POST", action, strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "192.0.2.7:4000"
		for _, k := range cookies {
			r.AddCookie(k)
		}
		return r
	}
	toA := func(action string, v url.Values, cookies []*http.Cookie) (int, string) {
		t.Helper()
		c := a.browser(t)
		c.Jar = nil
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r := request(action, v, cookies)
		r.RequestURI = ""
		resp, err := c.Do(r)
		return readBody(t, resp, err)
	}
	toB := func(action string, v url.Values, cookies []*http.Cookie) (int, string) {
		w := httptest.NewRecorder()
		replicaB.ServeHTTP(w, request(action, v, cookies))
		return w.Code, w.Body.String()
	}
	accepted := func(code int, page string) bool {
		return code == http.StatusFound && !strings.Contains(page, "Login failed")
	}

	action, v, tracked := capture()
	if code, page := toA(action, v, tracked); !accepted(code, page) {
		t.Fatalf("first post to replica A: %d\n%s\n%s", code, page, a.logs.String())
	}
	code, page := toA(action, v, tracked)
	wantRefusal(t, code, page, http.StatusForbidden, "Login failed")
	code, page = toB(action, v, tracked)
	wantRefusal(t, code, page, http.StatusForbidden, "Login failed")
	if !strings.Contains(a.logs.String(), "assertion replayed") {
		t.Errorf("replay not logged:\n%s", a.logs.String())
	}

	// The other way round: first at B, replayed at A.
	action, v, tracked = capture()
	if code, page := toB(action, v, tracked); !accepted(code, page) {
		t.Fatalf("first post to replica B: %d\n%s", code, page)
	}
	code, page = toA(action, v, tracked)
	wantRefusal(t, code, page, http.StatusForbidden, "Login failed")
}

// testClock is a settable clock for a hub under test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSAMLStartThrottle: one address may start 60 anonymous logins at once
// and 20 a second after that; the next gets 429 with Retry-After and a
// generic page. Other addresses (the proxy's X-Forwarded-For, when the proxy
// is trusted) and users with a session are not affected; a stale session
// cookie does not get around it.
func TestSAMLStartThrottle(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted bool
	}{{"behind a trusted proxy", true}, {"X-Forwarded-For not trusted", false}} {
		t.Run(tt.name, func(t *testing.T) {
			clk := &testClock{t: time.Now()}
			e := newSAMLEnv(t, func(c *Config) {
				c.Clock = clk.now
				if tt.trusted {
					c.SAML.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
				}
			})
			e.addUser(t, "alice", "pw-alice", true)
			sp := e.newSP(t, true, nil)
			// The AuthnRequest the SP sends the browser to.
			c := e.browser(t)
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Get(sp.srv.URL + "/app")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			sso := resp.Header.Get("Location")
			if !strings.HasPrefix(sso, e.hub.URL+idp.PathSSO+"?SAMLRequest=") {
				t.Fatalf("SP redirect %d %q", resp.StatusCode, sso)
			}
			start := func(c *http.Client, xff string) (int, http.Header, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", sso, nil)
				if xff != "" {
					req.Header.Set("X-Forwarded-For", xff)
				}
				resp, err := c.Do(req)
				code, page := readBody(t, resp, err)
				return code, resp.Header, page
			}
			anon := e.browser(t)
			anon.Jar = nil // every request a new anonymous start
			for i := range 60 {
				if code, _, page := start(anon, ""); code != 200 || !strings.Contains(page, `id="login-form"`) {
					t.Fatalf("start %d: %d\n%s", i+1, code, page)
				}
			}
			code, h, page := start(anon, "")
			wantRefusal(t, code, page, http.StatusTooManyRequests, "Too many requests")
			if h.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q, want 1", h.Get("Retry-After"))
			}
			if strings.Contains(page, "login-form") || strings.Contains(page, "127.0.0.1") {
				t.Errorf("the 429 page is not generic:\n%s", page)
			}
			// Another client address.
			code, _, _ = start(anon, "198.51.100.9")
			if tt.trusted && code != 200 {
				t.Errorf("another address behind the trusted proxy: %d", code)
			}
			if !tt.trusted && code != http.StatusTooManyRequests {
				t.Errorf("a forged X-Forwarded-For got around the throttle: %d", code)
			}
			// The upstream-less IdP-initiated start and a stale cookie are
			// throttled too; a real session is not.
			hubURL, _ := url.Parse(e.hub.URL)
			stale := e.browser(t)
			stale.Jar.SetCookies(hubURL, []*http.Cookie{{Name: idp.CookieName(e.hub.URL, idp.SessionCookie), Value: "no-such-session", Path: "/"}})
			if code, _, _ := start(stale, ""); code != http.StatusTooManyRequests {
				t.Errorf("stale session cookie: %d, want 429", code)
			}
			if code, _ := browse(t, anon, e.hub.URL+idp.PathIdPInitiated+"?sp="+url.QueryEscape(sp.entityID())); code != http.StatusTooManyRequests {
				t.Errorf("IdP-initiated start: %d, want 429", code)
			}
			in := e.loggedIn(t, "alice", "pw-alice")
			if code, _, page := start(in, ""); code != 200 || !strings.Contains(page, "SAMLResponse") {
				t.Errorf("a logged-in user was throttled: %d\n%s", code, page)
			}
			// A second refills 20.
			clk.add(time.Second)
			for i := range 20 {
				if code, _, _ := start(anon, ""); code != 200 {
					t.Fatalf("refilled start %d: %d", i+1, code)
				}
			}
			if code, _, _ := start(anon, ""); code != http.StatusTooManyRequests {
				t.Errorf("after the refill: %d, want 429", code)
			}
			if n, _ := metric(t, e.reg, "connect_hub_saml_refusals_total", "reason=rate_limited"); n < 3 {
				t.Errorf("rate_limited refusals counted %v", n)
			}
			if got := strings.Count(e.logs.String(), "login starts throttled"); got < 1 {
				t.Errorf("throttling not logged")
			}
		})
	}
}
