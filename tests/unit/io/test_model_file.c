/* Model files: round trips of presets and spec-built models, the byte
 * layout of docs/file-format.md (checked with this file's own encoder and
 * zlib, not the library's), every kind of damaged or hostile file, and
 * crash-safe saving. */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/model_internal.h"
#include "testutil.h"

/* ---- helpers ---- */

/* Deterministic pattern in [-1, 1), independent of the library. */
static void fill_pattern(float *d, int64_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
}

static del_tensor *pattern_input(const del_model *m, int n, uint32_t seed)
{
    int64_t shape[4] = {n, m->in_c, m->in_h, m->in_w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    fill_pattern(del_tensor_data(x), del_tensor_numel(x), seed);
    return x;
}

/* Makes the model look trained: parameters off their initial values and
 * batchnorm running statistics moved by a few training-mode forwards. */
static void perturb(del_model *m)
{
    fill_pattern(del_model_params(m), del_model_num_params(m), 7);
    del_tensor *x = pattern_input(m, 3, 11);
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int i = 0; i < 2; i++)
        ck_assert_del_ok(del_model_forward(m, x));
    del_tensor_free(x);
}

/* Eval-mode logits of m on a fixed input, copied out (caller frees). */
static float *eval_logits(del_model *m, int64_t *count)
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

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/del_io_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int count_entries(const char *dir, const char *needle)
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

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *buf = malloc(1 << 22);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, 1 << 22, f);
    fclose(f);
    return buf;
}

static void assert_same_model(del_model *a, del_model *b)
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
static void round_trip_file(del_model *m)
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
    remove_tree(tmpdir);
}

/* ---- an independent encoder for the documented layout ---- */

typedef struct enc {
    uint8_t b[4096];
    size_t n;
} enc;

static void put_le(enc *e, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        e->b[e->n++] = (uint8_t)(v >> (8 * i));
}

static void put_f32(enc *e, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(e, u, 4);
}

static void put_str(enc *e, const char *s)
{
    put_le(e, strlen(s), 1);
    memcpy(e->b + e->n, s, strlen(s));
    e->n += strlen(s);
}

static void put_int_setting(enc *e, const char *key, int32_t v)
{
    put_str(e, key);
    put_le(e, 1, 1);
    put_le(e, (uint32_t)v, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void set_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the header CRC after a test edits the header on purpose. */
static void fix_header_crc(uint8_t *file)
{
    set_le(file + 36, crc32(0L, file, 36), 4);
}

/* Wraps a payload in the documented container: *len receives the size. */
static uint8_t *container(const enc *payload, uint32_t version, size_t *len)
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
static void tiny_arch(enc *e, void (*linear_record)(enc *))
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

static void good_linear(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "bias", 1); /* settings may come in any order */
    put_int_setting(e, "out", 1);
}

static void tiny_tensors(enc *e, uint64_t n_params)
{
    static const float w[3] = {0.5f, -2.0f, 0.25f}; /* w0, w1, b */
    put_le(e, n_params, 8);
    for (int i = 0; i < 3; i++) /* the count may lie; the values are always three */
        put_f32(e, w[i]);
    put_le(e, 0, 8); /* no state */
}

/* Loads bytes and expects DEL_EFORMAT with needle in the message. */
static void expect_corrupt(const void *data, size_t len, const char *needle)
{
    del_model *m = (del_model *)&len; /* must be reset to NULL */
    ck_assert_del_err(del_model_load_buffer(&m, data, len), DEL_EFORMAT, needle);
    ck_assert_ptr_null(m);
}

static uint8_t *tiny_file(size_t *len)
{
    enc e;
    tiny_arch(&e, good_linear);
    tiny_tensors(&e, 3);
    return container(&e, 1, len);
}

/* ---- round trips ---- */

START_TEST(test_round_trip_fmnist_cnn_keeps_params_state_and_logits)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    perturb(m);
    round_trip_file(m);
    del_model_free(m);
}
END_TEST

