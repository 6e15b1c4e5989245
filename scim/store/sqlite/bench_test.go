package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/filter"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
)

// The benchmarks share one directory seeded once per process with
// CONNECT_BENCH_USERS users (default 10,000; `make bench` sets 1,000,000).
var bench struct {
	once sync.Once
	dir  string
	s    *sqlite.Store
	ids  []string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.s != nil {
		bench.s.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchUsers(b *testing.B) int {
	n := 10000
	if v := os.Getenv("CONNECT_BENCH_USERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CONNECT_BENCH_USERS=%q: want a positive integer", v)
		}
	}
	return n
}

func benchUser(i int) scim.User {
	return scim.User{
		UserName:    fmt.Sprintf("user%07d", i),
		ExternalID:  fmt.Sprintf("ext-%07d", i),
		DisplayName: fmt.Sprintf("User %d", i),
		Name:        &scim.Name{GivenName: "Given" + strconv.Itoa(i%1000), FamilyName: "Family" + strconv.Itoa(i%5000)},
		Active:      scim.BoolPtr(i%10 != 0),
		Emails:      []scim.MultiValue{{Value: fmt.Sprintf("user%07d@example.com", i), Type: "work", Primary: true}},
		Enterprise:  &scim.EnterpriseUser{EmployeeNumber: strconv.Itoa(100000 + i), Department: "Dept" + strconv.Itoa(i%50)},
	}
}

// seeded returns the shared store, seeding it on first use.
func seeded(b *testing.B) (*sqlite.Store, []string) {
	b.Helper()
	n := benchUsers(b)
	bench.once.Do(func() {
		ctx := context.Background()
		if bench.dir, bench.err = os.MkdirTemp("", "connect-bench-"); bench.err != nil {
			return
		}
		if bench.s, bench.err = sqlite.Open(ctx, "sqlite:"+filepath.Join(bench.dir, "hub.db"), sqlite.Options{}); bench.err != nil {
			return
		}
		start := time.Now()
		const batch = 2000
		us := make([]scim.User, 0, batch)
		for lo := 0; lo < n; lo += batch {
			us = us[:0]
			for i := lo; i < min(lo+batch, n); i++ {
				us = append(us, benchUser(i))
			}
			out, errs := bench.s.CreateUsers(ctx, us)
			for i, err := range errs {
				if err != nil {
					bench.err = err
					return
				}
				bench.ids = append(bench.ids, out[i].ID)
			}
		}
		b.Logf("seeded %d users in %v", n, time.Since(start))
	})
	if bench.err != nil {
		b.Fatalf("seed: %v", bench.err)
	}
	return bench.s, bench.ids
}

// requestContext is a context like an HTTP request's: cancellable, which the
// SQL drivers watch per statement unless the store says the read is bounded.
func requestContext(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

// reportCPU starts measuring the process's CPU time (user + system); the
// function it returns reports it per operation as "cpu-µs/op". On a machine
// shared with other work the CPU time is steadier than the wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkGetUser(b *testing.B) {
	s, ids := seeded(b)
	ctx := requestContext(b)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			if _, err := s.GetUser(ctx, ids[r.IntN(len(ids))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFilterUserName measures the store's side of
// GET /Users?filter=userName eq "…": the filters are parsed beforehand (parsing
// is scim/filter's cost, benchmarked there).
func BenchmarkFilterUserName(b *testing.B) {
	s, ids := seeded(b)
	ctx := requestContext(b)
	exprs := make([]filter.Expr, 1024)
	for i := range exprs {
		text := fmt.Sprintf(`userName eq "USER%07d"`, rand.IntN(len(ids)))
		e, err := filter.Parse(scim.UserResourceType, text, filter.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		exprs[i] = e
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			p, err := s.ListUsers(ctx, store.Query{Filter: exprs[r.IntN(len(exprs))], Count: 100})
			if err != nil || len(p.Items) != 1 || p.Total != 1 {
				b.Fatalf("ListUsers = %d items, %v", len(p.Items), err)
			}
		}
	})
}

func BenchmarkListUsersPage(b *testing.B) {
	s, ids := seeded(b)
	ctx := requestContext(b)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		start := 1 + (i*100)%max(1, len(ids)-100)
		p, err := s.ListUsers(ctx, store.Query{StartIndex: start, Count: 100})
		if err != nil || len(p.Items) != min(100, len(ids)) {
			b.Fatalf("page at %d: %d items, %v", start, len(p.Items), err)
		}
	}
}

// BenchmarkListUsersByIDs measures what a 100-change Changes page reads:
// 100 known users by id in one query.
func BenchmarkListUsersByIDs(b *testing.B) {
	s, ids := seeded(b)
	ctx := requestContext(b)
	page := make([]string, min(100, len(ids)))
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		for i := range page {
			page[i] = ids[rand.IntN(len(ids))]
		}
		p, err := s.ListUsers(ctx, store.Query{IDs: page, StartIndex: 1, Count: len(page)})
		if err != nil || len(p.Items) == 0 {
			b.Fatalf("ListUsers by %d ids: %d items, %v", len(page), len(p.Items), err)
		}
	}
}

func BenchmarkCreateUser(b *testing.B) {
	s, _ := seeded(b)
	ctx := context.Background()
	base := time.Now().UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		u := benchUser(i)
		u.UserName = fmt.Sprintf("new-%d-%d", base, i)
		if _, err := s.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJournalPoll(b *testing.B) {
	s, _ := seeded(b)
	ctx := requestContext(b)
	head, err := s.JournalHead(ctx)
	if err != nil || head < 100 {
		b.Fatalf("journal head %d, %v", head, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		after := int64(i*100) % (head - 100)
		es, err := s.Journal(ctx, after, 100)
		if err != nil || len(es) != 100 {
			b.Fatalf("Journal(%d) = %d, %v", after, len(es), err)
		}
	}
}

// BenchmarkTrimJournal measures the hourly journal trimmer when nothing is
// old enough yet (the journal holds every seeded user's entry): it must find
// that out without reading the journal.
func BenchmarkTrimJournal(b *testing.B) {
	s, _ := seeded(b)
	ctx := context.Background()
	before := time.Now().Add(-7 * 24 * time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		if n, err := s.TrimJournal(ctx, before); err != nil || n != 0 {
			b.Fatalf("TrimJournal = %d, %v", n, err)
		}
	}
}

// BenchmarkAddMembers measures one PATCH-style UpdateGroup adding 10,000
// members to a group that already has up to 100,000 (fewer when fewer users
// are seeded; skipped below 20,000 users).
func BenchmarkAddMembers(b *testing.B) {
	s, ids := seeded(b)
	const add = 10000
	initial := min(100000, len(ids)-add)
	if initial < add {
		b.Skipf("needs at least %d users (CONNECT_BENCH_USERS)", 2*add)
	}
	ctx := context.Background()
	members := func(ids []string) []scim.Member {
		ms := make([]scim.Member, len(ids))
		for i, id := range ids {
			ms[i] = scim.Member{Value: id}
		}
		return ms
	}
	g, err := s.CreateGroup(ctx, scim.Group{DisplayName: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Members: members(ids[:initial])})
	if err != nil {
		b.Fatal(err)
	}
	defer s.DeleteGroup(ctx, g.ID, 0)
	extra := ids[initial : initial+add]
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
			ops.Add = members(extra)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := s.UpdateGroup(ctx, g.ID, 0, func(_ *scim.Group, ops *store.MemberOps) error {
			ops.Remove = extra
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
