// Package testenv finds the real services tests use (PostgreSQL, Redis, binaries
// such as newman or chromium). A missing service skips the test locally and fails
// it when CONNECT_TEST_REQUIRE_SERVICES=1 (set by .ci/run).
//
// It imports the standard library only.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv("CONNECT_TEST_REQUIRE_SERVICES") == "1" }

// Missing skips tb, or fails it when services are required.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("required service missing: %s", msg)
	}
	tb.Skipf("skipping: %s (set CONNECT_TEST_REQUIRE_SERVICES=1 to fail instead)", msg)
}

func reachable(hostport string) bool {
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// PostgresDSN returns the DSN of the test PostgreSQL server
// (CONNECT_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test).
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("CONNECT_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	u, err := url.Parse(dsn)
	if err != nil || !reachable(u.Host) {
		Missing(tb, "PostgreSQL at %s", dsn)
	}
	return dsn
}

// PostgresSchema creates a schema of its own in the test PostgreSQL (named
// after the test, dropped at cleanup) and returns a DSN whose search_path
// selects it. The caller's binary registers the "pgx" database/sql driver
// (import _ "github.com/jackc/pgx/v5/stdlib"); this package stays on the
// standard library.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	dsn := PostgresDSN(tb)
	name := Name(tb)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE SCHEMA ` + name); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := db.Exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// RedisAddr returns host:port of the test Redis (CONNECT_TEST_REDIS, default
// 127.0.0.1:6379).
func RedisAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv("CONNECT_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	if !reachable(addr) {
		Missing(tb, "Redis at %s", addr)
	}
	return addr
}

// Binary returns the path of an executable on PATH, or skips/fails.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, "%s not on PATH", name)
	}
	return p
}

// Context returns a context cancelled when tb ends or after d.
func Context(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// Name returns a lower-case identifier unique to this test run, usable as a SQL
// schema or Redis key prefix.
func Name(tb testing.TB) string {
	tb.Helper()
	n := strings.ToLower(tb.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, n)
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("t_%s_%d_%d", n, os.Getpid(), time.Now().UnixNano()%1e9)
}
