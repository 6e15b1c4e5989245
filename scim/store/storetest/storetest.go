// Package storetest is the conformance suite of the hub directory contract
// (scim/store): every backend's test calls Run. It checks behaviour only
// through the store.Store interface.
//
// It imports scim, scim/filter, scim/store, testing and go-cmp.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// Run runs the conformance suite. newStore returns an empty store and arranges
// (with t.Cleanup) for it to be closed and removed.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"UserCRUD", testUserCRUD},
		{"UserNameConflict", testUserNameConflict},
		{"UserIfMatch", testUserIfMatch},
		{"ConcurrentCreateSameUserName", testConcurrentCreate},
		{"GroupCRUD", testGroupCRUD},
		{"GroupsOnUsers", testGroupsOnUsers},
		{"ListByIDs", testListByIDs},
		{"FilterUsers", testFilterUsers},
		{"FilterGroups", testFilterGroups},
		{"FilterRejected", testFilterRejected},
		{"Sort", testSort},
		{"SortMultiValued", testSortMultiValued},
		{"UniqueFilterTotals", testUniqueFilterTotals},
		{"IndexPaging", testIndexPaging},
		{"IndexPagingEverywhere", testIndexPagingEverywhere},
		{"DeepIndexPaging", testDeepIndexPaging},
		{"CursorPaging", testCursorPaging},
		{"MemberOps", testMemberOps},
		{"LargeMemberAdd", testLargeMemberAdd},
		{"Journal", testJournal},
		{"JournalAtomic", testJournalAtomic},
		{"JournalConcurrentWriters", testJournalConcurrent},
		{"TrimJournal", testTrimJournal},
		{"Tokens", testTokens},
		{"Settings", testSettings},
		{"Audit", testAudit},
		{"Batcher", testBatcher},
		{"BatcherBesideSingleCreates", testBatcherConcurrent},
		{"Stats", testStats},
		{"Clients", testClients},
		{"ClientScope", testClientScope},
		{"JournalVia", testJournalVia},
		{"UnchangedWrites", testUnchangedWrites},
		{"AuditInWrite", testAuditInWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createUser(t testing.TB, s store.Store, u scim.User) scim.User {
	t.Helper()
	out, err := s.CreateUser(ctxFor(t), u)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", u.UserName, err)
	}
	return out
}

