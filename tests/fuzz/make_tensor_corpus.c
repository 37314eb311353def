/* Writes the seed corpus of fuzz_tensor_payload: DIR/tensor_payload/, the
 * uncompressed payloads of small tensors of every dtype and rank (one with
 * NaN and infinity) and a few damaged ones (short elements, trailing
 * bytes, a zero dim, dims whose product wraps, an unknown dtype).
 * usage: make_tensor_corpus DIR (DIR/tensor_payload must exist).
 * tests/fuzz/build.sh builds and runs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "del.h"

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tensor_payload/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_tensor_corpus: cannot write %s\n", path);
        exit(1);
    }
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The payload the library writes for t, in *len bytes (malloc'd). */
static uint8_t *payload_of(const del_tensor *t, size_t *len)
{
    void *buf = NULL;
    size_t n = 0;
    if (del_tensor_save_buffer_flags(t, &buf, &n, DEL_SAVE_ALLOW_NONFINITE) != DEL_OK) {
        fprintf(stderr, "make_tensor_corpus: %s\n", del_last_error());
        exit(1);
    }
    const uint8_t *f = buf;
    uLongf raw = 0;
    for (int i = 7; i >= 0; i--)
        raw = raw << 8 | f[24 + i];
    uint8_t *p = malloc(raw ? raw : 1);
    if (!p || uncompress(p, &raw, f + 40, (uLong)(n - 40)) != Z_OK)
        exit(1);
    del_buffer_free(buf);
    *len = raw;
    return p;
}

static del_tensor *filled(del_dtype dtype, int ndim, const int64_t *shape)
{
    del_tensor *t = NULL;
    if (del_tensor_new(&t, dtype, ndim, shape) != DEL_OK)
        exit(1);
    uint8_t *d = del_tensor_data(t);
    for (size_t k = 0; k < del_tensor_nbytes(t); k++)
        d[k] = (uint8_t)(k * 37 + 11);
    if (dtype == DEL_DTYPE_F32) {
        float *f = del_tensor_data(t);
        for (int64_t k = 0; k < del_tensor_numel(t); k++)
            f[k] = (float)k * 0.25f - 1.0f;
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static const int64_t shapes[4][4] = {{3}, {2, 3}, {2, 1, 3}, {1, 2, 2, 2}};
    static const del_dtype dtypes[3] = {DEL_DTYPE_F32, DEL_DTYPE_U8, DEL_DTYPE_I32};
    static const char *const names[3] = {"f32", "u8", "i32"};
    char name[64];
    for (int d = 0; d < 3; d++) {
        for (int r = 0; r < 4; r++) {
            del_tensor *t = filled(dtypes[d], r + 1, shapes[r]);
            size_t n = 0;
            uint8_t *p = payload_of(t, &n);
            snprintf(name, sizeof name, "%s_rank%d.bin", names[d], r + 1);
            put_file(dir, name, p, n);
            free(p);
            del_tensor_free(t);
        }
    }
    /* Soft labels with a NaN and an infinity (saved with the flag). */
    del_tensor *t = filled(DEL_DTYPE_F32, 2, shapes[1]);
    float *f = del_tensor_data(t);
    f[1] = NAN;
    f[4] = -INFINITY;
    size_t n = 0;
    uint8_t *p = payload_of(t, &n);
    put_file(dir, "f32_nonfinite.bin", p, n);
    /* Damaged copies of that payload (8 + 16 header bytes, 24 of elements). */
    put_file(dir, "short_elements.bin", p, n - 3);
    uint8_t *q = malloc(n + 4);
    memcpy(q, p, n);
    memset(q + n, 0, 4);
    put_file(dir, "trailing.bin", q, n + 4);
    memcpy(q, p, n);
    put_le(q + 16, 0, 8); /* the second dim 0 */
    put_file(dir, "zero_dim.bin", q, n);
    memcpy(q, p, n);
    put_le(q + 8, (uint64_t)1 << 32, 8);
    put_le(q + 16, (uint64_t)1 << 32, 8); /* 2^64 elements: wraps to 0 */
    put_file(dir, "wrapping_dims.bin", q, 24);
    memcpy(q, p, n);
    put_le(q, 3, 4); /* no such dtype */
    put_file(dir, "bad_dtype.bin", q, n);
    free(q);
    free(p);
    del_tensor_free(t);
    return 0;
}
