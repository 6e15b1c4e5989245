package storetest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

func inOrder(p store.Page[scim.User]) []string {
	out := make([]string, 0, len(p.Items))
	for _, u := range p.Items {
		out = append(out, u.UserName)
	}
	return out
}

func testSort(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	mk := func(name, family, email string) {
		u := scim.User{UserName: name}
		if family != "" {
			u.Name = &scim.Name{FamilyName: family}
		}
		if email != "" {
			u.Emails = []scim.MultiValue{{Value: "zz-other@x", Type: "home"}, {Value: email, Type: "work", Primary: true}}
		}
		createUser(t, s, u)
	}
	mk("Charlie", "b", "a@x")
	mk("alpha", "", "c@x")
	mk("Bravo", "C", "")
	mk("delta", "a", "B@x")
	tests := []struct {
		name string
		path string
		desc bool
		want []string
	}{
		{"default is creation order", "", false, []string{"Charlie", "alpha", "Bravo", "delta"}},
		{"userName ascending, case-insensitive", "userName", false, []string{"alpha", "Bravo", "Charlie", "delta"}},
		{"userName descending", "userName", true, []string{"delta", "Charlie", "Bravo", "alpha"}},
		{"familyName ascending, unassigned last", "name.familyName", false, []string{"delta", "Charlie", "Bravo", "alpha"}},
		{"familyName descending, unassigned last", "name.familyName", true, []string{"Bravo", "Charlie", "delta", "alpha"}},
		{"emails by primary value", "emails", false, []string{"Charlie", "delta", "alpha", "Bravo"}},
		{"meta.created descending", "meta.created", true, []string{"delta", "Bravo", "alpha", "Charlie"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := store.Query{Count: 10, Descending: tt.desc}
			if tt.path != "" {
				q.SortBy = path(t, scim.UserResourceType, tt.path)
			}
			p, err := s.ListUsers(ctx, q)
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			if diff := cmp.Diff(tt.want, inOrder(p)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// testSortMultiValued sorts by multi-valued attributes without a primary
// (RFC 7644 §3.4.2.3: the first value as listed) and refuses the ones whose
// values have no meaningful order with ErrInvalid.
func testSortMultiValued(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alpha := createUser(t, s, scim.User{UserName: "alpha"})
	bravo := createUser(t, s, scim.User{UserName: "bravo", DisplayName: "Aaron"})
	charlie := createUser(t, s, scim.User{UserName: "charlie"})
	createUser(t, s, scim.User{UserName: "delta"}) // in no group
	// Created first, so listed first on bravo although "Zeta" sorts last.
	zeta := createGroup(t, s, scim.Group{DisplayName: "Zeta", Members: []scim.Member{{Value: bravo.ID}}})
	ga := createGroup(t, s, scim.Group{DisplayName: "alpha team", Members: []scim.Member{{Value: alpha.ID}, {Value: bravo.ID}, {Value: charlie.ID}}})
	createGroup(t, s, scim.Group{DisplayName: "Mid", Members: []scim.Member{{Value: charlie.ID}}})
	empty := createGroup(t, s, scim.Group{DisplayName: "Empty"})

	got, err := s.GetUser(ctx, bravo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Groups) != 2 || got.Groups[0].Value != zeta.ID {
		t.Fatalf("bravo's groups %+v, want Zeta listed first", got.Groups)
	}

	// "groups" sorts by the value (id) of each user's first group.
	firstGroup := map[string]string{"alpha": ga.ID, "bravo": zeta.ID, "charlie": ga.ID}
	byGroupID := []string{"alpha", "bravo", "charlie"}
	sort.SliceStable(byGroupID, func(i, j int) bool {
		return strings.ToLower(firstGroup[byGroupID[i]]) < strings.ToLower(firstGroup[byGroupID[j]])
	})
	// Descending is the exact reverse (ties too), unassigned values still last.
	byGroupIDDesc := slices.Clone(byGroupID)
	slices.Reverse(byGroupIDDesc)
	users := []struct {
		name string
		path string
		desc bool
		want []string
	}{
		{"groups by first group id", "groups", false, append(byGroupID, "delta")},
		{"groups descending, none last", "groups", true, append(byGroupIDDesc, "delta")},
		{"groups.value", "groups.value", false, append(slices.Clone(byGroupID), "delta")},
		{"groups.display, ties in creation order", "groups.display", false, []string{"alpha", "charlie", "bravo", "delta"}},
		{"groups.display descending", "groups.display", true, []string{"bravo", "charlie", "alpha", "delta"}},
	}
	for _, tt := range users {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.ListUsers(ctx, store.Query{Count: 10, SortBy: path(t, scim.UserResourceType, tt.path), Descending: tt.desc})
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			if diff := cmp.Diff(tt.want, inOrder(p)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("cursor paging by groups.display", func(t *testing.T) {
		q := store.Query{Count: 1, UseCursor: true, SortBy: path(t, scim.UserResourceType, "groups.display")}
		var order []string
		for range 10 {
			p, err := s.ListUsers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			order = append(order, inOrder(p)...)
			if p.NextCursor == "" {
				break
			}
			q.Cursor = p.NextCursor
		}
		if diff := cmp.Diff([]string{"alpha", "charlie", "bravo", "delta"}, order); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})

	// Groups sort by their first member as listed (members are listed by value).
	firstMember := func(ids ...string) string { return slices.Min(ids) }
	groupFirst := map[string]string{
		"Zeta":       firstMember(bravo.ID),
		"alpha team": firstMember(alpha.ID, bravo.ID, charlie.ID),
		"Mid":        firstMember(charlie.ID),
	}
	byMember := []string{"Zeta", "alpha team", "Mid"}
	sort.SliceStable(byMember, func(i, j int) bool { return groupFirst[byMember[i]] < groupFirst[byMember[j]] })
	display := map[string]string{alpha.ID: "alpha", bravo.ID: "aaron", charlie.ID: "charlie"}
	byDisplay := []string{"Zeta", "alpha team", "Mid"}
	sort.SliceStable(byDisplay, func(i, j int) bool {
		return display[groupFirst[byDisplay[i]]] < display[groupFirst[byDisplay[j]]]
	})
	groups := []struct {
		path string
		want []string
	}{
		{"members", append(byMember, empty.DisplayName)},
		{"members.value", append(slices.Clone(byMember), empty.DisplayName)},
		{"members.display", append(byDisplay, empty.DisplayName)},
		{"members.type", []string{"Zeta", "alpha team", "Mid", "Empty"}},
	}
	for _, tt := range groups {
		t.Run("groups by "+tt.path, func(t *testing.T) {
			p, err := s.ListGroups(ctx, store.Query{Count: 10, SortBy: path(t, scim.GroupResourceType, tt.path)})
			if err != nil {
				t.Fatalf("ListGroups: %v", err)
			}
			var names []string
			for _, g := range p.Items {
				names = append(names, g.DisplayName)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}

	refused := []struct {
		rt   *scim.ResourceType
		path string
	}{
		{scim.UserResourceType, "groups.$ref"},
		{scim.UserResourceType, "groups.type"},
		{scim.UserResourceType, "addresses"},
		{scim.UserResourceType, "name"},
		{scim.UserResourceType, "meta"},
		{scim.GroupResourceType, "members.$ref"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.path, func(t *testing.T) {
			q := store.Query{Count: 10, SortBy: path(t, tt.rt, tt.path)}
			var err error
			if tt.rt == scim.GroupResourceType {
				_, err = s.ListGroups(ctx, q)
			} else {
				_, err = s.ListUsers(ctx, q)
			}
			wantErr(t, "sort by "+tt.path, err, store.ErrInvalid)
		})
	}
}

// testUniqueFilterTotals: a filter on a unique attribute reports the right
// total however the page is asked for (the store may skip its COUNT for it).
func testUniqueFilterTotals(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := createUser(t, s, scim.User{UserName: "Alice"})
	createUser(t, s, scim.User{UserName: "bob", Title: "x"})
	parse := func(text string) filter.Expr {
		e, err := filter.Parse(scim.UserResourceType, text, filter.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, tt := range []struct {
		name   string
		q      store.Query
		total  int
		want   []string
		cursor bool
	}{
		{"userName eq, other case", store.Query{Filter: parse(`userName eq "ALICE"`), Count: 10}, 1, []string{"Alice"}, false},
		{"no match", store.Query{Filter: parse(`userName eq "carol"`), Count: 10}, 0, []string{}, false},
		{"past the match", store.Query{Filter: parse(`userName eq "alice"`), Count: 10, StartIndex: 2}, 1, []string{}, false},
		{"count 0", store.Query{Filter: parse(`userName eq "alice"`), Count: 0}, 1, []string{}, false},
		{"id eq", store.Query{Filter: parse(`id eq "` + alice.ID + `"`), Count: 10}, 1, []string{"Alice"}, false},
		{"and with a unique equality", store.Query{Filter: parse(`userName eq "bob" and title eq "y"`), Count: 10}, 0, []string{}, false},
		{"cursor", store.Query{Filter: parse(`userName eq "bob"`), Count: 10, UseCursor: true}, 1, []string{"bob"}, true},
		{"or is not unique", store.Query{Filter: parse(`userName eq "bob" or userName eq "alice"`), Count: 1}, 2, []string{"Alice"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.ListUsers(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != tt.total {
				t.Errorf("Total %d, want %d", p.Total, tt.total)
			}
			if diff := cmp.Diff(tt.want, inOrder(p)); diff != "" {
				t.Errorf("users (-want +got):\n%s", diff)
			}
			if tt.cursor && p.NextCursor != "" {
				t.Errorf("next cursor %q after the only match", p.NextCursor)
			}
		})
	}
}

// testIndexPagingEverywhere: every startIndex page, in every order, is the
// matching slice of the whole listing — from the near end and from the far
// end (past the middle the store may read pages backwards), with unassigned
// sort keys, ties and a filter.
func testIndexPagingEverywhere(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var us []scim.User
	for i := range 41 {
		u := scim.User{UserName: fmt.Sprintf("page%02d", (i*17)%41)}
		if i%4 != 0 {
			u.Name = &scim.Name{FamilyName: fmt.Sprintf("F%d", i%5)} // ties
		}
		if i%3 == 0 {
			u.Title = "t"
		}
		us = append(us, u)
	}
	batchCreate(t, s, us)
	titled, err := filter.Parse(scim.UserResourceType, `title pr`, filter.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []struct {
		name   string
		path   string
		desc   bool
		filter filter.Expr
	}{
		{"default", "", false, nil},
		{"userName descending", "userName", true, nil},
		{"familyName with unassigned and ties", "name.familyName", false, nil},
		{"familyName descending", "name.familyName", true, nil},
		{"filtered, familyName", "name.familyName", false, titled},
		{"filtered, default order", "", false, titled},
	} {
		t.Run(sc.name, func(t *testing.T) {
			q := store.Query{Count: 1000, Descending: sc.desc, Filter: sc.filter}
			if sc.path != "" {
				q.SortBy = path(t, scim.UserResourceType, sc.path)
			}
			full, err := s.ListUsers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			ref := inOrder(full)
			for _, count := range []int{1, 7} {
				for start := 1; start <= len(ref)+2; start++ {
					q.StartIndex, q.Count = start, count
					p, err := s.ListUsers(ctx, q)
					if err != nil {
						t.Fatalf("startIndex %d: %v", start, err)
					}
					want := ref[min(start-1, len(ref)):min(start-1+count, len(ref))]
					if diff := cmp.Diff(want, inOrder(p)); diff != "" || p.Total != len(ref) {
						t.Fatalf("startIndex %d count %d: total %d (want %d), page (-want +got):\n%s", start, count, p.Total, len(ref), diff)
					}
				}
			}
		})
	}
}

func testIndexPaging(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var us []scim.User
	for i := range 25 {
		us = append(us, scim.User{UserName: fmt.Sprintf("user%02d", i)})
	}
	batchCreate(t, s, us)
	by := path(t, scim.UserResourceType, "userName")
	p, err := s.ListUsers(ctx, store.Query{SortBy: by, StartIndex: 11, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"user10", "user11", "user12", "user13", "user14"}, inOrder(p)); diff != "" {
		t.Errorf("page (-want +got):\n%s", diff)
	}
	if p.Total != 25 || p.NextCursor != "" {
		t.Errorf("Total %d NextCursor %q", p.Total, p.NextCursor)
	}
	p, _ = s.ListUsers(ctx, store.Query{SortBy: by, StartIndex: 24, Count: 5})
	if diff := cmp.Diff([]string{"user23", "user24"}, inOrder(p)); diff != "" {
		t.Errorf("last page (-want +got):\n%s", diff)
	}
	p, _ = s.ListUsers(ctx, store.Query{StartIndex: 100, Count: 5})
	if len(p.Items) != 0 || p.Total != 25 {
		t.Errorf("past the end: %d items, total %d", len(p.Items), p.Total)
	}
	p, _ = s.ListUsers(ctx, store.Query{Count: 0})
	if len(p.Items) != 0 || p.Total != 25 {
		t.Errorf("count 0: %d items, total %d", len(p.Items), p.Total)
	}
	p, _ = s.ListUsers(ctx, store.Query{StartIndex: 0, Count: 3})
	if len(p.Items) != 3 || p.Items[0].UserName != "user00" {
		t.Errorf("startIndex 0 treated as 1: got %v", inOrder(p))
	}
}

func testCursorPaging(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var us []scim.User
	for i := range 250 {
		u := scim.User{UserName: fmt.Sprintf("cursor%03d", (i*7919)%250)}
		if i%3 != 0 {
			u.Name = &scim.Name{FamilyName: fmt.Sprintf("F%02d", i%20)}
		}
		us = append(us, u)
	}
	batchCreate(t, s, us)
	sorts := []struct {
		name string
		path string
		desc bool
	}{
		{"default", "", false},
		{"userName", "userName", false},
		{"familyName with unassigned and ties", "name.familyName", false},
		{"familyName descending", "name.familyName", true},
		{"lastModified descending", "meta.lastModified", true},
	}
	for _, sc := range sorts {
		t.Run(sc.name, func(t *testing.T) {
			q := store.Query{Count: 37, UseCursor: true, Descending: sc.desc}
			if sc.path != "" {
				q.SortBy = path(t, scim.UserResourceType, sc.path)
			}
			full := q
			full.UseCursor, full.Count = false, 1000
			ref, err := s.ListUsers(ctx, full)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			var order []string
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("cursor paging does not end")
				}
				p, err := s.ListUsers(ctx, q)
				if err != nil {
					t.Fatalf("page %d: %v", pages, err)
				}
				if p.Total != 250 {
					t.Fatalf("page %d: Total %d, want 250", pages, p.Total)
				}
				for _, u := range p.Items {
					seen[u.ID]++
					order = append(order, u.UserName)
				}
				if p.NextCursor == "" {
					if len(p.Items) == 0 && pages > 0 {
						t.Errorf("empty last page")
					}
					break
				}
				if len(p.Items) != 37 {
					t.Fatalf("page %d has %d items and a next cursor", pages, len(p.Items))
				}
				q.Cursor = p.NextCursor
			}
			if len(seen) != 250 {
				t.Errorf("saw %d distinct users, want 250", len(seen))
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("user %s seen %d times", id, n)
				}
			}
			if diff := cmp.Diff(inOrder(ref), order); diff != "" {
				t.Errorf("cursor order differs from index order (-index +cursor):\n%s", diff)
			}
		})
	}

	first, err := s.ListUsers(ctx, store.Query{Count: 10, UseCursor: true})
	if err != nil || first.NextCursor == "" {
		t.Fatalf("first page: %v", err)
	}
	for _, bad := range []string{"garbage!", "e30", first.NextCursor + "x", first.NextCursor[:len(first.NextCursor)-2]} {
		_, err := s.ListUsers(ctx, store.Query{Count: 10, UseCursor: true, Cursor: bad})
		wantErr(t, "ListUsers(cursor "+bad+")", err, store.ErrInvalid)
	}
	_, err = s.ListUsers(ctx, store.Query{Count: 10, UseCursor: true, Cursor: first.NextCursor, SortBy: path(t, scim.UserResourceType, "userName")})
	wantErr(t, "ListUsers(cursor of another order)", err, store.ErrInvalid)

	// Groups page by cursor too.
	for i := range 12 {
		createGroup(t, s, scim.Group{DisplayName: fmt.Sprintf("g%02d", i)})
	}
	q := store.Query{Count: 5, UseCursor: true, SortBy: path(t, scim.GroupResourceType, "displayName"), Descending: true}
	var names []string
	for {
		p, err := s.ListGroups(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Items {
			names = append(names, g.DisplayName)
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if len(names) != 12 || names[0] != "g11" || names[11] != "g00" {
		t.Errorf("group cursor paging: %v", names)
	}
}

// testListByIDs checks Query.IDs: the listing holds exactly the resources
// named (unknown and repeated ids are harmless), in the usual order, with
// groups filled, a true total, the scope applied, and a bound on the ids.
func testListByIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var us []scim.User
	for i := range 5 {
		us = append(us, createUser(t, s, scim.User{UserName: fmt.Sprintf("byid-%d", i)}))
	}
	g := kindGroup(t, s, "ById", scim.KindAudience, us[1].ID, us[3].ID)
	other := createGroup(t, s, scim.Group{DisplayName: "Other"})

	ids := []string{us[3].ID, us[1].ID, "no-such-id", us[3].ID, g.ID}
	p, err := s.ListUsers(ctx, store.Query{IDs: ids, StartIndex: 1, Count: len(ids)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"byid-1", "byid-3"}, userNames(p)); diff != "" || p.Total != 2 {
		t.Fatalf("ListUsers by ids: total %d, (-want +got):\n%s", p.Total, diff)
	}
	for _, u := range p.Items {
		if len(u.Groups) != 1 || u.Groups[0].Value != g.ID || u.Groups[0].Display != "ById" {
			t.Errorf("%s groups = %v, want [ById]", u.UserName, u.Groups)
		}
		if u.Meta == nil || u.Meta.Version == "" {
			t.Errorf("%s has no meta: %+v", u.UserName, u.Meta)
		}
	}
	// A page smaller than the list still reports every match.
	p, err = s.ListUsers(ctx, store.Query{IDs: ids, StartIndex: 1, Count: 1})
	if err != nil || p.Total != 2 || len(p.Items) != 1 || p.Items[0].UserName != "byid-1" {
		t.Fatalf("ListUsers by ids, count 1: total %d, %v, %v", p.Total, userNames(p), err)
	}
	// With a filter too, both apply.
	f := mustParse(t, scim.UserResourceType, `userName eq "byid-3"`)
	if p, err = s.ListUsers(ctx, store.Query{IDs: ids, Filter: f, StartIndex: 1, Count: 10}); err != nil || p.Total != 1 || len(p.Items) != 1 {
		t.Fatalf("ListUsers by ids and filter: total %d, %v, %v", p.Total, userNames(p), err)
	}
	// Non-nil and empty: nothing (nil would mean every user).
	if p, err = s.ListUsers(ctx, store.Query{IDs: []string{}, StartIndex: 1, Count: 10}); err != nil || p.Total != 0 || len(p.Items) != 0 {
		t.Fatalf("ListUsers by no ids: total %d, %v, %v", p.Total, userNames(p), err)
	}

	gp, err := s.ListGroups(ctx, store.Query{IDs: []string{other.ID, us[0].ID, g.ID}, StartIndex: 1, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if gp.Total != 2 || len(gp.Items) != 2 || gp.Items[0].ID != g.ID || gp.Items[1].ID != other.ID || gp.Items[0].Members != nil {
		t.Fatalf("ListGroups by ids = total %d, %+v", gp.Total, gp.Items)
	}
	gp, err = s.ListGroups(ctx, store.Query{IDs: []string{g.ID}, StartIndex: 1, Count: 10, Members: true})
	if err != nil || len(gp.Items) != 1 || len(gp.Items[0].Members) != 2 {
		t.Fatalf("ListGroups by ids with members = %+v, %v", gp.Items, err)
	}

	// Inside a client's scope: only its audience's members, only its groups.
	cs := clientsOf(t, s)
	c, err := cs.CreateClient(ctx, store.Client{Name: "ByIds", URL: "https://byids.example/", RestrictAudience: g.ID, Groups: []string{g.ID}}, bridgeToken("byids"))
	if err != nil {
		t.Fatal(err)
	}
	sc := &store.Scope{ClientID: c.ID, RestrictAudience: g.ID, Version: c.ScopeVersion}
	all := []string{us[0].ID, us[1].ID, us[2].ID, us[3].ID}
	if p, err = s.ListUsers(ctx, store.Query{IDs: all, StartIndex: 1, Count: 10, Scope: sc}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"byid-1", "byid-3"}, userNames(p)); diff != "" || p.Total != 2 {
		t.Fatalf("scoped ListUsers by ids: total %d, (-want +got):\n%s", p.Total, diff)
	}
	if gp, err = s.ListGroups(ctx, store.Query{IDs: []string{other.ID, g.ID}, StartIndex: 1, Count: 10, Scope: sc}); err != nil || len(gp.Items) != 1 || gp.Items[0].ID != g.ID {
		t.Fatalf("scoped ListGroups by ids = %+v, %v", gp.Items, err)
	}

	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("id-%d", i)
	}
	_, err = s.ListUsers(ctx, store.Query{IDs: many, StartIndex: 1, Count: 1000})
	wantErr(t, "ListUsers with 1,001 ids", err, store.ErrInvalid)
}

// testDeepIndexPaging: index pages deeper than a few thousand rows — which a
// store may start from per-block row counts rather than by skipping rows —
// are exactly the matching slice of the listing at the time of each request
// (RFC 7644 §3.4.2.4), in the default order (creation order) and with a
// filter, while users are deleted and created between pages: the total, the
// pages around every few-thousand boundary, the last partial page, pages
// past the end, and the far side of the listing. The reference is kept by
// the test, not read from the store.
func testDeepIndexPaging(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	type entry struct {
		id     string
		titled bool
	}
	var ref []entry
	made := 0
	create := func(n int) {
		t.Helper()
		us := make([]scim.User, n)
		for i := range us {
			us[i] = scim.User{UserName: fmt.Sprintf("deep%05d", made)}
			if made%3 == 0 {
				us[i].Title = "t"
			}
			made++
		}
		for _, u := range batchCreate(t, s, us) {
			ref = append(ref, entry{u.ID, u.Title != ""})
		}
	}
	// del deletes the users at ref positions [lo, hi) with the given stride.
	del := func(lo, hi, stride int) {
		t.Helper()
		var keep []entry
		for i, e := range ref {
			if i >= lo && i < hi && (i-lo)%stride == 0 {
				if err := s.DeleteUser(ctx, e.id, 0); err != nil {
					t.Fatalf("DeleteUser: %v", err)
				}
				continue
			}
			keep = append(keep, e)
		}
		ref = keep
	}
	titled := mustParse(t, scim.UserResourceType, `title pr`)
	check := func(step string, f filter.Expr, start, count int) {
		t.Helper()
		var want []string
		for _, e := range ref {
			if f == nil || e.titled {
				want = append(want, e.id)
			}
		}
		p, err := s.ListUsers(ctx, store.Query{Filter: f, StartIndex: start, Count: count})
		if err != nil {
			t.Fatalf("%s: startIndex %d count %d: %v", step, start, count, err)
		}
		got := make([]string, 0, len(p.Items))
		for _, u := range p.Items {
			got = append(got, u.ID)
		}
		w := want[min(start-1, len(want)):min(start-1+count, len(want))]
		if p.Total != len(want) || !slices.Equal(w, got) {
			t.Fatalf("%s (filter %v): startIndex %d count %d: total %d (want %d), %d items, first %v (want %d, first %v)",
				step, f != nil, start, count, p.Total, len(want), len(got), got[:min(1, len(got))], len(w), w[:min(1, len(w))])
		}
	}
	checkAll := func(step string) {
		t.Helper()
		n := len(ref)
		for _, start := range []int{1, 2, 4095, 4096, 4097, 4098, 4200, 6000, n / 2, 8191, 8192, 8193, 8194, n - 100, n - 6, n - 1, n, n + 1, n + 4097} {
			if start < 1 {
				continue
			}
			for _, count := range []int{100, 7, 1} {
				check(step, nil, start, count)
			}
			check(step, titled, start/3+1, 100)
		}
	}

	create(8300)
	checkAll("created")
	// Deletions before, across and after the first few-thousand boundaries,
	// and new users at the end.
	del(0, 20, 1)
	del(4000, 4200, 2)
	del(6000, 7000, 20)
	create(300)
	checkAll("deleted and created")
	// A walk deep into the listing while the listing changes between pages:
	// each next page is the slice at its startIndex of the listing as it is
	// then (rows before the position shift the page, as RFC 7644 index
	// paging does).
	for start := 4001; start < 4001+20*97; start += 97 {
		check("walk", nil, start, 97)
		del(start-500, start-499, 1)
		del(start+300, start+301, 1)
		create(1)
	}
	// The tail goes (the last few hundred pks wholly deleted), then new users.
	del(7900, len(ref), 1)
	checkAll("tail deleted")
	create(100)
	checkAll("tail recreated")
}
