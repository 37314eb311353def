/* Tests of src/train/supervised.c: the supervised trainer. */
#include <math.h>

#include "testutil.h"
#include "train_util.h"

/* An mlp for 1x28x28 input, initialised from init_seed. */
static del_model *new_mlp(uint64_t init_seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_init(m, init_seed));
    return m;
}

START_TEST(test_mlp_on_500_images_reaches_70_percent)
{
    require_fmnist();
    del_model *m = new_mlp(1);
    del_trainer *tr = NULL;
    double before = 0.0, after = 0.0;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_evaluate(tr, fm_test, &before));
    ck_assert_del_ok(del_trainer_fit(tr, 300));
    ck_assert_del_ok(del_trainer_evaluate(tr, fm_test, &after));
    /* Chance is 10%; a 784-256-10 MLP on 500 images gets about 75%. */
    ck_assert_msg(before < 0.3, "untrained accuracy %.3f", before);
    ck_assert_msg(after >= 0.70, "accuracy after 300 steps %.3f < 0.70", after);
    ck_assert_int_eq(del_model_is_training(m), 0);
    del_trainer_free(tr);
    del_model_free(m);
}
END_TEST

/* Trains a fresh mlp (init seed 1) for `steps` with the given thread
 * count and trainer seed; returns its parameters (malloc'd). */
static float *train_mlp_params(int threads, uint64_t seed, int64_t steps, int64_t *n_params)
{
    ck_assert_del_ok(del_set_num_threads(threads));
    del_model *m = new_mlp(1);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_seed(tr, seed));
    ck_assert_del_ok(del_trainer_fit(tr, steps));
    float *p = copy_params(m, n_params);
    del_trainer_free(tr);
    del_model_free(m);
    return p;
}

START_TEST(test_same_seed_gives_identical_weights_with_1_and_2_threads)
{
    require_fmnist();
    int64_t n1, n2;
    float *p1 = train_mlp_params(1, 42, 40, &n1);
    float *p2 = train_mlp_params(2, 42, 40, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(memcmp(p1, p2, (size_t)n1 * sizeof *p1) == 0, "weights differ between 1 and 2 threads");
    free(p1);
    free(p2);
}
END_TEST

START_TEST(test_cnn_same_seed_gives_identical_weights_with_1_and_2_threads)
{
    require_fmnist();
    float *p[2] = {NULL, NULL};
    int64_t n = 0;
    for (int t = 0; t < 2; t++) {
        ck_assert_del_ok(del_set_num_threads(t + 1));
        del_model *m = NULL;
        del_trainer *tr = NULL;
        ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
        ck_assert_del_ok(del_model_init(m, 7));
        ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 8));
        ck_assert_del_ok(del_trainer_set_seed(tr, 3));
        ck_assert_del_ok(del_trainer_fit(tr, 3));
        n = del_model_num_params(m);
        p[t] = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(p[t]);
        memcpy(p[t], del_model_params(m), (size_t)n * sizeof(float));
        del_trainer_free(tr);
        del_model_free(m);
    }
    ck_assert_msg(memcmp(p[0], p[1], (size_t)n * sizeof(float)) == 0, "fmnist-cnn weights differ between 1 and 2 threads");
    free(p[0]);
    free(p[1]);
}
END_TEST

START_TEST(test_different_seed_gives_different_weights)
{
    require_fmnist();
    int64_t n1, n2;
    float *p1 = train_mlp_params(1, 42, 10, &n1);
    float *p2 = train_mlp_params(1, 43, 10, &n2);
    ck_assert_msg(memcmp(p1, p2, (size_t)n1 * sizeof *p1) != 0, "seeds 42 and 43 gave the same weights");
    free(p1);
    free(p2);
}
END_TEST

