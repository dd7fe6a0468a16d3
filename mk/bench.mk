# mk/bench.mk: `make bench` and `make bench-smoke` (included by the top
# Makefile, which defines CARGO and the `release` target).
#
#   make bench         sqlpool against its peers, side by side in one run;
#                      writes docs/benchmarks.md and docs/benchmarks.png, the
#                      raw numbers to target/bench/results.json (about 15
#                      minutes; `bench/run.py --replot` redraws from them)
#   make bench-smoke   sqlpool's own benchmark program, every scenario at a
#                      tiny size (seconds; part of `make test`; installs nothing)
#   make bench-peers-smoke  every scenario and peer at a tiny size; writes
#                      target/bench/smoke/
#   make bench-build   only builds what the benchmarks run
#   make bench-clean   removes the bench programs and bench/.venv
#
# What it installs, when missing: libpq-dev, libsqlite3-dev and pkg-config
# (apt-get, as root or through sudo) for the C floors; a virtualenv
# bench/.venv (from $(BENCH_PYTHON)) with the Python peers of
# bench/python/requirements.txt (a peer that fails to install is skipped
# with a note) and matplotlib; the r2d2 floor, a separate cargo project in
# bench/r2d2_floor built into target/bench-floor.
#
# Databases: a throwaway PostgreSQL cluster (scripts/pg-cluster), or the
# server in SQLPOOL_BENCH_PG_URL; an SQLite file in a temporary directory.
# BENCH_ARGS passes options to bench/run.py (e.g. BENCH_ARGS="--only fetch",
# "--reps 3", "--out DIR", "--cpu-idle"). During a run the CPUs are kept out
# of idle states (/dev/cpu_dma_latency, when writable): on virtual machines
# waking a halted vCPU costs more than a loopback round trip.

BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BENCH_TARGET = $(if $(CARGO_TARGET_DIR),$(abspath $(CARGO_TARGET_DIR)),$(BENCH_ROOT)/target)
BENCH_BIN = $(BENCH_TARGET)/bench
BENCH_VENV ?= $(BENCH_ROOT)/bench/.venv
BENCH_PYTHON ?= python3
BENCH_VENV_PY = $(BENCH_VENV)/bin/python
BENCH_STAMP = $(BENCH_VENV)/.sqlpool-bench-installed
BENCH_REQUIREMENTS := $(BENCH_ROOT)/bench/python/requirements.txt
BENCH_INCLUDE ?= $(BENCH_ROOT)/include
BENCH_CFLAGS ?= -O2 -g
BENCH_STRICT := -std=c11 -Wall -Wextra -Wpedantic -Werror
BENCH_ARGS ?=
BENCH_C_COMMON := $(BENCH_ROOT)/bench/c/bench_common.h

.PHONY: bench bench-smoke bench-peers-smoke bench-build bench-deps bench-venv bench-r2d2 bench-clean

bench: bench-build
	$(BENCH_VENV_PY) $(BENCH_ROOT)/bench/run.py $(BENCH_ARGS)

# The smoke run of `make test`: sqlpool's own benchmark program, every
# scenario at a tiny size (the bulk ones from Python too, sqlpool's side:
# the binding needs nothing installed), on SQLite and on a throwaway PostgreSQL cluster
# (scripts/with-pg). No peers, no virtualenv, no apt-get, no
# /dev/cpu_dma_latency: those are `make bench` (and `make bench-peers-smoke`,
# the former smoke run of every peer).
BENCH_SMOKE_DIR = $(BENCH_TARGET)/bench/smoke-sqlpool
bench-smoke: release $(BENCH_BIN)/bench_sqlpool
	@rm -rf $(BENCH_SMOKE_DIR) && mkdir -p $(BENCH_SMOKE_DIR)
	cd $(BENCH_ROOT) && scripts/with-pg sh -ec '\
	  b=$(BENCH_BIN)/bench_sqlpool; lite=sqlite:$(BENCH_SMOKE_DIR)/bench.db; pg="$$SQLPOOL_TEST_PG_URL"; \
	  run() { echo "bench-smoke: $$1 $$3 $$4 $$5 $$6"; "$$b" "$$@" >/dev/null; }; \
	  py() { what=$$1; uri=$$2; shift 2; echo "bench-smoke: pybench.py $$what $$*"; \
	    SQLPOOL_LIBRARY=$(BENCH_BIN)/lib/libsqlpool.so PYTHONPATH=$(BENCH_ROOT)/bindings/python \
	    $(BENCH_PYTHON) bench/python/pybench.py "$$what" --lib sqlpool --uri "$$uri" "$$@" >/dev/null; }; \
	  run setup-sqlite "$$lite" 200 500; \
	  for t in 1 2; do run acquire "$$lite" $$t 200 fast; run acquire "$$lite" $$t 200 verified; done; \
	  run point "$$lite" 200 200; run insert "$$lite" 200; run insert-batch "$$lite" 200; \
	  run stream "$$lite" 2000; py stream "$$lite" --rows 2000; \
	  py select1 "$$lite" --iters 100; py fetch "$$lite"; py insert "$$lite" --rows 200 --how many; \
	  if [ -n "$$pg" ]; then \
	    run setup-pg "$$pg" 500; run info "$$pg"; \
	    for t in 1 2; do run acquire "$$pg" $$t 200 fast; run acquire "$$pg" $$t 50 verified; done; \
	    run select1 "$$pg" 100; run fetch "$$pg"; run fetch-columns "$$pg"; run insert "$$pg" 100; run insert-batch "$$pg" 100; \
	    run stream-fetch "$$pg"; run stream "$$pg" 2000; run copy "$$pg" 200; py stream "$$pg" --rows 2000; \
	    py insert "$$pg" --rows 200 --how copy; py insert "$$pg" --rows 200 --how many; \
	    py acquire "$$pg" --workers 4 --iters 100; py acquire "$$pg" --workers 4 --iters 100 --lib sqlpool-async; \
	  fi'
	@echo "bench-smoke: sqlpool's benchmark program ran every scenario"

