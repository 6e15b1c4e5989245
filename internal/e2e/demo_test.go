package e2e

import (
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var screenshots = flag.Bool("screenshots", false, "write the README's screenshots into docs/img")

var (
	demoReady = regexp.MustCompile(`^(Press Ctrl-C to stop\.)$`)
	demoSite  = regexp.MustCompile(`(?m)^\s+Site\s+(http://\S+?)/?$`)
	demoHub   = regexp.MustCompile(`(?m)^\s+Hub\s+(http://\S+)$`)
)

// TestDemoInBrowser follows the README's quick start in Chromium: `connect
// demo`, open the site, click the hub button, log in as alice, and see the
// page with the bridge's tc… account. With -screenshots it writes the README's
// pictures (docs/img/demo-*.png).
func TestDemoInBrowser(t *testing.T) {
	browser := newBrowser(t)
	p, _ := startProc(t, "connect demo", demoReady, "demo", "--listen", "127.0.0.1:0", "--site-listen", "127.0.0.1:0")
	out := p.output()
	site, hub := demoSite.FindStringSubmatch(out), demoHub.FindStringSubmatch(out)
	if site == nil || hub == nil {
		t.Fatalf("connect demo printed no Site and Hub lines:\n%s", out)
	}
	shots := t.TempDir()
	if *screenshots {
		shots = filepath.Join("..", "..", "docs", "img")
	}

	tab := newTab(t, browser)
	tab.open(site[1] + "/")
	tab.waitFor("a.hub")
	tab.at(site[1] + "/login")
	if got, want := tab.textOf("a.hub"), "Log in using your account on: Connect demo hub"; got != want {
		t.Fatalf("hub button %q, want %q", got, want)
	}
	tab.screenshot(filepath.Join(shots, "demo-login.png"))

	tab.click("a.hub", "#login-form")
	tab.at(hub[1] + "/")
	tab.screenshot(filepath.Join(shots, "demo-hub-login.png"))
	tab.fillAndSubmit(map[string]string{"#username": "alice", "#password": "demo-password"}, "#login-submit", "#user")
	tab.at(site[1] + "/")
	if user := tab.textOf("#user"); !strings.HasPrefix(user, "tc") {
		t.Fatalf("demo page user %q, want the bridge's tc… account", user)
	}
	if got := tab.textOf("#groups"); !strings.Contains(got, "Staff") || !strings.Contains(got, "Safety induction") {
		t.Errorf("groups %q", got)
	}
	tab.screenshot(filepath.Join(shots, "demo-site.png"))

	// Log out: the bridge's login page again, and the hub asks for the
	// password again.
	tab.click("#logout", "#note")
	tab.click("a.hub", "#login-form")

	p.stop(t)
	if p.wait != nil {
		t.Fatalf("connect demo exited with %v after Ctrl-C", p.wait)
	}
}
