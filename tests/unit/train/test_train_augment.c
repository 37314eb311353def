/* Tests of the trainers' augmentation and prefetching (src/train/supervised.c
 * with src/train/prefetch.c): augmented batches, soft-label training,
 * determinism across thread counts and prefetch depths, cancelling. */
#include <math.h>

#include "testutil.h"
#include "train_util.h"

/* SPEC §5 "std aug": random crop 28 x 28 of the image padded by 2, then a
 * horizontal flip with p = 0.5; CutMix (p, alpha = 1) after it if p > 0. */
static del_augment *std_aug(uint64_t seed, float cutmix_p)
{
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, seed));
    ck_assert_del_ok(del_augment_add_random_crop(aug, 28, 28, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    if (cutmix_p > 0.0f)
        ck_assert_del_ok(del_augment_add_cutmix(aug, cutmix_p, 1.0f));
    return aug;
}

/* Trains a fresh mlp (init seed 1) on fm_labeled through aug with the given
 * thread count and prefetch depth; returns its parameters (malloc'd). */
static float *train_augmented(del_augment *aug, int threads, int depth, int64_t steps, int64_t *n_params)
{
    ck_assert_del_ok(del_set_num_threads(threads));
    del_model *m = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_init(m, 1));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_seed(tr, 9));
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_set_prefetch(tr, depth));
    ck_assert_del_ok(del_trainer_fit(tr, steps));
    float *p = copy_params(m, n_params);
    del_trainer_free(tr);
    del_model_free(m);
    return p;
}

START_TEST(test_augmented_training_is_identical_for_any_thread_count_and_prefetch_depth)
{
    require_fmnist();
    static const int runs[][2] = {{1, 0}, {1, 2}, {2, 0}, {2, 1}, {4, 0}, {4, 4}}; /* threads, depth */
    for (int with_cutmix = 0; with_cutmix < 2; with_cutmix++) {
        del_augment *aug = std_aug(5, with_cutmix ? 0.5f : 0.0f);
        int64_t n = 0, n_run = 0;
        float *ref = train_augmented(aug, 1, 0, 25, &n);
        for (size_t r = 1; r < sizeof runs / sizeof runs[0]; r++) {
            float *p = train_augmented(aug, runs[r][0], runs[r][1], 25, &n_run);
            ck_assert_int_eq(n_run, n);
            ck_assert_msg(memcmp(p, ref, (size_t)n * sizeof *p) == 0,
                          "weights with %d threads, prefetch %d differ from 1 thread, no prefetch (cutmix %d)",
                          runs[r][0], runs[r][1], with_cutmix);
            free(p);
        }
        free(ref);
        del_augment_free(aug);
    }
    ck_assert_del_ok(del_set_num_threads(2));
}
END_TEST

START_TEST(test_the_pipeline_changes_the_training)
{
    /* Guards the test above against a trainer that ignores its pipeline. */
    require_fmnist();
    del_augment *a5 = std_aug(5, 0.0f), *a6 = std_aug(6, 0.0f);
    int64_t n = 0;
    float *p5 = train_augmented(a5, 2, 2, 5, &n);
    float *p6 = train_augmented(a6, 2, 2, 5, &n);
    float *plain = train_augmented(NULL, 2, 2, 5, &n);
    ck_assert_msg(memcmp(p5, p6, (size_t)n * sizeof *p5) != 0, "pipeline seeds 5 and 6 gave the same weights");
    ck_assert_msg(memcmp(p5, plain, (size_t)n * sizeof *p5) != 0, "the pipeline made no difference");
    free(p5);
    free(p6);
    free(plain);
    del_augment_free(a5);
    del_augment_free(a6);
}
END_TEST

typedef struct loss_log {
    int calls;
    float losses[16];
    int cancel_at; /* non-zero return from this step on (0: never) */
} loss_log;

static int log_loss(int64_t step, int64_t total, float loss, void *user)
{
    (void)total;
    loss_log *log = user;
    if (log->calls < 16)
        log->losses[log->calls] = loss;
    log->calls++;
    return log->cancel_at != 0 && step >= log->cancel_at;
}

