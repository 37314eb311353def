/* Helpers shared by the model-file test programs: a deterministic pattern,
 * temporary directories, model comparison, and an encoder for the layout of
 * docs/file-format.md written independently of the library (zlib does the
 * compression and the CRC-32). */
#ifndef DEL_TEST_MODEL_FILE_UTIL_H
#define DEL_TEST_MODEL_FILE_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/model_internal.h"
#include "testutil.h"

/* Deterministic pattern in [-1, 1), independent of the library. */
static inline void fill_pattern(float *d, int64_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
}

static inline del_tensor *pattern_input(const del_model *m, int n, uint32_t seed)
{
    int64_t shape[4] = {n, m->in_c, m->in_h, m->in_w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    fill_pattern(del_tensor_data(x), del_tensor_numel(x), seed);
    return x;
}

/* Makes the model look trained: parameters off their initial values and
 * batchnorm running statistics moved by a few training-mode forwards. */
static inline void perturb(del_model *m)
{
    fill_pattern(del_model_params(m), del_model_num_params(m), 7);
    del_tensor *x = pattern_input(m, 3, 11);
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int i = 0; i < 2; i++)
        ck_assert_del_ok(del_model_forward(m, x));
    del_tensor_free(x);
}

/* Eval-mode logits of m on a fixed input, copied out (caller frees). */
static inline float *eval_logits(del_model *m, int64_t *count)
{
    del_tensor *x = pattern_input(m, 2, 5);
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *y = del_model_output(m);
    *count = del_tensor_numel(y);
    float *out = malloc((size_t)*count * sizeof(float));
    ck_assert_ptr_nonnull(out);
    memcpy(out, del_tensor_data(y), (size_t)*count * sizeof(float));
    del_tensor_free(x);
    return out;
}

static char tmpdir[64]; /* each test program has its own */

static inline void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/del_io_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline int count_entries(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle))
            n++;
    closedir(d);
    return n;
}

static inline void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static inline uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *buf = malloc(1 << 22);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, 1 << 22, f);
    fclose(f);
    return buf;
}

static inline void assert_same_model(del_model *a, del_model *b)
{
    ck_assert_int_eq(a->in_c, b->in_c);
    ck_assert_int_eq(a->in_h, b->in_h);
    ck_assert_int_eq(a->in_w, b->in_w);
    ck_assert_int_eq(del_model_num_layers(a), del_model_num_layers(b));
    for (int i = 0; i < a->n_layers; i++) {
        ck_assert_str_eq(del_model_layer_type(a, i), del_model_layer_type(b, i));
        const del_layer_cfg *x = &a->layers[i].cfg, *y = &b->layers[i].cfg;
        ck_assert_int_eq(x->out, y->out);
        ck_assert_int_eq(x->kernel, y->kernel);
        ck_assert_int_eq(x->stride, y->stride);
        ck_assert_int_eq(x->pad, y->pad);
        ck_assert_int_eq(x->bias, y->bias);
        ck_assert(memcmp(&x->eps, &y->eps, sizeof x->eps) == 0);
        ck_assert(memcmp(&x->momentum, &y->momentum, sizeof x->momentum) == 0);
        ck_assert(memcmp(&x->p, &y->p, sizeof x->p) == 0);
    }
    ck_assert_int_eq(del_model_num_params(a), del_model_num_params(b));
    ck_assert(memcmp(a->params, b->params, (size_t)a->n_params * sizeof(float)) == 0);
    ck_assert_int_eq(a->n_state, b->n_state);
    if (a->n_state > 0)
        ck_assert(memcmp(a->state, b->state, (size_t)a->n_state * sizeof(float)) == 0);
    int64_t na = 0, nb = 0;
    float *la = eval_logits(a, &na), *lb = eval_logits(b, &nb);
    ck_assert_int_eq(na, nb);
    ck_assert(memcmp(la, lb, (size_t)na * sizeof(float)) == 0);
    free(la);
    free(lb);
}

