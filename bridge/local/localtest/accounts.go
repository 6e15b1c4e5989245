package localtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/bridge/local"
)

func testCreateRoundTrip(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	m := manualAccount("Maria.Site")
	m.PasswordHash = "$2b$04$abcdefghijklmnopqrstuu5mSb1pVlQ3K0y9bYVb4bS9iQrV0x2Ne" // any stored string
	m.Privileged = true
	c := connectAccount(1)
	c.Suspended, c.SuspendedBy = true, local.SuspendedByConnect
	before := time.Now().Add(-time.Minute)
	rs := put(t, d, local.Put{Account: m}, local.Put{Account: c})
	for i, want := range []local.Account{m, c} {
		r := rs[i]
		if r.Err != nil || r.Op != local.OpCreated {
			t.Fatalf("put %d: op %q err %v, want created", i, r.Op, r.Err)
		}
		if r.Account.ID == "" || r.Account.Created.Before(before) || r.Account.Modified.Before(before) {
			t.Errorf("put %d: ID %q Created %v Modified %v", i, r.Account.ID, r.Account.Created, r.Account.Modified)
		}
		if diff := cmp.Diff(want, r.Account, accountOpts(d)); diff != "" {
			t.Errorf("put %d result (-want +got):\n%s", i, diff)
		}
		got := get(t, d, r.Account.ID)
		if diff := cmp.Diff(want, got, accountOpts(d)); diff != "" {
			t.Errorf("Account(%s) (-want +got):\n%s", r.Account.ID, diff)
		}
		if got.ID != r.Account.ID || !got.Created.Equal(r.Account.Created) {
			t.Errorf("Account(%s): ID %q Created %v, put returned %v", r.Account.ID, got.ID, got.Created, r.Account.Created)
		}
	}
	if rs[0].Account.ID == rs[1].Account.ID {
		t.Fatalf("two accounts share ID %s", rs[0].Account.ID)
	}
	if _, err := d.Account(ctx, "no-such-id"); err == nil {
		t.Fatal("Account(no-such-id): no error")
	} else {
		wantErr(t, "Account(no-such-id)", err, local.ErrNotFound)
	}
	if n := count(t, d, local.AccountQuery{}); n != 2 {
		t.Fatalf("CountAccounts = %d, want 2", n)
	}
}

func testIdempotentPut(t *testing.T, d local.Directory) {
	c := connectAccount(7)
	first := put(t, d, local.Put{Account: c})[0]
	if first.Err != nil || first.Op != local.OpCreated {
		t.Fatalf("first put: %q %v", first.Op, first.Err)
	}
	time.Sleep(20 * time.Millisecond) // a changed Modified would show
	for _, p := range []local.Put{
		{Account: c, Fields: local.SyncFields}, // by hub key
		{Account: c},                           // by hub key without a mask: an update needs one
		{Account: withID(c, first.Account.ID), Fields: local.SyncFields}, // by ID
	} {
		r := put(t, d, p)[0]
		if p.Fields == 0 {
			wantErr(t, "update without a mask", r.Err, local.ErrInvalid)
			continue
		}
		if r.Err != nil || r.Op != local.OpUnchanged {
			t.Fatalf("repeated put: op %q err %v, want unchanged", r.Op, r.Err)
		}
		if r.Account.ID != first.Account.ID {
			t.Fatalf("repeated put: ID %s, want %s (a duplicate)", r.Account.ID, first.Account.ID)
		}
	}
	got := get(t, d, first.Account.ID)
	if !got.Modified.Equal(first.Account.Modified) {
		t.Errorf("Modified moved from %v to %v on unchanged puts", first.Account.Modified, got.Modified)
	}
	if n := count(t, d, local.AccountQuery{}); n != 1 {
		t.Fatalf("CountAccounts = %d, want 1", n)
	}
	// A real change is OpUpdated and moves Modified.
	c.GivenName = "Changed"
	r := put(t, d, local.Put{Account: c, Fields: local.SyncFields})[0]
	if r.Err != nil || r.Op != local.OpUpdated || r.Account.GivenName != "Changed" {
		t.Fatalf("changing put: op %q err %v given %q", r.Op, r.Err, r.Account.GivenName)
	}
	if !r.Account.Modified.After(first.Account.Modified) {
		t.Errorf("Modified %v not after %v", r.Account.Modified, first.Account.Modified)
	}
}

func withID(a local.Account, id string) local.Account {
	a.ID = id
	return a
}

