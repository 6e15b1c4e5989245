package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildConnect builds cmd/connect of the module at root into dir.
func buildConnect(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "connect")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/connect")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build connect: %w", err)
	}
	return bin, nil
}

// moduleRoot is the directory of the go.mod that `go` sees from here.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the connect module (run from the repository)")
	}
	return filepath.Dir(gomod), nil
}

// connectCmd runs `connect args…` and returns its standard output.
func connectCmd(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("connect %s: %w\n%s", strings.Join(args, " "), err, tail(errb.String(), 2000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// hubProc is a running `connect hub serve`.
type hubProc struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	log  *os.File
	done chan error
}

// freePort asks the kernel for a free loopback port.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startHub starts the hub on dsn, logging to logPath, and waits until /readyz
// answers.
func startHub(ctx context.Context, bin, dsn, logPath string, extra ...string) (*hubProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The hub as an operator runs it: default log level (an access log line
	// per request), JSON logs to a file.
	args := append([]string{"hub", "serve", "--listen", addr, "--store", dsn, "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start hub: %w", err)
	}
	h := &hubProc{cmd: cmd, base: "http://" + addr, log: logf, done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Minute) // migrations on a large copy
	for {
		select {
		case err := <-h.done:
			logf.Close()
			return nil, fmt.Errorf("hub exited during start: %v\n%s", err, readTail(logPath, 2000))
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(h.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, errors.New("hub not ready after 5 minutes")
		}
	}
}

func readTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), n)
}

// stop sends SIGTERM, waits for a graceful exit (then kills) and returns the
// exit error, if any.
func (h *hubProc) stop() error {
	defer h.log.Close()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
		return errors.New("hub did not stop within 30 s of SIGTERM; killed")
	}
}

// peakRSS is the hub's VmHWM (peak resident set) in bytes.
func (h *hubProc) peakRSS() (int64, error) { return procStatusKB(h.cmd.Process.Pid, "VmHWM:") }

// rss is the hub's VmRSS in bytes.
func (h *hubProc) rss() (int64, error) { return procStatusKB(h.cmd.Process.Pid, "VmRSS:") }

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5), so that the
// next peakRSS covers one phase. It reports whether the kernel allowed it.
func (h *hubProc) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", h.cmd.Process.Pid), []byte("5"), 0) == nil
}

func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTime is the CPU time (user + system) the hub has used so far.
func (h *hubProc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start after ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc/PID/stat times")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the first three fields of /proc/loadavg ("1.02 0.87 0.55").
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// copyFile copies src to dst (replacing it).
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyDB copies a SQLite database with its WAL, if any, and removes stale
// companions of dst.
func copyDB(dst, src string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(dst + suffix)
	}
	if err := copyFile(dst, src); err != nil {
		return err
	}
	if _, err := os.Stat(src + "-wal"); err == nil {
		return copyFile(dst+"-wal", src+"-wal")
	}
	return nil
}

// meta is what the seed step records beside a cached database.
type meta struct {
	Version       int     `json:"version"`
	Users         int     `json:"users"`
	Token         string  `json:"token"` // an admin token of this throwaway database
	GroupID       string  `json:"groupId"`
	GroupSize     int     `json:"groupSize"`
	ImportSeconds float64 `json:"importSeconds"` // `users import` of all N users
	SeedSeconds   float64 `json:"seedSeconds"`   // the whole seed step
}

func readMeta(path string) (meta, error) {
	var m meta
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func writeMeta(path string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
