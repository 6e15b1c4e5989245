package server_test

import (
	"net/http"
	"testing"

	"github.com/connectsso/connect/scim"
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
