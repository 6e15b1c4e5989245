// Package hubproc runs the real processes of a Connect deployment for tests:
// the connect binary built once per test binary from cmd/connect, `connect hub
// serve` on a free port with a fresh store (SQLite, or a DSN given), admin
// tokens and settings made with the CLI, the hub's SCIM API, and nginx with
// the shipped configuration. Every process's output is kept and printed when
// the test fails, and the process is stopped (SIGINT, then SIGKILL) when the
// test ends.
//
// A package that uses Binary (or anything that starts connect) calls Main from
// its TestMain so that the built binary is removed afterwards.
//
// It imports internal/testenv and the standard library only.
package hubproc