START_TEST(test_cutmix_soft_labels_train_an_mlp_to_65_percent)
{
    require_fmnist();
    del_augment *aug = std_aug(3, 0.5f);
    del_model *m = NULL;
    del_trainer *tr = NULL;
    loss_log log = {0};
    double acc = 0.0;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_init(m, 1));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_set_progress(tr, log_loss, 50, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 300));
    ck_assert_del_ok(del_trainer_evaluate(tr, fm_test, &acc));
    ck_assert_int_eq(log.calls, 6);
    /* Mixed targets keep the loss high (about 1.4 over the first 50 steps,
     * 1.0 over the last 50 here, against 1.0 -> 0.35 with hard labels), but
     * it must fall. */
    ck_assert_msg(log.losses[5] < 0.8f * log.losses[0], "loss %.3f -> %.3f did not fall by 20%%",
                  (double)log.losses[0], (double)log.losses[5]);
    /* Chance is 10%; without augmentation this MLP gets about 75%. */
    ck_assert_msg(acc >= 0.65, "accuracy %.3f < 0.65 after 300 CutMix steps", acc);
    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(aug);
}
END_TEST

/* ---- small synthetic datasets ---- */

enum { SH = 6, SW = 6, SN = 13, SK = 3 };

/* 13 images of 6 x 6 with distinct pixels; image 4 is unlabeled. */
static del_dataset *small_dataset(void)
{
    uint8_t px[SN * SH * SW];
    int32_t labels[SN];
    for (int i = 0; i < SN; i++) {
        for (int p = 0; p < SH * SW; p++)
            px[i * SH * SW + p] = (uint8_t)((i * 41 + p * 7 + (p * p) % 13) % 256);
        labels[i] = i == 4 ? -1 : i % SK;
    }
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, SN, SH, SW, 1));
    return ds;
}

static del_model *small_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 6 6; flatten; linear 3"));
    return m;
}

/* Plain SGD with lr 1, constant schedule, x/255 normalisation: one step
 * from zero weights is then exactly minus the gradient. */
static del_trainer *small_trainer(del_model *m, const del_dataset *ds, int batch)
{
    del_trainer *tr = NULL;
    const float mean[1] = {0.0f}, stdv[1] = {1.0f};
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 1.0f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_normalize(tr, mean, stdv, 1));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, batch));
    return tr;
}

