/* Saving a model with NaN or infinite values (a diverged run): model
 * saves refuse it unless told DEL_SAVE_ALLOW_NONFINITE, naming the first
 * offending layer; checkpoints refuse it and say how to keep the model;
 * a file saved with such values on purpose loads as it was. */
#include <math.h>

#include "model_file_util.h"

/* Layers 0 conv2d, 1 batchnorm, 2 relu, 3 flatten, 4 linear. */
static del_model *small_cnn(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; conv2d 2 k=3; batchnorm; relu; flatten; linear 3"));
    ck_assert_del_ok(del_model_init(m, 3));
    return m;
}

/* The first parameter of layer i. */
static float *layer_param(del_model *m, int i)
{
    ck_assert_int_gt(m->layers[i].n_params, 0);
    return m->params + m->layers[i].param_off;
}

static void assert_no_file(void)
{
    ck_assert_int_eq(count_entries(tmpdir, ""), 2); /* . and .. */
}

START_TEST(test_model_save_refuses_nan_parameters_and_names_the_layer)
{
    del_model *m = small_cnn();
    layer_param(m, 4)[5] = NAN;
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/m.delm", tmpdir);
    ck_assert_del_err(del_model_save(m, path), DEL_ENUMERIC,
                      "del_model_save: layer 4 (linear) has NaN in its parameters");
    ck_assert_ptr_nonnull(strstr(del_last_error(), "DEL_SAVE_ALLOW_NONFINITE"));
    assert_no_file();
    void *buf = (void *)1;
    size_t size = 1;
    ck_assert_del_err(del_model_save_buffer(m, &buf, &size), DEL_ENUMERIC,
                      "del_model_save_buffer: layer 4 (linear) has NaN in its parameters");
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(size, 0);
    /* the first offending layer is named */
    layer_param(m, 0)[0] = -INFINITY;
    ck_assert_del_err(del_model_save(m, path), DEL_ENUMERIC, "layer 0 (conv2d) has infinity in its parameters");
    assert_no_file();
    test_remove_tree(tmpdir);
    del_model_free(m);
}
END_TEST

START_TEST(test_model_save_refuses_infinite_running_statistics)
{
    del_model *m = small_cnn();
    ck_assert_int_gt(m->layers[1].n_state, 0);
    m->state[m->layers[1].state_off + m->layers[1].n_state - 1] = INFINITY;
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_err(del_model_save_buffer(m, &buf, &size), DEL_ENUMERIC,
                      "layer 1 (batchnorm) has infinity in its running statistics");
    del_model_free(m);
}
END_TEST

/* The case the report came with: every one of fmnist-cnn's parameters NaN. */
START_TEST(test_a_diverged_preset_is_refused)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    for (int64_t k = 0; k < m->n_params; k++)
        m->params[k] = NAN;
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_err(del_model_save_buffer(m, &buf, &size), DEL_ENUMERIC, "layer 0 (conv2d) has NaN");
    del_model_free(m);
}
END_TEST

START_TEST(test_allow_nonfinite_saves_and_the_file_loads_as_it_was)
{
    del_model *m = small_cnn(), *back = NULL;
    layer_param(m, 4)[1] = NAN;
    layer_param(m, 0)[2] = INFINITY;
    m->state[m->layers[1].state_off] = -INFINITY;
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/m.delm", tmpdir);
    ck_assert_del_ok(del_model_save_flags(m, path, DEL_SAVE_ALLOW_NONFINITE));
    void *buf = NULL;
    size_t size = 0, n = 0;
    ck_assert_del_ok(del_model_save_buffer_flags(m, &buf, &size, DEL_SAVE_ALLOW_NONFINITE));
    uint8_t *file = read_file(path, &n);
    ck_assert_uint_eq(n, size);
    ck_assert(memcmp(file, buf, n) == 0);
    ck_assert_del_ok(del_model_load(&back, path));
    ck_assert(memcmp(back->params, m->params, (size_t)m->n_params * sizeof(float)) == 0);
    ck_assert(memcmp(back->state, m->state, (size_t)m->n_state * sizeof(float)) == 0);
    del_model_free(back);
    ck_assert_del_ok(del_model_load_buffer(&back, buf, size));
    ck_assert(isnan(layer_param(back, 4)[1]));
    del_model_free(back);
    free(file);
    del_buffer_free(buf);
    test_remove_tree(tmpdir);
    del_model_free(m);
}
END_TEST

