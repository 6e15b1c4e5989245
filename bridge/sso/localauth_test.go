package sso_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/local/sqlite"
	"github.com/connectsso/connect/bridge/sso"
	redisstate "github.com/connectsso/connect/bridge/state/redis"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim/password"
)

// TestLocalLoginThrottleShared: two bridge replicas sharing Redis (and the
// local directory) together let through only the configured number of failed
// local logins of an account, and from an address — not that number each
// (DESIGN.md §8). Each replica's own in-process count stays below the limit
// here, so only the shared count can refuse.
func TestLocalLoginThrottleShared(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1"
	ctx := context.Background()
	redisURL := privateRedis(t)
	dbPath := filepath.Join(t.TempDir(), "bridge.db")
	replica := func(name string) *httptest.Server {
		t.Helper()
		dir, err := sqlite.Open(ctx, "sqlite:"+dbPath, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dir.Close() })
		st, err := redisstate.Open(ctx, redisURL, redisstate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		eng, err := bridge.New(bridge.Config{Target: dir, Records: dir, State: st})
		if err != nil {
			t.Fatal(err)
		}
		b, err := sso.New(ctx, sso.Config{BaseURL: base, Dir: dir, Records: dir, State: st, Sync: eng,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			Tune: func(c *sp.Config) {
				c.LocalAccountLimit, c.LocalAddressLimit, c.LocalWindow = 3, 4, time.Minute
			}})
		if err != nil {
			t.Fatalf("replica %s: %v", name, err)
		}
		srv := httptest.NewServer(b.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	a := replica("a")
	b := replica("b")

	dir, err := sqlite.Open(ctx, "sqlite:"+dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	for _, name := range []string{"alice", "bob"} {
		hash, err := password.Hash(name + "-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := local.PutAccount(ctx, dir, local.Put{Account: local.Account{Username: name, Auth: local.AuthManual, PasswordHash: hash}}); err != nil {
			t.Fatal(err)
		}
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(a.URL + sp.PathLogin)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var csrf string
	for _, c := range jar.Cookies(mustURL(t, a.URL)) {
		if strings.Contains(c.Name, "csrf") {
			csrf = c.Value
		}
	}
	if csrf == "" {
		t.Fatalf("no CSRF cookie from the login page: %v", jar.Cookies(mustURL(t, a.URL)))
	}
	login := func(srv *httptest.Server, from, user, pw string) int {
		t.Helper()
		form := url.Values{"username": {user}, "password": {pw}, "csrf": {csrf}, "rd": {"/"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+sp.PathLogin, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", from)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	want := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: HTTP %d, want %d", what, got, want)
		}
	}

	// Per account: 3 failures, spread over the replicas (2 on a, 1 on b).
	want("alice wrong on a", login(a, "198.51.100.1", "alice", "nope"), http.StatusUnauthorized)
	want("alice wrong on b", login(b, "198.51.100.2", "ALICE", "nope"), http.StatusUnauthorized)
	want("alice wrong on a", login(a, "198.51.100.3", "alice", "nope"), http.StatusUnauthorized)
	want("alice right on b after 3 failures in all", login(b, "198.51.100.4", "alice", "alice-pw"), http.StatusUnauthorized)
	want("alice right on a after 3 failures in all", login(a, "198.51.100.5", "alice", "alice-pw"), http.StatusUnauthorized)
	want("bob is another account", login(b, "198.51.100.6", "bob", "bob-pw"), http.StatusSeeOther)
	// A success clears the account's count.
	want("bob wrong on a", login(a, "198.51.100.7", "bob", "nope"), http.StatusUnauthorized)
	want("bob wrong on b", login(b, "198.51.100.8", "bob", "nope"), http.StatusUnauthorized)
	want("bob right on a", login(a, "198.51.100.9", "bob", "bob-pw"), http.StatusSeeOther)
	want("bob wrong on b", login(b, "198.51.100.10", "bob", "nope"), http.StatusUnauthorized)
	want("bob wrong on a", login(a, "198.51.100.11", "bob", "nope"), http.StatusUnauthorized)
	want("bob right on b: 2 failures since the success", login(b, "198.51.100.12", "bob", "bob-pw"), http.StatusSeeOther)

	// Per address: 4 failures from one address, over several names.
	const from = "203.0.113.7"
	for i, user := range []string{"u1", "u2", "u3", "u4"} {
		want("unknown user", login([]*httptest.Server{a, b}[i%2], from, user, "nope"), http.StatusUnauthorized)
	}
	want("bob right on a from an address with 4 failures", login(a, from, "bob", "bob-pw"), http.StatusUnauthorized)
	want("bob right on b from an address with 4 failures", login(b, from, "bob", "bob-pw"), http.StatusUnauthorized)
	want("bob right on b from another address", login(b, "203.0.113.8", "bob", "bob-pw"), http.StatusSeeOther)
}

// TestLocalAuthThrottleConcurrent: guesses sent at once to two replicas
// (separate Redis connections) reach the password check exactly the
// configured number of times.
func TestLocalAuthThrottleConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redisURL := privateRedis(t)
	dbPath := filepath.Join(t.TempDir(), "bridge.db")
	var replicas []*sso.LocalAuth
	for range 2 {
		dir, err := sqlite.Open(ctx, "sqlite:"+dbPath, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dir.Close() })
		st, err := redisstate.Open(ctx, redisURL, redisstate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		replicas = append(replicas, &sso.LocalAuth{Dir: dir, Accounts: &sso.Accounts{Dir: dir, Clock: time.Now},
			Reachable: func(context.Context, string) bool { return true },
			Attempts:  st, AccountLimit: 5, AddressLimit: -1, Window: time.Minute})
	}
	hash, err := password.Hash("carol-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := local.PutAccount(ctx, replicas[0].Dir, local.Put{Account: local.Account{Username: "carol", Auth: local.AuthManual, PasswordHash: hash}}); err != nil {
		t.Fatal(err)
	}
	const guesses = 30
	var (
		wg      sync.WaitGroup
		checked atomic.Int32
	)
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := replicas[i%2].Authenticate(ctx, "carol", "guess")
			if !errors.Is(err, sp.ErrInvalid) {
				t.Errorf("guess: %v, want ErrInvalid", err)
			}
			if errors.Is(err, local.ErrAuthFailed) {
				checked.Add(1) // the password was checked (and was wrong)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := checked.Load(); got != 5 {
		t.Errorf("%d of %d concurrent guesses were checked, want exactly the limit 5", got, guesses)
	}
	if _, err := replicas[1].Authenticate(ctx, "carol", "carol-pw"); !errors.Is(err, sp.ErrInvalid) {
		t.Errorf("right password after the limit: %v, want ErrInvalid", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
