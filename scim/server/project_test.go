package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim"
)

// TestRenderMatchesFullDecode checks render, which decodes only the values a
// projection reaches into, against renderFull, which decodes everything, on
// resources with every kind of attribute and on projections of every shape
// (sub-attributes merged, whole and partial extensions, both orders,
// exclusions inside values, always-returned names).
func TestRenderMatchesFullDecode(t *testing.T) {
	yes, no := scim.BoolPtr(true), scim.BoolPtr(false)
	user := &scim.User{
		Schemas: []string{scim.SchemaUser, scim.SchemaEnterpriseUser, scim.SchemaConnectUser},
		ID:      "u1", ExternalID: "ext-1", UserName: "bjensen", DisplayName: "Babs <Jensen> & co",
		Name:   &scim.Name{GivenName: "Barbara", FamilyName: "Jensen", Formatted: "Ms. Barbara J Jensen III"},
		Active: yes, Title: "Tour Guide", Locale: "en-US",
		Emails:       []scim.MultiValue{{Value: "bjensen@example.com", Type: "work", Primary: true}, {Value: "babs@jensen.org", Type: "home"}},
		PhoneNumbers: []scim.MultiValue{{Value: "555-555-8377", Type: "work"}},
		Addresses:    []scim.Address{{Type: "work", StreetAddress: "100 Universal City Plaza", Locality: "Hollywood", Primary: true}},
		Groups:       []scim.GroupRef{{Value: "g1", Display: "Tour Guides", Type: "direct"}},
		Enterprise: &scim.EnterpriseUser{EmployeeNumber: "701984", Department: "Tour Operations",
			Manager: &scim.Manager{Value: "m1", DisplayName: "John Smith"}},
		Connect: &scim.ConnectUser{EmailVerified: no, Interests: []string{"climbing"}},
		Meta:    &scim.Meta{ResourceType: "User", Location: "https://hub.example/scim/v2/Users/u1", Version: `W/"3"`},
	}
	group := &scim.Group{Schemas: []string{scim.SchemaGroup}, ID: "g1", DisplayName: "Tour Guides",
		Members: []scim.Member{{Value: "u1", Display: "Babs", Type: "User"}, {Value: "u2", Type: "User"}},
		Meta:    &scim.Meta{ResourceType: "Group", Version: `W/"1"`}}
	ent, con := scim.SchemaEnterpriseUser, scim.SchemaConnectUser
	for _, tt := range []struct {
		name         string
		rt           *scim.ResourceType
		v            any
		attrs, excls string // comma-separated, "-" for none
	}{
		{"id only", scim.UserResourceType, user, "id", "-"},
		{"simple attributes", scim.UserResourceType, user, "userName,displayName,active,title", "-"},
		{"sub-attributes merged", scim.UserResourceType, user, "emails.value,emails.type,name.givenName", "-"},
		{"whole then sub", scim.UserResourceType, user, "emails,emails.value,name,name.familyName", "-"},
		{"sub then whole", scim.UserResourceType, user, "emails.value,emails,name.familyName,name", "-"},
		{"extension attribute", scim.UserResourceType, user, ent + ":employeeNumber," + ent + ":manager.displayName", "-"},
		{"whole extension then attribute", scim.UserResourceType, user, ent + "," + ent + ":department", "-"},
		{"attribute then whole extension", scim.UserResourceType, user, ent + ":department," + ent, "-"},
		{"unset attribute", scim.UserResourceType, user, "nickName,x509Certificates.value", "-"},
		{"exclude simple", scim.UserResourceType, user, "-", "emails,groups,title"},
		{"exclude sub-attributes", scim.UserResourceType, user, "-", "emails.type,name.formatted,addresses.locality"},
		{"exclude extension attribute", scim.UserResourceType, user, "-", ent + ":manager," + con + ":interests," + con + ":emailVerified"},
		{"exclude whole extensions", scim.UserResourceType, user, "-", ent + "," + con},
		{"exclude always returned", scim.UserResourceType, user, "-", "id,meta,schemas"},
		{"both", scim.UserResourceType, user, "emails,name,meta," + ent, "emails.primary,name.givenName," + ent + ":manager.value"},
		{"group members cut", scim.GroupResourceType, group, "members.value,displayName", "-"},
		{"group without display", scim.GroupResourceType, group, "-", "members.display,displayName"},
		{"group nothing known", scim.GroupResourceType, group, "nonsense", "-"},
		{"group without members loaded", scim.GroupResourceType, &scim.Group{Schemas: []string{scim.SchemaGroup}, ID: "g2", DisplayName: "Empty",
			Connect: &scim.ConnectGroup{Kind: scim.KindCourse}, Meta: group.Meta}, "-", "members"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p projection
			if tt.attrs != "-" {
				p.attrs = parseAttrList(tt.rt, strings.Split(tt.attrs, ","))
				if p.attrs == nil {
					p.attrs = []attrRef{}
				}
			}
			if tt.excls != "-" {
				p.excluded = parseAttrList(tt.rt, strings.Split(tt.excls, ","))
			}
			got, err := p.render(tt.v, tt.rt)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.renderFull(tt.v, tt.rt)
			if err != nil {
				t.Fatal(err)
			}
			norm := func(v any) any {
				raw, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				var out any
				if err := json.Unmarshal(raw, &out); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
				t.Errorf("render differs from a full decode (-full +render):\n%s", diff)
			}
		})
	}
}

