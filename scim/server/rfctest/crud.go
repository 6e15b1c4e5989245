package rfctest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
)

// RFC7644_3_3_Create: POST creates a resource, answers 201 with Location, ETag
// and the resource as stored; uniqueness is case-insensitive for userName (409);
// returned=never attributes never come back; Entra's string booleans are read.
func RFC7644_3_3_Create(t *testing.T, tg Target) {
	c := newClient(t, tg)
	body := c.user("Create", map[string]any{
		"schemas":                 []string{scim.SchemaUser, scim.SchemaEnterpriseUser, scim.SchemaConnectUser},
		"externalId":              "ext-" + c.prefix,
		"name":                    map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
		"displayName":             "Ada Lovelace",
		"active":                  true,
		"password":                "correct horse battery staple",
		"emails":                  []any{map[string]any{"value": "ada@example.com", "type": "work", "primary": true}},
		scim.SchemaEnterpriseUser: map[string]any{"employeeNumber": "E-1", "department": "Analytics"},
		scim.SchemaConnectUser:    map[string]any{"interests": []string{"engines"}},
	})
	r := c.do("POST", "/Users", body)
	c.want(r, http.StatusCreated, "POST /Users")
	u := r.JSON()
	id, _ := u["id"].(string)
	if id == "" {
		t.Fatalf("no id: %s", r.Body)
	}
	*c.cleanup = append(*c.cleanup, "/Users/"+id)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("Content-Type %q", ct)
	}
	meta := obj(u, "meta")
	if meta == nil {
		t.Fatalf("no meta: %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc == "" || loc != meta["location"] || !strings.HasSuffix(loc, "/Users/"+id) {
		t.Errorf("Location %q, meta.location %v, id %s", loc, meta["location"], id)
	}
	if et := r.Header.Get("ETag"); et == "" || et != meta["version"] {
		t.Errorf("ETag %q, meta.version %v", et, meta["version"])
	}
	if meta["resourceType"] != "User" || meta["created"] == nil || meta["lastModified"] == nil {
		t.Errorf("meta = %v", meta)
	}
	if u["userName"] != c.prefix+"Create" || obj(u, "name")["givenName"] != "Ada" || u["externalId"] != "ext-"+c.prefix {
		t.Errorf("created user = %s", r.Body)
	}
	if obj(u, scim.SchemaEnterpriseUser)["employeeNumber"] != "E-1" {
		t.Errorf("enterprise extension not stored: %s", r.Body)
	}
	if !hasString(u["schemas"], scim.SchemaUser) || !hasString(u["schemas"], scim.SchemaEnterpriseUser) {
		t.Errorf("schemas = %v", u["schemas"])
	}
	if strings.Contains(string(r.Body), "correct horse") || u["password"] != nil {
		t.Errorf("password returned: %s", r.Body)
	}
	if !tg.HashesVisible && strings.Contains(strings.ToLower(string(r.Body)), "passwordhash") {
		t.Errorf("passwordHash returned: %s", r.Body)
	}

	g := c.do("GET", "/Users/"+id, nil)
	c.want(g, http.StatusOK, "GET created user")
	if g.JSON()["userName"] != c.prefix+"Create" {
		t.Errorf("GET after create = %s", g.Body)
	}

	t.Run("uniqueness", func(t *testing.T) {
		c := c.on(t)
		dup := c.do("POST", "/Users", c.user("CREATE", nil))
		c.wantError(dup, http.StatusConflict, scim.ErrTypeUniqueness, "duplicate userName, other case")
	})
	t.Run("Entra string boolean", func(t *testing.T) {
		c := c.on(t)
		u := c.create("/Users", c.user("entra", map[string]any{"active": "False"}))
		if u["active"] != false {
			t.Errorf(`"active":"False" stored as %v`, u["active"])
		}
	})
	t.Run("missing userName", func(t *testing.T) {
		c := c.on(t)
		before := c.snapshot()
		r := c.do("POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "displayName": "nobody"})
		c.wantError(r, http.StatusBadRequest, scim.ErrTypeInvalidValue, "POST without userName")
		c.unchanged(before, "POST without userName")
	})
	t.Run("group with member", func(t *testing.T) {
		c := c.on(t)
		grp := c.create("/Groups", map[string]any{
			"schemas":     []string{scim.SchemaGroup},
			"displayName": c.prefix + "group",
			"members":     []any{map[string]any{"value": id}},
		})
		if !strings.Contains(fmt.Sprint(grp["members"]), id) {
			t.Errorf("group members = %v", grp["members"])
		}
		if obj(grp, "meta")["resourceType"] != "Group" {
			t.Errorf("group meta = %v", grp["meta"])
		}
		dup := c.do("POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "GROUP"})
		c.wantError(dup, http.StatusConflict, scim.ErrTypeUniqueness, "duplicate group displayName")
	})
}

// RFC7644_3_4_1_Get: GET by id returns the resource with its ETag; unknown ids
// are 404; groups carry members unless excluded.
func RFC7644_3_4_1_Get(t *testing.T, tg Target) {
	c := newClient(t, tg)
	u := c.create("/Users", c.user("get", map[string]any{"name": map[string]any{"givenName": "Grace", "familyName": "Hopper"}}))
	id := u["id"].(string)
	r := c.do("GET", "/Users/"+id, nil)
	c.want(r, http.StatusOK, "GET /Users/id")
	if r.JSON()["id"] != id || obj(r.JSON(), "name")["familyName"] != "Hopper" {
		t.Errorf("GET = %s", r.Body)
	}
	if r.Header.Get("ETag") == "" || r.Header.Get("ETag") != obj(r.JSON(), "meta")["version"] {
		t.Errorf("ETag %q vs meta.version %v", r.Header.Get("ETag"), obj(r.JSON(), "meta")["version"])
	}
	c.wantError(c.do("GET", "/Users/no-such-id-"+c.prefix, nil), http.StatusNotFound, "", "GET unknown user")
	c.wantError(c.do("GET", "/Groups/no-such-id-"+c.prefix, nil), http.StatusNotFound, "", "GET unknown group")

	g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "g", "members": []any{map[string]any{"value": id}}})
	gid := g["id"].(string)
	full := c.do("GET", "/Groups/"+gid, nil)
	c.want(full, http.StatusOK, "GET group")
	if !strings.Contains(fmt.Sprint(full.JSON()["members"]), id) {
		t.Errorf("group members by default = %v", full.JSON()["members"])
	}
	slim := c.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil)
	c.want(slim, http.StatusOK, "GET group excluding members")
	if _, ok := slim.JSON()["members"]; ok || slim.JSON()["displayName"] != c.prefix+"g" {
		t.Errorf("excludedAttributes=members: %s", slim.Body)
	}
	// The user's read-only groups attribute lists the group.
	ug := c.do("GET", "/Users/"+id, nil)
	if !strings.Contains(fmt.Sprint(ug.JSON()["groups"]), gid) {
		t.Errorf("user.groups = %v, want %s", ug.JSON()["groups"], gid)
	}
}

