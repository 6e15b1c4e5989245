package rfctest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

// BadInput: hostile or broken requests get a SCIM error quickly and write
// nothing (DESIGN.md §8): malformed JSON, unknown schemas, a 2 MB body, a
// 10,000-clause filter, an absurd count, filters on password, SQL-looking
// strings.
func BadInput(t *testing.T, tg Target) {
	c := newClient(t, tg)
	victim := c.create("/Users", c.user("victim", nil))
	vpath := "/Users/" + victim["id"].(string)

	big := `{"schemas":["` + scim.SchemaUser + `"],"userName":"` + c.prefix + `big","displayName":"` + strings.Repeat("x", 2<<20) + `"}`
	clauses := make([]string, 10000)
	for i := range clauses {
		clauses[i] = `userName eq "u` + strconv.Itoa(i) + `"`
	}
	huge := strings.Join(clauses, " or ")

	for _, tt := range []struct {
		name     string
		method   string
		path     string
		body     any
		status   int
		scimType string
	}{
		{"malformed JSON", "POST", "/Users", `{"schemas":["` + scim.SchemaUser + `"],"userName":`, http.StatusBadRequest, scim.ErrTypeInvalidSyntax},
		{"JSON array", "POST", "/Users", `[]`, http.StatusBadRequest, scim.ErrTypeInvalidSyntax},
		{"trailing garbage", "POST", "/Users", `{"schemas":["` + scim.SchemaUser + `"],"userName":"` + c.prefix + `tg"} {}`, http.StatusBadRequest, scim.ErrTypeInvalidSyntax},
		{"not JSON at all", "POST", "/Groups", `displayName=x`, http.StatusBadRequest, scim.ErrTypeInvalidSyntax},
		{"unknown schema", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser, "urn:example:evil:2.0:User"}, "userName": c.prefix + "evil"}, http.StatusBadRequest, ""},
		{"unknown extension object", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": c.prefix + "evil2", "urn:example:evil:2.0:User": map[string]any{"x": 1}}, http.StatusBadRequest, ""},
		{"no schemas", "POST", "/Users", map[string]any{"userName": c.prefix + "noschema"}, http.StatusBadRequest, ""},
		{"group schema on user", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaGroup}, "userName": c.prefix + "g"}, http.StatusBadRequest, ""},
		{"wrong type", "POST", "/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": 42}, http.StatusBadRequest, ""},
		{"2 MB body", "POST", "/Users", big, http.StatusRequestEntityTooLarge, ""},
		{"2 MB PUT", "PUT", vpath, big, http.StatusRequestEntityTooLarge, ""},
		{"2 MB PATCH", "PATCH", vpath, `{"schemas":["` + scim.SchemaPatchOp + `"],"Operations":[{"op":"replace","path":"title","value":"` + strings.Repeat("y", 2<<20) + `"}]}`, http.StatusRequestEntityTooLarge, ""},
		{"10,000-clause filter", "GET", "/Users?filter=" + q(huge), nil, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"10,000-clause search", "POST", "/Users/.search", map[string]any{"schemas": []string{scim.SchemaSearchRequest}, "filter": huge}, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"deep nesting", "GET", "/Users?filter=" + q(strings.Repeat("(", 500)+`userName eq "a"`+strings.Repeat(")", 500)), nil, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"filter on password", "GET", "/Users?filter=" + q(`password eq "secret"`), nil, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"filter on password sw", "GET", "/Users?filter=" + q(`password sw "a"`), nil, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"sort by password", "GET", "/Users?sortBy=password", nil, http.StatusBadRequest, ""},
		{"SQL in sortBy", "GET", "/Users?sortBy=" + q("userName; DROP TABLE users"), nil, http.StatusBadRequest, ""},
		{"SQL in attribute name", "GET", "/Users?filter=" + q(`userName" OR 1=1 -- eq "x"`), nil, http.StatusBadRequest, scim.ErrTypeInvalidFilter},
		{"PATCH malformed", "PATCH", vpath, `{"schemas":["` + scim.SchemaPatchOp + `"],"Operations":[{"op":`, http.StatusBadRequest, scim.ErrTypeInvalidSyntax},
		{"PATCH readOnly id", "PATCH", vpath, patchOp(op("replace", "id", "other")), http.StatusBadRequest, ""},
		{"PATCH with 1001 operations", "PATCH", vpath, func() any {
			ops := make([]map[string]any, 1001)
			for i := range ops {
				ops[i] = op("replace", "title", "t")
			}
			return patchOp(ops...)
		}(), http.StatusBadRequest, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := c.on(t)
			before := c.snapshot()
			r := c.do(tt.method, tt.path, tt.body)
			// A long URL too gets a SCIM error, not an HTTP-level 414 or 431.
			c.wantError(r, tt.status, tt.scimType, tt.name)
			if r.took > 2*time.Second {
				t.Errorf("%s took %v", tt.name, r.took)
			}
			c.unchanged(before, tt.name)
		})
	}
	if got := c.do("GET", vpath, nil).JSON(); got["userName"] != c.prefix+"victim" || got["title"] != nil {
		t.Errorf("victim changed: %v", got)
	}

	t.Run("huge count is clamped", func(t *testing.T) {
		c := c.on(t)
		for i := 0; i < 3; i++ {
			c.create("/Users", c.user("many"+strconv.Itoa(i), nil))
		}
		max := 0
		if pg := obj(c.spc(), "pagination"); pg != nil {
			max = num(pg["maxPageSize"])
		}
		if max == 0 {
			max = num(obj(c.spc(), "filter")["maxResults"])
		}
		for _, count := range []string{"10000000", "99999999999999999999"} {
			r := c.do("GET", "/Users?count="+count+"&filter="+q(`userName sw "`+c.prefix+`"`), nil)
			c.want(r, http.StatusOK, "count="+count)
			m := r.JSON()
			if num(m["itemsPerPage"]) != 4 || len(ids(m)) != 4 {
				t.Errorf("count=%s: itemsPerPage %v, %d resources", count, m["itemsPerPage"], len(ids(m)))
			}
			all := c.do("GET", "/Users?count="+count, nil)
			c.want(all, http.StatusOK, "unfiltered count="+count)
			if max > 0 && num(all.JSON()["itemsPerPage"]) > max {
				t.Errorf("count=%s returned %v resources, max page size %d", count, all.JSON()["itemsPerPage"], max)
			}
		}
	})

	t.Run("SQL-looking strings are data", func(t *testing.T) {
		c := c.on(t)
		before := c.snapshot()
		for _, f := range []string{
			`userName eq "x' OR 1=1 --"`,
			`userName eq "x\" OR 1=1 --"`,
			`userName eq "'; DROP TABLE users; --"`,
			`name.givenName co "%"`,
			`name.givenName sw "_"`,
			`userName co "\\"`,
		} {
			r := c.do("GET", "/Users?filter="+q(`userName sw "`+c.prefix+`" and (`+f+`)`), nil)
			c.want(r, http.StatusOK, f)
			if n := len(ids(r.JSON())); n != 0 {
				t.Errorf("filter %s matched %d users", f, n)
			}
		}
		c.unchanged(before, "SQL-looking filters")

		for _, name := range []string{`x' OR 1=1 --`, `Robert'); DROP TABLE users;--`, `100% _match_ \ "quoted"`} {
			full := c.prefix + name
			u := c.create("/Users", map[string]any{"schemas": []string{scim.SchemaUser}, "userName": full,
				"name": map[string]any{"givenName": name}})
			if u["userName"] != full {
				t.Errorf("userName stored as %q, want %q", u["userName"], full)
			}
			got := c.do("GET", "/Users/"+u["id"].(string), nil).JSON()
			if got["userName"] != full || obj(got, "name")["givenName"] != name {
				t.Errorf("round trip: %v", got)
			}
			esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(full)
			r := c.do("GET", "/Users?filter="+q(`userName eq "`+esc+`"`), nil)
			c.want(r, http.StatusOK, "filter by SQL-looking userName")
			if got := ids(r.JSON()); len(got) != 1 || got[0] != u["id"] {
				t.Errorf("filter userName eq %q = %v", full, got)
			}
		}
		r := c.do("GET", "/Users?filter="+q(`userName sw "`+c.prefix+`" and name.givenName co "%"`), nil)
		c.want(r, http.StatusOK, "co %")
		if n := len(ids(r.JSON())); n != 1 {
			t.Errorf(`name.givenName co "%%" matched %d users, want the one with a literal %%`, n)
		}
	})
}
