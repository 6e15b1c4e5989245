package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/server"
	"github.com/connectsso/connect/scim/store"
)

// scoped is a hub with one client: restrict audience "Staff" (in1, in2), synced
// groups Staff and the course "Safety" (members in1 and out). "Hidden" is an
// audience the client does not sync; out is outside the restrict audience.
type scoped struct {
	*hub
	secret                string
	client                store.Client
	in1, in2, out         string
	staff, safety, hidden string
	cs                    store.Clients
}

func newScoped(t *testing.T) *scoped {
	t.Helper()
	h := newHub(t)
	ctx := context.Background()
	s := &scoped{hub: h, cs: h.store}
	mk := func(name string) string {
		u, err := h.store.CreateUser(ctx, scim.User{UserName: name, Emails: []scim.MultiValue{{Value: name + "@example.org"}}})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	s.in1, s.in2, s.out = mk("in-one"), mk("in-two"), mk("outsider")
	grp := func(name, kind string, ms ...string) string {
		g := scim.Group{DisplayName: name, Connect: &scim.ConnectGroup{Kind: kind}}
		for _, m := range ms {
			g.Members = append(g.Members, scim.Member{Value: m})
		}
		g.SetSchemas()
		out, err := h.store.CreateGroup(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return out.ID
	}
	s.staff = grp("Staff", "audience", s.in1, s.in2)
	s.safety = grp("Safety", "course", s.in1, s.out)
	s.hidden = grp("Hidden", "audience", s.in1, s.out)
	var b [16]byte
	_, _ = rand.Read(b[:])
	s.secret = "cbr_" + hex.EncodeToString(b[:])
	c, err := s.cs.CreateClient(ctx, store.Client{Name: "Site", URL: "https://site.example/", RestrictAudience: s.staff,
		Groups: []string{s.staff, s.safety}}, store.Token{Name: "bridge-site", Hash: hash(s.secret)})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// TestScopeIsolation shows a bridge token cannot read a user or group outside
// its scope through any route: each answers as if the resource did not exist.
func TestScopeIsolation(t *testing.T) {
	s := newScoped(t)
	q := url.QueryEscape
	for _, tt := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"GET user out of scope", "GET", "/Users/" + s.out, nil, 404},
		{"GET user out of scope with attributes", "GET", "/Users/" + s.out + "?attributes=userName", nil, 404},
		{"GET group not synced", "GET", "/Groups/" + s.hidden, nil, 404},
		{"GET group not synced, members only", "GET", "/Groups/" + s.hidden + "?attributes=members", nil, 404},
		{"GET user in scope", "GET", "/Users/" + s.in1, nil, 200},
		{"GET synced group", "GET", "/Groups/" + s.safety, nil, 200},
		{"PUT is a write", "PUT", "/Users/" + s.out, map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "x"}, 403},
		{"PATCH is a write", "PATCH", "/Users/" + s.in1, map[string]any{"schemas": []string{scim.SchemaPatchOp}, "Operations": []any{}}, 403},
		{"DELETE is a write", "DELETE", "/Users/" + s.out, nil, 403},
		{"POST is a write", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "x"}, 403},
		{"filter on groups refused", "GET", "/Users?filter=" + q(`groups.value eq "`+s.hidden+`"`), nil, 400},
		{"filter on members refused", "GET", "/Groups?filter=" + q(`members[value eq "`+s.out+`"]`), nil, 400},
		{"sort by groups refused", "GET", "/Users?sortBy=groups", nil, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, m := s.call(t, s.secret, tt.method, tt.path, tt.body)
			if code != tt.want {
				t.Fatalf("%s %s = %d, want %d (%v)", tt.method, tt.path, code, tt.want, m)
			}
		})
	}

	lists := []struct {
		name, method, path string
		body               any
	}{
		{"list users", "GET", "/Users?count=50", nil},
		{"filter by outsider's userName", "GET", "/Users?filter=" + q(`userName eq "outsider"`), nil},
		{"filter by outsider's id", "GET", "/Users?filter=" + q(`id eq "`+s.out+`"`), nil},
		{"filter by outsider's email", "GET", "/Users?filter=" + q(`emails[value sw "outsider"]`), nil},
		{"or-filter reaching out", "GET", "/Users?filter=" + q(`userName eq "in-one" or userName eq "outsider"`), nil},
		{"not-filter", "GET", "/Users?filter=" + q(`not (userName eq "in-one")`), nil},
		{"cursor paging", "GET", "/Users?count=1&cursor=", nil},
		{"search users", "POST", "/Users/.search", map[string]any{"schemas": []string{scim.SchemaSearchRequest}, "filter": `userName pr`, "attributes": []string{"userName", "groups"}}},
		{"list groups", "GET", "/Groups", nil},
		{"list groups with members", "GET", "/Groups?attributes=members,displayName", nil},
		{"filter group by name", "GET", "/Groups?filter=" + q(`displayName eq "Hidden"`), nil},
		{"search groups", "POST", "/Groups/.search", map[string]any{"schemas": []string{scim.SchemaSearchRequest}, "filter": `displayName pr`}},
		{"group by id with members", "GET", "/Groups/" + s.safety, nil},
		{"user by id with groups", "GET", "/Users/" + s.in1, nil},
	}
	for _, tt := range lists {
		t.Run(tt.name, func(t *testing.T) {
			code, _, m := s.call(t, s.secret, tt.method, tt.path, tt.body)
			if code != 200 {
				t.Fatalf("%s %s = %d (%v)", tt.method, tt.path, code, m)
			}
			s.noLeak(t, m)
		})
	}

	// Counts are the scope's, not the directory's.
	_, _, m := s.call(t, s.secret, "GET", "/Users?count=0", nil)
	if m["totalResults"] != float64(2) {
		t.Errorf("scoped totalResults = %v, want 2", m["totalResults"])
	}
	_, _, m = s.call(t, s.secret, "GET", "/Groups?count=0", nil)
	if m["totalResults"] != float64(2) {
		t.Errorf("scoped group totalResults = %v, want 2", m["totalResults"])
	}
	// A client removed on the hub takes its token with it.
	if err := s.cs.DeleteClient(context.Background(), s.client.ID); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := s.call(t, s.secret, "GET", "/Users", nil); code != 401 {
		t.Errorf("token of a deleted client: %d, want 401", code)
	}
}