/* A pad-2 random crop back to SH x SW, then a flip with p 0.5. */
static del_augment *crop_flip_pipeline(uint64_t seed)
{
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, seed));
    ck_assert_del_ok(del_augment_add_random_crop(aug, SH, SW, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    return aug;
}

/* The expected weights after one step from zero weights on the whole
 * labeled set, augmented with the streams of `epoch` (aug NULL: as is):
 * logits are 0, softmax 1/K, so dW[k][f] = mean_i (1/K - [y_i = k]) x_i[f]
 * and W = -dW (lr 1), b = -mean_i (1/K - [y_i = k]). */
static void expected_first_step(del_augment *aug, const del_dataset *ds, uint64_t epoch, double *want)
{
    const uint8_t *images = del_dataset_images(ds);
    const int32_t *labels = del_dataset_labels(ds);
    const int64_t shape[3] = {SH, SW, 1};
    uint8_t out[SH * SW];
    del_tensor *dst = NULL, *src = NULL;
    int n = 0;
    memset(want, 0, (SK * SH * SW + SK) * sizeof *want);
    ck_assert_del_ok(del_tensor_wrap(&dst, DEL_DTYPE_U8, 3, shape, out));
    for (int i = 0; i < SN; i++) {
        if (labels[i] < 0)
            continue;
        n++;
        const uint8_t *img = images + i * SH * SW;
        if (aug) {
            ck_assert_del_ok(del_tensor_wrap(&src, DEL_DTYPE_U8, 3, shape, (void *)img));
            ck_assert_del_ok(del_augment_image(aug, dst, src, epoch, i));
            del_tensor_free(src);
            src = NULL;
            img = out;
        }
        for (int k = 0; k < SK; k++) {
            double coef = 1.0 / SK - (labels[i] == k ? 1.0 : 0.0);
            for (int f = 0; f < SH * SW; f++)
                want[k * SH * SW + f] -= coef * ((double)img[f] / 255.0);
            want[SK * SH * SW + k] -= coef;
        }
    }
    for (int j = 0; j < SK * SH * SW + SK; j++)
        want[j] /= n;
    del_tensor_free(dst);
}

START_TEST(test_each_step_trains_on_the_pipelines_images_of_its_epoch)
{
    /* A batch of all 12 labeled images makes every step one epoch, so step
     * e (from zeroed weights) must match the pipeline's images of epoch e,
     * whatever order the trainer drew them in. */
    enum { NP = SK * SH * SW + SK };
    del_dataset *ds = small_dataset();
    del_model *m = small_model();
    ck_assert_int_eq(del_model_num_params(m), NP);
    del_augment *aug = crop_flip_pipeline(17);
    del_trainer *tr = small_trainer(m, ds, 12);
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    double want[3][NP];
    expected_first_step(aug, ds, 0, want[0]);
    expected_first_step(aug, ds, 1, want[1]);
    expected_first_step(NULL, ds, 0, want[2]);
    for (int epoch = 0; epoch < 2; epoch++) {
        memset(del_model_params(m), 0, NP * sizeof(float));
        ck_assert_del_ok(del_trainer_fit(tr, 1));
        const float *p = del_model_params(m);
        for (int j = 0; j < NP; j++)
            ck_assert_msg(fabs(p[j] - want[epoch][j]) < 1e-6, "epoch %d param %d: %.7f, expected %.7f", epoch, j,
                          (double)p[j], want[epoch][j]);
    }
    /* The three references differ, so the comparison above can tell them apart. */
    double d01 = 0.0, d02 = 0.0;
    for (int j = 0; j < NP; j++) {
        d01 += fabs(want[0][j] - want[1][j]);
        d02 += fabs(want[0][j] - want[2][j]);
    }
    ck_assert(d01 > 1e-3 && d02 > 1e-3);
    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(aug);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_a_batch_across_an_epoch_boundary_keys_each_image_by_its_own_epoch)
{
    /* Batches of 8 from 12 labeled images: step 1 holds the last 4 images
     * of epoch 0 and the first 4 of epoch 1. From zeroed weights each
     * image's gradient is its own, so 8 times the sum of the three steps'
     * updates is 12 times the sum of the two epochs' whole-set updates,
     * whatever order the images come in, if and only if every image is
     * augmented with the stream of the epoch it was drawn in. */
    enum { NP = SK * SH * SW + SK };
    del_dataset *ds = small_dataset();
    del_model *m = small_model();
    del_augment *aug = crop_flip_pipeline(23);
    del_trainer *tr = small_trainer(m, ds, 8);
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    double want[2][NP], got[NP] = {0};
    expected_first_step(aug, ds, 0, want[0]);
    expected_first_step(aug, ds, 1, want[1]);
    for (int step = 0; step < 3; step++) {
        memset(del_model_params(m), 0, NP * sizeof(float));
        ck_assert_del_ok(del_trainer_fit(tr, 1));
        const float *p = del_model_params(m);
        for (int j = 0; j < NP; j++)
            got[j] += 8.0 * p[j];
    }
    for (int j = 0; j < NP; j++) {
        const double expect = 12.0 * (want[0][j] + want[1][j]);
        ck_assert_msg(fabs(got[j] - expect) < 1e-5, "param %d: %.7f, expected %.7f", j, got[j], expect);
    }
    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(aug);
    del_dataset_free(ds);
}
END_TEST

/* Weights of a zero-initialised small model after the given fits, with a
 * crop + flip + CutMix pipeline (so that the batch number matters). A
 * positive cancel_at cancels the first fit after that step. */
static void small_run(int depth, const int64_t *fits, int nfits, int cancel_at, float *params)
{
    del_dataset *ds = small_dataset();
    del_model *m = small_model();
    del_augment *aug = crop_flip_pipeline(4);
    ck_assert_del_ok(del_augment_add_cutmix(aug, 1.0f, 1.0f));
    memset(del_model_params(m), 0, (size_t)del_model_num_params(m) * sizeof(float));
    del_trainer *tr = small_trainer(m, ds, 5);
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_set_prefetch(tr, depth));
    loss_log log = {0};
    for (int f = 0; f < nfits; f++) {
        if (f == 0 && cancel_at > 0) {
            log.cancel_at = cancel_at;
            ck_assert_del_ok(del_trainer_set_progress(tr, log_loss, 1, &log));
            ck_assert_del_err(del_trainer_fit(tr, fits[f]), DEL_ECANCELED, "stopped training");
            ck_assert_int_eq(log.calls, cancel_at);
            ck_assert_del_ok(del_trainer_set_progress(tr, NULL, 0, NULL));
        } else {
            ck_assert_del_ok(del_trainer_fit(tr, fits[f]));
        }
    }
    memcpy(params, del_model_params(m), (size_t)del_model_num_params(m) * sizeof(float));
    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(aug);
    del_dataset_free(ds);
}