START_TEST(test_batch_order_continues_across_fits)
{
    /* Plain SGD (no momentum, no decay, constant lr) has no state besides the
     * weights, so fit(10) + fit(10) equals fit(20) exactly if and only if the
     * second fit takes the batches that follow the first one's. */
    require_fmnist();
    float *p[2];
    int64_t n = 0;
    for (int run = 0; run < 2; run++) {
        del_model *m = new_mlp(5);
        del_trainer *tr = NULL;
        ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
        ck_assert_del_ok(del_trainer_set_sgd(tr, 0.05f, 0.0f, 0.0f, 0));
        ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 64));
        if (run == 0) {
            ck_assert_del_ok(del_trainer_fit(tr, 20));
        } else {
            ck_assert_del_ok(del_trainer_fit(tr, 10));
            ck_assert_del_ok(del_trainer_fit(tr, 10));
        }
        n = del_model_num_params(m);
        p[run] = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(p[run]);
        memcpy(p[run], del_model_params(m), (size_t)n * sizeof(float));
        del_trainer_free(tr);
        del_model_free(m);
    }
    ck_assert_msg(memcmp(p[0], p[1], (size_t)n * sizeof(float)) == 0, "fit(10)+fit(10) differs from fit(20)");
    free(p[0]);
    free(p[1]);
}
END_TEST

typedef struct progress_log {
    int calls;
    int64_t steps[64];
    int64_t totals[64];
    float losses[64];
    int cancel_at; /* return non-zero at this step (0: never) */
    del_trainer *trainer;
    del_status setter_status, fit_status;
} progress_log;

static int record_progress(int64_t step, int64_t total, float loss, void *user)
{
    progress_log *log = user;
    if (log->calls < 64) {
        log->steps[log->calls] = step;
        log->totals[log->calls] = total;
        log->losses[log->calls] = loss;
    }
    log->calls++;
    if (log->trainer) {
        log->setter_status = del_trainer_set_batch_size(log->trainer, 8);
        log->fit_status = del_trainer_fit(log->trainer, 1);
    }
    return log->cancel_at != 0 && step >= log->cancel_at;
}

START_TEST(test_progress_called_every_n_steps_and_after_the_last)
{
    require_fmnist();
    del_model *m = new_mlp(1);
    del_trainer *tr = NULL;
    progress_log log = {0};
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_progress(tr, record_progress, 10, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 25));
    ck_assert_int_eq(log.calls, 3);
    const int64_t want[3] = {10, 20, 25};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(log.steps[i], want[i]);
        ck_assert_int_eq(log.totals[i], 25);
        ck_assert_msg(isfinite(log.losses[i]) && log.losses[i] > 0.0f, "loss %g", (double)log.losses[i]);
    }
    /* Untrained 10-way softmax: the first losses are near ln 10 = 2.30. */
    ck_assert_msg(log.losses[0] > 0.5f && log.losses[0] < 5.0f, "first mean loss %g", (double)log.losses[0]);
    del_trainer_free(tr);
    del_model_free(m);
}
END_TEST

START_TEST(test_progress_loss_is_the_mean_since_the_previous_call)
{
    /* Same weights and seed, callback every step vs every 5 steps: each
     * 5-step value is the mean of the five per-step losses. */
    require_fmnist();
    progress_log every1 = {0}, every5 = {0};
    progress_log *logs[2] = {&every1, &every5};
    const int64_t every[2] = {1, 5};
    for (int run = 0; run < 2; run++) {
        del_model *m = new_mlp(9);
        del_trainer *tr = NULL;
        ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
        ck_assert_del_ok(del_trainer_set_progress(tr, record_progress, every[run], logs[run]));
        ck_assert_del_ok(del_trainer_fit(tr, 15));
        del_trainer_free(tr);
        del_model_free(m);
    }
    ck_assert_int_eq(every1.calls, 15);
    ck_assert_int_eq(every5.calls, 3);
    for (int k = 0; k < 3; k++) {
        double sum = 0.0;
        for (int j = 0; j < 5; j++)
            sum += every1.losses[5 * k + j];
        ck_assert_double_eq_tol(every5.losses[k], sum / 5.0, 1e-5);
    }
    /* Training makes progress: the last five steps beat the first five. */
    ck_assert_float_lt(every5.losses[2], every5.losses[0]);
}
END_TEST

