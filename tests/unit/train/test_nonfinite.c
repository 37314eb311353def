/* Non-finite training steps (issue: divergence is reported, not hidden):
 * a NaN or infinite loss, running statistic or update stops the fit with
 * DEL_ENUMERIC and leaves the model as it was before that step, or is
 * skipped and counted with DEL_NONFINITE_SKIP. Evaluation refuses a
 * diverged model and labels the model has no output for. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

/* 64 black 6x6 images, but image BRIGHT is white. With mean 0 and std
 * 1e-38 the black images normalise to 0 and the white one to about 1e38,
 * so every batch holding it overflows (the loss of a linear model, the
 * running variance of a batchnorm), and no other batch does. */
enum { N = 64, SIDE = 6, BATCH = 16, BRIGHT = 13 };

static del_dataset *bright_dataset(void)
{
    static uint8_t px[N * SIDE * SIDE];
    static int32_t labels[N];
    memset(px, 0, sizeof px);
    memset(px + BRIGHT * SIDE * SIDE, 255, SIDE * SIDE);
    for (int i = 0; i < N; i++)
        labels[i] = i % 10;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SIDE, SIDE, 1));
    return ds;
}

static const char LINEAR[] = "input 1 6 6; flatten; linear 10";
static const char WITH_BN[] = "input 1 6 6; conv2d 2 k=1; batchnorm; relu; flatten; linear 10";

static del_trainer *bright_trainer(del_model *m, const del_dataset *ds)
{
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    const float mean[1] = {0.0f}, stdv[1] = {1e-38f};
    ck_assert_del_ok(del_trainer_set_normalize(tr, mean, stdv, 1));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, BATCH));
    ck_assert_del_ok(del_trainer_set_seed(tr, 3));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 8)); /* one schedule for the runs compared */
    return tr;
}

/* The model of spec, initialised; the linear model's weights are all 1,
 * so that the bright image's logits (36 x 1e38) overflow for certain, and
 * black images (input 0) never change them. */
static del_model *model_from(const char *spec)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, spec));
    ck_assert_del_ok(del_model_init(m, 11));
    if (strcmp(spec, LINEAR) == 0) {
        int64_t off = -1, count = 0;
        ck_assert_del_ok(del_model_layer_params(m, 1, &off, &count));
        ck_assert_int_eq(off, 0);
        ck_assert_int_eq(count, 10 * 36 + 10);
        for (int i = 0; i < 10 * 36; i++)
            del_model_params(m)[i] = 1.0f;
    }
    return m;
}

