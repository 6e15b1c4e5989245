package filter

import (
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/google/go-cmp/cmp"
)

// testMapping maps User attributes to a "users u" table and multi-valued ones
// to rows of a values table, keyed by the lower-case canonical path.
type testMapping struct {
	cols  map[string]string
	multi map[string]MultiFrame
}

func (m testMapping) Column(p scim.AttrPath) (string, bool) {
	c, ok := m.cols[strings.ToLower(p.String())]
	return c, ok
}

func (m testMapping) Multi(p scim.AttrPath) (MultiFrame, bool) {
	f, ok := m.multi[strings.ToLower(p.String())]
	return f, ok
}

// newTestMapping returns the mapping of the test schema; values names the values
// table (schema-qualified on PostgreSQL).
func newTestMapping(values string) testMapping { return testMappingOf(values, false) }

// testMappingOf returns the test mapping whose frames are correlated EXISTS
// subqueries or, with semiJoin, Key/Ref semi-joins.
func testMappingOf(values string, semiJoin bool) testMapping {
	frame := func(attr string) MultiFrame {
		f := MultiFrame{
			From:    values + " v",
			Where:   "v.user_pk = u.pk AND v.attr = '" + attr + "'",
			Columns: map[string]string{"value": "v.value", "type": "v.type", "display": "v.display", "primary": "v.is_primary"},
			Default: "value",
		}
		if semiJoin {
			f.Where, f.Key, f.Ref = "v.attr = '"+attr+"'", "u.pk", "v.user_pk"
		}
		return f
	}
	interests := frame("interests")
	interests.Columns = map[string]string{"value": "v.value"}
	lower := strings.ToLower
	return testMapping{
		cols: map[string]string{
			"id":                                     "u.id",
			"externalid":                             "u.external_id",
			"meta.lastmodified":                      "u.last_modified",
			"username":                               "u.user_name",
			"displayname":                            "u.display_name",
			"name.givenname":                         "u.given_name",
			"name.familyname":                        "u.family_name",
			"title":                                  "u.title",
			"active":                                 "u.active",
			lower(enterprise) + ":employeenumber":    "u.employee_number",
			lower(enterprise) + ":manager.value":     "u.manager_value",
			lower(scim.SchemaConnectUser) + ":dummy": "u.never_used",
		},
		multi: map[string]MultiFrame{
			"emails": frame("emails"),
			lower(scim.SchemaConnectUser) + ":interests": interests,
		},
	}
}

var unixMicro = func(v any) any { return v.(time.Time).UnixMicro() }

var testDialect = Dialect{
	Placeholder: QuestionMark,
	TimeArg:     unixMicro,
	BoolArg: func(b bool) any {
		if b {
			return 1
		}
		return 0
	},
}

