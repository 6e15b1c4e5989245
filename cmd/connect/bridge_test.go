package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
)

// bridgeHub is a hub process with a read-only token for the bridge and an
// admin token for the test.
type bridgeHub struct {
	*hubProcess
	reader, admin string
}

func startBridgeHub(t *testing.T) bridgeHub {
	t.Helper()
	dsn := tempDSN(t)
	reader, _, code := runCLI(t, "hub", "tokens", "create", "--store", dsn, "--name", "bridge", "--read-only")
	admin, _, code2 := runCLI(t, "hub", "tokens", "create", "--store", dsn, "--name", "admin")
	if code != 0 || code2 != 0 {
		t.Fatal("tokens create failed")
	}
	return bridgeHub{startHub(t, dsn), strings.TrimSpace(reader), strings.TrimSpace(admin)}
}

// createUser creates a user on the hub and returns its id.
func (h bridgeHub) createUser(t *testing.T, name string) string {
	t.Helper()
	body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"name":{"givenName":"G %s","familyName":"F"},"emails":[{"value":"%s@example.org","primary":true}]}`, name, name, name)
	req, _ := http.NewRequest(http.MethodPost, h.base+"/scim/v2/Users", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&u) != nil {
		t.Fatalf("create user %s: %d", name, resp.StatusCode)
	}
	return u.ID
}

// bridgeCLI runs a bridge command with the given store (and state) flags.
// The store flags go after the subcommand path (and its own flags) and before
// the positional arguments, which follow a "::" marker in args.
func bridgeCLI(t *testing.T, flags []string, args ...string) (string, string, int) {
	t.Helper()
	cmd, pos := args, []string(nil)
	for i, a := range args {
		if a == "::" {
			cmd, pos = args[:i], args[i+1:]
		}
	}
	line := append(append([]string{"bridge"}, cmd...), flags...)
	return runCLI(t, append(line, pos...)...)
}

func mustBridge(t *testing.T, flags []string, args ...string) string {
	t.Helper()
	out, errOut, code := bridgeCLI(t, flags, args...)
	if code != 0 {
		t.Fatalf("connect bridge %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestBridgeCommands drives the admin commands against a hub process: servers,
// sync (dry run, JSON, held plan), users and groups list, settings, why, plans.
func TestBridgeCommands(t *testing.T) {
	redis := testenv.RedisAddr(t)
	h := startBridgeHub(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, h.createUser(t, fmt.Sprintf("cli%d", i)))
	}
	flags := []string{"--store", "sqlite:" + filepath.Join(t.TempDir(), "bridge.db"), "--redis", "redis://" + redis + "/0"}

	out := mustBridge(t, flags, "servers", "add-manual", "--name", "main hub", "--url", h.base, "--token", h.reader)
	id := strings.TrimSpace(out)
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("add-manual printed %q, want the server id alone", out)
	}
	if _, _, code := bridgeCLI(t, flags, "servers", "add-manual", "--name", "MAIN HUB", "--url", h.base+"/x", "--token", "t"); code == 0 {
		t.Fatal("a duplicate server name was accepted")
	}
	out = mustBridge(t, flags, "servers", "list", "--json")
	if strings.Contains(out, h.reader) || !strings.Contains(out, id) {
		t.Fatalf("servers list: %s", out)
	}

	// Dry run: the plan, nothing written.
	out = mustBridge(t, flags, "sync", "--dry-run", "--json", "--task", "users")
	var plans []struct {
		Status string         `json:"status"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 || plans[0].Counts["create"] != 5 || plans[0].Status != "dry-run" {
		t.Fatalf("dry run: %v %s", err, out)
	}
	if out := mustBridge(t, flags, "users", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("dry run wrote: %s", out)
	}

	out = mustBridge(t, flags, "sync", "--no-progress")
	if !strings.Contains(out, "create 5") {
		t.Fatalf("sync: %s", out)
	}
	var users []map[string]any
	if err := json.Unmarshal([]byte(mustBridge(t, flags, "users", "list", "--json")), &users); err != nil || len(users) != 5 {
		t.Fatalf("users list: %v %d", err, len(users))
	}
	var keys []string
	for k := range users[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "auth,deleted,email,familyName,givenName,groups,hubUserId,idNumber,server,suspended,username" {
		t.Fatalf("users list fields: %s", got)
	}
	username := users[0]["username"].(string)
	if !strings.HasPrefix(username, "tc") || users[0]["auth"] != "connect" || users[0]["server"] != id {
		t.Fatalf("user row %v", users[0])
	}
	if out := mustBridge(t, flags, "groups", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("groups list: %s", out)
	}

	// why
	out = mustBridge(t, flags, "why", "::", username)
	for _, want := range []string{"connect account of server main hub", "generated", "in scope", "in step with the hub", "excluded from sync"} {
		if !strings.Contains(out, want) {
			t.Errorf("why lacks %q:\n%s", want, out)
		}
	}
	if _, errOut, code := bridgeCLI(t, flags, "why", "::", "nobody"); code == 0 || !strings.Contains(errOut, "no local account") {
		t.Fatalf("why nobody: %d %s", code, errOut)
	}

	// settings
	mustBridge(t, flags, "settings", "set", "::", "removal-action=delete", "delete-threshold-count=1", "delete-threshold-min=0")
	if out := mustBridge(t, flags, "settings", "get", "::", "removal-action"); strings.TrimSpace(out) != "removal-action=delete" {
		t.Fatalf("settings get: %q", out)
	}
	if _, errOut, code := bridgeCLI(t, flags, "settings", "set", "::", "removal-action=shred", "delete-grace=1d"); code == 0 || !strings.Contains(errOut, "removal-action") {
		t.Fatalf("bad setting accepted: %s", errOut)
	}
	if out := mustBridge(t, flags, "settings", "get", "::", "delete-grace"); strings.TrimSpace(out) != "delete-grace=30d" {
		t.Fatalf("a refused set changed something: %q", out)
	}

	// A held plan: two deletions over a threshold of one.
	for _, uid := range ids[:2] {
		if code := request(t, http.MethodDelete, h.base+"/scim/v2/Users/"+uid, h.admin, ""); code != http.StatusNoContent {
			t.Fatalf("delete: %d", code)
		}
	}
	out, errOut, code := bridgeCLI(t, flags, "sync", "--task", "users", "--no-progress")
	if code != exitHeld || !strings.Contains(out, "held") || !strings.Contains(errOut, "plans approve") {
		t.Fatalf("held sync: exit %d\n%s\n%s", code, out, errOut)
	}
	out = mustBridge(t, flags, "plans", "show", "--task", "users", "--json")
	var shown []struct {
		ID, Status string
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown) != 1 || shown[0].Status != "held" {
		t.Fatalf("plans show: %v %s", err, out)
	}
	out = mustBridge(t, flags, "plans", "approve", "::", shown[0].ID)
	if !strings.Contains(out, "approved and applied") {
		t.Fatalf("approve: %s", out)
	}
	if err := json.Unmarshal([]byte(mustBridge(t, flags, "users", "list", "--json")), &users); err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, u := range users {
		if u["deleted"] == true {
			deleted++
		}
	}
	if deleted != 2 {
		t.Fatalf("%d deleted after approval", deleted)
	}
	if _, _, code := bridgeCLI(t, flags, "plans", "approve", "::", shown[0].ID); code == 0 {
		t.Fatal("approved an applied plan again")
	}

	mustBridge(t, flags, "servers", "remove", "::", "main hub")
	if out := mustBridge(t, flags, "servers", "list", "--json"); strings.Contains(out, id) {
		t.Fatalf("server not removed: %s", out)
	}
}

