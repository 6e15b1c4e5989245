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
.PHONY: help build test test-go fuzz demo bench lint fmt clean

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

demo: ## run a hub with sample data on loopback until Ctrl-C
	$(GO) run ./cmd/connect demo

bench: ## run the Go benchmarks (BENCHTIME=1s)
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -timeout $(TEST_TIMEOUT) ./...

lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt: ## format the Go code
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

clean: ## remove build output
	rm -rf bin
