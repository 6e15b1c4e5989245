package filter

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// testDB is a database holding the fixture users, with the mapping and dialect
// that match its tables.
type testDB struct {
	db *sql.DB
	m  Mapping
	d  Dialect
	// users is the (qualified) users table.
	users string
}

// fixture tables; %s is replaced by a schema prefix ("" or "name.").
const fixtureSchema = `
CREATE TABLE %susers (
	pk INTEGER PRIMARY KEY, id TEXT, external_id TEXT, user_name TEXT, display_name TEXT,
	given_name TEXT, family_name TEXT, title TEXT, active %s, last_modified %s,
	employee_number TEXT, manager_value TEXT);
CREATE TABLE %suser_values (
	user_pk INTEGER, attr TEXT, value TEXT, type TEXT, display TEXT, is_primary %s)`

type fixtureUser struct {
	pk                                                              int
	id, externalID, userName, display, given, family, title, empNum any
	manager                                                         any
	active                                                          any // bool or nil
	lastModified                                                    any // time.Time or nil
}

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var fixtureUsers = []fixtureUser{
	{1, "id-1", "EXT-A", "alice", "Alice Liddell", "Alice", "Liddell", `50%_\ off`, "1001", "bob-id", true, day("2024-01-01T00:00:00Z")},
	{2, "id-2", "ext-b", "Bob", "Bob Smith", "Bob", "Smith", "5000 units", "1002", nil, false, day("2025-06-01T00:00:00Z")},
	{3, "id-3", nil, "carol", nil, nil, "Carroll", `50 ab\cd`, nil, "BOB-ID", nil, day("2023-03-01T00:00:00Z")},
	{4, "id-4", "EXT-D", "dave", "Dave", nil, nil, "", "1003", nil, true, day("2024-06-01T00:00:00Z")},
	{5, "id-5", nil, "eve_1", "Eve", nil, nil, nil, nil, nil, false, nil},
}

// fixtureValues: user pk, attr, value, type, primary (bool or nil).
var fixtureValues = []struct {
	pk               int
	attr, value, typ string
	primary          any
}{
	{1, "emails", "alice@work.example", "work", true},
	{1, "emails", "alice@home.example", "home", false},
	{1, "interests", "Math", "", nil},
	{1, "interests", "Art", "", nil},
	{2, "emails", "bob@work.example", "work", nil},
	{3, "emails", "carol@work.example", "home", false},
	{3, "emails", "carol@home.example", "work", false},
	{3, "interests", "art", "", nil},
}

