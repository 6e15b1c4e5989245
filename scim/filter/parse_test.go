package filter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

const (
	enterprise = scim.SchemaEnterpriseUser
	connectExt = scim.SchemaConnectUser
)

// render prints e in a canonical, fully parenthesised form.
func render(e Expr) string {
	switch e := e.(type) {
	case *And:
		return "(" + render(e.L) + " and " + render(e.R) + ")"
	case *Or:
		return "(" + render(e.L) + " or " + render(e.R) + ")"
	case *Not:
		return "not(" + render(e.X) + ")"
	case *ValuePath:
		return e.Path.String() + "[" + render(e.Filter) + "]"
	case *Compare:
		s := e.Path.String() + " " + e.Op
		switch v := e.Value.(type) {
		case nil:
			if e.Op != OpPr {
				s += " null"
			}
		case string:
			s += fmt.Sprintf(" %q", v)
		case time.Time:
			s += " time(" + v.Format(time.RFC3339Nano) + ")"
		default:
			s += fmt.Sprintf(" %T(%v)", v, v)
		}
		return s
	}
	return fmt.Sprintf("?%T", e)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, filter, want string
		rt                 *scim.ResourceType
	}{
		{"eq", `userName eq "bjensen"`, `userName eq "bjensen"`, nil},
		{"names and operators ignore case", `USERNAME Eq "x"`, `userName eq "x"`, nil},
		{"ne", `userName ne "x"`, `userName ne "x"`, nil},
		{"co", `name.familyName co "O'Malley"`, `name.familyName co "O'Malley"`, nil},
		{"sw", `userName sw "J"`, `userName sw "J"`, nil},
		{"ew", `userName ew "n"`, `userName ew "n"`, nil},
		{"pr", `title pr`, `title pr`, nil},
		{"gt dateTime", `meta.lastModified gt "2011-05-13T04:42:34Z"`, `meta.lastModified gt time(2011-05-13T04:42:34Z)`, nil},
		{"ge dateTime with fraction and offset", `meta.created ge "2011-05-13T04:42:34.5+02:00"`, `meta.created ge time(2011-05-13T04:42:34.5+02:00)`, nil},
		{"lt string", `userName lt "m"`, `userName lt "m"`, nil},
		{"le string", `userName le "m"`, `userName le "m"`, nil},
		{"boolean", `active eq true`, `active eq bool(true)`, nil},
		{"boolean ne", `active ne false`, `active ne bool(false)`, nil},
		{"null", `displayName eq null`, `displayName eq null`, nil},
		{"null on a multi-valued attribute", `emails ne null`, `emails ne null`, nil},
		{"string escapes", `userName eq "a \"q\" \\ \u00E9\/"`, `userName eq "a \"q\" \\ é/"`, nil},
		{"and binds tighter than or",
			`userName eq "a" or userName eq "b" and title pr`,
			`(userName eq "a" or (userName eq "b" and title pr))`, nil},
		{"parentheses",
			`(userName eq "a" or userName eq "b") and title pr`,
			`((userName eq "a" or userName eq "b") and title pr)`, nil},
		{"left-associative chain",
			`title pr or userName pr or nickName pr`,
			`((title pr or userName pr) or nickName pr)`, nil},
		{"not", `not (userName eq "a" or title pr)`, `not((userName eq "a" or title pr))`, nil},
		{"multi-valued complex compares value", `emails eq "x"`, `emails.value eq "x"`, nil},
		{"multi-valued complex pr", `emails pr`, `emails pr`, nil},
		{"complex pr", `name pr`, `name pr`, nil},
		{"dotted multi-valued", `emails.type eq "work"`, `emails.type eq "work"`, nil},
		{"value path",
			`emails[type eq "work" and value co "@example.com"]`,
			`emails[(emails.type eq "work" and emails.value co "@example.com")]`, nil},
		{"value path or and not",
			`emails[not (type eq "work" or primary eq true)]`,
			`emails[not((emails.type eq "work" or emails.primary eq bool(true)))]`, nil},
		{"value path in a larger filter",
			`userType eq "Employee" and emails[type eq "work"] or not (title pr)`,
			`((userType eq "Employee" and emails[emails.type eq "work"]) or not(title pr))`, nil},
		{"extension attribute mixed with core",
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1" and userName eq "x"`,
			`(` + enterprise + `:employeeNumber eq "1" and userName eq "x")`, nil},
		{"extension URN ignores case",
			`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EMPLOYEENUMBER eq "1"`,
			enterprise + `:employeeNumber eq "1"`, nil},
		{"extension sub-attribute", enterprise + `:manager.value eq "m"`, enterprise + `:manager.value eq "m"`, nil},
		{"extension attribute without URN", `employeeNumber eq "1"`, enterprise + `:employeeNumber eq "1"`, nil},
		{"core URN", scim.SchemaUser + `:userName eq "x"`, `userName eq "x"`, nil},
		{"common attribute under core URN", scim.SchemaUser + `:id eq "x"`, `id eq "x"`, nil},
		{"multi-valued string", connectExt + `:interests eq "math"`, connectExt + `:interests eq "math"`, nil},
		{"surrounding spaces", `  userName pr `, `userName pr`, nil},
		{"group members", `members[value eq "x"] and displayName sw "Eng"`,
			`(members[members.value eq "x"] and displayName sw "Eng")`, scim.GroupResourceType},
		{"group extension", scim.SchemaConnectGroup + `:kind eq "course"`, scim.SchemaConnectGroup + `:kind eq "course"`, scim.GroupResourceType},
		{"$ref", `groups[$ref pr]`, `groups[groups.$ref pr]`, nil},
		// The upstream parser takes at most two terms and no parentheses
		// between brackets; see cutValueFilters.
		{"value path with three terms",
			`members[value eq "a" or value eq "b" or value eq "c"]`,
			`members[((members.value eq "a" or members.value eq "b") or members.value eq "c")]`, scim.GroupResourceType},
		{"value path with parentheses",
			`emails[type eq "work" and (value co "@x" or primary eq true)]`,
			`emails[(emails.type eq "work" and (emails.value co "@x" or emails.primary eq bool(true)))]`, nil},
		{"value path mixing and, or, not",
			`emails[(type eq "a" or type eq "b") and not (value ew ".x" and display pr) or primary eq false]`,
			`emails[(((emails.type eq "a" or emails.type eq "b") and not((emails.value ew ".x" and emails.display pr))) or emails.primary eq bool(false))]`, nil},
		{"value path with spaces inside brackets",
			`emails [ type eq "work" ]`, `emails[emails.type eq "work"]`, nil},
		{"brackets inside strings of a value path",
			`emails[value eq "a]b" or value eq "[" or value eq "\"]"]`,
			`emails[((emails.value eq "a]b" or emails.value eq "[") or emails.value eq "\"]")]`, nil},
		{"two value paths",
			`emails[type eq "w" or type eq "x" or type eq "y"] and addresses[type eq "work" and (country eq "NZ" or country eq "AU")]`,
			`(emails[((emails.type eq "w" or emails.type eq "x") or emails.type eq "y")] and addresses[(addresses.type eq "work" and (addresses.country eq "NZ" or addresses.country eq "AU"))])`, nil},
		{"value path under not",
			`not (emails[type eq "a" or type eq "b" or type eq "c"])`,
			`not(emails[((emails.type eq "a" or emails.type eq "b") or emails.type eq "c")])`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := tt.rt
			if rt == nil {
				rt = scim.UserResourceType
			}
			e, err := Parse(rt, tt.filter, Limits{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.filter, err)
			}
			if got := render(e); got != tt.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tt.filter, got, tt.want)
			}
		})
	}
}

