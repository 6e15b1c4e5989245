package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv/hubproc"
)

// The connect binary, built once for every test of the package.
func TestMain(m *testing.M) { hubproc.Main(m) }

// proc is a running connect process whose output (the log) is kept.
type proc struct {
	*hubproc.Proc
	wait error // the exit error, once stopped
}

func (p *proc) output() string { return p.Output() }

// startProc runs the connect binary with args and returns once a line of its
// output matches ready (its first group is returned).
func startProc(tb testing.TB, name string, ready *regexp.Regexp, args ...string) (*proc, string) {
	tb.Helper()
	p := &proc{Proc: hubproc.Start(tb, name, exec.Command(hubproc.Binary(tb), args...),
		hubproc.Options{Grace: 15 * time.Second, MustStop: true})}
	return p, p.WaitLine(tb, ready, 30*time.Second)
}

// stop interrupts the process (as Ctrl-C does) and waits for it; a process
// that does not stop 15 s after SIGINT fails the test.
func (p *proc) stop(testing.TB) {
	p.Stop()
	p.wait = p.Err()
}

// runCLI runs one connect admin command and returns its stdout; a failure
// fails the test.
func runCLI(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	return hubproc.MustRun(tb, stdin, args...)
}

var freePort = hubproc.FreePort

// startNginx runs deploy/nginx's shipped location and proxy includes with the
// two upstreams and a listener on port, as deploy/nginx's own test does.
func startNginx(tb testing.TB, port int, bridge, site string) {
	tb.Helper()
	hubproc.StartNginx(tb, hubproc.NginxOptions{Includes: filepath.Join("..", "..", "deploy", "nginx"),
		Port: port, Bridge: bridge, Site: site, Server: "client_max_body_size 1m;"})
}

// scim sends one SCIM request with the admin token and decodes the answer
// into out (when not nil).
func scim(tb testing.TB, method, url, token string, body, out any) {
	tb.Helper()
	if err := hubproc.Request(method, url, token, body, out, 0); err != nil {
		tb.Fatal(err)
	}
}
