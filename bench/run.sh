#!/usr/bin/env bash
# make bench: libdel vs PyTorch throughput on fmnist-cnn, side by side.
#
# stdout: JSON lines only (sgemm_peak per thread count, then
# train_fmnist_cnn / infer_fmnist_cnn per thread count with libdel, the
# PyTorch reference and ratio = libdel / reference, > 1 = libdel faster).
# stderr: progress and per-run details.
#
# Environment: BENCH_THREADS (default "1 2"), BENCH_ROUNDS (default 3; each
# round runs libdel and PyTorch once, in alternating order, so that noise
# from other work on the machine hits both), PYTHON (default
# /usr/bin/python3, the interpreter with Debian's python3-torch).
#
# Both sides run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE: users'
# machines do not set them, and on this one they pin OpenBLAS to Haswell
# kernels at about half speed. That is done here only, for this command.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=build/bench
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS_LIST=${BENCH_THREADS:-"1 2"}
ROUNDS=${BENCH_ROUNDS:-3}

# glibc returns every freed block over 32 MiB (and the top of the heap) to
# the kernel, and PyTorch frees and reallocates its 50 MB activations every
# step; in a VM each re-fault is costly enough to slow PyTorch several-fold
# (1-thread inference 117 -> 1,416 img/s here). Keeping freed memory in the
# process gives PyTorch the speed it has on bare metal; libdel reuses its
# buffers, so the setting is the same for both sides and only favours the
# reference. BENCH_GLIBC_TUNABLES="" runs with glibc's defaults.
MALLOC_TUNABLES=${BENCH_GLIBC_TUNABLES-glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296}

say() { echo "bench: $*" >&2; }

# Runs "$@" with T threads everywhere and the user-like OpenBLAS setup.
with_threads() {
    local t=$1
    shift
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES="$MALLOC_TUNABLES" \
        OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" "$@"
}

for exe in "$BIN/sgemm_check" "$BIN/throughput"; do
    [[ -x $exe ]] || { say "$exe is missing: run 'make bench'"; exit 1; }
done
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    say "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_torch=1
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    say "PyTorch is not importable by $PYTHON: reporting libdel alone"
    have_torch=0
fi

say "sgemm correctness and speed"
for t in $THREADS_LIST; do
    if ! with_threads "$t" "$BIN/sgemm_check" -t "$t" >"$tmp/sgemm_$t.json"; then
        say "sgemm_check failed with $t thread(s): OpenBLAS gives wrong results, numbers would be meaningless"
        exit 1
    fi
    cat "$tmp/sgemm_$t.json"
done

run_libdel() {
    with_threads "$1" "$BIN/throughput" -t "$1" >>"$tmp/libdel.jsonl" ||
        { say "libdel throughput failed with $1 thread(s)"; exit 1; }
}
run_torch() {
    [[ $have_torch == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/torch_throughput.py --threads "$1" >>"$tmp/torch.jsonl" ||
        { say "PyTorch throughput failed with $1 thread(s)"; exit 1; }
}

: >"$tmp/libdel.jsonl"
: >"$tmp/torch.jsonl"
for t in $THREADS_LIST; do
    for ((r = 1; r <= ROUNDS; r++)); do
        say "threads $t, round $r/$ROUNDS"
        if ((r % 2)); then
            run_libdel "$t"
            run_torch "$t"
        else
            run_torch "$t"
            run_libdel "$t"
        fi
    done
done

"$PYTHON" bench/report.py throughput "$tmp/libdel.jsonl" "$tmp/torch.jsonl"
