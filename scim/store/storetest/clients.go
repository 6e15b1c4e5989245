package storetest

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// clientsOf returns the Clients ability of s, skipping backends without it.
func clientsOf(t *testing.T, s store.Store) store.Clients {
	t.Helper()
	c, ok := s.(store.Clients)
	if !ok {
		t.Skip("the store has no client registry (store.Clients)")
	}
	return c
}

func kindGroup(t testing.TB, s store.Store, name, kind string, members ...string) scim.Group {
	t.Helper()
	g := scim.Group{DisplayName: name}
	if kind != "" {
		g.Connect = &scim.ConnectGroup{Kind: kind}
	}
	for _, m := range members {
		g.Members = append(g.Members, scim.Member{Value: m})
	}
	g.SetSchemas()
	return createGroup(t, s, g)
}

func bridgeToken(name string) store.Token {
	h := sha256.Sum256([]byte("secret of " + name))
	return store.Token{Name: name, Hash: h[:]}
}

func testClients(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	cs := clientsOf(t, s)
	aud := kindGroup(t, s, "Staff", "audience")
	course := kindGroup(t, s, "Safety 101", "course")
	plain := kindGroup(t, s, "Plain", "")

	in := store.Client{Name: "Site A", URL: "https://a.example/", EntityID: "https://a.example/saml",
		RestrictAudience: aud.ID, Groups: []string{course.ID, aud.ID, course.ID}, Comment: "first"}
	c, err := cs.CreateClient(ctx, in, bridgeToken("bridge-a"))
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if c.ID == "" || c.ScopeVersion != 1 || c.Created.IsZero() || !slices.Equal(c.Groups, []string{course.ID, aud.ID}) {
		t.Fatalf("CreateClient = %+v", c)
	}
	tok, err := s.TokenByHash(ctx, bridgeToken("bridge-a").Hash)
	if err != nil || tok.ClientID != c.ID || !tok.ReadOnly {
		t.Fatalf("the client's token = %+v, %v; want read-only with ClientID %s", tok, err, c.ID)
	}
	got, err := cs.GetClient(ctx, c.ID)
	if err != nil || got.Name != "Site A" || got.RestrictAudience != aud.ID || !slices.Equal(got.Groups, c.Groups) || got.Comment != "first" {
		t.Fatalf("GetClient = %+v, %v", got, err)
	}
	if got, err := cs.ClientByURL(ctx, "https://a.example/"); err != nil || got.ID != c.ID {
		t.Fatalf("ClientByURL = %+v, %v", got, err)
	}
	_, err = cs.GetClient(ctx, "no-such-client")
	wantErr(t, "GetClient(unknown)", err, store.ErrNotFound)

	// Refusals change nothing: no client and no token are left behind.
	bad := []struct {
		name string
		c    store.Client
		tok  store.Token
		want error
	}{
		{"duplicate URL", store.Client{Name: "Other", URL: "https://a.example/"}, bridgeToken("dup-url"), store.ErrConflict},
		{"duplicate name", store.Client{Name: "site a", URL: "https://b.example/"}, bridgeToken("dup-name"), store.ErrConflict},
		{"plain group", store.Client{Name: "B", URL: "https://b.example/", Groups: []string{plain.ID}}, bridgeToken("plain"), store.ErrInvalid},
		{"unknown group", store.Client{Name: "B", URL: "https://b.example/", Groups: []string{"nope"}}, bridgeToken("unknown"), store.ErrInvalid},
		{"course as restrict audience", store.Client{Name: "B", URL: "https://b.example/", RestrictAudience: course.ID}, bridgeToken("restrict"), store.ErrInvalid},
		{"no URL", store.Client{Name: "B"}, bridgeToken("nourl"), store.ErrInvalid},
		{"token name taken", store.Client{Name: "B", URL: "https://b.example/"}, store.Token{Name: "bridge-a", Hash: bridgeToken("x").Hash}, store.ErrConflict},
	}
	for _, tt := range bad {
		_, err := cs.CreateClient(ctx, tt.c, tt.tok)
		wantErr(t, "CreateClient("+tt.name+")", err, tt.want)
		if _, err := s.TokenByHash(ctx, tt.tok.Hash); err == nil {
			t.Fatalf("CreateClient(%s) failed but left its token behind", tt.name)
		}
	}
	if all, err := cs.ListClients(ctx); err != nil || len(all) != 1 {
		t.Fatalf("ListClients after refusals = %d clients, %v; want 1", len(all), err)
	}

	// A comment edit keeps the scope version; a scope edit bumps it.
	up, err := cs.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Comment = "second"; return nil })
	if err != nil || up.ScopeVersion != 1 || up.Comment != "second" {
		t.Fatalf("UpdateClient(comment) = %+v, %v", up, err)
	}
	up, err = cs.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Groups = []string{aud.ID}; return nil })
	if err != nil || up.ScopeVersion != 2 || !slices.Equal(up.Groups, []string{aud.ID}) {
		t.Fatalf("UpdateClient(groups) = %+v, %v", up, err)
	}
	_, err = cs.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.Groups = []string{plain.ID}; return nil })
	wantErr(t, "UpdateClient(plain group)", err, store.ErrInvalid)
	if got, _ := cs.GetClient(ctx, c.ID); !slices.Equal(got.Groups, []string{aud.ID}) || got.ScopeVersion != 2 {
		t.Fatalf("a refused update changed the client: %+v", got)
	}

	// Add-new options: a new audience or course joins the synced groups.
	up, err = cs.UpdateClient(ctx, c.ID, func(c *store.Client) error { c.AddNewAudiences = true; return nil })
	if err != nil || !up.AddNewAudiences || up.AddNewCourses {
		t.Fatalf("UpdateClient(add new audiences) = %+v, %v", up, err)
	}
	newAud := kindGroup(t, s, "New audience", "audience")
	newCourse := kindGroup(t, s, "New course", "course")
	got, _ = cs.GetClient(ctx, c.ID)
	if !slices.Equal(got.Groups, []string{aud.ID, newAud.ID}) {
		t.Fatalf("after a new audience and course the synced groups are %v; want [%s %s]", got.Groups, aud.ID, newAud.ID)
	}
	_ = newCourse

	// A deleted group leaves the list but stays known to ScopeGroups.
	if err := s.DeleteGroup(ctx, newAud.ID, 0); err != nil {
		t.Fatal(err)
	}
	got, _ = cs.GetClient(ctx, c.ID)
	if !slices.Equal(got.Groups, []string{aud.ID}) {
		t.Fatalf("after deleting a synced group: %v", got.Groups)
	}
	sg, err := cs.ScopeGroups(ctx, store.Scope{ClientID: c.ID}, []string{newAud.ID, newCourse.ID, aud.ID})
	if err != nil || !sg[newAud.ID] || sg[newCourse.ID] || !sg[aud.ID] {
		t.Fatalf("ScopeGroups = %v, %v", sg, err)
	}

	// Token rotation revokes the old token.
	nt, err := cs.ReplaceClientToken(ctx, c.ID, bridgeToken("bridge-a-2"))
	if err != nil || nt.ClientID != c.ID {
		t.Fatalf("ReplaceClientToken = %+v, %v", nt, err)
	}
	if tok, err := s.TokenByHash(ctx, bridgeToken("bridge-a").Hash); err == nil && !tok.Revoked {
		t.Fatalf("the old client token still works after ReplaceClientToken")
	}
	_, err = cs.ReplaceClientToken(ctx, "nope", bridgeToken("x2"))
	wantErr(t, "ReplaceClientToken(unknown)", err, store.ErrNotFound)

	if err := cs.DeleteClient(ctx, c.ID); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	if tok, err := s.TokenByHash(ctx, bridgeToken("bridge-a-2").Hash); err == nil && !tok.Revoked {
		t.Fatalf("the client's token still works after DeleteClient")
	}
	_, err = cs.GetClient(ctx, c.ID)
	wantErr(t, "GetClient(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteClient(again)", cs.DeleteClient(ctx, c.ID), store.ErrNotFound)
}