START_TEST(test_round_trip_mlp_keeps_params_and_logits)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    perturb(m);
    round_trip_file(m);
    del_model_free(m);
}
END_TEST

START_TEST(test_round_trip_spec_model_keeps_every_setting)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 3 9 7; conv2d 4 k=3 s=2 p=1 bias=1; "
                                             "batchnorm eps=1e-3 momentum=0.25; relu; maxpool 2 s=1; "
                                             "flatten; dropout 0.3; linear 6 bias=0; batchnorm; linear 2"));
    perturb(m);
    round_trip_file(m);
    del_model_free(m);
}
END_TEST

START_TEST(test_round_trip_model_without_layers)
{
    del_model *m = NULL, *back = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 3, 4));
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, &size));
    ck_assert_del_ok(del_model_load_buffer(&back, buf, size));
    ck_assert_int_eq(del_model_num_layers(back), 0);
    ck_assert_int_eq(back->in_c * 100 + back->in_h * 10 + back->in_w, 234);
    del_buffer_free(buf);
    del_model_free(back);
    del_model_free(m);
}
END_TEST

START_TEST(test_save_buffer_matches_saved_file_and_is_deterministic)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 8, 8, 3));
    perturb(m);
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, nf = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &a, &na));
    ck_assert_del_ok(del_model_save_buffer(m, &b, &nb));
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na) == 0);
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/m.delm", tmpdir);
    ck_assert_del_ok(del_model_save(m, path));
    uint8_t *f = read_file(path, &nf);
    ck_assert_uint_eq(nf, na);
    ck_assert(memcmp(f, a, na) == 0);
    free(f);
    remove_tree(tmpdir);
    del_buffer_free(a);
    del_buffer_free(b);
    del_model_free(m);
}
END_TEST

/* ---- the documented layout ---- */

START_TEST(test_saved_header_follows_documented_layout)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 1 2; flatten; linear 1"));
    void *buf = NULL;
    size_t n = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, &n));
    const uint8_t *p = buf;
    ck_assert(memcmp(p, "DELM", 4) == 0);
    ck_assert_uint_eq(get_le32(p + 4), 1);
    ck_assert_uint_eq(get_le32(p + 8), 0);
    ck_assert_uint_eq(get_le32(p + 12), 40);
    uint64_t zlen = get_le64(p + 16), rawlen = get_le64(p + 24);
    ck_assert_uint_eq(40 + zlen, n);
    ck_assert_uint_eq(get_le32(p + 32), crc32(0L, p + 40, (uInt)zlen));
    ck_assert_uint_eq(get_le32(p + 36), crc32(0L, p, 36));
    /* The payload is the tiny architecture of this file's encoder with the
     * model's own three parameters. */
    uint8_t raw[512];
    uLongf got = sizeof raw;
    ck_assert_int_eq(uncompress(raw, &got, p + 40, zlen), Z_OK);
    ck_assert_uint_eq(got, rawlen);
    enc want = {.n = 0};
    put_le(&want, 1, 4);
    put_le(&want, 1, 4);
    put_le(&want, 2, 4);
    put_le(&want, 2, 4);
    put_str(&want, "flatten");
    put_le(&want, 0, 1);
    put_str(&want, "linear");
    put_le(&want, 2, 1);
    put_int_setting(&want, "out", 1);
    put_int_setting(&want, "bias", 1);
    put_le(&want, 3, 8);
    for (int i = 0; i < 3; i++)
        put_f32(&want, del_model_params(m)[i]);
    put_le(&want, 0, 8);
    ck_assert_uint_eq(got, want.n);
    ck_assert(memcmp(raw, want.b, want.n) == 0);
    del_buffer_free(buf);
    del_model_free(m);
}
END_TEST

