#!/usr/bin/env bash
# Install test: installs libdel into a temporary prefix, builds hello.c with
# the installed pkg-config file (shared, then libdel linked statically), runs
# both, checks their output, uninstalls and checks nothing is left.
set -euo pipefail

cd "$(dirname "$0")/../.."
MAKE=${MAKE:-make}
CC=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/usr
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
unset PKG_CONFIG_SYSROOT_DIR

fail() { echo "install test: FAILED: $*" >&2; exit 1; }

$MAKE --no-print-directory install PREFIX="$prefix" >/dev/null

# Independent expectations: the version from the header's macros, and the
# mlp preset's parameter count worked by hand: 784*256 + 256 + 256*10 + 10 = 203530.
ver=$(awk '/#define DEL_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v == "" ? "" : ".") $3 } END { print v }' include/del/version.h)
expected="version $ver
tensor numel 1568
mlp params 203530
output 2 x 10"

[ "$(pkg-config --modversion libdel)" = "$ver" ] || fail "pkg-config --modversion is not $ver"
for f in include/del.h include/del/common.h lib/libdel.so.$ver lib/libdel.so lib/libdel.a \
         lib/pkgconfig/libdel.pc; do
    [ -e "$prefix/$f" ] || fail "$prefix/$f was not installed"
done
soname=$(readelf -d "$prefix/lib/libdel.so.$ver" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libdel.so.${ver%%.*}" ] || fail "soname is '$soname'"

# Shared: found through LD_LIBRARY_PATH only (no rpath), as a system install.
# shellcheck disable=SC2046
$CC -std=c11 -Wall -Wextra -Werror tests/install/hello.c -o "$tmp/hello" \
    $(pkg-config --cflags --libs libdel)
out=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/hello") || fail "hello (shared) exited with $?"
[ "$out" = "$expected" ] || fail "hello (shared) printed:
$out
expected:
$expected"

# Static: libdel.a, with its private dependencies from Requires.private.
static_libs=$(pkg-config --static --libs libdel | sed 's/-ldel\b/-Wl,-Bstatic -ldel -Wl,-Bdynamic/')
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror tests/install/hello.c -o "$tmp/hello_static" \
    $(pkg-config --cflags libdel) $static_libs
if readelf -d "$tmp/hello_static" | grep -q 'NEEDED.*libdel'; then
    fail "hello_static still needs libdel.so"
fi
out=$(env -u LD_LIBRARY_PATH "$tmp/hello_static") || fail "hello (static) exited with $?"
[ "$out" = "$expected" ] || fail "hello (static) printed:
$out"

$MAKE --no-print-directory uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "files left after uninstall:
$left"
echo "install test: passed (shared and static, version $ver)"
