package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/server"
)

func group(name string, kind any) map[string]any {
	g := map[string]any{"schemas": []string{scim.SchemaGroup, scim.SchemaConnectGroup}, "displayName": name}
	if kind != nil {
		g[scim.SchemaConnectGroup] = map[string]any{"kind": kind}
	}
	return g
}

// TestGroupKind: POST, PUT and PATCH share one kind rule — a known kind in any
// case is stored lower-case, anything else is 400 invalidValue and writes nothing.
func TestGroupKind(t *testing.T) {
	h := newHub(t)
	code, _, staff := h.call(t, adminSecret, "POST", "/Groups", group("Staff", "audience"))
	if code != http.StatusCreated {
		t.Fatalf("POST audience: %d %v", code, staff)
	}
	id := staff["id"].(string)
	kindOf := func(m map[string]any) any {
		ext, _ := m[scim.SchemaConnectGroup].(map[string]any)
		return ext["kind"]
	}
	for _, tt := range []struct {
		name   string
		method string
		path   string
		body   any
		code   int
		kind   any
	}{
		{"POST unknown kind", "POST", "/Groups", group("Bogus", "bogus"), 400, nil},
		{"POST kind as number", "POST", "/Groups", group("Num", 3), 400, nil},
		{"POST Audience duplicates Staff", "POST", "/Groups", group("staff", "Audience"), 409, nil},
		{"POST COURSE lower-cased", "POST", "/Groups", group("Maths", "COURSE"), 201, "course"},
		{"POST empty kind drops the extension", "POST", "/Groups", group("Plain", ""), 201, nil},
		{"PUT unknown kind", "PUT", "/Groups/" + id, group("Staff", "team"), 400, nil},
		{"PUT Course lower-cased", "PUT", "/Groups/" + id, group("Staff", "Course"), 200, "course"},
		{"PATCH unknown kind", "PATCH", "/Groups/" + id, map[string]any{"schemas": []string{scim.SchemaPatchOp},
			"Operations": []any{map[string]any{"op": "replace", "path": scim.SchemaConnectGroup + ":kind", "value": "Bogus"}}}, 400, nil},
		{"PATCH Audience lower-cased", "PATCH", "/Groups/" + id, map[string]any{"schemas": []string{scim.SchemaPatchOp},
			"Operations": []any{map[string]any{"op": "replace", "path": scim.SchemaConnectGroup + ":kind", "value": "Audience"}}}, 200, "audience"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.snapshot(t)
			code, _, m := h.call(t, adminSecret, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("%s %s = %d %v, want %d", tt.method, tt.path, code, m, tt.code)
			}
			if code >= 400 {
				if code == 400 && m["scimType"] != scim.ErrTypeInvalidValue {
					t.Errorf("scimType = %v, want invalidValue", m["scimType"])
				}
				if after := h.snapshot(t); after != before {
					t.Errorf("a refused write changed the directory: %v → %v", before, after)
				}
				return
			}
			if got := kindOf(m); got != tt.kind {
				t.Errorf("kind in the response = %v, want %v", got, tt.kind)
			}
			_, _, stored := h.call(t, adminSecret, "GET", "/Groups/"+m["id"].(string), nil)
			if got := kindOf(stored); got != tt.kind {
				t.Errorf("stored kind = %v, want %v", got, tt.kind)
			}
		})
	}
	// The audience lookup finds the group by its exact kind: exactly one Staff.
	code, _, list := h.call(t, adminSecret, "GET", `/Groups?filter=displayName+eq+%22Staff%22`, nil)
	if code != 200 || list["totalResults"] != 1.0 {
		t.Errorf("Staff groups: %d %v", code, list)
	}
}

func patchOps(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, op := range ops {
		list[i] = op
	}
	return map[string]any{"schemas": []string{scim.SchemaPatchOp}, "Operations": list}
}

// changesHead is the Changes feed's cursor at its head: it moves with every
// journal entry.
func (h *hub) changesHead(t *testing.T) string {
	t.Helper()
	code, _, m := h.call(t, adminSecret, "GET", "/Changes", nil)
	if code != 200 {
		t.Fatalf("GET /Changes = %d %v", code, m)
	}
	return fmt.Sprint(m["nextCursor"])
}

