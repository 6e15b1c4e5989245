package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBridgeServersConnect: `servers connect` prints exactly the two lines of
// DESIGN.md §2.1, needs the bridge URL (recorded by serve or --url), and a
// secret works once (the handshake itself is tested in bridge/sso with both
// processes).
func TestBridgeServersConnect(t *testing.T) {
	flags := []string{"--store", "sqlite:" + filepath.Join(t.TempDir(), "bridge.db")}
	if _, errOut, code := bridgeCLI(t, flags, "servers", "connect"); code == 0 || !strings.Contains(errOut, "--url") {
		t.Fatalf("servers connect without a known URL: exit %d: %s", code, errOut)
	}
	if _, errOut, code := bridgeCLI(t, flags, "servers", "connect", "--url", "https://site.example", "--ttl", "-1h"); code == 0 || !strings.Contains(errOut, "ttl") {
		t.Fatalf("negative ttl: exit %d: %s", code, errOut)
	}
	out := mustBridge(t, flags, "servers", "connect", "--url", "https://site.example/", "--ttl", "10m")
	if !regexp.MustCompile(`\AClient URL: https://site\.example\nSetup secret: cs-[a-z2-7]{32}\n\z`).MatchString(out) {
		t.Fatalf("servers connect printed %q", out)
	}
	second := mustBridge(t, flags, "servers", "connect", "--url", "https://site.example")
	if second == out {
		t.Fatal("two setup secrets are the same")
	}
}
