package bridge_test

import (
	"strconv"
	"testing"

	"github.com/connectsso/connect/bridge"
)

// TestDefaultThresholdSmallSite: with the default settings a small site's
// run that would remove a quarter of its accounts is held (20 % of the
// accounts, applied above delete-threshold-min destructive items), while one
// removal goes through.
func TestDefaultThresholdSmallSite(t *testing.T) {
	def := bridge.DefaultSettings()
	e := newEnv(t, envOpts{settings: map[string]string{
		"delete-threshold-min":     strconv.Itoa(def.DeletePercentMin),
		"delete-threshold-percent": strconv.Itoa(def.DeleteMaxPercent),
	}})
	users := e.hub.CreateUsers(t, "small", 20)
	e.users()
	e.hub.DeleteUser(t, users[0].ID)
	if p := e.full(); p.Held() {
		t.Fatalf("one removal of 20 held:\n%s", planText(p))
	}
	for _, u := range users[1:6] {
		e.hub.DeleteUser(t, u.ID)
	}
	p := e.full()
	if !p.Held() {
		t.Fatalf("5 removals of 19 accounts not held with the defaults:\n%s", planText(p))
	}
	noDestructive(t, e, liveIDs(users[1:6]))
}
