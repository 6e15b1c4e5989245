package bridge_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/scimtarget"
)

// view is what two local directories must agree on about one hub user.
func view(t *testing.T, ctx context.Context, d bridge.Target, server, hubID string) string {
	t.Helper()
	a, err := d.AccountByHubID(ctx, server, hubID)
	if err != nil {
		t.Fatalf("account of %s: %v", hubID, err)
	}
	gids, err := d.AccountGroups(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, id := range gids {
		g, err := d.Group(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, fmt.Sprintf("%s/%s/%v", g.Name, g.Kind, g.Locked))
	}
	sort.Strings(groups)
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|suspended=%v|deleted=%v|%s", a.Username, a.Auth, a.Email, a.GivenName, a.FamilyName,
		a.Timezone, a.Suspended, a.IsDeleted() || (a.Suspended && a.Deleted.IsZero() && false), strings.Join(groups, ","))
}

// TestSCIMTarget: the engine provisions into a site application's SCIM endpoint
// (a second hub standing in for it) and ends with the same accounts and groups
// as into SQLite.
func TestSCIMTarget(t *testing.T) {
	ctx := context.Background()
	source := hubtest.Start(t, hubtest.Options{})
	site := hubtest.Start(t, hubtest.Options{})
	users := source.CreateUsers(t, "tgt", 30)
	aud := source.CreateGroup(t, "Target audience", "audience", users[0].ID, users[1].ID, users[2].ID)
	course := source.CreateGroup(t, "Target course", "course", users[2].ID, users[3].ID)

	// Bridge A: SQLite. Bridge B: the site's SCIM endpoint, its records in SQLite.
	a := newEnv(t, envOpts{hub: source})
	target, err := scimtarget.New(ctx, scimtarget.Config{BaseURL: site.SCIM, Token: site.Admin, Extension: true, Metadata: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	engB, srvB := scimTargetEngine(t, target, source, map[string]string{"delete-threshold-min": "1000"})
	runB := func(task string) *bridge.Plan {
		t.Helper()
		start := time.Now()
		p, err := engB.RunTask(ctx, srvB.ID, task, bridge.RunOptions{})
		t.Logf("%s into the SCIM target: %v (%s)", task, time.Since(start).Round(time.Millisecond), p.Summary())
		if err != nil {
			t.Fatalf("%s into the SCIM target: %v\n%s", task, err, planText(p))
		}
		return p
	}
	compare := func(stage string) {
		t.Helper()
		for _, u := range users {
			va := view(t, ctx, a.dir, a.srv.ID, u.ID)
			vb := view(t, ctx, target, srvB.ID, u.ID)
			// Usernames are generated from the server id, which differs.
			va = va[strings.Index(va, "|"):]
			vb = vb[strings.Index(vb, "|"):]
			if va != vb {
				t.Fatalf("%s: hub user %s differs:\n sqlite %s\n scim   %s", stage, u.ID, va, vb)
			}
		}
	}
	for _, task := range []string{bridge.TaskUsers, bridge.TaskCollections} {
		a.sync(task, bridge.RunOptions{})
		runB(task)
	}
	compare("initial")
	if ba := e2eAccount(t, ctx, target, srvB.ID, users[0].ID); !strings.HasPrefix(ba.Username, "tc") || ba.Auth != local.AuthConnect {
		t.Fatalf("target account %+v", ba)
	}

	// Changes on the source hub.
	u := users[4]
	u.Name.GivenName = "Changed"
	source.ReplaceUser(t, u)
	source.SetActive(t, users[5].ID, false)
	source.RemoveMember(t, aud.ID, users[0].ID)
	source.AddMembers(t, course.ID, users[6].ID)
	for _, task := range []string{bridge.TaskUsers, bridge.TaskCollections} {
		a.sync(task, bridge.RunOptions{})
		runB(task)
	}
	compare("after changes")
	source.SetActive(t, users[5].ID, true)
	a.users()
	runB(bridge.TaskUsers)
	compare("after reactivation")
}

func e2eAccount(t *testing.T, ctx context.Context, d bridge.Target, server, hubID string) local.Account {
	t.Helper()
	acc, err := d.AccountByHubID(ctx, server, hubID)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}
