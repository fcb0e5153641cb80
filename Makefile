# metainit: see README.md. `make demo` shows it, `make test` proves it.
SHELL := /bin/bash
GO ?= go
BIN := bin/metainit
GOFLAGS_BUILD := -trimpath -tags 'netgo osusergo' -ldflags '-s -w -extldflags -static -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)'
SOURCES := $(shell find cmd internal partition specs -name '*.go' 2>/dev/null) go.mod go.sum

.PHONY: build demo test test-unit test-integration test-long test-race rootfs clean fuzz

build: $(BIN)

$(BIN): $(SOURCES)
	CGO_ENABLED=1 $(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/metainit

# Root filesystems are cached under /var/cache/metainit (METAINIT_CACHE).
rootfs:
	tests/rootfs/build.sh systemd
	tests/rootfs/build.sh runit

demo: build rootfs
	tests/demo.sh

test: test-unit test-integration

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./cmd/... ./internal/... ./partition/... ./specs/...

test-integration: build rootfs
	METAINIT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m -v ./tests/

# The slow half, which .ci/run also runs: the integration tests once more
# against a metainit built with the race detector (halting on the first race,
# which the tests then see as a dead PID 1), and a short fuzz run.
BIN_RACE := bin/metainit-race
$(BIN_RACE): $(SOURCES)
	CGO_ENABLED=1 $(GO) build -race -o $@ ./cmd/metainit

test-race: $(BIN_RACE) rootfs
	GORACE=halt_on_error=1 METAINIT_BIN=$(CURDIR)/$(BIN_RACE) $(GO) test -count=1 -timeout 40m -v ./tests/

test-long: test-race fuzz

# A short run of each fuzz target (seeds in */testdata/fuzz); a finding is
# written there as a new seed and fails the run. Minimizing is capped: by
# default each new input is minimized for up to 60s, which would leave a
# short run no time to fuzz.
FUZZTIME ?= 30s
FUZZFLAGS := -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzLoadBundle$$' ./partition/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzDecode$$' ./internal/control/

clean:
	rm -rf bin

# The qemu boot (tests/vm) and the benchmarks (bench) keep their targets in
# their own fragments.
-include tests/vm/vm.mk
-include bench/bench.mk
