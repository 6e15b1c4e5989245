package hub

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

type running struct {
	base string
	reg  *prometheus.Registry
	logs *syncBuffer
	stop func() error // cancels the context and returns Serve's result
}

func serve(t *testing.T, st store.Store, clock func() time.Time) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logs := newSyncBuffer()
	h, err := New(Config{
		Listen: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Store: st,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Registry: reg, Clock: clock, Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	r := &running{base: "http://" + ln.Addr().String(), reg: reg, logs: logs}
	var once bool
	var result error
	r.stop = func() error {
		if !once {
			once = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func get(t *testing.T, url, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// metric returns the value of the sample whose name and labels (k=v,…) match.
func metric(t *testing.T, reg *prometheus.Registry, name, labels string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			if strings.Join(ls, ",") != labels {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addUsers(t *testing.T, st store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := st.CreateUser(context.Background(), scim.User{UserName: n}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServe(t *testing.T) {
	ctx := context.Background()
	st := newSQLite(t)
	addUsers(t, st, "ann", "ben")
	token, _, err := CreateToken(ctx, st, "test", "admin", false)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, st, nil)

	code, hdr, body := get(t, r.base+"/healthz", "")
	if code != 200 || body != "ok\n" || hdr.Get(RequestIDHeader) == "" {
		t.Errorf("/healthz = %d %q (request id %q)", code, body, hdr.Get(RequestIDHeader))
	}
	if code, _, body := get(t, r.base+"/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _, _ := get(t, r.base+"/scim/v2/Users", ""); code != http.StatusUnauthorized {
		t.Errorf("/scim/v2/Users without token = %d, want 401", code)
	}
	code, _, body = get(t, r.base+"/scim/v2/Users", token)
	if code != 200 || !strings.Contains(body, `"totalResults":2`) {
		t.Errorf("/scim/v2/Users = %d %s", code, body)
	}
	if strings.Contains(r.logs.String(), token) {
		t.Error("the log carries the token")
	}

	waitFor(t, "directory gauges", func() bool {
		v, ok := metric(t, r.reg, "connect_hub_directory_objects", "kind=users")
		return ok && v == 2
	})
	code, _, body = get(t, r.base+"/metrics", "")
	for _, want := range []string{
		`connect_hub_directory_objects{kind="users"} 2`,
		`connect_hub_directory_objects{kind="groups"} 0`,
		`connect_hub_build_info{version="test"} 1`,
		`connect_hub_scim_requests_total{code="200",method="GET",resource="Users"} 1`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if err := r.stop(); err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := http.Get(r.base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	if !strings.Contains(r.logs.String(), "msg=stopped") {
		t.Errorf("no clean stop logged:\n%s", r.logs.String())
	}
}

func TestReadyzStoreDown(t *testing.T) {
	st := newSQLite(t)
	h, err := New(Config{Listen: "127.0.0.1:0", URL: "http://127.0.0.1", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	req, _ := http.NewRequest("GET", "/readyz", nil)
	rec := &responseRecorder{header: http.Header{}}
	h.Handler().ServeHTTP(rec, req)
	if rec.code != http.StatusServiceUnavailable || strings.Contains(rec.body.String(), "sql") {
		t.Fatalf("/readyz with a closed store = %d %q", rec.code, rec.body.String())
	}
}

type responseRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header { return r.header }
func (r *responseRecorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

func TestJournalTrimmer(t *testing.T) {
	tests := []struct {
		name      string
		setting   string // journal-retention hub setting; "" = unset (default 7 days)
		ageDays   int    // how far the hub clock runs ahead of the journal entries
		wantTrims float64
		wantDays  float64 // retention in effect
	}{
		{name: "default retention keeps recent entries", ageDays: 1, wantTrims: 0, wantDays: 7},
		{name: "default retention trims old entries, keeps the head", ageDays: 8, wantTrims: 2, wantDays: 7},
		{name: "setting extends retention", setting: "30d", ageDays: 8, wantTrims: 0, wantDays: 30},
		{name: "setting shortens retention", setting: "2d", ageDays: 3, wantTrims: 2, wantDays: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := newSQLite(t)
			addUsers(t, st, "a", "b", "c")
			if tt.setting != "" {
				if _, err := SetSetting(ctx, st, "test", SettingJournalRetention, tt.setting); err != nil {
					t.Fatal(err)
				}
			}
			head, err := st.JournalHead(ctx)
			if err != nil || head < 3 {
				t.Fatalf("journal head %d, %v", head, err)
			}
			future := time.Now().Add(time.Duration(tt.ageDays) * 24 * time.Hour)
			r := serve(t, st, func() time.Time { return future })
			// The trimmer runs at start; its first pass sets the retention gauge.
			waitFor(t, fmt.Sprintf("retention %v days", tt.wantDays), func() bool {
				v, _ := metric(t, r.reg, "connect_hub_journal_retention_seconds", "")
				return v == tt.wantDays*24*3600
			})
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			v, _ := metric(t, r.reg, "connect_hub_journal_trimmed_total", "")
			if v != tt.wantTrims {
				t.Fatalf("trimmed %v, want %v", v, tt.wantTrims)
			}
			if h, _ := st.JournalHead(ctx); h != head {
				t.Errorf("journal head moved from %d to %d", head, h)
			}
		})
	}
}

func TestRun(t *testing.T) {
	st := newSQLite(t)
	h, err := New(Config{Listen: "127.0.0.1:0", URL: "http://127.0.0.1", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h, err = New(Config{Listen: busy.Addr().String(), URL: "http://127.0.0.1", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a taken port = %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Listen: "x", URL: ""})
	if err == nil || !strings.Contains(err.Error(), "store: not set") || !strings.Contains(err.Error(), "url: not set") {
		t.Fatalf("New = %v", err)
	}
}
