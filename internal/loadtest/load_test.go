package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(lat, tt.q); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{5}, 5}, {[]float64{4, 1, 3, 2}, 2}, {nil, 0}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestJSONString(t *testing.T) {
	body := []byte(`{"totalResults":3,"nextCursor":"eyJzIjoi","Resources":[{"nextCursor":"inner"}]}`)
	if got := jsonString(body, "nextCursor"); got != "eyJzIjoi" {
		t.Errorf("nextCursor = %q", got)
	}
	if got := jsonString(body, "missing"); got != "" {
		t.Errorf("missing = %q", got)
	}
}

func TestGroupSizes(t *testing.T) {
	for _, tt := range []struct{ n, group, add int }{
		{1000000, 100000, 10000}, {110000, 100000, 10000}, {10000, 5000, 2500},
	} {
		g, a := groupSizes(tt.n)
		if g != tt.group || a != tt.add || g+a > tt.n {
			t.Errorf("groupSizes(%d) = %d, %d; want %d, %d", tt.n, g, a, tt.group, tt.add)
		}
	}
}

func TestClosedLoopLimitAndErrors(t *testing.T) {
	fail := errors.New("boom")
	r := closedLoop(context.Background(), "p", 4, 0, 100, func(_ context.Context, w, i int) error {
		if w < 0 || w >= 4 {
			t.Errorf("worker %d", w)
		}
		if i%10 == 0 {
			return fail
		}
		return nil
	})
	if r.Requests != 100 || r.Errors != 10 || r.FirstErr != "boom" || r.Mode != "closed c4" {
		t.Errorf("result %+v, want 100 requests, 10 errors", r)
	}
}

// TestOpenLoopKeepsRate: the requests go out at the rate asked, and the
// latency of a request counts from when it was due, so a slow server shows.
func TestOpenLoopKeepsRate(t *testing.T) {
	r := openLoop(context.Background(), "p", 1000, 8, 500*time.Millisecond, func(context.Context, int, int) error { return nil })
	if r.Requests != 500 || r.Errors != 0 {
		t.Fatalf("result %+v, want 500 requests", r)
	}
	if r.Elapsed < 450*time.Millisecond || r.Elapsed > 2*time.Second {
		t.Errorf("500 requests at 1000/s took %v", r.Elapsed)
	}
	// One worker, each request 5 ms, 400/s offered: the queue grows, and the
	// latencies must show it (far above the 5 ms service time).
	slow := openLoop(context.Background(), "p", 400, 1, 250*time.Millisecond, func(context.Context, int, int) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if slow.P99 < 100*time.Millisecond {
		t.Errorf("p99 %v under overload: queueing time not counted", slow.P99)
	}
}

func TestCheckFlagsFailedRequests(t *testing.T) {
	rep := report{Runs: []runReport{{PeakRSS: 100 << 20, Results: []result{
		{Phase: "GET /Users/{id}", Mode: "closed c8", PerSec: 9000, Errors: 3, FirstErr: "status 500"},
		{Phase: "POST /Users", Mode: "closed c8", PerSec: 900},
	}}}}
	rep.summarise()
	got := map[string]budget{}
	for _, b := range rep.Budgets {
		got[b.Name] = b
	}
	if b := got["GET /Users/{id} ≥ 5,000 requests/s"]; b.OK || !strings.Contains(b.Measured, "3 failed") {
		t.Errorf("a phase with failed requests passes: %+v", b)
	}
	if b := got["POST /Users ≥ 1,000/s"]; b.OK {
		t.Errorf("900/s passes the 1,000/s budget: %+v", b)
	}
	if b := got["hub RSS ≤ 300 MB"]; !b.OK {
		t.Errorf("100 MB misses the RSS budget: %+v", b)
	}
	if b := got["Changes poll of 100 changes ≤ 20 ms"]; b.OK || !b.Skipped {
		t.Errorf("an unmeasured budget passes: %+v", b)
	}
}

// TestClient checks the harness's own HTTP/1.1 client against net/http's
// server: request line, headers and body arrive intact; answers with a
// Content-Length and chunked ones (large pages) are read whole; connections
// are kept and reused; an answer that closes its connection and a hub that
// closed an idle connection cost a new one, not an error.
func TestClient(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/scim/v2/Echo":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type")+" "+string(body))
		case "/scim/v2/Big":
			w.(http.Flusher).Flush() // chunked
			_, _ = io.WriteString(w, strings.Repeat("x", 100000))
		case "/scim/v2/Close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusCreated)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(srv.URL, "tok", 2)
	ctx := context.Background()

	code, out, err := c.do(ctx, "GET", "/Echo?filter=userName%20eq%20%22x%22", nil)
	if err != nil || code != 200 || string(out) != `GET /scim/v2/Echo?filter=userName%20eq%20%22x%22  ` {
		t.Fatalf("GET = %d %q %v", code, out, err)
	}
	code, out, err = c.do(ctx, "POST", "/Echo", map[string]string{"a": "b"})
	if err != nil || code != 200 || string(out) != `POST /scim/v2/Echo application/scim+json {"a":"b"}` {
		t.Fatalf("POST = %d %q %v", code, out, err)
	}
	code, out, err = c.do(ctx, "GET", "/Big", nil)
	if err != nil || code != 200 || len(out) != 100000 {
		t.Fatalf("chunked GET = %d, %d bytes, %v", code, len(out), err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for three sequential requests, want 1 kept alive", n)
	}
	if code, _, err = c.do(ctx, "POST", "/Close", []byte("{}")); err != nil || code != 201 {
		t.Fatalf("POST answered with Connection: close = %d, %v", code, err)
	}
	if code, _, err = c.do(ctx, "GET", "/Echo", nil); err != nil || code != 200 {
		t.Fatalf("GET after a closed connection = %d, %v", code, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (a new one after Connection: close)", n)
	}
	// The server drops idle connections: the next GET goes out on a new one.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if code, _, err = c.do(ctx, "GET", "/Echo", nil); err != nil || code != 200 {
		t.Fatalf("GET after the server closed the idle connection = %d, %v", code, err)
	}
	if code, _, err = newClient(srv.URL, "wrong", 1).do(ctx, "GET", "/Echo", nil); err != nil || code != 401 {
		t.Fatalf("wrong token = %d, %v", code, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.do(cancelled, "GET", "/Echo", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
}
