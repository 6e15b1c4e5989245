package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/localtest"
	"github.com/connectsso/connect/bridge/local/sqlite"
)

func open(t testing.TB, path string) *sqlite.Dir {
	t.Helper()
	d, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	localtest.Run(t, func(t testing.TB) local.Directory {
		return open(t, filepath.Join(t.TempDir(), "bridge.db"))
	})
}

// TestReopen: data survives a reopen and the migration is not re-run.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	d := open(t, path)
	ctx := context.Background()
	a, _, err := local.PutAccount(ctx, d, local.Put{Account: local.Account{Username: "keep", Auth: local.AuthManual}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := open(t, path)
	got, err := d2.AccountByUsername(ctx, "KEEP")
	if err != nil || got.ID != a.ID {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

// TestNewerSchemaRefused: a database migrated by a newer program is not
// touched by an older one.
func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	d := open(t, path)
	d.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO local_schema_migrations (version, applied) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestOpenConcurrently: several processes' worth of Opens on one new file
// migrate once and all work.
func TestOpenConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	dirs := make([]*sqlite.Dir, 4)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dirs[i].Close()
	}
	if _, _, err := local.PutAccount(context.Background(), dirs[1], local.Put{Account: local.Account{Username: "x", Auth: local.AuthManual}}); err != nil {
		t.Fatal(err)
	}
}

func TestPath(t *testing.T) {
	for _, tt := range []struct{ dsn, want string }{
		{"sqlite:bridge.db", "bridge.db"},
		{"sqlite:///var/lib/connect/bridge.db", "/var/lib/connect/bridge.db"},
		{"bridge.db", "bridge.db"},
		{"sqlite:", ""},
		{"sqlite::memory:", ""},
		{"sqlite:x.db?mode=ro", ""},
	} {
		got, err := sqlite.Path(tt.dsn)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
		}
	}
}

// TestMigratePartialIndexes: a version 1 database (full indexes on id_number
// and deleted) gets the partial indexes of version 2 on Open, keeping its data.
func TestMigratePartialIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	d := open(t, path)
	ctx := context.Background()
	a, _, err := local.PutAccount(ctx, d, local.Put{Account: local.Account{Username: "keep", Auth: local.AuthManual, IDNumber: "E1"}})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indexSQL := func(name string) string {
		t.Helper()
		var s string
		if err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&s); err != nil {
			t.Fatalf("index %s: %v", name, err)
		}
		return s
	}
	for _, stmt := range []string{ // back to version 1
		`DROP INDEX local_accounts_id_number`,
		`CREATE INDEX local_accounts_id_number ON local_accounts (id_number)`,
		`DROP INDEX local_accounts_deleted`,
		`CREATE INDEX local_accounts_deleted ON local_accounts (deleted)`,
		`DROP TABLE local_task_locks`,
		`DROP TABLE local_task_plans`,
		`DELETE FROM local_schema_migrations WHERE version > 1`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	d2 := open(t, path)
	for name, want := range map[string]string{
		"local_accounts_id_number": "WHERE id_number IS NOT NULL",
		"local_accounts_deleted":   "(server, pk) WHERE deleted IS NOT NULL",
	} {
		if got := indexSQL(name); !strings.Contains(got, want) {
			t.Errorf("after migration, %s is %q; want it to contain %q", name, got, want)
		}
	}
	got, err := d2.AccountsByIDNumber(ctx, "E1")
	if err != nil || len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("AccountsByIDNumber after migration: %+v, %v", got, err)
	}
}
