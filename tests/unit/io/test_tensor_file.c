/* Tensor files (docs/file-format.md, "Tensor files"): every dtype and rank
 * round-trips bit for bit, the file and buffer forms are the same bytes and
 * follow the documented layout (checked with an encoder written here on
 * zlib alone), NaN is refused unless allowed, and every damaged, hostile or
 * foreign file is refused with DEL_EFORMAT and a message saying why. */
#include <sys/wait.h>

#include "core/tensor_internal.h"
#include "model_file_util.h"

/* ---- an independent encoder of the documented layout ---- */

typedef struct tbuf {
    uint8_t *b;
    size_t n, cap;
} tbuf;

static void tb_le(tbuf *t, uint64_t v, int bytes)
{
    if (t->n + (size_t)bytes > t->cap) {
        t->cap = (t->cap + (size_t)bytes) * 2;
        t->b = realloc(t->b, t->cap);
        ck_assert_ptr_nonnull(t->b);
    }
    for (int i = 0; i < bytes; i++)
        t->b[t->n++] = (uint8_t)(v >> (8 * i));
}

/* The payload of a tensor: u32 dtype, u32 ndim, u64 dims, the elements
 * (given as 32-bit patterns or bytes) little-endian. */
static tbuf payload_of(uint32_t dtype, uint32_t ndim, const uint64_t *dims, const void *data, size_t numel)
{
    tbuf t = {0};
    tb_le(&t, dtype, 4);
    tb_le(&t, ndim, 4);
    for (uint32_t i = 0; i < ndim; i++)
        tb_le(&t, dims[i], 8);
    for (size_t k = 0; k < numel; k++) {
        if (dtype == 1) {
            tb_le(&t, ((const uint8_t *)data)[k], 1);
        } else {
            uint32_t u;
            memcpy(&u, (const uint8_t *)data + 4 * k, 4);
            tb_le(&t, u, 4);
        }
    }
    return t;
}

/* Wraps bytes in the container with magic "DELT" (or another) and version. */
static uint8_t *wrap(const char *magic, uint32_t version, const uint8_t *raw, size_t n, size_t *len)
{
    uLongf zlen = compressBound(n);
    uint8_t *file = malloc(40 + zlen);
    ck_assert_ptr_nonnull(file);
    ck_assert_int_eq(compress2(file + 40, &zlen, raw, n, 9), Z_OK);
    memcpy(file, magic, 4);
    set_le(file + 4, version, 4);
    set_le(file + 8, 0, 4);
    set_le(file + 12, 40, 4);
    set_le(file + 16, zlen, 8);
    set_le(file + 24, n, 8);
    set_le(file + 32, crc32(0L, file + 40, (uInt)zlen), 4);
    fix_header_crc(file);
    *len = 40 + zlen;
    return file;
}

static void expect_bad_tensor(const void *data, size_t len, const char *needle)
{
    del_tensor *t = (del_tensor *)&len; /* must be reset to NULL */
    ck_assert_del_err(del_tensor_load_buffer(&t, data, len), DEL_EFORMAT, needle);
    ck_assert_ptr_null(t);
}

/* A payload wrapped in a valid container must be refused with needle. */
static void expect_bad_payload(const tbuf *p, const char *needle)
{
    size_t len = 0;
    uint8_t *file = wrap("DELT", 1, p->b, p->n, &len);
    expect_bad_tensor(file, len, needle);
    free(file);
}

/* ---- tensors ---- */

static del_tensor *pattern_tensor(del_dtype dtype, int ndim, const int64_t *shape, uint32_t seed)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, dtype, ndim, shape));
    int64_t n = del_tensor_numel(t);
    uint32_t s = seed * 2654435761u + 7u;
    uint8_t *d = del_tensor_data(t);
    for (int64_t k = 0; k < n; k++) {
        s = s * 1664525u + 1013904223u;
        if (dtype == DEL_DTYPE_U8) {
            d[k] = (uint8_t)(s >> 24);
        } else if (dtype == DEL_DTYPE_I32) {
            int32_t v = (int32_t)s; /* negative values too */
            memcpy(d + 4 * k, &v, 4);
        } else {
            float v = (float)(s >> 8) / 65536.0f - 128.0f;
            memcpy(d + 4 * k, &v, 4);
        }
    }
    return t;
}

