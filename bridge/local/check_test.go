package local_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

func full() local.Account {
	return local.Account{
		Username: "tcfull", Auth: local.AuthConnect, Server: "hub", HubUserID: "h1",
		Email: "e@x", EmailVerified: true, GivenName: "G", FamilyName: "F", DisplayName: "D",
		IDNumber: "I", Language: "cs", Timezone: "Europe/Prague", City: "Brno", Country: "CZ",
		Phone: "1", Title: "T", Organization: "O", Department: "Dp", Interests: []string{"i"},
		CustomFields: []local.CustomField{{Name: "n", Value: "v"}}, PasswordHash: "$argon2id$x",
		Privileged: true, Suspended: true, SuspendedBy: local.SuspendedByConnect,
		Deleted: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}
}

// changed lists the struct fields in which a and b differ.
func changed(a, b local.Account) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, va.Type().Field(i).Name)
		}
	}
	return out
}

// TestMergeEveryField: each field bit writes exactly its own fields, all bits
// together write every writable field, and SameContent sees each change.
func TestMergeEveryField(t *testing.T) {
	want := map[local.Fields][]string{
		local.FieldUsername: {"Username"}, local.FieldAuth: {"Auth", "Server", "HubUserID"},
		local.FieldEmail: {"Email"}, local.FieldEmailVerified: {"EmailVerified"},
		local.FieldGivenName: {"GivenName"}, local.FieldFamilyName: {"FamilyName"},
		local.FieldDisplayName: {"DisplayName"}, local.FieldIDNumber: {"IDNumber"},
		local.FieldLanguage: {"Language"}, local.FieldTimezone: {"Timezone"}, local.FieldCity: {"City"},
		local.FieldCountry: {"Country"}, local.FieldPhone: {"Phone"}, local.FieldTitle: {"Title"},
		local.FieldOrganization: {"Organization"}, local.FieldDepartment: {"Department"},
		local.FieldInterests: {"Interests"}, local.FieldCustomFields: {"CustomFields"},
		local.FieldPasswordHash: {"PasswordHash"}, local.FieldPrivileged: {"Privileged"},
		local.FieldSuspended: {"Suspended", "SuspendedBy"}, local.FieldDeleted: {"Deleted"},
	}
	var all local.Fields
	for f := local.Fields(1); f <= local.AllFields; f <<= 1 {
		names, ok := want[f]
		if !ok {
			t.Fatalf("field bit %x has no expectation: add it to this test", f)
		}
		all |= f
		got := changed(local.Account{}, local.Merge(local.Account{}, full(), f))
		if !reflect.DeepEqual(got, names) {
			t.Errorf("Merge with %x changed %v, want %v", f, got, names)
		}
		if local.SameContent(local.Account{}, local.Merge(local.Account{}, full(), f)) {
			t.Errorf("SameContent misses a change of %v", names)
		}
	}
	if all != local.AllFields || len(want) != 22 {
		t.Fatalf("AllFields = %x, bits = %x", local.AllFields, all)
	}
	m := local.Merge(local.Account{ID: "7", Created: time.Unix(1, 0)}, full(), local.AllFields)
	if m.ID != "7" || !m.Created.Equal(time.Unix(1, 0)) {
		t.Fatal("Merge changed ID or Created")
	}
	if local.SyncFields.Has(local.FieldPrivileged) || !local.SyncFields.Has(local.FieldEmail) {
		t.Fatal("SyncFields must leave Privileged to the site")
	}
}

func TestCheckTakeover(t *testing.T) {
	admin := local.Account{Auth: local.AuthManual, Privileged: true}
	conv := admin
	conv.Auth = local.AuthConnect
	if err := local.CheckTakeover(admin, conv); !errors.Is(err, local.ErrPrivileged) {
		t.Fatalf("privileged takeover: %v", err)
	}
	plain := local.Account{Auth: local.AuthManual}
	if err := local.CheckTakeover(plain, local.Account{Auth: local.AuthConnect}); err != nil {
		t.Fatalf("ordinary mapping refused: %v", err)
	}
	if err := local.CheckTakeover(local.Account{Auth: local.AuthConnect, Privileged: true}, local.Account{Auth: local.AuthConnect, Privileged: true}); err != nil {
		t.Fatalf("an existing privileged connect account: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	a := local.Normalize(local.Account{SuspendedBy: local.SuspendedByConnect, Interests: []string{}, Deleted: time.Date(2026, 1, 1, 0, 0, 0, 1999, time.FixedZone("x", 3600))})
	if a.SuspendedBy != "" || a.Interests != nil || a.Deleted.Location() != time.UTC || a.Deleted.Nanosecond() != 1000 {
		t.Fatalf("Normalize = %+v", a)
	}
}
