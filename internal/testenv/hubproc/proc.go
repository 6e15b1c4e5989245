package hubproc

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Log is a process's output: an io.Writer safe for the process and the test
// to share.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is the number of bytes written so far.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// Options tune Start.
type Options struct {
	// Group runs the process in a process group of its own and signals the
	// group (for servers that fork workers: apache2, php).
	Group bool
	// Stop is the signal that asks the process to stop (default os.Interrupt,
	// as Ctrl-C does); it is killed Grace later (default 10 s).
	Stop  os.Signal
	Grace time.Duration
	// MustStop fails the test when the process does not stop within Grace.
	MustStop bool
	// Log, when set, receives the output (a restarted process keeps one log).
	Log *Log
	// LogFile, when set, is where the process writes its log itself: its
	// stdio is not connected (no child of it can hold the test's output open)
	// and the file is printed when the test fails.
	LogFile string
}

// Proc is a running process whose output is kept.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Log is the output (nil with Options.LogFile).
	Log *Log

	tb   testing.TB
	o    Options
	from int // where this process's output starts in Log
	done chan struct{}
	err  error
	stop sync.Once
}

// Start starts cmd, stops it when tb ends and prints its output if tb failed.
// A child process dies with the test binary (Linux), even when a test timeout
// panics before cleanups run.
func Start(tb testing.TB, name string, cmd *exec.Cmd, o Options) *Proc {
	tb.Helper()
	if o.Stop == nil {
		o.Stop = os.Interrupt
	}
	if o.Grace == 0 {
		o.Grace = 10 * time.Second
	}
	p := &Proc{Name: name, Cmd: cmd, tb: tb, o: o, done: make(chan struct{})}
	if o.LogFile == "" {
		p.Log = o.Log
		if p.Log == nil {
			p.Log = &Log{}
		}
		p.from = p.Log.Len()
		cmd.Stdout, cmd.Stderr = p.Log, p.Log
		if cmd.WaitDelay == 0 {
			// A child of the process may hold the output pipe open after the
			// process is gone; Wait must not wait for it.
			cmd.WaitDelay = 5 * time.Second
		}
	}
	setProcAttr(cmd, o.Group)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, p.output(p.from))
		}
	})
	return p
}

// Output returns what the process wrote (with Options.LogFile, the file).
func (p *Proc) Output() string { return p.output(0) }

func (p *Proc) output(from int) string {
	if p.o.LogFile != "" {
		b, _ := os.ReadFile(p.o.LogFile)
		return string(b)
	}
	s := p.Log.String()
	if from > len(s) {
		from = 0
	}
	return s[from:]
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0); it is valid once
// Done is closed.
func (p *Proc) Err() error { return p.err }

// Stop asks the process to stop (Options.Stop) and waits for it; it kills it
// after Options.Grace. It may be called more than once.
func (p *Proc) Stop() {
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		signal(p.Cmd, p.o.Group, p.o.Stop)
		select {
		case <-p.done:
		case <-time.After(p.o.Grace):
			if p.o.MustStop {
				p.tb.Errorf("%s did not stop %v after %v", p.Name, p.o.Grace, p.o.Stop)
			}
			signal(p.Cmd, p.o.Group, syscall.SIGKILL)
			<-p.done
		}
	})
}

// Kill ends the process at once (a crash, a host gone) and waits for it.
func (p *Proc) Kill() {
	signal(p.Cmd, p.o.Group, syscall.SIGKILL)
	<-p.done
}

// WaitHTTP waits until url answers 200; it fails tb, with the output, when the
// process exits first or d passes.
func (p *Proc) WaitHTTP(tb testing.TB, url string, d time.Duration) {
	tb.Helper()
	waitHTTP(tb, p.Name+" at "+url, url, d, p.Output, p.done)
}

// WaitLine waits until a line of the output matches re and returns the
// match's last group (the whole match when re has none); it fails tb, with the
// output, when the process exits first or d passes.
func (p *Proc) WaitLine(tb testing.TB, re *regexp.Regexp, d time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		out := p.output(p.from)
		if !exited {
			// Only whole lines: the rest may still be being written.
			out = out[:strings.LastIndexByte(out, '\n')+1]
		}
		for _, line := range strings.Split(out, "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				return m[len(m)-1]
			}
		}
		switch {
		case exited:
			tb.Fatalf("%s exited before it was ready (%v):\n%s", p.Name, p.err, out)
		case time.Now().After(deadline):
			tb.Fatalf("%s not ready after %v:\n%s", p.Name, d, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitHTTP waits until url answers 200; it fails tb with logs() after d.
func WaitHTTP(tb testing.TB, url string, d time.Duration, logs func() string) {
	tb.Helper()
	waitHTTP(tb, url, url, d, logs, nil)
}

var probe = &http.Client{Timeout: 2 * time.Second}

func waitHTTP(tb testing.TB, what, url string, d time.Duration, logs func() string, exited <-chan struct{}) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-exited:
			tb.Fatalf("%s: the process exited: %v\n%s", what, err, logs())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not answer: %v\n%s", what, err, logs())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// WaitListening waits until something accepts TCP connections on addr.
func WaitListening(tb testing.TB, addr string, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
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

// FreeAddr returns ip:port with a port that was free a moment ago.
func FreeAddr(tb testing.TB, ip string) string {
	tb.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(tb, "127.0.0.1"))
	var n int
	if _, err := fmt.Sscan(port, &n); err != nil {
		tb.Fatal(err)
	}
	return n
}
