package server_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/server"
)

// TestChangesPageResources checks the resources of a Changes page, which are
// loaded in batches: every upsert carries what GET returns for that resource
// now (groups without members), an upsert of a resource deleted since turns
// into a removal, repeated ids carry the same state, and a password hash
// travels only while sync-password-hashes is on.
func TestChangesPageResources(t *testing.T) {
	ctx := context.Background()
	h := newHub(t)
	_, _, m := h.call(t, adminSecret, "GET", "/Changes", nil)
	head, _ := m["nextCursor"].(string)
	if head == "" {
		t.Fatalf("no head cursor: %v", m)
	}
	user := func(name string, extra map[string]any) string {
		t.Helper()
		body := map[string]any{"schemas": []string{scim.SchemaUser}, "userName": name}
		for k, v := range extra {
			body[k] = v
		}
		code, _, u := h.call(t, adminSecret, "POST", "/Users", body)
		if code != 201 {
			t.Fatalf("create %s: %d %v", name, code, u)
		}
		return u["id"].(string)
	}
	u1 := user("chg-1", nil)
	u2 := user("chg-2", map[string]any{"title": "before"})
	gone := user("chg-gone", nil)
	withHash := user("chg-hash", map[string]any{"password": "a-Passw0rd-for-tests"})
	code, _, g := h.call(t, adminSecret, "POST", "/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "Changed",
		"members": []map[string]any{{"value": u1}, {"value": u2}, {"value": gone}}})
	if code != 201 {
		t.Fatalf("create group: %d %v", code, g)
	}
	gid := g["id"].(string)
	if code, _, m := h.call(t, adminSecret, "PATCH", "/Users/"+u2, map[string]any{"schemas": []string{scim.SchemaPatchOp},
		"Operations": []map[string]any{{"op": "replace", "path": "title", "value": "after"}}}); code != 200 {
		t.Fatalf("patch: %d %v", code, m)
	}
	if code, _, m := h.call(t, adminSecret, "DELETE", "/Users/"+gone, nil); code != 204 {
		t.Fatalf("delete: %d %v", code, m)
	}

	poll := func() []map[string]any {
		t.Helper()
		code, _, m := h.call(t, adminSecret, "GET", "/Changes?count=100&cursor="+url.QueryEscape(head), nil)
		if code != 200 {
			t.Fatalf("Changes = %d %v", code, m)
		}
		var recs []map[string]any
		for _, r := range m["Resources"].([]any) {
			recs = append(recs, r.(map[string]any))
		}
		return recs
	}
	recs := poll()
	upserts := map[string]int{}
	for _, rec := range recs {
		id, typ := rec["id"].(string), rec["resourceType"].(string)
		if id == gone {
			if rec["op"] != scim.ChangeRemove || rec["reason"] != scim.ReasonDeleted || rec["resource"] != nil {
				t.Errorf("record of the deleted user = %v, want a removal without resource", rec)
			}
			continue
		}
		if rec["op"] != scim.ChangeUpsert {
			continue
		}
		upserts[id]++
		path := "/Users/" + id
		if typ == "Group" {
			path = "/Groups/" + id + "?excludedAttributes=members"
		}
		code, _, now := h.call(t, adminSecret, "GET", path, nil)
		if code != 200 {
			t.Fatalf("GET %s = %d", path, code)
		}
		if diff := cmp.Diff(now, rec["resource"]); diff != "" {
			t.Errorf("%s record (seq %v) differs from GET %s (-get +record):\n%s", typ, rec["seq"], path, diff)
		}
	}
	// Every resource of the page has several upserts (created, then joined
	// the group or changed); all of them carry the current state.
	for _, id := range []string{u1, u2, withHash, gid} {
		if upserts[id] == 0 {
			t.Errorf("no upsert record for %s: %v", id, recs)
		}
	}
	if upserts[u2] < 3 {
		t.Errorf("u2 has %d upserts, want 3 (created, member, patched)", upserts[u2])
	}

	hashOf := func(recs []map[string]any) any {
		for _, rec := range recs {
			if rec["id"] == withHash && rec["resource"] != nil {
				ext, _ := rec["resource"].(map[string]any)[scim.SchemaConnectUser].(map[string]any)
				return ext["passwordHash"]
			}
		}
		return nil
	}
	if got := hashOf(recs); got != nil {
		t.Errorf("passwordHash in the feed with sync-password-hashes off: %v", got)
	}
	if err := h.store.SetSetting(ctx, server.SettingSyncPasswordHashes, "true"); err != nil {
		t.Fatal(err)
	}
	if got, _ := hashOf(poll()).(string); got == "" {
		t.Error("no passwordHash in the feed with sync-password-hashes on")
	}
}
