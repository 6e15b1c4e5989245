package samlinterop

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/connectsso/connect/internal/testenv"
)

const sspWWW = "/usr/share/simplesamlphp/www"

// enterpriseUser is an account at the upstream IdP.
type enterpriseUser struct {
	User, Password, UserName, Email string
}

// UserPass is the key of exampleauth:UserPass ("user:password").
func (u enterpriseUser) UserPass() string { return u.User + ":" + u.Password }

// ssp is a running SimpleSAMLphp IdP (Debian's package under `php -S`).
type ssp struct {
	Base       string // http://127.0.0.1:PORT/
	spMetadata string // the file its one trusted SP's metadata goes to
}

// MetadataURL is the IdP metadata of SimpleSAMLphp.
func (s *ssp) MetadataURL() string { return s.Base + "saml2/idp/metadata.php" }

// AddSP makes SimpleSAMLphp trust one SP, from a metadata file or URL; it
// re-reads the file on every request.
func (s *ssp) AddSP(tb testing.TB, metadata string) string {
	tb.Helper()
	var raw []byte
	if strings.HasPrefix(metadata, "http://") || strings.HasPrefix(metadata, "https://") {
		raw = fetch(tb, metadata)
	} else {
		var err error
		if raw, err = os.ReadFile(metadata); err != nil {
			tb.Fatal(err)
		}
	}
	var ed struct {
		EntityID string `xml:"entityID,attr"`
	}
	if err := xml.Unmarshal(raw, &ed); err != nil || ed.EntityID == "" {
		tb.Fatalf("SP metadata for SimpleSAMLphp: %v\n%s", err, raw)
	}
	if err := os.WriteFile(s.spMetadata, raw, 0o644); err != nil {
		tb.Fatal(err)
	}
	return ed.EntityID
}

