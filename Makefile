# Connect — developer entry points. `make` (or `make help`) lists the targets.

GO          ?= go
BIN         ?= bin/connect
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
TEST_TIMEOUT ?= 20m
FUZZTIME    ?= 10s
BENCHTIME   ?= 1s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help
.PHONY: help build test test-go fuzz demo bench bench-load lint fmt clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the connect binary into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/connect

test: test-go fuzz ## run every test, then each fuzz target briefly (FUZZTIME=10s)

test-go:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Every `func FuzzX` in a _test.go file runs on its own for FUZZTIME (go test
# accepts one fuzz target per run).
fuzz: ## run each Go fuzz target for FUZZTIME
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=./$$(dirname $${f#./}); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$dir $$t ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

# DEMO_FLAGS, e.g. DEMO_FLAGS='--dir connect-demo' to keep the SQLite stores.
DEMO_FLAGS ?=

demo: ## run a hub, a bridge and a protected site on loopback with sample users until Ctrl-C
	$(GO) run ./cmd/connect demo $(DEMO_FLAGS)

# The load harness (internal/loadtest, docs/benchmarks.md) runs a real hub on a
# seeded SQLite directory of BENCH_USERS users (cached under
# $${XDG_CACHE_HOME:-~/.cache}/connect-bench) and reports medians of BENCH_RUNS
# runs against the budgets. The budget run: make bench-load BENCH_USERS=1000000
BENCH_USERS         ?= 10000
BENCH_RUNS          ?= 3
BENCH_DURATION      ?= 10s
BENCH_LOAD_DURATION ?= 3s
LOADTEST_FLAGS      ?=

bench: ## run the Go benchmarks, then the load harness (BENCH_USERS=10000, 3 s phases)
	CONNECT_BENCH_USERS=$(BENCH_USERS) $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -timeout $(TEST_TIMEOUT) ./...
	$(GO) run ./internal/loadtest -users $(BENCH_USERS) -runs $(BENCH_RUNS) -duration $(BENCH_LOAD_DURATION) $(LOADTEST_FLAGS)

bench-load: ## load-test a real hub against the budgets (BENCH_USERS=1000000 for the budget run)
	$(GO) run ./internal/loadtest -users $(BENCH_USERS) -runs $(BENCH_RUNS) -duration $(BENCH_DURATION) $(LOADTEST_FLAGS)

lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## format the Go code
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

clean: ## remove build output
	rm -rf bin