static int all_finite(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* The step number the message names ("... step 3: ..."). */
static long step_in_message(void)
{
    const char *p = strstr(del_last_error(), "step ");
    ck_assert_ptr_nonnull(p);
    return strtol(p + 5, NULL, 10);
}

/* The model of a run stopped at step s equals, parameter for parameter and
 * statistic for statistic, a fresh run of s - 1 steps. */
static void check_stops_before_the_bright_batch(const char *spec, const char *needle)
{
    del_dataset *ds = bright_dataset();
    del_model *m = model_from(spec);
    del_trainer *tr = bright_trainer(m, ds);
    ck_assert_del_err(del_trainer_fit(tr, 8), DEL_ENUMERIC, needle);
    ck_assert_msg(strstr(del_last_error(), "as it was before this step") != NULL, "%s", del_last_error());
    const long s = step_in_message();
    ck_assert_msg(s >= 1 && s <= N / BATCH, "the bright image is in one of the first 4 batches, got step %ld", s);
    ck_assert(all_finite(del_model_params(m), del_model_num_params(m)));
    ck_assert(all_finite(del_model_buffers(m), del_model_num_buffers(m)));

    del_model *ref = model_from(spec);
    del_trainer *rt = bright_trainer(ref, ds);
    if (s > 1)
        ck_assert_del_ok(del_trainer_fit(rt, s - 1));
    ck_assert_int_eq(del_model_num_params(ref), del_model_num_params(m));
    ck_assert_mem_eq(del_model_params(ref), del_model_params(m), (size_t)del_model_num_params(m) * sizeof(float));
    ck_assert_int_eq(del_model_num_buffers(ref), del_model_num_buffers(m));
    if (del_model_num_buffers(m) > 0)
        ck_assert_mem_eq(del_model_buffers(ref), del_model_buffers(m),
                         (size_t)del_model_num_buffers(m) * sizeof(float));
    del_trainer_free(rt);
    del_model_free(ref);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}

START_TEST(test_nonfinite_loss_stops_the_fit_before_that_step)
{
    check_stops_before_the_bright_batch(LINEAR, "the loss is not finite");
}
END_TEST

START_TEST(test_nonfinite_running_statistics_stop_the_fit_with_the_statistics_restored)
{
    check_stops_before_the_bright_batch(WITH_BN, "running statistics are not finite");
}
END_TEST

typedef struct progress_log {
    const del_trainer *tr;
    int calls;
    float loss[8];
    int64_t skipped[8];
} progress_log;

static int log_progress(int64_t step, int64_t total, float loss, void *user)
{
    (void)total;
    progress_log *log = user;
    ck_assert_int_lt(log->calls, 8);
    ck_assert_int_eq(step, log->calls + 1);
    log->loss[log->calls] = loss;
    log->skipped[log->calls] = del_trainer_skipped_steps(log->tr);
    log->calls++;
    return 0;
}

START_TEST(test_skip_policy_skips_and_counts_each_nonfinite_step)
{
    /* 8 steps of 16 are two epochs of 64 images: the bright image is in
     * exactly two batches, one per epoch. */
    del_dataset *ds = bright_dataset();
    del_model *m = model_from(WITH_BN);
    del_trainer *tr = bright_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_nonfinite(tr, DEL_NONFINITE_SKIP));
    progress_log log = {.tr = tr};
    ck_assert_del_ok(del_trainer_set_progress(tr, log_progress, 1, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 8));
    ck_assert_int_eq(del_trainer_skipped_steps(tr), 2);
    ck_assert_int_eq(log.calls, 8);
    int nan_losses = 0;
    for (int i = 0; i < 8; i++) {
        const int skipped_here = log.skipped[i] - (i > 0 ? log.skipped[i - 1] : 0);
        ck_assert_int_eq(isnan(log.loss[i]) != 0, skipped_here == 1);
        nan_losses += isnan(log.loss[i]) != 0;
    }
    ck_assert_int_eq(nan_losses, 2);
    ck_assert(all_finite(del_model_params(m), del_model_num_params(m)));
    ck_assert(all_finite(del_model_buffers(m), del_model_num_buffers(m)));
    /* A new seed starts the count again. */
    ck_assert_del_ok(del_trainer_set_seed(tr, 4));
    ck_assert_int_eq(del_trainer_skipped_steps(tr), 0);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_skipped_steps_and_the_policy_survive_a_checkpoint)
{
    char path[] = "nonfinite.delc";
    del_dataset *ds = bright_dataset();
    del_model *m = model_from(WITH_BN);
    del_trainer *tr = bright_trainer(m, ds);
    ck_assert_del_ok(del_trainer_set_nonfinite(tr, DEL_NONFINITE_SKIP));
    ck_assert_del_ok(del_trainer_fit(tr, 5));
    const int64_t skipped = del_trainer_skipped_steps(tr);
    ck_assert_int_ge(skipped, 1);
    ck_assert_del_ok(del_trainer_save_checkpoint(tr, path));

    del_model *m2 = model_from(WITH_BN);
    del_trainer *t2 = bright_trainer(m2, ds);
    ck_assert_del_ok(del_trainer_load_checkpoint(t2, path));
    ck_assert_int_eq(del_trainer_skipped_steps(t2), skipped);
    /* The policy came back too: the second epoch's bright batch is skipped,
     * not fatal, in both. */
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    ck_assert_del_ok(del_trainer_fit(t2, 3));
    ck_assert_int_eq(del_trainer_skipped_steps(t2), 2);
    ck_assert_mem_eq(del_model_params(m), del_model_params(m2), (size_t)del_model_num_params(m) * sizeof(float));
    remove(path);
    del_trainer_free(t2);
    del_model_free(m2);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_huge_learning_rate_stops_the_fit_with_finite_weights)
{
    /* The outside client's case: fmnist-cnn with SGD at lr 1e6. */
    enum { M = 128 };
    static uint8_t px[M * 28 * 28];
    static int32_t labels[M];
    uint32_t r = 1;
    for (size_t i = 0; i < sizeof px; i++) {
        r = r * 1664525u + 1013904223u;
        px[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < M; i++)
        labels[i] = i % 10;
    del_dataset *ds = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, M, 28, 28, 1));
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 1e6f, 0.9f, 5e-4f, 1));
    ck_assert_del_err(del_trainer_fit(tr, 30), DEL_ENUMERIC, "not finite");
    ck_assert_int_ge(step_in_message(), 1);
    ck_assert(all_finite(del_model_params(m), del_model_num_params(m)));
    ck_assert(all_finite(del_model_buffers(m), del_model_num_buffers(m)));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_evaluate_refuses_a_model_with_nonfinite_outputs)
{
    del_dataset *ds = bright_dataset();
    del_model *m = model_from(LINEAR);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    double acc = 0.5;
    ck_assert_del_ok(del_trainer_evaluate(tr, ds, &acc));
    del_model_params(m)[3] = NAN;
    acc = 0.5;
    ck_assert_del_err(del_trainer_evaluate(tr, ds, &acc), DEL_ENUMERIC, "not finite");
    ck_assert_double_eq(acc, 0.5); /* not written */
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_evaluate_refuses_labels_the_model_has_no_output_for)
{
    /* Trained on classes 0..4, evaluated on 0..9: as the constructor
     * refuses those labels, so does evaluate. */
    static uint8_t px[20 * 4];
    static int32_t few[20], many[20];
    for (int i = 0; i < 20; i++) {
        few[i] = i % 5;
        many[i] = i % 10;
    }
    del_dataset *train = NULL, *test = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&train, px, few, 20, 2, 2, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&test, px, many, 20, 2, 2, 1));
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 5"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, train));
    double acc = 0.5;
    ck_assert_del_err(del_trainer_evaluate(tr, test, &acc), DEL_EINVAL, "label 9");
    ck_assert_msg(strstr(del_last_error(), "5 outputs") != NULL, "%s", del_last_error());
    ck_assert_double_eq(acc, 0.5);
    ck_assert_del_ok(del_trainer_evaluate(tr, train, &acc));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(test);
    del_dataset_free(train);
}
END_TEST

