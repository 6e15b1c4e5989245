package scimtarget_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The connect binary is built once per test process.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

func connectBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "scimtarget-connect-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "connect")
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/connectsso/connect/cmd/connect")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build ./cmd/connect: %v\n%s", build.err, build.out)
	}
	return build.bin
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startHub runs a real `connect hub serve` on a fresh SQLite store (with
// sync-password-hashes on, so the hub stores and returns password hashes like a
// site application that keeps them) and returns its SCIM base URL and an admin
// token. The hub stops when t ends.
func startHub(t testing.TB) (scimBase, token string) {
	t.Helper()
	bin := connectBinary(t)
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "hub.db")
	out, err := exec.Command(bin, "hub", "tokens", "create", "--store", dsn, "--name", "bridge-target").Output()
	if err != nil {
		t.Fatalf("hub tokens create: %v", err)
	}
	token = strings.TrimSpace(string(out))
	if token == "" || strings.Contains(token, "\n") {
		t.Fatalf("tokens create printed %q, want one token line", out)
	}
	if out, err := exec.Command(bin, "hub", "settings", "set", "--store", dsn, "sync-password-hashes=true").CombinedOutput(); err != nil {
		t.Fatalf("hub settings set: %v\n%s", err, out)
	}
	srv := exec.Command(bin, "hub", "serve", "--listen", "127.0.0.1:0", "--store", dsn)
	pr, pw := io.Pipe()
	var logs bytes.Buffer
	var mu sync.Mutex
	srv.Stdout, srv.Stderr = pw, pw
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("hub log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logs.WriteString(line + "\n")
			mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		base := "http://" + a
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return base + "/scim/v2", token
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("hub at %s did not become healthy: %v", base, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case <-done:
		t.Fatal("hub exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("hub did not report its address")
	}
	return "", ""
}
