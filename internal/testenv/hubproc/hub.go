package hubproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// HubOptions tune StartHub.
type HubOptions struct {
	// DSN is the store; "" is a fresh SQLite file in tb.TempDir().
	DSN string
	// IP is the loopback address to listen on (default 127.0.0.1).
	IP string
	// AdminName names the read-write admin token (default "admin").
	AdminName string
	// Settings are `hub settings set` arguments (key=value) applied first.
	Settings []string
	// Args are more `hub serve` flags.
	Args []string
	// LogLevel is --log-level; "" leaves the default.
	LogLevel string
	// StoreEnv passes the store as CONNECT_HUB_STORE (to the server and to
	// every command run through the Hub) instead of --store.
	StoreEnv bool
}

// Hub is a running `connect hub serve`.
type Hub struct {
	*Proc
	// Addr is where it listens; Base is http://Addr; SCIM is Base+"/scim/v2".
	Addr, Base, SCIM string
	DSN              string
	// Admin is a read-write admin token.
	Admin string

	bin  string
	o    HubOptions
	args []string
}

// StartHub runs `connect hub serve` on a free port with a store and an admin
// token made by the CLI, and returns once /healthz answers 200.
func StartHub(tb testing.TB, o HubOptions) *Hub {
	tb.Helper()
	if o.DSN == "" {
		o.DSN = "sqlite:" + filepath.Join(tb.TempDir(), "hub.db")
	}
	if o.AdminName == "" {
		o.AdminName = "admin"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	h := &Hub{bin: Binary(tb), DSN: o.DSN, o: o}
	h.Admin = h.Token(tb, o.AdminName)
	for _, s := range o.Settings {
		h.Command(tb, append(append([]string{"hub", "settings", "set"}, h.storeFlag()...), s)...)
	}
	h.Addr = FreeAddr(tb, o.IP)
	h.Base = "http://" + h.Addr
	h.SCIM = h.Base + "/scim/v2"
	h.args = append([]string{"hub", "serve", "--listen", h.Addr, "--url", h.Base}, h.storeFlag()...)
	if o.LogLevel != "" {
		h.args = append(h.args, "--log-level", o.LogLevel)
	}
	h.args = append(h.args, o.Args...)
	h.start(tb, nil)
	return h
}

func (h *Hub) start(tb testing.TB, log *Log) {
	tb.Helper()
	cmd := exec.Command(h.bin, h.args...)
	if env := h.env(); env != nil {
		cmd.Env = append(cmd.Environ(), env...)
	}
	h.Proc = Start(tb, "hub", cmd, Options{Log: log})
	h.WaitHTTP(tb, h.Base+"/healthz", 30*time.Second)
}

// Restart stops the hub and starts it again on the same store and address,
// appending to the same log.
func (h *Hub) Restart(tb testing.TB) {
	tb.Helper()
	h.Stop()
	h.start(tb, h.Log)
}

func (h *Hub) storeFlag() []string {
	if h.o.StoreEnv {
		return nil
	}
	return []string{"--store", h.DSN}
}

func (h *Hub) env() []string {
	if h.o.StoreEnv {
		return []string{"CONNECT_HUB_STORE=" + h.DSN}
	}
	return nil
}

// Token creates an API token on the hub's store (`hub tokens create --name
// name flags…`, e.g. "--read-only") and returns it.
func (h *Hub) Token(tb testing.TB, name string, flags ...string) string {
	tb.Helper()
	out := h.Command(tb, append(append(append([]string{"hub", "tokens", "create"}, h.storeFlag()...), "--name", name), flags...)...)
	if out == "" || strings.Contains(out, "\n") {
		tb.Fatalf("tokens create printed %q, want one token line", out)
	}
	return out
}

// Run runs the connect binary (with the hub's store in the environment under
// HubOptions.StoreEnv) and returns its standard output.
func (h *Hub) Run(stdin string, args ...string) (string, error) {
	return run(h.bin, h.env(), stdin, args...)
}

// Command runs the connect binary and returns its trimmed standard output; a
// failure fails tb.
func (h *Hub) Command(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := h.Run("", args...)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// Do sends a SCIM request (path under /scim/v2) with the admin token, checks
// the status (want; 0 for any 2xx) and decodes the answer into out (when not
// nil).
func (h *Hub) Do(method, path string, body, out any, want int) error {
	return Request(method, h.SCIM+path, h.Admin, body, out, want)
}

// Call is Do that fails tb.
func (h *Hub) Call(tb testing.TB, method, path string, body, out any, want int) {
	tb.Helper()
	if err := h.Do(method, path, body, out, want); err != nil {
		tb.Fatal(err)
	}
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// Request sends a SCIM request to url with a bearer token, checks the status
// (want; 0 for any 2xx) and decodes the answer into out (when not nil).
func Request(method, url, token string, body, out any, want int) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if want == 0 && resp.StatusCode/100 != 2 || want != 0 && resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return nil
}

// Parallel runs f(0) … f(n-1), 8 at a time, and fails tb with the first
// error (in index order).
func Parallel(tb testing.TB, n int, f func(i int) error) {
	tb.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}