func TestParseValueTypes(t *testing.T) {
	e, err := Parse(scim.UserResourceType, `meta.lastModified gt "2011-05-13T04:42:34Z"`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2011, 5, 13, 4, 42, 34, 0, time.UTC)
	if got := e.(*Compare).Value.(time.Time); !got.Equal(want) {
		t.Errorf("value = %v, want %v", got, want)
	}
	e, err = Parse(scim.UserResourceType, `title pr`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v := e.(*Compare).Value; v != nil {
		t.Errorf("pr value = %v, want nil", v)
	}
	vp, err := Parse(scim.UserResourceType, `emails[type eq "work"]`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	inner := vp.(*ValuePath).Filter.(*Compare)
	if inner.Path.Attr.Name != "emails" || inner.Path.Sub == nil || inner.Path.Sub.Name != "type" || inner.Path.Schema != scim.UserSchema {
		t.Errorf("inner path = %+v, want emails.type in the core schema", inner.Path)
	}
}

// wantSCIMError checks that err is a 400 *scim.Error of scimType kind whose
// detail contains detail.
func wantSCIMError(t testing.TB, err error, kind, detail string) {
	t.Helper()
	var se *scim.Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want *scim.Error", err, err)
	}
	if se.Status != 400 || se.ScimType != kind || !strings.Contains(se.Detail, detail) {
		t.Errorf("error = %d %s %q, want 400 %s containing %q", se.Status, se.ScimType, se.Detail, kind, detail)
	}
	if strings.Contains(se.Detail, "internal") || strings.Contains(se.Detail, "Expected") {
		t.Errorf("detail %q leaks parser internals", se.Detail)
	}
}

func TestParseRejects(t *testing.T) {
	terms := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`userName eq "u%d"`, i)
		}
		return strings.Join(parts, " or ")
	}
	nested := func(n int) string {
		return strings.Repeat("not (", n) + `title pr` + strings.Repeat(")", n)
	}
	tests := []struct {
		name, filter, detail string
		lim                  Limits
	}{
		{"missing value", `userName eq`, "invalid filter syntax", Limits{}},
		{"unterminated string", `userName eq "x`, "invalid filter syntax", Limits{}},
		{"unknown operator", `userName zz "x"`, "invalid filter syntax", Limits{}},
		{"trailing garbage", `userName eq "x" )`, "invalid filter syntax", Limits{}},
		{"value path with sub-attribute", `emails[type eq "work"].value eq "x"`, "invalid filter syntax", Limits{}},
		{"empty value filter", `emails[]`, "invalid filter syntax", Limits{}},
		{"blank value filter", `emails[  ]`, "invalid filter syntax", Limits{}},
		{"unclosed bracket", `emails[type eq "work"`, "invalid filter syntax", Limits{}},
		{"unopened bracket", `emails type eq "work"]`, "invalid filter syntax", Limits{}},
		{"bracket without attribute", `[type eq "work"]`, "invalid filter syntax", Limits{}},
		{"two brackets", `emails[type eq "a"][type eq "b"]`, "invalid filter syntax", Limits{}},
		{"bracket after a comparison", `userName eq "x"[type eq "a"]`, "invalid filter syntax", Limits{}},
		{"nested value path", `emails[type[value eq "x"] or primary pr]`, "value filters cannot be nested", Limits{}},
		{"placeholder lookalike inside", `emails[i eq 0]`, `unknown attribute "i" in emails[...]`, Limits{}},
		{"dotted path in a long value filter", `emails[type eq "a" or type eq "b" or emails.type eq "c"]`, `unknown attribute "emails.type"`, Limits{}},
		{"bad syntax deep in a value filter", `emails[type eq "a" or (type eq "b" and value zz "c")]`, "invalid filter syntax", Limits{}},
		{"unclosed parenthesis in a value filter", `emails[type eq "a" or (type eq "b"]`, "invalid filter syntax", Limits{}},
		{"unclosed string in a value filter", `emails[type eq "a]`, "invalid filter syntax", Limits{}},
		{"password in a value filter", `emails[type eq "a" or value pr] or password pr`, "password cannot be filtered", Limits{}},
		{"terms in value filters count", `emails[type eq "a" or type eq "b"] or title pr`, "more than 2 comparisons", Limits{MaxTerms: 2}},
		{"depth inside a value filter", `emails[type eq "a" or (type eq "b" and (value pr or (display pr and primary pr)))]`, "nested deeper than 3 levels", Limits{MaxDepth: 3}},
		{"empty", ``, "filter is empty", Limits{}},
		{"blank", `   `, "filter is empty", Limits{}},
		{"invalid UTF-8", "userName eq \"\xff\"", "not valid UTF-8", Limits{}},
		{"unknown attribute", `foo eq "x"`, `unknown attribute "foo"`, Limits{}},
		{"unknown sub-attribute", `name.foo eq "x"`, `unknown attribute "name.foo"`, Limits{}},
		{"unknown schema", `urn:x:y:userName eq "x"`, `unknown attribute "urn:x:y:userName"`, Limits{}},
		{"attribute of another schema", scim.SchemaGroup + `:userName eq "x"`, "unknown attribute", Limits{}},
		{"unknown attribute in value path", `emails[foo eq "x"]`, `unknown attribute "foo" in emails[...]`, Limits{}},
		{"dotted path in value path", `emails[emails.type eq "x"]`, `unknown attribute "emails.type"`, Limits{}},
		{"long unknown name is clipped", strings.Repeat("a", 200) + ` pr`, "…", Limits{}},
		{"password", `password eq "x"`, "password cannot be filtered", Limits{}},
		{"password pr", `password pr`, "password cannot be filtered", Limits{}},
		{"password inside or", `userName pr or password sw "a"`, "password cannot be filtered", Limits{}},
		{"single-valued complex", `name eq "x"`, "name is complex", Limits{}},
		{"multi-valued complex without value", `addresses eq "x"`, "addresses is complex", Limits{}},
		{"gt on boolean", `active gt true`, "gt cannot be used on boolean attribute active", Limits{}},
		{"le on boolean", `emails[primary le false]`, "le cannot be used on boolean attribute emails.primary", Limits{}},
		{"co on boolean", `active co "t"`, "co cannot be used on boolean", Limits{}},
		{"string for boolean", `active eq "true"`, "active needs true or false", Limits{}},
		{"number for string", `userName eq 1`, "userName needs a string", Limits{}},
		{"boolean for string", `userName eq true`, "userName needs a string", Limits{}},
		{"bad dateTime", `meta.lastModified gt "yesterday"`, "needs an RFC 3339 dateTime", Limits{}},
		{"date without time", `meta.lastModified gt "2011-05-13"`, "needs an RFC 3339 dateTime", Limits{}},
		{"number for dateTime", `meta.lastModified gt 5`, "needs an RFC 3339 dateTime", Limits{}},
		{"co on dateTime", `meta.created co "2011"`, "co cannot be used on dateTime", Limits{}},
		{"null with gt", `userName gt null`, "null can only be compared with eq or ne", Limits{}},
		{"value filter on a simple attribute", `userName[value eq "x"]`, "userName cannot take a value filter", Limits{}},
		{"value filter on a sub-attribute", `name.givenName[value eq "x"]`, "cannot take a value filter", Limits{}},
		{"too long", strings.Repeat("x", 4097), "longer than 4096 bytes", Limits{}},
		{"10000 clauses", terms(10000), "longer than 4096 bytes", Limits{}},
		{"custom length", `userName eq "x"`, "longer than 10 bytes", Limits{MaxLength: 10}},
		{"too many terms", terms(65), "more than 64 comparisons", Limits{MaxLength: 1 << 20}},
		{"custom terms", terms(3), "more than 2 comparisons", Limits{MaxTerms: 2}},
		{"too deep", nested(17), "nested deeper than 16 levels", Limits{}},
		{"deep parentheses", strings.Repeat("(", 20) + "title pr" + strings.Repeat(")", 20), "nested deeper", Limits{}},
		{"alternation without parentheses", `title pr or title pr and title pr`, "nested deeper than 1 levels", Limits{MaxDepth: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(scim.UserResourceType, tt.filter, tt.lim)
			if err == nil {
				t.Fatalf("Parse(%.60q) = %s, want error", tt.filter, render(e))
			}
			wantSCIMError(t, err, scim.ErrTypeInvalidFilter, tt.detail)
		})
	}
}

