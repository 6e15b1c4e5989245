package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
)

// TestHotFiltersUseIndexes checks on SQLite that the filters a SCIM client
// uses to look users up compile to queries that search an index instead of
// scanning the users table.
func TestHotFiltersUseIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &Dialect{
		Name:         "sqlite",
		Filter:       filter.Dialect{Placeholder: filter.QuestionMark, TimeArg: func(v any) any { return v.(time.Time).UnixMicro() }},
		Types:        map[string]string{"%PK%": "INTEGER PRIMARY KEY", "%SERIAL%": "INTEGER PRIMARY KEY AUTOINCREMENT", "%BLOB%": "BLOB"},
		IsUnique:     func(error) bool { return false },
		AfterMigrate: SQLiteInitialStats,
	}
	s, err := New(ctx, d, db, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The unfiltered listing walks the narrow creation index, never sorts.
	{
		spec := usersSpec
		spec.m = s.users
		k, _ := s.sortKey(&spec, &store.Query{})
		q := "EXPLAIN QUERY PLAN SELECT " + spec.cols + " FROM " + spec.table + k.orderBy("u", false) + " LIMIT 100 OFFSET 5000"
		var id, parent, notused int
		var detail string
		if err := db.QueryRowContext(ctx, q).Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		if detail != "SCAN u USING INDEX users_created" {
			t.Errorf("unfiltered listing plan: %s", detail)
		}
	}
	ent := scim.SchemaEnterpriseUser + ":"
	for _, text := range []string{
		`userName eq "x"`,
		`id eq "x"`,
		`externalId eq "x"`,
		`emails.value eq "x"`,
		`emails[type eq "work" and value eq "x"]`,
		`groups.value eq "g"`,
		`meta.lastModified ge "2020-01-01T00:00:00Z"`,
		`displayName eq "x"`,
		ent + `employeeNumber eq "1"`,
		`userName eq "a" or userName eq "b"`,
	} {
		e, err := filter.Parse(scim.UserResourceType, text, filter.Limits{})
		if err != nil {
			t.Fatalf("Parse(%s): %v", text, err)
		}
		spec := usersSpec
		spec.m = s.users
		k, _ := s.sortKey(&spec, &store.Query{})
		b := s.newBuilder()
		b.w("EXPLAIN QUERY PLAN SELECT ", spec.cols)
		spec.more(b, nil) // the groups of each user
		b.w(" FROM ", spec.table)
		if err := s.where(b, &spec, &store.Query{Filter: e}, k, nil); err != nil {
			t.Fatal(err)
		}
		b.w(k.orderBy("u", true), " LIMIT 10")
		rows, err := db.QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		t.Logf("%s: %s", text, joined)
		for _, p := range plan {
			if strings.HasPrefix(p, "SCAN u") || strings.HasPrefix(p, "SCAN gm") || strings.HasPrefix(p, "SCAN gg") {
				t.Errorf("%s scans a table: %s", text, joined)
			}
		}
	}
}

// TestTrimJournalUsesIndex checks on SQLite that the trimmer finds the newest
// old entry through the at index instead of walking the journal from its
// head (which reads every young entry when nothing is old yet).
func TestTrimJournalUsesIndex(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &Dialect{
		Name:         "sqlite",
		Filter:       filter.Dialect{Placeholder: filter.QuestionMark},
		Types:        map[string]string{"%PK%": "INTEGER PRIMARY KEY", "%SERIAL%": "INTEGER PRIMARY KEY AUTOINCREMENT", "%BLOB%": "BLOB"},
		IsUnique:     func(error) bool { return false },
		AfterMigrate: SQLiteInitialStats,
	}
	if _, err := New(ctx, d, db, db, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ query, want string }{
		{trimNewestOld, "SEARCH changes USING COVERING INDEX changes_at (at<?)"},
		{trimBelowHead, "SEARCH changes USING INTEGER PRIMARY KEY (rowid<?)"},
	} {
		var id, parent, notused int
		var detail string
		if err := db.QueryRowContext(ctx, "EXPLAIN QUERY PLAN "+tt.query, 1).Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		if detail != tt.want {
			t.Errorf("%s: plan %q, want %q", tt.query, detail, tt.want)
		}
	}
}
