package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/localtest"
	"github.com/connectsso/connect/bridge/local/postgres"
	"github.com/connectsso/connect/internal/testenv"
)

func open(t testing.TB, dsn string) *postgres.Dir {
	t.Helper()
	d, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	localtest.Run(t, func(t testing.TB) local.Directory {
		return open(t, testenv.PostgresSchema(t))
	})
}

// TestOpenConcurrently starts several directories on one new schema at once:
// the advisory lock makes exactly one run the migrations, and all work.
func TestOpenConcurrently(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	var wg sync.WaitGroup
	dirs := make([]*postgres.Dir, 4)
	errs := make([]error, 4)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = postgres.Open(context.Background(), dsn, postgres.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dirs[i].Close()
	}
	if _, _, err := local.PutAccount(context.Background(), dirs[3], local.Put{Account: local.Account{Username: "u", Auth: local.AuthManual}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dirs[0].AccountByUsername(context.Background(), "U"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsDSN(t *testing.T) {
	for _, dsn := range []string{"", "sqlite:x.db", "mysql://x"} {
		if _, err := postgres.Open(context.Background(), dsn, postgres.Options{}); err == nil {
			t.Errorf("Open(%q): no error", dsn)
		}
	}
}
