package sso_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	_ "github.com/connectsso/connect/bridge/local/postgres" // registers the pgx driver
	"github.com/connectsso/connect/internal/testenv"
)

// privateRedis runs a redis-server of its own on a free port (nothing to
// clean in a shared one) and returns its redis:// URL.
func privateRedis(tb testing.TB) string {
	tb.Helper()
	bin := testenv.Binary(tb, "redis-server")
	addr := freeAddr(tb, "127.0.0.1")
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	for i := 0; ; i++ {
		if err := c.Ping(context.Background()).Err(); err == nil {
			break
		} else if i > 200 {
			tb.Fatalf("redis-server on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "redis://" + addr + "/0"
}

// front is the one public URL in front of the replicas (a load balancer):
// requests go to the replica named by the X-Replica header, else to the
// current default.
type front struct {
	*httptest.Server
	mu       sync.Mutex
	replicas map[string]*httputil.ReverseProxy
	def      atomic.Value // string
}

func newFront(tb testing.TB, addr string) *front {
	tb.Helper()
	f := &front{replicas: map[string]*httputil.ReverseProxy{}}
	f.def.Store("a")
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	f.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get("X-Replica")
		if name == "" {
			name = f.def.Load().(string)
		}
		f.mu.Lock()
		rp := f.replicas[name]
		f.mu.Unlock()
		if rp == nil {
			http.Error(w, "no replica "+name, http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	})}}
	f.Start()
	tb.Cleanup(f.Close)
	return f
}

func (f *front) add(name string, b *bridgeProc) {
	u, _ := url.Parse("http://" + b.addr)
	f.mu.Lock()
	f.replicas[name] = httputil.NewSingleHostReverseProxy(u)
	f.mu.Unlock()
}

// TestReplicas is acceptance 3 of issue 5: two `bridge serve` processes on
// one Redis and one PostgreSQL local store, behind one URL. A session made
// on one is valid on the other; a SAML response captured on its way to the
// ACS and sent again — to the other replica, or to both at once — is
// refused.
func TestReplicas(t *testing.T) {
	t.Parallel()
	redis := privateRedis(t)
	store := testenv.PostgresSchema(t)
	h := startHub(t, hubOpts{})
	alice := h.user(t, "alice", "alice-pw")
	publicAddr := freeAddr(t, "127.0.0.1")
	public := "http://" + publicAddr
	a := startReplica(t, public, store, redis)
	b := startReplica(t, public, store, redis)
	f := newFront(t, publicAddr)
	f.add("a", a)
	f.add("b", b)
	server := connectHub(t, h, a)
	acct := a.waitAccount(t, alice.ID)

	// A session made on a is valid on b.
	br := newBrowser(t)
	f.def.Store("a")
	if r := br.login(public, "alice", "alice-pw"); r.status != http.StatusSeeOther {
		t.Fatalf("login on a: %d %s", r.status, r.page)
	}
	f.def.Store("b")
	if resp := br.auth(public); resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Connect-User") != acct.Username {
		t.Fatalf("a's session on b: %d %v", resp.StatusCode, resp.Header)
	}

	// Replays: the hub's answer is captured on its way to the ACS, with the
	// browser's pending-request cookie, and sent again.
	capture := func() (string, url.Values, []*http.Cookie) {
		t.Helper()
		f.def.Store("a")
		// The hub session answers without asking for the password.
		resp, answer := br.get(public+"/saml/login?hub="+server+"&rd=%2Fapp", true)
		if !strings.Contains(answer, `name="SAMLResponse"`) {
			t.Fatalf("no SAML response: %d %s", resp.StatusCode, answer)
		}
		action, fields := form(t, answer)
		acs, _ := resp.Request.URL.Parse(action)
		return acs.String(), fields, br.c.Jar.Cookies(acs)
	}
	post := func(replica, acs string, fields url.Values, cookies []*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, acs, strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Replica", replica)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		return newBrowser(t).do(req, false)
	}

	acs, fields, cookies := capture()
	if resp, body := post("a", acs, fields, cookies); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use on a: %d %s", resp.StatusCode, body)
	}
	if resp, body := post("b", acs, fields, cookies); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("replay on b: %d %s", resp.StatusCode, body)
	}

	// The same answer at both replicas at the same moment: one wins.
	acs, fields, cookies = capture()
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(name, acs, fields, cookies)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if won := fmt.Sprint(codes); won != fmt.Sprint([]int{303, 400}) && won != fmt.Sprint([]int{400, 303}) {
		t.Fatalf("one answer posted to both replicas at once: %v, want one 303 and one 400", codes)
	}
}