// RFC7644_3_5_1_Put: PUT replaces the resource; id and created survive, the
// version changes; 404 for unknown ids, 409 on uniqueness, 400 without userName.
func RFC7644_3_5_1_Put(t *testing.T, tg Target) {
	c := newClient(t, tg)
	u := c.create("/Users", c.user("put", map[string]any{
		"name":   map[string]any{"givenName": "Old", "familyName": "Name"},
		"emails": []any{map[string]any{"value": "old@example.com", "type": "work"}},
		"title":  "Before",
	}))
	id := u["id"].(string)
	other := c.create("/Users", c.user("put-other", nil))
	r := c.do("PUT", "/Users/"+id, c.user("put", map[string]any{
		"id":   id,
		"name": map[string]any{"givenName": "New", "familyName": "Name"},
	}))
	c.want(r, http.StatusOK, "PUT /Users/id")
	got := r.JSON()
	if got["id"] != id || obj(got, "name")["givenName"] != "New" {
		t.Errorf("PUT result = %s", r.Body)
	}
	if got["emails"] != nil || got["title"] != nil {
		t.Errorf("PUT kept omitted attributes: %s", r.Body)
	}
	if obj(got, "meta")["version"] == obj(u, "meta")["version"] || r.Header.Get("ETag") != obj(got, "meta")["version"] {
		t.Errorf("version after PUT %v (before %v), ETag %q", obj(got, "meta")["version"], obj(u, "meta")["version"], r.Header.Get("ETag"))
	}
	if obj(got, "meta")["created"] != obj(u, "meta")["created"] {
		t.Errorf("created changed: %v -> %v", obj(u, "meta")["created"], obj(got, "meta")["created"])
	}
	g := c.do("GET", "/Users/"+id, nil)
	if obj(g.JSON(), "name")["givenName"] != "New" || g.JSON()["emails"] != nil {
		t.Errorf("GET after PUT = %s", g.Body)
	}

	c.wantError(c.do("PUT", "/Users/"+id, c.user(strings.ToUpper("put-other"), nil)), http.StatusConflict, scim.ErrTypeUniqueness, "PUT taking another userName")
	c.wantError(c.do("PUT", "/Users/no-such-"+c.prefix, c.user("ghost", nil)), http.StatusNotFound, "", "PUT unknown id")
	c.wantError(c.do("PUT", "/Users/"+id, map[string]any{"schemas": []string{scim.SchemaUser}, "userame": "typo"}), http.StatusBadRequest, "", "PUT without userName")
	_ = other

	grp := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "pg", "members": []any{map[string]any{"value": id}}})
	gid := grp["id"].(string)
	pr := c.do("PUT", "/Groups/"+gid, map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "pg2",
		"members": []any{map[string]any{"value": other["id"]}}})
	c.want(pr, http.StatusOK, "PUT /Groups/id")
	gg := c.do("GET", "/Groups/"+gid, nil)
	if gg.JSON()["displayName"] != c.prefix+"pg2" || !sameSet(memberIDs(gg.JSON()), []string{other["id"].(string)}) {
		t.Errorf("group after PUT = %s", gg.Body)
	}
}

