package postgres_test

import (
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/localtest"
	"github.com/connectsso/connect/internal/testenv"
)

// BenchmarkSync: as the SQLite benchmark, on PostgreSQL (each directory in its
// own schema).
func BenchmarkSync(b *testing.B) {
	localtest.Benchmarks(b, localtest.BenchAccounts(b, 100000), func(b testing.TB) local.Directory {
		return open(b, testenv.PostgresSchema(b))
	})
}