func TestSQL(t *testing.T) {
	emails := "EXISTS (SELECT 1 FROM user_values v WHERE (v.user_pk = u.pk AND v.attr = 'emails') AND ("
	tests := []struct {
		filter string
		where  string
		args   []any
	}{
		{`userName eq "Bob"`, `lower(u.user_name) = lower(?)`, []any{"Bob"}},
		{`id eq "Bob"`, `u.id = ?`, []any{"Bob"}},
		{`userName ne "b"`, `(u.user_name IS NULL OR lower(u.user_name) <> lower(?))`, []any{"b"}},
		{`userName gt "b"`, `lower(u.user_name) > lower(?)`, []any{"b"}},
		{`userName ge "b"`, `lower(u.user_name) >= lower(?)`, []any{"b"}},
		{`userName lt "b"`, `lower(u.user_name) < lower(?)`, []any{"b"}},
		{`userName le "b"`, `lower(u.user_name) <= lower(?)`, []any{"b"}},
		{`userName co "50%_\\"`, `lower(u.user_name) LIKE lower(?) ESCAPE '\'`, []any{`%50\%\_\\%`}},
		{`userName sw "a_"`, `lower(u.user_name) LIKE lower(?) ESCAPE '\'`, []any{`a\_%`}},
		{`userName ew "%"`, `lower(u.user_name) LIKE lower(?) ESCAPE '\'`, []any{`%\%`}},
		{`externalId co "X"`, `replace(u.external_id, ?, '') <> u.external_id`, []any{"X"}},
		{`externalId sw "X"`, `substr(u.external_id, 1, length(?)) = ?`, []any{"X", "X"}},
		{`externalId ew "X"`, `substr(u.external_id, length(u.external_id) - length(?) + 1) = ?`, []any{"X", "X"}},
		{`externalId co ""`, `u.external_id IS NOT NULL`, nil},
		{`title pr`, `(u.title IS NOT NULL AND u.title <> '')`, nil},
		{`active pr`, `u.active IS NOT NULL`, nil},
		{`title eq null`, `((u.title IS NOT NULL AND u.title <> '')) IS NOT TRUE`, nil},
		{`title ne null`, `(u.title IS NOT NULL AND u.title <> '')`, nil},
		{`active eq true`, `u.active = ?`, []any{1}},
		{`active ne true`, `(u.active IS NULL OR u.active <> ?)`, []any{1}},
		{`meta.lastModified gt "2020-01-02T03:04:05Z"`, `u.last_modified > ?`, []any{int64(1577934245000000)}},
		{`name pr`, `((u.family_name IS NOT NULL AND u.family_name <> '') OR (u.given_name IS NOT NULL AND u.given_name <> ''))`, nil},
		{`name eq null`, `(((u.family_name IS NOT NULL AND u.family_name <> '') OR (u.given_name IS NOT NULL AND u.given_name <> ''))) IS NOT TRUE`, nil},
		{`meta pr`, `(u.last_modified IS NOT NULL)`, nil},
		{`name[givenName eq "a"]`, `lower(u.given_name) = lower(?)`, []any{"a"}},
		{`title pr and userName pr and active pr`,
			`((u.title IS NOT NULL AND u.title <> '') AND (u.user_name IS NOT NULL AND u.user_name <> '') AND u.active IS NOT NULL)`, nil},
		{`title eq "a" or title eq "b" and active eq false`,
			`(lower(u.title) = lower(?) OR (lower(u.title) = lower(?) AND u.active = ?))`, []any{"a", "b", 0}},
		{`not (title eq "a" or title eq "b")`,
			`((lower(u.title) = lower(?) OR lower(u.title) = lower(?))) IS NOT TRUE`, []any{"a", "b"}},
		{`emails eq "a@x"`, emails + `lower(v.value) = lower(?)))`, []any{"a@x"}},
		{`emails.type eq "work"`, emails + `lower(v.type) = lower(?)))`, []any{"work"}},
		{`emails pr`, `EXISTS (SELECT 1 FROM user_values v WHERE v.user_pk = u.pk AND v.attr = 'emails')`, nil},
		{`emails.display pr`, emails + `(v.display IS NOT NULL AND v.display <> '')))`, nil},
		{`emails eq null`, `(EXISTS (SELECT 1 FROM user_values v WHERE v.user_pk = u.pk AND v.attr = 'emails')) IS NOT TRUE`, nil},
		{`emails[type eq "work" and value co "@x"]`,
			emails + `(lower(v.type) = lower(?) AND lower(v.value) LIKE lower(?) ESCAPE '\')))`, []any{"work", "%@x%"}},
		{`emails[not (primary eq true)]`, emails + `(v.is_primary = ?) IS NOT TRUE))`, []any{1}},
		{`emails[type eq null]`, emails + `((v.type IS NOT NULL AND v.type <> '')) IS NOT TRUE))`, nil},
		{scim.SchemaConnectUser + `:interests eq "Math"`,
			`EXISTS (SELECT 1 FROM user_values v WHERE (v.user_pk = u.pk AND v.attr = 'interests') AND (lower(v.value) = lower(?)))`, []any{"Math"}},
		{enterprise + `:employeeNumber eq "1" and userName eq "x"`,
			`(lower(u.employee_number) = lower(?) AND lower(u.user_name) = lower(?))`, []any{"1", "x"}},
		{enterprise + `:manager.value eq "M"`, `u.manager_value = ?`, []any{"M"}},
		{`userName eq "x' OR '1'='1"`, `lower(u.user_name) = lower(?)`, []any{"x' OR '1'='1"}},
		{`userName eq "\"; DROP TABLE users; --"`, `lower(u.user_name) = lower(?)`, []any{`"; DROP TABLE users; --`}},
	}
	m := newTestMapping("user_values")
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := Parse(scim.UserResourceType, tt.filter, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			where, args, err := SQL(e, m, testDialect, 1)
			if err != nil {
				t.Fatal(err)
			}
			if where != tt.where {
				t.Errorf("where\n got %s\nwant %s", where, tt.where)
			}
			if diff := cmp.Diff(tt.args, args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if n := strings.Count(where, "?"); n != len(args) {
				t.Errorf("%d placeholders for %d args", n, len(args))
			}
		})
	}
}