START_TEST(test_cancel_while_prefetching_returns_canceled_and_keeps_the_batch_order)
{
    /* Plain SGD with a constant lr has no state besides the weights, so a
     * fit cancelled after step c followed by fit(8 - c) equals fit(8) iff the
     * batches the producer had prepared beyond step c were given back. */
    enum { NP = SK * SH * SW + SK };
    float ref[NP], got[NP];
    const int64_t whole[1] = {8};
    small_run(0, whole, 1, 0, ref);
    for (int depth = 0; depth <= 4; depth += 2) {
        for (int c = 1; c <= 7; c += 3) {
            const int64_t parts[2] = {100, 8 - c};
            small_run(depth, parts, 2, c, got);
            ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "prefetch %d, cancelled at %d: weights differ", depth,
                          c);
        }
        const int64_t split[3] = {3, 1, 4};
        small_run(depth, split, 3, 0, got);
        ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "prefetch %d: fit 3 + 1 + 4 differs from fit 8", depth);
    }
}
END_TEST

START_TEST(test_removing_the_pipeline_trains_on_the_plain_images)
{
    enum { NP = SK * SH * SW + SK };
    float got[2][NP];
    for (int run = 0; run < 2; run++) {
        del_dataset *ds = small_dataset();
        del_model *m = small_model();
        del_augment *aug = NULL;
        ck_assert_del_ok(del_augment_new(&aug));
        ck_assert_del_ok(del_augment_add_flip_h(aug, 1.0f));
        memset(del_model_params(m), 0, NP * sizeof(float));
        del_trainer *tr = small_trainer(m, ds, 4);
        if (run == 1) {
            /* trains once with the pipeline (soft-label buffers), then without */
            ck_assert_del_ok(del_trainer_set_augment(tr, aug));
            ck_assert_del_ok(del_trainer_fit(tr, 2));
            ck_assert_del_ok(del_trainer_set_augment(tr, NULL));
            ck_assert_del_ok(del_trainer_set_seed(tr, 0));
            memset(del_model_params(m), 0, NP * sizeof(float));
        }
        ck_assert_del_ok(del_trainer_fit(tr, 6));
        memcpy(got[run], del_model_params(m), sizeof got[run]);
        del_trainer_free(tr);
        del_model_free(m);
        del_augment_free(aug);
        del_dataset_free(ds);
    }
    ck_assert_msg(memcmp(got[0], got[1], sizeof got[0]) == 0, "training after removing the pipeline differs");
}
END_TEST

START_TEST(test_pipeline_whose_output_differs_from_the_model_input_is_rejected)
{
    del_dataset *ds = small_dataset();
    del_model *m = small_model();
    del_trainer *tr = small_trainer(m, ds, 4);
    del_augment *crop4 = NULL, *too_big = NULL, *grows = NULL;
    ck_assert_del_ok(del_augment_new(&crop4));
    ck_assert_del_ok(del_augment_add_random_crop(crop4, 4, 4, 0, 0));
    ck_assert_del_ok(del_augment_new(&too_big));
    ck_assert_del_ok(del_augment_add_random_crop(too_big, 12, 12, 1, 0));
    ck_assert_del_ok(del_augment_new(&grows));
    ck_assert_del_ok(del_augment_add_flip_h(grows, 0.5f));

    /* the message names both shapes */
    ck_assert_del_err(del_trainer_set_augment(tr, crop4), DEL_EINVAL, "into 4 x 4");
    ck_assert_del_err(del_trainer_set_augment(tr, crop4), DEL_EINVAL, "takes 1 x 6 x 6");
    ck_assert_del_err(del_trainer_set_augment(tr, too_big), DEL_EINVAL, "cannot run on the 6 x 6 images");
    ck_assert_del_err(del_trainer_set_augment_unlabeled(tr, crop4), DEL_EINVAL, "into 4 x 4");
    ck_assert_del_err(del_trainer_set_augment_unlabeled(tr, too_big), DEL_EINVAL, "'aug'");

    /* a step added after del_trainer_set_augment is caught when the fit starts */
    ck_assert_del_ok(del_trainer_set_augment(tr, grows));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    ck_assert_del_ok(del_augment_add_random_crop(grows, 5, 5, 0, 0));
    ck_assert_del_err(del_trainer_fit(tr, 1), DEL_EINVAL, "into 5 x 5");
    ck_assert_int_eq(del_model_is_training(m), 0);
    ck_assert_del_ok(del_trainer_set_augment(tr, NULL));
    ck_assert_del_err(del_trainer_set_augment_unlabeled(tr, grows), DEL_EINVAL, "into 5 x 5");
    ck_assert_del_ok(del_trainer_fit(tr, 1));

    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(crop4);
    del_augment_free(too_big);
    del_augment_free(grows);
    del_dataset_free(ds);
}
END_TEST

