// Package sqlitefile holds what both SQLite stores (the hub's scim/store/sqlite
// and the bridge's bridge/local/sqlite) do to the database file itself: create
// it owner-only, and survive several processes opening a new file at once.
//
// It imports the standard library only.
package sqlitefile

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"
)

// CreateOwnerOnly creates the database file with mode 0600 when it does not
// exist yet, before SQLite opens it: SQLite gives the WAL and shared-memory
// files the mode of the database file, and the default umask would leave all
// three readable by every local user. An existing file keeps its mode (the
// operator's choice); only a warning is logged when others may read it.
func CreateOwnerOnly(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o007 != 0 && log != nil {
		log.Warn("sqlite: the database file is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	return nil
}

// PingWriter opens the writer's first connection, which creates the file and
// switches it to WAL. Switching the journal mode of a new file needs an
// exclusive lock that SQLite refuses at once (no busy wait) while another
// process opens the same new file, so a busy answer is retried until busy
// has passed.
func PingWriter(ctx context.Context, db *sql.DB, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for {
		err := db.PingContext(ctx)
		if err == nil || !IsBusy(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// IsBusy reports SQLITE_BUSY / SQLITE_LOCKED from the driver.
func IsBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "SQLITE_LOCKED")
}
