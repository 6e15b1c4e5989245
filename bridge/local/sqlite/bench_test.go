package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/localtest"
)

// BenchmarkSync: the local writes of the engine's initial sync of 100,000 users
// (budget: ≤ ~15 s of the 60 s initial sync), an unchanged full reconcile, and
// streaming the accounts back (rebuilding the state map after Redis loss).
func BenchmarkSync(b *testing.B) {
	localtest.Benchmarks(b, localtest.BenchAccounts(b, 100000), func(b testing.TB) local.Directory {
		return open(b, filepath.Join(b.TempDir(), "bridge.db"))
	})
}
