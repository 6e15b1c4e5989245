// Command loadtest measures the hub against the performance budgets of its
// issue (docs/benchmarks.md) from the outside, as an operator would see it: it
// builds the connect binary, seeds (and caches) a SQLite hub database with N
// users, starts a real `connect hub serve` process, and drives concurrent HTTP
// load at it from this process.
//
//	go run ./internal/loadtest -users 1000000 -runs 3
//
// Phases, each run: GET /Users/{id} and GET /Users?filter=userName eq "…" at
// maximum throughput (closed loop) and at the budget's 5,000 requests/s (open
// loop, latency measured from each request's scheduled start so that queueing
// counts); 100-user pages (shallow and deep startIndex, cursor walk); POST
// /Users; a Changes poll returning 100 changes; PATCH adding 10,000 members to
// a 100,000-member group; and `connect hub users import` of 100,000 users into
// a fresh store. It reports requests/s, p50 and p99, the hub's peak RSS
// (VmHWM) per phase and overall, the load average around each run, and the
// median of every figure over the runs, checked against the budgets.
//
// Seeded databases are cached under ${XDG_CACHE_HOME:-~/.cache}/connect-bench/
// and copied before each run, so that runs start from the same state.
//
// It is a main package under internal/: it imports the standard library and
// package scim (URNs) only, and talks to the hub over HTTP and its CLI.
package main
