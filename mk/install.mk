# mk/install.mk: `make install` and `make uninstall` (included by the top
# Makefile, which defines PREFIX ?= /usr/local and CARGO).
#
#   make install   [PREFIX=/usr/local] [DESTDIR=/staging] [libdir=...] [includedir=...]
#   make uninstall [PREFIX=/usr/local] [DESTDIR=/staging]
#
# Installs, with VERSION from Cargo.toml (e.g. 0.1.0):
#   $(libdir)/libsqlpool.so.VERSION     shared library, soname libsqlpool.so.MAJOR
#   $(libdir)/libsqlpool.so.MAJOR       -> libsqlpool.so.VERSION (what programs load)
#   $(libdir)/libsqlpool.so             -> libsqlpool.so.MAJOR   (what -lsqlpool finds)
#   $(libdir)/libsqlpool.a              static library
#   $(includedir)/sqlpool.h
#   $(libdir)/pkgconfig/sqlpool.pc      Libs.private lists what the static library needs
#
# The soname: cargo's cdylib has none, and setting one through RUSTFLAGS or a
# build script would change (and rebuild) every normal `cargo build`. So the
# install step links the shared library once more from the staticlib cargo
# already built (the same object code, about a second), with
# -Wl,-soname,libsqlpool.so.MAJOR and a version script that exports exactly
# the sqlpool_* symbols of cargo's cdylib. `cargo build` is left alone.
#
# `install` runs `cargo build --release` first (the top Makefile's `release`).
# Built as yourself and installing as root without cargo on root's PATH?
# `sudo make install CARGO=true` skips that step and installs what is built.

SQLPOOL_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
SQLPOOL_TARGET_DIR = $(if $(CARGO_TARGET_DIR),$(abspath $(CARGO_TARGET_DIR)),$(SQLPOOL_ROOT)/target)
SQLPOOL_RELEASE_DIR = $(SQLPOOL_TARGET_DIR)/release

# Version of the [package] section of Cargo.toml, and its major number.
SQLPOOL_VERSION := $(shell awk -F'"' '/^\[/ { p = ($$0 == "[package]") } p && /^version *=/ { print $$2; exit }' $(SQLPOOL_ROOT)/Cargo.toml)
SQLPOOL_SOMAJOR := $(firstword $(subst ., ,$(SQLPOOL_VERSION)))
SQLPOOL_DESCRIPTION := $(shell awk -F'"' '/^\[/ { p = ($$0 == "[package]") } p && /^description *=/ { print $$2; exit }' $(SQLPOOL_ROOT)/Cargo.toml)

# GNU-style directories; override any of them on the command line.
exec_prefix ?= $(PREFIX)
libdir ?= $(exec_prefix)/lib
includedir ?= $(PREFIX)/include
pkgconfigdir ?= $(libdir)/pkgconfig

RUSTC ?= rustc
NM ?= nm
INSTALL ?= install

# System libraries the Rust staticlib needs, as `rustc --print
# native-static-libs` reports them for this toolchain. Our dependencies add
# none (SQLite is bundled into the archive), so a one-line crate tells the
# same as the full `cargo rustc --release -- --print native-static-libs`;
# checked for rustc 1.95: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc.
# Computed only when install runs (expanded inside its recipe).
SQLPOOL_NATIVE_LIBS_FALLBACK := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
SQLPOOL_NATIVE_LIBS = $(or $(shell d=$$(mktemp -d) && echo '' > $$d/e.rs && $(RUSTC) --crate-type staticlib --crate-name sqlpool_nsl --print native-static-libs -o $$d/e.a $$d/e.rs 2>&1 | sed -n 's/.*native-static-libs: *//p' | head -n 1; rm -rf "$$d"),$(SQLPOOL_NATIVE_LIBS_FALLBACK))

# ${prefix}-relative paths in the .pc file when they are under PREFIX.
sqlpool_pc_dir = $(patsubst $(PREFIX),$${prefix},$(patsubst $(PREFIX)/%,$${prefix}/%,$(1)))

SQLPOOL_SONAME = libsqlpool.so.$(SQLPOOL_SOMAJOR)
SQLPOOL_REALNAME = libsqlpool.so.$(SQLPOOL_VERSION)

.PHONY: install uninstall

