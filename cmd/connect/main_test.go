package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// binary is the connect command built once by TestMain, for the tests that need
// a real process (serve, signals).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "connect-cli-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "connect")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		panic("go build: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the command line in-process.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"connect"}, args...), strings.NewReader(""), &o, &e)
	return o.String(), e.String(), code
}

func tempDSN(t *testing.T) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "hub.db")
}

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dsn, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// hubProcess is a running `connect hub serve`.
type hubProcess struct {
	cmd  *exec.Cmd
	base string
	done chan error // Wait's result, once stderr is drained
	mu   sync.Mutex
	logs strings.Builder
}

func (h *hubProcess) log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startHub runs `connect hub serve --listen 127.0.0.1:0` and learns the port
// from its "listening" log line.
func startHub(t *testing.T, dsn string) *hubProcess {
	t.Helper()
	h := &hubProcess{cmd: exec.Command(binary, "hub", "serve", "--listen", "127.0.0.1:0", "--store", dsn), done: make(chan error, 1)}
	dieWithTest(h.cmd)
	stderr, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			_ = h.cmd.Process.Kill()
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			h.mu.Lock()
			h.logs.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		h.done <- h.cmd.Wait()
	}()
	select {
	case a := <-addr:
		h.base = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatalf("hub did not log its address:\n%s", h.log())
	}
	return h
}

// client bounds every test request so that a hung hub fails the test quickly.
var client = &http.Client{Timeout: 15 * time.Second}

func request(t *testing.T, method, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "connect dev (go") {
		t.Fatalf("version = %d %q", code, out)
	}
}

