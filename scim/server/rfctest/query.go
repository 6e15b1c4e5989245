package rfctest

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
)

// people is the fixture of the query tests, keyed by short name.
type people struct {
	c       *client
	id      map[string]string // short name -> id
	created map[string]any    // alice's meta.created
}

const (
	ent = scim.SchemaEnterpriseUser
	con = scim.SchemaConnectUser
)

// seed creates five users and one group.
func seed(c *client) *people {
	c.t.Helper()
	p := &people{c: c, id: map[string]string{}}
	mk := func(short, given, family, title string, active bool, emails []any, e map[string]any, extra map[string]any) {
		body := c.user(short, map[string]any{
			"schemas": []string{scim.SchemaUser, ent, con},
			"name":    map[string]any{"givenName": given, "familyName": family},
			"active":  active,
		})
		if title != "" {
			body["title"] = title
		}
		if emails != nil {
			body["emails"] = emails
		}
		if e != nil {
			body[ent] = e
		}
		for k, v := range extra {
			body[k] = v
		}
		u := c.create("/Users", body)
		p.id[short] = u["id"].(string)
		if short == "alice" {
			p.created = obj(u, "meta")
		}
	}
	email := func(v, typ string, primary bool) map[string]any {
		return map[string]any{"value": v, "type": typ, "primary": primary}
	}
	mk("alice", "Alice", "Smith", "Engineer", true,
		[]any{email("alice@example.com", "work", true), email("alice@home.test", "home", false)},
		map[string]any{"employeeNumber": "1001", "department": "Sales"},
		map[string]any{con: map[string]any{"interests": []string{"chess", "go"}}})
	mk("bob", "Bob", "Jones", "Manager", false,
		[]any{email("bob@example.org", "work", true)},
		map[string]any{"employeeNumber": "1002", "department": "Engineering"}, nil)
	mk("carol", "Carol", "Smith", "", true,
		[]any{email("carol@example.com", "home", true)},
		map[string]any{"employeeNumber": "1003", "department": "Sales"}, nil)
	mk("dave", "Dave", "Brown", "Engineer", true, nil,
		map[string]any{"department": "Support"}, nil)
	mk("eve", "Eve", "Jones", "", true,
		[]any{email("eve@example.com", "work", true)},
		map[string]any{"employeeNumber": "1005"}, nil)
	return p
}

// scope restricts a filter to this test's users.
func (p *people) scope(f string) string {
	s := `userName sw "` + p.c.prefix + `"`
	if f == "" {
		return s
	}
	return s + " and (" + f + ")"
}

func (p *people) idsOf(names ...string) []string {
	out := []string{}
	for _, n := range names {
		out = append(out, p.id[n])
	}
	return out
}

func (p *people) namesOf(list []string) []string {
	rev := map[string]string{}
	for n, id := range p.id {
		rev[id] = n
	}
	out := []string{}
	for _, id := range list {
		out = append(out, rev[id])
	}
	return out
}

