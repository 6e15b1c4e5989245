package sso_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSO is acceptance 1 of issue 5 on real processes: the handshake, a
// synced user's login through the hub with the forward-auth headers, a
// just-in-time account for a user in scope the sync has not reached, a user
// outside the restricted audience refused, and single logout ending the hub
// session too.
func TestSSO(t *testing.T) {
	t.Parallel()
	h := startHub(t, hubOpts{})
	alice := h.user(t, "alice", "alice-pw")
	bob := h.user(t, "bob", "bob-pw")
	staff := h.CreateGroup(t, "Staff", "audience", alice.ID)
	// The users task runs at the start and then only every hour without
	// long-polling, so a user created later is one the sync has not reached.
	b := startBridge(t, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), "", "users-interval=1h", "long-poll=0")
	connectHub(t, h, b, "--restrict-audience", "Staff", "--audience", "Staff")
	acct := b.waitAccount(t, alice.ID, "Staff")
	if !strings.HasPrefix(acct.Username, "tc") {
		t.Fatalf("synced username %q, want tc…", acct.Username)
	}

	br := newBrowser(t)
	if resp := br.auth(b.base); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("auth without a session: %d", resp.StatusCode)
	}
	r := br.login(b.base, "alice", "alice-pw")
	if !r.askedPassword || r.acs == nil || r.status != http.StatusSeeOther || r.acs.Header.Get("Location") != "/app" {
		t.Fatalf("login: asked password %v, %d %q\n%s", r.askedPassword, r.status, r.acs.Header.Get("Location"), r.page)
	}
	resp := br.auth(b.base)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Connect-User") != acct.Username ||
		resp.Header.Get("X-Connect-Email") != "alice@example.org" || resp.Header.Get("X-Connect-Groups") != "Staff" {
		t.Fatalf("forward auth: %d %v", resp.StatusCode, resp.Header)
	}

	// JIT: carol joins Staff after the sync ran; her first login makes her
	// account with the sync's rules (generated username, copied profile).
	carol := h.user(t, "carol", "carol-pw")
	h.AddMembers(t, staff.ID, carol.ID)
	if _, ok := b.accounts(t)[carol.ID]; ok {
		t.Fatal("carol synced before her login: the JIT case is not tested")
	}
	bc := newBrowser(t)
	if r := bc.login(b.base, "carol", "carol-pw"); r.status != http.StatusSeeOther {
		t.Fatalf("JIT login: %d %s", r.status, r.page)
	}
	jit, ok := b.accounts(t)[carol.ID]
	if !ok || !strings.HasPrefix(jit.Username, "tc") || jit.Auth != "connect" || jit.Email != "carol@example.org" {
		t.Fatalf("JIT account: %+v", jit)
	}
	if resp := bc.auth(b.base); resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Connect-User") != jit.Username ||
		resp.Header.Get("X-Connect-Groups") != "Staff" {
		t.Fatalf("JIT forward auth: %d %v", resp.StatusCode, resp.Header)
	}

	// bob is outside the restricted audience: the hub refuses to assert.
	bb := newBrowser(t)
	r = bb.login(b.base, "bob", "bob-pw")
	if r.acs != nil || r.status != http.StatusForbidden || !strings.Contains(r.page, "No access") {
		t.Fatalf("out-of-scope login: %d %s", r.status, r.page)
	}
	if resp := bb.auth(b.base); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("out-of-scope user has a session: %d", resp.StatusCode)
	}
	if _, ok := b.accounts(t)[bob.ID]; ok {
		t.Fatal("out-of-scope user got an account")
	}

	// Logout ends both sessions: the next login asks for the password.
	resp, page := br.logout(b.base)
	if resp.Request.URL.Path != "/login" || !strings.Contains(page, "You have been logged out.") {
		t.Fatalf("after logout: %s %d %s", resp.Request.URL, resp.StatusCode, page)
	}
	if resp := br.auth(b.base); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bridge session after logout: %d", resp.StatusCode)
	}
	r = br.login(b.base, "alice", "alice-pw")
	if !r.askedPassword || r.status != http.StatusSeeOther {
		t.Fatalf("hub session survived single logout: asked %v, %d", r.askedPassword, r.status)
	}
	// carol's session on the same bridge is hers alone: still valid.
	if resp := bc.auth(b.base); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("another user's session ended by alice's logout: %d", resp.StatusCode)
	}
}

// TestSSOECDSA logs in through a hub that signs with ECDSA P-256, whose XML
// signatures carry r || s (XML-DSig 1.1) where the SP's XML library verifies
// DER only, and logs out (the hub's signed logout answer).
func TestSSOECDSA(t *testing.T) {
	t.Parallel()
	h := startHub(t, hubOpts{ecdsa: true})
	alice := h.user(t, "alice", "alice-pw")
	b := startBridge(t, "sqlite:"+filepath.Join(t.TempDir(), "bridge.db"), "")
	connectHub(t, h, b)
	acct := b.waitAccount(t, alice.ID)
	br := newBrowser(t)
	if r := br.login(b.base, "alice", "alice-pw"); r.status != http.StatusSeeOther {
		t.Fatalf("login through an ECDSA hub: %d %s", r.status, r.page)
	}
	if resp := br.auth(b.base); resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Connect-User") != acct.Username {
		t.Fatalf("forward auth: %d %v", resp.StatusCode, resp.Header)
	}
	resp, page := br.logout(b.base)
	if resp.Request.URL.Path != "/login" || !strings.Contains(page, "You have been logged out.") {
		t.Fatalf("after logout: %s %d %s", resp.Request.URL, resp.StatusCode, page)
	}
	if r := br.login(b.base, "alice", "alice-pw"); !r.askedPassword || r.status != http.StatusSeeOther {
		t.Fatalf("hub session survived single logout: asked %v, %d", r.askedPassword, r.status)
	}
}