func TestParseLimitsAccepted(t *testing.T) {
	parts := make([]string, 64)
	for i := range parts {
		parts[i] = fmt.Sprintf(`title eq "%d"`, i)
	}
	if _, err := Parse(scim.UserResourceType, strings.Join(parts, " or "), Limits{MaxLength: 1 << 20}); err != nil {
		t.Errorf("64 terms: %v", err)
	}
	deep := strings.Repeat("not (", 16) + `title pr` + strings.Repeat(")", 16)
	if _, err := Parse(scim.UserResourceType, deep, Limits{}); err != nil {
		t.Errorf("16 levels: %v", err)
	}
	// Brackets and parentheses inside strings are not nesting.
	if _, err := Parse(scim.UserResourceType, `title eq "`+strings.Repeat("([", 40)+`\""`, Limits{}); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
}

func TestParseLongFilterIsCheap(t *testing.T) {
	parts := make([]string, 10000)
	for i := range parts {
		parts[i] = fmt.Sprintf(`userName eq "u%d"`, i)
	}
	text := strings.Join(parts, " or ")
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := Parse(scim.UserResourceType, text, Limits{}); err == nil {
			t.Fatal("accepted")
		}
	})
	// Rejected by length before the parser sees it: only the error is allocated.
	if allocs > 10 {
		t.Errorf("rejecting a 10,000-clause filter allocated %v times, want it rejected before parsing", allocs)
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path, attr, filter, sub string
		rt                      *scim.ResourceType
	}{
		{`members[value eq "x"]`, "members", `members.value eq "x"`, "", scim.GroupResourceType},
		{`members`, "members", "", "", scim.GroupResourceType},
		{`emails[type eq "work"].value`, "emails", `emails.type eq "work"`, "value", nil},
		{`EMAILS[TYPE eq "work"].Display`, "emails", `emails.type eq "work"`, "display", nil},
		{`emails[type eq "work" and primary eq true]`, "emails", `(emails.type eq "work" and emails.primary eq bool(true))`, "", nil},
		{`members[value eq "a" or value eq "b" or value eq "c"]`, "members", `((members.value eq "a" or members.value eq "b") or members.value eq "c")`, "", scim.GroupResourceType},
		{`emails[type eq "work" and (value co "@x" or primary eq true)].display`, "emails", `(emails.type eq "work" and (emails.value co "@x" or emails.primary eq bool(true)))`, "display", nil},
		{`emails[value eq "]" or value eq "[" or value eq "x"].value`, "emails", `((emails.value eq "]" or emails.value eq "[") or emails.value eq "x")`, "value", nil},
		{`name.familyName`, "name", "", "familyName", nil},
		{`userName`, "userName", "", "", nil},
		{`password`, "password", "", "", nil},
		{enterprise + `:manager.value`, enterprise + ":manager", "", "value", nil},
		{enterprise + `:employeeNumber`, enterprise + ":employeeNumber", "", "", nil},
		{strings.ToLower(enterprise) + `:EMPLOYEENUMBER`, enterprise + ":employeeNumber", "", "", nil},
		{scim.SchemaUser + `:name.givenName`, "name", "", "givenName", nil},
		{connectExt + `:customFields[name eq "shoe size"].value`, connectExt + ":customFields", `` + connectExt + `:customFields.name eq "shoe size"`, "value", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rt := tt.rt
			if rt == nil {
				rt = scim.UserResourceType
			}
			p, err := ParsePath(rt, tt.path, Limits{})
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.path, err)
			}
			if p.Attr.Sub != nil {
				t.Errorf("Attr.Sub = %s, want nil", p.Attr.Sub.Name)
			}
			if got := p.Attr.String(); got != tt.attr {
				t.Errorf("Attr = %s, want %s", got, tt.attr)
			}
			filter := ""
			if p.Filter != nil {
				filter = render(p.Filter)
			}
			if filter != tt.filter {
				t.Errorf("Filter = %s, want %s", filter, tt.filter)
			}
			sub := ""
			if p.Sub != nil {
				sub = p.Sub.Name
			}
			if sub != tt.sub {
				t.Errorf("Sub = %q, want %q", sub, tt.sub)
			}
		})
	}
}