// RFC7644_3_4_2_Query: filtering with every operator, and/or/not, value paths,
// multi-valued and extension attributes mixed with core ones; sortBy and
// sortOrder; startIndex/count with itemsPerPage = resources returned.
func RFC7644_3_4_2_Query(t *testing.T, tg Target) {
	c := newClient(t, tg)
	p := seed(c)
	created := p.created["created"].(string)
	P := c.prefix
	for _, tt := range []struct {
		name, filter string
		want         []string
	}{
		{"eq", `userName eq "` + P + `alice"`, []string{"alice"}},
		{"eq is case-insensitive for userName", `userName eq "` + strings.ToUpper(P) + `ALICE"`, []string{"alice"}},
		{"attribute names are case-insensitive", `NAME.GIVENNAME eq "alice"`, []string{"alice"}},
		{"ne", `name.familyName ne "Smith"`, []string{"bob", "dave", "eve"}},
		{"co", `name.familyName co "mit"`, []string{"alice", "carol"}},
		{"sw", `name.givenName sw "Da"`, []string{"dave"}},
		{"ew", `name.familyName ew "nes"`, []string{"bob", "eve"}},
		{"pr", `title pr`, []string{"alice", "bob", "dave"}},
		{"gt", `userName gt "` + P + `carol"`, []string{"dave", "eve"}},
		{"ge", `userName ge "` + P + `carol"`, []string{"carol", "dave", "eve"}},
		{"lt", `userName lt "` + P + `bob"`, []string{"alice"}},
		{"le", `userName le "` + P + `bob"`, []string{"alice", "bob"}},
		{"dateTime ge", `meta.created ge "` + created + `"`, []string{"alice", "bob", "carol", "dave", "eve"}},
		{"dateTime gt far future", `meta.lastModified gt "2999-01-01T00:00:00Z"`, nil},
		{"boolean", `active eq false`, []string{"bob"}},
		{"and", `name.familyName eq "Smith" and active eq true`, []string{"alice", "carol"}},
		{"or", `title eq "Manager" or name.givenName eq "Eve"`, []string{"bob", "eve"}},
		{"not", `not (name.familyName eq "Jones")`, []string{"alice", "carol", "dave"}},
		{"precedence", `title eq "Engineer" or title eq "Manager" and active eq true`, []string{"alice", "dave"}},
		{"value path", `emails[type eq "work" and value co "example.com"]`, []string{"alice", "eve"}},
		{"value path single", `emails[type eq "home"]`, []string{"alice", "carol"}},
		{"multi-valued sub-attribute", `emails.value ew ".org"`, []string{"bob"}},
		{"multi-valued default sub-attribute", `emails co "carol@"`, []string{"carol"}},
		{"multi-valued pr", `emails pr`, []string{"alice", "bob", "carol", "eve"}},
		{"enterprise", ent + `:department eq "Sales"`, []string{"alice", "carol"}},
		{"enterprise pr", ent + `:employeeNumber pr`, []string{"alice", "bob", "carol", "eve"}},
		{"mixed core and enterprise", ent + `:department eq "Sales" and name.givenName eq "Carol"`, []string{"carol"}},
		{"mixed or", ent + `:department eq "Support" or active eq false`, []string{"bob", "dave"}},
		{"connect extension", con + `:interests eq "chess"`, []string{"alice"}},
		{"no match", `name.givenName eq "Nobody"`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := c.on(t)
			r := c.do("GET", "/Users?count=100&filter="+q(p.scope(tt.filter)), nil)
			c.want(r, http.StatusOK, tt.filter)
			m := r.JSON()
			got := ids(m)
			if !sameSet(got, p.idsOf(tt.want...)) {
				t.Errorf("filter %s: got %v, want %v", tt.filter, p.namesOf(got), tt.want)
			}
			if !hasString(m["schemas"], scim.SchemaListResponse) {
				t.Errorf("schemas = %v", m["schemas"])
			}
			if num(m["totalResults"]) != len(tt.want) || num(m["itemsPerPage"]) != len(got) {
				t.Errorf("totalResults %v itemsPerPage %v, want %d/%d", m["totalResults"], m["itemsPerPage"], len(tt.want), len(got))
			}
			if _, ok := m["Resources"].([]any); !ok {
				t.Errorf("Resources is %T, want an array (even when empty)", m["Resources"])
			}
		})
	}

	t.Run("groups", func(t *testing.T) {
		c := c.on(t)
		g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": P + "Readers",
			"members": []any{map[string]any{"value": p.id["alice"]}}})
		r := c.do("GET", "/Groups?filter="+q(`displayName eq "`+P+`readers"`), nil)
		c.want(r, http.StatusOK, "filter groups")
		if !reflect.DeepEqual(ids(r.JSON()), []string{g["id"].(string)}) {
			t.Errorf("groups = %s", r.Body)
		}
		r = c.do("GET", "/Groups?filter="+q(`members[value eq "`+p.id["alice"]+`"] and displayName sw "`+P+`"`), nil)
		c.want(r, http.StatusOK, "filter groups by member")
		if !reflect.DeepEqual(ids(r.JSON()), []string{g["id"].(string)}) {
			t.Errorf("groups by member = %s", r.Body)
		}
	})

	t.Run("invalid filters", func(t *testing.T) {
		c := c.on(t)
		for _, f := range []string{`userName eq`, `nosuchattr eq "x"`, `userName xx "a"`, `(userName eq "a"`, `emails[type eq "work"`} {
			c.wantError(c.do("GET", "/Users?filter="+q(f), nil), http.StatusBadRequest, scim.ErrTypeInvalidFilter, "filter "+f)
		}
	})

	t.Run("sortBy", func(t *testing.T) {
		c := c.on(t)
		for _, tt := range []struct {
			query string
			want  []string
		}{
			{"sortBy=userName", []string{"alice", "bob", "carol", "dave", "eve"}},
			{"sortBy=userName&sortOrder=ascending", []string{"alice", "bob", "carol", "dave", "eve"}},
			{"sortBy=name.givenName&sortOrder=descending", []string{"eve", "dave", "carol", "bob", "alice"}},
			{"sortBy=NAME.familyName&sortOrder=ascending&filter=" + q(p.scope(`name.familyName eq "Brown" or name.familyName eq "Jones" and name.givenName eq "Bob"`)), []string{"dave", "bob"}},
		} {
			query := tt.query
			if !strings.Contains(query, "filter=") {
				query += "&filter=" + q(p.scope(""))
			}
			r := c.do("GET", "/Users?"+query, nil)
			c.want(r, http.StatusOK, query)
			if got := p.namesOf(ids(r.JSON())); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
			}
		}
		c.wantError(c.do("GET", "/Users?sortBy=userName&sortOrder=sideways", nil), http.StatusBadRequest, scim.ErrTypeInvalidValue, "bad sortOrder")
	})

	t.Run("startIndex and count", func(t *testing.T) {
		c := c.on(t)
		base := "/Users?sortBy=userName&filter=" + q(p.scope(""))
		for _, tt := range []struct {
			query      string
			want       []string
			startIndex int
		}{
			{"&startIndex=2&count=2", []string{"bob", "carol"}, 2},
			{"&startIndex=5&count=10", []string{"eve"}, 5},
			{"&startIndex=6&count=10", []string{}, 6},
			{"&startIndex=0&count=1", []string{"alice"}, 1},
			{"&startIndex=-3&count=1", []string{"alice"}, 1},
			{"&count=0", []string{}, 1},
			{"&count=-1", []string{}, 1},
		} {
			r := c.do("GET", base+tt.query, nil)
			c.want(r, http.StatusOK, tt.query)
			m := r.JSON()
			got := p.namesOf(ids(m))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
			}
			if num(m["totalResults"]) != 5 || num(m["itemsPerPage"]) != len(tt.want) || num(m["startIndex"]) != tt.startIndex {
				t.Errorf("%s: totalResults %v itemsPerPage %v startIndex %v; want 5, %d, %d", tt.query, m["totalResults"], m["itemsPerPage"], m["startIndex"], len(tt.want), tt.startIndex)
			}
		}
		c.wantError(c.do("GET", base+"&count=many", nil), http.StatusBadRequest, scim.ErrTypeInvalidValue, "count=many")
	})
}

