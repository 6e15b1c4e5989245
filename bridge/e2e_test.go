package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
)

// TestEndToEnd: users and groups created, updated, suspended and deleted on a
// real hub arrive in the local directory, through a full reconcile and then the
// Changes feed.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, envOpts{})
	users := e.hub.CreateUsers(t, "e2e", 120)
	aud := e.hub.CreateGroup(t, "Staff", "audience", users[0].ID, users[1].ID, users[2].ID)
	course := e.hub.CreateGroup(t, "Course 101", "course", users[3].ID)

	p := e.users()
	if p.Mode != "full" {
		t.Fatalf("first run mode %s, want full", p.Mode)
	}
	wantAction(t, p, bridge.ActCreate, 120)
	if n := e.connectCount(); n != 120 {
		t.Fatalf("%d accounts, want 120", n)
	}
	a := e.account(users[7].ID)
	if !strings.HasPrefix(a.Username, "tc") || a.Auth != local.AuthConnect || a.Email != "e2e0007@example.org" ||
		a.GivenName != "Given e2e0007" || a.FamilyName != "Family" {
		t.Fatalf("account = %+v", a)
	}

	gp := e.groups()
	wantAction(t, gp, bridge.ActGroupPut, 2)
	g, members := e.group(aud.ID)
	if !g.Locked || g.Kind != local.KindAudience || g.Name != "Staff" || len(members) != 3 {
		t.Fatalf("audience = %+v members %v", g, members)
	}
	g, members = e.group(course.ID)
	if !g.Locked || g.Kind != local.KindCourse || len(members) != 1 || members[0] != e.account(users[3].ID).Username {
		t.Fatalf("course = %+v members %v", g, members)
	}

	// Nothing changed: an increment does nothing.
	p = e.users()
	if p.Mode != "changes" || p.Total() != 0 {
		t.Fatalf("idle increment: %s", planText(p))
	}

	// Update, suspend, delete, create on the hub.
	u := users[10]
	u.Name.GivenName = "Renamed"
	e.hub.ReplaceUser(t, u)
	e.hub.SetActive(t, users[11].ID, false)
	e.hub.DeleteUser(t, users[12].ID)
	fresh := e.hub.CreateUser(t, hubtest.User("e2e-fresh"))
	p = e.users()
	if p.Mode != "changes" {
		t.Fatalf("mode %s, want changes", p.Mode)
	}
	wantAction(t, p, bridge.ActUpdate, 1)
	wantAction(t, p, bridge.ActSuspend, 1)
	wantAction(t, p, bridge.ActDelete, 1)
	wantAction(t, p, bridge.ActCreate, 1)
	if got := e.account(u.ID).GivenName; got != "Renamed" {
		t.Fatalf("givenName %q", got)
	}
	if s := e.account(users[11].ID); !s.Suspended || s.SuspendedBy != local.SuspendedByConnect {
		t.Fatalf("suspended = %+v", s)
	}
	if d := e.account(users[12].ID); !d.IsDeleted() {
		t.Fatalf("deleted = %+v", d)
	}
	e.account(fresh.ID)

	// Reactivation.
	e.hub.SetActive(t, users[11].ID, true)
	p = e.users()
	wantAction(t, p, bridge.ActUnsuspend, 1)
	if s := e.account(users[11].ID); s.Suspended {
		t.Fatalf("still suspended: %+v", s)
	}

	// Membership and group changes.
	e.hub.AddMembers(t, course.ID, users[20].ID, users[21].ID)
	e.hub.RemoveMember(t, aud.ID, users[0].ID)
	e.hub.DeleteGroup(t, aud.ID)
	gp = e.groups()
	if gp.Mode != "changes" {
		t.Fatalf("collections mode %s", gp.Mode)
	}
	if _, members = e.group(course.ID); len(members) != 3 {
		t.Fatalf("course members %v", members)
	}
	wantAction(t, gp, bridge.ActGroupDel, 1)
	if _, err := e.dir.GroupByHubID(e.ctx, e.srv.ID, aud.ID); err == nil {
		t.Fatal("deleted audience still local")
	}

	// Purge after the grace period.
	e.set(map[string]string{"delete-grace": "1h"})
	cp := e.sync(bridge.TaskCleanup, bridge.RunOptions{})
	wantAction(t, cp, bridge.ActPurge, 0)
	e.clk.advance(2 * time.Hour)
	cp = e.sync(bridge.TaskCleanup, bridge.RunOptions{})
	wantAction(t, cp, bridge.ActPurge, 1)
	e.noAccount(users[12].ID)
	if _, ok := e.link(users[12].ID); ok {
		t.Fatal("purged account still linked")
	}

	// A full reconcile agrees with the increments: nothing to do.
	p = e.full()
	if p.Total() != 0 {
		t.Fatalf("full reconcile after increments: %s", planText(p))
	}
}