START_TEST(test_hand_built_file_loads_and_computes_by_hand)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    del_model *m = NULL;
    ck_assert_del_ok(del_model_load_buffer(&m, file, len));
    /* x = (2, 3): y = 0.5*2 - 2*3 + 0.25 = -4.75 */
    int64_t shape[4] = {1, 1, 1, 2};
    float xv[2] = {2.0f, 3.0f};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    memcpy(del_tensor_data(x), xv, sizeof xv);
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_float_eq(((float *)del_tensor_data(del_model_output(m)))[0], -4.75f);
    del_tensor_free(x);
    del_model_free(m);
    free(file);
}
END_TEST

/* ---- damaged and hostile files ---- */

START_TEST(test_load_missing_file_is_eio_with_reason)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_load(&m, "/nonexistent/dir/model.delm"), DEL_EIO,
                      "No such file or directory");
    ck_assert_ptr_null(m);
    ck_assert_del_err(del_model_load(&m, "/tmp"), DEL_EIO, "/tmp");
}
END_TEST

START_TEST(test_load_empty_and_foreign_files_are_not_models)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    write_file(path, "", 0);
    del_model *m = NULL;
    ck_assert_del_err(del_model_load(&m, path), DEL_EFORMAT, "is not a libdel model");
    snprintf(path, sizeof path, "%s/text.txt", tmpdir);
    write_file(path, "hello, world\n", 13);
    ck_assert_del_err(del_model_load(&m, path), DEL_EFORMAT, "text.txt' is not a libdel model (bad magic)");
    ck_assert_ptr_null(m);
    remove_tree(tmpdir);
    expect_corrupt("DEL", 3, "bad magic");
}
END_TEST

START_TEST(test_load_truncated_at_every_length_fails_cleanly)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, file, k);
        expect_corrupt(copy, k, k < 40 ? (k < 4 ? "libdel model" : "truncated") : "truncated");
        free(copy);
    }
    free(file);
}
END_TEST

START_TEST(test_load_every_flipped_header_byte_is_detected)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    for (size_t k = 0; k < 40; k++) {
        for (int bit = 0; bit < 8; bit++) {
            file[k] ^= (uint8_t)(1u << bit);
            expect_corrupt(file, len, "");
            file[k] ^= (uint8_t)(1u << bit);
        }
    }
    free(file);
}
END_TEST

START_TEST(test_load_flipped_payload_byte_fails_the_checksum)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    for (size_t k = 40; k < len; k++) {
        file[k] ^= 0x10;
        expect_corrupt(file, len, "checksum mismatch");
        file[k] ^= 0x10;
    }
    free(file);
}
END_TEST

START_TEST(test_load_future_version_names_both_versions)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    set_le(file + 4, 7, 4);
    fix_header_crc(file);
    expect_corrupt(file, len, "written by a newer libdel (format 7, this build reads <= 1)");
    set_le(file + 4, 0, 4);
    fix_header_crc(file);
    expect_corrupt(file, len, "format version 0");
    free(file);
}
END_TEST