static void assert_same_tensor(del_tensor *a, del_tensor *b)
{
    ck_assert_int_eq(del_tensor_dtype(a), del_tensor_dtype(b));
    ck_assert_int_eq(del_tensor_ndim(a), del_tensor_ndim(b));
    for (int i = 0; i < del_tensor_ndim(a); i++)
        ck_assert_int_eq(del_tensor_dim(a, i), del_tensor_dim(b, i));
    ck_assert_uint_eq(del_tensor_nbytes(a), del_tensor_nbytes(b));
    ck_assert(memcmp(del_tensor_data(a), del_tensor_data(b), del_tensor_nbytes(a)) == 0);
}

static const int64_t shapes[4][4] = {{5}, {2, 3}, {2, 1, 3}, {1, 2, 2, 3}};

/* The small file the corruption tests damage: f32 [2, 3]. */
static uint8_t *small_file(size_t *len)
{
    del_tensor *t = pattern_tensor(DEL_DTYPE_F32, 2, shapes[1], 1);
    void *buf = NULL;
    ck_assert_del_ok(del_tensor_save_buffer(t, &buf, len));
    uint8_t *copy = malloc(*len);
    memcpy(copy, buf, *len);
    del_buffer_free(buf);
    del_tensor_free(t);
    return copy;
}

/* ---- round trips ---- */

START_TEST(test_every_dtype_and_rank_round_trips_and_file_equals_buffer)
{
    static const del_dtype dtypes[3] = {DEL_DTYPE_F32, DEL_DTYPE_U8, DEL_DTYPE_I32};
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/t.delt", tmpdir);
    for (int d = 0; d < 3; d++) {
        for (int r = 0; r < 4; r++) {
            del_tensor *t = pattern_tensor(dtypes[d], r + 1, shapes[r], (uint32_t)(10 * d + r));
            void *buf = NULL;
            size_t size = 0;
            ck_assert_del_ok(del_tensor_save(t, path));
            ck_assert_del_ok(del_tensor_save_buffer(t, &buf, &size));
            size_t flen = 0;
            uint8_t *file = read_file(path, &flen);
            ck_assert_uint_eq(flen, size);
            ck_assert_msg(memcmp(file, buf, size) == 0, "dtype %d rank %d: file and buffer differ", d, r + 1);
            del_tensor *a = NULL, *b = NULL;
            ck_assert_del_ok(del_tensor_load(&a, path));
            ck_assert_del_ok(del_tensor_load_buffer(&b, buf, size));
            assert_same_tensor(t, a);
            assert_same_tensor(t, b);
            free(file);
            del_buffer_free(buf);
            del_tensor_free(a);
            del_tensor_free(b);
            del_tensor_free(t);
        }
    }
    ck_assert_int_eq(count_entries(tmpdir, ".tmp."), 0);
    test_remove_tree(tmpdir);
}
END_TEST

