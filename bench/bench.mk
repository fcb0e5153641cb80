# make bench: metainit against crun, runc, systemd-nspawn and tini, every
# figure against its peer in the same run (bench/README.md). Prints one table
# and writes it to bench/out/bench.{md,json}. Needs root. Not part of
# make test; `make bench-smoke` is a quick run of every row.

BENCH_BIN := bin/metainit-bench
# The peers, and what the rootfs and the qemu image are built with.
BENCH_PKGS := runc crun systemd-container tini qemu-system-x86 e2fsprogs jq mmdebstrap
BENCH_FLAGS ?=

.PHONY: bench bench-smoke bench-deps

bench-deps:
	@need=""; for p in $(BENCH_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || need="$$need $$p"; \
	done; \
	if [ -n "$$need" ]; then \
		echo "bench: installing$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need; \
	fi

$(BENCH_BIN): $(shell find bench tests/vm -name '*.go' -not -name '*_test.go' 2>/dev/null) $(SOURCES)
	$(GO) build -o $@ ./bench

bench: build bench-deps $(BENCH_BIN)
	$(BENCH_BIN) -metainit $(BIN) -out bench/out $(BENCH_FLAGS)

bench-smoke: build bench-deps $(BENCH_BIN)
	$(BENCH_BIN) -metainit $(BIN) -out bench/out/smoke -quick $(BENCH_FLAGS)
