package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim/hub"
)

const cliSPMetadata = `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.org/shibboleth">
<SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="ACS" index="0"/>
</SPSSODescriptor></EntityDescriptor>`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSPsCommands(t *testing.T) {
	dsn := tempDSN(t)
	good := writeFile(t, "sp.xml", strings.Replace(cliSPMetadata, "ACS", "https://sp.example.org/acs", 1))
	out, errOut, code := runCLI(t, "hub", "sps", "add", "--store", dsn, "--metadata", good)
	if code != 0 || out != "https://sp.example.org/shibboleth\n" {
		t.Fatalf("sps add = %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "sps", "add", "--store", dsn, "--metadata", good); code == 0 || !strings.Contains(errOut, "--replace") {
		t.Fatalf("duplicate add = %d %q", code, errOut)
	}
	if out, _, code := runCLI(t, "hub", "sps", "add", "--store", dsn, "--metadata", good, "--replace"); code != 0 || out != "https://sp.example.org/shibboleth\n" {
		t.Fatalf("replace = %d %q", code, out)
	}
	for _, bad := range []string{"javascript:alert(document.domain)", "data:text/html;base64,PHNjcmlwdD4=", "ftp://sp.example.org/acs"} {
		p := writeFile(t, "bad.xml", strings.Replace(strings.Replace(cliSPMetadata, "ACS", bad, 1), "shibboleth", "evil", 1))
		if out, errOut, code := runCLI(t, "hub", "sps", "add", "--store", dsn, "--metadata", p); code == 0 || out != "" || !strings.Contains(errOut, "not an http(s) URL") {
			t.Errorf("ACS %q: %d %q %q", bad, code, out, errOut)
		}
	}
	out, _, code = runCLI(t, "hub", "sps", "list", "--store", dsn)
	if code != 0 || !strings.Contains(out, "https://sp.example.org/shibboleth") || strings.Contains(out, "evil") {
		t.Fatalf("sps list = %d %q", code, out)
	}
	if _, errOut, code := runCLI(t, "hub", "sps", "remove", "--store", dsn, "https://sp.example.org/shibboleth"); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "sps", "remove", "--store", dsn, "https://sp.example.org/shibboleth"); code == 0 || !strings.Contains(errOut, "no SP") {
		t.Fatalf("remove twice = %d %q", code, errOut)
	}
	st := openStore(t, dsn)
	audit, _ := st.AuditLog(context.Background(), 10)
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, ","); got != "sp.remove,sp.replace,sp.add" {
		t.Errorf("audit actions %s", got)
	}
}

