package scimtarget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/scimtarget"
)

// faultProxy stands in front of a real hub: it forwards every request and
// records it, and answers with a fault instead while fault returns a status.
type faultProxy struct {
	mu    sync.Mutex
	reqs  []recorded
	fault func(r *http.Request, n int) (status int, header http.Header)
	n     int
}

type recorded struct {
	method, path string
	body         []byte
	faulted      bool
}

func newFaultProxy(t testing.TB, target string) (*faultProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		p.n++
		n := p.n
		var status int
		var hdr http.Header
		if p.fault != nil {
			status, hdr = p.fault(r, n)
		}
		p.reqs = append(p.reqs, recorded{method: r.Method, path: r.URL.Path, body: body, faulted: status != 0})
		p.mu.Unlock()
		if status != 0 {
			for k, v := range hdr {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL + u.Path
}

func (p *faultProxy) setFault(f func(r *http.Request, n int) (int, http.Header)) {
	p.mu.Lock()
	p.fault, p.reqs, p.n = f, nil, 0
	p.mu.Unlock()
}

func (p *faultProxy) requests() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.reqs...)
}

// sleeps records the waits of a Target instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func connectUser(i int) local.Account {
	return local.Account{
		Username: fmt.Sprintf("tc%04d", i), Auth: local.AuthConnect, Server: "hub-1",
		HubUserID: fmt.Sprintf("hub-user-%04d", i), Email: fmt.Sprintf("u%d@example.com", i), GivenName: "G", FamilyName: "F",
	}
}

func TestRetries(t *testing.T) {
	base, token := startHub(t)
	proxy, purl := newFaultProxy(t, base)
	var sl sleeps
	var retried, throttled int
	var mu sync.Mutex
	tg := newTarget(t, scimtarget.Config{
		BaseURL: purl, Token: token, Extension: true, Metadata: true, MaxRetries: 3, MaxRetryWait: 30 * time.Second,
		Sleep: sl.sleep,
		OnRetry: func(kind string) {
			mu.Lock()
			defer mu.Unlock()
			if kind == "retried" {
				retried++
			} else {
				throttled++
			}
		},
	})
	ctx := context.Background()
	tests := []retryCase{
		{
			name: "429 with Retry-After seconds",
			fault: func(r *http.Request, n int) (int, http.Header) {
				if n <= 2 {
					return http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}
				}
				return 0, nil
			},
			wantWaits: []time.Duration{7 * time.Second, 7 * time.Second},
		},
		{
			name: "429 Retry-After beyond the cap",
			fault: func(r *http.Request, n int) (int, http.Header) {
				if n == 1 {
					return http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}}
				}
				return 0, nil
			},
			wantWaits: []time.Duration{30 * time.Second},
		},
		{
			name: "503 then success",
			fault: func(r *http.Request, n int) (int, http.Header) {
				if n <= 3 {
					return http.StatusServiceUnavailable, nil
				}
				return 0, nil
			},
			waits: 3,
		},
		{
			name:    "500 forever",
			fault:   func(r *http.Request, n int) (int, http.Header) { return http.StatusInternalServerError, nil },
			wantErr: local.ErrUnavailable,
			waits:   3,
		},
		{
			name:    "401 is not retried",
			fault:   func(r *http.Request, n int) (int, http.Header) { return http.StatusUnauthorized, nil },
			wantErr: local.ErrUnavailable,
			waits:   0,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl = sleeps{}
			proxy.setFault(tt.fault)
			a := connectUser(i)
			rs, err := tg.PutAccounts(ctx, []local.Put{{Account: a, Fields: local.SyncFields}})
			proxy.setFault(nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("PutAccounts error %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || rs[0].Err != nil {
				t.Fatalf("PutAccounts: %v %v", err, rs)
			}
			got := sl.all()
			if tt.wantWaits != nil {
				if fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
					t.Fatalf("waits %v, want %v", got, tt.wantWaits)
				}
			} else if len(got) != tt.waits {
				t.Fatalf("%d waits (%v), want %d", len(got), got, tt.waits)
			}
			for _, w := range got {
				if w <= 0 || w > 30*time.Second {
					t.Fatalf("wait %v out of (0, 30s]", w)
				}
			}
			if tt.wantErr == nil {
				// Exactly one account for the hub user, whatever was retried.
				n, err := tg.CountAccounts(ctx, local.AccountQuery{Server: "hub-1"})
				if err != nil || n != int64(countOK(tests[:i+1])) {
					t.Fatalf("CountAccounts = %d, %v; want %d", n, err, countOK(tests[:i+1]))
				}
			}
		})
	}
	if throttled != 3 || retried != 2+1+3+3 {
		t.Fatalf("OnRetry: throttled %d, retried %d", throttled, retried)
	}
}

// retryCase is one fault of TestRetries.
type retryCase struct {
	name      string
	fault     func(r *http.Request, n int) (int, http.Header)
	wantErr   error
	wantWaits []time.Duration // exact waits; nil means only count them
	waits     int
}

// countOK counts the cases that end with an account written.
func countOK(cases []retryCase) int {
	n := 0
	for _, c := range cases {
		if c.wantErr == nil {
			n++
		}
	}
	return n
}

