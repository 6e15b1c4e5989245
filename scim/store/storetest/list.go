package storetest

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
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
