package sso_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/bridge/local/sqlite"
)

// storedHash reads the password hash the bridge keeps for a hub user, from
// its local directory (SQLite) directly.
func storedHash(tb testing.TB, dsn, server, hubUserID string) string {
	tb.Helper()
	d, err := sqlite.Open(context.Background(), dsn, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	a, err := d.AccountByHubID(context.Background(), server, hubUserID)
	if err != nil {
		tb.Fatal(err)
	}
	return a.PasswordHash
}

// localLogin posts the bridge's local form.
func (b *browser) localLogin(bridgeBase, username, password string) (*http.Response, string) {
	b.tb.Helper()
	resp, page := b.get(bridgeBase+"/login?local=1&rd=%2Fapp", false)
	u, _ := url.Parse(bridgeBase + "/login")
	_ = resp
	return b.submit(u, page, false, "username", username, "password", password)
}

// TestPasswordHashes is acceptance 2 of issue 5: with the hub setting
// sync-password-hashes on, the bridge stores the hash and the user logs in
// through the bridge's local form while the hub process is stopped (not
// while it runs: connect accounts use SSO then); with it off no hash
// reaches the bridge and the local form never lets the user in.
func TestPasswordHashes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		hashes bool
	}{{"on", true}, {"off", false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHub(t, hubOpts{hashes: tt.hashes})
			alice := h.user(t, "alice", "alice-pw")
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "bridge.db")
			b := startBridge(t, dsn, "")
			server := connectHub(t, h, b)
			acct := b.waitAccount(t, alice.ID)
			hash := storedHash(t, dsn, server, alice.ID)
			if tt.hashes != (hash != "") {
				t.Fatalf("sync-password-hashes=%v but the bridge stored hash %q", tt.hashes, hash)
			}

			// The hub is up: a connect account logs in through it, never
			// with the local form.
			br := newBrowser(t)
			if resp, page := br.localLogin(b.base, acct.Username, "alice-pw"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("local login while the hub runs: %d %s", resp.StatusCode, page)
			}

			// Killed: a graceful stop waits up to 15 s for the bridge's
			// long-poll on the Changes feed (the hub's shutdown does not
			// cancel it).
			h.proc.kill()
			// Probe answers are reused for 5 s; a fresh bridge process asks
			// at once.
			b.proc.stop()
			b = startBridge(t, dsn, "")
			for _, login := range []string{acct.Username, "alice@example.org"} {
				br := newBrowser(t)
				resp, page := br.localLogin(b.base, login, "alice-pw")
				if !tt.hashes {
					if resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("local login as %s without a synced hash: %d %s", login, resp.StatusCode, page)
					}
					continue
				}
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
					t.Fatalf("local login as %s with the hub stopped: %d %s", login, resp.StatusCode, page)
				}
				if a := br.auth(b.base); a.StatusCode != http.StatusAccepted || a.Header.Get("X-Connect-User") != acct.Username {
					t.Fatalf("forward auth after local login: %d %v", a.StatusCode, a.Header)
				}
				if resp, _ := newBrowser(t).localLogin(b.base, login, "wrong"); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("wrong password accepted: %d", resp.StatusCode)
				}
			}
			if hash := storedHash(t, dsn, server, alice.ID); tt.hashes != (hash != "") {
				t.Fatalf("hash after the logins: %q", hash)
			}
		})
	}
}
