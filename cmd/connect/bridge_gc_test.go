package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/bridge/sso"
	"github.com/connectsso/connect/internal/gctune"
)

// bridgeGC runs `connect bridge SUB ARGS…` with the real flags, config-file
// loading and option loader, and returns the collector settings the command
// would apply (the Action is replaced so that nothing is served or synced).
func bridgeGC(t *testing.T, sub string, args ...string) (gctune.Settings, error) {
	t.Helper()
	cmd := bridgeCommand()
	var got gctune.Settings
	for _, s := range cmd.Subcommands {
		if s.Name == sub {
			s.Action = func(c *cli.Context) error {
				o, err := loadBridgeOptions(c, false)
				got = o.gc
				return err
			}
		}
	}
	app := &cli.App{Name: "connect", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
	store := "sqlite:" + filepath.Join(t.TempDir(), "bridge.db")
	err := app.Run(append([]string{"connect", "bridge", sub, "--store", store}, args...))
	return got, err
}

// TestSyncGC: `bridge sync` runs at its own GOGC (syncGCPercent) under the
// bridge's soft limit and `bridge serve` at the serving bridge's; an
// operator's GOGC / GOMEMLIMIT wins over those defaults, and an explicit
// --gc-percent / --memory-limit (or its CONNECT_BRIDGE_ variable) over them.
func TestSyncGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	for _, tt := range []struct {
		sub              string
		gogc, gomemlimit string
		env              map[string]string
		args             []string
		want             gctune.Settings
	}{
		{sub: "sync", want: gctune.Settings{Percent: syncGCPercent, MemoryLimit: sso.DefaultMemoryLimit}},
		{sub: "serve", want: gctune.Settings{Percent: sso.DefaultGCPercent, MemoryLimit: sso.DefaultMemoryLimit}},
		{sub: "sync", gogc: "150", gomemlimit: "1GiB", want: gctune.Settings{}},
		{sub: "serve", gogc: "150", want: gctune.Settings{MemoryLimit: sso.DefaultMemoryLimit}},
		{sub: "sync", gogc: "150", gomemlimit: "1GiB", args: []string{"--gc-percent", "300", "--memory-limit", "256MiB"},
			want: gctune.Settings{Percent: 300, MemoryLimit: 256 << 20}},
		{sub: "serve", gogc: "150", env: map[string]string{"CONNECT_BRIDGE_GC_PERCENT": "off", "CONNECT_BRIDGE_MEMORY_LIMIT": "2GiB"},
			want: gctune.Settings{Percent: -1, MemoryLimit: 2 << 30}},
		{sub: "sync", args: []string{"--gc-percent", "0", "--memory-limit", "0"}, want: gctune.Settings{}},
	} {
		t.Setenv("GOGC", tt.gogc)
		t.Setenv("GOMEMLIMIT", tt.gomemlimit)
		for _, k := range []string{"CONNECT_BRIDGE_GC_PERCENT", "CONNECT_BRIDGE_MEMORY_LIMIT"} {
			t.Setenv(k, tt.env[k]) // restored after the test
			if tt.env[k] == "" {
				os.Unsetenv(k) // urfave takes a set but empty variable as given
			}
		}
		got, err := bridgeGC(t, tt.sub, tt.args...)
		if err != nil || got != tt.want {
			t.Errorf("bridge %s %v (GOGC=%q GOMEMLIMIT=%q %v): %+v, %v; want %+v", tt.sub, tt.args, tt.gogc, tt.gomemlimit, tt.env, got, err, tt.want)
		}
	}
}

// TestBridgeGCFlagErrors: a bad --gc-percent or --memory-limit stops `bridge
// serve` and `bridge sync` before they start, naming the flag and the value.
func TestBridgeGCFlagErrors(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	store := "sqlite:" + filepath.Join(t.TempDir(), "bridge.db")
	for _, tt := range []struct {
		args []string
		env  string
		want []string
	}{
		{args: []string{"bridge", "serve", "--store", store, "--listen", "127.0.0.1:0", "--memory-limit", "nonsense"},
			want: []string{"memory-limit", `"nonsense"`, "384MiB or 2GiB"}},
		{args: []string{"bridge", "sync", "--store", store, "--gc-percent", "-5"},
			want: []string{"gc-percent", `"-5"`, "positive integer or off"}},
		{args: []string{"bridge", "sync", "--store", store}, env: "12 parsecs",
			want: []string{"memory-limit", `"12 parsecs"`}},
		{args: []string{"bridge", "check-config", "--store", store, "--listen", "127.0.0.1:0", "--gc-percent", "off", "--memory-limit", "0"},
			want: []string{"gc-percent", "needs a memory limit"}},
	} {
		t.Setenv("CONNECT_BRIDGE_MEMORY_LIMIT", tt.env)
		if tt.env == "" {
			os.Unsetenv("CONNECT_BRIDGE_MEMORY_LIMIT")
		}
		_, errOut, code := runCLI(t, tt.args...)
		if code == 0 {
			t.Errorf("%v: exit 0, want an error", tt.args)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr %q, want it to say %q", tt.args, errOut, w)
			}
		}
	}
}
