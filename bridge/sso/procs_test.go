package sso_test

import (
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/internal/testenv/hubproc"
	"github.com/connectsso/connect/scim"
)

// The tests here run the real thing: `connect hub serve` and `connect bridge
// serve` processes built from cmd/connect, connected by the real handshake
// (`bridge servers connect` → `hub clients add`), and a cookie-jar HTTP
// client doing what a browser does (redirects, auto-posted forms). The hub
// listens on 127.0.0.2 and the bridge on 127.0.0.1 so that their cookies
// stay apart (a cookie jar ignores ports).

func TestMain(m *testing.M) { hubtest.Main(m) }

// freeAddr returns ip:port with a free port.
var freeAddr = hubproc.FreeAddr

// proc is a running connect process.
type proc struct {
	*hubproc.Proc
	cmd *exec.Cmd
}

// startProc runs the connect binary with args and waits until health answers
// 200.
func startProc(tb testing.TB, name, health string, args ...string) *proc {
	tb.Helper()
	p := hubproc.Start(tb, name, exec.Command(hubtest.Binary(tb), args...), hubproc.Options{Grace: 15 * time.Second})
	p.WaitHTTP(tb, health, 30*time.Second)
	return &proc{Proc: p, cmd: p.Cmd}
}

// stop interrupts the process (a graceful shutdown) and waits for it.
func (p *proc) stop() { p.Stop() }

// kill ends the process at once (a crash, a host gone).
func (p *proc) kill() { p.Kill() }

// connectCmd runs the connect binary with stdin and returns its trimmed
// stdout; a failure fails tb.
func connectCmd(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	return strings.TrimSpace(hubproc.MustRun(tb, stdin, args...))
}

func tryConnect(tb testing.TB, stdin string, args ...string) (string, error) {
	tb.Helper()
	out, err := hubproc.Run(tb, stdin, args...)
	if err != nil {
		return out, err
	}
	return strings.TrimSpace(out), nil
}

// hubProc is a running hub with an admin token (for its SCIM API).
type hubProc struct {
	*proc
	*hubtest.Hub
	addr string
}

type hubOpts struct {
	ecdsa  bool // --saml-signing ecdsa
	hashes bool // sync-password-hashes=true
}

func startHub(tb testing.TB, o hubOpts) *hubProc {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs hub and bridge processes")
	}
	alg := "rsa"
	if o.ecdsa {
		alg = "ecdsa"
	}
	ho := hubproc.HubOptions{IP: "127.0.0.2", LogLevel: "warn", Args: []string{"--name", "Connect Hub", "--saml-signing", alg}}
	if o.hashes {
		ho.Settings = []string{"sync-password-hashes=true"}
	}
	hh := hubproc.StartHub(tb, ho)
	return &hubProc{proc: &proc{Proc: hh.Proc, cmd: hh.Cmd}, Hub: &hubtest.Hub{Hub: hh}, addr: hh.Addr}
}

// user creates a hub user with a password and returns it.
func (h *hubProc) user(tb testing.TB, name, password string) scim.User {
	tb.Helper()
	u := hubtest.User(name)
	u.Password = password // the hub hashes it
	return h.CreateUser(tb, u)
}

// bridgeProc is a running bridge.
type bridgeProc struct {
	*proc
	// base is the public URL; addr where this process listens.
	base, addr string
	store      []string // --store (and --redis) flags for admin commands
}

// startBridge runs `bridge serve` on store (a DSN) with redis ("" for the
// in-process state). settings are applied before it starts.
func startBridge(tb testing.TB, store, redis string, settings ...string) *bridgeProc {
	tb.Helper()
	return startReplica(tb, "", store, redis, settings...)
}

// startReplica is startBridge for a replica behind a shared public URL
// (publicURL; "" for the bridge's own address).
func startReplica(tb testing.TB, publicURL, store, redis string, settings ...string) *bridgeProc {
	tb.Helper()
	addr := freeAddr(tb, "127.0.0.1")
	b := &bridgeProc{base: "http://" + addr, addr: addr, store: []string{"--store", store}}
	if publicURL != "" {
		b.base = publicURL
	}
	if redis != "" {
		b.store = append(b.store, "--redis", redis)
	}
	if len(settings) > 0 {
		b.cmd(tb, "bridge settings set", settings...)
	}
	b.proc = startProc(tb, "bridge "+addr, "http://"+addr+"/healthz", append(append([]string{"bridge", "serve", "--listen", addr, "--url", b.base}, b.store...), "--log-level", "warn")...)
	return b
}

// cmd runs a bridge admin command on the bridge's stores: command is the
// command path ("bridge users list"), args its flags and arguments.
func (b *bridgeProc) cmd(tb testing.TB, command string, args ...string) string {
	tb.Helper()
	return connectCmd(tb, "", b.args(command, args...)...)
}

func (b *bridgeProc) args(command string, args ...string) []string {
	return append(append(strings.Fields(command), b.store...), args...)
}

