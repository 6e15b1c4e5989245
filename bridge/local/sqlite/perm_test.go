package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/sqlite"
)

// TestNewFileOwnerOnly: the bridge database holds hub tokens, the SP signing
// key, setup-secret hashes and synced password hashes, so a file Open creates (and the WAL and shared-memory
// files beside it) is readable by its owner only, whatever the umask.
func TestNewFileOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	s, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := local.PutAccount(context.Background(), s, local.Put{Account: local.Account{Username: "perm", Auth: local.AuthManual}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s: mode %v, want no group or other access", filepath.Base(p), m)
		}
	}
}

// TestExistingFileModeKept: an operator's choice of mode on an existing file
// stays (Open only decides the mode of files it creates).
func TestExistingFileModeKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("mode %v, want 0640 kept", m)
	}
}