START_TEST(test_load_lying_sizes_are_refused_before_allocating)
{
    size_t len = 0;
    uint8_t *file = tiny_file(&len);
    uint64_t zlen = get_le64(file + 16), rawlen = get_le64(file + 24);
    static const struct {
        int off;
        uint64_t value;
        const char *needle;
    } cases[] = {
        {24, UINT64_MAX, "too large"},
        {24, (uint64_t)1 << 40, "too large"},
        {16, UINT64_MAX / 2, "too large"},
        {16, (uint64_t)1 << 35, "truncated"},
        {24, 1 << 30, "cannot decompress"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_le(file + cases[i].off, cases[i].value, 8);
        fix_header_crc(file);
        expect_corrupt(file, len, cases[i].needle);
        set_le(file + 16, zlen, 8);
        set_le(file + 24, rawlen, 8);
    }
    set_le(file + 24, rawlen + 1, 8);
    fix_header_crc(file);
    expect_corrupt(file, len, "does not decompress to the declared");
    set_le(file + 24, rawlen - 1, 8);
    fix_header_crc(file);
    expect_corrupt(file, len, "does not decompress to the declared");
    set_le(file + 24, rawlen, 8);
    set_le(file + 8, 1, 4);
    fix_header_crc(file);
    expect_corrupt(file, len, "unknown flags");
    free(file);

    /* trailing bytes after the declared payload */
    file = tiny_file(&len);
    uint8_t *longer = calloc(len + 3, 1);
    memcpy(longer, file, len);
    expect_corrupt(longer, len + 3, "bytes after the payload");
    free(longer);
    free(file);
}
END_TEST

START_TEST(test_load_random_garbage_never_succeeds)
{
    uint32_t s = 12345;
    for (int trial = 0; trial < 300; trial++) {
        size_t len = (size_t)(trial * 7 % 200);
        uint8_t *buf = malloc(len + 1);
        for (size_t k = 0; k < len; k++) {
            s = s * 1664525u + 1013904223u;
            buf[k] = (uint8_t)(s >> 24);
        }
        if (trial % 2 && len >= 4)
            memcpy(buf, "DELM", 4);
        expect_corrupt(buf, len, "");
        free(buf);
    }
}
END_TEST

/* Payloads with valid checksums but bad contents: what only the parser can catch. */
static void bad_kernel_conv(enc *e)
{
    put_str(e, "conv2d");
    put_le(e, 5, 1);
    put_int_setting(e, "out", 2);
    put_int_setting(e, "kernel", 0);
    put_int_setting(e, "stride", 1);
    put_int_setting(e, "pad", 0);
    put_int_setting(e, "bias", 1);
}

static void unknown_type(enc *e)
{
    put_str(e, "resblock");
    put_le(e, 0, 1);
}

static void missing_setting(enc *e)
{
    put_str(e, "linear");
    put_le(e, 1, 1);
    put_int_setting(e, "out", 1);
}

static void unknown_setting(enc *e)
{
    put_str(e, "linear");
    put_le(e, 3, 1);
    put_int_setting(e, "out", 1);
    put_int_setting(e, "bias", 1);
    put_int_setting(e, "groups", 1);
}

/* A valid conv2d on its own, but it cannot follow flatten. */
static void conv_after_flatten(enc *e)
{
    put_str(e, "conv2d");
    put_le(e, 5, 1);
    put_int_setting(e, "out", 2);
    put_int_setting(e, "kernel", 1);
    put_int_setting(e, "stride", 1);
    put_int_setting(e, "pad", 0);
    put_int_setting(e, "bias", 1);
}

static void duplicate_setting(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "out", 1);
    put_int_setting(e, "out", 1);
}

static void float_for_int(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "bias", 1);
    put_str(e, "out");
    put_le(e, 2, 1);
    put_f32(e, 1.0f);
}

static void huge_linear(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "out", 1 << 24);
    put_int_setting(e, "bias", 1);
}

static void out_of_range(enc *e)
{
    put_str(e, "linear");
    put_le(e, 2, 1);
    put_int_setting(e, "out", INT32_MIN);
    put_int_setting(e, "bias", 1);
}

static void bad_name(enc *e)
{
    put_str(e, "LIN\xff");
    put_le(e, 0, 1);
}