// RFC7644_3_4_2_5_Attributes: attributes returns only what is asked plus the
// "always" attributes; excludedAttributes removes what it names except those;
// "never" attributes never appear.
func RFC7644_3_4_2_5_Attributes(t *testing.T, tg Target) {
	c := newClient(t, tg)
	p := seed(c)
	alice := "/Users/" + p.id["alice"]
	keys := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	for _, tt := range []struct {
		query string
		check func(t *testing.T, u map[string]any)
	}{
		{"attributes=userName,name.givenName", func(t *testing.T, u map[string]any) {
			if !sameSet(keys(u), []string{"id", "schemas", "meta", "userName", "name"}) {
				t.Errorf("keys = %v", keys(u))
			}
			if !sameSet(keys(obj(u, "name")), []string{"givenName"}) {
				t.Errorf("name = %v", u["name"])
			}
		}},
		{"attributes=emails.value", func(t *testing.T, u map[string]any) {
			list, _ := u["emails"].([]any)
			if len(list) != 2 {
				t.Fatalf("emails = %v", u["emails"])
			}
			for _, e := range list {
				if !sameSet(keys(e.(map[string]any)), []string{"value"}) {
					t.Errorf("email = %v", e)
				}
			}
		}},
		{"excludedAttributes=emails,name", func(t *testing.T, u map[string]any) {
			if u["emails"] != nil || u["name"] != nil || u["userName"] == nil || u["title"] == nil {
				t.Errorf("user = %v", u)
			}
		}},
		{"excludedAttributes=id,meta,schemas", func(t *testing.T, u map[string]any) {
			if u["id"] == nil || u["meta"] == nil || u["schemas"] == nil {
				t.Errorf("always attributes excluded: %v", keys(u))
			}
		}},
		{"attributes=" + q(ent+":department"), func(t *testing.T, u map[string]any) {
			if !sameSet(keys(obj(u, ent)), []string{"department"}) || u["userName"] != nil {
				t.Errorf("user = %v", u)
			}
		}},
		{"attributes=" + q(ent), func(t *testing.T, u map[string]any) {
			if obj(u, ent)["employeeNumber"] != "1001" || u["name"] != nil {
				t.Errorf("user = %v", u)
			}
		}},
		{"excludedAttributes=" + q(ent+":employeeNumber"), func(t *testing.T, u map[string]any) {
			if obj(u, ent)["employeeNumber"] != nil || obj(u, ent)["department"] != "Sales" {
				t.Errorf("enterprise = %v", u[ent])
			}
		}},
		{"attributes=USERNAME", func(t *testing.T, u map[string]any) {
			if u["userName"] == nil || u["name"] != nil {
				t.Errorf("user = %v", u)
			}
		}},
		{"attributes=password,userName", func(t *testing.T, u map[string]any) {
			if u["password"] != nil {
				t.Errorf("password returned: %v", u)
			}
		}},
		{"attributes=" + q(con+":passwordHash"), func(t *testing.T, u map[string]any) {
			if !tg.HashesVisible && obj(u, con)["passwordHash"] != nil {
				t.Errorf("passwordHash returned: %v", u)
			}
		}},
	} {
		t.Run(tt.query, func(t *testing.T) {
			c := c.on(t)
			r := c.do("GET", alice+"?"+tt.query, nil)
			c.want(r, http.StatusOK, "GET ?"+tt.query)
			tt.check(t, r.JSON())
			l := c.do("GET", "/Users?"+tt.query+"&filter="+q(`userName eq "`+c.prefix+`alice"`), nil)
			c.want(l, http.StatusOK, "list ?"+tt.query)
			rs := resources(l.JSON())
			if len(rs) != 1 {
				t.Fatalf("list = %s", l.Body)
			}
			tt.check(t, rs[0])
		})
	}
	t.Run("groups", func(t *testing.T) {
		c := c.on(t)
		g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "ag",
			"members": []any{map[string]any{"value": p.id["alice"]}}})
		path := "/Groups/" + g["id"].(string)
		if r := c.do("GET", path+"?attributes=displayName", nil); r.JSON()["members"] != nil || r.JSON()["displayName"] == nil {
			t.Errorf("attributes=displayName: %s", r.Body)
		}
		if r := c.do("GET", path+"?attributes=members", nil); !sameSet(memberIDs(r.JSON()), []string{p.id["alice"]}) || r.JSON()["displayName"] != nil {
			t.Errorf("attributes=members: %s", r.Body)
		}
		r := c.do("GET", "/Groups?excludedAttributes=members&filter="+q(`displayName eq "`+c.prefix+`ag"`), nil)
		if rs := resources(r.JSON()); len(rs) != 1 || rs[0]["members"] != nil {
			t.Errorf("list excluding members: %s", r.Body)
		}
	})
}