START_TEST(test_default_flags_save_the_same_bytes_as_the_plain_calls)
{
    del_model *m = small_cnn();
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &a, &na));
    ck_assert_del_ok(del_model_save_buffer_flags(m, &b, &nb, DEL_SAVE_DEFAULT));
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na) == 0);
    del_buffer_free(b);
    ck_assert_del_ok(del_model_save_buffer_flags(m, &b, &nb, DEL_SAVE_ALLOW_NONFINITE));
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na) == 0);
    del_buffer_free(a);
    del_buffer_free(b);
    del_model_free(m);
}
END_TEST

START_TEST(test_flags_calls_check_their_arguments)
{
    del_model *m = small_cnn();
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_err(del_model_save_flags(m, "/tmp/never.delm", 2), DEL_EINVAL, "'flags'");
    ck_assert_del_err(del_model_save_buffer_flags(m, &buf, &size, -1), DEL_EINVAL, "'flags'");
    ck_assert_del_err(del_model_save_flags(NULL, "x", 0), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_save_flags(m, NULL, 0), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_model_save_flags(m, "", 0), DEL_EINVAL, "'path' is empty");
    ck_assert_del_err(del_model_save_buffer_flags(NULL, &buf, &size, 0), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_save_buffer_flags(m, NULL, &size, 0), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_model_save_buffer_flags(m, &buf, NULL, 0), DEL_EINVAL, "'size'");
    ck_assert_int_eq(access("/tmp/never.delm", F_OK), -1);
    del_model_free(m);
}
END_TEST

START_TEST(test_checkpoints_refuse_nonfinite_values_and_say_how_to_keep_the_model)
{
    del_model *m = small_cnn();
    m->state[m->layers[1].state_off + 1] = NAN;
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.9f, 0.0f, 0));
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/run.delc", tmpdir);
    ck_assert_del_err(del_checkpoint_save(path, m, opt), DEL_ENUMERIC,
                      "del_checkpoint_save: layer 1 (batchnorm) has NaN in its running statistics");
    ck_assert_ptr_nonnull(strstr(del_last_error(), "del_model_save_flags"));
    ck_assert_ptr_nonnull(strstr(del_last_error(), "DEL_SAVE_ALLOW_NONFINITE"));
    void *buf = (void *)1;
    size_t size = 1;
    ck_assert_del_err(del_checkpoint_save_buffer(m, NULL, &buf, &size), DEL_ENUMERIC,
                      "del_checkpoint_save_buffer: layer 1 (batchnorm) has NaN");
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(size, 0);
    /* the trainer's checkpoints too */
    uint8_t px[3 * 16] = {0};
    int32_t labels[3] = {0, 1, 2};
    del_dataset *ds = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 3, 4, 4, 1));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_err(del_trainer_save_checkpoint(tr, path), DEL_ENUMERIC,
                      "del_trainer_save_checkpoint: layer 1 (batchnorm) has NaN");
    ck_assert_ptr_nonnull(strstr(del_last_error(), "del_model_save_flags"));
    assert_no_file();
    /* what the message advises works */
    snprintf(path, sizeof path, "%s/broken.delm", tmpdir);
    ck_assert_del_ok(del_model_save_flags(m, path, DEL_SAVE_ALLOW_NONFINITE));
    del_trainer_free(tr);
    del_dataset_free(ds);
    del_optimizer_free(opt);
    test_remove_tree(tmpdir);
    del_model_free(m);
}
END_TEST

static Suite *nonfinite_suite(void)
{
    Suite *s = suite_create("save_nonfinite");
    TCase *tc = tcase_create("nonfinite");
    tcase_add_test(tc, test_model_save_refuses_nan_parameters_and_names_the_layer);
    tcase_add_test(tc, test_model_save_refuses_infinite_running_statistics);
    tcase_add_test(tc, test_a_diverged_preset_is_refused);
    tcase_add_test(tc, test_allow_nonfinite_saves_and_the_file_loads_as_it_was);
    tcase_add_test(tc, test_default_flags_save_the_same_bytes_as_the_plain_calls);
    tcase_add_test(tc, test_flags_calls_check_their_arguments);
    tcase_add_test(tc, test_checkpoints_refuse_nonfinite_values_and_say_how_to_keep_the_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(nonfinite_suite());
}
