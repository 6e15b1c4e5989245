package conformance

import (
	"database/sql"
	"net/url"
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
		{"postgres", postgresSchema},
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

// postgresSchema creates a fresh schema (dropped at cleanup) and returns a DSN
// selecting it.
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	name := testenv.Name(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE SCHEMA ` + name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP SCHEMA ` + name + ` CASCADE`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}
