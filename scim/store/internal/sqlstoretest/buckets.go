// Package sqlstoretest holds the tests the SQL store backends (postgres,
// sqlite) share about sqlstore's own tables, which the store.Store contract
// (storetest) does not see. Each backend's test calls them with its engine's
// part.
//
// It imports scim, scim/store, database/sql and testing.
package sqlstoretest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// Store is a store that creates users in batches.
type Store interface {
	store.Store
	store.Batcher
}

// Buckets is one backend's part of BucketCounts.
type Buckets struct {
	// Open opens the store on the test database.
	Open func(ctx context.Context) (Store, error)
	// DB opens the test database itself.
	DB func() (*sql.DB, error)
	// DeleteEvery deletes every DeleteEvery-th user created.
	DeleteEvery int
	// Downgrade takes the database back to version 4 (before migration 5).
	Downgrade []string
}

// BucketCounts checks that the triggers of migration 5 keep the per-block
// counts through creations, batches with failed rows (rolled back to their
// savepoints) and deletions, and that the migration counts the rows of an
// existing database.
func BucketCounts(t *testing.T, b Buckets) {
	ctx := context.Background()
	s, err := b.Open(ctx)
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
	for i := 0; i < 4400; i += b.DeleteEvery {
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

	db, err := b.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucketsMatch(t, db, "users")
	bucketsMatch(t, db, "groups")
	// Back to version 4, then open: migration 5 counts what is there.
	for _, q := range b.Downgrade {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if s, err = b.Open(ctx); err != nil {
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
