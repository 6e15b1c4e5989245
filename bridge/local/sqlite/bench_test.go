package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/sqlite"
)

// benchAccounts is the directory size of the sync benchmarks:
// CONNECT_BENCH_LOCAL_ACCOUNTS, default 100,000 (the initial-sync budget of
// issue 4: ≤ ~15 s of local writes for 100k accounts).
func benchAccounts(b *testing.B) int {
	n := 100000
	if v := os.Getenv("CONNECT_BENCH_LOCAL_ACCOUNTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("CONNECT_BENCH_LOCAL_ACCOUNTS=%q: want an integer ≥ 100", v)
		}
	}
	return n
}

// syncAccount is what the engine writes for hub user i.
func syncAccount(i int) local.Account {
	return local.Account{
		Username:      fmt.Sprintf("tc%08d", i),
		Auth:          local.AuthConnect,
		Server:        "hub-1",
		HubUserID:     fmt.Sprintf("%08x-7d2c-4f5e-9a1b-%012x", i, i*7919),
		Email:         fmt.Sprintf("user%07d@example.com", i),
		EmailVerified: i%3 != 0,
		GivenName:     "Given" + strconv.Itoa(i%1000),
		FamilyName:    "Family" + strconv.Itoa(i%5000),
		DisplayName:   fmt.Sprintf("Given%d Family%d", i%1000, i%5000),
		Language:      "en",
		Timezone:      "Europe/London",
		City:          "City" + strconv.Itoa(i%300),
		Country:       "GB",
		Suspended:     i%10 == 0,
		SuspendedBy:   local.SuspendedByConnect,
	}
}

// syncAll writes accounts 0..n-1 in batches of 100, as the engine's initial sync
// does, and fails on any item error.
func syncAll(b *testing.B, d local.Directory, n int, want local.Op) {
	ctx := context.Background()
	puts := make([]local.Put, 0, 100)
	for i := 0; i < n; i += 100 {
		puts = puts[:0]
		for j := i; j < min(n, i+100); j++ {
			puts = append(puts, local.Put{Account: syncAccount(j), Fields: local.SyncFields})
		}
		rs, err := d.PutAccounts(ctx, puts)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil || r.Op != want {
				b.Fatalf("put: %s %v, want %s", r.Op, r.Err, want)
			}
		}
	}
}

func benchOpen(b *testing.B) *sqlite.Dir {
	d, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "bridge.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkInitialSync writes N new connect accounts into an empty directory
// in batches of 100 (one transaction each). Reports seconds per N accounts.
func BenchmarkInitialSync(b *testing.B) {
	n := benchAccounts(b)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		d := benchOpen(b)
		b.StartTimer()
		start := time.Now()
		syncAll(b, d, n, local.OpCreated)
		total += time.Since(start)
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), fmt.Sprintf("s/%daccounts", n))
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "accounts/s")
}

// BenchmarkResyncUnchanged re-applies the same N accounts: every item is read
// and compared, nothing is written (the idempotent path of a full reconcile).
func BenchmarkResyncUnchanged(b *testing.B) {
	n := benchAccounts(b)
	d := benchOpen(b)
	defer d.Close()
	syncAll(b, d, n, local.OpCreated)
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		syncAll(b, d, n, local.OpUnchanged)
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), fmt.Sprintf("s/%daccounts", n))
}

// BenchmarkListAccounts streams every account of a server in pages of 1000
// (rebuilding the state map after Redis loss).
func BenchmarkListAccounts(b *testing.B) {
	n := benchAccounts(b)
	d := benchOpen(b)
	defer d.Close()
	syncAll(b, d, n, local.OpCreated)
	ctx := context.Background()
	for b.Loop() {
		q := local.AccountQuery{Server: "hub-1", Limit: 1000, Deleted: local.DeletedInclude}
		seen := 0
		for {
			as, next, err := d.ListAccounts(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			seen += len(as)
			if next == "" {
				break
			}
			q.After = next
		}
		if seen != n {
			b.Fatalf("listed %d, want %d", seen, n)
		}
	}
}
