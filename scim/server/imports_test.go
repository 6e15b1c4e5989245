package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the handler above the store contract: it never imports a
// store backend, the SAML packages or the bridge (DESIGN.md §9).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/connectsso/connect/scim/server").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	const mod = "github.com/connectsso/connect/"
	// scim/password (a leaf: stdlib and x/crypto) checks the passwordHash a
	// client sends can be verified.
	allowed := []string{"scim", "scim/store", "scim/filter", "scim/patch", "scim/password", "scim/server"}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, mod) {
			continue
		}
		rel := strings.TrimPrefix(p, mod)
		ok := false
		for _, a := range allowed {
			if rel == a {
				ok = true
			}
		}
		if !ok {
			t.Errorf("scim/server depends on %s", p)
		}
	}
}
