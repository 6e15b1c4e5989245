// Package sqlite is the embedded local directory backend: SQLite through the
// pure Go driver modernc.org/sqlite, in WAL mode, with one writer connection
// (writes queue in-process instead of failing with SQLITE_BUSY) and a pool of
// read-only connections. The schema is versioned and migrated on Open.
//
// It imports bridge/local, its internal sqldir (all queries) and the driver.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/internal/sqldir"
	"github.com/connectsso/connect/internal/sqlitefile"
)

// Options configure Open.
type Options struct {
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives operational messages; discarded when nil.
	Logger *slog.Logger
	// Readers is the size of the read pool; 0 means 2×GOMAXPROCS (at least 4).
	Readers int
	// BusyTimeout is how long a connection waits for another process's lock;
	// 0 means 10 s.
	BusyTimeout time.Duration
}

// Cache and WAL sizes (BenchmarkSync and the bridge's BenchmarkInitialSync
// measure them: at 100,000 accounts a larger writer cache makes the sync no
// faster and only grows the process).
const (
	writerCacheKiB     = 8 << 10
	readerCacheKiB     = 2 << 10
	walCheckpointPages = 10000
	walSizeLimit       = 16 << 20 // bytes
)

// Dir is the SQLite local directory. It implements local.Directory and
// local.Records.
type Dir struct {
	*sqldir.Dir
}

var (
	_ local.Directory   = (*Dir)(nil)
	_ local.Records     = (*Dir)(nil)
	_ local.TaskRecords = (*Dir)(nil)
)

var dialect = sqldir.Dialect{
	Name:  "sqlite",
	Types: map[string]string{"%PK%": "INTEGER PRIMARY KEY", "%BLOB%": "BLOB"},
	IsUnique: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
}

// Path returns the file path of a DSN: "sqlite:PATH", "sqlite://PATH" or a bare
// path.
func Path(dsn string) (string, error) {
	p := strings.TrimPrefix(dsn, "sqlite:")
	p = strings.TrimPrefix(p, "//")
	if p == "" || strings.ContainsAny(p, "?#") || p == ":memory:" {
		return "", fmt.Errorf("sqlite: invalid DSN %q: want sqlite:PATH", dsn)
	}
	return p, nil
}

// Open opens (creating if needed) the database file named by dsn and brings
// its schema up to date.
func Open(ctx context.Context, dsn string, opts Options) (*Dir, error) {
	path, err := Path(dsn)
	if err != nil {
		return nil, err
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)",
		busy.Milliseconds())
	if err := sqlitefile.CreateOwnerOnly(path, opts.Logger); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Page caches are small: pages not in them come from the OS page cache at
	// the cost of a pread, and every MiB of cache costs about 2 MiB of RSS (the
	// driver's allocator rounds each 4 KiB page up to an 8 KiB slot). The writer
	// checkpoints every wal_autocheckpoint pages instead of every 1,000: a sync
	// dirties index pages at random, and each checkpoint rewrites (and fsyncs)
	// every page the WAL holds; journal_size_limit truncates the WAL back after
	// a checkpoint has emptied it.
	wdb, err := sql.Open("sqlite", path+"?"+common+fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=wal_autocheckpoint(%d)&_pragma=journal_size_limit(%d)&_txlock=immediate",
		writerCacheKiB, walCheckpointPages, walSizeLimit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// The writer creates the file and switches it to WAL before readers open.
	if err := sqlitefile.PingWriter(ctx, wdb, busy); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", path+"?"+common+fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=query_only(1)", readerCacheKiB))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := opts.Readers
	if readers <= 0 {
		readers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	d := dialect
	s, err := sqldir.New(ctx, &d, rdb, wdb, sqldir.Options{Clock: opts.Clock, Logger: opts.Logger})
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &Dir{s}, nil
}