START_TEST(test_saved_bytes_follow_the_documented_layout)
{
    /* i32 [2, 2] {1, -2, 65536, INT32_MIN}: header, then the payload
     * 02000000 02000000 0200..00 0200..00 01000000 feffffff 00000100 00000080. */
    const int64_t shape[2] = {2, 2};
    const int32_t v[4] = {1, -2, 65536, INT32_MIN};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_I32, 2, shape));
    ck_assert_del_ok(del_tensor_copy_from(t, v, sizeof v));
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_ok(del_tensor_save_buffer(t, &buf, &size));
    const uint8_t *f = buf;
    ck_assert_uint_ge(size, 40);
    ck_assert(memcmp(f, "DELT", 4) == 0);
    ck_assert_uint_eq(get_le32(f + 4), 1);  /* version */
    ck_assert_uint_eq(get_le32(f + 8), 0);  /* flags */
    ck_assert_uint_eq(get_le32(f + 12), 40);
    ck_assert_uint_eq(get_le64(f + 16), size - 40);
    ck_assert_uint_eq(get_le64(f + 24), 8 + 16 + 16);
    ck_assert_uint_eq(get_le32(f + 32), crc32(0L, f + 40, (uInt)(size - 40)));
    ck_assert_uint_eq(get_le32(f + 36), crc32(0L, f, 36));
    static const uint8_t want[40] = {2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                                     1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0x80};
    uint8_t raw[64];
    uLongf rlen = sizeof raw;
    ck_assert_int_eq(uncompress(raw, &rlen, f + 40, (uLong)(size - 40)), Z_OK);
    ck_assert_uint_eq(rlen, 40);
    ck_assert(memcmp(raw, want, 40) == 0);
    /* A file written here (zlib level 9, not the library's level) loads. */
    size_t len = 0;
    uint8_t *mine = wrap("DELT", 1, want, sizeof want, &len);
    del_tensor *back = NULL;
    ck_assert_del_ok(del_tensor_load_buffer(&back, mine, len));
    assert_same_tensor(t, back);
    free(mine);
    del_tensor_free(back);
    del_buffer_free(buf);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_soft_labels_of_60000_images_round_trip)
{
    /* The use case: a teacher's softmax over the Fashion-MNIST train split. */
    const int64_t shape[2] = {60000, 10};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    float *p = del_tensor_data(t);
    for (int64_t r = 0; r < 60000; r++)
        for (int j = 0; j < 10; j++)
            p[r * 10 + j] = j == r % 10 ? 0.55f + 0.05f * (float)(r % 7) / 7.0f : 0.0f;
    for (int64_t r = 0; r < 60000; r++)
        p[r * 10 + (r + 1) % 10] = 1.0f - p[r * 10 + r % 10];
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/teacher.delt", tmpdir);
    ck_assert_del_ok(del_tensor_save(t, path));
    del_tensor *back = NULL;
    ck_assert_del_ok(del_tensor_load(&back, path));
    assert_same_tensor(t, back);
    del_tensor_free(back);
    del_tensor_free(t);
    test_remove_tree(tmpdir);
}
END_TEST

/* ---- non-finite values ---- */

START_TEST(test_nan_is_refused_by_default_and_kept_bit_for_bit_when_allowed)
{
    const int64_t shape[1] = {4};
    const uint32_t bits[4] = {0x3f800000u, 0x7fc00001u /* a NaN with a payload */, 0xff800000u /* -inf */, 0};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 1, shape));
    ck_assert_del_ok(del_tensor_copy_from(t, bits, sizeof bits));
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/nan.delt", tmpdir);
    ck_assert_del_err(del_tensor_save(t, path), DEL_ENUMERIC, "del_tensor_save: 't' has NaN at element 1");
    ck_assert_ptr_nonnull(strstr(del_last_error(), "del_tensor_save_flags with DEL_SAVE_ALLOW_NONFINITE"));
    ck_assert_int_eq(count_entries(tmpdir, ""), 2); /* nothing created */
    void *buf = (void *)&shape;
    size_t size = 1;
    ck_assert_del_err(del_tensor_save_buffer(t, &buf, &size), DEL_ENUMERIC, "NaN at element 1");
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(size, 0);
    ck_assert_del_err(del_tensor_save_flags(t, path, 2), DEL_EINVAL, "'flags'");
    ck_assert_del_ok(del_tensor_save_flags(t, path, DEL_SAVE_ALLOW_NONFINITE));
    ck_assert_del_ok(del_tensor_save_buffer_flags(t, &buf, &size, DEL_SAVE_ALLOW_NONFINITE));
    size_t flen = 0;
    uint8_t *file = read_file(path, &flen);
    ck_assert(flen == size && memcmp(file, buf, size) == 0);
    del_tensor *back = NULL;
    ck_assert_del_ok(del_tensor_load(&back, path));
    ck_assert(memcmp(del_tensor_data(back), bits, sizeof bits) == 0);
    del_tensor_free(back);
    del_buffer_free(buf);
    /* Infinity alone is named too. */
    float *d = del_tensor_data(t);
    d[1] = 0.0f;
    ck_assert_del_err(del_tensor_save_buffer(t, &buf, &size), DEL_ENUMERIC, "infinity at element 2");
    free(file);
    del_tensor_free(t);
    test_remove_tree(tmpdir);
}
END_TEST

/* ---- damaged and hostile files ---- */

