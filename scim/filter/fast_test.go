package filter

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
	parser "github.com/scim2/filter-parser/v2"
)

// sameAsFullParser fails t when the fast path accepts text but the full parser
// does not build the identical AST for it, or when Parse and ParsePath answer
// differently with the fast path on and off. It reports whether the fast path
// took the filter.
func sameAsFullParser(t *testing.T, rt *scim.ResourceType, text string) (fast bool) {
	t.Helper()
	src := strings.Trim(text, " ")
	if got, ok := fastFilter(src); ok {
		fast = true
		want, err := parser.ParseFilterNumber([]byte(src))
		if err != nil {
			t.Fatalf("fast path accepts %q, the full parser does not: %v", src, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast path AST %s, full parser %s", src, got, want)
		}
	}
	if got, ok := fastAttrPath(src); ok {
		want, err := parser.ParsePathNumber([]byte(src))
		if err != nil {
			t.Fatalf("fast path accepts path %q, the full parser does not: %v", src, err)
		}
		if want.ValueExpression != nil || want.SubAttribute != nil || !reflect.DeepEqual(got, want.AttributePath) {
			t.Fatalf("path %q: fast path %+v, full parser %+v", src, got, want)
		}
	}
	lim := Limits{MaxLength: 1 << 16}
	e1, err1 := parse(rt, text, lim, true)
	e2, err2 := parse(rt, text, lim, false)
	if fmt.Sprint(err1) != fmt.Sprint(err2) || !reflect.DeepEqual(e1, e2) {
		t.Fatalf("Parse(%q): fast path gives %s, %v; full parser %s, %v", text, renderOrNil(e1), err1, renderOrNil(e2), err2)
	}
	p1, err1 := parsePath(rt, text, lim, true)
	p2, err2 := parsePath(rt, text, lim, false)
	if fmt.Sprint(err1) != fmt.Sprint(err2) || !reflect.DeepEqual(p1, p2) {
		t.Fatalf("ParsePath(%q): fast path gives %+v, %v; full parser %+v, %v", text, p1, err1, p2, err2)
	}
	return fast
}

func renderOrNil(e Expr) string {
	if e == nil {
		return "<nil>"
	}
	return render(e)
}

// fastSeeds are the shapes the fast path is for, and near misses it must leave
// to the full parser.
var fastSeeds = []string{
	`userName eq "bjensen"`,
	`USERNAME EQ "BJensen"`,
	`externalId eq "00u1" and active eq true`,
	`userName eq "a" or userName eq "b" and title pr or nickName sw "x"`,
	`title pr`,
	`title PR`,
	`emails pr`,
	`emails eq "x@example.com"`,
	`name.familyName co "O'Malley"`,
	`meta.lastModified gt "2011-05-13T04:42:34Z"`,
	`meta.created ge "2011-05-13T04:42:34.5+02:00" and meta.lastModified lt "2030-01-01T00:00:00Z"`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`,
	`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`,
	`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"`,
	`active eq FALSE`,
	`active ne True`,
	`displayName eq null`,
	`displayName ne NULL`,
	`id eq -0`,
	`id eq 0`,
	`id eq 123`,
	`id eq -123`,
	`userName eq ""`,
	`userName eq "é ü 漢字 \u00e9 �"`,
	`userName eq "a	b"`,
	`userName eq "x' OR '1'='1"`,
	`title co "50%_"`,
	`groups.$ref pr`,
	`x-y_z eq "1"`,
	`userName  eq   "x"   and   title pr`,
	`  userName eq "x"  `,
	// Near misses: the full parser decides.
	`userName eq "a\"b"`,
	`userName eq "\u00E9"`,
	`userName eq "\u00e9"`,
	`id eq 1.5`,
	`id eq 1e3`,
	`id eq 1E+3`,
	`id eq 01`,
	`id eq -`,
	`id eq --1`,
	`title prx`,
	`title pr and`,
	`title pr andtitle pr`,
	`title pr and  `,
	`active eq truex`,
	`active eq tru`,
	`userName eq "x"and title pr`,
	`userName eq"x"`,
	`userName eq "x`,
	`userName eq "x" "y"`,
	`userName xx "x"`,
	`userName e "x"`,
	`(userName eq "x")`,
	`not (title pr)`,
	`emails[type eq "work"]`,
	`emails[type eq "work"].value`,
	`name.givenName.x pr`,
	`.name pr`,
	`name. pr`,
	`1name pr`,
	`$$ref pr`,
	`urn::x pr`,
	`:x pr`,
	`urn:x: pr`,
	`urn:x_y:name pr`,
	`urn:x:y:name.a.b pr`,
	`urn:ietf:params:scim:schemas:core:2.0:User:`,
	`urn:ietf:params:scim:schemas:core:2.0:User`,
	`a:b.c:d.e pr`,
	`name`,
	`name.givenName`,
	`members`,
	`$ref`,
	`password`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`,
	"userName eq \"\xff\"",
	"userName eq \"\x01\"",
	"userName eq \"\x7f\"",
	"userName\teq \"x\"",
}

func TestFastPathMatchesFullParser(t *testing.T) {
	var inputs []string
	inputs = append(inputs, fastSeeds...)
	inputs = append(inputs, fuzzSeeds...)
	for _, rt := range []*scim.ResourceType{scim.UserResourceType, scim.GroupResourceType} {
		for _, text := range inputs {
			sameAsFullParser(t, rt, text)
		}
	}
}

// TestFastPathTakes pins which shapes take the fast path, so that a change
// that quietly sends the common filters back to the slow parser fails.
func TestFastPathTakes(t *testing.T) {
	tests := []struct {
		filter string
		fast   bool
	}{
		{`userName eq "bjensen"`, true},
		{`externalId eq "00u1" and active eq true`, true},
		{`userName eq "a" or userName eq "b" and title pr`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, true},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, true},
		{`id eq -12`, true},
		{`displayName eq null`, true},
		{`userName eq "漢字"`, true},
		{`userName eq "a\"b"`, false},
		{`id eq 1.5`, false},
		{`(title pr)`, false},
		{`not (title pr)`, false},
		{`emails[type eq "work"]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			if got := sameAsFullParser(t, scim.UserResourceType, tt.filter); got != tt.fast {
				t.Errorf("fast path took %q: %v, want %v", tt.filter, got, tt.fast)
			}
		})
	}
}

// FuzzFastPath checks on any text that the fast path never disagrees with the
// full parser: whatever it accepts, the full parser accepts with the identical
// AST, and Parse and ParsePath answer the same with it on and off.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add(s)
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 512 {
			return // the full parser is slow on long text; length is not what differs
		}
		sameAsFullParser(t, scim.UserResourceType, text)
	})
}

// BenchmarkParse compares the full parser ("full", the wrapped PEG parser
// alone, as before the fast path) with Parse ("fast") on the filters clients
// send most, and on filters that fall back.
func BenchmarkParse(b *testing.B) {
	filters := []struct{ name, text string }{
		{"userName", `userName eq "bjensen"`},
		{"externalId-and-active", `externalId eq "00u1abcd" and active eq true`},
		{"enterprise", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`},
		{"lastModified", `meta.lastModified gt "2011-05-13T04:42:34Z"`},
		{"value-path", `emails[type eq "work" and value co "@example.com"]`},
	}
	for _, f := range filters {
		for _, mode := range []struct {
			name string
			fast bool
		}{{"full", false}, {"fast", true}} {
			b.Run(mode.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := parse(scim.UserResourceType, f.text, Limits{}, mode.fast); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
