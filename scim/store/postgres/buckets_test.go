package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store/postgres"
)

// bucketsMatch fails t unless the per-block counts of table (migration 5)
// are what the rows themselves say.
func bucketsMatch(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	buckets := map[string]string{"users": "user_buckets", "groups": "group_buckets"}[table]
	read := func(q string) [][2]int64 {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][2]int64
		for rows.Next() {
			var r [2]int64
			if err := rows.Scan(&r[0], &r[1]); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	kept := read(`SELECT bucket, n FROM ` + buckets + ` ORDER BY bucket`)
	real := read(`SELECT pk >> 12, COUNT(*) FROM ` + table + ` GROUP BY pk >> 12 ORDER BY 1`)
	if !slices.Equal(kept, real) || len(real) == 0 {
		t.Errorf("%s %v, the rows say %v", buckets, kept, real)
	}
}

// TestBucketCounts checks that the deferred triggers keep the per-block
// counts of migration 5 through creations, batches with failed rows (rolled
// back to their savepoints) and deletions, and that the migration counts the
// rows of an existing database.
func TestBucketCounts(t *testing.T) {
	ctx := context.Background()
	dsn := schemaDSN(t)
	s, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	us := make([]scim.User, 4500)
	for i := range us {
		us[i].UserName = fmt.Sprintf("b%05d", i%4400) // the last 100 fail
	}
	out, errs := s.CreateUsers(ctx, us)
	for i := range 4400 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	for i := 0; i < 4400; i += 97 {
		if err := s.DeleteUser(ctx, out[i].ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.CreateGroup(ctx, scim.Group{DisplayName: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, scim.Group{DisplayName: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucketsMatch(t, db, "users")
	bucketsMatch(t, db, "groups")
	// Back to version 4, then open: migration 5 counts what is there.
	for _, q := range []string{
		`DROP TABLE user_buckets`, `DROP TABLE group_buckets`,
		`DROP FUNCTION connect_user_buckets CASCADE`, `DROP FUNCTION connect_group_buckets CASCADE`,
		`DELETE FROM schema_migrations WHERE version = 5`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if s, err = postgres.Open(ctx, dsn, postgres.Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bucketsMatch(t, db, "users")
	bucketsMatch(t, db, "groups")
	if _, err := s.CreateUser(ctx, scim.User{UserName: "after"}); err != nil {
		t.Fatal(err)
	}
	bucketsMatch(t, db, "users")
}
