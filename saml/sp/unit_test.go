package sp

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSafeReturnTo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/app/page", "/app/page"},
		{"/app/page?x=1&y=%2F", "/app/page?x=1&y=%2F"},
		{"/app#frag", "/app#frag"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"//evil.example", "/"},
		{"//evil.example/path", "/"},
		{"/\\evil.example", "/"},
		{"/a\\b", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"/a\r\nSet-Cookie: x=1", "/"},
		{"/a\tb", "/"},
		{"/login", "/"},
		{"/login?rd=/x", "/"},
		{"/logout", "/"},
		{"/saml/acs", "/"},
		{"/connect/auth", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	} {
		if got := safeReturnTo(tc.in); got != tc.want {
			t.Errorf("safeReturnTo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range []string{"/a", "//b", "/\\c", "https://d", "/e?f=//g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := safeReturnTo(rd)
		if got == "/" {
			return
		}
		// Whatever is accepted must stay on this origin when a browser
		// resolves it against the bridge URL.
		req := httptest.NewRequest("GET", "https://bridge.example/", nil)
		u, err := req.URL.Parse(got)
		if err != nil || u.Host != "bridge.example" || u.Scheme != "https" {
			t.Fatalf("safeReturnTo(%q) = %q resolves to %v (%v)", rd, got, u, err)
		}
		if strings.ContainsAny(got, "\\\r\n") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeReturnTo(%q) = %q", rd, got)
		}
	})
}

func TestCookieValue(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("Cookie", "a=1; __Host-connect_session=abc; b=\"q\"")
	r.Header.Add("Cookie", "c=3")
	for name, want := range map[string]string{"a": "1", "__Host-connect_session": "abc", "b": "q", "c": "3"} {
		if got, ok := cookieValue(r, name); !ok || got != want {
			t.Errorf("cookieValue(%s) = %q %v", name, got, ok)
		}
	}
	if _, ok := cookieValue(r, "connect_session"); ok {
		t.Error("found a cookie by a suffix of its name")
	}
}

func TestTokens(t *testing.T) {
	a, b := newToken(), newToken()
	if a == b || !validToken(a) || len(a) != tokenLen {
		t.Fatalf("tokens %q %q", a, b)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token is not 256 bits: %v %d", err, len(raw))
	}
	for _, bad := range []string{"", "short", a + "x", strings.Repeat("!", tokenLen)} {
		if validToken(bad) {
			t.Errorf("validToken(%q)", bad)
		}
	}
	if ha, hb := tokenHash(a), tokenHash(b); ha == hb || ha != tokenHash(strings.Clone(a)) {
		t.Error("tokenHash")
	}
}

