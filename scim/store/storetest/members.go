package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

func testMemberOps(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var u []scim.User
	for i := range 5 {
		u = append(u, createUser(t, s, scim.User{UserName: fmt.Sprintf("m%d", i)}))
	}
	g := createGroup(t, s, scim.Group{DisplayName: "Ops", Members: []scim.Member{{Value: u[0].ID}}})
	members := func() []string {
		t.Helper()
		got, err := s.GetGroup(ctx, g.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		return memberIDs(got.Members)
	}
	update := func(ifMatch int64, fn func(*scim.Group, *store.MemberOps) error) (scim.Group, error) {
		return s.UpdateGroup(ctx, g.ID, ifMatch, fn)
	}

	out, err := update(1, func(gr *scim.Group, ops *store.MemberOps) error {
		if gr.Members != nil {
			t.Errorf("UpdateGroup fn got members loaded")
		}
		ops.Add = []scim.Member{{Value: u[1].ID}, {Value: u[2].ID}, {Value: u[0].ID}}
		return nil
	})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if out.Members != nil || version(t, out.Meta) != 2 {
		t.Errorf("UpdateGroup result: members %v version %s", out.Members, out.Meta.Version)
	}
	if diff := cmp.Diff(sorted(u[0].ID, u[1].ID, u[2].ID), members()); diff != "" {
		t.Errorf("after add (-want +got):\n%s", diff)
	}
	if _, err := update(0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Remove = []string{u[0].ID, u[4].ID}
		ops.Add = []scim.Member{{Value: u[3].ID}}
		return nil
	}); err != nil {
		t.Fatalf("remove+add: %v", err)
	}
	if diff := cmp.Diff(sorted(u[1].ID, u[2].ID, u[3].ID), members()); diff != "" {
		t.Errorf("after remove+add (-want +got):\n%s", diff)
	}
	repl := []scim.Member{{Value: u[4].ID}, {Value: u[1].ID}}
	if _, err := update(0, func(gr *scim.Group, ops *store.MemberOps) error {
		ops.Replace = &repl
		gr.DisplayName = "Ops renamed"
		return nil
	}); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if diff := cmp.Diff(sorted(u[1].ID, u[4].ID), members()); diff != "" {
		t.Errorf("after replace (-want +got):\n%s", diff)
	}
	before, _ := s.GetGroup(ctx, g.ID, false)
	_, err = update(0, func(gr *scim.Group, ops *store.MemberOps) error {
		gr.DisplayName = "should not stick"
		ops.Add = []scim.Member{{Value: u[0].ID}, {Value: "ghost"}}
		return nil
	})
	wantErr(t, "UpdateGroup(add unknown)", err, store.ErrInvalid)
	after, _ := s.GetGroup(ctx, g.ID, false)
	if after.DisplayName != "Ops renamed" || after.Meta.Version != before.Meta.Version {
		t.Errorf("failed update changed the group: %q %s", after.DisplayName, after.Meta.Version)
	}
	if diff := cmp.Diff(sorted(u[1].ID, u[4].ID), members()); diff != "" {
		t.Errorf("failed update changed members (-want +got):\n%s", diff)
	}
	_, err = update(0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Add = []scim.Member{{Value: g.ID}}
		return nil
	})
	wantErr(t, "UpdateGroup(add itself)", err, store.ErrInvalid)
	_, err = update(0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Add = []scim.Member{{Value: ""}}
		return nil
	})
	wantErr(t, "UpdateGroup(add empty value)", err, store.ErrInvalid)
	_, err = update(1, func(*scim.Group, *store.MemberOps) error { return nil })
	wantErr(t, "UpdateGroup(stale)", err, store.ErrPreconditionFailed)
	_, err = s.UpdateGroup(ctx, "nope", 0, func(*scim.Group, *store.MemberOps) error { return nil })
	wantErr(t, "UpdateGroup(unknown)", err, store.ErrNotFound)
	if _, err := update(0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.RemoveAll = true
		ops.Add = []scim.Member{{Value: u[2].ID}}
		return nil
	}); err != nil {
		t.Fatalf("removeAll+add: %v", err)
	}
	if diff := cmp.Diff([]string{u[2].ID}, members()); diff != "" {
		t.Errorf("after removeAll+add (-want +got):\n%s", diff)
	}
}

func testLargeMemberAdd(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const n = 10000
	us := make([]scim.User, n)
	for i := range us {
		us[i] = scim.User{UserName: fmt.Sprintf("bulk%05d", i)}
	}
	created := batchCreate(t, s, us)
	g := createGroup(t, s, scim.Group{DisplayName: "Big", Members: []scim.Member{{Value: created[0].ID}}})
	head, _ := s.JournalHead(ctx)
	add := make([]scim.Member, n)
	for i, u := range created {
		add[i] = scim.Member{Value: u.ID}
	}
	start := time.Now()
	if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Add = add
		return nil
	}); err != nil {
		t.Fatalf("add %d members: %v", n, err)
	}
	t.Logf("added %d members in %v", n, time.Since(start))
	st, err := s.Stats(ctx)
	if err != nil || st.Members != n || st.Users != n {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	entries, err := s.Journal(ctx, head, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	// One row for the group plus one per user that actually joined.
	if len(entries) != n {
		t.Errorf("%d journal rows for the add, want %d", len(entries), n)
	}
	got, _ := s.GetGroup(ctx, g.ID, true)
	if len(got.Members) != n {
		t.Errorf("group has %d members, want %d", len(got.Members), n)
	}
	start = time.Now()
	remove := make([]string, 0, n/2)
	for _, u := range created[:n/2] {
		remove = append(remove, u.ID)
	}
	if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
		ops.Remove = remove
		return nil
	}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	t.Logf("removed %d members in %v", n/2, time.Since(start))
	if st, _ := s.Stats(ctx); st.Members != n/2 {
		t.Errorf("members after remove = %d, want %d", st.Members, n/2)
	}
}
