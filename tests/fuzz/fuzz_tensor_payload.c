/* libFuzzer target for the tensor-file loader (tests/fuzz/build.sh builds
 * it as fuzz_tensor_payload).
 *
 * The input is an uncompressed tensor payload (docs/file-format.md,
 * "Tensor files"); the target wraps it in a valid "DELT" container
 * (zlib, CRC-32) first, so mutations reach the shape and element checks
 * instead of dying at the checksum (the container itself is fuzzed
 * through the same code by fuzz_model_load and fuzz_checkpoint_load). The
 * contract: no crash, no leak, no undefined behaviour, *out NULL on
 * failure, and a tensor that loads is whole: the payload has exactly one
 * encoding, so saving the loaded tensor (non-finite values allowed) must
 * give back the input payload byte for byte, and that file must load to
 * the same dtype, shape and elements. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "del.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The documented container around payload. */
static uint8_t *wrap(const uint8_t *payload, size_t len, size_t *out_len)
{
    uLongf zlen = compressBound(len);
    uint8_t *file = malloc(40 + zlen);
    if (!file || compress2(file + 40, &zlen, payload, len, 1) != Z_OK) {
        free(file);
        return NULL;
    }
    memcpy(file, "DELT", 4);
    put_le(file + 4, 1, 4);
    put_le(file + 8, 0, 4);
    put_le(file + 12, 40, 4);
    put_le(file + 16, zlen, 8);
    put_le(file + 24, len, 8);
    put_le(file + 32, crc32(0L, file + 40, (uInt)zlen), 4);
    put_le(file + 36, crc32(0L, file, 36), 4);
    *out_len = 40 + zlen;
    return file;
}

static void check_loaded(del_tensor *t, const uint8_t *payload, size_t len)
{
    void *buf = NULL;
    size_t n = 0;
    if (del_tensor_save_buffer_flags(t, &buf, &n, DEL_SAVE_ALLOW_NONFINITE) != DEL_OK || n < 40)
        abort(); /* whatever loads must save */
    const uint8_t *f = buf;
    uint64_t raw = 0;
    for (int i = 7; i >= 0; i--)
        raw = raw << 8 | f[24 + i];
    if (raw != len)
        abort();
    uint8_t *again = malloc(len ? len : 1);
    uLongf alen = (uLongf)len;
    if (!again || uncompress(again, &alen, f + 40, (uLong)(n - 40)) != Z_OK || alen != len ||
        memcmp(again, payload, len) != 0)
        abort(); /* the one encoding of the tensor is the input */
    free(again);
    del_tensor *back = NULL;
    if (del_tensor_load_buffer(&back, buf, n) != DEL_OK)
        abort();
    if (del_tensor_dtype(back) != del_tensor_dtype(t) || del_tensor_ndim(back) != del_tensor_ndim(t) ||
        del_tensor_nbytes(back) != del_tensor_nbytes(t) ||
        memcmp(del_tensor_data(back), del_tensor_data(t), del_tensor_nbytes(t)) != 0)
        abort();
    for (int i = 0; i < del_tensor_ndim(t); i++)
        if (del_tensor_dim(back, i) != del_tensor_dim(t, i))
            abort();
    del_tensor_free(back);
    del_buffer_free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = 0;
    uint8_t *file = wrap(data, size, &len);
    if (!file)
        return 0;
    del_tensor *t = NULL;
    if (del_tensor_load_buffer(&t, file, len) == DEL_OK)
        check_loaded(t, data, size);
    else if (t != NULL)
        abort(); /* *out must be NULL after a failure */
    del_tensor_free(t);
    free(file);
    return 0;
}