func TestCheckResponseShape(t *testing.T) {
	const (
		p = `xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
		a = `<saml:Assertion ID="_a"/>`
		s = `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>`
	)
	for _, tc := range []struct {
		name, xml string
		ok        bool
	}{
		{"one assertion", `<samlp:Response ` + p + ` ID="_r">` + s + a + `</samlp:Response>`, true},
		{"one encrypted assertion", `<samlp:Response ` + p + ` ID="_r">` + s + `<saml:EncryptedAssertion/></samlp:Response>`, true},
		{"no assertion", `<samlp:Response ` + p + ` ID="_r">` + s + `</samlp:Response>`, false},
		{"two assertions", `<samlp:Response ` + p + ` ID="_r">` + s + a + a + `</samlp:Response>`, false},
		{"assertion hidden in extensions", `<samlp:Response ` + p + ` ID="_r"><samlp:Extensions>` + a + `</samlp:Extensions>` + s + a + `</samlp:Response>`, false},
		{"assertion hidden in a signature object", `<samlp:Response ` + p + ` ID="_r">` + s + `<saml:Assertion ID="_b"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:Object>` + a + `</ds:Object></ds:Signature></saml:Assertion></samlp:Response>`, false},
		{"no ID", `<samlp:Response ` + p + `>` + s + a + `</samlp:Response>`, false},
		{"not a response", `<samlp:LogoutResponse ` + p + ` ID="_r">` + s + `</samlp:LogoutResponse>`, false},
		{"wrong namespace", `<Response ID="_r">` + a + `</Response>`, false},
		{"not xml", `<<<`, false},
		{"refusal without assertion", `<samlp:Response ` + p + ` ID="_r"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode></samlp:Status></samlp:Response>`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh, err := checkResponseShape([]byte(tc.xml))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && sh.id != "_r" {
				t.Errorf("id %q", sh.id)
			}
		})
	}
	sh, _ := checkResponseShape([]byte(`<samlp:Response ` + p + ` ID="_r"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode></samlp:Status></samlp:Response>`))
	if !strings.HasSuffix(sh.subStatus, ":RequestDenied") {
		t.Errorf("second-level status %q", sh.subStatus)
	}
}

func TestConfigValidate(t *testing.T) {
	keyPEM, certPEM := testKeyPair(t, 1)
	_, otherCert := testKeyPair(t, 0)
	good := Config{
		BaseURL: "https://site.example", KeyPEM: keyPEM, CertPEM: certPEM,
		Hubs: &hubsList{}, Sessions: stateSessions{}, Replay: stateSessions{}, Accounts: newTestAccounts(),
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80"} {
		c := good
		c.BaseURL = u
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	c := good
	c.BaseURL, c.InsecureHTTP = "http://site.example", true
	if err := c.Validate(); err != nil {
		t.Errorf("http with InsecureHTTP: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no url", func(c *Config) { c.BaseURL = "" }, "base url"},
		{"ftp url", func(c *Config) { c.BaseURL = "ftp://site.example" }, "base url"},
		{"url with a path", func(c *Config) { c.BaseURL = "https://site.example/bridge" }, "root of its origin"},
		{"http off loopback", func(c *Config) { c.BaseURL = "http://site.example" }, "plain http only on loopback"},
		{"no key", func(c *Config) { c.KeyPEM = nil }, "key pair"},
		{"mismatched cert", func(c *Config) { c.CertPEM = otherCert }, "not the key's"},
		{"no hubs", func(c *Config) { c.Hubs = nil }, "hubs: not set"},
		{"no sessions", func(c *Config) { c.Sessions = nil }, "sessions: not set"},
		{"no replay cache", func(c *Config) { c.Replay = nil }, "replay cache: not set"},
		{"no accounts", func(c *Config) { c.Accounts = nil }, "accounts: not set"},
		{"negative idle", func(c *Config) { c.SessionIdle = -time.Second }, "session idle"},
		{"huge skew", func(c *Config) { c.ClockSkew = time.Hour }, "clock skew"},
		{"idle beyond lifetime", func(c *Config) { c.SessionIdle, c.SessionLifetime = 2*time.Hour, time.Hour }, "longer than session lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	// Every problem at once.
	err := Config{}.Validate()
	for _, want := range []string{"base url", "key pair", "hubs", "sessions", "replay cache", "accounts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty config: %v lacks %q", err, want)
		}
	}
}

func TestParseIDPMetadata(t *testing.T) {
	th := newTestHub(t)
	md := th.metadata()
	ed, err := parseIDPMetadata(md)
	if err != nil || ed.EntityID != th.srv.URL+"/metadata" {
		t.Fatalf("hub metadata: %v %v", ed, err)
	}
	wrapped := `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + strings.TrimPrefix(string(md), `<?xml version="1.0" encoding="UTF-8"?>`) + `</EntitiesDescriptor>`
	if _, err := parseIDPMetadata([]byte(wrapped)); err != nil {
		t.Errorf("EntitiesDescriptor with one IdP: %v", err)
	}
	for name, bad := range map[string]string{
		"empty":   "",
		"not xml": "<<",
		"sp only": `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></EntityDescriptor>`,
		"no keys": `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://h/sso"/></IDPSSODescriptor></EntityDescriptor>`,
		"other":   `<foo/>`,
	} {
		if _, err := parseIDPMetadata([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestBrokenHubSkipped: a hub with unusable metadata is left off the login
// page; the others still work.
func TestBrokenHubSkipped(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.hubs.mu.Lock()
	f.hubs.hubs = append([]Hub{{ID: "broken", Name: "Broken Hub", Metadata: []byte("<nope/>")}, {ID: "scim-only", Name: "SCIM Source"}}, f.hubs.hubs...)
	f.hubs.mu.Unlock()
	for i := 0; i < 2; i++ { // the second time from the broken-metadata memo
		resp, body := f.browser().get(f.srv.URL+"/login", false)
		if resp.StatusCode != 200 || strings.Contains(body, "Broken Hub") || strings.Contains(body, "SCIM Source") || !strings.Contains(body, "Test Hub") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	var resp *http.Response
	resp, _ = f.browser().get(f.srv.URL+PathSAMLLogin+"?hub=broken", false)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("start login at a broken hub: %d", resp.StatusCode)
	}
	if _, err := f.replicas[0].Metadata(context.Background()); err != nil {
		t.Fatalf("metadata with a broken hub: %v", err)
	}
}

// FuzzCheckResponseShape: any bytes a browser posts are refused or read
// without a panic, and an accepted success carries an ID.
func FuzzCheckResponseShape(f *testing.F) {
	const p = `xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"`
	f.Add([]byte(`<samlp:Response ` + p + ` ID="_r"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a"/></samlp:Response>`))
	f.Add([]byte(`<samlp:Response ` + p + ` ID="_r"><saml:Assertion/><saml:Assertion/></samlp:Response>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sh, err := checkResponseShape(raw)
		if err == nil && sh.id == "" {
			t.Fatalf("accepted a response without ID: %q", raw)
		}
	})
}
