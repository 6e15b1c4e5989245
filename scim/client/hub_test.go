package client_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectsso/connect/scim"
)

// The hub these tests talk to is the real `connect hub serve` process, built once
// per test binary.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func connectBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "connect-client-test")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "connect")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/connectsso/connect/cmd/connect").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// hub is a running hub process.
type hub struct {
	base  string // http://host:port
	token string // admin (read-write) token
}

func (h hub) scimURL() string { return h.base + "/scim/v2" }

// startHub runs `connect hub serve` on a fresh SQLite store.
func startHub(tb testing.TB) hub {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a hub process")
	}
	bin := connectBinary(tb)
	dsn := "sqlite:" + filepath.Join(tb.TempDir(), "hub.db")
	out, err := exec.Command(bin, "hub", "tokens", "create", "--store", dsn, "--name", "test").Output()
	if err != nil {
		tb.Fatalf("tokens create: %v", err)
	}
	h := hub{token: strings.TrimSpace(string(out))}
	addr := freeAddr(tb)
	h.base = "http://" + addr
	var logs syncBuffer
	srv := exec.Command(bin, "hub", "serve", "--listen", addr, "--url", h.base, "--store", dsn, "--log-level", "warn")
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
		if tb.Failed() {
			tb.Logf("hub log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(h.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("hub did not become healthy: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var plain = &http.Client{Timeout: 30 * time.Second}

// do sends a SCIM request with the admin token and decodes the answer into out.
func (h hub) do(method, path string, body, out any, want int) error {
	rd := bytes.NewReader(nil)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.scimURL()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := plain.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw.String())
	}
	if out != nil {
		return json.Unmarshal(raw.Bytes(), out)
	}
	return nil
}

func (h hub) call(tb testing.TB, method, path string, body, out any, want int) {
	tb.Helper()
	if err := h.do(method, path, body, out, want); err != nil {
		tb.Fatal(err)
	}
}

func newUser(userName string) scim.User {
	return scim.User{Schemas: []string{scim.SchemaUser}, UserName: userName,
		Name:   &scim.Name{GivenName: "G " + userName, FamilyName: "F"},
		Emails: []scim.MultiValue{{Value: userName + "@example.org", Primary: true}}}
}

func (h hub) createUser(tb testing.TB, userName string) scim.User {
	tb.Helper()
	var out scim.User
	h.call(tb, http.MethodPost, "/Users", newUser(userName), &out, http.StatusCreated)
	return out
}

// createUsers creates n users named prefix0000… in parallel and returns them
// in name order.
func (h hub) createUsers(tb testing.TB, prefix string, n int) []scim.User {
	tb.Helper()
	out := make([]scim.User, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = h.do(http.MethodPost, "/Users", newUser(fmt.Sprintf("%s%04d", prefix, i)), &out[i], http.StatusCreated)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return out
}
