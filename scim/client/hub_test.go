package client_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv/hubproc"
	"github.com/connectsso/connect/scim"
)

// The hub these tests talk to is the real `connect hub serve` process, built once
// per test binary.
func TestMain(m *testing.M) { hubproc.Main(m) }

// hub is a running hub process.
type hub struct {
	*hubproc.Hub
	base  string // http://host:port
	token string // admin (read-write) token
}

// startHub runs `connect hub serve` on a fresh SQLite store.
func startHub(tb testing.TB) hub {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a hub process")
	}
	h := hubproc.StartHub(tb, hubproc.HubOptions{AdminName: "test", LogLevel: "warn"})
	return hub{Hub: h, base: h.Base, token: h.Admin}
}

var plain = &http.Client{Timeout: 30 * time.Second}

// do sends a SCIM request with the admin token and decodes the answer into out.
func (h hub) do(method, path string, body, out any, want int) error {
	return h.Do(method, path, body, out, want)
}

func (h hub) call(tb testing.TB, method, path string, body, out any, want int) {
	tb.Helper()
	h.Call(tb, method, path, body, out, want)
}

func newUser(userName string) scim.User {
	return scim.User{Schemas: []string{scim.SchemaUser}, UserName: userName,
		Name:   &scim.Name{GivenName: "G " + userName, FamilyName: "F"},
		Emails: []scim.MultiValue{{Value: userName + "@example.org", Primary: true}}}
}

func (h hub) createUser(tb testing.TB, userName string) scim.User {
	tb.Helper()
	var out scim.User
	h.call(tb, http.MethodPost, "/Users", newUser(userName), &out, http.StatusCreated)
	return out
}

// createUsers creates n users named prefix0000… in parallel and returns them
// in name order.
func (h hub) createUsers(tb testing.TB, prefix string, n int) []scim.User {
	tb.Helper()
	out := make([]scim.User, n)
	hubproc.Parallel(tb, n, func(i int) error {
		return h.do(http.MethodPost, "/Users", newUser(fmt.Sprintf("%s%04d", prefix, i)), &out[i], http.StatusCreated)
	})
	return out
}
