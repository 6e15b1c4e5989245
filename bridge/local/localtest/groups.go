package localtest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/connectsso/connect/bridge/local"
)

func putGroup(t testing.TB, d local.Directory, actor local.Actor, g local.Group) (local.Group, local.Op) {
	t.Helper()
	out, op, err := d.PutGroup(ctxFor(t), actor, g)
	if err != nil {
		t.Fatalf("PutGroup(%q): %v", g.Name, err)
	}
	if out.ID == "" {
		t.Fatalf("PutGroup(%q): no ID", g.Name)
	}
	return out, op
}

func allMembers(t testing.TB, d local.Directory, groupID string) []string {
	t.Helper()
	var all []string
	after := ""
	for {
		page, next, err := d.GroupMembers(ctxFor(t), groupID, after, 333)
		if err != nil {
			t.Fatalf("GroupMembers(%s): %v", groupID, err)
		}
		if len(page) > 333 {
			t.Fatalf("GroupMembers returned %d ids, limit 333", len(page))
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		if next == after {
			t.Fatalf("GroupMembers: next cursor %q repeats", next)
		}
		after = next
	}
}

func hubGroup(i int) local.Group {
	return local.Group{Name: fmt.Sprintf("Audience %d", i), Kind: local.KindAudience, Server: "hub-a", HubGroupID: fmt.Sprintf("g-%d", i), Locked: true}
}

func testGroupPut(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	g, op := putGroup(t, d, local.ActorConnect, hubGroup(1))
	if op != local.OpCreated || g.Name != "Audience 1" || g.Kind != local.KindAudience || !g.Locked || g.Server != "hub-a" || g.HubGroupID != "g-1" {
		t.Fatalf("created %+v (%s)", g, op)
	}
	if g.Created.IsZero() {
		t.Error("Created not set")
	}
	// Upsert by hub key: unchanged, then renamed.
	if g2, op := putGroup(t, d, local.ActorConnect, hubGroup(1)); op != local.OpUnchanged || g2.ID != g.ID {
		t.Fatalf("repeat: %s %s, want unchanged %s", op, g2.ID, g.ID)
	}
	ren := hubGroup(1)
	ren.Name, ren.Kind = "Renamed", local.KindCourse
	if g2, op := putGroup(t, d, local.ActorConnect, ren); op != local.OpUpdated || g2.ID != g.ID || g2.Name != "Renamed" || g2.Kind != local.KindCourse {
		t.Fatalf("rename: %+v %s", g2, op)
	}
	got, err := d.Group(ctx, g.ID)
	if err != nil || got.Name != "Renamed" || got.Kind != local.KindCourse || !got.Locked {
		t.Fatalf("Group(%s) = %+v, %v", g.ID, got, err)
	}
	byHub, err := d.GroupByHubID(ctx, "hub-a", "g-1")
	if err != nil || byHub.ID != g.ID {
		t.Fatalf("GroupByHubID = %+v, %v", byHub, err)
	}
	_, err = d.GroupByHubID(ctx, "hub-b", "g-1")
	wantErr(t, "GroupByHubID(other server)", err, local.ErrNotFound)
	_, err = d.Group(ctx, "404404")
	wantErr(t, "Group(absent)", err, local.ErrNotFound)
	_, _, err = d.PutGroup(ctx, local.ActorConnect, local.Group{ID: "404404", Name: "x", Kind: local.KindLocal})
	wantErr(t, "PutGroup(absent id)", err, local.ErrNotFound)

	// A site group (no hub key) by the site, updated by ID.
	s, op := putGroup(t, d, local.ActorSite, local.Group{Name: "Staff", Kind: local.KindLocal})
	if op != local.OpCreated || s.Locked || s.Server != "" {
		t.Fatalf("site group %+v %s", s, op)
	}
	s.Name = "Staff room"
	if s2, op := putGroup(t, d, local.ActorSite, s); op != local.OpUpdated || s2.Name != "Staff room" || s2.ID != s.ID {
		t.Fatalf("site group rename %+v %s", s2, op)
	}
	for _, bad := range []local.Group{
		{Name: "", Kind: local.KindLocal},
		{Name: "x", Kind: "team"},
		{Name: "x", Kind: local.KindAudience, Server: "hub-a"},
		{Name: "x", Kind: local.KindAudience, HubGroupID: "g"},
		{Name: "a\x01b", Kind: local.KindLocal},
	} {
		_, _, err := d.PutGroup(ctx, local.ActorConnect, bad)
		wantErr(t, fmt.Sprintf("PutGroup(%+v)", bad), err, local.ErrInvalid)
	}
}

func testGroupLocked(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	as := seed(t, d, "a", 0, 3)
	g, _ := putGroup(t, d, local.ActorConnect, hubGroup(1))
	if _, err := d.AddMembers(ctx, local.ActorConnect, g.ID, ids(as[:2])); err != nil {
		t.Fatalf("AddMembers by Connect: %v", err)
	}
	edit := g
	edit.Name = "Hijacked"
	_, _, err := d.PutGroup(ctx, local.ActorSite, edit)
	wantErr(t, "site renames a locked group", err, local.ErrLocked)
	edit.Name, edit.Locked = g.Name, false
	_, _, err = d.PutGroup(ctx, local.ActorSite, edit)
	wantErr(t, "site unlocks a locked group", err, local.ErrLocked)
	_, _, err = d.PutGroup(ctx, local.ActorSite, local.Group{Name: "Fake", Kind: local.KindLocal, Locked: true})
	wantErr(t, "site creates a locked group", err, local.ErrLocked)
	_, err = d.AddMembers(ctx, local.ActorSite, g.ID, ids(as[2:]))
	wantErr(t, "site adds a member", err, local.ErrLocked)
	_, err = d.RemoveMembers(ctx, local.ActorSite, g.ID, ids(as[:1]))
	wantErr(t, "site removes a member", err, local.ErrLocked)
	_, _, err = d.SetMembers(ctx, local.ActorSite, g.ID, nil)
	wantErr(t, "site empties the group", err, local.ErrLocked)
	err = d.DeleteGroup(ctx, local.ActorSite, g.ID)
	wantErr(t, "site deletes the group", err, local.ErrLocked)

	got, err := d.Group(ctx, g.ID)
	if err != nil || got.Name != g.Name || !got.Locked {
		t.Fatalf("locked group changed: %+v, %v", got, err)
	}
	if m := allMembers(t, d, g.ID); !sameSet(m, ids(as[:2])) {
		t.Fatalf("members = %v, want %v", m, ids(as[:2]))
	}
	// The site reads it, and Connect may unlock it (e.g. when a hub drops it).
	got.Locked = false
	if g2, op := putGroup(t, d, local.ActorConnect, got); g2.Locked || op != local.OpUpdated {
		t.Fatalf("Connect unlock: %+v %s", g2, op)
	}
	if _, err := d.AddMembers(ctx, local.ActorSite, g.ID, ids(as[2:])); err != nil {
		t.Fatalf("site adds to an unlocked group: %v", err)
	}
}

func testGroupHubConflict(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	putGroup(t, d, local.ActorConnect, hubGroup(1))
	g2, _ := putGroup(t, d, local.ActorConnect, hubGroup(2))
	g2.HubGroupID = "g-1"
	_, _, err := d.PutGroup(ctx, local.ActorConnect, g2)
	wantErr(t, "relink to a held hub key", err, local.ErrConflict)
	// Names need not be unique: a hub may swap two names in one run.
	g3 := hubGroup(3)
	g3.Name = "AUDIENCE 1"
	_, _, err = d.PutGroup(ctx, local.ActorConnect, g3)
	if d.Capabilities().DuplicateGroupNames {
		if err != nil {
			t.Fatalf("second group named like the first: %v", err)
		}
	} else {
		wantErr(t, "second group named like the first", err, local.ErrConflict)
	}
}

func testGroupList(t *testing.T, d local.Directory) {
	var want, wantA, wantCourse []string
	for i := range 25 {
		g := hubGroup(i)
		if i%3 == 0 {
			g.Server = "hub-b"
		}
		if i%2 == 0 {
			g.Kind = local.KindCourse
		}
		out, _ := putGroup(t, d, local.ActorConnect, g)
		want = append(want, out.ID)
		if g.Server == "hub-a" {
			wantA = append(wantA, out.ID)
		}
		if g.Kind == local.KindCourse {
			wantCourse = append(wantCourse, out.ID)
		}
	}
	s, _ := putGroup(t, d, local.ActorSite, local.Group{Name: "Site", Kind: local.KindLocal})
	want = append(want, s.ID)
	for _, tt := range []struct {
		name string
		q    local.GroupQuery
		want []string
	}{
		{"all", local.GroupQuery{}, want},
		{"hub-a", local.GroupQuery{Server: "hub-a"}, wantA},
		{"courses", local.GroupQuery{Kind: local.KindCourse}, wantCourse},
		{"local", local.GroupQuery{Kind: local.KindLocal}, []string{s.ID}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			q := tt.q
			q.Limit = 4
			for {
				gs, next, err := d.ListGroups(ctxFor(t), q)
				if err != nil {
					t.Fatalf("ListGroups: %v", err)
				}
				if len(gs) > 4 {
					t.Fatalf("ListGroups returned %d, limit 4", len(gs))
				}
				for _, g := range gs {
					got = append(got, g.ID)
				}
				if next == "" {
					break
				}
				q.After = next
			}
			if !sameSet(got, tt.want) || len(got) != len(tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
		})
	}
}

func testMembers(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	as := seed(t, d, "a", 0, 6)
	g, _ := putGroup(t, d, local.ActorConnect, hubGroup(1))
	h, _ := putGroup(t, d, local.ActorConnect, hubGroup(2))
	n, err := d.AddMembers(ctx, local.ActorConnect, g.ID, ids(as[:4]))
	if err != nil || n != 4 {
		t.Fatalf("AddMembers = %d, %v; want 4", n, err)
	}
	n, err = d.AddMembers(ctx, local.ActorConnect, g.ID, ids(as[2:5]))
	if err != nil || n != 1 {
		t.Fatalf("AddMembers overlapping = %d, %v; want 1 (idempotent)", n, err)
	}
	if _, err := d.AddMembers(ctx, local.ActorConnect, h.ID, ids(as[:1])); err != nil {
		t.Fatal(err)
	}
	// An unknown account id refuses the whole call.
	_, err = d.AddMembers(ctx, local.ActorConnect, g.ID, []string{as[5].ID, "404404"})
	wantErr(t, "AddMembers with an unknown account", err, local.ErrInvalid)
	_, err = d.AddMembers(ctx, local.ActorConnect, "404404", ids(as[:1]))
	wantErr(t, "AddMembers to an absent group", err, local.ErrNotFound)
	if m := allMembers(t, d, g.ID); !sameSet(m, ids(as[:5])) {
		t.Fatalf("members = %v, want %v", m, ids(as[:5]))
	}
	n, err = d.RemoveMembers(ctx, local.ActorConnect, g.ID, []string{as[0].ID, as[5].ID})
	if err != nil || n != 1 {
		t.Fatalf("RemoveMembers = %d, %v; want 1", n, err)
	}
	_, err = d.RemoveMembers(ctx, local.ActorConnect, "404404", ids(as[:1]))
	wantErr(t, "RemoveMembers of an absent group", err, local.ErrNotFound)
	added, removed, err := d.SetMembers(ctx, local.ActorConnect, g.ID, []string{as[4].ID, as[5].ID, as[5].ID, as[1].ID})
	if err != nil || added != 1 || removed != 2 {
		t.Fatalf("SetMembers = +%d -%d, %v; want +1 -2", added, removed, err)
	}
	if m := allMembers(t, d, g.ID); !sameSet(m, []string{as[1].ID, as[4].ID, as[5].ID}) {
		t.Fatalf("members after SetMembers = %v", m)
	}
	if added, removed, err := d.SetMembers(ctx, local.ActorConnect, g.ID, []string{as[1].ID, as[4].ID, as[5].ID}); err != nil || added+removed != 0 {
		t.Fatalf("repeated SetMembers = +%d -%d, %v; want no change", added, removed, err)
	}
	_, _, err = d.SetMembers(ctx, local.ActorConnect, g.ID, []string{"404404"})
	wantErr(t, "SetMembers with an unknown account", err, local.ErrInvalid)
	_, _, err = d.GroupMembers(ctx, "404404", "", 10)
	wantErr(t, "GroupMembers of an absent group", err, local.ErrNotFound)

	gs, err := d.AccountGroups(ctx, as[1].ID)
	if err != nil || !slices.Equal(gs, []string{g.ID}) {
		t.Fatalf("AccountGroups(%s) = %v, %v; want [%s]", as[1].ID, gs, err, g.ID)
	}
	gs, err = d.AccountGroups(ctx, as[0].ID)
	if err != nil || !slices.Equal(gs, []string{h.ID}) {
		t.Fatalf("AccountGroups(%s) = %v, %v; want [%s]", as[0].ID, gs, err, h.ID)
	}
	if gs, err := d.AccountGroups(ctx, as[3].ID); err != nil || len(gs) != 0 {
		t.Fatalf("AccountGroups(non-member) = %v, %v", gs, err)
	}
	_, err = d.AccountGroups(ctx, "404404")
	wantErr(t, "AccountGroups(absent)", err, local.ErrNotFound)
	big := make([]string, local.MaxBatch+1)
	for i := range big {
		big[i] = as[0].ID
	}
	_, err = d.AddMembers(ctx, local.ActorConnect, g.ID, big)
	wantErr(t, "AddMembers over MaxBatch", err, local.ErrInvalid)
}

func testSetMembersLarge(t *testing.T, d local.Directory) {
	n := 2500
	if testing.Short() {
		n = 1200
	}
	as := seed(t, d, "a", 0, n)
	all := ids(as)
	g, _ := putGroup(t, d, local.ActorConnect, hubGroup(1))
	added, removed, err := d.SetMembers(ctxFor(t), local.ActorConnect, g.ID, all[:n-200])
	if err != nil || added != n-200 || removed != 0 {
		t.Fatalf("SetMembers = +%d -%d, %v", added, removed, err)
	}
	added, removed, err = d.SetMembers(ctxFor(t), local.ActorConnect, g.ID, all[300:])
	if err != nil || added != 200 || removed != 300 {
		t.Fatalf("second SetMembers = +%d -%d, %v; want +200 -300", added, removed, err)
	}
	if m := allMembers(t, d, g.ID); !sameSet(m, all[300:]) {
		t.Fatalf("%d members, want %d", len(m), n-300)
	}
}

func testDeleteGroup(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	as := seed(t, d, "a", 0, 3)
	g, _ := putGroup(t, d, local.ActorConnect, hubGroup(1))
	if _, err := d.AddMembers(ctx, local.ActorConnect, g.ID, ids(as)); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteGroup(ctx, local.ActorConnect, g.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	_, err := d.Group(ctx, g.ID)
	wantErr(t, "Group(deleted)", err, local.ErrNotFound)
	err = d.DeleteGroup(ctx, local.ActorConnect, g.ID)
	wantErr(t, "DeleteGroup again", err, local.ErrNotFound)
	for _, a := range as {
		if gs, err := d.AccountGroups(ctx, a.ID); err != nil || len(gs) != 0 {
			t.Fatalf("AccountGroups after group delete = %v, %v", gs, err)
		}
	}
	if n := count(t, d, local.AccountQuery{}); n != 3 {
		t.Fatalf("deleting a group removed accounts: %d left", n)
	}
	// The hub key is free again.
	if _, op := putGroup(t, d, local.ActorConnect, hubGroup(1)); op != local.OpCreated {
		t.Fatalf("recreate: %s", op)
	}
}
