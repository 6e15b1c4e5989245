package hub

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// TestSAMLUpstream: another hub plays the enterprise IdP. A user starts at an
// SP, picks "Log in with …" on the hub's login page, logs in at the
// enterprise IdP with a password the hub does not know, and reaches the SP as
// the hub user with the same email. Unknown users get an error page unless
// creation is on.
func TestSAMLUpstream(t *testing.T) {
	entStore := openTestStore(t)
	ent := newSAMLEnvHost(t, entStore, "idp.example.com", func(c *Config) { c.Name = "Enterprise" })
	ent.addUser(t, "ada", "enterprise pw", true)
	ent.addUser(t, "bob", "bob pw", true)
	ent.addUser(t, "carol", "carol pw", true)
	_, md := browse(t, ent.browser(t), ent.hub.URL+idp.PathMetadata)
	mdFile := filepath.Join(t.TempDir(), "enterprise.xml")
	if err := os.WriteFile(mdFile, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		create bool
	}{{"match only", false}, {"create users", true}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newSAMLEnvHost(t, openTestStore(t), "hub.example.com", func(c *Config) {
				c.SAML.Upstream = UpstreamConfig{Metadata: mdFile, Name: "Analytical Enterprises", MatchAttribute: "email", CreateUsers: tt.create}
			})
			e.addUser(t, "ada", "", true, "Analysts") // no hub password: only the enterprise login works
			e.addUser(t, "carol", "", false)          // suspended on the hub
			_, upMD := browse(t, e.browser(t), e.hub.URL+idp.PathUpstreamMetadata)
			if _, err := RegisterServiceProvider(context.Background(), entStore, "test", []byte(upMD), "hub", true); err != nil {
				t.Fatal(err)
			}
			sp := e.newSP(t, true, nil)

			login := func(user, pw string) (int, string) {
				t.Helper()
				c := e.browser(t)
				code, page := browse(t, c, sp.srv.URL+"/app")
				if code != 200 || !strings.Contains(page, `id="upstream-login"`) || !strings.Contains(page, "Log in with Analytical Enterprises") {
					t.Fatalf("hub login page without the upstream link: %d\n%s", code, page)
				}
				link := linkHref(t, page, "upstream-login")
				code, page = browse(t, c, e.hub.URL+link)
				if code != 200 || !strings.Contains(page, "Log in to Enterprise") {
					t.Fatalf("want the enterprise login page: %d\n%s\n%s", code, page, e.logs.String())
				}
				code, page = ent.submitLogin(t, c, page, user, pw)
				if code != 200 || !strings.Contains(page, "SAMLResponse") {
					t.Fatalf("enterprise login: %d\n%s", code, page)
				}
				code, page = postResponse(t, c, page) // to the hub's upstream ACS, then resumed
				if code != 200 || !strings.Contains(page, "SAMLResponse") {
					return code, page
				}
				return postResponse(t, c, page) // to the SP
			}

			code, page := login("ada", "enterprise pw")
			if code != 200 || !strings.HasPrefix(page, "hello userName=ada email=ada@example.org groups=Analysts") {
				t.Fatalf("ada through the enterprise IdP: %d %s\n%s", code, page, e.logs.String())
			}
			code, page = login("carol", "carol pw")
			wantRefusal(t, code, page, http.StatusForbidden, "Account suspended")
			code, page = login("bob", "bob pw")
			if !tt.create {
				wantRefusal(t, code, page, http.StatusForbidden, "No account")
				if _, err := e.st.UserByUserName(context.Background(), "bob"); err == nil {
					t.Fatal("a user was created with creation off")
				}
				return
			}
			if code != 200 || !strings.HasPrefix(page, "hello userName=bob email=bob@example.org") {
				t.Fatalf("bob created: %d %s", code, page)
			}
			if _, err := e.st.UserByUserName(context.Background(), "bob"); err != nil {
				t.Fatalf("bob not created: %v", err)
			}
		})
	}
}

func openTestStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func linkHref(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `id="`+id+`" href="`)
	if i < 0 {
		t.Fatalf("no link %s in\n%s", id, page)
	}
	rest := page[i+len(`id="`+id+`" href="`):]
	return html.UnescapeString(rest[:strings.Index(rest, `"`)])
}

func TestSAMLClientIP(t *testing.T) {
	cfg := SAMLConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for _, tt := range []struct {
		name, remote, xff, want string
		trusted                 bool
	}{
		{"direct", "203.0.113.9:5000", "", "203.0.113.9", true},
		{"direct ignores XFF", "203.0.113.9:5000", "198.51.100.1", "203.0.113.9", true},
		{"via proxy", "10.1.2.3:5000", "198.51.100.1", "198.51.100.1", true},
		{"via two proxies", "10.1.2.3:5000", "198.51.100.1, 10.9.9.9", "198.51.100.1", true},
		{"spoofed left entry", "10.1.2.3:5000", "1.1.1.1, 198.51.100.1", "198.51.100.1", true},
		{"garbage", "10.1.2.3:5000", "nonsense", "10.1.2.3", true},
		{"ipv6 proxy", "[::1]:5000", "2001:db8::7", "2001:db8::7", true},
		{"no trusted proxies", "10.1.2.3:5000", "198.51.100.1", "10.1.2.3", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if !tt.trusted {
				c = SAMLConfig{}
			}
			r := httptest.NewRequest("POST", "/login", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := c.clientIP(r); got != tt.want {
				t.Errorf("clientIP = %q, want %q", got, tt.want)
			}
		})
	}
}