func testUpdateMask(t *testing.T, d local.Directory) {
	orig := connectAccount(3)
	a := create(t, d, orig)[0]
	// The site changed the ID number and department; the hub sends other values.
	site := a
	site.IDNumber, site.Department = "SITE-1", "Site dept"
	mustPut(t, d, local.Put{Account: site, Fields: local.FieldIDNumber | local.FieldDepartment})

	hub := connectAccount(3)
	hub.IDNumber, hub.Department, hub.GivenName, hub.Email = "HUB-9", "Hub dept", "NewGiven", "new@example.com"
	hub.Interests = []string{"maths"}
	r := put(t, d, local.Put{Account: hub, Fields: local.SyncFields &^ (local.FieldIDNumber | local.FieldDepartment)})[0]
	if r.Err != nil || r.Op != local.OpUpdated {
		t.Fatalf("put: op %q err %v", r.Op, r.Err)
	}
	want := hub
	want.IDNumber, want.Department = "SITE-1", "Site dept"
	got := get(t, d, a.ID)
	if diff := cmp.Diff(want, got, accountOpts(d)); diff != "" {
		t.Errorf("after masked update (-want +got):\n%s", diff)
	}
	// A one-field mask touches one field.
	mustPut(t, d, local.Put{Account: local.Account{ID: a.ID, City: "Ostrava"}, Fields: local.FieldCity})
	want.City = "Ostrava"
	if diff := cmp.Diff(want, get(t, d, a.ID), accountOpts(d)); diff != "" {
		t.Errorf("after FieldCity update (-want +got):\n%s", diff)
	}
	// Clearing multi-valued fields.
	mustPut(t, d, local.Put{Account: local.Account{ID: a.ID}, Fields: local.FieldInterests | local.FieldCustomFields})
	want.Interests = nil
	if !d.Capabilities().SiteCustomFields {
		want.CustomFields = nil
	}
	if diff := cmp.Diff(want, get(t, d, a.ID), accountOpts(d)); diff != "" {
		t.Errorf("after clearing interests (-want +got):\n%s", diff)
	}
}

func testUpdateErrors(t *testing.T, d local.Directory) {
	a := create(t, d, manualAccount("erin"))[0]
	tests := []struct {
		name string
		p    local.Put
		want error
	}{
		{"unknown id", local.Put{Account: local.Account{ID: "404404", Username: "x", Auth: local.AuthManual}, Fields: local.FieldCity}, local.ErrNotFound},
		{"empty mask", local.Put{Account: withID(a, a.ID)}, local.ErrInvalid},
		{"empty username", local.Put{Account: local.Account{ID: a.ID}, Fields: local.FieldUsername}, local.ErrInvalid},
		{"manual with server", local.Put{Account: local.Account{ID: a.ID, Auth: local.AuthManual, Server: "hub-a"}, Fields: local.FieldAuth}, local.ErrInvalid},
		{"connect without hub id", local.Put{Account: local.Account{ID: a.ID, Auth: local.AuthConnect, Server: "hub-a"}, Fields: local.FieldAuth}, local.ErrInvalid},
		{"bad suspendedBy", local.Put{Account: local.Account{ID: a.ID, Suspended: true, SuspendedBy: "robot"}, Fields: local.FieldSuspended}, local.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := put(t, d, tt.p)[0]
			wantErr(t, tt.name, r.Err, tt.want)
			if diff := cmp.Diff(a, get(t, d, a.ID), accountOpts(d)); diff != "" {
				t.Errorf("account changed by a refused put (-want +got):\n%s", diff)
			}
		})
	}
}

