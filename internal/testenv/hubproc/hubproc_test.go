package hubproc_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv/hubproc"
)

func TestMain(m *testing.M) { hubproc.Main(m) }

// TestHub runs a hub with a setting, a store passed in the environment and a
// read-only token, uses its SCIM API, restarts it on the same store and
// address, and checks that the log is kept across the restart.
func TestHub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub process")
	}
	h := hubproc.StartHub(t, hubproc.HubOptions{StoreEnv: true, Settings: []string{"sync-password-hashes=true"}})
	if got := h.Command(t, "hub", "settings", "get", "sync-password-hashes"); got != "sync-password-hashes=true" {
		t.Errorf("settings get = %q, want sync-password-hashes=true", got)
	}
	reader := h.Token(t, "reader", "--read-only")
	var u struct{ ID string }
	h.Call(t, http.MethodPost, "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ada"}, &u, http.StatusCreated)
	if u.ID == "" {
		t.Fatal("created user has no id")
	}
	if err := hubproc.Request(http.MethodPost, h.SCIM+"/Users", reader, map[string]any{"userName": "x"}, nil, 0); err == nil {
		t.Error("a read-only token created a user")
	}
	if err := h.Do(http.MethodGet, "/Users/"+u.ID, nil, nil, http.StatusNotFound); err == nil || !strings.Contains(err.Error(), "status 200") {
		t.Errorf("Do with a wrong expected status: %v", err)
	}
	before := h.Log.Len()
	h.Restart(t)
	h.Call(t, http.MethodGet, "/Users/"+u.ID, nil, nil, http.StatusOK)
	if h.Log.Len() < before {
		t.Error("the log shrank across a restart")
	}
	h.Stop()
	select {
	case <-h.Done():
	default:
		t.Fatal("Stop returned before the hub exited")
	}
}

// TestProc checks readiness by log line, Stop (graceful, and by SIGKILL after
// the grace period) and the early-exit report.
func TestProc(t *testing.T) {
	p := hubproc.Start(t, "sleep", exec.Command("sh", "-c", `echo "ready at 127.0.0.1:5"; exec sleep 60`), hubproc.Options{Grace: 5 * time.Second, MustStop: true})
	if got := p.WaitLine(t, regexp.MustCompile(`ready at (\S+)`), 5*time.Second); got != "127.0.0.1:5" {
		t.Fatalf("WaitLine = %q", got)
	}
	start := time.Now()
	p.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v: SIGINT did not end sleep", d)
	}
	p.Stop() // again: a no-op

	// A process that ignores SIGINT, with a child holding its output open.
	stubborn := hubproc.Start(t, "stubborn", exec.Command("sh", "-c", `trap "" INT; sleep 60 & echo started; wait`), hubproc.Options{Grace: 500 * time.Millisecond})
	stubborn.WaitLine(t, regexp.MustCompile(`started`), 5*time.Second)
	start = time.Now()
	stubborn.Stop()
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Stop of a process ignoring SIGINT took %v", d)
	}

	ft := &fakeTB{TB: t}
	q := hubproc.Start(t, "quitter", exec.Command("sh", "-c", "echo bye; exit 3"), hubproc.Options{})
	func() {
		defer func() { _ = recover() }()
		q.WaitLine(ft, regexp.MustCompile(`never`), 5*time.Second)
	}()
	if !strings.Contains(ft.msg, "exited before it was ready") || !strings.Contains(ft.msg, "bye") {
		t.Errorf("WaitLine on an exited process reported %q", ft.msg)
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}
