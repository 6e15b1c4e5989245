package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
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
		Migrations:   SQLiteMigrations,
		AfterMigrate: SQLiteInitialStats,
	}
	s, err := New(ctx, d, db, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The unfiltered listing walks the table in pk order, never sorts; a deep
	// page of it (users and groups) starts at the position's pk through the
	// pk index, never scanning the table or sorting it.
	for _, tt := range []struct {
		name  string
		spec  listSpec
		start int
		want  string // the page query's own step
	}{
		{"users, first pages", usersSpec, 101, "SCAN u"},
		{"users, deep page", usersSpec, 500001, "SEARCH u USING INTEGER PRIMARY KEY (rowid>?)"},
		{"groups, deep page", groupsSpec, 500001, "SEARCH g USING INTEGER PRIMARY KEY (rowid>?)"},
	} {
		spec := tt.spec
		spec.m = s.users
		if spec.name == "groups" {
			spec.m = s.groups
		}
		q := store.Query{StartIndex: tt.start, Count: 100}
		k, _ := s.sortKey(&spec, &q)
		b, reversed, empty, err := s.pageQuery(&spec, &q, k, nil, 1000000, false)
		if err != nil || reversed || empty {
			t.Fatalf("%s: pageQuery: reversed %v, empty %v, %v", tt.name, reversed, empty, err)
		}
		plan := explain(t, db, b)
		t.Logf("%s: %v", tt.name, details(plan))
		var top []string
		for _, r := range plan {
			if r.parent == 0 {
				top = append(top, r.detail)
			}
			if tt.start > 1<<bucketShift && (r.detail == "SCAN "+spec.alias || r.detail == "SCAN "+spec.name) {
				t.Errorf("%s scans the table: %v", tt.name, plan)
			}
		}
		if !slices.Contains(top, tt.want) || slices.Contains(details(plan), "USE TEMP B-TREE FOR ORDER BY") {
			t.Errorf("%s: plan %v, want %q at the top and no sort", tt.name, plan, tt.want)
		}
		if spec.name == "users" && tt.start > 1<<bucketShift && !slices.Contains(details(plan), "SEARCH users USING INTEGER PRIMARY KEY (rowid>?)") {
			t.Errorf("%s: the start row is not found through the pk index: %v", tt.name, plan)
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

type planRow struct {
	id, parent int
	detail     string
}

// explain returns the query plan of b's query.
func explain(t *testing.T, db *sql.DB, b *builder) []planRow {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+b.String(), b.args...)
	if err != nil {
		t.Fatalf("%s: %v", b.String(), err)
	}
	defer rows.Close()
	var plan []planRow
	for rows.Next() {
		var r planRow
		var notused int
		if err := rows.Scan(&r.id, &r.parent, &notused, &r.detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

func details(plan []planRow) []string {
	var out []string
	for _, r := range plan {
		out = append(out, r.detail)
	}
	return out
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
		Migrations:   SQLiteMigrations,
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