typedef struct setter_log {
    del_trainer *trainer;
    del_augment *aug;
    del_status augment, unlabeled, prefetch;
} setter_log;

static int try_setters(int64_t step, int64_t total, float loss, void *user)
{
    (void)step, (void)total, (void)loss;
    setter_log *log = user;
    log->augment = del_trainer_set_augment(log->trainer, log->aug);
    log->unlabeled = del_trainer_set_augment_unlabeled(log->trainer, NULL);
    log->prefetch = del_trainer_set_prefetch(log->trainer, 0);
    return 0;
}

START_TEST(test_new_setters_reject_bad_values_and_changes_during_a_fit)
{
    del_dataset *ds = small_dataset();
    del_model *m = small_model();
    del_trainer *tr = small_trainer(m, ds, 4);
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));

    ck_assert_del_err(del_trainer_set_augment(NULL, aug), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_augment_unlabeled(NULL, aug), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_prefetch(NULL, 1), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_prefetch(tr, -1), DEL_EINVAL, "'depth'");
    ck_assert_del_err(del_trainer_set_prefetch(tr, 5), DEL_EINVAL, "0..4");
    ck_assert_del_ok(del_trainer_set_prefetch(tr, 0));
    ck_assert_del_ok(del_trainer_set_prefetch(tr, 4));
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_set_augment(tr, NULL));
    ck_assert_del_ok(del_trainer_set_augment_unlabeled(tr, aug));
    ck_assert_del_ok(del_trainer_set_augment_unlabeled(tr, NULL));

    setter_log log = {tr, aug, DEL_OK, DEL_OK, DEL_OK};
    ck_assert_del_ok(del_trainer_set_progress(tr, try_setters, 1, &log));
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_int_eq(log.augment, DEL_ESTATE);
    ck_assert_int_eq(log.unlabeled, DEL_ESTATE);
    ck_assert_int_eq(log.prefetch, DEL_ESTATE);

    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(aug);
    del_dataset_free(ds);
}
END_TEST

static Suite *train_augment_suite(void)
{
    Suite *s = suite_create("train_augment");
    TCase *fm = tcase_create("fashion_mnist");
    tcase_add_unchecked_fixture(fm, fm_setup, fm_teardown);
    tcase_set_timeout(fm, 300);
    tcase_add_test(fm, test_augmented_training_is_identical_for_any_thread_count_and_prefetch_depth);
    tcase_add_test(fm, test_the_pipeline_changes_the_training);
    tcase_add_test(fm, test_cutmix_soft_labels_train_an_mlp_to_65_percent);
    suite_add_tcase(s, fm);

    TCase *small = tcase_create("small");
    tcase_set_timeout(small, 60);
    tcase_add_test(small, test_each_step_trains_on_the_pipelines_images_of_its_epoch);
    tcase_add_test(small, test_a_batch_across_an_epoch_boundary_keys_each_image_by_its_own_epoch);
    tcase_add_test(small, test_cancel_while_prefetching_returns_canceled_and_keeps_the_batch_order);
    tcase_add_test(small, test_removing_the_pipeline_trains_on_the_plain_images);
    tcase_add_test(small, test_pipeline_whose_output_differs_from_the_model_input_is_rejected);
    tcase_add_test(small, test_new_setters_reject_bad_values_and_changes_during_a_fit);
    suite_add_tcase(s, small);
    return s;
}

int main(void)
{
    return test_run_suite(train_augment_suite());
}
