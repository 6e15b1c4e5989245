package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// testUnchangedWrites: a replace or update that ends where it started writes
// nothing — same version and lastModified, no journal entry — and a real change
// still bumps both.
func testUnchangedWrites(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u1 := createUser(t, s, scim.User{UserName: "same1", Title: "Teacher", Emails: []scim.MultiValue{{Value: "s1@example.com", Primary: true}}})
	u2 := createUser(t, s, scim.User{UserName: "same2"})
	g := createGroup(t, s, scim.Group{DisplayName: "Same", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u1.ID}}})
	head, err := s.JournalHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	user, err := s.GetUser(ctx, u1.ID)
	if err != nil {
		t.Fatal(err)
	}
	grp, err := s.GetGroup(ctx, g.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	quiet := func(what string, m *scim.Meta, want *scim.Meta) {
		t.Helper()
		if m == nil || m.Version != want.Version || !m.LastModified.Equal(want.LastModified) {
			t.Errorf("%s: meta %+v, want the stored %+v", what, m, want)
		}
		if got, h := changesSince(t, s, head); len(got) != 0 {
			t.Errorf("%s wrote journal entries %v", what, got)
			head = h
		}
	}

	out, err := s.UpdateUser(ctx, u1.ID, 0, func(u *scim.User) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	quiet("UpdateUser without a change", out.Meta, user.Meta)
	if len(out.Groups) != 1 || out.Groups[0].Value != g.ID || out.Title != "Teacher" {
		t.Errorf("unchanged UpdateUser returned %+v", out)
	}
	out, err = s.UpdateUser(ctx, u1.ID, version(t, user.Meta), func(u *scim.User) error { u.Title = "Teacher"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	quiet("UpdateUser setting the current title (If-Match)", out.Meta, user.Meta)
	same := user
	same.Meta, same.Groups = nil, nil
	if out, err = s.ReplaceUser(ctx, same, 0); err != nil {
		t.Fatal(err)
	}
	quiet("ReplaceUser with the stored content", out.Meta, user.Meta)

	gout, err := s.UpdateGroup(ctx, g.ID, 0, func(g *scim.Group, m *store.MemberOps) error {
		m.Add = []scim.Member{{Value: u1.ID}} // already a member
		m.Remove = []string{u2.ID}            // not a member
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	quiet("UpdateGroup adding a member and removing a non-member", gout.Meta, grp.Meta)
	if gout.DisplayName != "Same" || gout.Kind() != scim.KindAudience {
		t.Errorf("unchanged UpdateGroup returned %+v", gout)
	}
	if gout, err = s.UpdateGroup(ctx, g.ID, 0, func(g *scim.Group, m *store.MemberOps) error {
		m.Replace = &[]scim.Member{{Value: u1.ID}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	quiet("UpdateGroup replacing members by the same list", gout.Meta, grp.Meta)
	if gout, err = s.ReplaceGroup(ctx, scim.Group{ID: g.ID, DisplayName: "Same", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u1.ID}}}, version(t, grp.Meta)); err != nil {
		t.Fatal(err)
	}
	quiet("ReplaceGroup with the stored content", gout.Meta, grp.Meta)
	if diff := cmp.Diff([]string{u1.ID}, memberIDs(gout.Members)); diff != "" {
		t.Errorf("unchanged ReplaceGroup members (-want +got):\n%s", diff)
	}

	// Real changes still write.
	if out, err = s.UpdateUser(ctx, u1.ID, 0, func(u *scim.User) error { u.Title = "Head"; return nil }); err != nil {
		t.Fatal(err)
	}
	if version(t, out.Meta) != version(t, user.Meta)+1 {
		t.Errorf("a real UpdateUser: version %s after %s", out.Meta.Version, user.Meta.Version)
	}
	got, h := changesSince(t, s, head)
	if diff := cmp.Diff([]change{{"User", u1.ID, scim.ChangeUpsert, scim.ReasonUpdated}}, got); diff != "" {
		t.Errorf("journal of a real UpdateUser (-want +got):\n%s", diff)
	}
	head = h
	if gout, err = s.UpdateGroup(ctx, g.ID, 0, func(g *scim.Group, m *store.MemberOps) error {
		m.Add = []scim.Member{{Value: u2.ID}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if version(t, gout.Meta) != version(t, grp.Meta)+1 {
		t.Errorf("a real UpdateGroup: version %s after %s", gout.Meta.Version, grp.Meta.Version)
	}
	got, h = changesSince(t, s, head)
	want := []change{{"Group", g.ID, scim.ChangeUpsert, scim.ReasonMembers}, {"User", u2.ID, scim.ChangeUpsert, scim.ReasonMembers}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journal of a real UpdateGroup (-want +got):\n%s", diff)
	}
	head = h
	if gout, err = s.ReplaceGroup(ctx, scim.Group{ID: g.ID, DisplayName: "same", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}}, 0); err != nil {
		t.Fatal(err)
	}
	if version(t, gout.Meta) != version(t, grp.Meta)+2 {
		t.Errorf("a ReplaceGroup renaming Same → same: version %s", gout.Meta.Version)
	}
}

// testAuditInWrite: store.WithAudit makes every user and group write record one
// audit entry in its own transaction; unchanged and failed writes record none.
func testAuditInWrite(t *testing.T, s store.Store) {
	base := ctxFor(t)
	as := func(action string) store.AuditEntry {
		return store.AuditEntry{Actor: "token:provisioner", Action: action}
	}
	ctx := func(action string) context.Context { return store.WithAudit(base, as(action)) }

	u, err := s.CreateUser(ctx("user.create"), scim.User{UserName: "audited"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx("user.create"), scim.User{UserName: "AUDITED"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateUser: %v", err)
	}
	if _, err := s.UpdateUser(ctx("user.patch"), u.ID, 0, func(u *scim.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	errFn := errors.New("refused")
	if _, err := s.UpdateUser(ctx("user.patch"), u.ID, 0, func(u *scim.User) error { u.Title = "x"; return errFn }); !errors.Is(err, errFn) {
		t.Fatalf("UpdateUser with a failing fn: %v", err)
	}
	if _, err := s.UpdateUser(ctx("user.patch"), u.ID, 0, func(u *scim.User) error { u.Title = "Dean"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceUser(ctx("user.replace"), scim.User{ID: u.ID, UserName: "audited"}, 0); err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx("group.create"), scim.Group{DisplayName: "Audited", Members: []scim.Member{{Value: u.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateGroup(ctx("group.patch"), g.ID, 0, func(*scim.Group, *store.MemberOps) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateGroup(ctx("group.patch"), g.ID, 0, func(_ *scim.Group, m *store.MemberOps) error { m.RemoveAll = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceGroup(ctx("group.replace"), scim.Group{ID: g.ID, DisplayName: "Audited 2"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx("group.delete"), g.ID, 99); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("DeleteGroup with a stale If-Match: %v", err)
	}
	if err := s.DeleteGroup(ctx("group.delete"), g.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx("user.delete"), u.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(base, scim.User{UserName: "not-audited"}); err != nil {
		t.Fatal(err)
	}

	es, err := s.AuditLog(base, 100)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ Actor, Action, Target, Detail string }
	var got []entry
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.At.IsZero() {
			t.Errorf("audit entry %+v has no time", e)
		}
		got = append(got, entry{e.Actor, e.Action, e.Target, e.Detail})
	}
	a := "token:provisioner"
	want := []entry{
		{a, "user.create", u.ID, "audited"},
		{a, "user.patch", u.ID, "audited"},
		{a, "user.replace", u.ID, "audited"},
		{a, "group.create", g.ID, "Audited"},
		{a, "group.patch", g.ID, "Audited"},
		{a, "group.replace", g.ID, "Audited 2"},
		{a, "group.delete", g.ID, "Audited 2"},
		{a, "user.delete", u.ID, "audited"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}
