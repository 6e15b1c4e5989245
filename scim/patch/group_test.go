package patch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
	"github.com/google/go-cmp/cmp"
)

const conGroup = scim.SchemaConnectGroup

func baseGroup() scim.Group {
	g := scim.Group{
		ID:          "g1",
		ExternalID:  "ext-g1",
		DisplayName: "Staff",
		Connect:     &scim.ConnectGroup{Kind: scim.KindAudience},
		Meta:        &scim.Meta{ResourceType: "Group", Created: t0, LastModified: t0, Version: `W/"7"`},
	}
	g.SetSchemas()
	return g
}

func members(ids ...string) []scim.Member {
	out := make([]scim.Member, len(ids))
	for i, id := range ids {
		out[i] = scim.Member{Value: id}
	}
	return out
}

func replaceOf(ids ...string) *[]scim.Member {
	m := members(ids...)
	return &m
}

func TestApplyGroup(t *testing.T) {
	tests := []struct {
		name  string
		seed  store.MemberOps // m before the patch
		ops   string
		group func(g *scim.Group) // applied to baseGroup()
		want  store.MemberOps
		err   string
	}{
		{name: "replace displayName",
			ops:   `{"op":"replace","path":"displayName","value":"Teachers"}`,
			group: func(g *scim.Group) { g.DisplayName = "Teachers" }},
		{name: "okta rename with the id echoed",
			ops:   `{"op":"replace","value":{"id":"g1","displayName":"Teachers"}}`,
			group: func(g *scim.Group) { g.DisplayName = "Teachers" }},
		{name: "entra PascalCase replace externalId",
			ops:   `{"op":"Replace","path":"externalId","value":"e2"}`,
			group: func(g *scim.Group) { g.ExternalID = "e2" }},
		{name: "kind by URN path, case folded",
			ops:   `{"op":"replace","path":"` + conGroup + `:kind","value":"Course"}`,
			group: func(g *scim.Group) { g.Connect.Kind = scim.KindCourse }},
		{name: "remove kind drops the extension",
			ops:   `{"op":"remove","path":"` + conGroup + `:kind"}`,
			group: func(g *scim.Group) { g.Connect = nil; g.SetSchemas() }},
		{name: "kind in an extension object",
			ops:   `{"op":"replace","value":{"` + conGroup + `":{"kind":"course"}}}`,
			group: func(g *scim.Group) { g.Connect.Kind = scim.KindCourse }},
		{name: "unknown kind", ops: `{"op":"replace","path":"` + conGroup + `:kind","value":"club"}`, err: scim.ErrTypeInvalidValue},
		{name: "remove displayName", ops: `{"op":"remove","path":"displayName"}`, err: scim.ErrTypeInvalidValue},
		{name: "replace id", ops: `{"op":"replace","path":"id","value":"g2"}`, err: scim.ErrTypeMutability},
		{name: "unknown attribute", ops: `{"op":"replace","path":"userName","value":"x"}`, err: scim.ErrTypeInvalidPath},

		// Members.
		{name: "add members",
			ops:  `{"op":"add","path":"members","value":[{"value":"u1","display":"Alice"},{"value":"u2","type":"user"}]}`,
			want: store.MemberOps{Add: []scim.Member{{Value: "u1", Display: "Alice"}, {Value: "u2", Type: "User"}}}},
		{name: "entra add members PascalCase",
			ops:  `{"op":"Add","path":"members","value":[{"value":"u1"}]}`,
			want: store.MemberOps{Add: members("u1")}},
		{name: "add duplicate members once",
			ops:  `{"op":"add","path":"members","value":[{"value":"u1"},{"value":"u1"}]}`,
			want: store.MemberOps{Add: members("u1")}},
		{name: "add one member object",
			ops:  `{"op":"add","path":"members","value":{"value":"u1"}}`,
			want: store.MemberOps{Add: members("u1")}},
		{name: "add members without path",
			ops:   `{"op":"add","value":{"members":[{"value":"u1"}],"displayName":"Teachers"}}`,
			group: func(g *scim.Group) { g.DisplayName = "Teachers" },
			want:  store.MemberOps{Add: members("u1")}},
		{name: "rfc remove member by filter",
			ops:  `{"op":"remove","path":"members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}`,
			want: store.MemberOps{Remove: []string{"2819c223-7f76-453a-919d-413861904646"}}},
		{name: "remove members by or filter",
			ops:  `{"op":"remove","path":"members[value eq \"u1\" or value eq \"u2\"]"}`,
			want: store.MemberOps{Remove: []string{"u1", "u2"}}},
		{name: "entra remove members with a value list",
			ops:  `{"op":"Remove","path":"members","value":[{"value":"u1"},{"value":"u2"}]}`,
			want: store.MemberOps{Remove: []string{"u1", "u2"}}},
		{name: "remove members with an empty list removes nothing",
			ops:  `{"op":"remove","path":"members","value":[]}`,
			want: store.MemberOps{}},
		{name: "rfc remove all members",
			ops:  `{"op":"remove","path":"members"}`,
			want: store.MemberOps{RemoveAll: true}},
		{name: "rfc replace members",
			ops:  `{"op":"replace","path":"members","value":[{"value":"u1"},{"value":"u2"}]}`,
			want: store.MemberOps{Replace: replaceOf("u1", "u2")}},
		{name: "replace members with null empties the group",
			ops:  `{"op":"replace","path":"members","value":null}`,
			want: store.MemberOps{Replace: replaceOf()}},
		{name: "replace members without path",
			ops:  `{"op":"replace","value":{"members":[{"value":"u3"}]}}`,
			want: store.MemberOps{Replace: replaceOf("u3")}},
		{name: "rfc remove all then add",
			ops:  `{"op":"remove","path":"members"},{"op":"add","path":"members","value":[{"value":"u1"}]}`,
			want: store.MemberOps{RemoveAll: true, Add: members("u1")}},
		{name: "add then remove the same member",
			ops:  `{"op":"add","path":"members","value":[{"value":"u1"},{"value":"u2"}]},{"op":"remove","path":"members[value eq \"u1\"]"}`,
			want: store.MemberOps{Add: members("u2"), Remove: []string{"u1"}}},
		{name: "remove then add the same member",
			ops:  `{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"add","path":"members","value":[{"value":"u1"}]}`,
			want: store.MemberOps{Add: members("u1")}},
		{name: "replace then add and remove",
			ops: `{"op":"replace","path":"members","value":[{"value":"u1"},{"value":"u2"}]},
				{"op":"add","path":"members","value":[{"value":"u3"}]},{"op":"remove","path":"members[value eq \"u1\"]"}`,
			want: store.MemberOps{Replace: replaceOf("u2", "u3")}},
		{name: "remove all then remove one",
			ops:  `{"op":"remove","path":"members"},{"op":"remove","path":"members[value eq \"u1\"]"}`,
			want: store.MemberOps{RemoveAll: true}},
		{name: "seeded ops are kept",
			seed: store.MemberOps{Add: members("u9"), Remove: []string{"u8"}},
			ops:  `{"op":"add","path":"members","value":[{"value":"u8"}]}`,
			want: store.MemberOps{Add: members("u9", "u8")}},
		{name: "member ids are case-sensitive",
			ops:  `{"op":"add","path":"members","value":[{"value":"u1"},{"value":"U1"}]}`,
			want: store.MemberOps{Add: members("u1", "U1")}},
		{name: "other members filter", ops: `{"op":"remove","path":"members[display eq \"Alice\"]"}`, err: scim.ErrTypeInvalidFilter},
		{name: "members filter with and", ops: `{"op":"remove","path":"members[value eq \"a\" and value eq \"b\"]"}`, err: scim.ErrTypeInvalidFilter},
		{name: "members filter ne", ops: `{"op":"remove","path":"members[value ne \"a\"]"}`, err: scim.ErrTypeInvalidFilter},
		{name: "members filter on add", ops: `{"op":"add","path":"members[value eq \"a\"]","value":{"value":"a"}}`, err: scim.ErrTypeInvalidFilter},
		{name: "members sub-attribute", ops: `{"op":"replace","path":"members.display","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "member without value", ops: `{"op":"add","path":"members","value":[{"display":"x"}]}`, err: scim.ErrTypeInvalidValue},
		{name: "member value not a string", ops: `{"op":"add","path":"members","value":[{"value":7}]}`, err: scim.ErrTypeInvalidValue},
		{name: "members not a list", ops: `{"op":"add","path":"members","value":"u1"}`, err: scim.ErrTypeInvalidValue},
		{name: "member of a bad type", ops: `{"op":"add","path":"members","value":[{"value":"u1","type":"Robot"}]}`, err: scim.ErrTypeInvalidValue},
		{name: "failure after member ops",
			ops: `{"op":"add","path":"members","value":[{"value":"u1"}]},{"op":"replace","path":"displayName","value":"X"},{"op":"remove","path":"displayName"}`,
			err: scim.ErrTypeInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode(body(tt.ops))
			if err != nil {
				t.Fatal(err)
			}
			g, m := baseGroup(), tt.seed
			err = ApplyGroup(&g, &m, req.Operations)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error, want %s", tt.err)
				}
				if got := scimType(t, err); got != tt.err {
					t.Errorf("scimType %q (%v), want %q", got, err, tt.err)
				}
				if diff := cmp.Diff(baseGroup(), g); diff != "" {
					t.Errorf("failed patch changed the group (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.seed, m); diff != "" {
					t.Errorf("failed patch changed the member ops (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := baseGroup()
			if tt.group != nil {
				tt.group(&want)
			}
			if diff := cmp.Diff(want, g); diff != "" {
				t.Errorf("group (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, m); diff != "" {
				t.Errorf("member ops (-want +got):\n%s", diff)
			}
		})
	}
}

// memberBody is an add of n members in one operation, as Entra sends it.
func memberBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"op":"add","path":"members","value":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":"%08d-7f76-453a-919d-413861904646"}`, i)
	}
	b.WriteString(`]}`)
	return body(b.String())
}

