package samlinterop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/internal/testenv/hubproc"
)

// python is Debian's interpreter, which sees the python3-* packages (a pyenv
// or venv python3 earlier on PATH would not).
const python = "/usr/bin/python3"

func TestMain(m *testing.M) { hubproc.Main(m) }

var (
	// freePort returns a loopback TCP port that was free a moment ago.
	freePort = hubproc.FreePort
	// waitHTTP polls url until it answers 200 or the deadline passes.
	waitHTTP = hubproc.WaitHTTP
)

// startProcess starts cmd in a process group of its own (apache2 and php fork
// workers), stops the group (SIGTERM, then SIGKILL) when tb ends, and prints
// the output if tb failed.
func startProcess(tb testing.TB, name string, cmd *exec.Cmd) *hubproc.Log {
	tb.Helper()
	return hubproc.Start(tb, name, cmd, hubproc.Options{Group: true, Stop: syscall.SIGTERM}).Log
}

// testUser is the hub user every test logs in as.
type testUser struct {
	ID          string // SCIM id, set by createUser
	UserName    string
	Password    string
	Email       string
	GivenName   string
	FamilyName  string
	DisplayName string
	Audience    string // an audience group the user is a member of
	Course      string // a course group the user is a member of (not an attribute)
}

func ada() testUser {
	return testUser{
		UserName:    "ada.lovelace",
		Password:    "analytical engine 1843",
		Email:       "ada@example.org",
		GivenName:   "Ada",
		FamilyName:  "Lovelace",
		DisplayName: "Ada Lovelace – Countess <of> Lovelace & “Enchantress of Numbers”", // XML escaping, non-ASCII
		Audience:    "Analysts",
		Course:      "Notes on the Engine",
	}
}

// hub is a running `connect hub serve`; its store is in CONNECT_HUB_STORE for
// the server and every command.
type hub struct {
	*hubproc.Hub
	base string
	logs *hubproc.Log
}

// startHub creates a store, mints a SCIM admin token and runs the hub on a free
// loopback port; extra are more `hub serve` flags.
func startHub(tb testing.TB, extra ...string) *hub {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs the hub binary and SAML peers")
	}
	h := hubproc.StartHub(tb, hubproc.HubOptions{AdminName: "samlinterop", Args: extra, StoreEnv: true})
	return &hub{Hub: h, base: h.Base, logs: h.Log}
}

// restart stops the hub and starts it again on the same store and address
// (it then reads the signing keys at once, not at its next key refresh).
func (h *hub) restart(tb testing.TB) {
	tb.Helper()
	h.Restart(tb)
}

// cli runs `connect hub ARGS…` against the hub's store with stdin and returns
// its standard output; a failure fails tb.
func (h *hub) cli(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	out, err := h.tryCLI(stdin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// tryCLI is cli that returns the error (with both outputs) instead of failing.
func (h *hub) tryCLI(stdin string, args ...string) (string, error) {
	return h.Run(stdin, append([]string{"hub"}, args...)...)
}

// MetadataURL is where service providers fetch the hub's IdP metadata.
func (h *hub) MetadataURL() string { return h.base + "/saml/metadata" }

// AddSP registers a service provider from a metadata file or URL with
// `connect hub sps add` and returns the entity ID it printed.
func (h *hub) AddSP(tb testing.TB, metadata string) string {
	tb.Helper()
	out := strings.TrimSpace(h.cli(tb, "", "sps", "add", "--metadata", metadata))
	if out == "" || strings.Contains(out, "\n") {
		tb.Fatalf("sps add printed %q, want the entity ID alone", out)
	}
	return out
}

// scim sends one SCIM request with the admin token and decodes the answer into
// out (when not nil).
func (h *hub) scim(tb testing.TB, method, path string, body, out any) {
	tb.Helper()
	h.Call(tb, method, path, body, out, 0)
}

// createUser creates u through SCIM with its audience and course, sets its
// password with `connect hub users set-password` (stdin) and returns u with
// its ID.
func (h *hub) createUser(tb testing.TB, u testUser) testUser {
	tb.Helper()
	var created struct {
		ID string `json:"id"`
	}
	h.scim(tb, http.MethodPost, "/Users", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    u.UserName,
		"name":        map[string]string{"givenName": u.GivenName, "familyName": u.FamilyName},
		"displayName": u.DisplayName,
		"emails":      []map[string]any{{"value": u.Email, "type": "work", "primary": true}},
		"active":      true,
	}, &created)
	if created.ID == "" {
		tb.Fatal("SCIM create user returned no id")
	}
	u.ID = created.ID
	for kind, name := range map[string]string{"audience": u.Audience, "course": u.Course} {
		if name == "" {
			continue
		}
		h.scim(tb, http.MethodPost, "/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group",
				"urn:ietf:params:scim:schemas:extension:connect:2.0:Group"},
			"displayName": name,
			"urn:ietf:params:scim:schemas:extension:connect:2.0:Group": map[string]string{"kind": kind},
			"members": []map[string]string{{"value": u.ID}},
		}, nil)
	}
	if out := h.cli(tb, u.Password+"\n", "users", "set-password", u.UserName); out != "" {
		tb.Fatalf("users set-password printed %q, want nothing", out)
	}
	return u
}

