#!/usr/bin/env bash
# Installs the Debian packages libdel needs to build and test (and, with
# --bench, to run the PyTorch reference benchmarks). Does nothing when
# everything is already there, so `make check` can call it every time.
# With --check it installs nothing: it names what is missing and fails, and
# says nothing when all is there (the Makefile runs it before building).
set -euo pipefail

# libgfortran-12-dev: libgfortran.so, which OpenBLAS's pkg-config file lists
#   for static links (-lgfortran in its Libs.private, so in
#   `pkg-config --static --libs libdel`); the runtime libgfortran5 alone has
#   only libgfortran.so.5. 12 is the version of Debian 12's gcc.
# python3-numpy: the tests of the numpy half of the Python bindings.
pkgs=(build-essential pkg-config libopenblas-dev libgfortran-12-dev zlib1g-dev check
      dataset-fashion-mnist python3 python3-numpy valgrind)

check=0
for arg in "$@"; do
    case "$arg" in
        --bench) pkgs+=(python3-torch python3-torchvision) ;;
        --check) check=1 ;;
        -h|--help)
            echo "usage: $0 [--bench] [--check]"
            echo "  installs the missing build/test packages with apt-get;"
            echo "  --bench also installs python3-torch and python3-torchvision;"
            echo "  --check installs nothing: lists the missing packages and exits 1"
            exit 0 ;;
        *) echo "$0: unknown option '$arg' (expected --bench, --check)" >&2; exit 2 ;;
    esac
done

# Without dpkg this is not Debian: nothing to check against.
if [ $check = 1 ] && ! command -v dpkg-query >/dev/null 2>&1; then
    exit 0
fi

# One dpkg-query for the whole list; a package counts when its status is
# "installed" with no error flag (db:Status-Abbrev "ii " or "hi ").
# dpkg-query fails when it knows none of a name: not an error here.
installed=" $({ dpkg-query -W -f='${db:Status-Abbrev}${Package}\n' "${pkgs[@]}" 2>/dev/null || true; } |
              sed -n 's/^.i //p' | tr '\n' ' ') "
missing=()
for p in "${pkgs[@]}"; do
    case "$installed" in
        *" $p "*) ;;
        *) missing+=("$p") ;;
    esac
done

if [ $check = 1 ]; then
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all packages present"
    exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "deps: not root and no sudo; install these by hand: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
