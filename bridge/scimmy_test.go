package bridge_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
)

// scimmyServer is a running SCIMMY server (bridge/testdata/scimmy): a SCIM
// implementation Connect did not write.
type scimmyServer struct {
	base, token string
}

// startSCIMMY installs the server's npm dependencies once (into the user cache,
// keyed by the lock file) and starts it.
func startSCIMMY(t *testing.T) scimmyServer {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a node process")
	}
	node := testenv.Binary(t, "node")
	npm := testenv.Binary(t, "npm")
	src, err := filepath.Abs("testdata/scimmy")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "connect-test", "scimmy-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "scimmy-routers")); err != nil {
		tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			testenv.Missing(t, "npm ci of scimmy failed (no npm registry?): %v\n%s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
			os.RemoveAll(tmp)
			if _, serr := os.Stat(filepath.Join(dir, "node_modules")); serr != nil {
				t.Fatal(err)
			}
		}
	}
	script, err := os.ReadFile(filepath.Join(src, "server.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "server.mjs")
	if err := os.WriteFile(run, script, 0o644); err != nil {
		t.Fatal(err)
	}
	s := scimmyServer{token: "scimmy-test-token"}
	cmd := exec.Command(node, run)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCIM_TOKEN="+s.token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("scimmy stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		s.base = "http://127.0.0.1:" + p + "/scim/v2"
	case <-time.After(20 * time.Second):
		t.Fatalf("scimmy did not start:\n%s", stderr.String())
	}
	return s
}

func (s scimmyServer) do(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func (s scimmyServer) user(t *testing.T, name, given string) scim.User {
	t.Helper()
	u := map[string]any{"schemas": []string{scim.SchemaUser}, "userName": name,
		"name":   map[string]string{"givenName": given, "familyName": "Scimmy"},
		"emails": []map[string]any{{"value": name + "@example.org", "primary": true, "type": "work"}}}
	var out scim.User
	s.do(t, http.MethodPost, "/Users", u, &out, http.StatusCreated)
	return out
}

// TestSCIMMYSource: the bridge syncs from a SCIM server we did not write
// (SCIMMY + SCIMMY Express Routers): full listings, meta.lastModified
// increments, removals found by the full reconcile, groups.
func TestSCIMMYSource(t *testing.T) {
	s := startSCIMMY(t)
	var users []scim.User
	for i := range 45 {
		users = append(users, s.user(t, fmt.Sprintf("scimmy%02d", i), fmt.Sprint("Given", i)))
		time.Sleep(2 * time.Millisecond) // distinct lastModified values
	}
	var g scim.Group
	s.do(t, http.MethodPost, "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Scimmy team",
		"members": []map[string]string{{"value": users[0].ID}, {"value": users[1].ID}}}, &g, http.StatusCreated)

	e := newEnv(t, envOpts{hub: nil, scimURL: s.base, token: s.token, pageSize: 20, noHub: true})
	p := e.users()
	if p.Mode != "full" || p.Counts[bridge.ActCreate] != 45 {
		t.Fatalf("first sync:\n%s", planText(p))
	}
	a := e.account(users[3].ID)
	if a.GivenName != "Given3" || a.Email != "scimmy03@example.org" || !strings.HasPrefix(a.Username, "tc") {
		t.Fatalf("%+v", a)
	}
	gp := e.groups()
	if gp.Counts[bridge.ActGroupPut] != 1 {
		t.Fatalf("groups:\n%s", planText(gp))
	}
	if lg, members := e.group(g.ID); len(members) != 2 || !lg.Locked {
		t.Fatalf("group %+v %v", lg, members)
	}

	// An update arrives through a meta.lastModified increment.
	time.Sleep(5 * time.Millisecond)
	upd := map[string]any{"schemas": []string{scim.SchemaUser}, "userName": users[7].UserName,
		"name":   map[string]string{"givenName": "Renamed", "familyName": "Scimmy"},
		"emails": []map[string]any{{"value": users[7].UserName + "@example.org", "primary": true}}}
	s.do(t, http.MethodPut, "/Users/"+users[7].ID, upd, nil, http.StatusOK)
	p = e.users()
	if p.Mode != "modified" || p.Counts[bridge.ActUpdate] != 1 {
		t.Fatalf("increment:\n%s", planText(p))
	}
	if e.account(users[7].ID).GivenName != "Renamed" {
		t.Fatal("update lost")
	}
	if p = e.users(); p.Total() != 0 {
		t.Fatalf("repeated increment not de-duplicated:\n%s", planText(p))
	}
	// A deletion: found by the next full reconcile, removal action suspend.
	s.do(t, http.MethodDelete, "/Users/"+users[9].ID, nil, nil, http.StatusNoContent)
	p = e.full()
	if p.Counts[bridge.ActSuspend] != 1 || !e.account(users[9].ID).Suspended {
		t.Fatalf("full reconcile:\n%s", planText(p))
	}
	if n := e.connectCount(); n != 45 {
		t.Fatalf("%d accounts", n)
	}
}