// RFC7644_3_6_Delete: DELETE answers 204; the resource is gone (404), a second
// DELETE is 404, and a deleted user leaves its groups.
func RFC7644_3_6_Delete(t *testing.T, tg Target) {
	c := newClient(t, tg)
	u := c.create("/Users", c.user("del", nil))
	id := u["id"].(string)
	keep := c.create("/Users", c.user("keep", nil))
	g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "dg",
		"members": []any{map[string]any{"value": id}, map[string]any{"value": keep["id"]}}})
	r := c.do("DELETE", "/Users/"+id, nil)
	c.want(r, http.StatusNoContent, "DELETE /Users/id")
	if len(r.Body) != 0 {
		t.Errorf("204 with a body: %s", r.Body)
	}
	c.wantError(c.do("GET", "/Users/"+id, nil), http.StatusNotFound, "", "GET deleted user")
	c.wantError(c.do("DELETE", "/Users/"+id, nil), http.StatusNotFound, "", "DELETE twice")
	gg := c.do("GET", "/Groups/"+g["id"].(string), nil)
	if ms := memberIDs(gg.JSON()); !sameSet(ms, []string{keep["id"].(string)}) {
		t.Errorf("members after deleting a user: %v", ms)
	}
	c.want(c.do("DELETE", "/Groups/"+g["id"].(string), nil), http.StatusNoContent, "DELETE /Groups/id")
	c.wantError(c.do("GET", "/Groups/"+g["id"].(string), nil), http.StatusNotFound, "", "GET deleted group")
}

// RFC7644_3_7_Bulk: this service provider does not support bulk; it says so in
// ServiceProviderConfig and answers 501 (RFC 7644 §3.12).
func RFC7644_3_7_Bulk(t *testing.T, tg Target) {
	c := newClient(t, tg)
	if obj(c.spc(), "bulk")["supported"] != false {
		t.Skip("service provider advertises bulk support; this suite tests the unsupported case")
	}
	before := c.snapshot()
	r := c.do("POST", "/Bulk", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
		"Operations": []any{map[string]any{"method": "POST", "path": "/Users", "bulkId": "a",
			"data": c.user("bulk", nil)}},
	})
	c.wantError(r, http.StatusNotImplemented, "", "POST /Bulk")
	c.unchanged(before, "POST /Bulk")
}