func testInvalidAccounts(t *testing.T, d local.Directory) {
	long := make([]byte, local.MaxUsernameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name string
		a    local.Account
	}{
		{"empty username", local.Account{Auth: local.AuthManual}},
		{"space around username", local.Account{Username: " bob", Auth: local.AuthManual}},
		{"control in username", local.Account{Username: "bo\x00b", Auth: local.AuthManual}},
		{"long username", local.Account{Username: string(long), Auth: local.AuthManual}},
		{"no auth", local.Account{Username: "bob"}},
		{"unknown auth", local.Account{Username: "bob", Auth: "ldap"}},
		{"manual with hub id", local.Account{Username: "bob", Auth: local.AuthManual, HubUserID: "x"}},
		{"connect without server", local.Account{Username: "bob", Auth: local.AuthConnect, HubUserID: "x"}},
		{"connect without hub id", local.Account{Username: "bob", Auth: local.AuthConnect, Server: "hub-a"}},
		{"not utf-8", local.Account{Username: "bob", Auth: local.AuthManual, GivenName: "\xff"}},
		{"unnamed custom field", local.Account{Username: "bob", Auth: local.AuthManual, CustomFields: []local.CustomField{{Value: "v"}}}},
	}
	good := connectAccount(1) // upserted by hub key: created once, unchanged after
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := put(t, d, local.Put{Account: tt.a}, local.Put{Account: good, Fields: local.SyncFields})
			wantErr(t, tt.name, rs[0].Err, local.ErrInvalid)
			if rs[1].Err != nil {
				t.Fatalf("valid item beside an invalid one: %v", rs[1].Err)
			}
		})
	}
	// Only "good" was ever created (an update the next times).
	if n := count(t, d, local.AccountQuery{}); n != 1 {
		t.Fatalf("CountAccounts = %d, want 1", n)
	}
}

func testUsernameConflict(t *testing.T, d local.Directory) {
	alice := create(t, d, manualAccount("Alice"))[0]
	bob := create(t, d, manualAccount("bob"))[0]
	c := connectAccount(1)
	c.Username = "ALICE"
	tests := []struct {
		name string
		p    local.Put
	}{
		{"manual, other case", local.Put{Account: manualAccount("alice")}},
		{"connect by hub key", local.Put{Account: c, Fields: local.SyncFields}},
		{"rename by id", local.Put{Account: local.Account{ID: bob.ID, Username: "aLiCe"}, Fields: local.FieldUsername}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := put(t, d, tt.p, local.Put{Account: manualAccount("carol-" + tt.name[:4])})
			wantErr(t, tt.name, rs[0].Err, local.ErrConflict)
			if rs[1].Err != nil {
				t.Fatalf("valid item beside a conflicting one: %v", rs[1].Err)
			}
		})
	}
	if got := get(t, d, bob.ID); got.Username != "bob" {
		t.Fatalf("bob renamed to %q", got.Username)
	}
	// Renaming an account to another case of its own name is fine.
	r := put(t, d, local.Put{Account: local.Account{ID: alice.ID, Username: "ALICE"}, Fields: local.FieldUsername})[0]
	if r.Err != nil || r.Account.Username != "ALICE" {
		t.Fatalf("case-only rename: %v %q", r.Err, r.Account.Username)
	}
	if n := count(t, d, local.AccountQuery{}); n != int64(2+len(tests)) {
		t.Fatalf("CountAccounts = %d, want %d", n, 2+len(tests))
	}
}

func testHubKeyConflict(t *testing.T, d local.Directory) {
	as := create(t, d, connectAccount(1), connectAccount(2), manualAccount("mia"))
	// Linking the manual account to a hub user another account holds.
	p := local.Put{Account: local.Account{ID: as[2].ID, Auth: local.AuthConnect, Server: "hub-a", HubUserID: as[0].HubUserID}, Fields: local.FieldAuth}
	wantErr(t, "link to a held hub key", put(t, d, p)[0].Err, local.ErrConflict)
	// The same hub user id under another server is another key.
	p.Account.Server = "hub-b"
	r := put(t, d, p)[0]
	if r.Err != nil || r.Account.Auth != local.AuthConnect || r.Account.Server != "hub-b" {
		t.Fatalf("link under hub-b: %v %+v", r.Err, r.Account)
	}
	got, err := d.AccountByHubID(ctxFor(t), "hub-b", as[0].HubUserID)
	if err != nil || got.ID != as[2].ID {
		t.Fatalf("AccountByHubID(hub-b) = %s, %v; want %s", got.ID, err, as[2].ID)
	}
}

func testPrivileged(t *testing.T, d local.Directory) {
	needCaps(t, d, d.Capabilities().Privileged, "store Privileged")
	adm := manualAccount("admin")
	adm.Privileged = true
	a := create(t, d, adm)[0]
	for _, f := range []local.Fields{local.FieldAuth, local.SyncFields, local.AllFields} {
		c := connectAccount(5)
		c.ID = a.ID
		c.Privileged = true
		r := put(t, d, local.Put{Account: c, Fields: f})[0]
		wantErr(t, fmt.Sprintf("take over a privileged account (mask %x)", f), r.Err, local.ErrPrivileged)
	}
	if diff := cmp.Diff(adm, get(t, d, a.ID), accountOpts(d)); diff != "" {
		t.Errorf("privileged account changed (-want +got):\n%s", diff)
	}
	// The engine's upsert by hub key creates a new account instead; the sync mask
	// never clears Privileged of an existing one.
	c := connectAccount(5)
	mustPut(t, d, local.Put{Account: c})
	mustPut(t, d, local.Put{Account: local.Account{ID: a.ID, Privileged: false, City: "X"}, Fields: local.SyncFields &^ local.FieldAuth &^ local.FieldUsername})
	if !get(t, d, a.ID).Privileged {
		t.Fatal("SyncFields cleared Privileged")
	}
}