func TestParsePathRejects(t *testing.T) {
	tests := []struct{ name, path, detail string }{
		{"unknown", `foo`, `unknown attribute "foo"`},
		{"unknown sub", `name.foo`, `unknown attribute "name.foo"`},
		{"sub of a simple attribute", `userName.x`, `unknown attribute "userName.x"`},
		{"unknown sub after filter", `emails[type eq "work"].foo`, `unknown attribute "emails.foo"`},
		{"filter on simple attribute", `userName[value eq "x"]`, "userName cannot take a value filter"},
		{"bad filter", `emails[type zz "work"]`, "invalid path syntax"},
		{"unknown attribute in filter", `emails[foo eq "x"]`, `unknown attribute "foo" in emails[...]`},
		{"wrong type in filter", `emails[primary eq "yes"]`, "emails.primary needs true or false"},
		{"unclosed", `emails[type eq "work"`, "invalid path syntax"},
		{"empty filter", `emails[].value`, "invalid path syntax"},
		{"two filters", `emails[type eq "a"][type eq "b"]`, "invalid path syntax"},
		{"nested filter", `emails[type[value eq "x"]]`, "value filters cannot be nested"},
		{"bad syntax in a long filter", `emails[value eq "a" or value eq "b" or value zz "c"]`, "invalid path syntax"},
		{"two sub-attributes", `name.givenName.x`, "invalid path syntax"},
		{"empty", ``, "path is empty"},
		{"too long", strings.Repeat("a", 5000), "path is longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePath(scim.UserResourceType, tt.path, Limits{})
			if err == nil {
				t.Fatalf("ParsePath(%q) = %+v, want error", tt.path, p)
			}
			wantSCIMError(t, err, scim.ErrTypeInvalidPath, tt.detail)
		})
	}
}

func TestParseSafelyContainsParserPanics(t *testing.T) {
	_, ok := parseSafely(func([]byte) (int, error) { panic("boom") }, "x")
	if ok {
		t.Error("a panicking parser reported success")
	}
	v, ok := parseSafely(func(b []byte) (int, error) { return len(b), nil }, "abc")
	if !ok || v != 3 {
		t.Errorf("parseSafely = %d, %v; want 3, true", v, ok)
	}
}
