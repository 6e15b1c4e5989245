package bridge_test

import (
	"testing"

	"github.com/connectsso/connect/bridge"
)

// TestPlanItemsWritten: every item of a page records what its write did (the
// account's id), not only the first few: the items of a page are recorded
// while the plan grows, and written after.
func TestPlanItemsWritten(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 100})
	us := e.hub.CreateUsers(t, "items", 60)
	p := e.users()
	wantAction(t, p, bridge.ActCreate, len(us))
	if len(p.Items) != len(us) {
		t.Fatalf("%d items, want %d", len(p.Items), len(us))
	}
	for _, it := range p.Items {
		if a := e.account(it.HubID); it.LocalID != a.ID || it.Name != a.Username {
			t.Fatalf("item %+v does not name the account written (%s %s)", it, a.ID, a.Username)
		}
	}
}