START_TEST(test_every_truncation_is_refused)
{
    size_t len = 0;
    uint8_t *file = small_file(&len);
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, file, k);
        expect_bad_tensor(copy, k, k < 4 ? "libdel tensor" : "truncated");
        free(copy);
    }
    free(file);
}
END_TEST

START_TEST(test_every_flipped_bit_is_refused)
{
    size_t len = 0;
    uint8_t *file = small_file(&len);
    for (size_t k = 0; k < len; k++) {
        for (int bit = 0; bit < 8; bit++) {
            file[k] ^= (uint8_t)(1u << bit);
            expect_bad_tensor(file, len, k >= 40 ? "payload checksum mismatch" : "");
            file[k] ^= (uint8_t)(1u << bit);
        }
    }
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_load_buffer(&t, file, len)); /* undamaged again */
    del_tensor_free(t);
    free(file);
}
END_TEST

START_TEST(test_trailing_bytes_after_the_file_are_refused)
{
    size_t len = 0;
    uint8_t *file = small_file(&len);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, file, len);
    longer[len] = 0;
    expect_bad_tensor(longer, len + 1, "1 bytes after the payload");
    free(longer);
    free(file);
}
END_TEST

START_TEST(test_hostile_payloads_are_refused_with_the_reason)
{
    const float two[2] = {1.0f, 2.0f};
    const uint64_t d2[1] = {2}, d0[2] = {3, 0}, huge[2] = {(uint64_t)1 << 32, (uint64_t)1 << 32};
    const uint64_t d5[5] = {1, 1, 1, 1, 2};
    tbuf p;
    p = payload_of(3, 1, d2, two, 2);
    expect_bad_payload(&p, "dtype 3, expected 0 (f32), 1 (u8) or 2 (i32)");
    free(p.b);
    p = payload_of(0, 0, d2, two, 2);
    expect_bad_payload(&p, "ndim 0, expected 1..4");
    free(p.b);
    p = payload_of(0, 5, d5, two, 2);
    expect_bad_payload(&p, "ndim 5, expected 1..4");
    free(p.b);
    p = payload_of(0, 2, d0, two, 0);
    expect_bad_payload(&p, "dim 1 is 0");
    free(p.b);
    p = payload_of(1, 2, huge, two, 0); /* 2^64 elements: a product that wraps to 0 */
    expect_bad_payload(&p, "dims too large");
    free(p.b);
    p = payload_of(0, 1, d2, two, 1); /* one element of two */
    expect_bad_payload(&p, "4 bytes of elements, the shape needs 8");
    free(p.b);
    p = payload_of(0, 1, d2, two, 2);
    tb_le(&p, 0, 1);
    expect_bad_payload(&p, "1 bytes after the elements");
    free(p.b);
    p = payload_of(0, 1, d2, two, 2);
    p.n = 6; /* inside ndim */
    expect_bad_payload(&p, "shorter than its dtype and ndim");
    p.n = 12; /* inside the dims */
    expect_bad_payload(&p, "ends inside its 1 dims");
    p.n = 0;
    expect_bad_payload(&p, "shorter than its dtype and ndim");
    free(p.b);
    /* The same payload, whole, loads: the refusals above are the damage's. */
    p = payload_of(0, 1, d2, two, 2);
    size_t len = 0;
    uint8_t *file = wrap("DELT", 1, p.b, p.n, &len);
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_load_buffer(&t, file, len));
    ck_assert(memcmp(del_tensor_data(t), two, sizeof two) == 0);
    del_tensor_free(t);
    free(file);
    free(p.b);
}
END_TEST

START_TEST(test_lying_sizes_are_refused_before_allocating)
{
    size_t len = 0;
    uint8_t *file = small_file(&len);
    set_le(file + 24, (uint64_t)1 << 35, 8); /* 32 GiB uncompressed from a few bytes */
    fix_header_crc(file);
    expect_bad_tensor(file, len, "cannot decompress to the declared");
    set_le(file + 24, (uint64_t)1 << 40, 8);
    fix_header_crc(file);
    expect_bad_tensor(file, len, "too large");
    free(file);
}
END_TEST