bench-peers-smoke: bench-build
	$(BENCH_VENV_PY) $(BENCH_ROOT)/bench/run.py --smoke $(BENCH_ARGS)

bench-build: release bench-deps bench-venv bench-r2d2 $(BENCH_BIN)/bench_sqlpool $(BENCH_BIN)/bench_floor

# libpq and SQLite headers for the C floors (and the r2d2 floor's SQLite).
bench-deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libpq sqlite3; then \
	  echo "bench: installing libpq-dev libsqlite3-dev pkg-config"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq libpq-dev libsqlite3-dev pkg-config >/dev/null \
	  || { echo "bench: could not install libpq-dev libsqlite3-dev pkg-config" >&2; exit 1; }; \
	fi

bench-venv: $(BENCH_STAMP)

# One requirement at a time, so that one peer failing to install (no wheel
# for this Python, PyPI unreachable) only drops that peer. The stamp is
# written only when all installed, so a failed one is retried next time.
$(BENCH_STAMP): $(BENCH_REQUIREMENTS)
	@test -x $(BENCH_VENV_PY) || $(BENCH_PYTHON) -m venv $(BENCH_VENV) \
	  || { echo "bench: '$(BENCH_PYTHON) -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
	@echo "bench: installing the Python peers into $(BENCH_VENV)"
	@$(BENCH_VENV_PY) -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
	@ok=1; for req in $$(sed -e 's/#.*//' $(BENCH_REQUIREMENTS)); do \
	  $(BENCH_VENV_PY) -m pip install -q --disable-pip-version-check "$$req" \
	    || { ok=0; echo "NOTE: pip could not install $$req: the benchmarks that need it are skipped"; }; \
	done; \
	if [ $$ok = 1 ]; then touch $@; fi

# Always asks cargo (a no-op when up to date).
bench-r2d2: bench-deps
	cd $(BENCH_ROOT)/bench/r2d2_floor && $(CARGO) build --release --locked --target-dir $(BENCH_TARGET)/bench-floor

$(BENCH_BIN) $(BENCH_BIN)/lib:
	mkdir -p $@

# The benchmarks run a copy of the library, so a `cargo build` during a run
# (the shared target directory) cannot swap it under them; the C program and
# the Python binding (SQLPOOL_LIBRARY) both load this copy.
$(BENCH_BIN)/lib/libsqlpool.so: $(BENCH_TARGET)/release/libsqlpool.so | $(BENCH_BIN)/lib
	cp $< $@.tmp && mv -f $@.tmp $@

$(BENCH_BIN)/bench_sqlpool: $(BENCH_ROOT)/bench/c/bench_sqlpool.c $(BENCH_C_COMMON) $(BENCH_INCLUDE)/sqlpool.h \
    $(BENCH_BIN)/lib/libsqlpool.so | $(BENCH_BIN)
	$(CC) $(BENCH_STRICT) $(BENCH_CFLAGS) -I$(BENCH_INCLUDE) $< -o $@ \
	  -L$(BENCH_BIN)/lib -lsqlpool -Wl,-rpath,$(BENCH_BIN)/lib -pthread

$(BENCH_BIN)/bench_floor: $(BENCH_ROOT)/bench/c/bench_floor.c $(BENCH_C_COMMON) | $(BENCH_BIN) bench-deps
	$(CC) $(BENCH_STRICT) $(BENCH_CFLAGS) $$(pkg-config --cflags libpq sqlite3) $< -o $@ \
	  $$(pkg-config --libs libpq sqlite3)

bench-clean:
	rm -rf $(BENCH_BIN) $(BENCH_VENV)
