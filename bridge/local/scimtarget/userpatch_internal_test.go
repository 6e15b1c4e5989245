package scimtarget

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
)

// TestApplyOps: a merge changes what the ops name and nothing else — a site's
// own extension schema (which a Connect hub cannot hold, so no hub test shows
// it), numbers exactly as sent, attribute names in the site's own case.
func TestApplyOps(t *testing.T) {
	in := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:example:site:2.0:User"],
		"id":"7","userName":"ann","Emails":[{"value":"OLD@x.example","type":"work","primary":true},{"value":"home@x.example","type":"home"}],
		"addresses":[{"type":"home","locality":"Petone","postalCode":"5012"},{"type":"home","locality":"Hutt"}],
		"urn:example:site:2.0:User":{"badge":12345678901234567890,"tags":["a","b"]},
		"name":{"givenName":"Ann","honorificPrefix":"Dr"}}`
	ops := []userOp{
		{op: "replace", attr: "emails", sel: bySub("value", "old@x.example"), sub: "value", value: "new@x.example"},
		{op: "replace", attr: "addresses", sel: &selector{index: 0}, sub: "locality", value: "Lower Hutt"},
		{op: "remove", attr: "name", sub: "givenName"},
		{op: "add", attr: "phoneNumbers", value: []any{map[string]any{"value": "+1", "type": "work", "primary": true}}},
		{op: "replace", schema: scim.SchemaEnterpriseUser, attr: "department", value: "Support"},
		{op: "remove", schema: scim.SchemaConnectUser, attr: "interests"},
	}
	if patchable(ops) {
		t.Fatal("an index selector has no PATCH path")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(in)))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	applyOps(doc, ops)
	got, _ := json.Marshal(doc)
	want := `{"Emails":[{"primary":true,"type":"work","value":"new@x.example"},{"type":"home","value":"home@x.example"}],` +
		`"addresses":[{"locality":"Lower Hutt","postalCode":"5012","type":"home"},{"locality":"Hutt","type":"home"}],` +
		`"id":"7","name":{"honorificPrefix":"Dr"},"phoneNumbers":[{"primary":true,"type":"work","value":"+1"}],` +
		`"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:example:site:2.0:User","` + scim.SchemaEnterpriseUser + `"],` +
		`"urn:example:site:2.0:User":{"badge":12345678901234567890,"tags":["a","b"]},` +
		`"` + scim.SchemaEnterpriseUser + `":{"department":"Support"},"userName":"ann"}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("merged (-want +got):\n%s", diff)
	}
}
