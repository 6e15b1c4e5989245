package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store/sqlite"
)

func TestPath(t *testing.T) {
	tests := []struct {
		dsn, want string
		ok        bool
	}{
		{"sqlite:connect-hub.db", "connect-hub.db", true},
		{"sqlite:/var/lib/connect/hub.db", "/var/lib/connect/hub.db", true},
		{"sqlite:///var/lib/hub.db", "/var/lib/hub.db", true},
		{"hub.db", "hub.db", true},
		{"sqlite:", "", false},
		{"sqlite::memory:", "", false},
		{"sqlite:hub.db?_pragma=x", "", false},
	}
	for _, tt := range tests {
		got, err := sqlite.Path(tt.dsn)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Path(%q) = %q, %v; want %q ok=%v", tt.dsn, got, err, tt.want, tt.ok)
		}
	}
}

// TestOpenConcurrentlyAndReopen starts several stores on one new file at once
// (as replicas or a CLI beside the server do): migrations must run exactly
// once, and every store sees the others' writes.
func TestOpenConcurrentlyAndReopen(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "hub.db")
	const n = 4
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = sqlite.Open(ctx, dsn, sqlite.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	u, err := stores[0].CreateUser(ctx, scim.User{UserName: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if _, err := s.GetUser(ctx, u.ID); err != nil {
			t.Errorf("store #%d: %v", i, err)
		}
	}
	// Writers in different pools (processes) wait for each other instead of
	// failing with SQLITE_BUSY.
	wg = sync.WaitGroup{}
	werrs := make([]error, n)
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				if _, err := s.CreateUser(ctx, scim.User{UserName: "w" + string(rune('a'+i)) + string(rune('a'+j))}); err != nil {
					werrs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range werrs {
		if err != nil {
			t.Errorf("writer #%d: %v", i, err)
		}
	}
	for _, s := range stores {
		s.Close()
	}
	again, err := sqlite.Open(ctx, dsn, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	st, err := again.Stats(ctx)
	if err != nil || st.Users != 1+n*25 {
		t.Errorf("after reopen: %+v, %v", st, err)
	}
}
