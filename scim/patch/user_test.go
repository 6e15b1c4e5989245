package patch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/google/go-cmp/cmp"
)

const (
	ent = scim.SchemaEnterpriseUser
	con = scim.SchemaConnectUser
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func baseUser() scim.User {
	u := scim.User{
		ID:          "u1",
		ExternalID:  "ext1",
		UserName:    "alice",
		Name:        &scim.Name{GivenName: "Alice", FamilyName: "Smith"},
		DisplayName: "Alice Smith",
		Active:      scim.BoolPtr(true),
		Emails: []scim.MultiValue{
			{Value: "alice@work.example", Type: "work", Primary: true},
			{Value: "alice@home.example", Type: "home"},
		},
		PhoneNumbers: []scim.MultiValue{{Value: "+1 555 0100", Type: "work"}},
		Groups:       []scim.GroupRef{{Value: "g1", Display: "Staff"}},
		Enterprise:   &scim.EnterpriseUser{EmployeeNumber: "E1", Department: "Sales"},
		Meta:         &scim.Meta{ResourceType: "User", Created: t0, LastModified: t0, Version: `W/"3"`},
	}
	u.SetSchemas()
	return u
}

// body wraps operations in a PatchOp message.
func body(ops string) []byte {
	return []byte(`{"schemas":["` + scim.SchemaPatchOp + `"],"Operations":[` + ops + `]}`)
}

// scimType returns err's scimType, failing when err is not a 400 *scim.Error.
func scimType(tb testing.TB, err error) string {
	tb.Helper()
	var se *scim.Error
	if !errors.As(err, &se) {
		tb.Fatalf("error %v (%T) is not a *scim.Error", err, err)
	}
	if se.Status != 400 {
		tb.Fatalf("status %d, want 400 (%v)", se.Status, se)
	}
	return se.ScimType
}

func TestApplyUser(t *testing.T) {
	tests := []struct {
		name string
		ops  string
		want func(u *scim.User) // applied to baseUser(); nil when an error is expected
		err  string             // expected scimType
	}{
		// RFC 7644 §3.5.2.1 add.
		{name: "rfc add without path",
			ops: `{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],"nickname":"Babs"}}`,
			want: func(u *scim.User) {
				u.Emails = append(u.Emails, scim.MultiValue{Value: "babs@jensen.org", Type: "home"})
				u.NickName = "Babs"
			}},
		{name: "add simple attribute",
			ops:  `{"op":"add","path":"nickName","value":"Al"}`,
			want: func(u *scim.User) { u.NickName = "Al" }},
		{name: "add complex merges sub-attributes",
			ops:  `{"op":"add","path":"name","value":{"middleName":"J","givenName":"Alicia"}}`,
			want: func(u *scim.User) { u.Name.MiddleName, u.Name.GivenName = "J", "Alicia" }},
		{name: "add multi-valued appends",
			ops: `{"op":"add","path":"emails","value":[{"value":"alice@other.example","type":"other"}]}`,
			want: func(u *scim.User) {
				u.Emails = append(u.Emails, scim.MultiValue{Value: "alice@other.example", Type: "other"})
			}},
		{name: "add multi-valued de-duplicates equal values",
			ops:  `{"op":"add","path":"emails","value":[{"value":"ALICE@work.example","type":"work"},{"value":"alice@home.example","type":"home"}]}`,
			want: func(u *scim.User) {}},
		{name: "add single object to multi-valued",
			ops: `{"op":"add","path":"phoneNumbers","value":{"value":"+1 555 0199","type":"mobile"}}`,
			want: func(u *scim.User) {
				u.PhoneNumbers = append(u.PhoneNumbers, scim.MultiValue{Value: "+1 555 0199", Type: "mobile"})
			}},
		{name: "add primary value clears the other primary",
			ops: `{"op":"add","path":"emails","value":[{"value":"new@example.org","type":"other","primary":true}]}`,
			want: func(u *scim.User) {
				u.Emails[0].Primary = false
				u.Emails = append(u.Emails, scim.MultiValue{Value: "new@example.org", Type: "other", Primary: true})
			}},
		{name: "add existing value as primary",
			ops:  `{"op":"add","path":"emails","value":[{"value":"alice@home.example","type":"home","primary":true}]}`,
			want: func(u *scim.User) { u.Emails[0].Primary, u.Emails[1].Primary = false, true }},
		{name: "add to empty extension creates it",
			ops:  `{"op":"add","path":"` + con + `:interests","value":["chess","Go"]}`,
			want: func(u *scim.User) { u.Connect = &scim.ConnectUser{Interests: []string{"chess", "Go"}} }},
		{name: "simple multi-valued add de-duplicates case-insensitively",
			ops:  `{"op":"add","path":"` + con + `:interests","value":["chess"]},{"op":"add","path":"` + con + `:interests","value":["CHESS","go"]}`,
			want: func(u *scim.User) { u.Connect = &scim.ConnectUser{Interests: []string{"chess", "go"}} }},

		// RFC 7644 §3.5.2.3 replace.
		{name: "rfc replace without path",
			ops: `{"op":"replace","value":{"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"nickName":"Babs"}}`,
			want: func(u *scim.User) {
				u.Emails = []scim.MultiValue{{Value: "bjensen@example.com", Type: "work", Primary: true}, {Value: "babs@jensen.org", Type: "home"}}
				u.NickName = "Babs"
			}},
		{name: "rfc replace value path then sub-attribute",
			ops: `{"op":"add","path":"addresses","value":[{"type":"work","streetAddress":"1 Old St","locality":"Here"}]},
				{"op":"replace","path":"addresses[type eq \"work\"]","value":{"type":"work","streetAddress":"911 Universal City Plaza","locality":"Hollywood","primary":true}},
				{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"1010 Broadway Ave"}`,
			want: func(u *scim.User) {
				u.Addresses = []scim.Address{{Type: "work", StreetAddress: "1010 Broadway Ave", Locality: "Hollywood", Primary: true}}
			}},
		{name: "replace sub-attribute",
			ops:  `{"op":"replace","path":"name.givenName","value":"Alicia"}`,
			want: func(u *scim.User) { u.Name.GivenName = "Alicia" }},
		{name: "replace whole multi-valued list",
			ops:  `{"op":"replace","path":"phoneNumbers","value":[{"value":"+44 20 0000","type":"home"}]}`,
			want: func(u *scim.User) { u.PhoneNumbers = []scim.MultiValue{{Value: "+44 20 0000", Type: "home"}} }},
		{name: "replace value path sub-attribute",
			ops:  `{"op":"replace","path":"emails[type eq \"work\"].value","value":"alice@new.example"}`,
			want: func(u *scim.User) { u.Emails[0].Value = "alice@new.example" }},
		{name: "replace value path with and",
			ops:  `{"op":"replace","path":"emails[type eq \"home\" and value co \"HOME\"].display","value":"Home mail"}`,
			want: func(u *scim.User) { u.Emails[1].Display = "Home mail" }},
		{name: "replace whole filtered value",
			ops:  `{"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"h2@example.org","type":"home"}}`,
			want: func(u *scim.User) { u.Emails[1] = scim.MultiValue{Value: "h2@example.org", Type: "home"} }},
		{name: "replace primary through a filter moves it",
			ops:  `{"op":"replace","path":"emails[type eq \"home\"].primary","value":true}`,
			want: func(u *scim.User) { u.Emails[0].Primary, u.Emails[1].Primary = false, true }},
		{name: "replace filtered by primary",
			ops:  `{"op":"replace","path":"emails[primary eq true].value","value":"p@example.org"}`,
			want: func(u *scim.User) { u.Emails[0].Value = "p@example.org" }},
		{name: "replace filter matching nothing",
			ops: `{"op":"replace","path":"emails[type eq \"other\"].value","value":"x@example.org"}`,
			err: scim.ErrTypeNoTarget},
		{name: "replace list with two primaries",
			ops: `{"op":"replace","path":"emails","value":[{"value":"a@x.org","primary":true},{"value":"b@x.org","primary":true}]}`,
			err: scim.ErrTypeInvalidValue},
		{name: "replace with null unassigns",
			ops:  `{"op":"replace","path":"displayName","value":null}`,
			want: func(u *scim.User) { u.DisplayName = "" }},
		{name: "replace extension attribute",
			ops:  `{"op":"replace","path":"` + ent + `:department","value":"Engineering"}`,
			want: func(u *scim.User) { u.Enterprise.Department = "Engineering" }},
		{name: "replace URN-keyed extension object merges",
			ops:  `{"op":"replace","value":{"` + ent + `":{"costCenter":"C9"}}}`,
			want: func(u *scim.User) { u.Enterprise.CostCenter = "C9" }},
		{name: "replace whole extension by its URN path",
			ops:  `{"op":"replace","path":"` + ent + `","value":{"division":"North"}}`,
			want: func(u *scim.User) { u.Enterprise.Division = "North" }},
		{name: "password may be replaced",
			ops:  `{"op":"replace","path":"password","value":"s3cret!"}`,
			want: func(u *scim.User) { u.Password = "s3cret!" }},
		{name: "attribute names are case-insensitive",
			ops: `{"op":"replace","path":"NAME.GIVENNAME","value":"A"},{"op":"replace","value":{"DisplayName":"AS"}},
				{"op":"add","path":"Emails","value":[{"Value":"x@example.org","TYPE":"other"}]}`,
			want: func(u *scim.User) {
				u.Name.GivenName, u.DisplayName = "A", "AS"
				u.Emails = append(u.Emails, scim.MultiValue{Value: "x@example.org", Type: "other"})
			}},
		{name: "dotted key without path",
			ops:  `{"op":"replace","value":{"name.familyName":"Jones"}}`,
			want: func(u *scim.User) { u.Name.FamilyName = "Jones" }},

		// Real clients.
		{name: "core schema URN prefix",
			ops:  `{"op":"replace","path":"` + scim.SchemaUser + `:name.familyName","value":"Jones"}`,
			want: func(u *scim.User) { u.Name.FamilyName = "Jones" }},
		{name: "entra update request",
			ops: `{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updated@example.com"},
				{"op":"Replace","path":"name.familyName","value":"Updated"},
				{"op":"Add","path":"preferredLanguage","value":"en-US"},
				{"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"12345"},
				{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"},
				{"op":"Replace","path":"` + ent + `:department","value":"R&D"},
				{"op":"Replace","path":"active","value":"True"}`,
			want: func(u *scim.User) {
				u.Emails[0].Value = "updated@example.com"
				u.Name.FamilyName = "Updated"
				u.PreferredLanguage = "en-US"
				u.Addresses = []scim.Address{{Type: "work", PostalCode: "12345", StreetAddress: "1 Main St"}}
				u.Enterprise.Department = "R&D"
			}},
		{name: "okta deactivate",
			ops:  `{"op":"replace","value":{"active":false}}`,
			want: func(u *scim.User) { u.Active = scim.BoolPtr(false) }},
		{name: "okta echoes the unchanged id",
			ops:  `{"op":"replace","value":{"id":"u1","active":false}}`,
			want: func(u *scim.User) { u.Active = scim.BoolPtr(false) }},
		{name: "entra PascalCase op and string boolean",
			ops:  `{"op":"Replace","path":"active","value":"False"}`,
			want: func(u *scim.User) { u.Active = scim.BoolPtr(false) }},
		{name: "entra string boolean without path",
			ops:  `{"op":"Replace","value":{"active":"TRUE"}}`,
			want: func(u *scim.User) {}},
		{name: "entra URN-qualified keys without path",
			ops: `{"op":"Add","value":{"` + ent + `:employeeNumber":"E2","title":"Boss","` + ent + `:manager":"boss-id"}}`,
			want: func(u *scim.User) {
				u.Enterprise.EmployeeNumber, u.Title = "E2", "Boss"
				u.Enterprise.Manager = &scim.Manager{Value: "boss-id"}
			}},
		{name: "entra manager as a string",
			ops:  `{"op":"Add","path":"` + ent + `:manager","value":"boss-id"}`,
			want: func(u *scim.User) { u.Enterprise.Manager = &scim.Manager{Value: "boss-id"} }},
		{name: "entra manager read-only displayName ignored",
			ops:  `{"op":"Replace","path":"` + ent + `:manager","value":{"value":"m2","displayName":"Boss"}}`,
			want: func(u *scim.User) { u.Enterprise.Manager = &scim.Manager{Value: "m2"} }},
		{name: "entra remove manager",
			ops:  `{"op":"Add","path":"` + ent + `:manager","value":"boss-id"},{"op":"Remove","path":"` + ent + `:manager"}`,
			want: func(u *scim.User) {}},
		{name: "entra add through a filter creates the value",
			ops: `{"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0199"}`,
			want: func(u *scim.User) {
				u.PhoneNumbers = append(u.PhoneNumbers, scim.MultiValue{Value: "+1 555 0199", Type: "mobile"})
			}},
		{name: "entra address sub-attributes through a filter",
			ops: `{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Paris"},
				{"op":"Add","path":"addresses[type eq \"work\"].country","value":"FR"}`,
			want: func(u *scim.User) { u.Addresses = []scim.Address{{Type: "work", Locality: "Paris", Country: "FR"}} }},
		{name: "entra add through a filter on an existing value",
			ops:  `{"op":"Add","path":"emails[type eq \"work\"].value","value":"alice@new.example"}`,
			want: func(u *scim.User) { u.Emails[0].Value = "alice@new.example" }},
		{name: "connect custom field through a filter",
			ops: `{"op":"add","path":"` + con + `:customFields[name eq \"shoe\"].value","value":"42"},
				{"op":"replace","path":"` + con + `:customFields[name eq \"SHOE\"].value","value":"43"}`,
			want: func(u *scim.User) {
				u.Connect = &scim.ConnectUser{CustomFields: []scim.CustomField{{Name: "shoe", Value: "43"}}}
			}},

		// RFC 7644 §3.5.2.2 remove.
		{name: "remove simple attribute",
			ops:  `{"op":"remove","path":"displayName"}`,
			want: func(u *scim.User) { u.DisplayName = "" }},
		{name: "remove sub-attribute",
			ops:  `{"op":"remove","path":"name.givenName"}`,
			want: func(u *scim.User) { u.Name.GivenName = "" }},
		{name: "remove multi-valued attribute",
			ops:  `{"op":"remove","path":"phoneNumbers"}`,
			want: func(u *scim.User) { u.PhoneNumbers = nil }},
		{name: "remove filtered values",
			ops:  `{"op":"remove","path":"emails[type eq \"home\"]"}`,
			want: func(u *scim.User) { u.Emails = u.Emails[:1] }},
		{name: "remove sub-attribute of filtered values",
			ops:  `{"op":"remove","path":"emails[type eq \"work\"].primary"}`,
			want: func(u *scim.User) { u.Emails[0].Primary = false }},
		{name: "remove filter matching nothing changes nothing",
			ops:  `{"op":"remove","path":"emails[type eq \"other\"]"}`,
			want: func(u *scim.User) {}},
		{name: "remove with a value list",
			ops:  `{"op":"remove","path":"emails","value":[{"value":"ALICE@home.example"}]}`,
			want: func(u *scim.User) { u.Emails = u.Emails[:1] }},
		{name: "remove extension attribute",
			ops:  `{"op":"remove","path":"` + ent + `:employeeNumber"}`,
			want: func(u *scim.User) { u.Enterprise.EmployeeNumber = "" }},
		{name: "remove last extension attributes drops the extension",
			ops:  `{"op":"remove","path":"` + ent + `:employeeNumber"},{"op":"remove","path":"` + ent + `:department"}`,
			want: func(u *scim.User) { u.Enterprise = nil }},
		{name: "remove whole extension",
			ops:  `{"op":"remove","path":"` + ent + `"}`,
			want: func(u *scim.User) { u.Enterprise = nil }},
		{name: "remove absent attribute",
			ops:  `{"op":"remove","path":"nickName"}`,
			want: func(u *scim.User) {}},

		// Failures.
		{name: "remove without path", ops: `{"op":"remove"}`, err: scim.ErrTypeNoTarget},
		{name: "remove required userName", ops: `{"op":"remove","path":"userName"}`, err: scim.ErrTypeInvalidValue},
		{name: "replace userName with empty", ops: `{"op":"replace","path":"userName","value":""}`, err: scim.ErrTypeInvalidValue},
		{name: "replace id", ops: `{"op":"replace","path":"id","value":"u2"}`, err: scim.ErrTypeMutability},
		{name: "replace different id without path", ops: `{"op":"replace","value":{"id":"u2"}}`, err: scim.ErrTypeMutability},
		{name: "replace meta", ops: `{"op":"replace","path":"meta.version","value":"W/\"9\""}`, err: scim.ErrTypeMutability},
		{name: "add groups", ops: `{"op":"add","path":"groups","value":[{"value":"g2"}]}`, err: scim.ErrTypeMutability},
		{name: "remove groups", ops: `{"op":"remove","path":"groups[value eq \"g1\"]"}`, err: scim.ErrTypeMutability},
		{name: "groups without path", ops: `{"op":"add","value":{"groups":[{"value":"g2"}]}}`, err: scim.ErrTypeMutability},
		{name: "unknown attribute", ops: `{"op":"add","path":"shoeSize","value":"42"}`, err: scim.ErrTypeInvalidPath},
		{name: "unknown sub-attribute", ops: `{"op":"add","path":"name.nick","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "unknown extension attribute", ops: `{"op":"add","path":"` + ent + `:shoe","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "unknown key without path", ops: `{"op":"add","value":{"shoeSize":"42"}}`, err: scim.ErrTypeInvalidPath},
		{name: "unknown sub-attribute in value", ops: `{"op":"add","path":"emails","value":[{"value":"a@b.c","colour":"red"}]}`, err: scim.ErrTypeInvalidPath},
		{name: "trailing dot", ops: `{"op":"add","path":"name.","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "bad filter syntax", ops: `{"op":"replace","path":"emails[type eq]","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "filter on single-valued attribute", ops: `{"op":"replace","path":"userName[value eq \"x\"]","value":"x"}`, err: scim.ErrTypeInvalidPath},
		{name: "filter key without path", ops: `{"op":"add","value":{"emails[type eq \"work\"].value":"x"}}`, err: scim.ErrTypeInvalidPath},
		{name: "wrong type string", ops: `{"op":"replace","path":"userName","value":5}`, err: scim.ErrTypeInvalidValue},
		{name: "wrong type boolean", ops: `{"op":"replace","path":"active","value":"maybe"}`, err: scim.ErrTypeInvalidValue},
		{name: "wrong type complex", ops: `{"op":"replace","path":"name","value":5}`, err: scim.ErrTypeInvalidValue},
		{name: "wrong type in list", ops: `{"op":"add","path":"emails","value":[{"value":true}]}`, err: scim.ErrTypeInvalidValue},
		{name: "scalar without path", ops: `{"op":"replace","value":"x"}`, err: scim.ErrTypeInvalidValue},
		{name: "unknown op", ops: `{"op":"move","path":"title","value":"x"}`, err: scim.ErrTypeInvalidSyntax},
		{name: "failure after a good op", ops: `{"op":"replace","path":"displayName","value":"X"},{"op":"replace","path":"id","value":"u2"}`, err: scim.ErrTypeMutability},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode(body(tt.ops))
			if err == nil {
				u := baseUser()
				err = ApplyUser(&u, req.Operations)
				if err == nil && tt.want != nil {
					want := baseUser()
					tt.want(&want)
					want.SetSchemas()
					if diff := cmp.Diff(want, u); diff != "" {
						t.Errorf("user (-want +got):\n%s", diff)
					}
					return
				}
				if err != nil && tt.err != "" {
					if diff := cmp.Diff(baseUser(), u); diff != "" {
						t.Errorf("failed patch changed the user (-want +got):\n%s", diff)
					}
				}
			}
			if tt.err == "" {
				t.Fatalf("unexpected error %v", err)
			}
			if err == nil {
				t.Fatalf("no error, want %s", tt.err)
			}
			if got := scimType(t, err); got != tt.err {
				t.Errorf("scimType %q (%v), want %q", got, err, tt.err)
			}
		})
	}
}

func TestApplyUserOpsWithoutDecode(t *testing.T) {
	// The server may build operations itself; Apply must accept any op case too.
	u := baseUser()
	if err := ApplyUser(&u, []Operation{{Op: "REPLACE", Path: "title", Value: []byte(`"CTO"`)}}); err != nil {
		t.Fatal(err)
	}
	if u.Title != "CTO" {
		t.Errorf("title %q", u.Title)
	}
	for _, op := range []Operation{
		{Op: "remove"},
		{Op: "add", Path: "title"},
		{Op: "add", Path: "title", Value: []byte(`{`)},
	} {
		if err := ApplyUser(&u, []Operation{op}); err == nil {
			t.Errorf("%+v: no error", op)
		} else {
			scimType(t, err)
		}
	}
	many := make([]Operation, MaxOperations+1)
	if err := ApplyUser(&u, many); scimType(t, err) != scim.ErrTypeInvalidSyntax {
		t.Errorf("too many ops: %v", err)
	}
}

func TestDecode(t *testing.T) {
	ok := `{"op":"add","path":"title","value":"x"}`
	tests := []struct {
		name string
		body string
		err  string
		ops  []string // lower-cased ops when no error
	}{
		{name: "ok", body: string(body(ok + `,{"op":"Replace","path":"active","value":"False"},{"op":"REMOVE","path":"title"}`)), ops: []string{"add", "replace", "remove"}},
		{name: "lower-case operations key", body: `{"schemas":["` + scim.SchemaPatchOp + `"],"operations":[` + ok + `]}`, ops: []string{"add"}},
		{name: "replace with null", body: string(body(`{"op":"replace","path":"title","value":null}`)), ops: []string{"replace"}},
		{name: "not JSON", body: `{"schemas":`, err: scim.ErrTypeInvalidSyntax},
		{name: "trailing data", body: string(body(ok)) + `{}`, err: scim.ErrTypeInvalidSyntax},
		{name: "array", body: `[]`, err: scim.ErrTypeInvalidSyntax},
		{name: "no schema", body: `{"Operations":[` + ok + `]}`, err: scim.ErrTypeInvalidSyntax},
		{name: "wrong schema", body: `{"schemas":["` + scim.SchemaUser + `"],"Operations":[` + ok + `]}`, err: scim.ErrTypeInvalidSyntax},
		{name: "no operations", body: string(body(``)), err: scim.ErrTypeInvalidSyntax},
		{name: "too many operations", body: string(body(strings.TrimSuffix(strings.Repeat(ok+",", MaxOperations+1), ","))), err: scim.ErrTypeInvalidSyntax},
		{name: "unknown op", body: string(body(`{"op":"copy","path":"title","value":"x"}`)), err: scim.ErrTypeInvalidSyntax},
		{name: "op not a string", body: string(body(`{"op":1,"path":"title","value":"x"}`)), err: scim.ErrTypeInvalidSyntax},
		{name: "add without value", body: string(body(`{"op":"add","path":"title"}`)), err: scim.ErrTypeInvalidSyntax},
		{name: "add null", body: string(body(`{"op":"add","path":"title","value":null}`)), err: scim.ErrTypeInvalidSyntax},
		{name: "replace without value", body: string(body(`{"op":"replace","path":"title"}`)), err: scim.ErrTypeInvalidSyntax},
		{name: "remove without path", body: string(body(`{"op":"remove"}`)), err: scim.ErrTypeNoTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode([]byte(tt.body))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error, want %s", tt.err)
				}
				if got := scimType(t, err); got != tt.err {
					t.Errorf("scimType %q (%v), want %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ops []string
			for _, op := range req.Operations {
				ops = append(ops, op.Op)
			}
			if diff := cmp.Diff(tt.ops, ops); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeLargeValue(t *testing.T) {
	// One op may carry thousands of members; only the op count is bounded.
	v := `[` + strings.TrimSuffix(strings.Repeat(`{"value":"0123456789abcdef"},`, 20000), ",") + `]`
	req, err := Decode(body(`{"op":"add","path":"members","value":` + v + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Operations) != 1 {
		t.Fatalf("%d operations", len(req.Operations))
	}
}