// connect runs the handshake: `bridge servers connect` on the bridge, then
// `hub clients add --url --secret` with what it printed. It returns the
// bridge's server id of the hub.
func connectHub(tb testing.TB, h *hubProc, b *bridgeProc, clientArgs ...string) string {
	tb.Helper()
	out := b.cmd(tb, "bridge servers connect")
	lines := strings.Split(out, "\n")
	if len(lines) != 2 || lines[0] != "Client URL: "+b.base || !strings.HasPrefix(lines[1], "Setup secret: ") {
		tb.Fatalf("servers connect printed:\n%s", out)
	}
	secret := strings.TrimPrefix(lines[1], "Setup secret: ")
	connectCmd(tb, "", append([]string{"hub", "clients", "add", "--store", h.DSN, "--name", "Site", "--url", b.base, "--secret", secret}, clientArgs...)...)
	var servers []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(b.cmd(tb, "bridge servers list", "--json")), &servers); err != nil || len(servers) != 1 {
		tb.Fatalf("servers list: %v %+v", err, servers)
	}
	return servers[0].ID
}

// account is a row of `bridge users list --json`.
type account struct {
	Username  string   `json:"username"`
	Auth      string   `json:"auth"`
	HubUserID string   `json:"hubUserId"`
	Email     string   `json:"email"`
	Suspended bool     `json:"suspended"`
	Deleted   bool     `json:"deleted"`
	Groups    []string `json:"groups"`
}

func (b *bridgeProc) accounts(tb testing.TB) map[string]account {
	tb.Helper()
	var rows []account
	if err := json.Unmarshal([]byte(b.cmd(tb, "bridge users list", "--json")), &rows); err != nil {
		tb.Fatal(err)
	}
	out := map[string]account{}
	for _, r := range rows {
		out[r.HubUserID] = r
	}
	return out
}

// waitAccount waits until the bridge has synced the hub user id (with the
// groups wanted, when given).
func (b *bridgeProc) waitAccount(tb testing.TB, hubUserID string, groups ...string) account {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, ok := b.accounts(tb)[hubUserID]
		if ok && strings.Join(a.Groups, ",") == strings.Join(groups, ",") {
			return a
		}
		if time.Now().After(deadline) {
			tb.Fatalf("account of %s not synced (groups %v): %+v", hubUserID, groups, a)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser is a cookie-jar HTTP client that follows redirects like a browser.
type browser struct {
	tb testing.TB
	c  *http.Client
}

func newBrowser(tb testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	tb.Cleanup(tr.CloseIdleConnections)
	return &browser{tb: tb, c: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}}
}

func (b *browser) do(req *http.Request, follow bool) (*http.Response, string) {
	b.tb.Helper()
	c := *b.c
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) > 15 {
			return errors.New("too many redirects")
		}
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		b.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string, follow bool) (*http.Response, string) {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req, follow)
}

func (b *browser) post(u string, form url.Values, follow bool) (*http.Response, string) {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req, follow)
}

// auth asks the bridge's forward-auth endpoint as nginx would.
func (b *browser) auth(base string) *http.Response {
	b.tb.Helper()
	resp, _ := b.get(base+"/connect/auth", false)
	return resp
}

// submit posts the first form of page (resolved against at) with its fields
// and the overrides.
func (b *browser) submit(at *url.URL, page string, follow bool, set ...string) (*http.Response, string) {
	b.tb.Helper()
	action, fields := form(b.tb, page)
	for i := 0; i+1 < len(set); i += 2 {
		fields.Set(set[i], set[i+1])
	}
	u, err := at.Parse(action)
	if err != nil {
		b.tb.Fatal(err)
	}
	return b.post(u.String(), fields, follow)
}

// form reads the first form of an HTML page: its action and inputs.
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

// ssoResult is where a login through the hub ended.
type ssoResult struct {
	// acs is the ACS answer (not followed); nil when the hub did not post one.
	acs *http.Response
	// page is the last page the browser saw (the hub's refusal, the ACS page).
	page   string
	status int
	// askedPassword: the hub showed its login form.
	askedPassword bool
	// samlResponse is the posted form (for replay tests).
	acsURL string
	fields url.Values
}

// login runs a login from the bridge's /login page: the hub's button, the
// hub's login form when it asks (user, password), and the auto-posted answer
// to the ACS.
func (b *browser) login(bridgeBase, user, password string) ssoResult {
	b.tb.Helper()
	resp, page := b.get(bridgeBase+"/login?rd=%2Fapp", false)
	i := strings.Index(page, "Log in using your account on: Connect Hub")
	if resp.StatusCode != http.StatusOK || i < 0 {
		b.tb.Fatalf("bridge login page: %d %s", resp.StatusCode, page)
	}
	href := page[strings.LastIndex(page[:i], `href="`)+6:]
	href = html.UnescapeString(href[:strings.IndexByte(href, '"')])
	return b.sso(bridgeBase+href, user, password)
}

// sso starts at a URL that leads to the hub (the button, or /login with
// auto-sso) and completes the login.
func (b *browser) sso(start, user, password string) ssoResult {
	b.tb.Helper()
	resp, page := b.get(start, true)
	var r ssoResult
	if strings.Contains(page, `name="password"`) && !strings.Contains(page, "SAMLResponse") {
		r.askedPassword = true
		resp, page = b.submit(resp.Request.URL, page, true, "username", user, "password", password)
	}
	r.page, r.status = page, resp.StatusCode
	if !strings.Contains(page, `name="SAMLResponse"`) {
		return r
	}
	action, fields := form(b.tb, page)
	u, _ := resp.Request.URL.Parse(action)
	r.acsURL, r.fields = u.String(), fields
	r.acs, r.page = b.post(r.acsURL, fields, false)
	r.status = r.acs.StatusCode
	return r
}

// logout ends the bridge session the way the site's logout link does.
func (b *browser) logout(bridgeBase string) (*http.Response, string) {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, bridgeBase+"/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req, true)
}