func TestApplyGroupLargeMemberOps(t *testing.T) {
	req, err := Decode(memberBody(10000))
	if err != nil {
		t.Fatal(err)
	}
	// Remove every other member again through a value list (Entra's remove form).
	var rm strings.Builder
	rm.WriteString(`[`)
	for i := 0; i < 10000; i += 2 {
		if i > 0 {
			rm.WriteByte(',')
		}
		fmt.Fprintf(&rm, `{"value":"%08d-7f76-453a-919d-413861904646"}`, i)
	}
	rm.WriteString(`]`)
	ops := append(req.Operations, Operation{Op: "Remove", Path: "members", Value: []byte(rm.String())})
	g, m := baseGroup(), store.MemberOps{}
	if err := ApplyGroup(&g, &m, ops); err != nil {
		t.Fatal(err)
	}
	if len(m.Add) != 5000 || len(m.Remove) != 5000 {
		t.Fatalf("add %d remove %d, want 5000 each", len(m.Add), len(m.Remove))
	}
	if m.Add[0].Value != "00000001-7f76-453a-919d-413861904646" {
		t.Errorf("first add %q", m.Add[0].Value)
	}
}

func BenchmarkApplyGroupAdd10000Members(b *testing.B) {
	raw := memberBody(10000)
	b.ReportAllocs()
	for b.Loop() {
		req, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		g, m := baseGroup(), store.MemberOps{}
		if err := ApplyGroup(&g, &m, req.Operations); err != nil {
			b.Fatal(err)
		}
		if len(m.Add) != 10000 {
			b.Fatalf("%d members", len(m.Add))
		}
	}
}