func createGroup(t testing.TB, s store.Store, g scim.Group) scim.Group {
	t.Helper()
	out, err := s.CreateGroup(ctxFor(t), g)
	if err != nil {
		t.Fatalf("CreateGroup(%q): %v", g.DisplayName, err)
	}
	return out
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func version(t testing.TB, m *scim.Meta) int64 {
	t.Helper()
	if m == nil {
		t.Fatalf("meta is nil")
	}
	v, ok := scim.ParseETag(m.Version)
	if !ok {
		t.Fatalf("meta.version %q is not an ETag", m.Version)
	}
	return v
}

func path(t testing.TB, rt *scim.ResourceType, p string) *scim.AttrPath {
	t.Helper()
	ap, ok := rt.ParsePath(p)
	if !ok {
		t.Fatalf("unknown path %q", p)
	}
	return &ap
}

// batchCreate creates many users, through store.Batcher when available.
func batchCreate(t testing.TB, s store.Store, us []scim.User) []scim.User {
	t.Helper()
	ctx := ctxFor(t)
	out := make([]scim.User, 0, len(us))
	if b, ok := s.(store.Batcher); ok {
		for lo := 0; lo < len(us); lo += 1000 {
			res, errs := b.CreateUsers(ctx, us[lo:min(lo+1000, len(us))])
			for i, err := range errs {
				if err != nil {
					t.Fatalf("CreateUsers[%d]: %v", lo+i, err)
				}
			}
			out = append(out, res...)
		}
		return out
	}
	for _, u := range us {
		out = append(out, createUser(t, s, u))
	}
	return out
}

func testUserCRUD(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	in := scim.User{
		UserName:    "jdoe",
		ExternalID:  "ext-1",
		Name:        &scim.Name{GivenName: "John", FamilyName: "Doe"},
		DisplayName: "John Doe",
		Active:      scim.BoolPtr(true),
		Password:    "clear text must not be stored",
		Emails:      []scim.MultiValue{{Value: "jdoe@example.com", Type: "work", Primary: true}},
		Addresses:   []scim.Address{{Type: "work", Locality: "Lyon", Country: "FR"}},
		Enterprise:  &scim.EnterpriseUser{EmployeeNumber: "42", Manager: &scim.Manager{Value: "m-1"}},
		Connect: &scim.ConnectUser{
			Interests:    []string{"chess"},
			CustomFields: []scim.CustomField{{Name: "shoe", Value: "44"}},
			PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA",
		},
	}
	created := createUser(t, s, in)
	if created.ID == "" {
		t.Fatal("CreateUser assigned no id")
	}
	if created.Password != "" {
		t.Error("CreateUser returned the clear password")
	}
	if v := version(t, created.Meta); v != 1 {
		t.Errorf("new user version = %d, want 1", v)
	}
	if created.Meta.Created.IsZero() || !created.Meta.Created.Equal(created.Meta.LastModified) {
		t.Errorf("meta created %v lastModified %v", created.Meta.Created, created.Meta.LastModified)
	}
	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.Password != "" {
		t.Error("GetUser returned a password")
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("GetUser differs from CreateUser's result (-created +got):\n%s", diff)
	}
	if got.Connect == nil || got.Connect.PasswordHash != in.Connect.PasswordHash {
		t.Error("password hash not kept")
	}
	byName, err := s.UserByUserName(ctx, "JDOE")
	if err != nil || byName.ID != created.ID {
		t.Fatalf("UserByUserName(JDOE) = %v, %v", byName.ID, err)
	}

	time.Sleep(2 * time.Millisecond)
	repl := got
	repl.Meta = nil
	repl.Title = "Boss"
	repl.Emails = nil
	repl.Name = &scim.Name{GivenName: "Johnny"}
	replaced, err := s.ReplaceUser(ctx, repl, 0)
	if err != nil {
		t.Fatalf("ReplaceUser: %v", err)
	}
	if v := version(t, replaced.Meta); v != 2 {
		t.Errorf("replaced version = %d, want 2", v)
	}
	if !replaced.Meta.Created.Equal(created.Meta.Created) || !replaced.Meta.LastModified.After(created.Meta.LastModified) {
		t.Errorf("replace meta: created %v→%v, lastModified %v→%v", created.Meta.Created, replaced.Meta.Created, created.Meta.LastModified, replaced.Meta.LastModified)
	}
	got, _ = s.GetUser(ctx, created.ID)
	if got.Title != "Boss" || len(got.Emails) != 0 || got.Name.FamilyName != "" || got.Name.GivenName != "Johnny" {
		t.Errorf("after replace got title %q emails %v name %+v", got.Title, got.Emails, got.Name)
	}
	if diff := cmp.Diff(replaced, got); diff != "" {
		t.Errorf("GetUser differs from ReplaceUser's result (-replaced +got):\n%s", diff)
	}

	updated, err := s.UpdateUser(ctx, created.ID, 0, func(u *scim.User) error {
		if u.Title != "Boss" || u.Meta == nil {
			return fmt.Errorf("fn saw title %q meta %v", u.Title, u.Meta)
		}
		u.Title = "Chief"
		u.ID = "attempt-to-change-id"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if updated.ID != created.ID || updated.Title != "Chief" || version(t, updated.Meta) != 3 {
		t.Errorf("UpdateUser = id %q title %q version %s", updated.ID, updated.Title, updated.Meta.Version)
	}

	ghost := repl
	ghost.ID = "no-such-user"
	_, err = s.ReplaceUser(ctx, ghost, 0)
	wantErr(t, "ReplaceUser(unknown)", err, store.ErrNotFound)
	_, err = s.UpdateUser(ctx, "no-such-user", 0, func(*scim.User) error { return nil })
	wantErr(t, "UpdateUser(unknown)", err, store.ErrNotFound)
	_, err = s.CreateUser(ctx, scim.User{UserName: "  "})
	wantErr(t, "CreateUser(empty userName)", err, store.ErrInvalid)

	if err := s.DeleteUser(ctx, created.ID, 0); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = s.GetUser(ctx, created.ID)
	wantErr(t, "GetUser(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteUser(deleted)", s.DeleteUser(ctx, created.ID, 0), store.ErrNotFound)
	_, err = s.UserByUserName(ctx, "jdoe")
	wantErr(t, "UserByUserName(deleted)", err, store.ErrNotFound)
	// The name is free again.
	createUser(t, s, scim.User{UserName: "JDoe"})
}

func testUserNameConflict(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := createUser(t, s, scim.User{UserName: "Alice"})
	_, err := s.CreateUser(ctx, scim.User{UserName: "aLICE"})
	wantErr(t, "CreateUser(aLICE)", err, store.ErrConflict)
	bob := createUser(t, s, scim.User{UserName: "bob"})
	bob.UserName = "ALICE"
	_, err = s.ReplaceUser(ctx, bob, 0)
	wantErr(t, "ReplaceUser(bob→ALICE)", err, store.ErrConflict)
	_, err = s.UpdateUser(ctx, bob.ID, 0, func(u *scim.User) error { u.UserName = "alice"; return nil })
	wantErr(t, "UpdateUser(bob→alice)", err, store.ErrConflict)
	got, err := s.GetUser(ctx, bob.ID)
	if err != nil || got.UserName != "bob" || version(t, got.Meta) != 1 {
		t.Errorf("bob after refused renames: %q v%s %v", got.UserName, got.Meta.Version, err)
	}
	// Renaming a user to a case variant of its own name is fine.
	if _, err := s.UpdateUser(ctx, alice.ID, 0, func(u *scim.User) error { u.UserName = "ALICE"; return nil }); err != nil {
		t.Errorf("rename Alice→ALICE: %v", err)
	}
}

func testUserIfMatch(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := createUser(t, s, scim.User{UserName: "etag"})
	u.Meta = nil
	u.Title = "one"
	if _, err := s.ReplaceUser(ctx, u, 1); err != nil {
		t.Fatalf("ReplaceUser(ifMatch 1): %v", err)
	}
	_, err := s.ReplaceUser(ctx, u, 1)
	wantErr(t, "ReplaceUser(stale ifMatch)", err, store.ErrPreconditionFailed)
	_, err = s.UpdateUser(ctx, u.ID, 7, func(*scim.User) error { return nil })
	wantErr(t, "UpdateUser(stale ifMatch)", err, store.ErrPreconditionFailed)
	wantErr(t, "DeleteUser(stale ifMatch)", s.DeleteUser(ctx, u.ID, 1), store.ErrPreconditionFailed)

	boom := errors.New("boom")
	_, err = s.UpdateUser(ctx, u.ID, 2, func(u *scim.User) error { u.Title = "changed"; return boom })
	if err != boom && !errors.Is(err, boom) {
		t.Fatalf("UpdateUser fn error: got %v, want boom", err)
	}
	got, _ := s.GetUser(ctx, u.ID)
	if got.Title != "one" || version(t, got.Meta) != 2 {
		t.Errorf("after aborted update: title %q version %s", got.Title, got.Meta.Version)
	}
	if err := s.DeleteUser(ctx, u.ID, 2); err != nil {
		t.Errorf("DeleteUser(ifMatch 2): %v", err)
	}
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.CreateUser(ctx, scim.User{UserName: []string{"racer", "RACER", "Racer", "rAcEr"}[i%4]})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent create: unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates of the same userName succeeded, want exactly 1", ok)
	}
	p, err := s.ListUsers(ctx, store.Query{Count: 10})
	if err != nil || p.Total != 1 {
		t.Fatalf("after race: %d users, %v", p.Total, err)
	}
}

func memberIDs(ms []scim.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Value
	}
	sort.Strings(out)
	return out
}

func sorted(ss ...string) []string {
	out := slices.Clone(ss)
	sort.Strings(out)
	return out
}

func testGroupCRUD(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := createUser(t, s, scim.User{UserName: "a", DisplayName: "Ann"})
	b := createUser(t, s, scim.User{UserName: "b"})
	g := createGroup(t, s, scim.Group{
		DisplayName: "Physics 101", ExternalID: "crs-1",
		Connect: &scim.ConnectGroup{Kind: scim.KindCourse},
		Members: []scim.Member{{Value: a.ID}, {Value: b.ID}, {Value: a.ID}},
	})
	if g.ID == "" || version(t, g.Meta) != 1 || g.Kind() != scim.KindCourse {
		t.Fatalf("CreateGroup = %+v", g)
	}
	got, err := s.GetGroup(ctx, g.ID, true)
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(sorted(a.ID, b.ID), memberIDs(got.Members)); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	for _, m := range got.Members {
		want := map[string]string{a.ID: "Ann", b.ID: "b"}[m.Value]
		if m.Type != "User" || m.Display != want {
			t.Errorf("member %s: type %q display %q, want User %q", m.Value, m.Type, m.Display, want)
		}
	}
	if got.ExternalID != "crs-1" || got.DisplayName != "Physics 101" {
		t.Errorf("GetGroup = %+v", got)
	}
	noMembers, err := s.GetGroup(ctx, g.ID, false)
	if err != nil || noMembers.Members != nil {
		t.Errorf("GetGroup(members=false) = %v, %v", noMembers.Members, err)
	}

	_, err = s.CreateGroup(ctx, scim.Group{DisplayName: "PHYSICS 101", Connect: &scim.ConnectGroup{Kind: scim.KindCourse}})
	wantErr(t, "CreateGroup(same kind, name case)", err, store.ErrConflict)
	aud := createGroup(t, s, scim.Group{DisplayName: "physics 101", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}})
	plain := createGroup(t, s, scim.Group{DisplayName: "Physics 101"})
	_, err = s.CreateGroup(ctx, scim.Group{DisplayName: "physics 101"})
	wantErr(t, "CreateGroup(no kind, same name)", err, store.ErrConflict)
	_, err = s.CreateGroup(ctx, scim.Group{DisplayName: "x", Members: []scim.Member{{Value: a.ID}, {Value: "nobody"}}})
	wantErr(t, "CreateGroup(unknown member)", err, store.ErrInvalid)
	_, err = s.CreateGroup(ctx, scim.Group{DisplayName: ""})
	wantErr(t, "CreateGroup(no name)", err, store.ErrInvalid)
	if p, _ := s.ListGroups(ctx, store.Query{Count: 10}); p.Total != 3 {
		t.Errorf("%d groups, want 3 (failed creates must leave nothing)", p.Total)
	}

	// Nested group member.
	nested := createGroup(t, s, scim.Group{DisplayName: "Parent", Members: []scim.Member{{Value: aud.ID}, {Value: a.ID}}})
	pg, _ := s.GetGroup(ctx, nested.ID, true)
	for _, m := range pg.Members {
		if m.Value == aud.ID && (m.Type != "Group" || m.Display != "physics 101") {
			t.Errorf("group member = %+v", m)
		}
	}

	rg := got
	rg.Meta = nil
	rg.DisplayName = "Physics 102"
	rg.Members = []scim.Member{{Value: b.ID}}
	replaced, err := s.ReplaceGroup(ctx, rg, 1)
	if err != nil {
		t.Fatalf("ReplaceGroup: %v", err)
	}
	if version(t, replaced.Meta) != 2 || replaced.DisplayName != "Physics 102" {
		t.Errorf("ReplaceGroup = %+v", replaced)
	}
	got, _ = s.GetGroup(ctx, g.ID, true)
	if diff := cmp.Diff([]string{b.ID}, memberIDs(got.Members)); diff != "" {
		t.Errorf("members after replace (-want +got):\n%s", diff)
	}
	_, err = s.ReplaceGroup(ctx, rg, 1)
	wantErr(t, "ReplaceGroup(stale)", err, store.ErrPreconditionFailed)
	rg.DisplayName = "physics 101"
	rg.Connect = &scim.ConnectGroup{Kind: scim.KindAudience}
	_, err = s.ReplaceGroup(ctx, rg, 0)
	wantErr(t, "ReplaceGroup(name taken)", err, store.ErrConflict)
	// Members nil keeps them.
	rg = got
	rg.Meta, rg.Members = nil, nil
	rg.ExternalID = "crs-2"
	if _, err := s.ReplaceGroup(ctx, rg, 0); err != nil {
		t.Fatalf("ReplaceGroup(members nil): %v", err)
	}
	got, _ = s.GetGroup(ctx, g.ID, true)
	if len(got.Members) != 1 || got.ExternalID != "crs-2" {
		t.Errorf("after replace without members: %d members, externalId %q", len(got.Members), got.ExternalID)
	}
	ghost := rg
	ghost.ID = "nope"
	_, err = s.ReplaceGroup(ctx, ghost, 0)
	wantErr(t, "ReplaceGroup(unknown)", err, store.ErrNotFound)

	wantErr(t, "DeleteGroup(stale)", s.DeleteGroup(ctx, g.ID, 1), store.ErrPreconditionFailed)
	if err := s.DeleteGroup(ctx, aud.ID, 0); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	_, err = s.GetGroup(ctx, aud.ID, false)
	wantErr(t, "GetGroup(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteGroup(deleted)", s.DeleteGroup(ctx, aud.ID, 0), store.ErrNotFound)
	pg2, _ := s.GetGroup(ctx, nested.ID, true)
	if diff := cmp.Diff([]string{a.ID}, memberIDs(pg2.Members)); diff != "" {
		t.Errorf("parent members after deleting nested group (-want +got):\n%s", diff)
	}
	if version(t, pg2.Meta) <= version(t, pg.Meta) {
		t.Errorf("parent group version did not change when it lost a member")
	}
	_ = plain
}