START_TEST(test_kept_optimizer_after_replace_head_names_the_trainer_remedy)
{
    del_dataset *ds = bright_dataset();
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 6 6; flatten; linear 8; relu"));
    ck_assert_del_ok(del_model_add_head(m, "cls", "linear 10"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 10));
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_del_ok(del_model_replace_head(m, "cls", "linear 10"));
    int64_t n = 0;
    float *before = copy_params(m, &n);
    ck_assert_del_err(del_trainer_fit(tr, 2), DEL_ESTATE, "del_trainer_set_total_steps");
    ck_assert_msg(strstr(del_last_error(), "make a new optimizer") == NULL, "%s", del_last_error());
    ck_assert_msg(strncmp(del_last_error(), "del_trainer_fit:", 16) == 0, "%s", del_last_error());
    ck_assert_mem_eq(before, del_model_params(m), (size_t)n * sizeof(float));
    /* The remedy works. */
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 10));
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    free(before);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_set_nonfinite_rejects_bad_arguments)
{
    del_dataset *ds = bright_dataset();
    del_model *m = model_from(LINEAR);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_err(del_trainer_set_nonfinite(NULL, DEL_NONFINITE_SKIP), DEL_EINVAL, "trainer");
    ck_assert_del_err(del_trainer_set_nonfinite(tr, (del_nonfinite)2), DEL_EINVAL, "'policy'");
    ck_assert_int_eq(del_trainer_skipped_steps(NULL), 0);
    ck_assert_str_eq(del_status_str(DEL_ENUMERIC), "non-finite value");
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

static Suite *nonfinite_suite(void)
{
    Suite *s = suite_create("nonfinite");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_nonfinite_loss_stops_the_fit_before_that_step);
    tcase_add_test(tc, test_nonfinite_running_statistics_stop_the_fit_with_the_statistics_restored);
    tcase_add_test(tc, test_skip_policy_skips_and_counts_each_nonfinite_step);
    tcase_add_test(tc, test_skipped_steps_and_the_policy_survive_a_checkpoint);
    tcase_add_test(tc, test_huge_learning_rate_stops_the_fit_with_finite_weights);
    tcase_add_test(tc, test_evaluate_refuses_a_model_with_nonfinite_outputs);
    tcase_add_test(tc, test_evaluate_refuses_labels_the_model_has_no_output_for);
    tcase_add_test(tc, test_kept_optimizer_after_replace_head_names_the_trainer_remedy);
    tcase_add_test(tc, test_set_nonfinite_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_nonfinite_XXXXXX";
    return test_run_suite_inside_tmpdir(nonfinite_suite, tmpdir);
}
