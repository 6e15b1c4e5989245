package patch

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// fuzzSeeds are bodies covering every operation form the table tests use.
var fuzzSeeds = []string{
	`{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],"nickname":"Babs"}}`,
	`{"op":"Replace","path":"active","value":"False"}`,
	`{"op":"replace","value":{"active":false}}`,
	`{"op":"replace","path":"emails[type eq \"work\"].value","value":"a@b.c"}`,
	`{"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1"}`,
	`{"op":"remove","path":"emails[type eq \"home\" or primary eq true]"}`,
	`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m"}`,
	`{"op":"Add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"E2"}}`,
	`{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:connect:2.0:User":{"interests":["a"],"customFields":[{"name":"x","value":"y"}]}}}`,
	`{"op":"replace","path":"name","value":{"givenName":"A","familyName":null}}`,
	`{"op":"remove","path":"name.givenName"}`,
	`{"op":"add","path":"members","value":[{"value":"u1"},{"value":"u2","type":"User"}]}`,
	`{"op":"Remove","path":"members","value":[{"value":"u1"}]}`,
	`{"op":"remove","path":"members[value eq \"u1\" or value eq \"u2\"]"}`,
	`{"op":"replace","value":{"id":"g1","displayName":"X","members":[{"value":"u3"}]}}`,
	`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:connect:2.0:Group:kind","value":"course"}`,
	`{"op":"remove","path":"members"}`,
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(body(s))
	}
	f.Add([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`))
	f.Add([]byte(`not json`))
}

// checkErr fails unless err is nil or a 4xx *scim.Error with a detail.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var se *scim.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *scim.Error", err, err)
	}
	if se.Status < 400 || se.Status > 499 || se.ScimType == "" || se.Detail == "" {
		t.Fatalf("bad client error %+v", se)
	}
}

func FuzzDecodeApplyUser(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Decode(data)
		checkErr(t, err)
		if err != nil {
			return
		}
		u := baseUser()
		before, _ := json.Marshal(u)
		err = ApplyUser(&u, req.Operations)
		checkErr(t, err)
		after, _ := json.Marshal(u)
		if err != nil {
			if string(before) != string(after) {
				t.Fatalf("failed patch changed the user:\n%s\n%s", before, after)
			}
			return
		}
		if u.UserName == "" || u.ID != "u1" || u.Meta == nil || len(u.Groups) != 1 {
			t.Fatalf("patch broke an invariant: %s", after)
		}
		// The result must survive another round (it is what the store keeps).
		again := u
		if err := ApplyUser(&again, []Operation{{Op: "replace", Path: "title", Value: []byte(`"t"`)}}); err != nil {
			t.Fatalf("patched user no longer patches: %v", err)
		}
	})
}

func FuzzApplyGroup(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Decode(data)
		checkErr(t, err)
		if err != nil {
			return
		}
		g := baseGroup()
		m := store.MemberOps{Add: members("seed")}
		err = ApplyGroup(&g, &m, req.Operations)
		checkErr(t, err)
		if err != nil {
			if g.DisplayName != "Staff" || len(m.Add) != 1 || m.Add[0].Value != "seed" || m.Replace != nil || m.RemoveAll || len(m.Remove) != 0 {
				t.Fatalf("failed patch changed its inputs: %+v %+v", g, m)
			}
			return
		}
		if g.DisplayName == "" || g.ID != "g1" || g.Members != nil {
			t.Fatalf("patch broke an invariant: %+v", g)
		}
		if k := g.Kind(); k != "" && k != scim.KindAudience && k != scim.KindCourse {
			t.Fatalf("kind %q", k)
		}
		// Add and Remove must be disjoint, values non-empty and unique.
		seen := map[string]bool{}
		var adds []scim.Member
		if m.Replace != nil {
			adds = *m.Replace
		}
		adds = append(adds, m.Add...)
		for _, mb := range adds {
			if mb.Value == "" || seen[mb.Value] {
				t.Fatalf("bad or duplicate add %q in %+v", mb.Value, m)
			}
			seen[mb.Value] = true
		}
		for _, id := range m.Remove {
			if id == "" || seen[id] {
				t.Fatalf("remove %q overlaps the adds in %+v", id, m)
			}
			seen[id] = true
		}
		if m.Replace != nil && (m.RemoveAll || len(m.Remove) > 0 || len(m.Add) > 0) {
			t.Fatalf("replace mixed with other ops: %+v", m)
		}
	})
}
