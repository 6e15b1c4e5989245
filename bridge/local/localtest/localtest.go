// Package localtest is the conformance suite of the local directory contract
// (bridge/local): every backend's test calls Run. It checks behaviour only
// through local.Directory (and the optional local.Records), and skips only what a
// backend's Capabilities say it cannot do.
//
// It imports bridge/local, scim/password, testing, go-cmp and x/crypto/bcrypt.
package localtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/connectsso/connect/bridge/local"
)

// Run runs the conformance suite. newDir returns an empty directory and arranges
// (with t.Cleanup) for it to be closed and removed.
func Run(t *testing.T, newDir func(t testing.TB) local.Directory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d local.Directory)
	}{
		{"CreateRoundTrip", testCreateRoundTrip},
		{"IdempotentPut", testIdempotentPut},
		{"UpdateMask", testUpdateMask},
		{"UpdateErrors", testUpdateErrors},
		{"InvalidAccounts", testInvalidAccounts},
		{"UsernameConflict", testUsernameConflict},
		{"HubKeyConflict", testHubKeyConflict},
		{"Privileged", testPrivileged},
		{"Lookups", testLookups},
		{"ListPaging", testListPaging},
		{"ListFilters", testListFilters},
		{"ListDuringWrites", testListDuringWrites},
		{"ListBadCursor", testListBadCursor},
		{"SoftDeleteAndPurge", testSoftDeleteAndPurge},
		{"Suspension", testSuspension},
		{"BatchLimits", testBatchLimits},
		{"DuplicateInBatch", testDuplicateInBatch},
		{"BatchOrder", testBatchOrder},
		{"ConcurrentUpserts", testConcurrentUpserts},
		{"GroupPut", testGroupPut},
		{"GroupLocked", testGroupLocked},
		{"GroupHubConflict", testGroupHubConflict},
		{"GroupList", testGroupList},
		{"Members", testMembers},
		{"SetMembersLarge", testSetMembersLarge},
		{"DeleteGroup", testDeleteGroup},
		{"Authenticate", testAuthenticate},
		{"Records", testRecords},
		{"TaskLocks", testTaskLocks},
		{"TaskLockRace", testTaskLockRace},
		{"TaskPlans", testTaskPlans},
		{"Capabilities", testCapabilities},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newDir(t))
		})
	}
}

func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connectAccount is a connect account of server "hub-a" with every field set.
func connectAccount(i int) local.Account {
	return local.Account{
		Username:      fmt.Sprintf("tc%06d", i),
		Auth:          local.AuthConnect,
		Server:        "hub-a",
		HubUserID:     fmt.Sprintf("0000%04d-aaaa-4bbb-8ccc-%012d", i%10000, i),
		Email:         fmt.Sprintf("user%d@example.com", i),
		EmailVerified: true,
		GivenName:     fmt.Sprintf("Given%d", i),
		FamilyName:    "Family",
		DisplayName:   fmt.Sprintf("Given%d Family", i),
		IDNumber:      fmt.Sprintf("E%06d", i),
		Language:      "en",
		Timezone:      "Europe/Prague",
		City:          "Brno",
		Country:       "CZ",
		Phone:         "+420 555 000 111",
		Title:         "Teacher",
		Organization:  "Example School",
		Department:    "Maths",
		Interests:     []string{"chess", "go"},
		CustomFields:  []local.CustomField{{Name: "shoe", Value: "42"}, {Name: "team", Value: "blue"}},
	}
}

// manualAccount is a manual account with a few fields set.
func manualAccount(name string) local.Account {
	return local.Account{
		Username:   name,
		Auth:       local.AuthManual,
		Email:      name + "@site.example",
		GivenName:  "Site",
		FamilyName: name,
	}
}