START_TEST(test_newer_version_is_refused_naming_both_versions)
{
    size_t len = 0;
    uint8_t *file = small_file(&len);
    set_le(file + 4, 2, 4);
    fix_header_crc(file);
    expect_bad_tensor(file, len, "'<buffer>' was written by a newer libdel (format 2, this build reads <= 1)");
    set_le(file + 4, 0, 4);
    fix_header_crc(file);
    expect_bad_tensor(file, len, "format version 0");
    free(file);
}
END_TEST

START_TEST(test_model_and_checkpoint_files_are_named_and_tensor_files_named_back)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 2"));
    void *mbuf = NULL, *cbuf = NULL, *tfile = NULL;
    size_t msize = 0, csize = 0, tsize = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &mbuf, &msize));
    ck_assert_del_ok(del_checkpoint_save_buffer(m, NULL, &cbuf, &csize));
    del_tensor *t = pattern_tensor(DEL_DTYPE_U8, 1, shapes[0], 3);
    ck_assert_del_ok(del_tensor_save_buffer(t, &tfile, &tsize));
    expect_bad_tensor(mbuf, msize, "del_tensor_load_buffer: '<buffer>' is a libdel model file, not a tensor "
                                   "(load it with del_model_load)");
    expect_bad_tensor(cbuf, csize, "is a libdel checkpoint, not a tensor (load it with del_checkpoint_load");
    del_model *back = NULL;
    ck_assert_del_err(del_model_load_buffer(&back, tfile, tsize), DEL_EFORMAT,
                      "is a libdel tensor file, not a model (load it with del_tensor_load)");
    ck_assert_ptr_null(back);
    ck_assert_del_err(del_checkpoint_load_buffer(tfile, tsize, m, NULL), DEL_EFORMAT,
                      "is a libdel tensor file, not a checkpoint (load it with del_tensor_load)");
    /* The file forms name the path. */
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/model.delm", tmpdir);
    ck_assert_del_ok(del_model_save(m, path));
    del_tensor *out = NULL;
    ck_assert_del_err(del_tensor_load(&out, path), DEL_EFORMAT, "model.delm' is a libdel model file, not a tensor");
    snprintf(path, sizeof path, "%s/text.txt", tmpdir);
    write_file(path, "hello, world\n", 13);
    ck_assert_del_err(del_tensor_load(&out, path), DEL_EFORMAT, "text.txt' is not a libdel tensor (bad magic)");
    ck_assert_ptr_null(out);
    test_remove_tree(tmpdir);
    del_buffer_free(mbuf);
    del_buffer_free(cbuf);
    del_buffer_free(tfile);
    del_tensor_free(t);
    del_model_free(m);
}
END_TEST

/* ---- paths and arguments ---- */