func TestKeysCommands(t *testing.T) {
	dsn := tempDSN(t)
	// A hub without keys: the rotated key signs at once (nothing to overlap
	// with), so the metadata is never left without a signing key.
	out, errOut, code := runCLI(t, "hub", "keys", "rotate", "--store", dsn, "--overlap", "2d")
	if code != 0 || !strings.Contains(out, "signs now: the hub had no signing key") {
		t.Fatalf("first rotate = %d %q %q", code, out, errOut)
	}
	if out, _, _ := runCLI(t, "hub", "keys", "list", "--store", dsn); !strings.Contains(out, "signing") || strings.Contains(out, "next") {
		t.Fatalf("keys list after the first rotate = %q", out)
	}
	if out, _, _ := runCLI(t, "hub", "audit", "--store", dsn); !strings.Contains(out, "signs now") || strings.Contains(out, "0001-01-01") {
		t.Fatalf("audit after the first rotate = %q", out)
	}
	// An overlap shorter than the metadata's cache time needs --force.
	if _, errOut, code := runCLI(t, "hub", "keys", "rotate", "--store", dsn, "--overlap", "1h"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("short overlap = %d %q", code, errOut)
	}
	out, errOut, code = runCLI(t, "hub", "keys", "rotate", "--store", dsn, "--overlap", "2d", "--algorithm", "ecdsa")
	if code != 0 || !strings.Contains(out, "(ecdsa-sha256) is published now and signs from") {
		t.Fatalf("rotate = %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "keys", "rotate", "--store", dsn); code == 0 || !strings.Contains(errOut, "already pending") {
		t.Fatalf("second rotate = %d %q", code, errOut)
	}
	out, _, _ = runCLI(t, "hub", "keys", "list", "--store", dsn)
	if !strings.Contains(out, "next (published)") {
		t.Fatalf("keys list = %q", out)
	}
	if _, errOut, code := runCLI(t, "hub", "keys", "rotate", "--store", dsn, "--algorithm", "dsa"); code == 0 || !strings.Contains(errOut, "dsa") {
		t.Fatalf("bad algorithm = %d %q", code, errOut)
	}
}

func TestSAMLFlagsCheckConfig(t *testing.T) {
	dsn := tempDSN(t)
	a, _ := idp.GenerateKey(idp.AlgRSA, "a", time.Now(), time.Time{})
	b, _ := idp.GenerateKey(idp.AlgRSA, "b", time.Now(), time.Time{})
	key := writeFile(t, "key.pem", string(a.KeyPEM))
	cert := writeFile(t, "cert.pem", string(a.CertPEM))
	other := writeFile(t, "other.pem", string(b.CertPEM))
	if _, errOut, code := runCLI(t, "hub", "check-config", "--store", dsn, "--saml-key", key, "--saml-cert", cert); code != 0 {
		t.Fatalf("good pair: %s", errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "check-config", "--store", dsn, "--saml-key", key, "--saml-cert", other); code == 0 || !strings.Contains(errOut, "does not match") {
		t.Fatalf("mismatched pair = %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "check-config", "--store", dsn, "--saml-key", key); code == 0 || !strings.Contains(errOut, "together") {
		t.Fatalf("key alone = %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "check-config", "--store", dsn, "--saml-signing", "dsa"); code == 0 || !strings.Contains(errOut, "saml-signing") {
		t.Fatalf("bad signing = %d %q", code, errOut)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// hubLogin posts the login form of a running hub and returns the status.
func hubLogin(t *testing.T, c *http.Client, base, user, pw string) int {
	t.Helper()
	resp, err := c.Get(base + idp.PathLogin)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no CSRF token:\n%s", body)
	}
	resp, err = c.PostForm(base+idp.PathLogin, url.Values{idp.FieldCSRF: {html.UnescapeString(m[1])}, idp.FieldUserName: {user}, idp.FieldPassword: {pw}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestUsersUnlockAgainstRunningHub: failed logins lock an account on a
// running hub; `connect hub users unlock` clears it.
func TestUsersUnlockAgainstRunningHub(t *testing.T) {
	dsn := tempDSN(t)
	csv := writeFile(t, "u.csv", "userName\nPat\n")
	if _, errOut, code := runCLI(t, "hub", "users", "import", "--no-progress", "--store", dsn, csv); code != 0 {
		t.Fatal(errOut)
	}
	var o, e strings.Builder
	if code := run(context.Background(), []string{"connect", "hub", "users", "set-password", "--store", dsn, "pat"}, strings.NewReader("s3cret pw\n"), &o, &e); code != 0 {
		t.Fatal(e.String())
	}
	h := startHub(t, dsn)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range idp.DefaultAccountLimit {
		if code := hubLogin(t, c, h.base, "pat", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", code)
		}
	}
	if code := hubLogin(t, c, h.base, "pat", "s3cret pw"); code != http.StatusUnauthorized {
		t.Fatalf("locked account logged in: %d", code)
	}
	if _, errOut, code := runCLI(t, "hub", "users", "unlock", "--store", dsn, "PAT"); code != 0 {
		t.Fatal(errOut)
	}
	if code := hubLogin(t, c, h.base, "pat", "s3cret pw"); code != http.StatusSeeOther {
		t.Fatalf("after unlock: %d\n%s", code, h.log())
	}
	if _, errOut, code := runCLI(t, "hub", "users", "unlock", "--store", dsn, "nobody"); code == 0 || !strings.Contains(errOut, "no user") {
		t.Fatalf("unknown user = %d %q", code, errOut)
	}
}

// TestLoginLimitFlags: the lockout and throttle flags reach the hub's SAML
// configuration, and bad values are refused by check-config.
func TestLoginLimitFlags(t *testing.T) {
	var got hub.SAMLConfig
	var errs []error
	app := &cli.App{Flags: samlServeFlags(), Action: func(c *cli.Context) error {
		got, errs = loadSAMLSettings(c)
		return nil
	}}
	if err := app.Run([]string{"connect", "--lockout-failures", "3", "--lockout-window", "10m", "--lockout-duration", "1h",
		"--address-failures", "20", "--address-window", "5m", "--address-block", "2h", "--login-start-rate", "2.5", "--login-start-burst", "7"}); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if got.AccountLimit != 3 || got.AccountWindow != 10*time.Minute || got.AccountLockout != time.Hour ||
		got.AddressLimit != 20 || got.AddressWindow != 5*time.Minute || got.AddressLockout != 2*time.Hour ||
		got.StartRate != 2.5 || got.StartBurst != 7 {
		t.Fatalf("limits %+v", got)
	}
	if err := app.Run([]string{"connect", "--login-start-rate", "0"}); err != nil || len(errs) != 0 || got.StartRate >= 0 {
		t.Fatalf("--login-start-rate 0: rate %v, errors %v", got.StartRate, errs)
	}
	if err := app.Run([]string{"connect"}); err != nil || len(errs) != 0 || got.AccountLimit != 5 || got.AccountLockout != 15*time.Minute || got.AddressLimit != 50 {
		t.Fatalf("defaults: %+v %v", got, errs)
	}
	dsn := tempDSN(t)
	for _, bad := range [][]string{
		{"--lockout-failures", "0"}, {"--lockout-window", "soon"}, {"--lockout-duration", "0s"},
		{"--address-failures", "-1"}, {"--address-block", "90d"}, {"--login-start-rate", "NaN"}, {"--login-start-rate", "-3"},
	} {
		args := append([]string{"hub", "check-config", "--store", dsn}, bad...)
		if _, errOut, code := runCLI(t, args...); code == 0 || !strings.Contains(errOut, strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("check-config %v = %d %q, want an error naming the flag", bad, code, errOut)
		}
	}
}