func TestTokensAgainstRunningHub(t *testing.T) {
	dsn := tempDSN(t)
	out, errOut, code := runCLI(t, "hub", "tokens", "create", "--store", dsn, "--name", "provisioning")
	if code != 0 {
		t.Fatalf("tokens create: %d %s", code, errOut)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("tokens create printed %q, want exactly one line", out)
	}
	token := strings.TrimSpace(out)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "chub_"))
	if !strings.HasPrefix(token, "chub_") || err != nil || len(raw) < 32 {
		t.Fatalf("token %q: want chub_ + ≥256 bits of base64url (%v)", token, err)
	}
	ro, _, code := runCLI(t, "hub", "tokens", "create", "--store", dsn, "--name", "reader", "--read-only")
	if code != 0 {
		t.Fatal("read-only token create failed")
	}
	readOnly := strings.TrimSpace(ro)

	hub := startHub(t, dsn)
	users := hub.base + "/scim/v2/Users"
	if c := request(t, "GET", users, token, ""); c != 200 {
		t.Errorf("GET with the new token = %d", c)
	}
	if c := request(t, "GET", users, "chub_wrong", ""); c != 401 {
		t.Errorf("GET with a wrong token = %d, want 401", c)
	}
	newUser := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"cli-user"}`
	if c := request(t, "POST", users, readOnly, newUser); c != 403 {
		t.Errorf("POST with a read-only token = %d, want 403", c)
	}
	if c := request(t, "POST", users, token, newUser); c != 201 {
		t.Errorf("POST with the admin token = %d, want 201", c)
	}

	// Admin commands work on the store while the hub runs.
	list, _, code := runCLI(t, "hub", "tokens", "list", "--store", dsn)
	if code != 0 || !strings.Contains(list, "provisioning") || !strings.Contains(list, "reader") {
		t.Fatalf("tokens list = %d\n%s", code, list)
	}
	if strings.Contains(list, token) || strings.Contains(list, strings.TrimPrefix(token, "chub_")[:10]) {
		t.Fatal("tokens list shows the secret")
	}
	header := strings.Fields(strings.SplitN(list, "\n", 2)[0])
	if strings.Join(header, " ") != "ID NAME READ-ONLY CREATED LAST USED REVOKED" {
		t.Errorf("tokens list header = %q", header)
	}
	if _, errOut, code := runCLI(t, "hub", "tokens", "revoke", "--store", dsn, "provisioning"); code != 0 {
		t.Fatalf("revoke: %s", errOut)
	}
	// The hub remembers a token it has seen for server.DefaultTokenCacheTTL:
	// a revocation takes effect within that time, never later.
	c := request(t, "GET", users, token, "")
	for deadline := time.Now().Add(server.DefaultTokenCacheTTL + time.Second); c != 401 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		c = request(t, "GET", users, token, "")
	}
	if c != 401 {
		t.Errorf("GET with a revoked token = %d, want 401 within %s", c, server.DefaultTokenCacheTTL)
	}
	if _, errOut, code := runCLI(t, "hub", "tokens", "revoke", "--store", dsn, "nope"); code == 0 || !strings.Contains(errOut, `no token with id or name "nope"`) {
		t.Errorf("revoke unknown = %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "tokens", "create", "--store", dsn); code == 0 || !strings.Contains(errOut, "--name is required") {
		t.Errorf("create without name = %d %q", code, errOut)
	}

	// Graceful shutdown on SIGTERM: exit status 0 and a clean stop.
	if err := hub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-hub.done:
		if err != nil {
			t.Fatalf("hub exited with %v after SIGTERM:\n%s", err, hub.log())
		}
		if !strings.Contains(hub.log(), "msg=stopped") {
			t.Errorf("no clean stop logged:\n%s", hub.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hub did not stop within 20s of SIGTERM")
	}

	st := openStore(t, dsn)
	audit, err := st.AuditLog(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, ","); !strings.Contains(got, "token.revoke") || strings.Count(got, "token.create") != 2 {
		t.Errorf("audit actions = %s", got)
	}
	for _, a := range audit {
		if strings.Contains(a.Detail+a.Target, token) {
			t.Error("audit log carries a token")
		}
	}
}

func TestUsersImport(t *testing.T) {
	dsn := tempDSN(t)
	out, errOut, code := runCLI(t, "hub", "users", "import", "--store", dsn, "../../testdata/users-1000.csv")
	if code != 1 {
		t.Errorf("exit code %d, want 1 (rows failed)", code)
	}
	if out != "imported 997, failed 3\n" {
		t.Errorf("stdout = %q", out)
	}
	var rowLines []string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(l, "row ") {
			rowLines = append(rowLines, l)
		}
	}
	want := []string{
		`row 101: userName "USER0002": already exists (same userName as row 3)`,
		`row 502: userName is empty`,
		`row 903: userName "user0902": active: "maybe" is not a boolean (true/false)`,
	}
	if strings.Join(rowLines, "\n") != strings.Join(want, "\n") {
		t.Errorf("row report:\n%s\nwant:\n%s", strings.Join(rowLines, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(errOut, "importing users") || !strings.Contains(errOut, "1000/1000") {
		t.Errorf("no progress bar on stderr:\n%s", errOut)
	}
	st := openStore(t, dsn)
	stats, err := st.Stats(context.Background())
	if err != nil || stats.Users != 997 {
		t.Fatalf("store has %d users (%v), want 997", stats.Users, err)
	}

	// A clean file exits 0.
	clean := filepath.Join(t.TempDir(), "clean.csv")
	if err := os.WriteFile(clean, []byte("userName,email\nzed,zed@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCLI(t, "hub", "users", "import", "--no-progress", "--store", dsn, clean); code != 0 || out != "imported 1, failed 0\n" {
		t.Errorf("clean import = %d %q %q", code, out, errOut)
	}
	// A bad header imports nothing and says why.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("login,mail\nx,y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "hub", "users", "import", "--store", dsn, bad); code == 0 || !strings.Contains(errOut, `unknown column "login"`) {
		t.Errorf("bad header = %d %q", code, errOut)
	}
}

func TestSettings(t *testing.T) {
	dsn := tempDSN(t)
	out, _, code := runCLI(t, "hub", "settings", "get", "--store", dsn)
	if code != 0 || out != "journal-retention=168h\nsync-password-hashes=false\n" {
		t.Fatalf("settings get (defaults) = %d %q", code, out)
	}
	if _, errOut, code := runCLI(t, "hub", "settings", "set", "--store", dsn, "sync-password-hashes=true", "journal-retention=3d"); code != 0 {
		t.Fatalf("settings set: %s", errOut)
	}
	out, _, _ = runCLI(t, "hub", "settings", "get", "--store", dsn, "sync-password-hashes")
	if out != "sync-password-hashes=true\n" {
		t.Errorf("after set: %q", out)
	}
	out, _, _ = runCLI(t, "hub", "settings", "get", "--store", dsn, "journal-retention")
	if out != "journal-retention=72h0m0s\n" {
		t.Errorf("after set: %q", out)
	}
	// Bad input changes nothing: one bad pair refuses the whole command.
	_, errOut, code := runCLI(t, "hub", "settings", "set", "--store", dsn, "sync-password-hashes=false", "colour=blue", "journal-retention=5m", "oops")
	if code == 0 {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{`unknown setting "colour"`, "shorter than 1h", `"oops": want KEY=VALUE`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error %q lacks %q", errOut, want)
		}
	}
	out, _, _ = runCLI(t, "hub", "settings", "get", "--store", dsn, "sync-password-hashes")
	if out != "sync-password-hashes=true\n" {
		t.Errorf("a refused set changed the setting: %q", out)
	}
	st := openStore(t, dsn)
	audit, _ := st.AuditLog(context.Background(), 10)
	if len(audit) != 2 || audit[0].Action != "setting.set" {
		t.Errorf("audit = %+v", audit)
	}
}

func TestCheckConfig(t *testing.T) {
	dsn := tempDSN(t)
	t.Run("valid from a YAML file and env", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "hub.yaml")
		yaml := "listen: 127.0.0.1:9999\nurl: https://hub.example.org\nstore: " + dsn + "\nname: From YAML\n"
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CONNECT_HUB_NAME", "From env")
		out, errOut, code := runCLI(t, "hub", "check-config", "--config", cfg)
		if code != 0 {
			t.Fatalf("check-config = %d %s", code, errOut)
		}
		for _, want := range []string{"configuration OK", "listen  127.0.0.1:9999", "url     https://hub.example.org", "name    From env"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// A flag beats env and file.
		out, _, _ = runCLI(t, "hub", "check-config", "--config", cfg, "--listen", "127.0.0.1:7777")
		if !strings.Contains(out, "listen  127.0.0.1:7777") {
			t.Errorf("flag did not win:\n%s", out)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, errOut, code := runCLI(t, "hub", "check-config", "--store", "mysql://x", "--log-format", "xml", "--log-level", "loud",
			"--journal-retention", "forever", "--listen", "0.0.0.0:8080")
		if code == 0 {
			t.Fatal("bad config accepted")
		}
		for _, want := range []string{"unknown DSN scheme", "log-format", "log-level", "journal-retention", "url: not set"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("error lacks %q:\n%s", want, errOut)
			}
		}
	})
	t.Run("url required off loopback", func(t *testing.T) {
		_, errOut, code := runCLI(t, "hub", "check-config", "--store", dsn, "--listen", "0.0.0.0:8080")
		if code == 0 || !strings.Contains(errOut, "url: not set") {
			t.Errorf("= %d %q", code, errOut)
		}
	})
	t.Run("missing config file", func(t *testing.T) {
		_, errOut, code := runCLI(t, "hub", "check-config", "--config", "/nonexistent/hub.yaml")
		if code == 0 || !strings.Contains(errOut, "hub.yaml") {
			t.Errorf("= %d %q", code, errOut)
		}
	})
	t.Run("password in DSN is not echoed", func(t *testing.T) {
		_, errOut, _ := runCLI(t, "hub", "check-config", "--store", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1")
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("error shows the DSN password: %q", errOut)
		}
	})
}

func TestUsersSetPassword(t *testing.T) {
	dsn := tempDSN(t)
	csv := filepath.Join(t.TempDir(), "u.csv")
	if err := os.WriteFile(csv, []byte("userName\nPat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "hub", "users", "import", "--no-progress", "--store", dsn, csv); code != 0 {
		t.Fatal(errOut)
	}
	setPassword := func(stdin string, args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := run(context.Background(), append([]string{"connect", "hub", "users", "set-password", "--store", dsn}, args...), strings.NewReader(stdin), &o, &e)
		return o.String(), e.String(), code
	}
	if out, errOut, code := setPassword("correct horse battery\r\n", "pat"); code != 0 || out != "" {
		t.Fatalf("set-password = %d %q %q", code, out, errOut)
	}
	st := openStore(t, dsn)
	u, err := st.UserByUserName(context.Background(), "pat")
	if err != nil {
		t.Fatal(err)
	}
	if u.Connect == nil {
		t.Fatal("no password hash stored")
	}
	if ok, rehash, err := password.Verify(u.Connect.PasswordHash, "correct horse battery"); !ok || rehash || err != nil {
		t.Errorf("stored hash does not verify the password: %v %v %v", ok, rehash, err)
	}
	if _, errOut, code := setPassword("long enough pw\n", "nobody"); code == 0 || !strings.Contains(errOut, `no user "nobody"`) {
		t.Errorf("unknown user = %d %q", code, errOut)
	}
	if _, errOut, code := setPassword("short\n", "pat"); code == 0 || !strings.Contains(errOut, "at least 8") {
		t.Errorf("short password = %d %q", code, errOut)
	}
	// The audit log lists the change, newest first, without the hash.
	out, errOut, code := runCLI(t, "hub", "audit", "--store", dsn, "--limit", "5")
	if code != 0 || !strings.Contains(out, "ACTION") || !strings.Contains(out, "user.set-password") || strings.Contains(out, "$argon2id") {
		t.Errorf("audit = %d %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "hub", "audit", "--store", dsn, "--limit", "0"); code == 0 || !strings.Contains(errOut, "--limit") {
		t.Errorf("audit --limit 0 = %d %q", code, errOut)
	}
	if _, errOut, code := setPassword("", "pat"); code == 0 || !strings.Contains(errOut, "no password on stdin") {
		t.Errorf("empty stdin = %d %q", code, errOut)
	}
	audit, _ := st.AuditLog(context.Background(), 1)
	if len(audit) != 1 || audit[0].Action != "user.set-password" || strings.Contains(audit[0].Detail, "$argon2id") {
		t.Errorf("audit = %+v", audit)
	}
}

// TestPostgresStore runs the admin commands and the server on the PostgreSQL
// backend picked by the DSN scheme.
func TestPostgresStore(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		d := scheme + strings.TrimPrefix(dsn, "postgres://")
		if out, errOut, code := runCLI(t, "hub", "check-config", "--store", d); code != 0 || !strings.Contains(out, "configuration OK") {
			t.Fatalf("check-config %s = %d %s", scheme, code, errOut)
		}
	}
	out, errOut, code := runCLI(t, "hub", "tokens", "create", "--store", dsn, "--name", "pg")
	if code != 0 {
		t.Fatal(errOut)
	}
	token := strings.TrimSpace(out)
	out, errOut, code = runCLI(t, "hub", "users", "import", "--no-progress", "--store", dsn, "../../testdata/users-1000.csv")
	if code != 1 || out != "imported 997, failed 3\n" || strings.Count("\n"+errOut, "\nrow ") != 3 {
		t.Fatalf("import = %d %q\n%s", code, out, errOut)
	}
	hub := startHub(t, dsn)
	req, _ := http.NewRequest("GET", hub.base+"/scim/v2/Users?count=0", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"totalResults":997`) {
		t.Errorf("GET /Users = %d %s", resp.StatusCode, body)
	}
	if err := hub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-hub.done:
		if err != nil {
			t.Fatalf("hub exited with %v:\n%s", err, hub.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hub did not stop after SIGTERM")
	}
}