func testGroupsOnUsers(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := createUser(t, s, scim.User{UserName: "member"})
	other := createUser(t, s, scim.User{UserName: "other"})
	g1 := createGroup(t, s, scim.Group{DisplayName: "Alpha", Members: []scim.Member{{Value: u.ID}, {Value: other.ID}}})
	g2 := createGroup(t, s, scim.Group{DisplayName: "Beta", Connect: &scim.ConnectGroup{Kind: scim.KindAudience}, Members: []scim.Member{{Value: u.ID}}})
	// Names with the characters a store might use to pack groups into a row.
	g3 := createGroup(t, s, scim.Group{DisplayName: `Delta %2C,%7C|%25% "x" \ ;`, Members: []scim.Member{{Value: u.ID}}})
	g4 := createGroup(t, s, scim.Group{DisplayName: "Gamma, 100% | Team\n\u00e9t\u00e9", Members: []scim.Member{{Value: u.ID}}})
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []scim.GroupRef{{Value: g1.ID, Display: "Alpha", Type: "direct"}, {Value: g2.ID, Display: "Beta", Type: "direct"},
		{Value: g3.ID, Display: g3.DisplayName, Type: "direct"}, {Value: g4.ID, Display: g4.DisplayName, Type: "direct"}}
	sortRefs := func(r []scim.GroupRef) { sort.Slice(r, func(i, j int) bool { return r[i].Display < r[j].Display }) }
	sortRefs(got.Groups)
	if diff := cmp.Diff(want, got.Groups); diff != "" {
		t.Errorf("GetUser groups (-want +got):\n%s", diff)
	}
	byName, _ := s.UserByUserName(ctx, "MEMBER")
	sortRefs(byName.Groups)
	if diff := cmp.Diff(want, byName.Groups); diff != "" {
		t.Errorf("UserByUserName groups (-want +got):\n%s", diff)
	}
	p, err := s.ListUsers(ctx, store.Query{Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, lu := range p.Items {
		sortRefs(lu.Groups)
		w := want
		if lu.ID == other.ID {
			w = want[:1]
		}
		if diff := cmp.Diff(w, lu.Groups); diff != "" {
			t.Errorf("ListUsers groups of %s (-want +got):\n%s", lu.UserName, diff)
		}
	}

	if err := s.DeleteUser(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	after, _ := s.GetGroup(ctx, g1.ID, true)
	if diff := cmp.Diff([]string{other.ID}, memberIDs(after.Members)); diff != "" {
		t.Errorf("members after deleting a member (-want +got):\n%s", diff)
	}
	if version(t, after.Meta) != 2 {
		t.Errorf("group version after losing a member = %s, want 2", after.Meta.Version)
	}
	if st, _ := s.Stats(ctx); st.Members != 1 {
		t.Errorf("memberships after delete = %d, want 1", st.Members)
	}
	if err := s.DeleteGroup(ctx, g1.ID, 0); err != nil {
		t.Fatal(err)
	}
	o, _ := s.GetUser(ctx, other.ID)
	if len(o.Groups) != 0 {
		t.Errorf("user still lists deleted group: %v", o.Groups)
	}
}
