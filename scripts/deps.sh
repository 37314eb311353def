#!/usr/bin/env bash
# Installs the Debian packages libdel needs to build and test (and, with
# --bench, to run the PyTorch reference benchmarks). Does nothing when
# everything is already there, so `make check` can call it every time.
set -euo pipefail

pkgs=(build-essential pkg-config libopenblas-dev zlib1g-dev check
      dataset-fashion-mnist python3 valgrind)

for arg in "$@"; do
    case "$arg" in
        --bench) pkgs+=(python3-torch python3-torchvision python3-numpy) ;;
        -h|--help)
            echo "usage: $0 [--bench]"
            echo "  installs the missing build/test packages with apt-get;"
            echo "  --bench also installs python3-torch, python3-torchvision, python3-numpy"
            exit 0 ;;
        *) echo "$0: unknown option '$arg' (expected --bench)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

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
