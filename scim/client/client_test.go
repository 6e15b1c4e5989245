package client_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/client"
)

// faultProxy is a reverse proxy in front of the hub that injects faults into
// listing requests (GET /scim/v2/Users and /Groups, counted from 1 including
// retries).
type faultProxy struct {
	*httptest.Server
	target *url.URL
	rp     *httputil.ReverseProxy
	conns  atomic.Int64
	lists  atomic.Int64
	mu     sync.Mutex
	fault  func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newFaultProxy(tb testing.TB, h hub) *faultProxy {
	tb.Helper()
	u, _ := url.Parse(h.base)
	p := &faultProxy{target: u, rp: httputil.NewSingleHostReverseProxy(u)}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	p.Start()
	tb.Cleanup(p.Close)
	return p
}

func (p *faultProxy) setFault(f func(w http.ResponseWriter, r *http.Request, n int) bool) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/scim/v2/Users" || r.URL.Path == "/scim/v2/Groups" {
		n := int(p.lists.Add(1))
		p.mu.Lock()
		f := p.fault
		p.mu.Unlock()
		if f != nil && f(w, r, n) {
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// fetch performs r against the hub and returns the decoded list page.
func (p *faultProxy) fetch(r *http.Request) map[string]any {
	u := *p.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, _ := http.NewRequest(r.Method, u.String(), nil)
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := plain.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		panic(err)
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	_ = json.NewEncoder(w).Encode(v)
}

// newClient returns a client of base with fast retries.
func newClient(tb testing.TB, base, token string, mod func(*client.Config)) *client.Client {
	tb.Helper()
	cfg := client.Config{BaseURL: base + "/scim/v2", Token: token, PageSize: 40,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func collect(ctx context.Context, c *client.Client, opts client.ListOptions) ([]string, client.ListStats, error) {
	var ids []string
	st, err := c.ListUsers(ctx, opts, func(us []scim.User) error {
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		return nil
	})
	return ids, st, err
}

func idsOf(us []scim.User) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	sort.Strings(ids)
	return ids
}

func sameIDs(tb testing.TB, got, want []string) {
	tb.Helper()
	g := append([]string(nil), got...)
	sort.Strings(g)
	if strings.Join(g, ",") != strings.Join(want, ",") {
		tb.Fatalf("listed %d ids, want %d (first differences hidden)", len(g), len(want))
	}
}

// TestListPaging lists 230 users of a real hub in pages of 40 with every paging
// method: each user exactly once.
func TestListPaging(t *testing.T) {
	h := startHub(t)
	want := idsOf(h.createUsers(t, "page", 230))
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		paging client.Paging
		cursor bool
	}{
		{"index", client.PagingIndex, false},
		{"cursor", client.PagingCursor, true},
		{"auto picks cursor", client.PagingAuto, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newFaultProxy(t, h)
			c := newClient(t, p.URL, h.token, nil)
			ids, st, err := collect(ctx, c, client.ListOptions{Paging: tt.paging})
			if err != nil {
				t.Fatal(err)
			}
			sameIDs(t, ids, want)
			if st.Pages != 6 || st.Total != 230 || st.Items != 230 || st.Cursor != tt.cursor {
				t.Fatalf("stats = %+v", st)
			}
			if n := p.conns.Load(); n != 1 {
				t.Fatalf("%d connections for one listing, want 1 (keep-alive)", n)
			}
		})
	}
}

// TestFaults injects failures at page k=3 of a 230-user listing.
func TestFaults(t *testing.T) {
	h := startHub(t)
	want := idsOf(h.createUsers(t, "fault", 230))
	ctx := context.Background()
	const k = 3
	status := func(code int, header map[string]string, times int) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n < k || n >= k+times {
				return false
			}
			for hk, hv := range header {
				w.Header().Set(hk, hv)
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"` + fmt.Sprint(code) + `"}`))
			return true
		}
	}
	tests := []struct {
		name    string
		paging  client.Paging
		fault   func(p *faultProxy) func(http.ResponseWriter, *http.Request, int) bool
		wantErr error // nil: the listing completes with every user
		minWait time.Duration
	}{
		{name: "500 twice then ok", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(500, nil, 2)
		}},
		{name: "503 always", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(503, nil, 1000)
		}, wantErr: client.ErrRetriesExhausted},
		{name: "429 Retry-After seconds", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(429, map[string]string{"Retry-After": "1"}, 1)
		}, minWait: time.Second},
		{name: "429 Retry-After date", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(429, map[string]string{"Retry-After": time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)}, 1)
		}, minWait: time.Second},
		{name: "429 Retry-After too long", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(429, map[string]string{"Retry-After": "86400"}, 1)
		}, wantErr: errStatus(429)},
		{name: "400 not retried", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return status(400, nil, 1)
		}, wantErr: errStatus(400)},
		{name: "timeout then ok", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n != k {
					return false
				}
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
				return true
			}
		}},
		{name: "connection dropped then ok", fault: func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n != k {
					return false
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return true
			}
		}},
		{name: "short page (index)", paging: client.PagingIndex, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			res := m["Resources"].([]any)
			m["Resources"] = res[:len(res)-5]
			m["itemsPerPage"] = len(res) - 5
		}), wantErr: client.ErrShortPage},
		{name: "short page (cursor)", paging: client.PagingCursor, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			res := m["Resources"].([]any)
			m["Resources"] = res[:len(res)-5]
		}), wantErr: client.ErrShortPage},
		{name: "short page lying itemsPerPage", paging: client.PagingIndex, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			res := m["Resources"].([]any)
			m["Resources"] = res[:len(res)-5]
			m["itemsPerPage"] = 40
		}), wantErr: client.ErrShortPage},
		{name: "empty page (index)", paging: client.PagingIndex, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			m["Resources"] = []any{}
			m["itemsPerPage"] = 0
		}), wantErr: client.ErrShortPage},
		{name: "empty last page (cursor)", paging: client.PagingCursor, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			m["Resources"] = []any{}
			delete(m, "nextCursor")
		}), wantErr: client.ErrShortPage},
		{name: "replayed page (index)", paging: client.PagingIndex, fault: pageFault(k, func(m map[string]any, prev map[string]any) {
			m["Resources"] = prev["Resources"]
		}), wantErr: client.ErrInconsistentPage},
		{name: "replayed page (cursor)", paging: client.PagingCursor, fault: pageFault(k, func(m map[string]any, prev map[string]any) {
			m["Resources"] = prev["Resources"]
		}), wantErr: client.ErrInconsistentPage},
		{name: "no totalResults", paging: client.PagingIndex, fault: pageFault(k, func(m map[string]any, _ map[string]any) {
			delete(m, "totalResults")
		}), wantErr: client.ErrInconsistentPage},
		{name: "gzip", fault: func(p *faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
			return func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.Header.Get("Accept-Encoding") != "gzip" {
					w.WriteHeader(400)
					return true
				}
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_ = json.NewEncoder(zw).Encode(p.fetch(r))
				_ = zw.Close()
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Content-Type", "application/scim+json")
				_, _ = w.Write(buf.Bytes())
				return true
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFaultProxy(t, h)
			p.setFault(tt.fault(p))
			var attempts atomic.Int64
			c := newClient(t, p.URL, h.token, func(cfg *client.Config) {
				cfg.Timeout = 500 * time.Millisecond
				cfg.MaxRetries = 3
				cfg.OnAttempt = func(client.Attempt) { attempts.Add(1) }
			})
			start := time.Now()
			ids, st, err := collect(ctx, c, client.ListOptions{Paging: tt.paging})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				sameIDs(t, ids, want)
				if took := time.Since(start); took < tt.minWait {
					t.Fatalf("took %v, want at least %v (Retry-After)", took, tt.minWait)
				}
				return
			}
			if !matches(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			// Never silently truncated: the pages before k arrived, nothing after.
			if st.Items >= len(want) || len(ids) != st.Items {
				t.Fatalf("items = %d of %d with err %v", st.Items, len(want), err)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("id %s passed twice", id)
				}
				seen[id] = true
			}
		})
	}
}

// pageFault rewrites the k-th list page (the decoded hub answer m; prev is the
// answer to page k-1).
func pageFault(k int, f func(m, prev map[string]any)) func(*faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
	return func(p *faultProxy) func(http.ResponseWriter, *http.Request, int) bool {
		var prev map[string]any
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			m := p.fetch(r)
			if n == k {
				f(m, prev)
			}
			prev = m
			writeJSON(w, m)
			return true
		}
	}
}

type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("status %d", int(e)) }

func matches(err, want error) bool {
	if s, ok := want.(errStatus); ok {
		var se *scim.Error
		return errors.As(err, &se) && se.Status == int(s)
	}
	return errors.Is(err, want)
}

// TestChanges reads the hub's Changes feed: head, upserts with the resource,
// removes, long-poll, and 410 expiredCursor as a typed error.
func TestChanges(t *testing.T) {
	h := startHub(t)
	ctx := context.Background()
	c := newClient(t, h.base, h.token, nil)
	head, err := c.Changes(ctx, "", 0, 0)
	if err != nil || len(head.Changes) != 0 || head.NextCursor == "" {
		t.Fatalf("head = %+v, %v", head, err)
	}
	u := h.createUser(t, "feed1")
	h.call(t, http.MethodDelete, "/Users/"+u.ID, nil, nil, http.StatusNoContent)
	pg, err := c.Changes(ctx, head.NextCursor, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Changes) != 2 || pg.Changes[0].ID != u.ID || pg.Changes[1].Op != scim.ChangeRemove {
		t.Fatalf("changes = %+v", pg.Changes)
	}
	// The upsert of a since-deleted user is reported as its removal.
	if pg.Changes[0].Op != scim.ChangeRemove {
		t.Fatalf("first change = %+v", pg.Changes[0])
	}

	// Long-poll: a change made while waiting ends the wait.
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.createUser(t, "feed2")
	}()
	start := time.Now()
	pg2, err := c.Changes(ctx, pg.NextCursor, 100, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg2.Changes) != 1 || pg2.Changes[0].User == nil || pg2.Changes[0].User.UserName != "feed2" {
		t.Fatalf("long-poll changes = %+v", pg2.Changes)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("long-poll took %v", took)
	}
	// Nothing new: the cursor stays.
	pg3, err := c.Changes(ctx, pg2.NextCursor, 100, 0)
	if err != nil || len(pg3.Changes) != 0 || pg3.NextCursor != pg2.NextCursor {
		t.Fatalf("idle = %+v, %v", pg3, err)
	}
	// A cursor the hub no longer serves.
	if _, err := c.Changes(ctx, "999999999", 100, 0); !errors.Is(err, client.ErrExpiredCursor) {
		t.Fatalf("future cursor: %v, want ErrExpiredCursor", err)
	}
}

// TestPlainServer: a SCIM server without Changes (404) or discovery pages by index.
func TestPlainServer(t *testing.T) {
	var users []map[string]any
	for i := range 7 {
		users = append(users, map[string]any{"id": fmt.Sprint("u", i), "userName": fmt.Sprint("user", i)})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/scim/v2/Users" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		if q.Has("cursor") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var start, count int
		fmt.Sscan(q.Get("startIndex"), &start)
		fmt.Sscan(q.Get("count"), &count)
		count = min(count, 3) // the server serves at most 3 per page
		from := min(start-1, len(users))
		to := min(from+count, len(users))
		writeJSON(w, map[string]any{"totalResults": len(users), "startIndex": start, "itemsPerPage": 3, "Resources": users[from:to]})
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, "tok", nil)
	ctx := context.Background()
	ids, st, err := collect(ctx, c, client.ListOptions{})
	if err != nil || len(ids) != 7 || st.Pages != 3 || st.Cursor {
		t.Fatalf("ids %v stats %+v err %v", ids, st, err)
	}
	if _, err := c.Changes(ctx, "", 10, 0); !errors.Is(err, client.ErrNoChangesFeed) {
		t.Fatalf("changes on a plain server: %v", err)
	}
}

// TestModifiedSince filters by meta.lastModified on the hub.
func TestModifiedSince(t *testing.T) {
	h := startHub(t)
	h.createUsers(t, "old", 5)
	time.Sleep(20 * time.Millisecond)
	var probe scim.User
	fresh := h.createUser(t, "fresh")
	h.call(t, http.MethodGet, "/Users/"+fresh.ID, nil, &probe, http.StatusOK)
	c := newClient(t, h.base, h.token, nil)
	ids, _, err := collect(context.Background(), c, client.ListOptions{Filter: client.ModifiedSince(probe.Meta.LastModified)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != fresh.ID {
		t.Fatalf("modified since: %v", ids)
	}
}

func TestUnauthorized(t *testing.T) {
	h := startHub(t)
	var attempts atomic.Int64
	c := newClient(t, h.base, "wrong", func(cfg *client.Config) {
		cfg.OnAttempt = func(a client.Attempt) {
			if a.Resource == "Users" {
				attempts.Add(1)
			}
		}
	})
	_, _, err := collect(context.Background(), c, client.ListOptions{Paging: client.PagingIndex})
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if attempts.Load() != 1 {
		t.Fatalf("%d attempts, want 1 (401 is not retried)", attempts.Load())
	}
	if _, err := c.GetUser(context.Background(), "x"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("get: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := client.Config{BaseURL: "ftp://x", PageSize: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"BaseURL", "Token", "PageSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