// renderFull is render as it was before values stayed raw: the whole resource
// decoded into a generic map. The test checks render against it.
func (p projection) renderFull(v any, rt *scim.ResourceType) (any, error) {
	if p.attrs == nil && len(p.excluded) == 0 {
		return v, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var full map[string]any
	if err := json.Unmarshal(raw, &full); err != nil {
		return nil, err
	}
	if p.attrs != nil {
		out := map[string]any{}
		for k, val := range full {
			if always(k) {
				out[k] = val
			}
		}
		for _, r := range p.attrs {
			copyRefFull(out, full, r)
		}
		full = out
	}
	for _, r := range p.excluded {
		dropRefFull(full, r)
	}
	// Extensions left empty by projection disappear, and "schemas" lists what is
	// left.
	schemas := []any{rt.Schema.ID}
	for _, e := range rt.Extensions {
		if obj, ok := full[e.ID].(map[string]any); ok {
			if len(obj) == 0 {
				delete(full, e.ID)
				continue
			}
			schemas = append(schemas, e.ID)
		}
	}
	full["schemas"] = schemas
	return full, nil
}

func copyRefFull(dst, src map[string]any, r attrRef) {
	from, to := src, dst
	if r.ext != "" {
		obj, ok := src[r.ext].(map[string]any)
		if !ok {
			return
		}
		if r.attr == "" {
			to[r.ext] = obj
			return
		}
		from = obj
		t, ok := dst[r.ext].(map[string]any)
		if !ok {
			t = map[string]any{}
			dst[r.ext] = t
		}
		to = t
	}
	val, ok := from[r.attr]
	if !ok {
		return
	}
	if r.sub == "" {
		to[r.attr] = val
		return
	}
	switch x := val.(type) {
	case map[string]any:
		t, ok := to[r.attr].(map[string]any)
		if !ok {
			t = map[string]any{}
			to[r.attr] = t
		}
		if sv, ok := x[r.sub]; ok {
			t[r.sub] = sv
		}
	case []any:
		// Multi-valued complex: keep the sub-attribute of every value, merged
		// with sub-attributes already copied.
		prev, _ := to[r.attr].([]any)
		out := make([]any, len(x))
		for i, el := range x {
			m := map[string]any{}
			if i < len(prev) {
				if pm, ok := prev[i].(map[string]any); ok {
					m = pm
				}
			}
			if em, ok := el.(map[string]any); ok {
				if sv, ok := em[r.sub]; ok {
					m[r.sub] = sv
				}
			}
			out[i] = m
		}
		to[r.attr] = out
	}
}

func dropRefFull(m map[string]any, r attrRef) {
	if r.ext == "" && always(r.attr) {
		return
	}
	target := m
	if r.ext != "" {
		if r.attr == "" {
			delete(m, r.ext)
			return
		}
		obj, ok := m[r.ext].(map[string]any)
		if !ok {
			return
		}
		target = obj
	}
	if r.sub == "" {
		delete(target, r.attr)
		return
	}
	switch x := target[r.attr].(type) {
	case map[string]any:
		delete(x, r.sub)
	case []any:
		for _, el := range x {
			if em, ok := el.(map[string]any); ok {
				delete(em, r.sub)
			}
		}
	}
}
