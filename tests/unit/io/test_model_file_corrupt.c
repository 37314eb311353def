/* Model files that are damaged or hostile: every one must give an error
 * (DEL_EFORMAT or DEL_EIO with a message saying what is wrong), leave *out
 * NULL, and neither crash nor leak (this program also runs under ASan,
 * UBSan and valgrind). */
#include "model_file_util.h"

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
    test_remove_tree(tmpdir);
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
    expect_corrupt(file, len, "written by a newer libdel (format 7, this build reads <= 3)");
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

static Suite *model_file_corrupt_suite(void)
{
    Suite *s = suite_create("model_file_corrupt");
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
    return s;
}

int main(void)
{
    return test_run_suite(model_file_corrupt_suite());
}
