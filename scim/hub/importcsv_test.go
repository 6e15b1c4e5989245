package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
)

func newSQLite(tb testing.TB) store.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(tb.TempDir(), "hub.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func TestImportUsersFixture(t *testing.T) {
	ctx := context.Background()
	st := newSQLite(t)
	f, err := os.Open("../../testdata/users-1000.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var progress []int
	var streamed int
	res, err := ImportUsers(ctx, st, f, ImportOptions{
		Actor: "test", Source: "users-1000.csv", BatchSize: 300,
		Progress: func(n int) { progress = append(progress, n) },
		OnError:  func(*RowError) { streamed++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Errors {
		got = append(got, e.Error())
	}
	want := []string{
		`row 101: userName "USER0002": already exists (same userName as row 3)`,
		`row 502: userName is empty`,
		`row 903: userName "user0902": active: "maybe" is not a boolean (true/false)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("row errors (-want +got):\n%s", diff)
	}
	if res.Imported != 997 || res.Failed != 3 || streamed != 3 {
		t.Errorf("imported %d failed %d streamed %d, want 997/3/3", res.Imported, res.Failed, streamed)
	}
	if diff := cmp.Diff([]int{300, 600, 900, 1000}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if !errors.Is(res.Errors[0], store.ErrConflict) || !errors.Is(res.Errors[2], store.ErrInvalid) {
		t.Errorf("row errors do not match the store sentinels: %v", res.Errors)
	}
	stats, err := st.Stats(ctx)
	if err != nil || stats.Users != 997 {
		t.Fatalf("store has %d users (%v), want 997", stats.Users, err)
	}
	// The bad rows wrote nothing; a good row is complete.
	if _, err := st.UserByUserName(ctx, "user0902"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user0902 (bad row) stored: %v", err)
	}
	u, err := st.UserByUserName(ctx, "user0001")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name == nil || u.Name.GivenName != "Ben" || u.PrimaryEmail() != "user0001@example.org" ||
		u.Enterprise == nil || u.Enterprise.EmployeeNumber != "E10001" || u.Enterprise.Department != "Administration" ||
		u.ExternalID != "ext-1" || u.Title != "Officer" || !u.IsActive() {
		t.Errorf("user0001 = %+v", u)
	}
	log, err := st.AuditLog(ctx, 1)
	if err != nil || len(log) != 1 || log[0].Action != "users.import" || log[0].Detail != "imported 997, failed 3" {
		t.Errorf("audit = %+v, %v", log, err)
	}

	// Importing again conflicts on every good row and writes nothing.
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	res, err = ImportUsers(ctx, st, f, ImportOptions{})
	if err != nil || res.Imported != 0 || res.Failed != 1000 {
		t.Fatalf("second import: %+v, %v", res, err)
	}
	if got := res.Errors[0].Error(); got != `row 2: userName "user0001": already exists` {
		t.Errorf("first error %q", got)
	}
}

func TestImportUsersColumns(t *testing.T) {
	ctx := context.Background()
	st := newSQLite(t)
	f, err := os.Open("../../testdata/users-small.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ImportUsers(ctx, st, f, ImportOptions{HashPassword: password.Hash})
	if err != nil || res.Imported != 2 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	u, err := st.UserByUserName(ctx, "ana.lima")
	if err != nil {
		t.Fatal(err)
	}
	if u.Password != "" || u.Connect == nil {
		t.Fatalf("clear password kept or no hash: %+v", u)
	}
	if ok, _, err := password.Verify(u.Connect.PasswordHash, "first-Password-1"); !ok || err != nil {
		t.Errorf("stored hash does not verify: %v", err)
	}
	if diff := cmp.Diff([]string{"chess", "piano"}, u.Connect.Interests); diff != "" {
		t.Errorf("interests: %s", diff)
	}
	if len(u.Addresses) != 1 || u.Addresses[0].Locality != "Lisbon" || u.Addresses[0].Country != "PT" || u.Addresses[0].Type != "work" {
		t.Errorf("addresses = %+v", u.Addresses)
	}
	if u.Enterprise == nil || u.Enterprise.EmployeeNumber != "E1" || u.Name.FamilyName != "Lima" {
		t.Errorf("user = %+v", u)
	}
	b, _ := st.UserByUserName(ctx, "bo.berg")
	if b.IsActive() {
		t.Error("bo.berg imported active")
	}
}

func TestImportUsersBadInput(t *testing.T) {
	tests := []struct {
		name      string
		csv       string
		headerErr string   // non-empty: ErrImportHeader containing this
		rowErrs   []string // else: the row errors
		imported  int
	}{
		{name: "empty file", csv: "", headerErr: "empty"},
		{name: "unknown column", csv: "userName,shoeSize\nx,42\n", headerErr: `unknown column "shoeSize"`},
		{name: "no userName", csv: "givenName\nA\n", headerErr: "no userName column"},
		{name: "duplicate column", csv: "userName,email,\"emails[type eq \"\"work\"\"].value\"\n", headerErr: "given twice"},
		{name: "short and long rows", csv: "userName,givenName\na,A\nb\nc,C,extra\nd,D\n", imported: 2,
			rowErrs: []string{`row 3: userName "b": 1 fields, the header has 2`, `row 4: userName "c": 3 fields, the header has 2`}},
		{name: "several problems in one row", csv: "userName,active,email\n,perhaps,nope\n",
			rowErrs: []string{`row 2: active: "perhaps" is not a boolean (true/false); email "nope" has no @; userName is empty`}},
		{name: "password without hasher", csv: "userName,password\nz,secret\n",
			rowErrs: []string{`row 2: userName "z": password column given but passwords cannot be hashed here`}},
		{name: "bad passwordHash", csv: "userName,passwordHash\nz,plaintext\n",
			rowErrs: []string{`row 2: userName "z": passwordHash: not an argon2id or bcrypt hash`}},
		// A hash no login could use, or one that would make every login
		// attempt cost hours (bcrypt cost 31) or a gigabyte, is refused.
		{name: "unusable passwordHash", csv: "userName,passwordHash\n" +
			"slow,$2a$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\n" +
			"huge,\"$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHRzYWx0$Ok4syLOKMyFq6gPTHhnoRCuBdiIZnCG/JHE+wqmFWa8\"\n" +
			"cut,$2b$10$N9qo8uLOickgx2ZM\n" +
			"fine,$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\n", imported: 1,
			rowErrs: []string{
				`row 2: userName "slow": passwordHash: unusable (malformed, or over the cost limits)`,
				`row 3: userName "huge": passwordHash: unusable (malformed, or over the cost limits)`,
				`row 4: userName "cut": passwordHash: unusable (malformed, or over the cost limits)`,
			}},
		{name: "byte order mark and blank line", csv: "\ufeffuserName\nq\n\nr\n", imported: 2},
		{name: "malformed quote", csv: "userName,title\ngood,x\nbad,\"unterminated\n", imported: 1,
			rowErrs: []string{`row 3: malformed CSV: extraneous or missing " in quoted-field`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newSQLite(t)
			res, err := ImportUsers(context.Background(), st, strings.NewReader(tt.csv), ImportOptions{})
			if tt.headerErr != "" {
				if !errors.Is(err, ErrImportHeader) || !strings.Contains(err.Error(), tt.headerErr) {
					t.Fatalf("err = %v, want ErrImportHeader with %q", err, tt.headerErr)
				}
				if s, _ := st.Stats(context.Background()); s.Users != 0 {
					t.Fatalf("header error but %d users written", s.Users)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range res.Errors {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.rowErrs, got); diff != "" {
				t.Errorf("row errors (-want +got):\n%s", diff)
			}
			if res.Imported != tt.imported {
				t.Errorf("imported %d, want %d", res.Imported, tt.imported)
			}
			if s, _ := st.Stats(context.Background()); s.Users != int64(tt.imported) {
				t.Errorf("store has %d users, want %d", s.Users, tt.imported)
			}
		})
	}
}

// BenchmarkImportUsers imports 10,000 users per iteration into a fresh SQLite
// store and reports rows/s (budget: 100,000 users in 30 s).
func BenchmarkImportUsers(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("userName,givenName,familyName,email,employeeNumber,active\n")
	const rows = 10000
	for i := range rows {
		fmt.Fprintf(&sb, "u%06d,Given,Family,u%d@example.org,E%d,true\n", i, i, i)
	}
	in := sb.String()
	for b.Loop() {
		b.StopTimer()
		st := newSQLite(b)
		b.StartTimer()
		res, err := ImportUsers(context.Background(), st, strings.NewReader(in), ImportOptions{})
		if err != nil || res.Imported != rows {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
