package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// TestNewFileOwnerOnly: the hub database holds password hashes, token hashes
// and SAML signing keys, so a file Open creates (and the WAL and shared-memory
// files beside it) is readable by its owner only, whatever the umask.
func TestNewFileOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := sqlite.Open(context.Background(), "sqlite:"+path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateUser(context.Background(), scim.User{UserName: "perm"}); err != nil {
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
	path := filepath.Join(t.TempDir(), "hub.db")
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