// accountOpts compares accounts on what the backend stores.
func accountOpts(d local.Directory) cmp.Options {
	caps := d.Capabilities()
	ign := []string{"ID", "Created", "Modified"}
	for f, names := range map[local.Fields][]string{
		local.FieldEmailVerified: {"EmailVerified"},
		local.FieldInterests:     {"Interests"},
		local.FieldCustomFields:  {"CustomFields"},
		local.FieldPasswordHash:  {"PasswordHash"},
		local.FieldPrivileged:    {"Privileged"},
		local.FieldDeleted:       {"Deleted"},
	} {
		if !caps.Fields.Has(f) {
			ign = append(ign, names...)
		}
	}
	if !caps.LocalMetadata {
		ign = append(ign, "SuspendedBy")
	}
	return cmp.Options{cmpopts.IgnoreFields(local.Account{}, ign...), cmpopts.EquateEmpty()}
}

// put writes puts and fails the test on a call error; item errors are returned.
func put(t testing.TB, d local.Directory, puts ...local.Put) []local.Result {
	t.Helper()
	rs, err := d.PutAccounts(ctxFor(t), puts)
	if err != nil {
		t.Fatalf("PutAccounts: %v", err)
	}
	if len(rs) != len(puts) {
		t.Fatalf("PutAccounts: %d results for %d puts", len(rs), len(puts))
	}
	return rs
}

// mustPut writes puts and fails on any item error.
func mustPut(t testing.TB, d local.Directory, puts ...local.Put) []local.Account {
	t.Helper()
	rs := put(t, d, puts...)
	out := make([]local.Account, len(rs))
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("put %d (%q): %v", i, puts[i].Account.Username, r.Err)
		}
		if r.Account.ID == "" {
			t.Fatalf("put %d (%q): no ID", i, puts[i].Account.Username)
		}
		out[i] = r.Account
	}
	return out
}

func create(t testing.TB, d local.Directory, as ...local.Account) []local.Account {
	t.Helper()
	puts := make([]local.Put, len(as))
	for i, a := range as {
		puts[i] = local.Put{Account: a}
	}
	return mustPut(t, d, puts...)
}

func get(t testing.TB, d local.Directory, id string) local.Account {
	t.Helper()
	a, err := d.Account(ctxFor(t), id)
	if err != nil {
		t.Fatalf("Account(%s): %v", id, err)
	}
	return a
}

func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

func count(t testing.TB, d local.Directory, q local.AccountQuery) int64 {
	t.Helper()
	n, err := d.CountAccounts(ctxFor(t), q)
	if err != nil {
		t.Fatalf("CountAccounts(%+v): %v", q, err)
	}
	return n
}

// listAll iterates ListAccounts to the end and returns every account in order.
func listAll(t testing.TB, d local.Directory, q local.AccountQuery) []local.Account {
	t.Helper()
	var all []local.Account
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("ListAccounts never ends")
		}
		as, next, err := d.ListAccounts(ctxFor(t), q)
		if err != nil {
			t.Fatalf("ListAccounts(%+v): %v", q, err)
		}
		if l := local.Limit(q.Limit); len(as) > l {
			t.Fatalf("ListAccounts returned %d accounts, limit %d", len(as), l)
		}
		all = append(all, as...)
		if next == "" {
			return all
		}
		if next == q.After {
			t.Fatalf("ListAccounts: next cursor %q repeats", next)
		}
		q.After = next
	}
}

func ids(as []local.Account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func needCaps(t testing.TB, d local.Directory, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Skipf("backend cannot %s (Capabilities)", what)
	}
}

func testCapabilities(t *testing.T, d local.Directory) {
	caps := d.Capabilities()
	for _, c := range []struct {
		flag bool
		f    local.Fields
		name string
	}{
		{caps.PasswordHashes, local.FieldPasswordHash, "PasswordHashes"},
		{caps.SoftDelete, local.FieldDeleted, "SoftDelete"},
		{caps.Privileged, local.FieldPrivileged, "Privileged"},
	} {
		if c.flag != caps.Fields.Has(c.f) {
			t.Errorf("Capabilities.%s = %v but Fields says %v", c.name, c.flag, caps.Fields.Has(c.f))
		}
	}
	for _, f := range []local.Fields{local.FieldUsername, local.FieldAuth, local.FieldEmail, local.FieldSuspended} {
		if !caps.Fields.Has(f) {
			t.Errorf("Capabilities.Fields lacks %x: every backend stores usernames, auth, email and suspension", f)
		}
	}
}

func testPing(t *testing.T, d local.Directory) {
	if err := d.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
