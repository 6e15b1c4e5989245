package conformance

import (
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim/server/rfctest"
)

// TestRFCSuiteAgainstHubProcess runs the project's RFC-organised SCIM suite
// (scim/server/rfctest: RFC 7644 §3.3 create through §3.14 versioning, and
// RFC 9865 cursors) over HTTP against a real `connect hub serve` process, on
// each store backend.
func TestRFCSuiteAgainstHubProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hub binary")
	}
	for _, backend := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "hub.db") }},
		{"postgres", func(t *testing.T) string { return testenv.PostgresSchema(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			h := startHub(t, backend.dsn(t))
			rfctest.Run(t, rfctest.Target{
				BaseURL:       h.SCIM,
				Token:         h.Admin,
				ReadOnlyToken: h.Token(t, "reader", "--read-only"),
			})
		})
	}
}