START_TEST(test_nonzero_callback_return_cancels_the_fit)
{
    require_fmnist();
    del_model *m = new_mlp(1);
    del_trainer *tr = NULL;
    progress_log log = {0};
    log.cancel_at = 20;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_progress(tr, record_progress, 10, &log));
    ck_assert_del_err(del_trainer_fit(tr, 100), DEL_ECANCELED, "step 20");
    ck_assert_int_eq(log.calls, 2);
    ck_assert_int_eq(del_model_is_training(m), 0);
    /* The trainer is usable again afterwards. */
    ck_assert_del_ok(del_trainer_set_progress(tr, NULL, 0, NULL));
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    del_trainer_free(tr);
    del_model_free(m);
}
END_TEST

START_TEST(test_settings_and_fit_are_refused_during_a_fit)
{
    require_fmnist();
    del_model *m = new_mlp(1);
    del_trainer *tr = NULL;
    progress_log log = {0};
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    log.trainer = tr;
    ck_assert_del_ok(del_trainer_set_progress(tr, record_progress, 1, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    ck_assert_int_eq(log.calls, 1);
    ck_assert_int_eq(log.setter_status, DEL_ESTATE);
    ck_assert_int_eq(log.fit_status, DEL_ESTATE);
    del_trainer_free(tr);
    del_model_free(m);
}
END_TEST

START_TEST(test_evaluate_counts_argmax_hits_on_labeled_images_only)
{
    /* Model: flatten + linear 2 with W = identity, b = 0, so the logits are
     * the two normalised pixels and the prediction is the brighter pixel
     * (pixel 0 on ties). 1,203 images cross the 500-image batches. */
    enum { N = 1203 };
    static uint8_t px[N * 2];
    static int32_t labels[N];
    int64_t labeled = 0, hits = 0;
    for (int i = 0; i < N; i++) {
        px[2 * i] = (uint8_t)(i % 7 * 30);
        px[2 * i + 1] = (uint8_t)(i % 5 * 50);
        int truth = px[2 * i + 1] > px[2 * i] ? 1 : 0;
        labels[i] = i % 4 == 0 ? -1 : i % 3 == 0 ? 1 - truth : truth;
        if (labels[i] >= 0) {
            labeled++;
            hits += labels[i] == truth;
        }
    }
    del_dataset *ds = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 1, 2, 1));
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 1 2; flatten; linear 2"));
    ck_assert_int_eq(del_model_num_params(m), 6);
    const float identity[6] = {1, 0, 0, 1, 0, 0};
    memcpy(del_model_params(m), identity, sizeof identity);
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    const float mean[1] = {0.0f}, stdv[1] = {1.0f};
    ck_assert_del_ok(del_trainer_set_normalize(tr, mean, stdv, 1));
    ck_assert_del_ok(del_model_set_training(m, 1));
    double acc = -1.0;
    ck_assert_del_ok(del_trainer_evaluate(tr, ds, &acc));
    ck_assert_double_eq_tol(acc, (double)hits / (double)labeled, 1e-12);
    ck_assert_msg(acc > 0.5 && acc < 0.9, "accuracy %g should be about 2/3", acc);
    ck_assert_int_eq(del_model_is_training(m), 1); /* restored */
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_fit_skips_unlabeled_images)
{
    /* Unlabeled (-1) images would make the cross-entropy fail if they ever
     * reached a batch. */
    enum { N = 40 };
    uint8_t px[N * 4];
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < 4; p++)
            px[4 * i + p] = (uint8_t)(i * 13 + p * 50);
        labels[i] = i % 2 ? -1 : i % 3;
    }
    del_dataset *ds = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 2, 2, 1));
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_err(del_trainer_set_batch_size(tr, 21), DEL_EINVAL, "1..20");
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 20));
    ck_assert_del_ok(del_trainer_fit(tr, 5));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_new_supervised_rejects_bad_arguments)
{
    const uint8_t px[2 * 16] = {0};
    const int32_t labels[2] = {0, 4};
    const int32_t none[2] = {-1, -1};
    del_dataset *ds = NULL, *unlabeled = NULL;
    del_model *m = NULL, *small = NULL, *empty = NULL, *spatial = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 2, 4, 4, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&unlabeled, px, none, 2, 4, 4, 1));
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; flatten; linear 5"));
    ck_assert_del_ok(del_model_from_spec(&small, "input 1 4 4; flatten; linear 4"));
    ck_assert_del_ok(del_model_new(&empty, 1, 4, 4));
    ck_assert_del_ok(del_model_from_spec(&spatial, "input 1 4 4; conv2d 2 k=3 p=1"));
    del_model *wrong_input = NULL;
    ck_assert_del_ok(del_model_from_spec(&wrong_input, "input 1 28 28; flatten; linear 5"));

    ck_assert_del_err(del_trainer_new_supervised(NULL, m, ds), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_trainer_new_supervised(&tr, NULL, ds), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_trainer_new_supervised(&tr, m, NULL), DEL_EINVAL, "'labeled'");
    ck_assert_del_err(del_trainer_new_supervised(&tr, m, unlabeled), DEL_EINVAL, "no labeled image");
    ck_assert_del_err(del_trainer_new_supervised(&tr, small, ds), DEL_EINVAL, "label 4");
    ck_assert_del_err(del_trainer_new_supervised(&tr, empty, ds), DEL_EINVAL, "no parameters");
    ck_assert_del_err(del_trainer_new_supervised(&tr, spatial, ds), DEL_EINVAL, "class scores");
    ck_assert_del_err(del_trainer_new_supervised(&tr, wrong_input, ds), DEL_EINVAL, "do not fit");
    ck_assert_ptr_null(tr);
    del_trainer_free(NULL);

    del_model_free(m);
    del_model_free(small);
    del_model_free(empty);
    del_model_free(spatial);
    del_model_free(wrong_input);
    del_dataset_free(ds);
    del_dataset_free(unlabeled);
}
END_TEST