START_TEST(test_load_corrupt_layer_records_name_the_record)
{
    static const struct {
        void (*record)(enc *);
        const char *needle;
    } cases[] = {
        {bad_kernel_conv, "corrupt layer record 1 (conv2d) in '<buffer>': 'kernel' must be >= 1"},
        {conv_after_flatten, "corrupt layer record 1 (conv2d) in '<buffer>': conv2d needs a 4-d input"},
        {unknown_type, "unknown layer type 'resblock'"},
        {missing_setting, "missing setting 'bias'"},
        {unknown_setting, "unknown setting 'groups'"},
        {duplicate_setting, "'out' given twice"},
        {float_for_int, "'out' has type 2"},
        {huge_linear, "do not fit"},
        {out_of_range, "outside"},
        {bad_name, "malformed layer type name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enc e;
        tiny_arch(&e, cases[i].record);
        tiny_tensors(&e, 3);
        size_t len = 0;
        uint8_t *file = container(&e, 1, &len);
        expect_corrupt(file, len, cases[i].needle);
        free(file);
    }
}
END_TEST

START_TEST(test_load_wrong_counts_and_trailing_bytes_are_corrupt)
{
    static const struct {
        uint64_t n_params;
        int extra;
        const char *needle;
    } cases[] = {
        {2, 0, "holds 2 parameters, its layers need 3"},
        {4, 0, "holds 4 parameters"},
        {3, 1, "unexpected bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enc e;
        tiny_arch(&e, good_linear);
        tiny_tensors(&e, cases[i].n_params);
        if (cases[i].extra)
            put_le(&e, 0, 1);
        size_t len = 0;
        uint8_t *file = container(&e, 1, &len);
        expect_corrupt(file, len, cases[i].needle);
        free(file);
    }
    /* absurd input shape and layer count */
    enc e = {.n = 0};
    put_le(&e, 0, 4);
    put_le(&e, 1, 4);
    put_le(&e, 1, 4);
    put_le(&e, 0, 4);
    size_t len = 0;
    uint8_t *file = container(&e, 1, &len);
    expect_corrupt(file, len, "input size 0");
    free(file);
    e.n = 0;
    put_le(&e, 1 << 20, 4);
    put_le(&e, 1 << 20, 4);
    put_le(&e, 1 << 20, 4);
    put_le(&e, 0, 4);
    file = container(&e, 1, &len);
    expect_corrupt(file, len, "values");
    free(file);
    e.n = 0;
    put_le(&e, 1, 4);
    put_le(&e, 1, 4);
    put_le(&e, 1, 4);
    put_le(&e, 0xFFFFFFFFu, 4);
    file = container(&e, 1, &len);
    expect_corrupt(file, len, "layers (at most");
    free(file);
}
END_TEST

/* ---- saving ---- */

START_TEST(test_save_into_missing_directory_is_eio_and_leaves_nothing)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 4, 4, 2));
    make_tmpdir();
    char path[160];
    snprintf(path, sizeof path, "%s/no/such/dir/m.delm", tmpdir);
    ck_assert_del_err(del_model_save(m, path), DEL_EIO, "No such file or directory");
    ck_assert_int_eq(count_entries(tmpdir, ""), 2); /* . and .. */
    remove_tree(tmpdir);
    del_model_free(m);
}
END_TEST

START_TEST(test_save_over_directory_fails_and_clobbers_nothing)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 4, 4, 2));
    make_tmpdir();
    char dir[128], inner[192];
    snprintf(dir, sizeof dir, "%s/target", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep.txt", dir);
    write_file(inner, "keep", 4);
    ck_assert_del_err(del_model_save(m, dir), DEL_EIO, "target");
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
    size_t n = 0;
    uint8_t *kept = read_file(inner, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(kept, "keep", 4) == 0);
    free(kept);
    remove_tree(tmpdir);
    del_model_free(m);
}
END_TEST