START_TEST(test_empty_path_and_null_arguments_are_einval)
{
    del_tensor *t = pattern_tensor(DEL_DTYPE_I32, 1, shapes[0], 4), *out = NULL;
    make_tmpdir();
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    del_status st = del_tensor_save(t, "");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", del_last_error());
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(st, DEL_EINVAL);
    ck_assert_str_eq(msg, "del_tensor_save: 'path' is empty (expected a file name)");
    ck_assert_int_eq(count_entries(tmpdir, ""), 2);
    ck_assert_del_err(del_tensor_load(&out, ""), DEL_EINVAL, "del_tensor_load: 'path' is empty");
    ck_assert_del_err(del_tensor_save(NULL, "x"), DEL_EINVAL, "'t'");
    ck_assert_del_err(del_tensor_save(t, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_tensor_load(NULL, "x"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_load(&out, NULL), DEL_EINVAL, "'path'");
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_err(del_tensor_save_buffer(NULL, &buf, &size), DEL_EINVAL, "'t'");
    ck_assert_del_err(del_tensor_save_buffer(t, NULL, &size), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_save_buffer(t, &buf, NULL), DEL_EINVAL, "'size'");
    del_tensor *empty = del_tensor_empty(); /* the library's own tensors before they get a shape */
    ck_assert_ptr_nonnull(empty);
    ck_assert_del_err(del_tensor_save_buffer(empty, &buf, &size), DEL_EINVAL, "'t' has no shape yet (ndim 0)");
    del_tensor_free(empty);
    ck_assert_del_err(del_tensor_load_buffer(NULL, "x", 1), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_load_buffer(&out, NULL, 1), DEL_EINVAL, "'data'");
    ck_assert_del_err(del_tensor_load_buffer(&out, NULL, 0), DEL_EFORMAT, "empty file");
    snprintf(msg, sizeof msg, "%s/missing.delt", tmpdir);
    ck_assert_del_err(del_tensor_load(&out, msg), DEL_EIO, "No such file or directory");
    ck_assert_ptr_null(out);
    test_remove_tree(tmpdir);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_save_through_a_link_replaces_its_target_and_keeps_the_link)
{
    del_tensor *t = pattern_tensor(DEL_DTYPE_F32, 2, shapes[1], 5), *back = NULL;
    make_tmpdir();
    char target[128], link[128], got[128];
    snprintf(target, sizeof target, "%s/real.delt", tmpdir);
    snprintf(link, sizeof link, "%s/link.delt", tmpdir);
    write_file(target, "old", 3);
    ck_assert_int_eq(symlink("real.delt", link), 0);
    ck_assert_del_ok(del_tensor_save(t, link));
    struct stat sb;
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    ssize_t n = readlink(link, got, sizeof got - 1);
    ck_assert_int_eq(n, 9);
    got[n] = '\0';
    ck_assert_str_eq(got, "real.delt");
    ck_assert_del_ok(del_tensor_load(&back, target));
    assert_same_tensor(t, back);
    ck_assert_int_eq(count_entries(tmpdir, ""), 4);
    del_tensor_free(back);
    test_remove_tree(tmpdir);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_unwritable_directory_fails_and_leaves_the_old_file_alone)
{
    del_tensor *t = pattern_tensor(DEL_DTYPE_U8, 3, shapes[2], 6);
    make_tmpdir();
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/ro", tmpdir);
    snprintf(path, sizeof path, "%s/t.delt", dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    write_file(path, "old contents", 12);
    ck_assert_int_eq(chmod(dir, 0555), 0);
    ck_assert_int_eq(chmod(tmpdir, 0755), 0);
    /* Root ignores permissions: the save runs in a child that is nobody. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        del_status st = del_tensor_save(t, path);
        _exit(st == DEL_EIO && strstr(del_last_error(), "Permission denied") ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "save in a read-only directory: child status %d",
                  status);
    size_t len = 0;
    uint8_t *b = read_file(path, &len);
    ck_assert_uint_eq(len, 12);
    ck_assert(memcmp(b, "old contents", 12) == 0);
    ck_assert_int_eq(count_entries(dir, ""), 3); /* ., .. and the old file: no temporary file */
    free(b);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    test_remove_tree(tmpdir);
    del_tensor_free(t);
}
END_TEST

static Suite *tensor_file_suite(void)
{
    Suite *s = suite_create("tensor_file");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, test_every_dtype_and_rank_round_trips_and_file_equals_buffer);
    tcase_add_test(tc, test_saved_bytes_follow_the_documented_layout);
    tcase_add_test(tc, test_soft_labels_of_60000_images_round_trip);
    tcase_add_test(tc, test_nan_is_refused_by_default_and_kept_bit_for_bit_when_allowed);
    suite_add_tcase(s, tc);
    TCase *bad = tcase_create("bad_files");
    tcase_add_test(bad, test_every_truncation_is_refused);
    tcase_add_test(bad, test_every_flipped_bit_is_refused);
    tcase_add_test(bad, test_trailing_bytes_after_the_file_are_refused);
    tcase_add_test(bad, test_hostile_payloads_are_refused_with_the_reason);
    tcase_add_test(bad, test_lying_sizes_are_refused_before_allocating);
    tcase_add_test(bad, test_newer_version_is_refused_naming_both_versions);
    tcase_add_test(bad, test_model_and_checkpoint_files_are_named_and_tensor_files_named_back);
    suite_add_tcase(s, bad);
    TCase *paths = tcase_create("paths");
    tcase_add_test(paths, test_empty_path_and_null_arguments_are_einval);
    tcase_add_test(paths, test_save_through_a_link_replaces_its_target_and_keeps_the_link);
    tcase_add_test(paths, test_unwritable_directory_fails_and_leaves_the_old_file_alone);
    suite_add_tcase(s, paths);
    return s;
}

int main(void)
{
    return test_run_suite(tensor_file_suite());
}
