package bridge_test

import (
	"slices"
	"testing"

	"github.com/connectsso/connect/bridge"
)

// TestExclusionsNoLocalField: attributes without a local field stay excluded
// whatever the setting says, so `settings get` never suggests they are copied.
func TestExclusionsNoLocalField(t *testing.T) {
	for _, v := range []string{"none", "email", "default"} {
		ex, err := bridge.ParseExclusions(v)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ex, "division") || !slices.Contains(ex, "manager") {
			t.Errorf("exclusions %q = %v, want division and manager in it", v, ex)
		}
	}
	if ex, _ := bridge.ParseExclusions("email"); !slices.Contains(ex, "email") || slices.Contains(ex, "title") {
		t.Errorf("exclusions email = %v", ex)
	}
}
