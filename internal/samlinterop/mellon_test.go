package samlinterop

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/connectsso/connect/internal/testenv"
)

const apacheModules = "/usr/lib/apache2/modules"

// mellonSP is a running Apache httpd with mod_auth_mellon.
type mellonSP struct {
	Base, EntityID string
	Metadata       string // path of its SP metadata
	dir            string
}

// startMellon runs apache2 in a directory of its own on a free loopback port,
// protecting /protected/ with mod_auth_mellon against provider.
func startMellon(tb testing.TB, provider idp) *mellonSP {
	tb.Helper()
	apache := testenv.Binary(tb, "/usr/sbin/apache2") // Debian's; /usr/sbin may not be on PATH
	if _, err := os.Stat(filepath.Join(apacheModules, "mod_auth_mellon.so")); err != nil {
		testenv.Missing(tb, "mod_auth_mellon (Debian libapache2-mod-auth-mellon)")
	}
	// Its own directory, readable by the workers when they run as nobody.
	dir, err := os.MkdirTemp("", "samlinterop-mellon-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "htdocs", "protected"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	port := freePort(tb)
	m := &mellonSP{Base: fmt.Sprintf("http://localhost:%d", port), dir: dir}
	m.EntityID = m.Base + "/mellon/metadata"
	keys := newKeyPair(tb, dir, "sp")
	vars := map[string]any{
		"Dir": dir, "Port": port, "Modules": apacheModules, "EntityID": m.EntityID, "Base": m.Base,
		"Cert": base64.StdEncoding.EncodeToString(keys.Cert.Raw),
	}
	if os.Geteuid() == 0 {
		vars["User"], vars["Group"] = "nobody", "nogroup"
		if _, err := user.LookupGroup("nogroup"); err != nil {
			vars["Group"] = "nobody"
		}
	}
	render := func(tmpl, out string) string {
		t, err := template.ParseFiles(filepath.Join("testdata", "mellon", tmpl))
		if err != nil {
			tb.Fatal(err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, vars); err != nil {
			tb.Fatal(err)
		}
		return writeFile(tb, dir, out, buf.Bytes())
	}
	conf := render("httpd.conf.tmpl", "httpd.conf")
	m.Metadata = render("sp-metadata.xml.tmpl", "sp-metadata.xml")
	writeFile(tb, dir, "idp-metadata.xml", fetch(tb, provider.MetadataURL()))
	page, err := os.ReadFile(filepath.Join("testdata", "mellon", "whoami.shtml"))
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "htdocs", "protected"), "whoami.shtml", page)
	writeFile(tb, filepath.Join(dir, "htdocs"), "index.html", []byte("<!DOCTYPE html><p id=public>public page</p>\n"))
	if out, err := exec.Command(apache, "-t", "-f", conf).CombinedOutput(); err != nil {
		tb.Fatalf("apache2 -t: %v\n%s", err, out)
	}
	logs := startProcess(tb, "apache2", exec.Command(apache, "-f", conf, "-DFOREGROUND"))
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, f := range []string{"error.log", "access.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				tb.Logf("apache2 %s:\n%s", f, b)
			}
		}
	})
	// mod_auth_mellon serves its own metadata once it has loaded the keys and
	// the IdP metadata.
	waitHTTP(tb, m.EntityID, 15*time.Second, func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return logs.String() + string(b)
	})
	return m
}

// pageVars reads the KEY=VALUE lines of the protected page.
func pageVars(body string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.ContainsAny(k, " <>") {
			// Twice: mod_auth_mellon hands attribute values on XML-escaped
			// (it does so with any IdP; crewjam's samlidp gives the same),
			// and mod_include's echo escapes them again. The exact value is
			// checked by the other peers.
			out[k] = html.UnescapeString(html.UnescapeString(v))
		}
	}
	return out
}

// protected is the URL of the page mod_auth_mellon protects.
func (m *mellonSP) protected() string { return m.Base + "/protected/whoami.shtml" }

// login opens the protected page in b, logs in at the IdP's form and returns
// the page's variables once mellon lets the browser in, the page, and the
// SAMLResponse the browser carried.
func (m *mellonSP) login(tb testing.TB, b *browser, user, password string) (map[string]string, *page, string) {
	tb.Helper()
	resp, final := ssoLogin(tb, b, m.protected(), user, password)
	if final.Status != 200 || final.URL.String() != m.protected() {
		tb.Fatalf("after the SAML POST to mod_auth_mellon, want 200 at %s; got %s", m.protected(), final)
	}
	return pageVars(final.Body), final, resp
}

