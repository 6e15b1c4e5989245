package sp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchBridge is an SP on plain loopback HTTP (nginx talks to the bridge that
// way) with n live sessions.
func benchBridge(b *testing.B, useRedis bool, n int) (*httptest.Server, *SP, []string) {
	b.Helper()
	st := newState(b, useRedis)
	store := stateSessions{st}
	keyPEM, certPEM := testKeyPair(b, 1)
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	b.Cleanup(srv.Close)
	s, err := New(Config{
		BaseURL: srv.URL, KeyPEM: keyPEM, CertPEM: certPEM,
		Hubs: &hubsList{}, Sessions: store, Replay: store, Accounts: newTestAccounts(),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	toks := make([]string, n)
	ctx := context.Background()
	for i := range toks {
		toks[i] = newToken()
		now := time.Now()
		d := &sessionData{
			User: LocalUser{ID: "L" + toks[i][:8], Username: "tcuser" + toks[i][:6], Email: "u@example.com", Groups: []string{"staff", "course-101"}, Hub: "hub1"},
			Hub:  "hub1", Subject: toks[i][:10], Created: now, Touched: now,
		}
		if err := s.putSession(ctx, tokenHash(toks[i]), d); err != nil {
			b.Fatal(err)
		}
	}
	return srv, s, toks
}

// BenchmarkForwardAuth measures /connect/auth as nginx uses it: parallel
// keep-alive clients over loopback HTTP, each check a different session of
// 1,000. Budget (issue 5): ≥ 10,000 checks/s with p99 ≤ 2 ms on 2 cores —
// the clients share those cores with the server here, so the numbers are a
// floor.
func BenchmarkForwardAuth(b *testing.B) {
	for _, backend := range []struct {
		name  string
		redis bool
	}{{"memory", false}, {"redis", true}} {
		b.Run(backend.name, func(b *testing.B) {
			srv, _, toks := benchBridge(b, backend.redis, 1000)
			tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
			b.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr}
			url := srv.URL + PathAuth
			var (
				next    atomic.Uint64
				mu      sync.Mutex
				lats    []time.Duration
				failed  atomic.Int64
				started = time.Now()
			)
			b.SetParallelism(2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 1024)
				for pb.Next() {
					tok := toks[next.Add(1)%uint64(len(toks))]
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set("Cookie", "connect_session="+tok)
					req.Header.Set("X-Original-URI", "/app/page")
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					local = append(local, time.Since(t0))
					if resp.StatusCode != http.StatusAccepted {
						failed.Add(1)
					}
				}
				mu.Lock()
				lats = append(lats, local...)
				mu.Unlock()
			})
			elapsed := time.Since(started)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d checks failed", f)
			}
			sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
			if len(lats) > 0 {
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
			}
			b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "checks/s")
		})
	}
}

// BenchmarkForwardAuthPaced offers exactly the budget's load — 10,000
// checks/s from 8 keep-alive clients on a fixed schedule — and measures each
// check's latency from the moment it was due (so a stall counts against every
// check it delays). It reports p50/p99 and the rate achieved.
func BenchmarkForwardAuthPaced(b *testing.B) {
	const rate, clients = 10_000, 8
	srv, _, toks := benchBridge(b, false, 1000)
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + PathAuth
	interval := time.Second * clients / rate
	lats := make([][]time.Duration, clients)
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			n := b.N / clients
			if c < b.N%clients {
				n++
			}
			due := start.Add(interval * time.Duration(c) / clients)
			for i := 0; i < n; i++ {
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Cookie", "connect_session="+toks[(i*clients+c)%len(toks)])
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						failed.Add(1)
					}
				}
				lats[c] = append(lats[c], time.Since(due))
				due = due.Add(interval)
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d checks failed", f)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "checks/s")
}

// discardWriter is a minimal ResponseWriter for the handler benchmark.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkForwardAuthHandler is the server's own cost of a cached check,
// without HTTP: what the hot path allocates.
func BenchmarkForwardAuthHandler(b *testing.B) {
	_, s, toks := benchBridge(b, false, 1000)
	reqs := make([]*http.Request, len(toks))
	for i, tok := range toks {
		reqs[i] = httptest.NewRequest("GET", PathAuth, nil)
		reqs[i].Header.Set("Cookie", "other=1; connect_session="+tok)
	}
	w := &discardWriter{h: http.Header{}}
	for _, r := range reqs { // warm the caches
		s.serveAuth(w, r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		s.serveAuth(w, reqs[i%len(reqs)])
		if w.code != http.StatusAccepted {
			b.Fatalf("code %d", w.code)
		}
	}
}
