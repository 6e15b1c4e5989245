package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim/store/internal/sqlstoretest"
	"github.com/connectsso/connect/scim/store/postgres"
)

// TestBucketCounts checks the per-block counts of migration 5, kept by
// deferred triggers (sqlstoretest.BucketCounts).
func TestBucketCounts(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	sqlstoretest.BucketCounts(t, sqlstoretest.Buckets{
		Open: func(ctx context.Context) (sqlstoretest.Store, error) {
			return postgres.Open(ctx, dsn, postgres.Options{})
		},
		DB:          func() (*sql.DB, error) { return sql.Open("pgx", dsn) },
		DeleteEvery: 97,
		Downgrade: []string{
			`DROP TABLE user_buckets`, `DROP TABLE group_buckets`,
			`DROP FUNCTION connect_user_buckets CASCADE`, `DROP FUNCTION connect_group_buckets CASCADE`,
			`DELETE FROM schema_migrations WHERE version = 5`,
		},
	})
}
