package sqlite_test

import (
	"context"
	"path/filepath"
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
