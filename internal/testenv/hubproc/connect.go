package hubproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Main runs the tests of a package that uses Binary and removes the built
// binary afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// Binary builds cmd/connect once per test binary and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "connect-hubproc-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "connect")
		out, err := exec.Command("go", "build", "-o", build.bin, "github.com/connectsso/connect/cmd/connect").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build cmd/connect: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return build.bin
}

// Run runs the connect binary with stdin and returns its standard output; the
// error carries both outputs.
func Run(tb testing.TB, stdin string, args ...string) (string, error) {
	tb.Helper()
	return run(Binary(tb), nil, stdin, args...)
}

// MustRun is Run that fails tb.
func MustRun(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	out, err := Run(tb, stdin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func run(bin string, env []string, stdin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("connect %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}
