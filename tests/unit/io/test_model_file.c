/* Model files: round trips of presets and spec-built models, the byte
 * layout of docs/file-format.md (checked with an encoder of our own and
 * zlib, not the library's), and crash-safe saving. Damaged files are in
 * test_model_file_corrupt.c. */
#include "model_file_util.h"

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
    test_remove_tree(tmpdir);
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
    test_remove_tree(tmpdir);
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
    test_remove_tree(tmpdir);
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
    test_remove_tree(tmpdir);
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