func (tdb *testDB) load(tb testing.TB, prefix, boolType, timeType string) {
	tb.Helper()
	ddl := strings.NewReplacer("%susers", prefix+"users", "%suser_values", prefix+"user_values",
		"active %s", "active "+boolType, "last_modified %s", "last_modified "+timeType,
		"is_primary %s", "is_primary "+boolType).Replace(fixtureSchema)
	for stmt := range strings.SplitSeq(ddl, ";") {
		if _, err := tdb.db.Exec(stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	ph := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = tdb.d.Placeholder(i + 1)
		}
		return strings.Join(s, ", ")
	}
	conv := func(v any) any {
		switch v := v.(type) {
		case bool:
			if tdb.d.BoolArg != nil {
				return tdb.d.BoolArg(v)
			}
		case time.Time:
			if tdb.d.TimeArg != nil {
				return tdb.d.TimeArg(v)
			}
		}
		return v
	}
	for _, u := range fixtureUsers {
		_, err := tdb.db.Exec("INSERT INTO "+prefix+"users VALUES ("+ph(12)+")",
			u.pk, u.id, u.externalID, u.userName, u.display, u.given, u.family, u.title,
			conv(u.active), conv(u.lastModified), u.empNum, u.manager)
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, v := range fixtureValues {
		if _, err := tdb.db.Exec("INSERT INTO "+prefix+"user_values VALUES ("+ph(6)+")",
			v.pk, v.attr, v.value, v.typ, nil, conv(v.primary)); err != nil {
			tb.Fatal(err)
		}
	}
}

func openSQLite(tb testing.TB) *testDB { return openSQLiteWith(tb, false) }

func openSQLiteWith(tb testing.TB, semiJoin bool) *testDB {
	tb.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	tb.Cleanup(func() { db.Close() })
	tdb := &testDB{db: db, m: testMappingOf("user_values", semiJoin), d: testDialect, users: "users"}
	tdb.load(tb, "", "INTEGER", "INTEGER")
	return tdb
}

func openPostgres(tb testing.TB, semiJoin bool) *testDB {
	tb.Helper()
	dsn := testenv.PostgresDSN(tb)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	schema := testenv.Name(tb)
	ctx := testenv.Context(tb, time.Minute)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	tdb := &testDB{db: db, m: testMappingOf(schema+".user_values", semiJoin), d: Dialect{Placeholder: DollarN}, users: schema + ".users"}
	tdb.load(tb, schema+".", "BOOLEAN", "TIMESTAMPTZ")
	return tdb
}

// selectUsers returns the sorted user names that filter selects.
func (tdb *testDB) selectUsers(tb testing.TB, filter string) []string {
	tb.Helper()
	e, err := Parse(scim.UserResourceType, filter, Limits{})
	if err != nil {
		tb.Fatalf("Parse(%q): %v", filter, err)
	}
	// The store's own argument comes first, so the filter's are numbered from 2.
	where, args, err := SQL(e, tdb.m, tdb.d, 2)
	if err != nil {
		tb.Fatalf("SQL(%q): %v", filter, err)
	}
	q := "SELECT u.user_name FROM " + tdb.users + " u WHERE u.pk > " + tdb.d.Placeholder(1) + " AND (" + where + ")"
	names := tdb.query(tb, q, append([]any{0}, args...)...)
	slices.Sort(names)
	return names
}

func (tdb *testDB) query(tb testing.TB, q string, args ...any) []string {
	tb.Helper()
	rows, err := tdb.db.QueryContext(context.Background(), q, args...)
	if err != nil {
		tb.Fatalf("%s %v: %v", q, args, err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		names = append(names, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return names
}

var dbCases = []struct {
	filter string
	want   []string
}{
	{`userName eq "ALICE"`, []string{"alice"}},
	{`userName eq "bob"`, []string{"Bob"}},
	{`id eq "ID-1"`, []string{}},
	{`id eq "id-1"`, []string{"alice"}},
	{`externalId eq "ext-a"`, []string{}},
	{`externalId eq "EXT-A"`, []string{"alice"}},
	{`externalId sw "EXT"`, []string{"alice", "dave"}},
	{`externalId sw "ext"`, []string{"Bob"}},
	{`externalId co "XT-"`, []string{"alice", "dave"}},
	{`externalId co "xt-"`, []string{"Bob"}},
	{`externalId ew "-b"`, []string{"Bob"}},
	{`externalId ew "-B"`, []string{}},
	{`externalId ew "much longer than EXT-A"`, []string{}},
	{`externalId co ""`, []string{"Bob", "alice", "dave"}},
	{`userName ne "alice"`, []string{"Bob", "carol", "dave", "eve_1"}},
	{`displayName ne "bob smith"`, []string{"alice", "carol", "dave", "eve_1"}},
	{`title pr`, []string{"Bob", "alice", "carol"}},
	{`not (title pr)`, []string{"dave", "eve_1"}},
	{`title eq null`, []string{"dave", "eve_1"}},
	{`title ne null`, []string{"Bob", "alice", "carol"}},
	{`name pr`, []string{"Bob", "alice", "carol"}},
	{`active eq true`, []string{"alice", "dave"}},
	{`active eq false`, []string{"Bob", "eve_1"}},
	{`active ne true`, []string{"Bob", "carol", "eve_1"}},
	{`meta.lastModified gt "2024-06-01T00:00:00Z"`, []string{"Bob"}},
	{`meta.lastModified ge "2024-06-01T00:00:00Z"`, []string{"Bob", "dave"}},
	{`meta.lastModified lt "2024-06-01T00:00:00Z"`, []string{"alice", "carol"}},
	{`meta.lastModified le "2024-06-01T02:00:00+02:00"`, []string{"alice", "carol", "dave"}},
	{`name.familyName sw "lid"`, []string{"alice"}},
	{`displayName co "SMITH"`, []string{"Bob"}},
	{`displayName ew "liddell"`, []string{"alice"}},
	{`userName gt "b"`, []string{"Bob", "carol", "dave", "eve_1"}},
	{`userName lt "Bob"`, []string{"alice"}},
	{`userName le "BOB"`, []string{"Bob", "alice"}},
	{`title co "50%_\\"`, []string{"alice"}},
	{`title co "0 "`, []string{"Bob", "carol"}},
	{`title co "%"`, []string{"alice"}},
	{`title co "_"`, []string{"alice"}},
	{`title co "\\"`, []string{"alice", "carol"}},
	{`title sw "50"`, []string{"Bob", "alice", "carol"}},
	{`userName sw "eve_"`, []string{"eve_1"}},
	{`userName ew "e_1"`, []string{"eve_1"}},
	{`emails co "@WORK"`, []string{"Bob", "alice", "carol"}},
	{`emails eq "BOB@work.example"`, []string{"Bob"}},
	{`emails[type eq "work" and value co "@work"]`, []string{"Bob", "alice"}},
	{`emails.type eq "work" and emails.value co "@work"`, []string{"Bob", "alice", "carol"}},
	{`emails[type eq "home" or primary eq true]`, []string{"alice", "carol"}},
	{`emails[not (type eq "work")]`, []string{"alice", "carol"}},
	{`emails[primary eq true]`, []string{"alice"}},
	// Three terms and parentheses inside brackets (a gap of the upstream parser).
	{`emails[value eq "bob@work.example" or value eq "carol@home.example" or value eq "none"]`, []string{"Bob", "carol"}},
	{`emails[type eq "work" and (value co "@home" or primary eq true)]`, []string{"alice", "carol"}},
	{`emails[not (type eq "work" or type eq "home" or primary pr)]`, []string{}},
	{`emails[primary ne true]`, []string{"Bob", "alice", "carol"}},
	{`emails pr`, []string{"Bob", "alice", "carol"}},
	{`not (emails pr)`, []string{"dave", "eve_1"}},
	{`emails eq null`, []string{"dave", "eve_1"}},
	{`emails.display pr`, []string{}},
	{`emails[type eq "home"] or title eq "5000 units"`, []string{"Bob", "alice", "carol"}},
	{enterprise + `:employeeNumber eq "1001" or userName eq "bob"`, []string{"Bob", "alice"}},
	{enterprise + `:manager.value eq "bob-id"`, []string{"alice"}},
	{connectExt + `:interests eq "MATH"`, []string{"alice"}},
	{connectExt + `:interests eq "art"`, []string{"alice", "carol"}},
	{connectExt + `:interests pr`, []string{"alice", "carol"}},
	{`userName eq "x' OR '1'='1"`, []string{}},
	{`userName eq "alice') OR 1=1 --"`, []string{}},
	{`userName eq "alice" or userName eq "bob" and active eq true`, []string{"alice"}},
	{`(userName eq "alice" or userName eq "bob") and active eq false`, []string{"Bob"}},
	{`not (userName eq "alice" or active eq false)`, []string{"carol", "dave"}},
	{`not (title eq "5000 units")`, []string{"alice", "carol", "dave", "eve_1"}},
	{`not (not (active eq true))`, []string{"alice", "dave"}},
}

func runDBCases(t *testing.T, tdb *testDB) {
	for _, tt := range dbCases {
		t.Run(tt.filter, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tdb.selectUsers(t, tt.filter)); diff != "" {
				t.Errorf("%s selects (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
	t.Run("order", func(t *testing.T) {
		tests := []struct {
			sortBy, where string
			want          []string
		}{
			{"userName", "u.pk > 0", []string{"alice", "Bob", "carol", "dave", "eve_1"}},
			{"meta.lastModified", "u.last_modified IS NOT NULL", []string{"carol", "alice", "dave", "Bob"}},
			// The primary email's type first (alice, Bob: work), else the least
			// (carol: home).
			{"emails.type", "u.pk IN (1, 2, 3)", []string{"carol", "alice", "Bob"}},
			{"emails", "u.pk IN (1, 2, 3)", []string{"alice", "Bob", "carol"}},
		}
		for _, tt := range tests {
			p, _ := scim.UserResourceType.ParsePath(tt.sortBy)
			key, err := OrderBy(p, tdb.m)
			if err != nil {
				t.Fatal(err)
			}
			got := tdb.query(t, "SELECT u.user_name FROM "+tdb.users+" u WHERE "+tt.where+" ORDER BY "+key+", u.pk")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sortBy %s (-want +got):\n%s", tt.sortBy, diff)
			}
		}
	})
}

func TestSQLOnSQLite(t *testing.T) {
	t.Run("exists", func(t *testing.T) { runDBCases(t, openSQLiteWith(t, false)) })
	t.Run("semi-join", func(t *testing.T) { runDBCases(t, openSQLiteWith(t, true)) })
}

func TestSQLOnPostgres(t *testing.T) {
	t.Run("exists", func(t *testing.T) { runDBCases(t, openPostgres(t, false)) })
	t.Run("semi-join", func(t *testing.T) { runDBCases(t, openPostgres(t, true)) })
}