// idp is the identity provider under test, as the peers see it.
type idp interface {
	MetadataURL() string
	AddSP(tb testing.TB, metadata string) string
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(tb testing.TB, url string) []byte {
	tb.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s\n%s", url, resp.Status, data)
	}
	return data
}

// writeFile writes data to name in dir and returns the path.
func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// idpMetadata is the part of the IdP's metadata the tests read.
type idpMetadata struct {
	EntityID string `xml:"entityID,attr"`
	IDP      struct {
		Keys []struct {
			Use  string `xml:"use,attr"`
			Cert string `xml:"KeyInfo>X509Data>X509Certificate"`
		} `xml:"KeyDescriptor"`
		SSO []struct {
			Binding  string `xml:"Binding,attr"`
			Location string `xml:"Location,attr"`
		} `xml:"SingleSignOnService"`
	} `xml:"IDPSSODescriptor"`
}

// parseIdPMetadata decodes metadata and its signing certificates.
func parseIdPMetadata(tb testing.TB, raw []byte) (idpMetadata, []*x509.Certificate) {
	tb.Helper()
	var md idpMetadata
	if err := xml.Unmarshal(raw, &md); err != nil {
		tb.Fatalf("IdP metadata: %v\n%s", err, raw)
	}
	var certs []*x509.Certificate
	for _, k := range md.IDP.Keys {
		if k.Use != "" && k.Use != "signing" {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(k.Cert), ""))
		if err != nil {
			tb.Fatalf("IdP metadata certificate: %v", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			tb.Fatalf("IdP metadata certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if md.EntityID == "" || len(certs) == 0 {
		tb.Fatalf("IdP metadata without entityID or signing certificate:\n%s", raw)
	}
	return md, certs
}

// ssoURL returns the IdP's SingleSignOnService location for binding.
func (md idpMetadata) ssoURL(tb testing.TB, binding string) string {
	tb.Helper()
	for _, s := range md.IDP.SSO {
		if s.Binding == binding {
			return s.Location
		}
	}
	tb.Fatalf("IdP metadata has no SingleSignOnService for %s", binding)
	return ""
}

const (
	bindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	bindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	nameIDPersist   = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
)

// keyPair is an SP's signing key and self-signed certificate, written as PEM.
type keyPair struct {
	CertPath, KeyPath string
	Cert              *x509.Certificate
	Key               *rsa.PrivateKey
}

// newKeyPair makes an RSA-2048 key and certificate for cn in dir.
func newKeyPair(tb testing.TB, dir, cn string) keyPair {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return keyPair{
		CertPath: writeFile(tb, dir, cn+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPath:  writeFile(tb, dir, cn+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})),
		Cert:     cert,
		Key:      key,
	}
}

// pySP is a running testdata/*_sp.py service provider.
type pySP struct {
	Base     string // http://localhost:PORT
	EntityID string
}

// startPySP runs script (onelogin_sp.py or lasso_sp.py) against the IdP's
// metadata; its metadata is then at Base+"/metadata" and its login at
// Base+"/login".
func startPySP(tb testing.TB, script string, provider idp) pySP {
	tb.Helper()
	py := testenv.Binary(tb, python)
	module := map[string]string{"onelogin_sp.py": "onelogin.saml2", "lasso_sp.py": "lasso"}[script]
	if out, err := exec.Command(py, "-c", "import "+module).CombinedOutput(); err != nil {
		testenv.Missing(tb, "python module %s (Debian python3-%s): %s", module, strings.ReplaceAll(module, ".saml2", "-saml2"), out)
	}
	dir := tb.TempDir()
	port := freePort(tb)
	sp := pySP{Base: fmt.Sprintf("http://localhost:%d", port)}
	sp.EntityID = sp.Base + "/metadata"
	keys := newKeyPair(tb, dir, "sp")
	cfg, _ := json.Marshal(map[string]string{
		"entityId":    sp.EntityID,
		"baseUrl":     sp.Base,
		"cert":        keys.CertPath,
		"key":         keys.KeyPath,
		"idpMetadata": writeFile(tb, dir, "idp.xml", fetch(tb, provider.MetadataURL())),
	})
	script, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		tb.Fatal(err)
	}
	logs := startProcess(tb, filepath.Base(script), exec.Command(py, script, writeFile(tb, dir, "sp.json", cfg), fmt.Sprint(port)))
	waitHTTP(tb, sp.Base+"/metadata", 15*time.Second, logs.String)
	return sp
}

