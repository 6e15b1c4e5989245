package bridge_test

import (
	"errors"
	"testing"

	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local"
)

// TestClientOptions shows each client-system option's effect on what a bridge
// syncs, through a real hub and a real client token: synchronised audiences
// and courses become local groups and nothing else does; "add new audiences"
// and "add new courses" bring groups created later; members are cut to the
// restrict audience.
func TestClientOptions(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{})
	users := h.CreateUsers(t, "opt-", 3)
	staff := h.CreateGroup(t, "Opt staff", "audience", users[0].ID, users[1].ID)
	other := h.CreateGroup(t, "Opt other audience", "audience", users[0].ID)
	course := h.CreateGroup(t, "Opt course", "course", users[0].ID, users[2].ID)
	skipped := h.CreateGroup(t, "Opt skipped course", "course", users[0].ID)
	url, tok := h.ScopedClient(t, "site-options", "--restrict-audience", staff.ID, "--audience", staff.ID, "--course", course.ID)
	e := newEnv(t, envOpts{hub: h, scimURL: url, token: tok})
	e.users()
	e.groups()

	if _, members := e.group(staff.ID); len(members) != 2 {
		t.Fatalf("synced audience members = %v, want the 2 staff", members)
	}
	g, members := e.group(course.ID)
	if len(members) != 1 || !g.Locked {
		t.Fatalf("synced course: locked %v, members %v; want locked with only the in-scope member", g.Locked, members)
	}
	for _, hid := range []string{other.ID, skipped.ID} {
		if _, err := e.dir.GroupByHubID(e.ctx, e.srv.ID, hid); !errors.Is(err, local.ErrNotFound) {
			t.Fatalf("an unsynced group reached the bridge: %v", err)
		}
	}
	e.noAccount(users[2].ID) // outside the restrict audience

	// add-new-courses: a course created afterwards arrives; a new audience does not.
	h.Command(t, "hub", "clients", "update", "--store", h.DSN, "--add-new-courses", "site-options")
	newCourse := h.CreateGroup(t, "Opt new course", "course", users[1].ID)
	newAud := h.CreateGroup(t, "Opt new audience", "audience", users[1].ID)
	e.groups()
	if _, members := e.group(newCourse.ID); len(members) != 1 {
		t.Fatalf("new course with add-new-courses: members %v", members)
	}
	if _, err := e.dir.GroupByHubID(e.ctx, e.srv.ID, newAud.ID); !errors.Is(err, local.ErrNotFound) {
		t.Fatalf("a new audience arrived without add-new-audiences: %v", err)
	}
	// add-new-audiences: now a new audience arrives too.
	h.Command(t, "hub", "clients", "update", "--store", h.DSN, "--add-new-audiences", "site-options")
	later := h.CreateGroup(t, "Opt later audience", "audience", users[0].ID)
	e.groups()
	if _, members := e.group(later.ID); len(members) != 1 {
		t.Fatalf("new audience with add-new-audiences: members %v", members)
	}
}
