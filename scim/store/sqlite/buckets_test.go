package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/scim/store/internal/sqlstoretest"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// TestBucketCounts checks the per-block counts of migration 5, kept by
// triggers (sqlstoretest.BucketCounts).
func TestBucketCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	sqlstoretest.BucketCounts(t, sqlstoretest.Buckets{
		Open: func(ctx context.Context) (sqlstoretest.Store, error) {
			return sqlite.Open(ctx, "sqlite:"+path, sqlite.Options{})
		},
		DB:          func() (*sql.DB, error) { return sql.Open("sqlite", path) },
		DeleteEvery: 7,
		Downgrade: []string{
			`DROP TRIGGER user_buckets_insert`, `DROP TRIGGER user_buckets_delete`, `DROP TABLE user_buckets`,
			`DROP TRIGGER group_buckets_insert`, `DROP TRIGGER group_buckets_delete`, `DROP TABLE group_buckets`,
			`DELETE FROM schema_migrations WHERE version = 5`,
		},
	})
}