var bridgeListeningRE = regexp.MustCompile(`msg="bridge serving" listen=(\S+)`)

// TestBridgeServe runs `connect bridge serve` as a process: health endpoints,
// metrics, and a hub change reaching the local directory within 5 seconds
// through the long-polled Changes feed.
func TestBridgeServe(t *testing.T) {
	h := startBridgeHub(t)
	first := h.createUser(t, "serve0")
	dir := t.TempDir()
	flags := []string{"--store", "sqlite:" + filepath.Join(dir, "bridge.db")}
	mustBridge(t, flags, "servers", "add-manual", "--name", "hub", "--url", h.base, "--token", h.reader)
	out := mustBridge(t, append(flags, "--listen", "127.0.0.1:0"), "check-config")
	if !strings.Contains(out, "configuration OK") || !strings.Contains(out, "servers  1") {
		t.Fatalf("check-config: %s", out)
	}
	if _, errOut, code := bridgeCLI(t, []string{"--store", "mysql://x", "--redis", "memcached://y", "--log-level", "loud"}, "check-config"); code == 0 ||
		!strings.Contains(errOut, "store") || !strings.Contains(errOut, "redis") || !strings.Contains(errOut, "log-level") {
		t.Fatalf("check-config with three bad flags: %d %s", code, errOut)
	}

	bp := startBridgeServe(t, flags)
	base := bp.base
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := request(t, http.MethodGet, base+p, "", ""); code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
	}
	// The first full reconcile, then a change on the hub arrives quickly.
	waitUser := func(hubID string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			out, _, code := bridgeCLI(t, flags, "users", "list", "--json")
			if code == 0 && strings.Contains(out, hubID) {
				return time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("hub user %s not synced within %v", hubID, limit)
		return 0
	}
	waitUser(first, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // the users task is long-polling now
	next := h.createUser(t, "serve1")
	lag := waitUser(next, 10*time.Second)
	t.Logf("hub change → local directory: %v", lag)
	if lag > 5*time.Second {
		t.Fatalf("a hub change took %v to arrive (budget 5s)", lag)
	}

	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`connect_bridge_sync_runs_total{result="ok",server=`, "connect_bridge_sync_duration_seconds_bucket", "connect_bridge_source_requests_total", "connect_bridge_sync_last_success_timestamp_seconds", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	_ = bp.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-bp.exited:
		if err != nil {
			t.Fatalf("bridge serve exited with %v after SIGINT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bridge serve did not stop on SIGINT")
	}
}

// bridgeServeProc is a running `connect bridge serve`.
type bridgeServeProc struct {
	cmd    *exec.Cmd
	base   string
	exited chan error
}

func startBridgeServe(t *testing.T, flags []string) *bridgeServeProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"bridge", "serve", "--listen", "127.0.0.1:0"}, flags...)...)
	dieWithTest(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	addr := make(chan string, 1)
	bp := &bridgeServeProc{cmd: cmd, exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := bridgeListeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		bp.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("bridge log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		bp.base = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatal("bridge serve did not log its address")
	}
	return bp
}

// metricSum sums a metric's series whose text contains every filter.
func metricSum(t *testing.T, base, name string, filters ...string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, f := range filters {
			ok = ok && strings.Contains(line, f)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// TestBridgeTwoProcesses: two `connect bridge serve` processes on one Redis and
// one local database run each task once at a time (the other finds the lock
// taken) and end where one would: every hub user once, nothing else.
func TestBridgeTwoProcesses(t *testing.T) {
	redis := testenv.RedisAddr(t)
	h := startBridgeHub(t)
	var ids []string
	for i := range 30 {
		ids = append(ids, h.createUser(t, fmt.Sprintf("two%02d", i)))
	}
	flags := []string{"--store", "sqlite:" + filepath.Join(t.TempDir(), "bridge.db"), "--redis", "redis://" + redis + "/0"}
	mustBridge(t, flags, "servers", "add-manual", "--name", "hub", "--url", h.base, "--token", h.reader)
	a := startBridgeServe(t, flags)
	b := startBridgeServe(t, flags)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if metricSum(t, a.base, "connect_bridge_sync_runs_total", `result="busy"`)+metricSum(t, b.base, "connect_bridge_sync_runs_total", `result="busy"`) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("neither replica ever found a task locked by the other")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := range 10 {
		ids = append(ids, h.createUser(t, fmt.Sprintf("two-late%02d", i)))
	}
	var users []map[string]any
	for {
		out := mustBridge(t, flags, "users", "list", "--json")
		if err := json.Unmarshal([]byte(out), &users); err != nil {
			t.Fatal(err)
		}
		if len(users) >= len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, u := range users {
		seen[u["hubUserId"].(string)]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("hub user %s has %d accounts (%d accounts in all)", id, seen[id], len(users))
		}
	}
	if len(users) != len(ids) {
		t.Fatalf("%d accounts for %d hub users", len(users), len(ids))
	}
	ok := metricSum(t, a.base, "connect_bridge_sync_runs_total", `result="ok"`) + metricSum(t, b.base, "connect_bridge_sync_runs_total", `result="ok"`)
	if ok == 0 {
		t.Fatal("no successful run")
	}
}
