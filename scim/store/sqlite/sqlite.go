// Package sqlite is the embedded hub directory backend: SQLite through the pure
// Go driver modernc.org/sqlite (driver name "sqlite"), in WAL mode, with one
// writer connection (writes queue in-process instead of failing with
// SQLITE_BUSY) and a pool of read-only connections.
//
// It imports scim/store, its internal sqlstore (all queries) and the driver.
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

	"github.com/connectsso/connect/internal/sqlitefile"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/internal/sqlstore"
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

// Store is the SQLite hub directory. It implements store.Store and
// store.Batcher.
type Store struct {
	*sqlstore.Store
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Batcher = (*Store)(nil)
)

// Dialect is the SQLite dialect of the shared SQL store.
var dialect = sqlstore.Dialect{
	Name: "sqlite",
	Filter: filter.Dialect{
		Placeholder: filter.QuestionMark,
		TimeArg:     func(v any) any { return v.(time.Time).UnixMicro() },
		BoolArg:     func(b bool) any { return boolInt(b) },
	},
	Types: map[string]string{
		"%PK%":     "INTEGER PRIMARY KEY",
		"%SERIAL%": "INTEGER PRIMARY KEY AUTOINCREMENT",
		"%BLOB%":   "BLOB",
	},
	Migrations:   sqlstore.SQLiteMigrations,
	AfterMigrate: sqlstore.SQLiteInitialStats,
	IsUnique: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Path returns the file path of a DSN: "sqlite:PATH", "sqlite://PATH" or a
// bare path.
func Path(dsn string) (string, error) {
	p := strings.TrimPrefix(dsn, "sqlite:")
	p = strings.TrimPrefix(p, "//")
	if p == "" || strings.ContainsAny(p, "?#") || p == ":memory:" {
		return "", fmt.Errorf("sqlite: invalid DSN %q: want sqlite:PATH", dsn)
	}
	return p, nil
}

// Open opens (creating if needed) the database file named by dsn
// ("sqlite:PATH" or PATH) and brings its schema up to date.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
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
	// The writer gets the larger page cache: inserts touch every index, and a
	// checkpoint writes back what the cache absorbed. Readers share the OS
	// page cache. Sizes are of page contents: the driver's allocator gives
	// each cached 4 KiB page (with SQLite's header) an 8 KiB slot, so the
	// resident cost is twice the pragma — 64 MiB for the writer and 32 MiB
	// per reader when full, inside the hub's 300 MB budget.
	if err := sqlitefile.CreateOwnerOnly(path, opts.Logger); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=cache_size(-32768)&_txlock=immediate")
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
	rdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=cache_size(-16384)&_pragma=query_only(1)")
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
	s, err := sqlstore.New(ctx, &d, rdb, wdb, sqlstore.Options{Clock: opts.Clock, Logger: opts.Logger})
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &Store{s}, nil
}
