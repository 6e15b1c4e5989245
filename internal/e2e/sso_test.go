package e2e

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/saml/idp"
)

const hubName = "Example Hub"

// person is a hub user of the test.
type person struct {
	userName, given, family, password string
	audiences                         []string
}

var (
	alice = person{"alice", "Alice", "Archer", "alice-Pa55word", []string{"Staff"}}
	bob   = person{"bob", "Bob", "Baker", "bob-Pa55word", []string{"Students"}}
)

// system is a hub and a bridge connected by the handshake, with nginx in front
// of the protected site at siteURL.
type system struct {
	hubURL, siteURL   string
	hubDSN, bridgeDSN string
	adminToken        string
}

// sitePage is the protected site: it shows what nginx passed on from the
// bridge's forward-auth answer.
var sitePage = template.Must(template.New("site").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Site</title>
<style>body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2433}
main{max-width:30rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
dt{font-weight:600;margin-top:.6rem}dd{margin:0}</style></head>
<body><main><h1>Example Site</h1>
<p id="hello">Hello, <span id="user">{{.User}}</span></p>
<dl><dt>Name</dt><dd id="name">{{.Name}}</dd><dt>Email</dt><dd id="email">{{.Email}}</dd><dt>Groups</dt><dd id="groups">{{.Groups}}</dd><dt>Page</dt><dd id="path">{{.Path}}</dd></dl>
<p><a id="logout" href="/logout">Log out</a></p>
</main></body></html>`))

func siteHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = sitePage.Execute(w, map[string]string{
			"User": r.Header.Get("X-Connect-User"), "Name": r.Header.Get("X-Connect-Name"),
			"Email": r.Header.Get("X-Connect-Email"), "Groups": r.Header.Get("X-Connect-Groups"), "Path": r.URL.RequestURI(),
		})
	})
}

var (
	hubListening    = regexp.MustCompile(`msg=listening addr=(\S+)`)
	bridgeListening = regexp.MustCompile(`msg="bridge serving" listen=(\S+)`)
	clientURLLine   = regexp.MustCompile(`(?m)^\s*Client URL:\s*(\S+)\s*$`)
	secretLine      = regexp.MustCompile(`(?m)^\s*Setup secret:\s*(\S+)\s*$`)
)

// startSystem starts the hub and the bridge as processes (SQLite stores,
// in-process bridge state), seeds the hub, runs nginx in front of the site
// and connects the bridge to the hub with the CLI handshake: the client is
// restricted to the Staff audience.
func startSystem(t *testing.T) *system {
	t.Helper()
	testenv.Binary(t, "nginx")
	dir := t.TempDir()
	s := &system{hubDSN: "sqlite:" + filepath.Join(dir, "hub.db"), bridgeDSN: "sqlite:" + filepath.Join(dir, "bridge.db")}

	_, addr := startProc(t, "hub", hubListening, "hub", "serve", "--listen", "127.0.0.1:0", "--store", s.hubDSN, "--name", hubName)
	s.hubURL = "http://" + addr
	s.adminToken = strings.TrimSpace(runCLI(t, "", "hub", "tokens", "create", "--name", "e2e", "--store", s.hubDSN))
	seed(t, s.hubURL, s.adminToken, alice, bob)

	site := httptest.NewServer(siteHandler())
	t.Cleanup(site.Close)
	port := freePort(t)
	s.siteURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	_, baddr := startProc(t, "bridge", bridgeListening, "bridge", "serve", "--listen", "127.0.0.1:0", "--url", s.siteURL, "--store", s.bridgeDSN)
	su, _ := url.Parse(site.URL)
	startNginx(t, port, baddr, su.Host)

	out := runCLI(t, "", "bridge", "servers", "connect", "--store", s.bridgeDSN)
	cu, sec := clientURLLine.FindStringSubmatch(out), secretLine.FindStringSubmatch(out)
	if cu == nil || sec == nil {
		t.Fatalf("bridge servers connect printed no Client URL / Setup secret:\n%s", out)
	}
	if cu[1] != s.siteURL {
		t.Fatalf("Client URL %s, want the site's origin %s", cu[1], s.siteURL)
	}
	runCLI(t, "", "hub", "clients", "add", "--store", s.hubDSN, "--name", "Example Site", "--url", cu[1], "--secret", sec[1],
		"--restrict-audience", "Staff", "--audience", "Staff")
	return s
}

// seed creates the people and their audiences on the hub over SCIM.
func seed(t *testing.T, hubURL, token string, people ...person) {
	t.Helper()
	members := map[string][]map[string]string{}
	for _, p := range people {
		var u struct{ ID string }
		scim(t, "POST", hubURL+"/scim/v2/Users", token, map[string]any{
			"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName":    p.userName,
			"displayName": p.given + " " + p.family,
			"name":        map[string]string{"givenName": p.given, "familyName": p.family},
			"emails":      []map[string]any{{"value": p.userName + "@example.org", "primary": true}},
			"active":      true,
			"password":    p.password,
		}, &u)
		for _, a := range p.audiences {
			members[a] = append(members[a], map[string]string{"value": u.ID})
		}
	}
	for _, g := range []string{"Staff", "Students"} {
		scim(t, "POST", hubURL+"/scim/v2/Groups", token, map[string]any{
			"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group", "urn:ietf:params:scim:schemas:extension:connect:2.0:Group"},
			"displayName": g,
			"members":     members[g],
			"urn:ietf:params:scim:schemas:extension:connect:2.0:Group": map[string]string{"kind": "audience"},
		}, nil)
	}
}

// TestBrowserSSO clicks through single sign-on in headless Chromium: the site
// behind nginx, the bridge's login page, the hub's login page, back on the
// site as the bridge's tc… account; a wrong password; single logout; a user
// outside the client's audience; automatic SSO.
func TestBrowserSSO(t *testing.T) {
	browser := newBrowser(t)
	s := startSystem(t)
	protected := s.siteURL + "/reports/q3?view=all"

	t.Run("login through the hub and single logout", func(t *testing.T) {
		tab := newTab(t, browser)
		tab.open(protected)
		tab.waitFor("a.hub")
		tab.at(s.siteURL + "/login?")
		if got, want := tab.textOf("a.hub"), "Log in using your account on: "+hubName; got != want {
			t.Fatalf("hub button %q, want %q", got, want)
		}
		tab.click("a.hub", "#login-form")
		tab.at(s.hubURL + "/")
		tab.mustContain("Log in to " + hubName)

		// A wrong password: the hub's one generic message, still on its page.
		tab.fillAndSubmit(map[string]string{"#username": alice.userName, "#password": "not-" + alice.password}, "#login-submit", "#login-error")
		if got := tab.textOf("#login-error"); got != idp.LoginFailedMessage {
			t.Fatalf("wrong password: %q, want %q", got, idp.LoginFailedMessage)
		}
		tab.at(s.hubURL + "/")

		tab.fillAndSubmit(map[string]string{"#username": alice.userName, "#password": alice.password}, "#login-submit", "#user")
		tab.at(protected)
		user := tab.textOf("#user")
		if !strings.HasPrefix(user, "tc") {
			t.Fatalf("site user %q: want the bridge's generated tc… account", user)
		}
		if got := tab.textOf("#email"); got != "alice@example.org" {
			t.Errorf("email %q", got)
		}
		if got := tab.textOf("#name"); got != "Alice Archer" {
			t.Errorf("name %q", got)
		}
		if got := tab.textOf("#path"); got != "/reports/q3?view=all" {
			t.Errorf("path %q", got)
		}

		// Another page of the site: no login needed.
		tab.open(s.siteURL + "/other")
		tab.waitFor("#user")
		if got := tab.textOf("#user"); got != user {
			t.Fatalf("second page user %q, want %q", got, user)
		}

		// Log out on the site: the bridge ends its session and the hub's.
		tab.click("#logout", "#note")
		tab.at(s.siteURL + "/login")
		tab.open(protected)
		tab.waitFor("a.hub")
		tab.click("a.hub", "#login-form") // the hub asks for the password again
		tab.at(s.hubURL + "/")
	})

	t.Run("user outside the restricted audience", func(t *testing.T) {
		tab := newTab(t, browser)
		tab.open(protected)
		tab.click("a.hub", "#login-form")
		tab.fillAndSubmit(map[string]string{"#username": bob.userName, "#password": bob.password}, "#login-submit", "#message")
		tab.mustContain("not allowed")
		if strings.Contains(tab.text(), "Hello") {
			t.Fatal("bob reached the site")
		}
		tab.open(protected)
		tab.waitFor("a.hub") // still no session on the site
	})

	t.Run("automatic SSO skips the bridge page", func(t *testing.T) {
		runCLI(t, "", "bridge", "settings", "set", "--store", s.bridgeDSN, "auto-sso=true")
		t.Cleanup(func() { runCLI(t, "", "bridge", "settings", "set", "--store", s.bridgeDSN, "auto-sso=false") })
		tab := newTab(t, browser)
		tab.open(protected)
		tab.waitFor("#login-form")
		tab.at(s.hubURL + "/")
		tab.fillAndSubmit(map[string]string{"#username": alice.userName, "#password": alice.password}, "#login-submit", "#user")
		tab.at(protected)
		if user := tab.textOf("#user"); !strings.HasPrefix(user, "tc") {
			t.Fatalf("site user %q", user)
		}
	})

	// Last: it locks alice's account. The hub locks an account after the
	// configured number of failures (5 by default); then even the right
	// password gets the one generic message, until `hub users unlock`.
	t.Run("lockout after repeated failures, cleared by unlock", func(t *testing.T) {
		tab := newTab(t, newBrowser(t)) // a fresh browser: no hub session
		// Each attempt from a fresh login page, so waiting for the error
		// message waits for that attempt's answer.
		attempt := func(pw, next string) {
			t.Helper()
			tab.open(protected)
			tab.click("a.hub", "#login-form")
			tab.fillAndSubmit(map[string]string{"#username": alice.userName, "#password": pw}, "#login-submit", next)
		}
		for i := 0; i < 5; i++ {
			attempt(fmt.Sprintf("wrong-%d", i), "#login-error")
		}
		attempt(alice.password, "#login-error")
		if got := tab.textOf("#login-error"); got != idp.LoginFailedMessage {
			t.Fatalf("locked account with the right password: %q", got)
		}
		tab.at(s.hubURL + "/")
		runCLI(t, "", "hub", "users", "unlock", "--store", s.hubDSN, alice.userName)
		tab.fillAndSubmit(map[string]string{"#username": alice.userName, "#password": alice.password}, "#login-submit", "#user")
		tab.at(protected)
	})
}
