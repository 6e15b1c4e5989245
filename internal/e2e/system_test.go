package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
)

// The connect binary, built once for every test of the package.
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

// connectBinary builds cmd/connect on first use.
func connectBinary(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "connect-e2e-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "connect")
		build.out, build.err = exec.Command("go", "build", "-o", build.bin, "github.com/connectsso/connect/cmd/connect").CombinedOutput()
	})
	if build.err != nil {
		tb.Fatalf("go build ./cmd/connect: %v\n%s", build.err, build.out)
	}
	return build.bin
}

// proc is a running connect process whose stderr (the log) is kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer // stdout and stderr lines, in order
	wait error
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProc runs the connect binary with args and returns once a line of its
// output matches ready (its first group is returned).
func startProc(tb testing.TB, name string, ready *regexp.Regexp, args ...string) (*proc, string) {
	tb.Helper()
	p := &proc{name: name, cmd: exec.Command(connectBinary(tb), args...), done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[len(m)-1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		p.wait = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop(tb)
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, p.output())
		}
	})
	select {
	case v := <-found:
		return p, v
	case <-p.done:
		tb.Fatalf("%s exited before it was ready (%v):\n%s", name, p.wait, p.output())
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s not ready after 30 s:\n%s", name, p.output())
	}
	return nil, ""
}

// stop interrupts the process (as Ctrl-C does) and waits for it.
func (p *proc) stop(tb testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		tb.Errorf("%s did not stop 15 s after SIGINT", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// runCLI runs one connect admin command and returns its stdout; a failure
// fails the test.
func runCLI(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(connectBinary(tb), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		tb.Fatalf("connect %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx renders deploy/nginx's shipped location and proxy includes into a
// temporary prefix with the two upstreams and a listener on port, and runs
// nginx in the foreground until the test ends. It is the same template as
// deploy/nginx's own test.
func startNginx(tb testing.TB, port int, bridge, site string) {
	tb.Helper()
	bin := testenv.Binary(tb, "nginx")
	dir := tb.TempDir()
	for _, f := range []string{"connect-locations.conf", "connect-proxy.conf"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nginx", f))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read and write the temporary prefix
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream connect_bridge { server %[3]s; keepalive 8; }
    upstream connect_site { server %[4]s; keepalive 8; }
    server {
        listen 127.0.0.1:%[5]d;
        server_name localhost;
        client_max_body_size 1m;
        include connect-locations.conf;
    }
}
`, user, dir, bridge, site, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", confPath, "-e", errLog).CombinedOutput(); err != nil {
		tb.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", errLog)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// SIGTERM: the master stops its worker before it exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if tb.Failed() {
			b, _ := os.ReadFile(errLog)
			tb.Logf("nginx error.log:\n%s", b)
		}
	})
	waitListening(tb, fmt.Sprintf("127.0.0.1:%d", port))
}

func waitListening(tb testing.TB, addr string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scim sends one SCIM request with the admin token and decodes the answer
// into out (when not nil).
func scim(tb testing.TB, method, url, token string, body, out any) {
	tb.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
}