// RFC7644_3_4_3_Search: POST /.search takes the query in a SearchRequest body
// with the same semantics as GET.
func RFC7644_3_4_3_Search(t *testing.T, tg Target) {
	c := newClient(t, tg)
	p := seed(c)
	sr := func(extra map[string]any) map[string]any {
		m := map[string]any{"schemas": []string{scim.SchemaSearchRequest}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	r := c.do("POST", "/Users/.search", sr(map[string]any{
		"filter":     p.scope(`name.familyName eq "Smith" or name.familyName eq "Jones"`),
		"sortBy":     "name.givenName",
		"sortOrder":  "descending",
		"startIndex": 2,
		"count":      2,
		"attributes": []string{"userName", "name.givenName"},
	}))
	c.want(r, http.StatusOK, "POST /Users/.search")
	m := r.JSON()
	if got := p.namesOf(ids(m)); !reflect.DeepEqual(got, []string{"carol", "bob"}) {
		t.Errorf("search = %v (%s)", got, trim(r.Body))
	}
	if num(m["totalResults"]) != 4 || num(m["itemsPerPage"]) != 2 || num(m["startIndex"]) != 2 {
		t.Errorf("search paging = %v/%v/%v", m["totalResults"], m["itemsPerPage"], m["startIndex"])
	}
	for _, u := range resources(m) {
		if u["emails"] != nil || obj(u, "name")["familyName"] != nil {
			t.Errorf("projection ignored: %v", u)
		}
	}
	ex := c.do("POST", "/Users/.search", sr(map[string]any{"filter": p.scope(`userName eq "` + c.prefix + `bob"`), "excludedAttributes": []string{"emails"}}))
	c.want(ex, http.StatusOK, "search excludedAttributes")
	if rs := resources(ex.JSON()); len(rs) != 1 || rs[0]["emails"] != nil || rs[0]["userName"] == nil {
		t.Errorf("excludedAttributes search = %s", ex.Body)
	}
	g := c.create("/Groups", map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": c.prefix + "sg"})
	gr := c.do("POST", "/Groups/.search", sr(map[string]any{"filter": `displayName eq "` + c.prefix + `sg"`}))
	c.want(gr, http.StatusOK, "POST /Groups/.search")
	if !reflect.DeepEqual(ids(gr.JSON()), []string{g["id"].(string)}) {
		t.Errorf("group search = %s", gr.Body)
	}
	before := c.snapshot()
	c.wantError(c.do("POST", "/Users/.search", map[string]any{"filter": p.scope("")}), http.StatusBadRequest, "", "search without SearchRequest schema")
	c.wantError(c.do("POST", "/Users/.search", sr(map[string]any{"filter": "userName eq"})), http.StatusBadRequest, scim.ErrTypeInvalidFilter, "search with bad filter")
	c.unchanged(before, "bad searches")
	if tg.ReadOnlyToken != "" {
		ro := c.as(tg.ReadOnlyToken)
		c.want(ro.do("POST", "/Users/.search", sr(map[string]any{"filter": p.scope("")})), http.StatusOK, "search with a read-only token")
	}
}