// noLeak fails if a response mentions an id or name outside the scope.
func (s *scoped) noLeak(t *testing.T, m map[string]any) {
	t.Helper()
	raw := strings.ToLower(toJSON(m))
	for what, v := range map[string]string{"outside user id": s.out, "outside user name": "outsider", "hidden group id": s.hidden, "hidden group name": "hidden"} {
		if strings.Contains(raw, strings.ToLower(v)) {
			t.Fatalf("response reveals the %s: %s", what, raw)
		}
	}
}

// TestScopedChanges shows the Changes feed of a bridge token: only its scope,
// a user leaving the restrict audience as remove/out_of_scope, and 410 after a
// scope edit.
func TestScopedChanges(t *testing.T) {
	s := newScoped(t)
	ctx := context.Background()
	_, _, m := s.call(t, s.secret, "GET", "/Changes", nil)
	cur, _ := m["nextCursor"].(string)
	if !strings.HasPrefix(cur, "v1.") {
		t.Fatalf("scoped head cursor %q", cur)
	}
	// Outside activity: invisible. The outsider changes; the hidden group changes.
	if _, err := s.store.UpdateUser(ctx, s.out, 0, func(u *scim.User) error { u.Title = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.UpdateGroup(ctx, s.hidden, 0, func(g *scim.Group, _ *store.MemberOps) error { g.DisplayName = "Hidden 2"; return nil }); err != nil {
		t.Fatal(err)
	}
	// In2 leaves the restrict audience; in1 changes.
	if _, err := s.store.UpdateGroup(ctx, s.staff, 0, func(_ *scim.Group, ops *store.MemberOps) error { ops.Remove = []string{s.in2}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.UpdateUser(ctx, s.in1, 0, func(u *scim.User) error { u.Title = "lead"; return nil }); err != nil {
		t.Fatal(err)
	}
	// The outsider is deleted: nothing to tell this client.
	if err := s.store.DeleteUser(ctx, s.out, 0); err != nil {
		t.Fatal(err)
	}
	code, _, m := s.call(t, s.secret, "GET", "/Changes?count=100&cursor="+url.QueryEscape(cur), nil)
	if code != 200 {
		t.Fatalf("Changes = %d %v", code, m)
	}
	s.noLeak(t, m)
	got := map[string]string{}
	for _, r := range m["Resources"].([]any) {
		c := r.(map[string]any)
		got[c["id"].(string)] = c["op"].(string) + "/" + c["reason"].(string)
	}
	if got[s.in2] != "remove/out_of_scope" {
		t.Errorf("in2 left the audience: change %q, want remove/out_of_scope (all: %v)", got[s.in2], got)
	}
	if !strings.HasPrefix(got[s.in1], "upsert/") {
		t.Errorf("in1 changed: %q (all: %v)", got[s.in1], got)
	}
	next := m["nextCursor"].(string)

	// A scope edit expires the client's cursors.
	if _, err := s.cs.UpdateClient(ctx, s.client.ID, func(c *store.Client) error { c.Groups = []string{s.staff}; return nil }); err != nil {
		t.Fatal(err)
	}
	code, _, m = s.call(t, s.secret, "GET", "/Changes?cursor="+url.QueryEscape(next), nil)
	if code != 410 || m["scimType"] != "expiredCursor" {
		t.Fatalf("Changes after a scope edit = %d %v, want 410 expiredCursor", code, m)
	}
	// A cursor of the wrong form is invalid, not a way around the scope.
	for _, c := range []string{"5", "v2", "vx.1", "v2.-1"} {
		if code, _, m := s.call(t, s.secret, "GET", "/Changes?cursor="+url.QueryEscape(c), nil); code != 400 {
			t.Errorf("cursor %q = %d %v, want 400", c, code, m)
		}
	}
	_ = server.DefaultPrefix
}
