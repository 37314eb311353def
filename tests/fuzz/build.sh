#!/bin/sh
# Builds the model-, checkpoint- and tensor-loader fuzz targets with clang's
# libFuzzer, ASan and UBSan, and regenerates the seed corpora.
# docs/file-format.md says how to run them.
#   usage: tests/fuzz/build.sh [OUTDIR]      (default build/fuzz)
# Needs clang and its runtime (Debian: apt-get install clang libclang-rt-14-dev
# or the clang-14 package, which ships libclang_rt.fuzzer), zlib and OpenBLAS.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-build/fuzz}
CC=${CC:-clang}
mkdir -p "$OUT/obj"

BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || true)
BLAS_LIBS=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
COMMON="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -Iinclude -Isrc $BLAS_CFLAGS"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
LIBCFLAGS="$COMMON $SAN -fsanitize=fuzzer-no-link -DDEL_BUILDING_LIBRARY -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"

# The library, instrumented (checksums not enforced: see src/io/format.c).
# A file clang cannot compile (GCC-only vector builtins in a backend kernel)
# is built uninstrumented with gcc instead: the loader is what is fuzzed.
objs=
for src in src/*/*.c src/*/*/*.c; do
    obj="$OUT/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    # Known, reported: src/nn/model.c computes NULL + 0 (a model without
    # state) in layer_init, which clang's pointer-overflow check flags on
    # every linear layer; silenced there until it is fixed.
    extra=
    [ "$src" = src/nn/model.c ] && extra=-fno-sanitize=pointer-overflow
    # shellcheck disable=SC2086
    if ! $CC $LIBCFLAGS $extra -c "$src" -o "$obj" 2>"$OUT/obj/last.err"; then
        echo "build.sh: $CC cannot compile $src; using ${FALLBACK_CC:-gcc} without instrumentation" >&2
        # shellcheck disable=SC2086
        ${FALLBACK_CC:-gcc} $COMMON -O2 -DDEL_BUILDING_LIBRARY -c "$src" -o "$obj"
    fi
    objs="$objs $obj"
done

for target in fuzz_model_load fuzz_model_payload; do
    extra=
    [ "$target" = fuzz_model_payload ] && extra=-DFUZZ_PAYLOAD
    # shellcheck disable=SC2086
    $CC $COMMON $SAN -fsanitize=fuzzer $extra tests/fuzz/fuzz_model_load.c $objs \
        -o "$OUT/$target" $BLAS_LIBS -lz -lpthread -lm
done

for target in fuzz_checkpoint_load fuzz_checkpoint_payload; do
    extra=
    [ "$target" = fuzz_checkpoint_payload ] && extra=-DFUZZ_PAYLOAD
    # shellcheck disable=SC2086
    $CC $COMMON $SAN -fsanitize=fuzzer $extra tests/fuzz/fuzz_checkpoint_load.c $objs \
        -o "$OUT/$target" $BLAS_LIBS -lz -lpthread -lm
done

# shellcheck disable=SC2086
$CC $COMMON $SAN -fsanitize=fuzzer tests/fuzz/fuzz_tensor_payload.c $objs \
    -o "$OUT/fuzz_tensor_payload" $BLAS_LIBS -lz -lpthread -lm

# The corpus generators are ordinary programs: their files carry real checksums.
# shellcheck disable=SC2086
${FALLBACK_CC:-gcc} -std=c11 -O1 -g -D_GNU_SOURCE -DDEL_BUILDING_LIBRARY -Iinclude -Isrc $BLAS_CFLAGS \
    tests/fuzz/make_corpus.c src/*/*.c src/*/*/*.c -o "$OUT/make_corpus" $BLAS_LIBS -lz -lpthread -lm
# shellcheck disable=SC2086
${FALLBACK_CC:-gcc} -std=c11 -O1 -g -D_GNU_SOURCE -DDEL_BUILDING_LIBRARY -Iinclude -Isrc $BLAS_CFLAGS \
    tests/fuzz/make_ckpt_corpus.c src/*/*.c src/*/*/*.c -o "$OUT/make_ckpt_corpus" $BLAS_LIBS -lz -lpthread -lm
# shellcheck disable=SC2086
${FALLBACK_CC:-gcc} -std=c11 -O1 -g -D_GNU_SOURCE -DDEL_BUILDING_LIBRARY -Iinclude -Isrc $BLAS_CFLAGS \
    tests/fuzz/make_tensor_corpus.c src/*/*.c src/*/*/*.c -o "$OUT/make_tensor_corpus" $BLAS_LIBS -lz -lpthread -lm
mkdir -p tests/fuzz/corpus/model_load tests/fuzz/corpus/model_payload tests/fuzz/corpus/checkpoint_load \
    tests/fuzz/corpus/checkpoint_payload tests/fuzz/corpus/tensor_payload
"$OUT/make_corpus" tests/fuzz/corpus
"$OUT/make_ckpt_corpus" tests/fuzz/corpus
"$OUT/make_tensor_corpus" tests/fuzz/corpus
echo "built $OUT/fuzz_model_load, fuzz_model_payload, fuzz_checkpoint_load, fuzz_checkpoint_payload" \
    "and fuzz_tensor_payload;" \
    "seeds in tests/fuzz/corpus/"
