// Command connect is the one binary of Connect: the hub (`connect hub …`), and
// later the bridge, plus `connect demo` and `connect version`.
//
// This package is CLI wiring only: flags, environment variables, the YAML config
// file, logging setup and picking store backends from an explicit map keyed by
// DSN scheme. It is the only package that imports store backends.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		if ec, ok := err.(exitCoder); ok {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(stderr, "connect:", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "connect:", err)
		return 1
	}
	return 0
}

type exitCoder interface {
	error
	ExitCode() int
}
