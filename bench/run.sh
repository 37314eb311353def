#!/usr/bin/env bash
# make bench: libdel vs PyTorch throughput on fmnist-cnn and resnet20,
# prediction over the Fashion-MNIST training set, peak memory of fmnist-cnn
# training, and libdel vs torchvision augmentation speed, side by side.
#
# stdout: JSON lines only (sgemm_peak per thread count, then
# train_<model> / infer_<model> per thread count, then predict_fmnist_cnn
# per thread count, then randaugment_32/_224
# and cropflip_32/_224 with 1 thread, then peak_rss_train_fmnist_cnn per
# thread count, each with libdel, the reference and ratio = libdel /
# reference for speed, reference / libdel for memory: > 1 = libdel better).
# stderr: progress and per-run details.
#
# Environment: BENCH_SUITES (default "throughput predict augment memory kd pl
# recipe"; "recipe": recipe_fmnist1k_r1 per thread count, once (not per
# round: a run takes minutes), the wall time of FMNIST-1k's R1 (3,000 steps,
# std aug on the trainer's prefetch thread, test evaluation included, data
# loading excluded): bench/fmnist1k.c vs bench/fmnist1k_torch.py, seed 0;
# "pl": train_pseudo_label_fmnist_cnn per thread count, R4's pseudo-label
# step with its std aug on the prefetch thread, and the same step on
# pre-augmented batches (libdel), bench/pl_step.c vs bench/pl_step_torch.py; "kd":
# train_kd_fmnist_cnn per thread count, a distillation step with a live
# teacher, bench/kd_step.c vs bench/kd_step_torch.py;
# "throughput" includes the sgemm check), BENCH_MODELS (default
# "fmnist-cnn resnet20", throughput only), BENCH_RSS_STEPS (default 20,
# training steps of the memory runs), BENCH_THREADS (default "1 2",
# throughput, predict and memory: augmentation is timed with 1 thread, one
# data-loading worker),
# BENCH_ROUNDS (default 3; each round runs libdel and the reference once,
# in alternating order, so that noise from other work on the machine hits
# both), PYTHON (default /usr/bin/python3, the interpreter with Debian's
# python3-torch and python3-torchvision).
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
SUITES=${BENCH_SUITES:-"throughput predict augment memory kd pl recipe"}
MODELS=${BENCH_MODELS:-"fmnist-cnn resnet20"}
RSS_STEPS=${BENCH_RSS_STEPS:-20}

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

want() { [[ " $SUITES " == *" $1 "* ]]; }

for suite in $SUITES; do
    [[ $suite == throughput || $suite == predict || $suite == augment || $suite == memory || $suite == kd || $suite == pl || $suite == recipe ]] ||
        { say "BENCH_SUITES: unknown suite '$suite' (known: throughput predict augment memory kd pl recipe)"; exit 1; }
done
for model in $MODELS; do
    [[ $model == fmnist-cnn || $model == resnet20 ]] ||
        { say "BENCH_MODELS: unknown model '$model' (known: fmnist-cnn resnet20)"; exit 1; }
done
exes=()
want throughput && exes+=("$BIN/sgemm_check" "$BIN/throughput")
want predict && exes+=("$BIN/throughput")
want augment && exes+=("$BIN/augment")
want memory && exes+=("$BIN/throughput")
want kd && exes+=("$BIN/kd_step")
want pl && exes+=("$BIN/pl_step")
want recipe && exes+=("$BIN/fmnist1k")
for exe in "${exes[@]}"; do
    [[ -x $exe ]] || { say "$exe is missing: run 'make bench'"; exit 1; }
done
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    say "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
    exit 1
fi
if ! [[ $RSS_STEPS =~ ^[1-9][0-9]*$ ]]; then
    say "BENCH_RSS_STEPS must be a positive integer, got '$RSS_STEPS'"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_torch=1
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    say "PyTorch is not importable by $PYTHON: reporting libdel alone"
    have_torch=0