install: release
	@test -n "$(SQLPOOL_VERSION)" || { echo "install: no version in Cargo.toml" >&2; exit 1; }
	@test -f "$(SQLPOOL_RELEASE_DIR)/libsqlpool.a" -a -f "$(SQLPOOL_RELEASE_DIR)/libsqlpool.so" \
	  || { echo "install: $(SQLPOOL_RELEASE_DIR)/libsqlpool.{a,so} missing; run cargo build --release" >&2; exit 1; }
	@set -e; \
	stage=$$(mktemp -d "$(SQLPOOL_TARGET_DIR)/install-stage.XXXXXX"); \
	trap 'rm -rf "$$stage"' EXIT; \
	$(NM) -D --defined-only "$(SQLPOOL_RELEASE_DIR)/libsqlpool.so" \
	  | awk '$$3 ~ /^sqlpool_/ { print $$3 }' | sort -u > "$$stage/symbols"; \
	test -s "$$stage/symbols" || { echo "install: no sqlpool_* symbols in libsqlpool.so" >&2; exit 1; }; \
	{ echo "{ global:"; sed 's/$$/;/' "$$stage/symbols"; echo "local: *; };"; } > "$$stage/sqlpool.map"; \
	libs='$(SQLPOOL_NATIVE_LIBS)'; \
	echo "  LINK  $(SQLPOOL_REALNAME) (soname $(SQLPOOL_SONAME); $$libs)"; \
	$(CC) -shared -o "$$stage/$(SQLPOOL_REALNAME)" \
	  -Wl,-soname,$(SQLPOOL_SONAME) -Wl,--version-script="$$stage/sqlpool.map" \
	  $$(sed 's/^/-Wl,-u,/' "$$stage/symbols") \
	  -Wl,--gc-sections -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--no-undefined \
	  "$(SQLPOOL_RELEASE_DIR)/libsqlpool.a" $$libs; \
	{ echo 'prefix=$(PREFIX)'; \
	  echo 'exec_prefix=$(call sqlpool_pc_dir,$(exec_prefix))'; \
	  echo 'libdir=$(call sqlpool_pc_dir,$(libdir))'; \
	  echo 'includedir=$(call sqlpool_pc_dir,$(includedir))'; \
	  echo; \
	  echo 'Name: sqlpool'; \
	  echo 'Description: $(SQLPOOL_DESCRIPTION)'; \
	  echo 'Version: $(SQLPOOL_VERSION)'; \
	  echo 'Libs: -L$${libdir} -lsqlpool'; \
	  echo "Libs.private: $$libs"; \
	  echo 'Cflags: -I$${includedir}'; \
	} > "$$stage/sqlpool.pc"; \
	$(INSTALL) -d "$(DESTDIR)$(libdir)" "$(DESTDIR)$(includedir)" "$(DESTDIR)$(pkgconfigdir)"; \
	$(INSTALL) -m 0755 "$$stage/$(SQLPOOL_REALNAME)" "$(DESTDIR)$(libdir)/$(SQLPOOL_REALNAME)"; \
	ln -sf $(SQLPOOL_REALNAME) "$(DESTDIR)$(libdir)/$(SQLPOOL_SONAME)"; \
	ln -sf $(SQLPOOL_SONAME) "$(DESTDIR)$(libdir)/libsqlpool.so"; \
	$(INSTALL) -m 0644 "$(SQLPOOL_RELEASE_DIR)/libsqlpool.a" "$(DESTDIR)$(libdir)/libsqlpool.a"; \
	$(INSTALL) -m 0644 "$(SQLPOOL_ROOT)/include/sqlpool.h" "$(DESTDIR)$(includedir)/sqlpool.h"; \
	$(INSTALL) -m 0644 "$$stage/sqlpool.pc" "$(DESTDIR)$(pkgconfigdir)/sqlpool.pc"; \
	for f in "$(libdir)/$(SQLPOOL_REALNAME)" "$(libdir)/$(SQLPOOL_SONAME)" "$(libdir)/libsqlpool.so" \
	         "$(libdir)/libsqlpool.a" "$(includedir)/sqlpool.h" "$(pkgconfigdir)/sqlpool.pc"; do \
	  echo "  INSTALL $(DESTDIR)$$f"; \
	done

uninstall:
	rm -f "$(DESTDIR)$(libdir)/$(SQLPOOL_REALNAME)" "$(DESTDIR)$(libdir)/$(SQLPOOL_SONAME)" \
	  "$(DESTDIR)$(libdir)/libsqlpool.so" "$(DESTDIR)$(libdir)/libsqlpool.a" \
	  "$(DESTDIR)$(includedir)/sqlpool.h" "$(DESTDIR)$(pkgconfigdir)/sqlpool.pc"