func testClientScope(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	cs := clientsOf(t, s)
	u1 := createUser(t, s, scim.User{UserName: "scope-in-1"})
	u2 := createUser(t, s, scim.User{UserName: "scope-in-2"})
	u3 := createUser(t, s, scim.User{UserName: "scope-out"})
	aud := kindGroup(t, s, "Restricted", "audience", u1.ID, u2.ID)
	course := kindGroup(t, s, "Course", "course", u1.ID, u3.ID)
	hidden := kindGroup(t, s, "Hidden", "audience", u1.ID, u3.ID)
	c, err := cs.CreateClient(ctx, store.Client{Name: "Scoped", URL: "https://scoped.example/", RestrictAudience: aud.ID,
		Groups: []string{aud.ID, course.ID}}, bridgeToken("scoped"))
	if err != nil {
		t.Fatal(err)
	}
	sc := &store.Scope{ClientID: c.ID, RestrictAudience: aud.ID, Version: c.ScopeVersion}

	users, err := s.ListUsers(ctx, store.Query{Count: 10, StartIndex: 1, Scope: sc})
	if err != nil {
		t.Fatal(err)
	}
	if users.Total != 2 || len(users.Items) != 2 {
		t.Fatalf("scoped ListUsers: total %d, %d items; want the 2 audience members", users.Total, len(users.Items))
	}
	for _, u := range users.Items {
		for _, g := range u.Groups {
			if g.Value == hidden.ID {
				t.Fatalf("user %s shows the unsynced group %q in scope", u.UserName, g.Display)
			}
		}
		if u.ID == u1.ID && len(u.Groups) != 2 {
			t.Fatalf("u1's groups in scope = %v; want the audience and the course", u.Groups)
		}
	}
	// A filter cannot reach outside the scope.
	f := mustParse(t, scim.UserResourceType, `userName eq "scope-out"`)
	if p, err := s.ListUsers(ctx, store.Query{Filter: f, Count: 10, StartIndex: 1, Scope: sc}); err != nil || p.Total != 0 {
		t.Fatalf("scoped filter for an outside user: total %d, %v", p.Total, err)
	}
	f = mustParse(t, scim.UserResourceType, `userName sw "scope-"`)
	if p, err := s.ListUsers(ctx, store.Query{Filter: f, Count: 10, StartIndex: 1, Scope: sc}); err != nil || p.Total != 2 {
		t.Fatalf("scoped sw filter: total %d, %v; want 2", p.Total, err)
	}
	// Cursor paging stays inside too.
	p1, err := s.ListUsers(ctx, store.Query{Count: 1, UseCursor: true, Scope: sc})
	if err != nil || len(p1.Items) != 1 || p1.NextCursor == "" {
		t.Fatalf("scoped cursor page 1 = %+v, %v", p1, err)
	}
	p2, err := s.ListUsers(ctx, store.Query{Count: 1, UseCursor: true, Cursor: p1.NextCursor, Scope: sc})
	if err != nil || len(p2.Items) != 1 || p2.NextCursor != "" || p2.Items[0].ID == u3.ID {
		t.Fatalf("scoped cursor page 2 = %+v, %v", p2, err)
	}

	groups, err := s.ListGroups(ctx, store.Query{Count: 10, StartIndex: 1, Members: true, Scope: sc})
	if err != nil {
		t.Fatal(err)
	}
	if groups.Total != 2 {
		t.Fatalf("scoped ListGroups total %d; want 2 (the synced groups)", groups.Total)
	}
	for _, g := range groups.Items {
		for _, m := range g.Members {
			if m.Value == u3.ID {
				t.Fatalf("group %q lists the out-of-scope user as a member", g.DisplayName)
			}
		}
		if g.ID == course.ID && len(g.Members) != 1 {
			t.Fatalf("course members in scope = %v; want u1 only", g.Members)
		}
	}

	in, err := cs.InScope(ctx, *sc, []string{u1.ID, u2.ID, u3.ID, "nope"})
	if err != nil || !in[u1.ID] || !in[u2.ID] || in[u3.ID] || in["nope"] {
		t.Fatalf("InScope = %v, %v", in, err)
	}
	all, err := cs.InScope(ctx, store.Scope{ClientID: c.ID}, []string{u3.ID, "nope"})
	if err != nil || !all[u3.ID] || all["nope"] {
		t.Fatalf("InScope without a restrict audience = %v, %v", all, err)
	}

	// Without a restrict audience every user is visible, groups still cut.
	open := &store.Scope{ClientID: c.ID}
	if p, err := s.ListUsers(ctx, store.Query{Count: 10, StartIndex: 1, Scope: open}); err != nil || p.Total != 3 {
		t.Fatalf("unrestricted scope ListUsers total %d, %v; want 3", p.Total, err)
	}
}

func testJournalVia(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	u := createUser(t, s, scim.User{UserName: "via-user"})
	g1 := kindGroup(t, s, "Via one", "audience")
	g2 := kindGroup(t, s, "Via two", "course")
	head, err := s.JournalHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []scim.Group{g1, g2} {
		_, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
			ops.Add = []scim.Member{{Value: u.ID}}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	es, err := s.Journal(ctx, head, 100)
	if err != nil {
		t.Fatal(err)
	}
	var joined []string
	var removed *store.JournalEntry
	for i, e := range es {
		if e.ResourceType != "User" || e.ID != u.ID {
			continue
		}
		if e.Op == scim.ChangeRemove {
			removed = &es[i]
		} else if e.Reason == scim.ReasonMembers {
			joined = append(joined, e.Via)
		}
	}
	if !slices.Equal(joined, []string{g1.ID, g2.ID}) {
		t.Fatalf("membership rows of the user have via %q; want the groups joined", joined)
	}
	if removed == nil || !strings.Contains(removed.Via, " "+g1.ID+" ") || !strings.Contains(removed.Via, " "+g2.ID+" ") {
		t.Fatalf("the deleted user's remove row = %+v; want via listing both groups", removed)
	}
}
