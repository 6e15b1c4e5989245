package hub

import (
	"context"
	"strings"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// countingStore records CreateUsers calls; every other method is unused here.
type countingStore struct {
	store.Store
	created []scim.User
}

func (c *countingStore) CreateUsers(_ context.Context, us []scim.User) ([]scim.User, []error) {
	c.created = append(c.created, us...)
	return us, make([]error, len(us))
}

func (c *countingStore) Audit(context.Context, store.AuditEntry) error { return nil }

// FuzzImportUsers feeds arbitrary CSV to the importer: it must not panic, every row
// is either imported or reported, and an imported user always has a userName and
// never a clear password.
func FuzzImportUsers(f *testing.F) {
	f.Add("userName,email,active\nann,ann@example.org,true\n,x,maybe\n")
	f.Add("\ufeffuserName,\"emails[type eq \"\"work\"\"].value\"\nb,b@x\n")
	f.Add("userName,password\nz,\"pw with \"\"quotes\"\"\"\n")
	f.Add("userName\n\"unterminated\n")
	f.Fuzz(func(t *testing.T, in string) {
		st := &countingStore{}
		res, err := ImportUsers(context.Background(), st, strings.NewReader(in), ImportOptions{
			BatchSize:    3,
			HashPassword: func(string) (string, error) { return "$argon2id$fuzz", nil },
		})
		if err != nil {
			return
		}
		if res.Imported != len(st.created) {
			t.Fatalf("Imported = %d, store got %d", res.Imported, len(st.created))
		}
		if len(res.Errors) != res.Failed {
			t.Fatalf("Failed = %d, errors %d", res.Failed, len(res.Errors))
		}
		for _, u := range st.created {
			if u.UserName == "" || u.UserName != strings.TrimSpace(u.UserName) || u.Password != "" {
				t.Fatalf("bad stored user %+v", u)
			}
		}
	})
}
