package localtest

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
)

// BenchAccounts is the directory size of the sync benchmarks:
// CONNECT_BENCH_LOCAL_ACCOUNTS, else def (the initial-sync budget of issue 4 is
// 100,000 accounts).
func BenchAccounts(b *testing.B, def int) int {
	b.Helper()
	if v := os.Getenv("CONNECT_BENCH_LOCAL_ACCOUNTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("CONNECT_BENCH_LOCAL_ACCOUNTS=%q: want an integer ≥ 100", v)
		}
		return n
	}
	return def
}

// SyncAccount is what the engine writes for hub user i of server "hub-1": like
// the engine's, its generated username and the hub's UUID are random, so every
// batch inserts at random places of the username and hub-key indexes.
func SyncAccount(i int) local.Account {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return local.Account{
		Username:      "tc" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:8]))[:13],
		Auth:          local.AuthConnect,
		Server:        "hub-1",
		HubUserID:     fmt.Sprintf("%x-%x-4%x-a%x-%x", sum[8:12], sum[12:14], sum[14:16], sum[16:18], sum[18:24]),
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

// SyncBatch is the batch size of SyncAll: the engine's default page size.
const SyncBatch = 500

// SyncAll upserts SyncAccount(0..n-1) in batches of SyncBatch, as the engine's
// full reconcile does, and fails unless every item reports want.
func SyncAll(b testing.TB, d local.Directory, n int, want local.Op) {
	b.Helper()
	ctx := context.Background()
	puts := make([]local.Put, 0, SyncBatch)
	for i := 0; i < n; i += SyncBatch {
		puts = puts[:0]
		for j := i; j < min(n, i+SyncBatch); j++ {
			puts = append(puts, local.Put{Account: SyncAccount(j), Fields: local.SyncFields})
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

// Benchmarks runs the sync benchmarks on directories made by newDir:
// InitialSync (n new accounts into an empty directory, reported as seconds per
// n), ResyncUnchanged (the same n again: read and compare, no writes) and
// ListAccounts (stream one server's accounts in pages of 1000).
func Benchmarks(b *testing.B, n int, newDir func(b testing.TB) local.Directory) {
	unit := fmt.Sprintf("s/%daccounts", n)
	b.Run("InitialSync", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			d := newDir(b)
			b.StartTimer()
			start := time.Now()
			SyncAll(b, d, n, local.OpCreated)
			total += time.Since(start)
		}
		b.ReportMetric(total.Seconds()/float64(b.N), unit)
		b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "accounts/s")
	})
	b.Run("ResyncUnchanged", func(b *testing.B) {
		d := newDir(b)
		SyncAll(b, d, n, local.OpCreated)
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			SyncAll(b, d, n, local.OpUnchanged)
			total += time.Since(start)
		}
		b.ReportMetric(total.Seconds()/float64(b.N), unit)
	})
	b.Run("ListAccounts", func(b *testing.B) {
		d := newDir(b)
		SyncAll(b, d, n, local.OpCreated)
		ctx := context.Background()
		var total time.Duration
		for b.Loop() {
			start := time.Now()
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
			total += time.Since(start)
			if seen != n {
				b.Fatalf("listed %d, want %d", seen, n)
			}
		}
		b.ReportMetric(total.Seconds()/float64(b.N), unit)
	})
}
