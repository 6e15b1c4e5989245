package postgres_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/postgres"
	"github.com/connectsso/connect/scim/store/storetest"
)

// schemaDSN creates a fresh schema, dropped at cleanup, and returns a DSN whose
// search_path selects it.
func schemaDSN(t *testing.T) string {
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
	t.Cleanup(func() {
		if _, err := db.Exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), schemaDSN(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