START_TEST(test_setters_reject_bad_values)
{
    const uint8_t px[3 * 4] = {0};
    const int32_t labels[3] = {0, 1, 1};
    del_dataset *ds = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 3, 2, 2, 1));
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 2"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));

    ck_assert_del_err(del_trainer_set_batch_size(NULL, 2), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_batch_size(tr, 0), DEL_EINVAL, "'batch_size'");
    ck_assert_del_err(del_trainer_set_batch_size(tr, 4), DEL_EINVAL, "'batch_size'");
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 3));

    ck_assert_del_err(del_trainer_set_sgd(NULL, 0.1f, 0.9f, 0.0f, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.0f, 0.9f, 0.0f, 1), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_trainer_set_sgd(tr, NAN, 0.9f, 0.0f, 1), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_trainer_set_sgd(tr, INFINITY, 0.9f, 0.0f, 1), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.1f, 1.0f, 0.0f, 1), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.1f, -0.1f, 0.0f, 1), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.1f, 0.9f, -1e-4f, 1), DEL_EINVAL, "'weight_decay'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.1f, 0.9f, 0.0f, 2), DEL_EINVAL, "'nesterov'");
    ck_assert_del_err(del_trainer_set_sgd(tr, 0.1f, 0.0f, 0.0f, 1), DEL_EINVAL, "'nesterov'");
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.1f, 0.0f, 0.0f, 0));

    ck_assert_del_err(del_trainer_set_schedule(NULL, DEL_SCHEDULE_COSINE), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_schedule(tr, (del_schedule)3), DEL_EINVAL, "'kind'");
    ck_assert_del_err(del_trainer_set_schedule(tr, (del_schedule)-1), DEL_EINVAL, "'kind'");
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));

    const float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.5f, 0.5f, 0.5f}, zero[1] = {0.0f}, nan_mean[1] = {NAN};
    ck_assert_del_err(del_trainer_set_normalize(NULL, mean, stdv, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_normalize(tr, NULL, stdv, 1), DEL_EINVAL, "'mean'");
    ck_assert_del_err(del_trainer_set_normalize(tr, mean, NULL, 1), DEL_EINVAL, "'std'");
    ck_assert_del_err(del_trainer_set_normalize(tr, mean, stdv, 3), DEL_EINVAL, "'channels'");
    ck_assert_del_err(del_trainer_set_normalize(tr, mean, zero, 1), DEL_EINVAL, "'std[0]'");
    ck_assert_del_err(del_trainer_set_normalize(tr, nan_mean, stdv, 1), DEL_EINVAL, "'mean[0]'");
    ck_assert_del_ok(del_trainer_set_normalize(tr, mean, stdv, 1));

    ck_assert_del_err(del_trainer_set_seed(NULL, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_ok(del_trainer_set_seed(tr, 1));

    ck_assert_del_err(del_trainer_set_progress(NULL, record_progress, 1, NULL), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_progress(tr, record_progress, 0, NULL), DEL_EINVAL, "'every'");
    ck_assert_del_ok(del_trainer_set_progress(tr, NULL, 0, NULL));

    ck_assert_del_err(del_trainer_fit(NULL, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_fit(tr, 0), DEL_EINVAL, "'steps'");

    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_evaluate_rejects_bad_arguments)
{
    const uint8_t px[2 * 9] = {0};
    const int32_t labels[2] = {0, 1}, none[2] = {-1, -1};
    del_dataset *ds = NULL, *other = NULL, *unlabeled = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    double acc = 0.0;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 2, 2, 2, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&other, px, labels, 2, 3, 3, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&unlabeled, px, none, 2, 2, 2, 1));
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 2"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_err(del_trainer_evaluate(NULL, ds, &acc), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_evaluate(tr, NULL, &acc), DEL_EINVAL, "'test'");
    ck_assert_del_err(del_trainer_evaluate(tr, ds, NULL), DEL_EINVAL, "'accuracy'");
    ck_assert_del_err(del_trainer_evaluate(tr, other, &acc), DEL_EINVAL, "'test'");
    ck_assert_del_err(del_trainer_evaluate(tr, unlabeled, &acc), DEL_EINVAL, "no labeled image");
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
    del_dataset_free(other);
    del_dataset_free(unlabeled);
}
END_TEST

static Suite *supervised_suite(void)
{
    Suite *s = suite_create("supervised");
    TCase *fm = tcase_create("fashion_mnist");
    tcase_add_unchecked_fixture(fm, fm_setup, fm_teardown);
    tcase_set_timeout(fm, 300);
    tcase_add_test(fm, test_mlp_on_500_images_reaches_70_percent);
    tcase_add_test(fm, test_same_seed_gives_identical_weights_with_1_and_2_threads);
    tcase_add_test(fm, test_cnn_same_seed_gives_identical_weights_with_1_and_2_threads);
    tcase_add_test(fm, test_different_seed_gives_different_weights);
    tcase_add_test(fm, test_batch_order_continues_across_fits);
    tcase_add_test(fm, test_progress_called_every_n_steps_and_after_the_last);
    tcase_add_test(fm, test_progress_loss_is_the_mean_since_the_previous_call);
    tcase_add_test(fm, test_nonzero_callback_return_cancels_the_fit);
    tcase_add_test(fm, test_settings_and_fit_are_refused_during_a_fit);
    suite_add_tcase(s, fm);

    TCase *small = tcase_create("small");
    tcase_add_test(small, test_evaluate_counts_argmax_hits_on_labeled_images_only);
    tcase_add_test(small, test_fit_skips_unlabeled_images);
    tcase_add_test(small, test_new_supervised_rejects_bad_arguments);
    tcase_add_test(small, test_setters_reject_bad_values);
    tcase_add_test(small, test_evaluate_rejects_bad_arguments);
    suite_add_tcase(s, small);
    return s;
}

int main(void)
{
    return test_run_suite(supervised_suite());
}