// phpString quotes s as a PHP single-quoted string.
func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// startSSP runs SimpleSAMLphp as an IdP with exampleauth:UserPass holding
// users.
func startSSP(tb testing.TB, users ...enterpriseUser) *ssp {
	tb.Helper()
	php := testenv.Binary(tb, "php")
	if _, err := os.Stat(filepath.Join(sspWWW, "saml2", "idp", "SSOService.php")); err != nil {
		testenv.Missing(tb, "SimpleSAMLphp (Debian simplesamlphp) at %s", sspWWW)
	}
	if err := exec.Command(php, "-r", `exit(class_exists("DOMDocument") && function_exists("mb_strlen") ? 0 : 1);`).Run(); err != nil {
		testenv.Missing(tb, "PHP's dom and mbstring extensions for SimpleSAMLphp (Debian php-xml, php-mbstring)")
	}
	dir := tb.TempDir()
	port := freePort(tb)
	s := &ssp{Base: fmt.Sprintf("http://127.0.0.1:%d/", port), spMetadata: filepath.Join(dir, "sp-metadata.xml")}
	// An empty trust list until AddSP.
	writeFile(tb, dir, "sp-metadata.xml", []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"/>`))
	newKeyPair(tb, dir, "idp")
	vars := map[string]any{
		"BaseURL": s.Base, "Dir": dir + "/", "Salt": rand.Text(), "SPMetadata": s.spMetadata, "Users": users,
	}
	for _, name := range []string{"config.php", "authsources.php", "saml20-idp-hosted.php"} {
		t, err := template.New(name + ".tmpl").Funcs(template.FuncMap{"php": phpString}).
			ParseFiles(filepath.Join("testdata", "simplesamlphp", name+".tmpl"))
		if err != nil {
			tb.Fatal(err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, vars); err != nil {
			tb.Fatal(err)
		}
		writeFile(tb, dir, name, buf.Bytes())
	}
	cmd := exec.Command(php, "-S", fmt.Sprintf("127.0.0.1:%d", port), "-t", sspWWW)
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+dir)
	logs := startProcess(tb, "simplesamlphp", cmd)
	waitHTTP(tb, s.MetadataURL(), 20*time.Second, logs.String)
	// A broken installation answers 200 with an error page.
	if md, err := httpGet(s.MetadataURL()); err != nil || !bytes.Contains(md, []byte("IDPSSODescriptor")) {
		tb.Fatalf("SimpleSAMLphp serves no IdP metadata: %v\n%s\n%s", err, md, logs.String())
	}
	return s
}

// The hub's upstream IdP (issue 3 §6): `hub serve` takes the enterprise IdP's
// metadata, its display name and the attribute that matches its users to hub
// users; the hub's SP side publishes its metadata at upstreamSPMetadataPath;
// the login page links to the enterprise IdP under …/upstream/….
const (
	upstreamMetadataFlag   = "--upstream-metadata"
	upstreamNameFlag       = "--upstream-name"
	upstreamMatchFlag      = "--upstream-match-attribute"
	upstreamSPMetadataPath = "/saml/upstream/metadata"
)

// upstreamLogin starts at the SP, picks the upstream IdP on the hub's login
// page, logs in at SimpleSAMLphp as eu and carries SimpleSAMLphp's response to
// the hub. It returns the hub's page after that.
func upstreamLogin(t *testing.T, b *browser, spBase string, s *ssp, hubBase string, eu enterpriseUser) *page {
	t.Helper()
	p := followSAMLRequestForms(b, b.get(spBase+"/login"))
	if !hasLoginForm(p) {
		t.Fatalf("want the hub's login page; got %s", p)
	}
	link, ok := p.linkContaining("upstream")
	if !ok {
		t.Fatalf("the hub's login page offers no upstream login (no link or form to …upstream…): %s", p)
	}
	if link.Method == "" {
		p = b.get(link.Action)
	} else {
		p = b.submit(p, link, nil)
	}
	p = followSAMLRequestForms(b, p)
	if !strings.HasPrefix(p.URL.String(), s.Base) {
		t.Fatalf("want SimpleSAMLphp's login page; got %s", p)
	}
	f, userField, passField, ok := p.loginForm()
	if !ok {
		t.Fatalf("no login form at SimpleSAMLphp: %s", p)
	}
	p = b.submit(p, f, map[string]string{userField: eu.User, passField: eu.Password})
	_, p = postSAMLResponse(t, b, p)
	if !strings.HasPrefix(p.URL.String(), hubBase) {
		t.Fatalf("SimpleSAMLphp's response should go to the hub; got %s", p)
	}
	return p
}

// TestUpstreamSimpleSAMLphp: SimpleSAMLphp (exampleauth:UserPass) is the
// enterprise IdP upstream of the hub. A browser starts at a registered SP
// (gosaml2), picks "Log in with <enterprise IdP>" on the hub's login page,
// logs in at SimpleSAMLphp with the enterprise password (which the hub does
// not know), and arrives at the SP as the hub user whose email matches. An
// enterprise user without a hub account, and one whose hub account is
// suspended, get an error page and no assertion.
func TestUpstreamSimpleSAMLphp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hub and SimpleSAMLphp")
	}
	enterprise := enterpriseUser{User: "alovelace", Password: "enterprise secret 1815", UserName: "ada.lovelace", Email: "ada@example.org"}
	stranger := enterpriseUser{User: "stranger", Password: "enterprise secret 1", UserName: "stranger", Email: "nobody@example.org"}
	babbage := enterpriseUser{User: "cbabbage", Password: "enterprise secret 1791", UserName: "charles.babbage", Email: "cb@example.org"}
	s := startSSP(t, enterprise, stranger, babbage)
	// The enterprise IdP works on its own: a gosaml2 SP logs in through it.
	if _, res := goSPLogin(t, s, false, enterprise.User, enterprise.Password); !res.OK || strings.Join(res.Attributes["email"], ",") != enterprise.Email {
		t.Fatalf("SimpleSAMLphp alone: a gosaml2 SP got %+v", res)
	}
	h := startHub(t, upstreamMetadataFlag, s.MetadataURL(), upstreamNameFlag, "Analytical Enterprises", upstreamMatchFlag, "email")
	u := h.createUser(t, ada())
	suspended := ada()
	suspended.UserName, suspended.Email, suspended.Audience, suspended.Course = babbage.UserName, babbage.Email, "", ""
	suspended = h.createUser(t, suspended)
	h.scim(t, http.MethodPatch, "/Users/"+suspended.ID, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	}, nil)
	s.AddSP(t, h.base+upstreamSPMetadataPath)
	sp := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "gosp.xml", sp.metadata(t, false)))

	t.Run("matched by email", func(t *testing.T) {
		b := newBrowser(t)
		// SimpleSAMLphp's response went to the hub, whose own response goes
		// on to the SP.
		_, final := postSAMLResponse(t, b, upstreamLogin(t, b, sp.Base, s, h.base, enterprise))
		var res goSPResult
		if err := json.Unmarshal([]byte(final.Body), &res); err != nil {
			t.Fatalf("gosaml2 SP answer: %v\n%s", err, final)
		}
		if !res.OK {
			t.Fatalf("the SP refused the hub's response after an upstream login: %v", res.Errors)
		}
		checkIdentity(t, "gosaml2 via SimpleSAMLphp", res.NameID, res.NameIDFormat, res.Attributes, u)
	})
	for _, tt := range []struct {
		name, reason string
		who          enterpriseUser
	}{
		{"no hub account", "upstream_unknown_user", stranger},
		{"suspended hub account", "suspended", babbage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sample := `connect_hub_saml_refusals_total{reason="` + tt.reason + `"}`
			before := h.metric(t, sample)
			checkRefused(t, upstreamLogin(t, newBrowser(t), sp.Base, s, h.base, tt.who), h.base, 400)
			if after := h.metric(t, sample); after != before+1 {
				t.Errorf("%s went from %v to %v: refused for another reason?", sample, before, after)
			}
		})
	}
}
