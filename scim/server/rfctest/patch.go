package rfctest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
)

func patchOp(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, o := range ops {
		list[i] = o
	}
	return map[string]any{"schemas": []string{scim.SchemaPatchOp}, "Operations": list}
}

func op(o, path string, value any) map[string]any {
	m := map[string]any{"op": o}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// RFC7644_3_5_2_Patch: add, remove and replace, with and without paths, value
// filters, extension paths, the forms Entra ID sends, and group membership
// changes; PATCH answers 200 with the resource.
func RFC7644_3_5_2_Patch(t *testing.T, tg Target) {
	c := newClient(t, tg)
	u := c.create("/Users", c.user("patch", map[string]any{
		"schemas": []string{scim.SchemaUser, ent},
		"name":    map[string]any{"givenName": "Pat", "familyName": "Ch"},
		"emails": []any{
			map[string]any{"value": "pat@work.example", "type": "work", "primary": true},
			map[string]any{"value": "pat@home.example", "type": "home"},
		},
		"active": true,
	}))
	path := "/Users/" + u["id"].(string)
	apply := func(what string, body map[string]any) map[string]any {
		t.Helper()
		r := c.do("PATCH", path, body)
		c.want(r, http.StatusOK, what)
		if r.JSON()["id"] != u["id"] {
			t.Errorf("%s: PATCH response is not the resource: %s", what, trim(r.Body))
		}
		if et := r.Header.Get("ETag"); et == "" || et != obj(r.JSON(), "meta")["version"] {
			t.Errorf("%s: ETag %q vs meta.version %v", what, et, obj(r.JSON(), "meta")["version"])
		}
		g := c.do("GET", path, nil)
		c.want(g, http.StatusOK, "GET after "+what)
		return g.JSON()
	}
	emails := func(m map[string]any) map[string]string {
		out := map[string]string{}
		list, _ := m["emails"].([]any)
		for _, e := range list {
			em := e.(map[string]any)
			out[strings.TrimSpace(em["type"].(string))] = em["value"].(string)
		}
		return out
	}

	got := apply("replace with path", patchOp(op("replace", "displayName", "Pat Ch")))
	if got["displayName"] != "Pat Ch" {
		t.Errorf("displayName = %v", got["displayName"])
	}
	got = apply("replace sub-attribute", patchOp(op("replace", "name.givenName", "Patricia")))
	if obj(got, "name")["givenName"] != "Patricia" || obj(got, "name")["familyName"] != "Ch" {
		t.Errorf("name = %v", got["name"])
	}
	got = apply("replace without path", patchOp(op("replace", "", map[string]any{"title": "Boss", "nickName": "P"})))
	if got["title"] != "Boss" || got["nickName"] != "P" {
		t.Errorf("no-path replace: %v", got)
	}
	got = apply("add to multi-valued", patchOp(op("add", "emails", []any{map[string]any{"value": "pat@other.example", "type": "other"}})))
	if e := emails(got); e["other"] != "pat@other.example" || e["work"] != "pat@work.example" {
		t.Errorf("emails after add = %v", e)
	}
	got = apply("replace through value filter", patchOp(op("replace", `emails[type eq "work"].value`, "pat@new.example")))
	if e := emails(got); e["work"] != "pat@new.example" || e["home"] != "pat@home.example" {
		t.Errorf("emails after value-path replace = %v", e)
	}
	got = apply("remove through value filter", patchOp(op("remove", `emails[type eq "home"]`, nil)))
	if e := emails(got); e["home"] != "" || e["work"] == "" {
		t.Errorf("emails after value-path remove = %v", e)
	}
	got = apply("remove attribute", patchOp(op("remove", "nickName", nil)))
	if got["nickName"] != nil {
		t.Errorf("nickName after remove = %v", got["nickName"])
	}
	got = apply("extension path", patchOp(op("add", ent+":employeeNumber", "P-7")))
	if obj(got, ent)["employeeNumber"] != "P-7" {
		t.Errorf("enterprise after add = %v", got[ent])
	}
	got = apply("extension without path", patchOp(op("replace", "", map[string]any{ent: map[string]any{"department": "Ops"}})))
	if obj(got, ent)["department"] != "Ops" {
		t.Errorf("enterprise after no-path replace = %v", got[ent])
	}
	got = apply("Entra: capitalised op, string boolean", patchOp(
		map[string]any{"op": "Replace", "path": "active", "value": "False"},
		map[string]any{"op": "Add", "path": "title", "value": "Chief"},
	))
	if got["active"] != false || got["title"] != "Chief" {
		t.Errorf("Entra ops: active %v title %v", got["active"], got["title"])
	}
	got = apply("Entra: no-path replace with string boolean", patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": "True"}}))
	if got["active"] != true {
		t.Errorf("active = %v", got["active"])
	}
	got = apply("several operations in order", patchOp(op("replace", "userName", c.prefix+"patched"), op("replace", "userName", c.prefix+"patched2")))
	if got["userName"] != c.prefix+"patched2" {
		t.Errorf("userName = %v", got["userName"])
	}

	t.Run("errors", func(t *testing.T) {
		c := c.on(t)
		before := c.snapshot()
		c.wantError(c.do("PATCH", path, patchOp(op("replace", "nosuch", "x"))), http.StatusBadRequest, "", "PATCH unknown path")
		c.wantError(c.do("PATCH", path, patchOp(op("remove", "", nil))), http.StatusBadRequest, scim.ErrTypeNoTarget, "remove without path")
		c.wantError(c.do("PATCH", path, patchOp(op("jump", "title", "x"))), http.StatusBadRequest, "", "unknown op")
		c.wantError(c.do("PATCH", path, map[string]any{"Operations": []any{op("replace", "title", "x")}}), http.StatusBadRequest, "", "no PatchOp schema")
		c.wantError(c.do("PATCH", path, patchOp(op("replace", "userName", ""))), http.StatusBadRequest, "", "blank userName")
		c.wantError(c.do("PATCH", "/Users/no-such-"+c.prefix, patchOp(op("replace", "title", "x"))), http.StatusNotFound, "", "PATCH unknown id")
		c.unchanged(before, "failed PATCHes")
	})

	t.Run("groups", func(t *testing.T) {
		c := c.on(t)
		var mids []string
		for _, n := range []string{"m1", "m2", "m3", "m4"} {
			mids = append(mids, c.create("/Users", c.user(n, nil))["id"].(string))
		}
		g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "pg"})
		gp := "/Groups/" + g["id"].(string)
		members := func() []string {
			r := c.do("GET", gp, nil)
			c.want(r, http.StatusOK, "GET group")
			return memberIDs(r.JSON())
		}
		r := c.do("PATCH", gp, patchOp(op("add", "members", []any{map[string]any{"value": mids[0]}, map[string]any{"value": mids[1]}, map[string]any{"value": mids[2]}})))
		c.want(r, http.StatusOK, "add members")
		if r.JSON()["members"] != nil {
			t.Errorf("PATCH response carries members without attributes=members: %s", trim(r.Body))
		}
		if got := members(); !sameSet(got, mids[:3]) {
			t.Errorf("members after add = %v", got)
		}
		c.want(c.do("PATCH", gp, patchOp(op("remove", `members[value eq "`+mids[0]+`"]`, nil))), http.StatusOK, "remove member by filter")
		if got := members(); !sameSet(got, mids[1:3]) {
			t.Errorf("members after filtered remove = %v", got)
		}
		// Entra: remove with a value list, capitalised op.
		c.want(c.do("PATCH", gp, patchOp(map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": mids[1]}}})), http.StatusOK, "Entra remove with value")
		if got := members(); !sameSet(got, mids[2:3]) {
			t.Errorf("members after Entra remove = %v", got)
		}
		r = c.do("PATCH", gp+"?attributes=members", patchOp(op("add", "members", []any{map[string]any{"value": mids[3]}}), op("replace", "displayName", c.prefix+"pg-renamed")))
		c.want(r, http.StatusOK, "add member asking for members")
		if !sameSet(memberIDs(r.JSON()), mids[2:4]) {
			t.Errorf("PATCH ?attributes=members response members = %v", memberIDs(r.JSON()))
		}
		if got := c.do("GET", gp, nil).JSON(); got["displayName"] != c.prefix+"pg-renamed" {
			t.Errorf("displayName = %v", got["displayName"])
		}
		c.want(c.do("PATCH", gp, patchOp(op("replace", "members", []any{map[string]any{"value": mids[0]}}))), http.StatusOK, "replace members")
		if got := members(); !sameSet(got, mids[:1]) {
			t.Errorf("members after replace = %v", got)
		}
		c.want(c.do("PATCH", gp, patchOp(op("remove", "members", nil))), http.StatusOK, "remove all members")
		if got := members(); len(got) != 0 {
			t.Errorf("members after remove all = %v", got)
		}
		before := c.snapshot()
		c.wantError(c.do("PATCH", gp, patchOp(op("add", "members", []any{map[string]any{"value": "no-such-user-" + c.prefix}}))), http.StatusBadRequest, "", "add unknown member")
		c.unchanged(before, "adding an unknown member")
	})
}