fi
have_torchvision=$have_torch
if [[ $have_torch == 1 ]] && { want augment || want pl || want recipe; } && ! "$PYTHON" -c 'import torchvision' 2>/dev/null; then
    say "torchvision is not importable by $PYTHON: reporting libdel's augmentation speed alone"
    have_torchvision=0
fi

if want throughput; then
    say "sgemm correctness and speed"
    for t in $THREADS_LIST; do
        if ! with_threads "$t" "$BIN/sgemm_check" -t "$t" >"$tmp/sgemm_$t.json"; then
            say "sgemm_check failed with $t thread(s): OpenBLAS gives wrong results, numbers would be meaningless"
            exit 1
        fi
        cat "$tmp/sgemm_$t.json"
    done
fi

run_libdel() {
    with_threads "$1" "$BIN/throughput" -t "$1" --model "$2" >>"$tmp/libdel.jsonl" ||
        { say "libdel throughput failed with $1 thread(s) on $2"; exit 1; }
}
run_torch() {
    [[ $have_torch == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/torch_throughput.py --threads "$1" --model "$2" >>"$tmp/torch.jsonl" ||
        { say "PyTorch throughput failed with $1 thread(s) on $2"; exit 1; }
}

# del_model_predict over the 60,000 Fashion-MNIST training images against a
# PyTorch DataLoader + eval-mode inference over the same images.
run_libdel_predict() {
    with_threads "$1" "$BIN/throughput" -t "$1" --mode predict >>"$tmp/libdel.jsonl" ||
        { say "libdel predict failed with $1 thread(s)"; exit 1; }
}
run_torch_predict() {
    [[ $have_torch == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/torch_throughput.py --threads "$1" --mode predict >>"$tmp/torch.jsonl" ||
        { say "PyTorch predict failed with $1 thread(s)"; exit 1; }
}

# Peak RSS of fmnist-cnn training, each side in a fresh process (see
# bench/peak_rss.py). Run with glibc's malloc defaults, as users have them:
# the throughput setting keeps freed memory in the process, which is what
# this measures.
run_memory() {
    local no_torch=()
    [[ $have_torch == 1 ]] || no_torch=(--no-torch)
    with_threads "$1" env -u GLIBC_TUNABLES "$PYTHON" bench/peak_rss.py --threads "$1" \
        --model fmnist-cnn --steps "$RSS_STEPS" --python "$PYTHON" "${no_torch[@]}" >>"$tmp/memory.jsonl" ||
        { say "peak RSS measurement failed with $1 thread(s)"; exit 1; }
}

# Augmentation is a single-image call, timed with one thread as one
# data-loading worker runs it (torchvision's PIL transforms use one anyway).
run_libdel_augment() {
    with_threads 1 "$BIN/augment" -t 1 >>"$tmp/libdel.jsonl" ||
        { say "libdel augmentation benchmark failed"; exit 1; }
}
run_torch_augment() {
    [[ $have_torchvision == 1 ]] || return 0
    with_threads 1 "$PYTHON" bench/augment_torch.py --threads 1 >>"$tmp/torch.jsonl" ||
        { say "torchvision augmentation benchmark failed"; exit 1; }
}

# A distillation step with a live teacher (R6's), both sides.
run_libdel_kd() {
    with_threads "$1" "$BIN/kd_step" -t "$1" >>"$tmp/libdel.jsonl" ||
        { say "libdel distillation step failed with $1 thread(s)"; exit 1; }
}
run_torch_kd() {
    [[ $have_torch == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/kd_step_torch.py --threads "$1" >>"$tmp/torch.jsonl" ||
        { say "PyTorch distillation step failed with $1 thread(s)"; exit 1; }
}

# R4's pseudo-label step on real data, both sides.
run_libdel_pl() {
    with_threads "$1" "$BIN/pl_step" -t "$1" >>"$tmp/libdel.jsonl" ||
        { say "libdel pseudo-label step failed with $1 thread(s)"; exit 1; }
}
run_torch_pl() {
    [[ $have_torchvision == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/pl_step_torch.py --threads "$1" >>"$tmp/torch.jsonl" ||
        { say "PyTorch pseudo-label step failed with $1 thread(s)"; exit 1; }
}

# R1 of FMNIST-1k end to end, both sides: its seconds as a bench line
# (lower is better: ratio = reference / libdel).
recipe_line() {
    "$PYTHON" -c '
import json, sys
side, threads = sys.argv[1], int(sys.argv[2])
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
line = {"bench": "recipe_fmnist1k_r1", "threads": threads, "unit": "s", side: r[side + "_s"],
        side + "_acc": r[side + "_acc"], "lower_is_better": True}
if "reference_name" in r:
    line["reference_name"] = r["reference_name"]
if side + "_data_wait_s" in r:
    line[side + "_data_wait_s"] = r[side + "_data_wait_s"]
print(json.dumps(line))' "$@"
}
run_libdel_recipe() {
    with_threads "$1" "$BIN/fmnist1k" -t "$1" --seeds 0 R1 >"$tmp/recipe_libdel.json" ||
        { say "libdel R1 failed with $1 thread(s)"; exit 1; }
    recipe_line libdel "$1" <"$tmp/recipe_libdel.json" >>"$tmp/libdel.jsonl"
}
run_torch_recipe() {
    [[ $have_torchvision == 1 ]] || return 0
    with_threads "$1" "$PYTHON" bench/fmnist1k_torch.py -t "$1" --seeds 0 R1 >"$tmp/recipe_torch.json" ||
        { say "PyTorch R1 failed with $1 thread(s)"; exit 1; }
    recipe_line reference "$1" <"$tmp/recipe_torch.json" >>"$tmp/torch.jsonl"
}

# Runs "$1" then "$2" in odd rounds and the other way round in even ones.
alternate() {
    if (($3 % 2)); then "$1" "${@:4}"; "$2" "${@:4}"; else "$2" "${@:4}"; "$1" "${@:4}"; fi
}

: >"$tmp/libdel.jsonl"
: >"$tmp/torch.jsonl"
: >"$tmp/memory.jsonl"
if want throughput; then
    for t in $THREADS_LIST; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for model in $MODELS; do
                say "throughput: $model, threads $t, round $r/$ROUNDS"
                alternate run_libdel run_torch "$r" "$t" "$model"
            done
        done
    done
fi
if want predict; then
    for t in $THREADS_LIST; do
        for ((r = 1; r <= ROUNDS; r++)); do
            say "predict: fmnist-cnn over 60,000 images, threads $t, round $r/$ROUNDS"
            alternate run_libdel_predict run_torch_predict "$r" "$t"
        done
    done
fi
if want augment; then
    for ((r = 1; r <= ROUNDS; r++)); do
        say "augmentation: 1 thread, round $r/$ROUNDS"
        alternate run_libdel_augment run_torch_augment "$r"
    done
fi

if want kd; then
    for t in $THREADS_LIST; do
        for ((r = 1; r <= ROUNDS; r++)); do
            say "distillation step: threads $t, round $r/$ROUNDS"
            alternate run_libdel_kd run_torch_kd "$r" "$t"
        done
    done
fi

if want pl; then
    for t in $THREADS_LIST; do
        for ((r = 1; r <= ROUNDS; r++)); do
            say "pseudo-label step: threads $t, round $r/$ROUNDS"
            alternate run_libdel_pl run_torch_pl "$r" "$t"
        done
    done
fi

if want recipe; then
    for t in $THREADS_LIST; do
        say "R1 of FMNIST-1k end to end: threads $t (once; minutes per side)"
        alternate run_libdel_recipe run_torch_recipe 1 "$t"
    done
fi

if want memory; then
    for t in $THREADS_LIST; do
        for ((r = 1; r <= ROUNDS; r++)); do
            say "peak memory: fmnist-cnn training, threads $t, round $r/$ROUNDS"
            run_memory "$t"
        done
    done
fi

"$PYTHON" bench/report.py throughput "$tmp/libdel.jsonl" "$tmp/torch.jsonl" "$tmp/memory.jsonl"
