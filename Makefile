# sqlpool — build, demo, test, install, bench.
#   make demo    builds the library and runs the C quickstart on an SQLite file
#   make test    runs every test (Rust, C, Python, the Node/Ruby/Lua/Go
#                bindings, sqlpool's benchmark program at tiny sizes);
#                compiles the library once (Cargo.toml: resolver), installs
#                nothing on the system (no apt-get, no sudo: .ci/run and
#                `make bindings-runtimes` do that); its only downloads are
#                pinned test packages into .venv and bindings/node/node_modules
#   make bench   sqlpool against its peers (installs them; see mk/bench.mk)

CARGO ?= cargo
PREFIX ?= /usr/local
export CARGO_TERM_COLOR ?= never

.PHONY: all build release header demo test test-rust test-c test-python bench bench-smoke install uninstall clean lint

all: release

build:
	$(CARGO) build

release:
	$(CARGO) build --release

header:
	SQLPOOL_WRITE_HEADER=1 $(CARGO) test --test header

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: release
	$(MAKE) -C bindings/c demo

test: release test-rust test-c test-python $(if $(wildcard mk/bench.mk),bench-smoke)

test-rust:
	$(CARGO) test --release

test-c: release
	scripts/with-pg $(MAKE) -C bindings/c test

# The unit tests only; the wheel and sdist tests (zig, fresh venvs, two more
# builds of the crate) are `make test-python-dist`, run by .ci/run.
test-python: release
	scripts/with-pg $(MAKE) -C bindings/python test-unit

-include mk/*.mk

clean:
	$(CARGO) clean
	-$(MAKE) -C bindings/c clean
