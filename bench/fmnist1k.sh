#!/usr/bin/env bash
# make bench-fmnist1k: FMNIST-1k test accuracy and time, libdel vs PyTorch.
#
# Environment: RECIPES (default "R0"), SEEDS (default "0"; accuracy on 1,000
# labels is noisy, so several seeds give a fairer comparison), STEPS (empty:
# each recipe's own count; a small number makes a smoke run), THREADS (empty:
# the number of CPUs), PYTHON (default /usr/bin/python3).
#
# stdout: one JSON line per recipe
#   {"recipe", "libdel_acc", "reference_acc", "libdel_s", "reference_s", "seeds", ...}
# with accuracies and seconds (training + test evaluation) averaged over the
# seeds, and the per-seed accuracies; recipes of several parts (R6: teacher,
# alone, distilled; R7: pretrained_old, probe_new, ...) give one line per
# part, with "part" after "recipe". stderr: progress. R6's teacher and R7's
# pre-trained model pass between parts through files in build/fmnist1k-models.
# As in run.sh, OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are removed for both sides
# so that the timings are those a user's machine would see.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=build/bench/fmnist1k
PYTHON=${PYTHON:-/usr/bin/python3}
RECIPES=${RECIPES:-R0}
SEEDS=${SEEDS:-0}
STEPS=${STEPS:-}
THREADS=${THREADS:-$(nproc)}

# glibc returns every freed block over 32 MiB (and the top of the heap) to
# the kernel, and PyTorch frees and reallocates its 50 MB activations every
# step; in a VM each re-fault is costly enough to slow PyTorch several-fold
# (1-thread inference 117 -> 1,416 img/s here). Keeping freed memory in the
# process gives PyTorch the speed it has on bare metal; libdel reuses its
# buffers, so the setting is the same for both sides and only favours the
# reference. BENCH_GLIBC_TUNABLES="" runs with glibc's defaults.
MALLOC_TUNABLES=${BENCH_GLIBC_TUNABLES-glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296}

say() { echo "bench-fmnist1k: $*" >&2; }

[[ -x $BIN ]] || { say "$BIN is missing: run 'make bench-fmnist1k'"; exit 1; }
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || { say "THREADS must be a positive integer, got '$THREADS'"; exit 1; }
[[ -z $STEPS || $STEPS =~ ^[1-9][0-9]*$ ]] || { say "STEPS must be a positive integer, got '$STEPS'"; exit 1; }
[[ $SEEDS =~ ^[0-9\ ]*[0-9][0-9\ ]*$ ]] || { say "SEEDS must be non-negative integers, got '$SEEDS'"; exit 1; }

# Every recipe must exist on both sides before hours of training start.
libdel_recipes=$("$BIN" --list | cut -f1)
torch_recipes=$("$PYTHON" bench/fmnist1k_torch.py --list | cut -f1)
for r in $RECIPES; do
    if ! grep -qx -- "$r" <<<"$libdel_recipes"; then
        say "unknown recipe '$r' (libdel knows: ${libdel_recipes//$'\n'/ })"
        exit 1
    fi
    if ! grep -qx -- "$r" <<<"$torch_recipes"; then
        say "recipe '$r' has no PyTorch reference yet (bench/fmnist1k_torch.py knows: ${torch_recipes//$'\n'/ })"
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steps_arg=()
[[ -n $STEPS ]] && steps_arg=(--steps "$STEPS")

with_threads() {
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES="$MALLOC_TUNABLES" \
        OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" "$@"
}

# One (recipe, seed) at a time, the two sides back to back, so that both
# see about the same machine load.
for r in $RECIPES; do
    for s in $SEEDS; do
        with_threads "$BIN" -t "$THREADS" --seeds "$s" "${steps_arg[@]}" "$r" >>"$tmp/libdel.jsonl" ||
            { say "libdel failed on $r seed $s"; exit 1; }
        with_threads "$PYTHON" bench/fmnist1k_torch.py -t "$THREADS" --seeds "$s" "${steps_arg[@]}" "$r" \
            >>"$tmp/torch.jsonl" || { say "PyTorch failed on $r seed $s"; exit 1; }
    done
done

"$PYTHON" bench/report.py fmnist1k "$tmp/libdel.jsonl" "$tmp/torch.jsonl"