// spResult is what the Python SPs' ACS answers.
type spResult struct {
	OK           bool                `json:"ok"`
	Errors       []string            `json:"errors"`
	Reason       string              `json:"reason"`
	NameID       string              `json:"nameId"`
	NameIDFormat string              `json:"nameIdFormat"`
	Attributes   map[string][]string `json:"attributes"`
	SessionIndex string              `json:"sessionIndex"`
	RequestID    string              `json:"requestId"`
	RelayState   string              `json:"relayState"`
}

// checkIdentity compares what an SP received with the user it should be
// (DESIGN.md §4: persistent NameID = SCIM id; userName, email, names, groups).
func checkIdentity(tb testing.TB, peer, nameID, format string, attrs map[string][]string, u testUser) {
	tb.Helper()
	if nameID != u.ID {
		tb.Errorf("%s: NameID %q, want the user's SCIM id %q", peer, nameID, u.ID)
	}
	if format != nameIDPersist {
		tb.Errorf("%s: NameID Format %q, want %s", peer, format, nameIDPersist)
	}
	want := map[string][]string{
		"userName":    {u.UserName},
		"email":       {u.Email},
		"givenName":   {u.GivenName},
		"sn":          {u.FamilyName},
		"displayName": {u.DisplayName},
		"groups":      {u.Audience},
	}
	for name, vals := range want {
		if got := attrs[name]; strings.Join(got, "\x00") != strings.Join(vals, "\x00") {
			tb.Errorf("%s: attribute %s = %q, want %q (all: %v)", peer, name, got, vals, attrs)
		}
	}
}

// metric returns the value of one sample of the hub's /metrics, e.g.
// metric(tb, `connect_hub_saml_refusals_total{reason="unknown_sp"}`); an absent
// sample is 0.
func (h *hub) metric(tb testing.TB, sample string) float64 {
	tb.Helper()
	for _, line := range strings.Split(string(fetch(tb, h.base+"/metrics")), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				tb.Fatalf("metric %s: %q", sample, line)
			}
			return f
		}
	}
	return 0
}

// httpGet returns the body of url, whatever the status.
func httpGet(url string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