func TestSQLSemiJoinFrames(t *testing.T) {
	m := testMappingOf("user_values", true)
	tests := []struct{ filter, where string }{
		{`emails[type eq "work" and value co "@x"]`,
			`u.pk IN (SELECT v.user_pk FROM user_values v WHERE (v.attr = 'emails') AND ((lower(v.type) = lower(?) AND lower(v.value) LIKE lower(?) ESCAPE '\')))`},
		{`emails pr`, `u.pk IN (SELECT v.user_pk FROM user_values v WHERE v.attr = 'emails')`},
	}
	for _, tt := range tests {
		e, err := Parse(scim.UserResourceType, tt.filter, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		where, _, err := SQL(e, m, testDialect, 1)
		if err != nil {
			t.Fatal(err)
		}
		if where != tt.where {
			t.Errorf("%s\n got %s\nwant %s", tt.filter, where, tt.where)
		}
	}
	p, _ := scim.UserResourceType.ParsePath("emails")
	key, err := OrderBy(p, m)
	want := "(SELECT lower(v.value) FROM user_values v WHERE v.user_pk = u.pk AND (v.attr = 'emails') ORDER BY CASE WHEN v.is_primary THEN 0 ELSE 1 END, lower(v.value) LIMIT 1)"
	if err != nil || key != want {
		t.Errorf("OrderBy(emails) = %s, %v; want %s", key, err, want)
	}
}

func TestSQLNumbersPlaceholdersFromFirstArg(t *testing.T) {
	e, err := Parse(scim.UserResourceType, `userName eq "a" or emails[type eq "work" and value sw "b"]`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d := testDialect
	d.Placeholder = DollarN
	where, args, err := SQL(e, newTestMapping("user_values"), d, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []string{"$3", "$4", "$5"} {
		if !strings.Contains(where, ph) {
			t.Errorf("%s missing from %s", ph, where)
		}
	}
	if strings.Contains(where, "$2") || strings.Contains(where, "$6") || len(args) != 3 {
		t.Errorf("where %s with %d args, want $3..$5", where, len(args))
	}
}

func TestSQLKeepsValuesWithoutDialectConversions(t *testing.T) {
	e, err := Parse(scim.UserResourceType, `active eq true and meta.lastModified lt "2020-01-02T03:04:05Z"`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, args, err := SQL(e, newTestMapping("user_values"), Dialect{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{true, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
}

func TestSQLRefusesUnmappedPaths(t *testing.T) {
	tests := []struct{ filter, detail string }{
		{`nickName eq "x"`, "attribute nickName cannot be filtered"},
		{`phoneNumbers eq "1"`, "attribute phoneNumbers cannot be filtered"},
		{`phoneNumbers[type eq "work"]`, "attribute phoneNumbers cannot be filtered"},
		{`addresses pr`, "attribute addresses cannot be filtered"},
		{`name.middleName pr`, "attribute name.middleName cannot be filtered"},
		{`meta.version eq "1"`, "attribute meta.version cannot be filtered"},
		{scim.SchemaConnectUser + `:emailVerified eq true`, "emailVerified cannot be filtered"},
		{`userName pr and nickName pr`, "attribute nickName cannot be filtered"},
	}
	m := newTestMapping("user_values")
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := Parse(scim.UserResourceType, tt.filter, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = SQL(e, m, testDialect, 1)
			wantSCIMError(t, err, scim.ErrTypeInvalidFilter, tt.detail)
		})
	}
}

func TestSQLRejectsForeignExpressions(t *testing.T) {
	user, _ := scim.UserResourceType.ParsePath("userName")
	for _, e := range []Expr{
		nil,
		&Compare{Path: user, Op: "xx", Value: "a"},
		&Compare{Path: user, Op: OpEq, Value: []byte("a")},
		&Compare{Path: user, Op: OpCo, Value: int64(1)},
		&Compare{Path: user, Op: OpGt, Value: nil},
	} {
		if where, _, err := SQL(e, newTestMapping("user_values"), testDialect, 1); err == nil {
			t.Errorf("SQL(%#v) = %s, want error", e, where)
		}
	}
}

func TestOrderBy(t *testing.T) {
	m := newTestMapping("user_values")
	tests := []struct{ path, want string }{
		{"userName", "lower(u.user_name)"},
		{"id", "u.id"},
		{"meta.lastModified", "u.last_modified"},
		{"emails", "(SELECT lower(v.value) FROM user_values v WHERE v.user_pk = u.pk AND v.attr = 'emails' ORDER BY CASE WHEN v.is_primary THEN 0 ELSE 1 END, lower(v.value) LIMIT 1)"},
		{"emails.type", "(SELECT lower(v.type) FROM user_values v WHERE v.user_pk = u.pk AND v.attr = 'emails' ORDER BY CASE WHEN v.is_primary THEN 0 ELSE 1 END, lower(v.type) LIMIT 1)"},
		{scim.SchemaConnectUser + ":interests", "(SELECT min(lower(v.value)) FROM user_values v WHERE v.user_pk = u.pk AND v.attr = 'interests')"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, ok := scim.UserResourceType.ParsePath(tt.path)
			if !ok {
				t.Fatalf("no path %s", tt.path)
			}
			got, err := OrderBy(p, m)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("OrderBy(%s)\n got %s\nwant %s", tt.path, got, tt.want)
			}
		})
	}
	for _, path := range []string{"nickName", "name", "password", "phoneNumbers"} {
		p, _ := scim.UserResourceType.ParsePath(path)
		_, err := OrderBy(p, m)
		wantSCIMError(t, err, scim.ErrTypeInvalidValue, "cannot be sorted by")
	}
}
