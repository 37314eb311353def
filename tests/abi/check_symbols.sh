#!/usr/bin/env bash
# Checks the ABI surface of the shared library: every dynamic symbol it
# defines is a del_* function declared with DEL_API in the public headers,
# and every DEL_API function is exported. Anything else leaking out (an
# internal helper that missed -fvisibility=hidden, a static-library symbol)
# would become part of the ABI by accident.
#   usage: check_symbols.sh lib/libdel.so.X.Y.Z include
set -euo pipefail

so=${1:?usage: $0 LIBRARY INCLUDE_DIR}
incdir=${2:?usage: $0 LIBRARY INCLUDE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declared: DEL_API prototypes, comments and preprocessor lines removed, so a
# prototype spanning lines is one match.
cat "$incdir/del.h" "$incdir"/del/*.h \
    | perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g; s{^[ \t]*#[^\n]*}{}gm' \
    | tr '\n' ' ' \
    | grep -o 'DEL_API[^;(]*(' \
    | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' \
    | LC_ALL=C sort -u > "$tmp/declared"

# Exported: defined dynamic symbols, minus the version-node name (type A)
# that the version script adds.
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' \
    | LC_ALL=C sort -u > "$tmp/exported"

status=0
# A module header that del.h does not include is invisible to users of the
# umbrella header and to the Python generator.
for h in "$incdir"/del/*.h; do
    if ! grep -q "^#include \"del/$(basename "$h")\"" "$incdir/del.h"; then
        echo "check_symbols: $h is not included by $incdir/del.h" >&2
        status=1
    fi
done
if [ ! -s "$tmp/declared" ]; then
    echo "check_symbols: no DEL_API declaration found under $incdir" >&2
    exit 1
fi
bad=$(grep -v '^del_' "$tmp/exported" || true)
if [ -n "$bad" ]; then
    echo "check_symbols: $so exports symbols without the del_ prefix:" >&2
    echo "$bad" | sed 's/^/    /' >&2
    status=1
fi
extra=$(LC_ALL=C comm -13 "$tmp/declared" "$tmp/exported")
if [ -n "$extra" ]; then
    echo "check_symbols: $so exports symbols not declared DEL_API in the headers:" >&2
    echo "$extra" | sed 's/^/    /' >&2
    status=1
fi
missing=$(LC_ALL=C comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
    echo "check_symbols: DEL_API functions missing from $so:" >&2
    echo "$missing" | sed 's/^/    /' >&2
    status=1
fi
if [ $status -eq 0 ]; then
    echo "check_symbols: $(wc -l < "$tmp/exported") symbols exported, all declared; all declared exported"
fi
exit $status
