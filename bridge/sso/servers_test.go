package sso_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/internal/hubtest"
)

// TestAutoSSO: with the bridge setting auto-sso on and one hub, /login goes
// straight to the hub; /login?local=1 still shows the page.
func TestAutoSSO(t *testing.T) {
	t.Parallel()
	h := startHub(t, hubOpts{})
	alice := h.user(t, "alice", "alice-pw")
	b := startBridge(t, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), "")
	connectHub(t, h, b)
	b.waitAccount(t, alice.ID)
	b.cmd(t, "bridge settings set", "auto-sso=true")
	br := newBrowser(t)
	r := br.sso(b.base+"/login?rd=%2Fapp", "alice", "alice-pw")
	if !r.askedPassword || r.status != http.StatusSeeOther || r.acs.Header.Get("Location") != "/app" {
		t.Fatalf("auto-sso login: asked %v, %d %s", r.askedPassword, r.status, r.page)
	}
	if resp, page := newBrowser(t).get(b.base+"/login?local=1", false); resp.StatusCode != http.StatusOK ||
		!strings.Contains(page, "Log in using your account on: Connect Hub") {
		t.Fatalf("/login?local=1 with auto-sso: %d %s", resp.StatusCode, page)
	}
	b.cmd(t, "bridge settings set", "auto-sso=false")
	if resp, page := newBrowser(t).get(b.base+"/login", false); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Log in using your account on:") {
		t.Fatalf("/login with auto-sso off: %d", resp.StatusCode)
	}
}

// TestServersRemove: removing a hub connected by the handshake tells the hub
// (its client system and token go), applies the removal action to the hub's
// accounts (their sessions stop passing forward auth) and takes the hub off
// the login page.
func TestServersRemove(t *testing.T) {
	t.Parallel()
	h := startHub(t, hubOpts{})
	alice := h.user(t, "alice", "alice-pw")
	b := startBridge(t, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), "", "removal-action=suspend")
	server := connectHub(t, h, b)
	b.waitAccount(t, alice.ID)
	br := newBrowser(t)
	if r := br.login(b.base, "alice", "alice-pw"); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", r.status, r.page)
	}

	cmd := exec.Command(hubtest.Binary(t), b.args("bridge servers remove", server)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("servers remove: %v\n%s", err, &out)
	}
	for _, want := range []string{"removed this client", "1 account(s) changed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("servers remove output lacks %q:\n%s", want, &out)
		}
	}
	var clients []json.RawMessage
	if err := json.Unmarshal([]byte(connectCmd(t, "", "hub", "clients", "list", "--store", h.DSN, "--json")), &clients); err != nil || len(clients) != 0 {
		t.Fatalf("the hub still lists %d client(s) (%v)", len(clients), err)
	}
	if a := b.accounts(t)[alice.ID]; !a.Suspended {
		t.Fatalf("removal action suspend not applied: %+v", a)
	}
	deadline := time.Now().Add(10 * time.Second) // the forward-auth caches
	for br.auth(b.base).StatusCode != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("a suspended account's session still passes forward auth")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // the hub list is reused for 1 s
	if _, page := newBrowser(t).get(b.base+"/login", false); strings.Contains(page, "Connect Hub") {
		t.Fatalf("the removed hub is still on the login page:\n%s", page)
	}

	// Removing again: the server is gone.
	if _, err := tryConnect(t, "", b.args("bridge servers remove", server)...); err == nil {
		t.Fatal("removing an unknown server succeeded")
	}
}