START_TEST(test_save_replaces_existing_file_and_failed_save_keeps_it)
{
    del_model *a = NULL, *b = NULL, *back = NULL;
    ck_assert_del_ok(del_model_preset(&a, "mlp", 1, 4, 4, 2));
    ck_assert_del_ok(del_model_preset(&b, "mlp", 1, 4, 4, 2));
    ck_assert_del_ok(del_model_init(b, 99));
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/m.delm", tmpdir);
    write_file(path, "old contents", 12);
    ck_assert_del_ok(del_model_save(a, path));
    ck_assert_del_ok(del_model_save(b, path));
    ck_assert_del_ok(del_model_load(&back, path));
    ck_assert(memcmp(back->params, b->params, (size_t)b->n_params * sizeof(float)) == 0);
    del_model_free(back);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    /* A read-only directory makes the save fail before path is touched
     * (root ignores permissions, so this part needs an ordinary user). */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(tmpdir, 0555), 0);
        ck_assert_del_err(del_model_save(a, path), DEL_EIO, "Permission denied");
        ck_assert_int_eq(chmod(tmpdir, 0755), 0);
        ck_assert_del_ok(del_model_load(&back, path));
        ck_assert(memcmp(back->params, b->params, (size_t)b->n_params * sizeof(float)) == 0);
        del_model_free(back);
    }
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
    remove_tree(tmpdir);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

START_TEST(test_null_arguments_are_einval)
{
    del_model *m = NULL, *loaded = NULL;
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_ok(del_model_new(&m, 1, 2, 2));
    ck_assert_del_err(del_model_save(NULL, "x"), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_save(m, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_model_load(NULL, "x"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_model_load(&loaded, NULL), DEL_EINVAL, "'path'");
    ck_assert_ptr_null(loaded);
    ck_assert_del_err(del_model_save_buffer(NULL, &buf, &size), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_load_buffer(NULL, "x", 1), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_model_load_buffer(&loaded, NULL, 1), DEL_EINVAL, "'data'");
    ck_assert_del_err(del_model_load_buffer(&loaded, NULL, 0), DEL_EFORMAT, "empty");
    del_buffer_free(NULL);
    del_model_free(m);
}
END_TEST

static Suite *model_file_suite(void)
{
    Suite *s = suite_create("model_file");
    TCase *rt = tcase_create("round_trip");
    tcase_set_timeout(rt, 60);
    tcase_add_test(rt, test_round_trip_fmnist_cnn_keeps_params_state_and_logits);
    tcase_add_test(rt, test_round_trip_mlp_keeps_params_and_logits);
    tcase_add_test(rt, test_round_trip_spec_model_keeps_every_setting);
    tcase_add_test(rt, test_round_trip_model_without_layers);
    tcase_add_test(rt, test_save_buffer_matches_saved_file_and_is_deterministic);
    tcase_add_test(rt, test_saved_header_follows_documented_layout);
    tcase_add_test(rt, test_hand_built_file_loads_and_computes_by_hand);
    suite_add_tcase(s, rt);
    TCase *bad = tcase_create("corrupt");
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, test_load_missing_file_is_eio_with_reason);
    tcase_add_test(bad, test_load_empty_and_foreign_files_are_not_models);
    tcase_add_test(bad, test_load_truncated_at_every_length_fails_cleanly);
    tcase_add_test(bad, test_load_every_flipped_header_byte_is_detected);
    tcase_add_test(bad, test_load_flipped_payload_byte_fails_the_checksum);
    tcase_add_test(bad, test_load_future_version_names_both_versions);
    tcase_add_test(bad, test_load_lying_sizes_are_refused_before_allocating);
    tcase_add_test(bad, test_load_random_garbage_never_succeeds);
    tcase_add_test(bad, test_load_corrupt_layer_records_name_the_record);
    tcase_add_test(bad, test_load_wrong_counts_and_trailing_bytes_are_corrupt);
    suite_add_tcase(s, bad);
    TCase *save = tcase_create("save");
    tcase_add_test(save, test_save_into_missing_directory_is_eio_and_leaves_nothing);
    tcase_add_test(save, test_save_over_directory_fails_and_clobbers_nothing);
    tcase_add_test(save, test_save_replaces_existing_file_and_failed_save_keeps_it);
    tcase_add_test(save, test_null_arguments_are_einval);
    suite_add_tcase(s, save);
    return s;
}

int main(void)
{
    return test_run_suite(model_file_suite());
}