// TestMellon: a complete browser login through Apache httpd with
// mod_auth_mellon: the protected page redirects to the hub, the hub's login
// form is filled in and posted, the SAML response (its assertion encrypted to
// mellon's key) goes back to mellon's ACS, and the protected page shows the
// user mellon read from the assertion.
func TestMellon(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	m := startMellon(t, h)
	if got := h.AddSP(t, m.Metadata); got != m.EntityID {
		t.Errorf("sps add printed %q, want %q", got, m.EntityID)
	}
	vars, final, resp := m.login(t, newBrowser(t), u.UserName, u.Password)
	// The SP metadata offers an encryption key, so mellon had to decrypt.
	if raw, _ := base64.StdEncoding.DecodeString(resp); !bytes.Contains(raw, []byte("EncryptedAssertion")) {
		t.Errorf("the hub did not encrypt the assertion for an SP whose metadata has an encryption key")
	}
	want := map[string]string{
		"REMOTE_USER":        u.ID,
		"MELLON_NAME_ID":     u.ID,
		"MELLON_userName":    u.UserName,
		"MELLON_email":       u.Email,
		"MELLON_givenName":   u.GivenName,
		"MELLON_sn":          u.FamilyName,
		"MELLON_displayName": u.DisplayName,
		"MELLON_groups":      u.Audience,
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("protected page: %s = %q, want %q", k, vars[k], v)
		}
	}
	if t.Failed() {
		t.Logf("protected page: %s", final)
	}
}

// TestMellonSessions: with Apache + mod_auth_mellon, the hub session serves a
// second SP without a new login; single logout started at mellon (a signed
// HTTP-Redirect LogoutRequest) ends the hub session, so the next visit asks for
// the password again; and IdP-initiated SSO from the hub lands on mellon's
// protected page through RelayState.
func TestMellonSessions(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	m := startMellon(t, h)
	h.AddSP(t, m.Metadata)
	other := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "gosp.xml", other.metadata(t, false)))

	b := newBrowser(t)
	if vars, _, _ := m.login(t, b, u.UserName, u.Password); vars["MELLON_NAME_ID"] != u.ID {
		t.Fatalf("mellon: NameID %q, want %q", vars["MELLON_NAME_ID"], u.ID)
	}

	t.Run("second SP reuses the hub session", func(t *testing.T) {
		p := b.get(other.Base + "/login")
		if _, _, _, ok := p.loginForm(); ok {
			t.Fatalf("the hub asked for the password again: %s", p)
		}
		_, final := postSAMLResponse(t, b, p)
		var res goSPResult
		if err := json.Unmarshal([]byte(final.Body), &res); err != nil || !res.OK || res.NameID != u.ID {
			t.Errorf("gosaml2 SP after session reuse: %v %+v\n%s", err, res, final)
		}
	})

	t.Run("single logout from mellon", func(t *testing.T) {
		before := h.metric(t, `connect_hub_saml_logins_total{result="success"}`)
		back := m.Base + "/index.html"
		p := b.get(m.Base + "/mellon/logout?" + url.Values{"ReturnTo": {back}}.Encode())
		// The hub may show its own page on the way (for instance a form that
		// sends LogoutRequests to the other SPs of the session); follow forms
		// that carry SAML messages until the browser is back at mellon.
		for i := 0; i < 5 && !strings.HasPrefix(p.URL.String(), m.Base); i++ {
			f, ok := p.formWith("SAMLRequest")
			if !ok {
				f, ok = p.formWith("SAMLResponse")
			}
			if !ok {
				break
			}
			p = b.submit(p, f, nil)
		}
		if p.URL.String() != back || p.Status != 200 {
			t.Fatalf("mellon logout should end at %s; got %s\nhub log:\n%s", back, p, h.logs.String())
		}
		// Mellon's session is gone, and so is the hub's: the protected page
		// leads to the hub's login form.
		p = b.get(m.protected())
		if _, _, _, ok := p.loginForm(); !ok {
			t.Fatalf("after single logout, want the hub's login form; got %s", p)
		}
		if after := h.metric(t, `connect_hub_saml_logins_total{result="success"}`); after != before {
			t.Errorf("logins went from %v to %v during logout", before, after)
		}
	})

	t.Run("IdP-initiated", func(t *testing.T) {
		b := newBrowser(t)
		start := h.base + "/saml/idp-initiated?" + url.Values{"sp": {m.EntityID}, "RelayState": {"/protected/whoami.shtml"}}.Encode()
		_, final := ssoLogin(t, b, start, u.UserName, u.Password)
		if final.URL.String() != m.protected() || final.Status != 200 {
			t.Fatalf("IdP-initiated SSO should land on %s; got %s", m.protected(), final)
		}
		if vars := pageVars(final.Body); vars["MELLON_NAME_ID"] != u.ID || vars["MELLON_userName"] != u.UserName {
			t.Errorf("IdP-initiated: mellon saw %v", vars)
		}
	})
}
