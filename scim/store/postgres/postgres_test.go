package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/postgres"
	"github.com/connectsso/connect/scim/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), testenv.PostgresSchema(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestOpenConcurrently starts several stores on one new schema at once:
// the advisory lock makes exactly one run the migrations.
func TestOpenConcurrently(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	ctx := context.Background()
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, dsn, postgres.Options{MaxConns: 4})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	u, err := stores[1].CreateUser(ctx, scim.User{UserName: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stores[3].GetUser(ctx, u.ID); err != nil {
		t.Errorf("other replica: %v", err)
	}
}
