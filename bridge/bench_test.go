package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/internal/hubtest"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/state"
	"github.com/connectsso/connect/bridge/state/memory"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/client"
)

// benchUsers is CONNECT_BENCH_USERS (make bench sets it; the budget run is
// 100000), default 2000.
func benchUsers(b *testing.B) int {
	n := 2000
	if s := os.Getenv("CONNECT_BENCH_USERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CONNECT_BENCH_USERS=%q", s)
		}
		n = v
	}
	return n
}

// seedHub starts a hub holding n users (imported from CSV) and groups groups of
// 50 members each.
func seedHub(b *testing.B, n, groups int) (*hubtest.Hub, []string) {
	b.Helper()
	h := hubtest.Start(b, hubtest.Options{})
	path := filepath.Join(b.TempDir(), "users.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "userName,givenName,familyName,email,timezone")
	for i := range n {
		fmt.Fprintf(w, "bench%07d,Given%d,Family%d,bench%07d@example.org,Europe/Paris\n", i, i, i, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	start := time.Now()
	h.Command(b, "hub", "users", "import", "--store", h.DSN, "--no-progress", path)
	b.Logf("seeded %d users in %v", n, time.Since(start).Round(time.Millisecond))
	var ids []string
	c, err := client.New(client.Config{BaseURL: h.SCIM, Token: h.Admin, PageSize: 1000})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.ListUsers(context.Background(), client.ListOptions{Attributes: []string{"id"}}, func(us []scim.User) error {
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for g := range groups {
		var members []string
		for j := range 50 {
			members = append(members, ids[(g*50+j*7)%len(ids)])
		}
		kind := "audience"
		if g%2 == 1 {
			kind = "course"
		}
		h.CreateGroup(b, fmt.Sprintf("Group %03d", g), kind, dedup(members)...)
	}
	return h, ids
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// procKB reads a /proc/self/status field in kB.
func procKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// benchState returns Redis state on the test Redis when it answers (a fresh key
// prefix), else in-process state.
func benchState(b *testing.B) (bridge.State, string, func()) {
	addr := os.Getenv("CONNECT_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	st, err := redisstate.Open(ctx, "redis://"+addr+"/0", redisstate.Config{Prefix: prefix})
	if err != nil {
		return memory.New(memory.Config{}), "memory", func() {}
	}
	return st, "redis", func() { st.Close() }
}

// BenchmarkInitialSync is the initial sync of CONNECT_BENCH_USERS users and 200
// groups from a local hub into SQLite with Redis state (DESIGN budget at 100k:
// ≤ 60 s, ≤ 2× fetching and decoding the same pages, RSS ≤ 150 MB). It reports
// users/s, the ratio to a plain fetch+decode of the same listing, and the peak
// RSS growth of the process during the sync.
func BenchmarkInitialSync(b *testing.B) {
	n := benchUsers(b)
	h, _ := seedHub(b, n, 200)
	ctx := context.Background()

	// Fetch and decode alone, through the same source and page size.
	c, err := client.New(client.Config{BaseURL: h.SCIM, Token: h.Reader, PageSize: 500})
	if err != nil {
		b.Fatal(err)
	}
	src := bridge.NewSCIMSource(c)
	start, cpu0 := time.Now(), cpuTime()
	got := 0
	if err := src.ListUsers(ctx, func(us []scim.User) error { got += len(us); return nil }); err != nil || got != n {
		b.Fatalf("fetch: %d users, %v", got, err)
	}
	fetch, fetchCPU := time.Since(start), cpuTime()-cpu0

	var total, totalCPU time.Duration
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bridge.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, kind, closeState := benchState(b)
		eng, err := bridge.New(bridge.Config{Target: dir, Records: dir, State: st, PageSize: 500})
		if err != nil {
			b.Fatal(err)
		}
		srv, err := bridge.AddServer(ctx, dir, "bench", h.SCIM, h.Reader, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.Logf("state: %s", kind)
		}
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM (Linux)
		base := procKB("VmRSS:")
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		p, err := eng.RunTask(ctx, srv.ID, bridge.TaskUsers, bridge.RunOptions{})
		if err != nil || p.Counts[bridge.ActCreate] != n {
			b.Fatalf("sync: %v\n%s", err, planText(p))
		}
		tu := time.Since(t0)
		if _, err := eng.RunTask(ctx, srv.ID, bridge.TaskCollections, bridge.RunOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Logf("users %v, collections %v", tu.Round(time.Millisecond), (time.Since(t0) - tu).Round(time.Millisecond))
		total += time.Since(t0)
		totalCPU += cpuTime() - c0
		b.StopTimer()
		if hwm := procKB("VmHWM:"); hwm-base > peak {
			peak = hwm - base
		}
		_ = st.Wipe(ctx, srv.ID)
		closeState()
		dir.Close()
		b.StartTimer()
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(n)/per.Seconds(), "users/s")
	b.ReportMetric(per.Seconds()/fetch.Seconds(), "x-fetch")
	b.ReportMetric(float64(peak)/1024, "MB-rss-growth")
	b.ReportMetric(float64(procKB("VmHWM:"))/1024, "MB-peak-rss")
	perCPU := totalCPU / time.Duration(b.N)
	b.ReportMetric(perCPU.Seconds(), "cpu-s")
	b.ReportMetric(fetchCPU.Seconds(), "fetch-cpu-s")
	b.Logf("%d users: sync %v, fetch+decode %v, ratio %.2f; process CPU: sync %v, fetch+decode %v (the hub's not counted)", n,
		per.Round(time.Millisecond), fetch.Round(time.Millisecond), per.Seconds()/fetch.Seconds(),
		perCPU.Round(time.Millisecond), fetchCPU.Round(time.Millisecond))
}

// cpuTime is the CPU time (user and system) of this process so far: a sync's
// cost that moves less than its wall time with what else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIncremental100 is one incremental run applying 100 pending hub
// changes against a hub of CONNECT_BENCH_USERS users (budget ≤ 200 ms, and the
// same at 10k and 1M users). The bridge starts at the feed's head, so the run
// costs what 100 changes cost, whatever the directory size.
// CONNECT_BENCH_HUB_DB names an already seeded hub SQLite file to copy and
// serve instead (e.g. the load harness's 1,000,000-user directory).
func BenchmarkIncremental100(b *testing.B) {
	ctx := context.Background()
	var h *hubtest.Hub
	var ids []string
	if src := os.Getenv("CONNECT_BENCH_HUB_DB"); src != "" {
		dst := filepath.Join(b.TempDir(), "hub.db")
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("copy %s: %v %s", src, err, out)
		}
		h = hubtest.Start(b, hubtest.Options{DSN: "sqlite:" + dst})
		c, _ := client.New(client.Config{BaseURL: h.SCIM, Token: h.Admin, PageSize: 1000})
		n, err := c.Count(ctx, "Users", "")
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("serving a copy of %s: %d users", src, n)
		errEnough := fmt.Errorf("enough")
		_, err = c.ListUsers(ctx, client.ListOptions{Attributes: []string{"id"}, Paging: client.PagingCursor}, func(us []scim.User) error {
			for _, u := range us {
				ids = append(ids, u.ID)
			}
			return errEnough
		})
		if err != errEnough {
			b.Fatal(err)
		}
	} else {
		h, ids = seedHub(b, benchUsers(b), 0)
	}
	dir, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bridge.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer dir.Close()
	st, _, closeState := benchState(b)
	defer closeState()
	eng, err := bridge.New(bridge.Config{Target: dir, Records: dir, State: st, PageSize: 500})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := bridge.AddServer(ctx, dir, "bench", h.SCIM, h.Reader, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Wipe(ctx, srv.ID)
	c, _ := client.New(client.Config{BaseURL: h.SCIM, Token: h.Reader})
	head, err := c.Changes(ctx, "", 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	// Start as if a full reconcile had just finished at the head.
	if err := st.SetCursor(ctx, srv.ID, state.Fence{}, "users.changes", head.NextCursor); err != nil {
		b.Fatal(err)
	}
	if err := st.SetCursor(ctx, srv.ID, state.Fence{}, "users.full", time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		b.Fatal(err)
	}
	if err := st.MarkReady(ctx, srv.ID, state.Fence{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range 100 {
			id := ids[(i*100+j)%len(ids)]
			body := map[string]any{"schemas": []string{scim.SchemaPatchOp}, "Operations": []map[string]any{
				{"op": "replace", "path": "name.givenName", "value": fmt.Sprintf("G%d-%d", i, j)}}}
			if err := h.Do(http.MethodPatch, "/Users/"+id, body, nil, http.StatusOK); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		p, err := eng.RunTask(ctx, srv.ID, bridge.TaskUsers, bridge.RunOptions{})
		if err != nil || p.Mode != "changes" || p.Listed < 100 {
			b.Fatalf("increment: %v\n%s", err, planText(p))
		}
	}
}