/* Save to a file, load it back, compare. */
static inline void round_trip_file(del_model *m)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/model.delm", tmpdir);
    ck_assert_del_ok(del_model_save(m, path));
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
    del_model *back = NULL;
    ck_assert_del_ok(del_model_load(&back, path));
    ck_assert_int_eq(del_model_is_training(back), 1);
    assert_same_model(m, back);
    del_model_free(back);
    test_remove_tree(tmpdir);
}

/* ---- an independent encoder for the documented layout ---- */

typedef struct enc {
    uint8_t b[4096];
    size_t n;
} enc;

static inline void put_le(enc *e, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        e->b[e->n++] = (uint8_t)(v >> (8 * i));
}

static inline void put_f32(enc *e, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(e, u, 4);
}

static inline void put_str(enc *e, const char *s)
{
    put_le(e, strlen(s), 1);
    memcpy(e->b + e->n, s, strlen(s));
    e->n += strlen(s);
}

static inline void put_int_setting(enc *e, const char *key, int32_t v)
{
    put_str(e, key);
    put_le(e, 1, 1);
    put_le(e, (uint32_t)v, 4);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void set_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the header CRC after a test edits the header on purpose. */
static inline void fix_header_crc(uint8_t *file)
{
    set_le(file + 36, crc32(0L, file, 36), 4);
}

/* Wraps a payload in the documented container: *len receives the size. */
static inline uint8_t *container(const enc *payload, uint32_t version, size_t *len)
{
    uLongf zlen = compressBound(payload->n);
    uint8_t *file = malloc(40 + zlen);
    ck_assert_ptr_nonnull(file);
    ck_assert_int_eq(compress2(file + 40, &zlen, payload->b, payload->n, 9), Z_OK);
    memcpy(file, "DELM", 4);
    set_le(file + 4, version, 4);
    set_le(file + 8, 0, 4);
    set_le(file + 12, 40, 4);
    set_le(file + 16, zlen, 8);
    set_le(file + 24, payload->n, 8);
    set_le(file + 32, crc32(0L, file + 40, (uInt)zlen), 4);
    fix_header_crc(file);
    *len = 40 + zlen;
    return file;
}

/* input 1x1x2, flatten, linear(1, bias): y = w0*x0 + w1*x1 + b. The
 * record for linear is written by the caller-supplied function, so tests
 * can damage exactly one part. */
static inline void tiny_arch(enc *e, void (*linear_record)(enc *))
{
    e->n = 0;
    put_le(e, 1, 4);
    put_le(e, 1, 4);
    put_le(e, 2, 4);
    put_le(e, 2, 4); /* two layers */
    put_str(e, "flatten");
    put_le(e, 0, 1);
    linear_record(e);
}

static inline void good_linear(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "bias", 1); /* settings may come in any order */
    put_int_setting(e, "out", 1);
}

static inline void tiny_tensors(enc *e, uint64_t n_params)
{
    static const float w[3] = {0.5f, -2.0f, 0.25f}; /* w0, w1, b */
    put_le(e, n_params, 8);
    for (int i = 0; i < 3; i++) /* the count may lie; the values are always three */
        put_f32(e, w[i]);
    put_le(e, 0, 8); /* no state */
}

/* Loads bytes and expects DEL_EFORMAT with needle in the message. */
static inline void expect_corrupt(const void *data, size_t len, const char *needle)
{
    del_model *m = (del_model *)&len; /* must be reset to NULL */
    ck_assert_del_err(del_model_load_buffer(&m, data, len), DEL_EFORMAT, needle);
    ck_assert_ptr_null(m);
}

static inline uint8_t *tiny_file(size_t *len)
{
    enc e;
    tiny_arch(&e, good_linear);
    tiny_tensors(&e, 3);
    return container(&e, 1, len);
}

#endif
