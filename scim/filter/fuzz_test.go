package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
)

var fuzzSeeds = []string{
	`userName eq "bjensen"`,
	`name.familyName co "O'Malley"`,
	`userName sw "J"`,
	`title pr`,
	`meta.lastModified gt "2011-05-13T04:42:34Z"`,
	`meta.lastModified ge "2011-05-13T04:42:34.5+02:00"`,
	`active eq true and active ne false`,
	`userName eq "a" or userName eq "b" and not (title pr)`,
	`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
	`emails[not (primary eq true)]`,
	`emails eq null`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1" and userName eq "x"`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`,
	`urn:ietf:params:scim:schemas:extension:connect:2.0:User:interests eq "math"`,
	`title co "50%_\\" and userName eq "x' OR '1'='1"`,
	`userName eq "\u00E9\"\/"`,
	`members[value eq "x"].display`,
	`emails[type eq "work"].value`,
	`password eq "x"`,
	`name eq 1.5e3`,
	`((((title pr))))`,
	`not(not(not(title pr)))`,
	"userName eq \"\xff\"",
	`userName eq "�"`,
	`id eq -0`,
	`members[value eq "a" or value eq "b" or value eq "c"]`,
	`emails[type eq "work" and (value co "@x" or primary eq true)]`,
	`emails[not (type eq "a" or type eq "b") and (value pr)].display`,
	`emails[value eq "]" or value eq "["] and addresses[type eq "x" or type eq "y" or country pr]`,
	`emails[type[value eq "x"]]`,
	`emails[i eq 0]`,
}

// FuzzParse checks that any text either fails with a client error or parses into
// an expression that compiles into SQL that SQLite accepts.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	db := openSQLite(f)
	m := newTestMapping("user_values")
	f.Fuzz(func(t *testing.T, text string) {
		if _, err := ParsePath(scim.UserResourceType, text, Limits{}); err != nil {
			wantClientError(t, err, scim.ErrTypeInvalidPath)
		}
		e, err := Parse(scim.UserResourceType, text, Limits{})
		if err != nil {
			wantClientError(t, err, scim.ErrTypeInvalidFilter)
			return
		}
		if e == nil {
			t.Fatal("nil expression without error")
		}
		where, args, err := SQL(e, m, testDialect, 1)
		if err != nil {
			wantClientError(t, err, scim.ErrTypeInvalidFilter)
			return
		}
		if n := strings.Count(where, "?"); n != len(args) {
			t.Fatalf("%q: %d placeholders for %d args in %s", text, n, len(args), where)
		}
		rows, err := db.db.Query("SELECT u.pk FROM users u WHERE "+where, args...)
		if err != nil {
			t.Fatalf("%q compiles to SQL SQLite rejects: %s: %v", text, where, err)
		}
		rows.Close()
	})
}

func wantClientError(t *testing.T, err error, kind string) {
	t.Helper()
	var se *scim.Error
	if !errors.As(err, &se) || se.Status != 400 || se.ScimType != kind || se.Detail == "" {
		t.Fatalf("error %v (%T), want a 400 %s *scim.Error", err, err, kind)
	}
}

func BenchmarkParseAndCompile(b *testing.B) {
	m := newTestMapping("user_values")
	for b.Loop() {
		e, err := Parse(scim.UserResourceType, `userName eq "bjensen"`, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := SQL(e, m, testDialect, 1); err != nil {
			b.Fatal(err)
		}
	}
}