func testLookups(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	a1, a2, a3 := connectAccount(1), connectAccount(2), connectAccount(3)
	a2.Email = "SHARED@Example.com"
	a3.Email = "shared@example.COM"
	a1.IDNumber, a2.IDNumber = "ID-7", "ID-7"
	m := manualAccount("MixedCase")
	m.Email = "shared@example.com"
	as := create(t, d, a1, a2, a3, m)

	got, err := d.AccountByUsername(ctx, "mixedcase")
	if err != nil || got.ID != as[3].ID {
		t.Fatalf("AccountByUsername(mixedcase) = %s, %v; want %s", got.ID, err, as[3].ID)
	}
	if _, err := d.AccountByUsername(ctx, "nobody"); err == nil {
		t.Fatal("AccountByUsername(nobody): no error")
	} else {
		wantErr(t, "AccountByUsername(nobody)", err, local.ErrNotFound)
	}
	got, err = d.AccountByHubID(ctx, "hub-a", a2.HubUserID)
	if err != nil || got.ID != as[1].ID {
		t.Fatalf("AccountByHubID = %s, %v; want %s", got.ID, err, as[1].ID)
	}
	if _, err := d.AccountByHubID(ctx, "hub-b", a2.HubUserID); err == nil {
		t.Fatal("AccountByHubID(other server): no error")
	} else {
		wantErr(t, "AccountByHubID(other server)", err, local.ErrNotFound)
	}
	byHub, err := d.AccountsByHubID(ctx, "hub-a", []string{a1.HubUserID, a3.HubUserID, "absent"})
	if err != nil {
		t.Fatalf("AccountsByHubID: %v", err)
	}
	if len(byHub) != 2 || byHub[a1.HubUserID].ID != as[0].ID || byHub[a3.HubUserID].ID != as[2].ID {
		t.Fatalf("AccountsByHubID = %v", byHub)
	}
	if byHub, err := d.AccountsByHubID(ctx, "hub-a", nil); err != nil || len(byHub) != 0 {
		t.Fatalf("AccountsByHubID(nil) = %v, %v", byHub, err)
	}

	mail, err := d.AccountsByEmail(ctx, "Shared@EXAMPLE.com")
	if err != nil {
		t.Fatalf("AccountsByEmail: %v", err)
	}
	want := []string{as[1].ID, as[2].ID, as[3].ID}
	if got := ids(mail); !sameSet(got, want) {
		t.Fatalf("AccountsByEmail = %v, want all of %v (ambiguity must be visible)", got, want)
	}
	if mail, err := d.AccountsByEmail(ctx, ""); err != nil || len(mail) != 0 {
		t.Fatalf("AccountsByEmail(\"\") = %v, %v; want none", ids(mail), err)
	}
	idn, err := d.AccountsByIDNumber(ctx, "ID-7")
	if err != nil || !sameSet(ids(idn), []string{as[0].ID, as[1].ID}) {
		t.Fatalf("AccountsByIDNumber(ID-7) = %v, %v", ids(idn), err)
	}
	if idn, err := d.AccountsByIDNumber(ctx, ""); err != nil || len(idn) != 0 {
		t.Fatalf("AccountsByIDNumber(\"\") = %v, %v; want none", ids(idn), err)
	}
	// Deleted accounts are still found (the engine decides what they mean).
	mustPut(t, d, local.Put{Account: local.Account{ID: as[3].ID, Deleted: time.Now(), Suspended: true, SuspendedBy: local.SuspendedByConnect}, Fields: local.FieldDeleted | local.FieldSuspended})
	if got, err := d.AccountByUsername(ctx, "MIXEDCASE"); err != nil || got.ID != as[3].ID {
		t.Fatalf("AccountByUsername(deleted) = %s, %v", got.ID, err)
	}
	mail, _ = d.AccountsByEmail(ctx, "shared@example.com")
	if len(mail) != 3 {
		t.Fatalf("AccountsByEmail after a soft delete = %v, want 3 accounts", ids(mail))
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// seed creates n connect accounts of server (numbered from base) in batches.
func seed(t testing.TB, d local.Directory, server string, base, n int) []local.Account {
	t.Helper()
	var out []local.Account
	for i := 0; i < n; i += 100 {
		var puts []local.Put
		for j := i; j < min(n, i+100); j++ {
			a := connectAccount(base + j)
			a.Server = server
			a.Username = fmt.Sprintf("tc%s%06d", server, base+j)
			puts = append(puts, local.Put{Account: a, Fields: local.SyncFields})
		}
		out = append(out, mustPut(t, d, puts...)...)
	}
	return out
}

func testListPaging(t *testing.T, d local.Directory) {
	as := seed(t, d, "a", 0, 250)
	for _, limit := range []int{0, 1, 7, 100, 5000} {
		t.Run(fmt.Sprint("limit", limit), func(t *testing.T) {
			if limit == 1 && testing.Short() {
				t.Skip("short")
			}
			got := listAll(t, d, local.AccountQuery{Limit: limit})
			if !sameSet(ids(got), ids(as)) || len(got) != len(as) {
				t.Fatalf("listed %d accounts, want each of %d exactly once", len(got), len(as))
			}
		})
	}
	// The listing carries the stored accounts.
	got := listAll(t, d, local.AccountQuery{Limit: 100})
	byID := map[string]local.Account{}
	for _, a := range as {
		byID[a.ID] = a
	}
	for _, g := range got {
		if diff := cmp.Diff(byID[g.ID], g, accountOpts(d)); diff != "" {
			t.Fatalf("listed account %s (-stored +listed):\n%s", g.ID, diff)
		}
	}
	if n := count(t, d, local.AccountQuery{}); n != 250 {
		t.Fatalf("CountAccounts = %d, want 250", n)
	}
}

func testListFilters(t *testing.T, d local.Directory) {
	a := seed(t, d, "a", 0, 30)
	b := seed(t, d, "b", 100, 20)
	m := create(t, d, manualAccount("m1"), manualAccount("m2"))
	del := a[:5]
	for _, x := range del {
		mustPut(t, d, local.Put{Account: local.Account{ID: x.ID, Deleted: time.Now().Add(-48 * time.Hour)}, Fields: local.FieldDeleted})
	}
	recent := b[0]
	mustPut(t, d, local.Put{Account: local.Account{ID: recent.ID, Deleted: time.Now()}, Fields: local.FieldDeleted})
	caps := d.Capabilities()
	tests := []struct {
		name string
		q    local.AccountQuery
		want []local.Account
		soft bool // needs SoftDelete
	}{
		{"all live", local.AccountQuery{}, concat(a[5:], b[1:], m), true},
		{"everything", local.AccountQuery{Deleted: local.DeletedInclude}, concat(a, b, m), false},
		{"server a", local.AccountQuery{Server: "a"}, a[5:], true},
		{"server b with deleted", local.AccountQuery{Server: "b", Deleted: local.DeletedInclude}, b, false},
		{"manual", local.AccountQuery{Auth: local.AuthManual}, m, false},
		{"connect", local.AccountQuery{Auth: local.AuthConnect, Deleted: local.DeletedInclude}, concat(a, b), false},
		{"deleted only", local.AccountQuery{Deleted: local.DeletedOnly}, concat(del, b[:1]), true},
		{"deleted before a day ago", local.AccountQuery{Deleted: local.DeletedOnly, DeletedBefore: time.Now().Add(-24 * time.Hour)}, del, true},
		{"deleted of server b", local.AccountQuery{Deleted: local.DeletedOnly, Server: "b"}, b[:1], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.soft && !caps.SoftDelete {
				t.Skip("backend cannot store soft deletes")
			}
			tt.q.Limit = 7
			got := listAll(t, d, tt.q)
			if !sameSet(ids(got), ids(tt.want)) {
				t.Fatalf("listed %d %v\nwant %d %v", len(got), ids(got), len(tt.want), ids(tt.want))
			}
			if n := count(t, d, tt.q); n != int64(len(tt.want)) {
				t.Fatalf("CountAccounts = %d, want %d", n, len(tt.want))
			}
		})
	}
}

func concat(parts ...[]local.Account) []local.Account {
	var out []local.Account
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func testListDuringWrites(t *testing.T, d local.Directory) {
	stay := seed(t, d, "a", 0, 120)
	gone := seed(t, d, "a", 1000, 60)
	q := local.AccountQuery{Limit: 10, Deleted: local.DeletedInclude}
	seen := map[string]int{}
	for page := 0; ; page++ {
		as, next, err := d.ListAccounts(ctxFor(t), q)
		if err != nil {
			t.Fatalf("ListAccounts: %v", err)
		}
		for _, a := range as {
			seen[a.ID]++
		}
		if page < 6 { // writes between pages: new accounts, purges, renames
			seed(t, d, "b", 2000+page*10, 10)
			var purge []string
			for _, g := range gone[page*10 : page*10+10] {
				mustPut(t, d, local.Put{Account: local.Account{ID: g.ID, Deleted: time.Now()}, Fields: local.FieldDeleted})
				purge = append(purge, g.ID)
			}
			if d.Capabilities().SoftDelete {
				if _, err := d.PurgeAccounts(ctxFor(t), purge); err != nil {
					t.Fatalf("PurgeAccounts: %v", err)
				}
			}
			s := stay[page*7]
			mustPut(t, d, local.Put{Account: local.Account{ID: s.ID, GivenName: "Renamed"}, Fields: local.FieldGivenName})
		}
		if next == "" {
			break
		}
		q.After = next
	}
	for _, s := range stay {
		if seen[s.ID] != 1 {
			t.Errorf("account %s present throughout was listed %d times", s.ID, seen[s.ID])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("account %s listed %d times", id, n)
		}
	}
}

func testListBadCursor(t *testing.T, d local.Directory) {
	seed(t, d, "a", 0, 3)
	for _, c := range []string{"not a cursor!", "\x00", "-5"} {
		_, _, err := d.ListAccounts(ctxFor(t), local.AccountQuery{After: c})
		wantErr(t, fmt.Sprintf("ListAccounts(After=%q)", c), err, local.ErrInvalid)
	}
}

func testSoftDeleteAndPurge(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	caps := d.Capabilities()
	as := seed(t, d, "a", 0, 4)
	g, _, err := d.PutGroup(ctx, local.ActorConnect, local.Group{Name: "G", Kind: local.KindAudience, Server: "a", HubGroupID: "g1", Locked: true})
	if err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	if _, err := d.AddMembers(ctx, local.ActorConnect, g.ID, ids(as)); err != nil {
		t.Fatalf("AddMembers: %v", err)
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	soft := local.Put{Account: local.Account{ID: as[0].ID, Deleted: at, Suspended: true, SuspendedBy: local.SuspendedByConnect}, Fields: local.FieldDeleted | local.FieldSuspended}
	r := put(t, d, soft)[0]
	if r.Err != nil || r.Op != local.OpUpdated {
		t.Fatalf("soft delete: %q %v", r.Op, r.Err)
	}
	if r2 := put(t, d, soft)[0]; r2.Err != nil || r2.Op != local.OpUnchanged {
		t.Fatalf("repeated soft delete: %q %v, want unchanged", r2.Op, r2.Err)
	}
	got := get(t, d, as[0].ID)
	if !caps.SoftDelete {
		// Kept as a suspension; nothing can be purged.
		if !got.Suspended {
			t.Fatal("soft delete without SoftDelete did not suspend the account")
		}
		_, err := d.PurgeAccounts(ctx, []string{as[0].ID})
		wantErr(t, "PurgeAccounts without SoftDelete", err, local.ErrUnsupported)
		_, _, err = d.ListAccounts(ctx, local.AccountQuery{Deleted: local.DeletedOnly})
		wantErr(t, "ListAccounts(DeletedOnly) without SoftDelete", err, local.ErrUnsupported)
		return
	}
	if !got.Deleted.Equal(at) {
		t.Fatalf("Deleted = %v, want %v", got.Deleted, at)
	}
	// Purge removes only soft-deleted accounts; a retry removes nothing more.
	n, err := d.PurgeAccounts(ctx, []string{as[0].ID, as[1].ID, "absent-id"})
	if err != nil || n != 1 {
		t.Fatalf("PurgeAccounts = %d, %v; want 1", n, err)
	}
	if _, err := d.Account(ctx, as[0].ID); err == nil {
		t.Fatal("purged account still there")
	} else {
		wantErr(t, "Account(purged)", err, local.ErrNotFound)
	}
	if get(t, d, as[1].ID).IsDeleted() {
		t.Fatal("live account marked deleted")
	}
	if n, err := d.PurgeAccounts(ctx, []string{as[0].ID}); err != nil || n != 0 {
		t.Fatalf("repeated PurgeAccounts = %d, %v; want 0, nil", n, err)
	}
	members := allMembers(t, d, g.ID)
	if !sameSet(members, ids(as[1:])) {
		t.Fatalf("members after purge = %v, want %v", members, ids(as[1:]))
	}
	// Undelete: the engine clears Deleted when the hub user is back.
	mustPut(t, d, local.Put{Account: local.Account{ID: as[2].ID, Deleted: time.Now()}, Fields: local.FieldDeleted})
	mustPut(t, d, local.Put{Account: local.Account{ID: as[2].ID}, Fields: local.FieldDeleted})
	if get(t, d, as[2].ID).IsDeleted() {
		t.Fatal("undelete did not clear Deleted")
	}
	// The hub key of a purged account is free again.
	a := connectAccount(0)
	a.Server, a.Username = "a", "tcnew"
	if r := put(t, d, local.Put{Account: a, Fields: local.SyncFields})[0]; r.Err != nil || r.Op != local.OpCreated {
		t.Fatalf("recreate after purge: %q %v", r.Op, r.Err)
	}
}

func testSuspension(t *testing.T, d local.Directory) {
	needCaps(t, d, d.Capabilities().LocalMetadata, "store SuspendedBy")
	a := create(t, d, manualAccount("sam"))[0]
	for _, tt := range []struct {
		suspended bool
		by, want  string
	}{
		{true, local.SuspendedByConnect, local.SuspendedByConnect},
		{true, "", ""},
		{false, local.SuspendedByConnect, ""}, // cleared while not suspended
	} {
		mustPut(t, d, local.Put{Account: local.Account{ID: a.ID, Suspended: tt.suspended, SuspendedBy: tt.by}, Fields: local.FieldSuspended})
		got := get(t, d, a.ID)
		if got.Suspended != tt.suspended || got.SuspendedBy != tt.want {
			t.Fatalf("put suspended=%v by=%q: got suspended=%v by=%q", tt.suspended, tt.by, got.Suspended, got.SuspendedBy)
		}
	}
}

func testBatchLimits(t *testing.T, d local.Directory) {
	ctx := ctxFor(t)
	puts := make([]local.Put, local.MaxBatch+1)
	for i := range puts {
		puts[i] = local.Put{Account: manualAccount(fmt.Sprint("u", i))}
	}
	if _, err := d.PutAccounts(ctx, puts); err == nil {
		t.Fatal("PutAccounts over MaxBatch: no error")
	} else {
		wantErr(t, "PutAccounts over MaxBatch", err, local.ErrInvalid)
	}
	if n := count(t, d, local.AccountQuery{}); n != 0 {
		t.Fatalf("refused batch wrote %d accounts", n)
	}
	big := make([]string, local.MaxBatch+1)
	for i := range big {
		big[i] = fmt.Sprint("h", i)
	}
	_, err := d.AccountsByHubID(ctx, "a", big)
	wantErr(t, "AccountsByHubID over MaxBatch", err, local.ErrInvalid)
	_, err = d.PurgeAccounts(ctx, big)
	wantErr(t, "PurgeAccounts over MaxBatch", err, local.ErrInvalid)
	if rs, err := d.PutAccounts(ctx, nil); err != nil || len(rs) != 0 {
		t.Fatalf("PutAccounts(nil) = %v, %v", rs, err)
	}
}

func testDuplicateInBatch(t *testing.T, d local.Directory) {
	c := connectAccount(9)
	c2 := c
	c2.GivenName = "Second"
	rs := put(t, d, local.Put{Account: c, Fields: local.SyncFields}, local.Put{Account: c, Fields: local.SyncFields}, local.Put{Account: c2, Fields: local.SyncFields})
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	if rs[0].Op != local.OpCreated || rs[1].Op != local.OpUnchanged || rs[2].Op != local.OpUpdated {
		t.Fatalf("ops = %s %s %s, want created unchanged updated", rs[0].Op, rs[1].Op, rs[2].Op)
	}
	if rs[0].Account.ID != rs[1].Account.ID || rs[1].Account.ID != rs[2].Account.ID {
		t.Fatal("one hub user made several accounts")
	}
	if got := get(t, d, rs[0].Account.ID); got.GivenName != "Second" {
		t.Fatalf("GivenName = %q, want the last put's", got.GivenName)
	}
}

func testConcurrentUpserts(t *testing.T, d local.Directory) {
	const workers, n = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*n)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var puts []local.Put
			for i := range n {
				a := connectAccount((i + w*7) % n)
				puts = append(puts, local.Put{Account: a, Fields: local.SyncFields})
			}
			for i := 0; i < n; i += 10 {
				rs, err := d.PutAccounts(ctxFor(t), puts[i:i+10])
				if err != nil {
					errs <- err
					return
				}
				for _, r := range rs {
					if r.Err != nil {
						errs <- r.Err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent upsert: %v", err)
	}
	all := listAll(t, d, local.AccountQuery{Deleted: local.DeletedInclude})
	if len(all) != n {
		t.Fatalf("%d accounts after concurrent upserts of %d hub users", len(all), n)
	}
}

// testBatchOrder: a batch gives each item the outcome it would have had written
// alone, in order — however the backend groups the writes — across a long run
// of creates with conflicts in its middle, a username freed and then taken, and
// a hub user put twice.
func testBatchOrder(t *testing.T, d local.Directory) {
	taken := create(t, d, manualAccount("Taken"))[0]
	x := connectAccount(900)
	x.Username = "x-old"
	x = create(t, d, x)[0]

	sync := func(i int, name string) local.Put {
		a := connectAccount(1000 + i)
		a.Username = name
		return local.Put{Account: a, Fields: local.SyncFields}
	}
	type want struct {
		op  local.Op
		err error
	}
	var puts []local.Put
	var wants []want
	add := func(p local.Put, op local.Op, err error) {
		puts = append(puts, p)
		wants = append(wants, want{op, err})
	}
	for i := range 150 {
		add(sync(i, fmt.Sprintf("run-%03d", i)), local.OpCreated, nil)
	}
	add(sync(150, "tAKEN"), "", local.ErrConflict) // a stored username, mid-run
	add(sync(151, "run-151"), local.OpCreated, nil)
	again := sync(7, "run-007")
	again.Account.GivenName = "Again"
	add(again, local.OpUpdated, nil)                 // the hub user of item 7
	add(sync(152, "RUN-151"), "", local.ErrConflict) // item 151's username
	add(local.Put{Account: local.Account{ID: x.ID, Username: "x-new"}, Fields: local.FieldUsername}, local.OpUpdated, nil)
	add(sync(153, "X-Old"), local.OpCreated, nil) // freed by the item before
	add(sync(154, "x-new"), "", local.ErrConflict)
	for i := 155; i < 175; i++ {
		add(sync(i, fmt.Sprintf("run-%03d", i)), local.OpCreated, nil)
	}
	if len(puts) > local.MaxBatch {
		t.Fatalf("test batch of %d", len(puts))
	}
	rs := put(t, d, puts...)
	seen := map[string]int{}
	for i, r := range rs {
		w := wants[i]
		if w.err != nil {
			wantErr(t, fmt.Sprintf("item %d (%q)", i, puts[i].Account.Username), r.Err, w.err)
			continue
		}
		if r.Err != nil || r.Op != w.op {
			t.Fatalf("item %d (%q): %s %v, want %s", i, puts[i].Account.Username, r.Op, r.Err, w.op)
		}
		if r.Op == local.OpCreated {
			if j, dup := seen[r.Account.ID]; dup {
				t.Fatalf("items %d and %d created the same id %s", j, i, r.Account.ID)
			}
			seen[r.Account.ID] = i
			if got := get(t, d, r.Account.ID); got.HubUserID != puts[i].Account.HubUserID || got.Username != puts[i].Account.Username {
				t.Fatalf("item %d: stored %q (%s), want %q (%s)", i, got.Username, got.HubUserID, puts[i].Account.Username, puts[i].Account.HubUserID)
			}
		}
	}
	if rs[152].Account.ID != rs[7].Account.ID || get(t, d, rs[7].Account.ID).GivenName != "Again" {
		t.Fatal("the second put of a hub user did not update the account the first made")
	}
	if got := get(t, d, x.ID); got.Username != "x-new" {
		t.Fatalf("renamed account: %q", got.Username)
	}
	if got := get(t, d, taken.ID); got.Auth != local.AuthManual || got.Username != "Taken" {
		t.Fatalf("the manual account changed: %+v", got)
	}
	if n, want := count(t, d, local.AccountQuery{}), int64(2+len(seen)); n != want {
		t.Fatalf("CountAccounts = %d, want %d", n, want)
	}
}
