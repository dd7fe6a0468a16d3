# mk/bindings.mk: the Node.js, Ruby, LuaJIT and Go bindings (included by the
# top Makefile, which defines CARGO and the `release` target).
#
#   make test-bindings   each binding's tests, on SQLite and on a throwaway
#                        PostgreSQL cluster (scripts/with-pg); part of `make test`
#   make demo-bindings   each binding's example, on an SQLite file
#
# What it installs, when missing: node, npm, ruby, luajit and go from the
# distribution's packages (scripts/install-runtimes, apt-get as root or
# through sudo), and koffi into bindings/node/node_modules (npm ci, from
# package-lock.json). Go needs no module download: the package uses only
# the standard library and links target/release/libsqlpool.so.

BINDINGS_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BINDINGS_NODE_STAMP := $(BINDINGS_ROOT)/bindings/node/node_modules/.package-lock.json

.PHONY: test-bindings demo-bindings bindings-runtimes

test: test-bindings

bindings-runtimes:
	@$(BINDINGS_ROOT)/scripts/install-runtimes

# npm writes node_modules/.package-lock.json on every install, so it is the stamp.
# koffi ships its prebuilt binaries: no install script needs to run.
$(BINDINGS_NODE_STAMP): $(BINDINGS_ROOT)/bindings/node/package-lock.json | bindings-runtimes
	cd $(BINDINGS_ROOT)/bindings/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# One PostgreSQL cluster for the four runtimes; each runtime's tests use
# their own tables. go test -count=1: Go's test cache does not see the
# library change.
test-bindings: release bindings-runtimes $(BINDINGS_NODE_STAMP)
	cd $(BINDINGS_ROOT) && scripts/with-pg sh -ec '\
	  echo "== bindings/node";  (cd bindings/node && node --test test/); \
	  echo "== bindings/ruby";  (cd bindings/ruby && ruby -Ilib test/test_scenario.rb); \
	  echo "== bindings/lua";   (cd bindings/lua && luajit test/run.lua); \
	  echo "== bindings/go";    (cd bindings/go && go vet ./... && go test -count=1 -v ./...)'

demo-bindings: release bindings-runtimes $(BINDINGS_NODE_STAMP)
	cd $(BINDINGS_ROOT)/bindings/node && node examples/quickstart.js
	cd $(BINDINGS_ROOT)/bindings/ruby && ruby examples/quickstart.rb
	cd $(BINDINGS_ROOT)/bindings/lua && luajit examples/quickstart.lua
	cd $(BINDINGS_ROOT)/bindings/go && go run ./examples/quickstart
