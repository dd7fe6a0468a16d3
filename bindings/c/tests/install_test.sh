#!/usr/bin/env bash
# install_test.sh: `make install` into a temporary prefix, then build the C
# quickstart OUTSIDE the repository with nothing but pkg-config, shared and
# static, run both, and `make uninstall`.
#
#   tests/install_test.sh            (run by `make -C bindings/c test`)
#
# Environment: MAKE, CC (defaults make, cc); SQLPOOL_TEST_PG_URL, if set,
# also runs the installed quickstart against PostgreSQL.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
MAKE=${MAKE:-make}
CC=${CC:-cc}
CFLAGS="-std=c11 -Wall -Wextra -Wpedantic -Werror"

fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

version=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' "$root/Cargo.toml")
major=${version%%.*}
[[ -n $version ]] || fail "no version in Cargo.toml"

tmp=$(mktemp -d /tmp/sqlpool-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
app=$tmp/app
mkdir -p "$app"

echo "install_test: make install PREFIX=$prefix"
# CARGO=true: install what `make test` already built. Running cargo again
# here, with CC in the environment, would rebuild the bundled SQLite and
# the crate (cc's build scripts rerun when CC changes).
"$MAKE" --no-print-directory -C "$root" install PREFIX="$prefix" CARGO=true >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2; fail "make install"; }

lib=$prefix/lib
for f in "$lib/libsqlpool.so.$version" "$lib/libsqlpool.a" "$prefix/include/sqlpool.h" \
         "$lib/pkgconfig/sqlpool.pc"; do
    [[ -f $f && ! -L $f ]] || fail "$f is missing"
done
[[ $(readlink "$lib/libsqlpool.so.$major") == "libsqlpool.so.$version" ]] \
    || fail "libsqlpool.so.$major does not point at libsqlpool.so.$version"
[[ $(readlink "$lib/libsqlpool.so") == "libsqlpool.so.$major" ]] \
    || fail "libsqlpool.so does not point at libsqlpool.so.$major"
soname=$(readelf -dW "$lib/libsqlpool.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libsqlpool.so.$major" ]] || fail "soname is '$soname', expected libsqlpool.so.$major"
# Each tool's output is captured before grep reads it: under pipefail,
# `tool | grep -q` fails whenever grep exits first and the tool gets SIGPIPE.
headers=$(readelf -lW "$lib/libsqlpool.so.$version")
grep -q GNU_EH_FRAME <<<"$headers" \
    || fail "no .eh_frame_hdr (panics could not be caught)"
# Exactly the sqlpool_* functions are exported, as from cargo's cdylib.
exported=$(nm -D --defined-only "$lib/libsqlpool.so.$version" | awk '{ print $3 }' | sort)
[[ -n $exported ]] || fail "nothing exported"
if grep -qv '^sqlpool_' <<<"$exported"; then
    fail "exports more than sqlpool_*: $(grep -v '^sqlpool_' <<<"$exported" | head -5 | tr '\n' ' ')"
fi
for fn in $(sed -n 's/^[a-z0-9_ *]*[ *]\(sqlpool_[a-z0-9_]*\)(.*/\1/p' "$prefix/include/sqlpool.h"); do
    grep -qx "$fn" <<<"$exported" || fail "$fn is declared in sqlpool.h but not exported"
done
echo "install_test: files, symlinks, soname $soname, $(wc -l <<<"$exported") exported functions: ok"

export PKG_CONFIG_PATH=$lib/pkgconfig
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
[[ $(pkg-config --modversion sqlpool) == "$version" ]] || fail "pkg-config --modversion"

# Only the example's source leaves the repository; everything else comes
# from the prefix through pkg-config.
cp "$root/bindings/c/examples/quickstart.c" "$app/"
cd "$app"

echo "install_test: cc quickstart.c \$(pkg-config --cflags --libs sqlpool)"
# shellcheck disable=SC2046
$CC $CFLAGS quickstart.c $(pkg-config --cflags --libs sqlpool) -o quickstart_shared
dynamic=$(readelf -dW quickstart_shared)
grep -q "NEEDED.*\[libsqlpool.so.$major\]" <<<"$dynamic" \
    || fail "quickstart_shared does not need libsqlpool.so.$major"
LD_LIBRARY_PATH=$lib ./quickstart_shared "sqlite:$app/shared.db" >"$tmp/run.log" 2>&1 \
    || { cat "$tmp/run.log" >&2; fail "quickstart_shared"; }
loaded=$(LD_LIBRARY_PATH=$lib ldd ./quickstart_shared)
grep -q "libsqlpool.so.$major => $lib/" <<<"$loaded" \
    || fail "quickstart_shared did not load the installed library"

echo "install_test: cc quickstart.c \$(pkg-config --cflags sqlpool) \$(pkg-config --static --libs sqlpool) (libsqlpool.a)"
# pkg-config --static adds Libs.private; -l:libsqlpool.a makes the linker
# take the archive although the shared library sits next to it.
# shellcheck disable=SC2046
$CC $CFLAGS quickstart.c $(pkg-config --cflags sqlpool) \
    $(pkg-config --static --libs sqlpool | sed 's/-lsqlpool\b/-l:libsqlpool.a/') -o quickstart_static
dynamic=$(readelf -dW quickstart_static)
if grep -q "NEEDED.*libsqlpool" <<<"$dynamic"; then
    fail "quickstart_static still needs libsqlpool.so"
fi
./quickstart_static "sqlite:$app/static.db" >"$tmp/run.log" 2>&1 \
    || { cat "$tmp/run.log" >&2; fail "quickstart_static"; }
if [[ -n ${SQLPOOL_TEST_PG_URL:-} ]]; then
    ./quickstart_static "$SQLPOOL_TEST_PG_URL" >"$tmp/run.log" 2>&1 \
        || { cat "$tmp/run.log" >&2; fail "quickstart_static on PostgreSQL"; }
fi
echo "install_test: shared and static quickstart built outside the repository and ran: ok"

cd /
"$MAKE" --no-print-directory -C "$root" uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f -o -type l)
[[ -z $left ]] || fail "left after uninstall: $left"
echo "install_test: make uninstall removed everything: ok"