// TestCreateRetriedAfterLostReply: the target created the user but the answer
// was lost (a 502 from a proxy after the write). The retry's POST gets 409, the
// Target finds the user by its key and reports no error and no duplicate.
func TestCreateRetriedAfterLostReply(t *testing.T) {
	base, token := startHub(t)
	proxy, purl := newFaultProxy(t, base)
	var sl sleeps
	tg := newTarget(t, scimtarget.Config{BaseURL: purl, Token: token, Extension: true, Metadata: true, Sleep: sl.sleep})
	direct := newTarget(t, scimtarget.Config{BaseURL: base, Token: token, Extension: true, Metadata: true})
	a := connectUser(1)
	if _, _, err := local.PutAccount(context.Background(), direct, local.Put{Account: a, Fields: local.SyncFields}); err != nil {
		t.Fatal(err)
	}
	// The first POST reaches the hub, which writes the user, but its answer is
	// lost: the proxy answers 502.
	b := connectUser(2)
	var once sync.Once
	proxy.setFault(func(r *http.Request, n int) (int, http.Header) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Users") {
			fire := false
			once.Do(func() { fire = true })
			if fire {
				// Let the write happen, then lose the answer.
				body, _ := io.ReadAll(r.Body)
				req, _ := http.NewRequest(http.MethodPost, base+"/Users", bytes.NewReader(body))
				req.Header = r.Header.Clone()
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				return http.StatusBadGateway, nil
			}
		}
		return 0, nil
	})
	rs, err := tg.PutAccounts(context.Background(), []local.Put{{Account: b, Fields: local.SyncFields}})
	if err != nil || rs[0].Err != nil {
		t.Fatalf("PutAccounts: %v %+v", err, rs)
	}
	n, err := direct.CountAccounts(context.Background(), local.AccountQuery{Server: "hub-1"})
	if err != nil || n != 2 {
		t.Fatalf("%d accounts, %v; want 2 (no duplicate after a lost reply)", n, err)
	}
	got, err := direct.AccountByHubID(context.Background(), "hub-1", b.HubUserID)
	if err != nil || got.ID != rs[0].Account.ID {
		t.Fatalf("AccountByHubID = %s, %v; want %s", got.ID, err, rs[0].Account.ID)
	}
}

// TestMembersChunkedPatch checks the wire: member changes travel as PATCH
// requests of at most MemberChunk members, and no group is ever PUT.
func TestMembersChunkedPatch(t *testing.T) {
	base, token := startHub(t)
	proxy, purl := newFaultProxy(t, base)
	tg := newTarget(t, scimtarget.Config{BaseURL: purl, Token: token, Extension: true, Metadata: true, MemberChunk: 40})
	ctx := context.Background()
	var ids []string
	for i := 0; i < 250; i += 50 {
		var puts []local.Put
		for j := i; j < i+50; j++ {
			puts = append(puts, local.Put{Account: connectUser(j), Fields: local.SyncFields})
		}
		rs, err := tg.PutAccounts(ctx, puts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ids = append(ids, r.Account.ID)
		}
	}
	g, _, err := tg.PutGroup(ctx, local.ActorConnect, local.Group{Name: "Course", Kind: local.KindCourse, Server: "hub-1", HubGroupID: "c1", Locked: true})
	if err != nil {
		t.Fatal(err)
	}
	proxy.setFault(nil) // resets the record
	added, removed, err := tg.SetMembers(ctx, local.ActorConnect, g.ID, ids[:200])
	if err != nil || added != 200 || removed != 0 {
		t.Fatalf("SetMembers = +%d -%d, %v", added, removed, err)
	}
	added, removed, err = tg.SetMembers(ctx, local.ActorConnect, g.ID, ids[50:])
	if err != nil || added != 50 || removed != 50 {
		t.Fatalf("second SetMembers = +%d -%d, %v", added, removed, err)
	}
	// Renaming the group is a PATCH of its attributes too.
	g.Name = "Course (renamed)"
	if _, op, err := tg.PutGroup(ctx, local.ActorConnect, g); err != nil || op != local.OpUpdated {
		t.Fatalf("rename: %s %v", op, err)
	}
	patches := 0
	for _, r := range proxy.requests() {
		if strings.Contains(r.path, "/Groups") && r.method == http.MethodPut {
			t.Fatalf("a group was PUT: %s", r.path)
		}
		if r.method != http.MethodPatch {
			continue
		}
		patches++
		var body struct {
			Operations []struct {
				Op    string            `json:"op"`
				Path  string            `json:"path"`
				Value []json.RawMessage `json:"value"`
			} `json:"Operations"`
		}
		_ = json.Unmarshal(r.body, &body)
		members := 0
		for _, op := range body.Operations {
			switch {
			case op.Op == "add" && op.Path == "members":
				members += len(op.Value)
			case op.Op == "remove" && strings.HasPrefix(op.Path, "members["):
				members++
			}
		}
		if members > 40 {
			t.Fatalf("one PATCH carried %d member changes, chunk is 40", members)
		}
	}
	// 200 adds = 5 chunks; then 50 adds = 2 and 50 removes = 2; the rename = 1.
	if patches != 5+2+2+1 {
		t.Fatalf("%d PATCH requests, want 10", patches)
	}
	got, _, err := tg.GroupMembers(ctx, g.ID, "", 1000)
	if err != nil || len(got) != 200 {
		t.Fatalf("GroupMembers: %d, %v", len(got), err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  scimtarget.Config
		want []string
	}{
		{"ok", scimtarget.Config{BaseURL: "https://app.example/scim/v2", Token: "t"}, nil},
		{"loopback http", scimtarget.Config{BaseURL: "http://127.0.0.1:8080/scim/v2", Token: "t"}, nil},
		{"everything wrong", scimtarget.Config{BaseURL: "http://app.example/scim", Metadata: true, MemberChunk: 5000},
			[]string{"plain http", "token is empty", "need the Connect extension", "member chunk"}},
		{"no url", scimtarget.Config{Token: "t"}, []string{"base URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q lacks %q", err, w)
				}
			}
		})
	}
}
