package patch

import (
	"encoding/json"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
)

func TestMatch(t *testing.T) {
	email := map[string]any{"value": "Alice@Example.com", "type": "work", "primary": true}
	tests := []struct {
		rt    *scim.ResourceType
		path  string
		value map[string]any
		want  bool
	}{
		{scim.UserResourceType, `emails[type eq "work"]`, email, true},
		{scim.UserResourceType, `emails[type eq "WORK"]`, email, true},
		{scim.UserResourceType, `emails[type ne "work"]`, email, false},
		{scim.UserResourceType, `emails[type ne "home"]`, email, true},
		{scim.UserResourceType, `emails[value co "example"]`, email, true},
		{scim.UserResourceType, `emails[value sw "alice@"]`, email, true},
		{scim.UserResourceType, `emails[value ew ".COM"]`, email, true},
		{scim.UserResourceType, `emails[value ew ".org"]`, email, false},
		{scim.UserResourceType, `emails[value gt "a"]`, email, true},
		{scim.UserResourceType, `emails[value lt "a"]`, email, false},
		{scim.UserResourceType, `emails[value ge "alice@example.com"]`, email, true},
		{scim.UserResourceType, `emails[value le "alice@example.com"]`, email, true},
		{scim.UserResourceType, `emails[primary eq true]`, email, true},
		{scim.UserResourceType, `emails[primary eq false]`, email, false},
		{scim.UserResourceType, `emails[primary eq true]`, map[string]any{"primary": "True"}, true},
		{scim.UserResourceType, `emails[primary eq false]`, map[string]any{"value": "x"}, false},
		{scim.UserResourceType, `emails[display pr]`, email, false},
		{scim.UserResourceType, `emails[value pr]`, email, true},
		{scim.UserResourceType, `emails[value pr]`, map[string]any{"value": ""}, false},
		{scim.UserResourceType, `emails[type eq "work" and primary eq true]`, email, true},
		{scim.UserResourceType, `emails[type eq "home" and primary eq true]`, email, false},
		{scim.UserResourceType, `emails[type eq "home" or primary eq true]`, email, true},
		{scim.UserResourceType, `emails[not (type eq "home")]`, email, true},
		{scim.UserResourceType, `emails[not (type eq "work")]`, email, false},
		{scim.UserResourceType, `emails[type eq "work"]`, map[string]any{"TYPE": "work"}, true},
		{scim.UserResourceType, `emails[type eq "work"]`, map[string]any{"type": 5}, false},
		// members.value is caseExact.
		{scim.GroupResourceType, `members[value eq "abc"]`, map[string]any{"value": "ABC"}, false},
		{scim.GroupResourceType, `members[value eq "abc"]`, map[string]any{"value": "abc"}, true},
		{scim.GroupResourceType, `members[value sw "a"]`, map[string]any{"value": "Abc"}, false},
		{scim.GroupResourceType, `members[type eq "user"]`, map[string]any{"value": "abc", "type": "User"}, true},
	}
	for _, tt := range tests {
		p, err := filter.ParsePath(tt.rt, tt.path, filter.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if got := Match(p.Filter, tt.value); got != tt.want {
			t.Errorf("%s on %v = %v, want %v", tt.path, tt.value, got, tt.want)
		}
	}
}

func TestMatchLiterals(t *testing.T) {
	num := &scim.Attribute{Name: "n", Type: scim.TypeDecimal}
	when := &scim.Attribute{Name: "t", Type: scim.TypeDateTime}
	parent := &scim.Attribute{Name: "x", Type: scim.TypeComplex, MultiValued: true, SubAttributes: []scim.Attribute{*num, *when}}
	cmpOn := func(sub *scim.Attribute, op string, v any) filter.Expr {
		return &filter.Compare{Path: scim.AttrPath{Attr: parent, Sub: sub}, Op: op, Value: v}
	}
	value := map[string]any{"n": json.Number("2.5"), "t": "2026-01-02T03:04:05Z"}
	tests := []struct {
		e    filter.Expr
		want bool
	}{
		{cmpOn(num, filter.OpGt, int64(2)), true},
		{cmpOn(num, filter.OpLt, float64(2.4)), false},
		{cmpOn(num, filter.OpEq, float64(2.5)), true},
		{cmpOn(num, filter.OpEq, "2.5"), false},
		{cmpOn(when, filter.OpGt, t0.Add(-1)), true},
		{cmpOn(when, filter.OpEq, t0), true},
		{cmpOn(when, filter.OpLt, t0), false},
		{cmpOn(when, filter.OpGe, "2026-01-02T03:04:05.000Z"), true},
		{cmpOn(num, filter.OpEq, nil), false},
		{cmpOn(num, filter.OpNe, nil), true},
		{&filter.ValuePath{}, false},
	}
	for i, tt := range tests {
		if got := Match(tt.e, value); got != tt.want {
			t.Errorf("%d: got %v, want %v", i, got, tt.want)
		}
	}
}
