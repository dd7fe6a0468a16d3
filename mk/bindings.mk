# mk/bindings.mk: the Node.js, Ruby, LuaJIT and Go bindings (included by the
# top Makefile, which defines CARGO and the `release` target).
#
#   make test-bindings      each binding's tests, on SQLite and on a throwaway
#                           PostgreSQL cluster (scripts/with-pg); part of
#                           `make test`. Installs no runtime: a binding whose
#                           runtime is missing prints "SKIPPED: ..." and is
#                           not run; under CI=true it is an error instead.
#   make bindings-runtimes  installs the missing runtimes (node, npm, ruby,
#                           luajit, go) from the distribution's packages
#                           (scripts/install-runtimes: apt-get as root or
#                           through sudo); `.ci/run` runs it
#   make demo-bindings      installs the missing runtimes, then runs each
#                           binding's example on an SQLite file
#
# koffi (Node's FFI) goes into bindings/node/node_modules with `npm ci`, in
# `make test` too, whenever node_modules is missing or older than
# package-lock.json: the lockfile pins the version and its integrity hash,
# npm writes only inside bindings/node, needs no root and runs no install
# script (koffi ships prebuilt binaries), as the Python tests' packages go
# into .venv. Go needs no module download: the package uses only the
# standard library and links target/release/libsqlpool.so.

BINDINGS_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BINDINGS_NODE_STAMP := $(BINDINGS_ROOT)/bindings/node/node_modules/.package-lock.json

.PHONY: test-bindings bindings-tests demo-bindings bindings-runtimes bindings-node-modules \
  test-binding-node test-binding-ruby test-binding-lua test-binding-go

test: test-bindings

bindings-runtimes:
	@$(BINDINGS_ROOT)/scripts/install-runtimes

# npm writes node_modules/.package-lock.json on every install, so it is the stamp.
bindings-node-modules: $(BINDINGS_NODE_STAMP)
$(BINDINGS_NODE_STAMP): $(BINDINGS_ROOT)/bindings/node/package-lock.json
	cd $(BINDINGS_ROOT)/bindings/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# The bindings whose runtime is installed (scripts/install-runtimes --check
# prints them, says SKIPPED for the others, fails under CI=true), run under
# one PostgreSQL cluster; each runtime's tests use their own tables.
# scripts/test-install-runtimes checks that check.
test-bindings: release
	@$(BINDINGS_ROOT)/scripts/test-install-runtimes
	@ready=$$($(BINDINGS_ROOT)/scripts/install-runtimes --check) && \
	  cd $(BINDINGS_ROOT) && scripts/with-pg $(MAKE) --no-print-directory bindings-tests BINDINGS_READY="$$ready"

BINDINGS_READY ?=
bindings-tests: $(BINDINGS_READY:%=test-binding-%)

test-binding-node: bindings-node-modules
	cd $(BINDINGS_ROOT)/bindings/node && node --test test/
test-binding-ruby:
	cd $(BINDINGS_ROOT)/bindings/ruby && ruby -Ilib test/test_scenario.rb
test-binding-lua:
	cd $(BINDINGS_ROOT)/bindings/lua && luajit test/run.lua
# go test -count=1: Go's test cache does not see the library change.
test-binding-go:
	cd $(BINDINGS_ROOT)/bindings/go && go vet ./... && go test -count=1 -v ./...

demo-bindings: release bindings-runtimes
	$(MAKE) --no-print-directory -C $(BINDINGS_ROOT) bindings-node-modules
	cd $(BINDINGS_ROOT)/bindings/node && node examples/quickstart.js
	cd $(BINDINGS_ROOT)/bindings/ruby && ruby examples/quickstart.rb
	cd $(BINDINGS_ROOT)/bindings/lua && luajit examples/quickstart.lua
	cd $(BINDINGS_ROOT)/bindings/go && go run ./examples/quickstart