// TestNoOpWrites: a PATCH or PUT that leaves the resource as stored answers
// 200 with the stored ETag and moves neither the version nor the Changes feed;
// a real one moves both.
func TestNoOpWrites(t *testing.T) {
	h := newHub(t)
	_, _, u1 := h.call(t, adminSecret, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser},
		"userName": "ann", "title": "Teacher", "active": true, "emails": []any{map[string]any{"value": "ann@example.com", "type": "work", "primary": true}}})
	_, _, u2 := h.call(t, adminSecret, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "bob"})
	uid, bid := u1["id"].(string), u2["id"].(string)
	g := group("Staff", "audience")
	g["members"] = []any{map[string]any{"value": uid}}
	code, _, gm := h.call(t, adminSecret, "POST", "/Groups", g)
	if code != 201 {
		t.Fatalf("POST /Groups: %d %v", code, gm)
	}
	gid := gm["id"].(string)

	for _, tt := range []struct {
		name   string
		method string
		path   string
		body   any
	}{
		{"PATCH replace title by itself", "PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "Replace", "path": "title", "value": "Teacher"})},
		{"PATCH replace without path, same values", "PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "replace", "value": map[string]any{"active": "True", "title": "Teacher"}})},
		{"PATCH remove a value path matching nothing", "PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "remove", "path": `emails[type eq "home"]`})},
		{"PATCH remove an attribute not set", "PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "remove", "path": "nickName"})},
		{"PUT the stored user", "PUT", "/Users/" + uid, map[string]any{"schemas": []string{scim.SchemaUser},
			"userName": "ann", "title": "Teacher", "active": true, "emails": []any{map[string]any{"value": "ann@example.com", "type": "work", "primary": true}}}},
		{"PATCH remove a member who is not one", "PATCH", "/Groups/" + gid, patchOps(map[string]any{"op": "remove", "path": `members[value eq "` + bid + `"]`})},
		{"PATCH remove members, Entra value list", "PATCH", "/Groups/" + gid, patchOps(map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": bid}}})},
		{"PATCH add a member already there", "PATCH", "/Groups/" + gid, patchOps(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": uid}}})},
		{"PATCH replace displayName and kind by themselves", "PATCH", "/Groups/" + gid, patchOps(
			map[string]any{"op": "replace", "path": "displayName", "value": "Staff"},
			map[string]any{"op": "replace", "path": scim.SchemaConnectGroup + ":kind", "value": "Audience"})},
		{"PUT the stored group", "PUT", "/Groups/" + gid, func() any {
			g := group("Staff", "audience")
			g["members"] = []any{map[string]any{"value": uid}}
			return g
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, hdr, before := h.call(t, adminSecret, "GET", tt.path, nil)
			head, snap := h.changesHead(t), h.snapshot(t)
			audits, _ := h.store.AuditLog(context.Background(), 1000)
			code, hdr2, m := h.call(t, adminSecret, tt.method, tt.path, tt.body, "If-Match", hdr.Get("ETag"))
			if code != 200 {
				t.Fatalf("%s = %d %v", tt.method, code, m)
			}
			if hdr2.Get("ETag") != hdr.Get("ETag") || obj(m, "meta")["version"] != obj(before, "meta")["version"] ||
				obj(m, "meta")["lastModified"] != obj(before, "meta")["lastModified"] {
				t.Errorf("ETag %q → %q, meta %v → %v", hdr.Get("ETag"), hdr2.Get("ETag"), obj(before, "meta"), obj(m, "meta"))
			}
			if got := h.changesHead(t); got != head {
				t.Errorf("the Changes head moved: %s → %s", head, got)
			}
			if got := h.snapshot(t); got != snap {
				t.Errorf("the store moved: %v → %v", snap, got)
			}
			if after, _ := h.store.AuditLog(context.Background(), 1000); len(after) != len(audits) {
				t.Errorf("a no-op wrote %d audit entries", len(after)-len(audits))
			}
		})
	}

	// Real changes still write, once each.
	for _, tt := range []struct {
		name, method, path string
		body               any
	}{
		{"PATCH a new title", "PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "replace", "path": "title", "value": "Head"})},
		{"PATCH add a new member", "PATCH", "/Groups/" + gid, patchOps(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": bid}}})},
		{"PUT a renamed group", "PUT", "/Groups/" + gid, group("Staff room", "audience")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, hdr, _ := h.call(t, adminSecret, "GET", tt.path, nil)
			head := h.changesHead(t)
			code, hdr2, m := h.call(t, adminSecret, tt.method, tt.path, tt.body)
			if code != 200 {
				t.Fatalf("%s = %d %v", tt.method, code, m)
			}
			v1, _ := scim.ParseETag(hdr.Get("ETag"))
			v2, _ := scim.ParseETag(hdr2.Get("ETag"))
			if v2 != v1+1 {
				t.Errorf("version %d → %d, want +1", v1, v2)
			}
			if got := h.changesHead(t); got == head {
				t.Errorf("the Changes head did not move")
			}
		})
	}
}

func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// TestWritesAudited: every SCIM write of a user or group leaves an audit entry
// naming the token, the action and the resource; reads and refused writes none.
// The token's name (never its secret) is on the request's log lines.
func TestWritesAudited(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	code, _, u := h.call(t, adminSecret, "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "cat"})
	if code != 201 {
		t.Fatalf("POST /Users: %d %v", code, u)
	}
	uid := u["id"].(string)
	_, _, g := h.call(t, adminSecret, "POST", "/Groups", group("Maths", "course"))
	gid := g["id"].(string)
	steps := []struct {
		method, path string
		body         any
		code         int
	}{
		{"GET", "/Users/" + uid, nil, 200},
		{"PUT", "/Users/" + uid, map[string]any{"schemas": []string{scim.SchemaUser}, "userName": "cat", "title": "Dr"}, 200},
		{"PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "replace", "path": "title", "value": "Prof"}), 200},
		{"PATCH", "/Users/" + uid, patchOps(map[string]any{"op": "replace", "path": "userName", "value": ""}), 400},
		{"PATCH", "/Groups/" + gid, patchOps(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": uid}}}), 200},
		{"PUT", "/Groups/" + gid, group("Maths 2", "course"), 200},
		{"DELETE", "/Groups/" + gid, nil, 204},
		{"DELETE", "/Users/" + uid, nil, 204},
		{"DELETE", "/Users/" + uid, nil, 404},
	}
	for _, s := range steps {
		if code, _, m := h.call(t, adminSecret, s.method, s.path, s.body); code != s.code {
			t.Fatalf("%s %s = %d %v, want %d", s.method, s.path, code, m, s.code)
		}
	}
	es, err := h.store.AuditLog(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(es) - 1; i >= 0; i-- {
		got = append(got, es[i].Actor+" "+es[i].Action+" "+es[i].Target)
	}
	want := []string{
		"token:admin user.create " + uid,
		"token:admin group.create " + gid,
		"token:admin user.replace " + uid,
		"token:admin user.patch " + uid,
		"token:admin group.patch " + gid,
		"token:admin group.replace " + gid,
		"token:admin group.delete " + gid,
		"token:admin user.delete " + uid,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}

// TestLogNamesToken: the handler's log lines and the Caller an access log reads
// carry the token's name, never its secret.
func TestLogNamesToken(t *testing.T) {
	h := newHub(t)
	var logs bytes.Buffer
	handler, err := server.New(server.Config{
		Store:      h.store,
		BaseURL:    "https://hub.example",
		Logger:     slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var caller server.Caller
	req := httptest.NewRequest("GET", "/scim/v2/Users/missing", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req = req.WithContext(server.WithCaller(req.Context(), &caller))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Fatalf("status %d", rec.Code)
	}
	if caller.Token != "admin" {
		t.Errorf("Caller.Token = %q, want admin", caller.Token)
	}
	if !strings.Contains(logs.String(), `"token":"admin"`) || strings.Contains(logs.String(), adminSecret) {
		t.Errorf("log line: %s", logs.String())
	}
}
