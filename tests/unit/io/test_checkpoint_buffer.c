/* Checkpoints in memory (del_checkpoint_save_buffer and
 * del_checkpoint_load_buffer): the same bytes as the file form, the same
 * checks, all or nothing. */
#include "model_file_util.h"

/* A tiny model with one SGD step taken (its momentum is not 0) and layer 1
 * frozen: everything a checkpoint holds differs from a fresh model's. */
static void trained(del_model **m, del_optimizer **opt, uint64_t seed)
{
    ck_assert_del_ok(del_model_from_spec(m, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_model_init(*m, seed));
    ck_assert_del_ok(del_optimizer_new_sgd(opt, *m, 0.1f, 0.9f, 0.0f, 0));
    float *g = del_model_grads(*m);
    for (int i = 0; i < del_model_num_params(*m); i++)
        g[i] = 0.25f * (float)(i + 1);
    ck_assert_del_ok(del_optimizer_step(*opt));
    ck_assert_del_ok(del_model_freeze(*m, 1, 1));
}

static void *checkpoint_bytes(const del_model *m, const del_optimizer *opt, size_t *n)
{
    void *buf = NULL;
    ck_assert_del_ok(del_checkpoint_save_buffer(m, opt, &buf, n));
    ck_assert_ptr_nonnull(buf);
    return buf;
}

START_TEST(test_save_buffer_equals_the_saved_file_byte_for_byte)
{
    del_model *m = NULL;
    del_optimizer *opt = NULL;
    trained(&m, &opt, 3);
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/run.delc", tmpdir);
    for (int with_opt = 0; with_opt < 2; with_opt++) {
        const del_optimizer *o = with_opt ? opt : NULL;
        ck_assert_del_ok(del_checkpoint_save(path, m, o));
        size_t nf = 0, nb = 0;
        uint8_t *file = read_file(path, &nf);
        void *buf = checkpoint_bytes(m, o, &nb);
        ck_assert_uint_eq(nb, nf);
        ck_assert(memcmp(buf, file, nf) == 0);
        ck_assert(memcmp(buf, "DELC", 4) == 0);
        free(file);
        del_buffer_free(buf);
    }
    test_remove_tree(tmpdir);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

START_TEST(test_load_buffer_restores_what_the_file_form_restores)
{
    del_model *src = NULL, *a = NULL, *b = NULL;
    del_optimizer *src_opt = NULL, *a_opt = NULL, *b_opt = NULL;
    trained(&src, &src_opt, 3);
    size_t n = 0;
    void *buf = checkpoint_bytes(src, src_opt, &n);
    /* into models of another seed, with optimizers of other settings */
    ck_assert_del_ok(del_model_from_spec(&a, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_model_from_spec(&b, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_optimizer_new_sgd(&a_opt, a, 0.5f, 0.5f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_new_sgd(&b_opt, b, 0.5f, 0.5f, 0.0f, 0));
    ck_assert_del_ok(del_checkpoint_load_buffer(buf, n, a, a_opt));
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/run.delc", tmpdir);
    ck_assert_del_ok(del_checkpoint_save(path, src, src_opt));
    ck_assert_del_ok(del_checkpoint_load(path, b, b_opt));
    /* the loaded states checkpoint back to the very same bytes */
    size_t na = 0, nb = 0;
    void *ba = checkpoint_bytes(a, a_opt, &na), *bb = checkpoint_bytes(b, b_opt, &nb);
    ck_assert_uint_eq(na, n);
    ck_assert(memcmp(ba, buf, n) == 0);
    ck_assert_uint_eq(nb, n);
    ck_assert(memcmp(bb, buf, n) == 0);
    ck_assert_int_eq(del_model_layer_frozen(a, 1), 1);
    ck_assert_int_eq(del_optimizer_steps(a_opt), 1);
    ck_assert(del_optimizer_lr(a_opt) == 0.1f);
    del_buffer_free(ba);
    del_buffer_free(bb);
    del_buffer_free(buf);
    test_remove_tree(tmpdir);
    del_optimizer_free(src_opt);
    del_optimizer_free(a_opt);
    del_optimizer_free(b_opt);
    del_model_free(src);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

START_TEST(test_every_truncation_is_refused_and_changes_nothing)
{
    del_model *src = NULL, *m = NULL;
    del_optimizer *src_opt = NULL, *opt = NULL;
    trained(&src, &src_opt, 3);
    trained(&m, &opt, 5);
    ck_assert_del_ok(del_model_unfreeze(m, 1, 1));
    size_t n = 0, nbefore = 0;
    uint8_t *buf = checkpoint_bytes(src, src_opt, &n);
    void *before = checkpoint_bytes(m, opt, &nbefore);
    ck_assert_uint_gt(n, 100);
    for (size_t len = 0; len < n; len++) {
        /* a copy of exactly len bytes, so that reading past it shows */
        uint8_t *cut = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, buf, len);
        del_status st = del_checkpoint_load_buffer(cut, len, m, opt);
        ck_assert_msg(st == DEL_EFORMAT, "%zu of %zu bytes: %d (%s)", len, n, (int)st, del_last_error());
        ck_assert_ptr_nonnull(strstr(del_last_error(), "del_checkpoint_load_buffer: '<buffer>'"));
        free(cut);
    }
    size_t nafter = 0;
    void *after = checkpoint_bytes(m, opt, &nafter);
    ck_assert_uint_eq(nafter, nbefore);
    ck_assert_msg(memcmp(after, before, nafter) == 0, "a refused load changed the model or optimizer");
    ck_assert_del_ok(del_checkpoint_load_buffer(buf, n, m, opt));
    del_buffer_free(after);
    del_buffer_free(before);
    del_buffer_free(buf);
    del_optimizer_free(src_opt);
    del_optimizer_free(opt);
    del_model_free(src);
    del_model_free(m);
}
END_TEST

START_TEST(test_load_buffer_checks_as_the_file_form_does)
{
    del_model *src = NULL, *other = NULL;
    del_optimizer *src_opt = NULL;
    trained(&src, &src_opt, 3);
    size_t n = 0, mn = 0;
    void *buf = checkpoint_bytes(src, src_opt, &n);
    ck_assert_del_ok(del_model_from_spec(&other, "input 1 2 2; flatten; linear 4"));
    ck_assert_del_err(del_checkpoint_load_buffer(buf, n, other, NULL), DEL_EINVAL, "'<buffer>'");
    /* each container names the other's loader */
    void *mfile = NULL;
    ck_assert_del_ok(del_model_save_buffer(src, &mfile, &mn));
    ck_assert_del_err(del_checkpoint_load_buffer(mfile, mn, src, NULL), DEL_EFORMAT,
                      "is a libdel model file, not a checkpoint");
    del_model *m = NULL;
    ck_assert_del_err(del_model_load_buffer(&m, buf, n), DEL_EFORMAT,
                      "is a libdel checkpoint, not a model (load it with del_checkpoint_load");
    ck_assert_ptr_null(m);
    del_buffer_free(mfile);
    del_buffer_free(buf);
    del_optimizer_free(src_opt);
    del_model_free(src);
    del_model_free(other);
}
END_TEST

START_TEST(test_null_arguments_are_einval)
{
    del_model *m = NULL;
    del_optimizer *opt = NULL;
    trained(&m, &opt, 3);
    void *buf = (void *)1;
    size_t size = 1;
    ck_assert_del_err(del_checkpoint_save_buffer(NULL, NULL, &buf, &size), DEL_EINVAL, "'model'");
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(size, 0);
    ck_assert_del_err(del_checkpoint_save_buffer(m, NULL, NULL, &size), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_save_buffer(m, NULL, &buf, NULL), DEL_EINVAL, "'size'");
    ck_assert_del_err(del_checkpoint_load_buffer(NULL, 5, m, NULL), DEL_EINVAL, "'data'");
    ck_assert_del_err(del_checkpoint_load_buffer("DELC", 4, NULL, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_checkpoint_load_buffer(NULL, 0, m, NULL), DEL_EFORMAT, "empty");
    /* an optimizer of another model */
    del_model *m2 = NULL;
    ck_assert_del_ok(del_model_from_spec(&m2, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_err(del_checkpoint_save_buffer(m2, opt, &buf, &size), DEL_EINVAL, "'opt'");
    del_model_free(m2);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

static Suite *checkpoint_buffer_suite(void)
{
    Suite *s = suite_create("checkpoint_buffer");
    TCase *tc = tcase_create("buffer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_save_buffer_equals_the_saved_file_byte_for_byte);
    tcase_add_test(tc, test_load_buffer_restores_what_the_file_form_restores);
    tcase_add_test(tc, test_every_truncation_is_refused_and_changes_nothing);
    tcase_add_test(tc, test_load_buffer_checks_as_the_file_form_does);
    tcase_add_test(tc, test_null_arguments_are_einval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(checkpoint_buffer_suite());
}
