package rfctest

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
)

// RFC7644_3_9_WriteProjection: attributes and excludedAttributes on POST, PUT
// and PATCH shape the resource returned (RFC 7644 §3.9) the way they shape a
// GET: id, schemas and meta always; the write itself is whole either way.
func RFC7644_3_9_WriteProjection(t *testing.T, tg Target) {
	c := newClient(t, tg)
	keys := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	body := c.user("projected", map[string]any{
		"title":  "Teacher",
		"name":   map[string]any{"givenName": "Pat", "familyName": "Jones"},
		"emails": []any{map[string]any{"value": "pat@example.com", "type": "work", "primary": true}},
	})

	r := c.do("POST", "/Users?attributes=userName", body)
	c.want(r, http.StatusCreated, "POST /Users?attributes=userName")
	u := r.JSON()
	id, _ := u["id"].(string)
	if id == "" {
		t.Fatalf("POST with attributes: no id in %s", trim(r.Body))
	}
	*c.cleanup = append(*c.cleanup, "/Users/"+id)
	if !sameSet(keys(u), []string{"id", "schemas", "meta", "userName"}) {
		t.Errorf("POST ?attributes=userName returned %v", keys(u))
	}
	if r.Header.Get("Location") == "" || r.Header.Get("ETag") == "" {
		t.Errorf("POST with attributes lost Location or ETag: %v", r.Header)
	}
	// The projection shapes the answer only: everything was stored.
	full := c.do("GET", "/Users/"+id, nil)
	c.want(full, http.StatusOK, "GET the projected user")
	if full.JSON()["title"] != "Teacher" || obj(full.JSON(), "name")["givenName"] != "Pat" {
		t.Errorf("POST with attributes stored %s", trim(full.Body))
	}

	body["title"] = "Head"
	r = c.do("PUT", "/Users/"+id+"?excludedAttributes=emails,name", body)
	c.want(r, http.StatusOK, "PUT ?excludedAttributes=emails,name")
	u = r.JSON()
	if u["emails"] != nil || u["name"] != nil || u["title"] != "Head" || u["userName"] == nil || u["id"] != id {
		t.Errorf("PUT ?excludedAttributes=emails,name returned %s", trim(r.Body))
	}

	r = c.do("PATCH", "/Users/"+id+"?attributes=name.familyName", patchOp(op("replace", "name.familyName", "Smith")))
	c.want(r, http.StatusOK, "PATCH ?attributes=name.familyName")
	u = r.JSON()
	if !sameSet(keys(u), []string{"id", "schemas", "meta", "name"}) || !sameSet(keys(obj(u, "name")), []string{"familyName"}) ||
		obj(u, "name")["familyName"] != "Smith" {
		t.Errorf("PATCH ?attributes=name.familyName returned %s", trim(r.Body))
	}
	r = c.do("PATCH", "/Users/"+id+"?excludedAttributes=title", patchOp(op("replace", "title", "Dean")))
	c.want(r, http.StatusOK, "PATCH ?excludedAttributes=title")
	if u = r.JSON(); u["title"] != nil || u["userName"] == nil {
		t.Errorf("PATCH ?excludedAttributes=title returned %s", trim(r.Body))
	}
	full = c.do("GET", "/Users/"+id+"?attributes=title", nil)
	if full.JSON()["title"] != "Dean" {
		t.Errorf("PATCH with excludedAttributes did not store title: %s", trim(full.Body))
	}

	// Groups: attributes=members returns the members a PATCH leaves.
	g := map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "projected"}
	r = c.do("POST", "/Groups?excludedAttributes=displayName", g)
	c.want(r, http.StatusCreated, "POST /Groups?excludedAttributes=displayName")
	gm := r.JSON()
	gid, _ := gm["id"].(string)
	if gid == "" {
		t.Fatalf("POST /Groups: no id in %s", trim(r.Body))
	}
	*c.cleanup = append(*c.cleanup, "/Groups/"+gid)
	if gm["displayName"] != nil {
		t.Errorf("POST /Groups?excludedAttributes=displayName returned %s", trim(r.Body))
	}
	r = c.do("PATCH", "/Groups/"+gid+"?attributes=members", patchOp(op("add", "members", []any{map[string]any{"value": id}})))
	c.want(r, http.StatusOK, "PATCH /Groups?attributes=members")
	gm = r.JSON()
	if !sameSet(memberIDs(gm), []string{id}) || gm["displayName"] != nil {
		t.Errorf("PATCH /Groups?attributes=members returned %s", trim(r.Body))
	}
}

// RFC7644_3_11_Me: /Me is an alias for the User the bearer token belongs to. A
// provider whose tokens are not users answers 501 Not Implemented (RFC 7644
// §3.11) for every method, with a SCIM error, and writes nothing; one that
// implements it answers GET with a User resource or a 308 to it.
func RFC7644_3_11_Me(t *testing.T, tg Target) {
	c := newClient(t, tg)
	r := c.do("GET", "/Me", nil)
	switch r.Status {
	case http.StatusNotImplemented:
	case http.StatusOK:
		if r.JSON()["id"] == nil || !hasString(r.JSON()["schemas"], scim.SchemaUser) {
			t.Errorf("GET /Me: 200 without a User resource: %s", trim(r.Body))
		}
		return
	case http.StatusPermanentRedirect:
		if loc := r.Header.Get("Location"); !strings.Contains(loc, "/Users/") {
			t.Errorf("GET /Me: 308 to %q, want a /Users/{id} location", loc)
		}
		return
	default:
		t.Fatalf("GET /Me: status %d, want 501 (or 200/308 when implemented); body %s", r.Status, trim(r.Body))
	}
	c.wantError(r, http.StatusNotImplemented, "", "GET /Me")
	before := c.snapshot()
	for _, m := range []struct {
		method string
		body   any
	}{
		{"POST", c.user("me", nil)},
		{"PUT", c.user("me", nil)},
		{"PATCH", patchOp(op("replace", "title", "Me"))},
		{"DELETE", nil},
	} {
		c.wantError(c.do(m.method, "/Me", m.body), http.StatusNotImplemented, "", m.method+" /Me")
	}
	c.unchanged(before, "writes to /Me")
}
