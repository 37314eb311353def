/* Knowledge distillation (SPEC §1.3): the step's loss and update against
 * the formula worked in double, the weights of each term, the teacher
 * never updated, the transfer stream alone (alpha = 1), the teacher's own
 * normalisation, bit-exact resume, and bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

enum { N = 12, D = 4, K = 3 };

/* 12 images of 2x2 (D = 4 pixels), labels i % 3; the unlabeled copy has
 * every label -1. */
static del_dataset *images(int labeled)
{
    static uint8_t px[N * D];
    static int32_t labels[N];
    for (int i = 0; i < N * D; i++)
        px[i] = (uint8_t)((i * 71 + 5) % 256);
    for (int i = 0; i < N; i++)
        labels[i] = labeled ? i % K : -1;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 2, 2, 1));
    return ds;
}

/* flatten + linear K with weights w[k][d] = sin(seed * (k * D + d + 1)). */
static del_model *linear_model(double seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 3"));
    float *p = del_model_params(m);
    for (int i = 0; i < K * D + K; i++)
        p[i] = (float)(0.5 * sin(seed * (i + 1)));
    return m;
}

static void softmax_t(const double *z, double t, double *p)
{
    double mx = z[0], sum = 0.0;
    for (int k = 1; k < K; k++)
        mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++)
        sum += p[k] = exp((z[k] - mx) / t);
    for (int k = 0; k < K; k++)
        p[k] /= sum;
}

/* The rows of ds normalised as the trainer does (defaults 0.2860/0.3530). */
static void normalised(const del_dataset *ds, double x[N][D])
{
    const uint8_t *px = del_dataset_images(ds);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            x[i][d] = ((double)px[i * D + d] / 255.0 - 0.2860) / 0.3530;
}

/* The expected parameters after one plain-SGD step (lr, no momentum, no
 * decay) on all N images of each stream used: the loss is
 *   kd_w * mean over the step's images of T^2 KL(p_T(t) || p_T(s)) + ce_w * CE over labeled,
 * whose gradient in the student's logits is, per image, kd_w * T (p_T(s) -
 * p_T(t)) / total + ce_w (p(s) - onehot) / N_labeled (Hinton's derivation:
 * d/dz T^2 KL = T (p_T(s) - p_T(t))). */
static void expected_step(const float *student, const float *teacher, const del_dataset *ds, int streams,
                          double t, double kd_w, double ce_w, double lr, float *out)
{
    double x[N][D], g[K * D + K] = {0};
    normalised(ds, x);
    const int total = N * streams;
    for (int s = 0; s < streams; s++)
        for (int i = 0; i < N; i++) {
            double zs[K], zt[K], ps[K], pt[K], p1[K];
            for (int k = 0; k < K; k++) {
                zs[k] = student[K * D + k];
                zt[k] = teacher[K * D + k];
                for (int d = 0; d < D; d++) {
                    zs[k] += student[k * D + d] * x[i][d];
                    zt[k] += teacher[k * D + d] * x[i][d];
                }
            }
            softmax_t(zs, t, ps);
            softmax_t(zt, t, pt);
            softmax_t(zs, 1.0, p1);
            for (int k = 0; k < K; k++) {
                double dz = kd_w * t * (ps[k] - pt[k]) / total;
                if (s == 0 && ce_w != 0.0) /* stream 0: the labeled one */
                    dz += ce_w * (p1[k] - (k == i % K ? 1.0 : 0.0)) / N;
                for (int d = 0; d < D; d++)
                    g[k * D + d] += dz * x[i][d];
                g[K * D + k] += dz;
            }
        }
    for (int i = 0; i < K * D + K; i++)
        out[i] = (float)(student[i] - lr * g[i]);
}

static void plain_sgd(del_trainer *tr)
{
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.5f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, N));
}

static void check_params(const float *got, const float *want)
{
    for (int i = 0; i < K * D + K; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= 2e-6f + 2e-6f * fabsf(want[i]), "param %d: %.8g vs %.8g", i,
                      (double)got[i], (double)want[i]);
}

/* Two steps on the labeled images against the formula: the defaults
 * (T 4, alpha 0.9), then two independent weights, T 2, without T^2 (its
 * factor undone). added: a supervised trainer given the teacher with
 * del_trainer_add_teacher(T 4, alpha 0.9) instead of a distillation one. */
static void formula_steps(int added)
{
    del_dataset *ds = images(1);
    del_model *s = linear_model(1.3), *t = linear_model(0.7);
    float s0[K * D + K], t0[K * D + K], want[K * D + K];
    memcpy(s0, del_model_params(s), sizeof s0);
    memcpy(t0, del_model_params(t), sizeof t0);
    del_trainer *tr = NULL;
    if (added) {
        ck_assert_del_ok(del_trainer_new_supervised(&tr, s, ds));
        ck_assert_del_ok(del_trainer_add_teacher(tr, t, 4.0f, 0.9f));
    } else {
        ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, ds, NULL));
    }
    plain_sgd(tr);
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    expected_step(s0, t0, ds, 1, 4.0, 0.9, 1.0 - 0.9f, 0.5, want);
    check_params(del_model_params(s), want);
    ck_assert_mem_eq(del_model_params(t), t0, sizeof t0); /* the teacher never moves */
    memcpy(s0, del_model_params(s), sizeof s0);
    ck_assert_del_ok(del_trainer_set_distill_weights(tr, 2.0f, 0.5f));
    ck_assert_del_ok(del_trainer_set_temperature(tr, 2.0f));
    ck_assert_del_ok(del_trainer_set_distill_t2(tr, 0));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    expected_step(s0, t0, ds, 1, 2.0, 2.0 / 4.0, 0.5, 0.5, want);
    check_params(del_model_params(s), want);
    del_trainer_free(tr);
    del_model_free(s);
    del_model_free(t);
    del_dataset_free(ds);
}

START_TEST(test_one_step_matches_the_formula_on_labeled_images)
{
    formula_steps(0);
}
END_TEST

/* A teacher added to a supervised trainer (del_trainer_add_teacher) gives
 * the same steps, its term changed by the distillation setters. */
START_TEST(test_a_teacher_added_to_a_supervised_trainer_steps_by_the_formula)
{
    formula_steps(1);
}
END_TEST

/* 4 steps of a CNN on 40 8x8 images with CutMix (p = 1) and label
 * smoothing 0.2: supervised, or distillation with the KD weight 0 (its CE
 * term alone). The two must train alike: label smoothing applies to the
 * mixed labels of either. */
static void mixed_run(int distill, float *params, int64_t n)
{
    enum { M = 40 };
    static uint8_t px[M * 64];
    static int32_t labels[M];
    for (int i = 0; i < M * 64; i++)
        px[i] = (uint8_t)((i * 53 + 7) % 256);
    for (int i = 0; i < M; i++)
        labels[i] = i % 4;
    del_dataset *l = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&l, px, labels, M, 8, 8, 1));
    del_model *s = NULL, *t = NULL;
    ck_assert_del_ok(del_model_from_spec(&s, "input 1 8 8; conv2d 3 k=3 p=1; relu; flatten; linear 4"));
    ck_assert_del_ok(del_model_init(s, 5));
    ck_assert_del_ok(del_model_from_spec(&t, "input 1 8 8; flatten; linear 4"));
    ck_assert_del_ok(del_model_init(t, 6));
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_cutmix(a, 1.0f, 1.0f));
    del_trainer *tr = NULL;
    if (distill) {
        ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, l, NULL));
        ck_assert_del_ok(del_trainer_set_distill_weights(tr, 0.0f, 1.0f));
    } else {
        ck_assert_del_ok(del_trainer_new_supervised(&tr, s, l));
    }
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 16));
    ck_assert_del_ok(del_trainer_set_augment(tr, a));
    ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.2f));
    ck_assert_del_ok(del_trainer_fit(tr, 4));
    ck_assert_int_eq(del_model_num_params(s), n);
    memcpy(params, del_model_params(s), (size_t)n * sizeof(float));
    del_trainer_free(tr);
    del_augment_free(a);
    del_model_free(s);
    del_model_free(t);
    del_dataset_free(l);
}

START_TEST(test_label_smoothing_applies_to_cutmix_labels_in_distillation)
{
    enum { P = 3 * 9 + 3 + 3 * 64 * 4 + 4 };
    static float sup[P], kd[P];
    mixed_run(0, sup, P);
    mixed_run(1, kd, P);
    ck_assert_mem_eq(sup, kd, sizeof sup);
}
END_TEST

/* del_trainer_add_teacher's bad arguments change nothing: the trainer then
 * trains as one never given them. */
START_TEST(test_bad_added_teachers_are_refused_and_change_nothing)
{
    del_dataset *ds = images(1);
    del_model *s = linear_model(1.3), *s2 = linear_model(1.3), *t = linear_model(0.7), *wide = NULL, *big = NULL;
    ck_assert_del_ok(del_model_from_spec(&wide, "input 1 2 2; flatten; linear 5"));
    ck_assert_del_ok(del_model_from_spec(&big, "input 1 3 3; flatten; linear 3"));
    del_trainer *tr = NULL, *plain = NULL, *kd = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, s, ds));
    ck_assert_del_err(del_trainer_add_teacher(NULL, t, 4.0f, 0.9f), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_add_teacher(tr, NULL, 4.0f, 0.9f), DEL_EINVAL, "'teacher'");
    ck_assert_del_err(del_trainer_add_teacher(tr, s, 4.0f, 0.9f), DEL_EINVAL, "another model");
    ck_assert_del_err(del_trainer_add_teacher(tr, wide, 4.0f, 0.9f), DEL_EINVAL, "same classes");
    ck_assert_del_err(del_trainer_add_teacher(tr, big, 4.0f, 0.9f), DEL_EINVAL, "same images");
    ck_assert_del_err(del_trainer_add_teacher(tr, t, 0.0f, 0.9f), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_trainer_add_teacher(tr, t, INFINITY, 0.9f), DEL_EINVAL, "finite");
    ck_assert_del_err(del_trainer_add_teacher(tr, t, 4.0f, -0.1f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_add_teacher(tr, t, 4.0f, NAN), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_teacher_training(tr, 1), DEL_EINVAL, "does not apply to a supervised trainer");
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_del_ok(del_trainer_new_supervised(&plain, s2, ds));
    ck_assert_del_ok(del_trainer_fit(plain, 2));
    ck_assert_mem_eq(del_model_params(s), del_model_params(s2), (size_t)del_model_num_params(s) * sizeof(float));
    /* One teacher per trainer; a distillation trainer has its own. */
    ck_assert_del_ok(del_trainer_add_teacher(tr, t, 4.0f, 0.9f));
    ck_assert_del_err(del_trainer_add_teacher(tr, t, 4.0f, 0.9f), DEL_EINVAL, "has a teacher already");
    ck_assert_del_ok(del_trainer_new_distill(&kd, s2, t, ds, NULL));
    ck_assert_del_err(del_trainer_add_teacher(kd, t, 4.0f, 0.9f), DEL_EINVAL, "del_trainer_new_distill");
    del_trainer_free(kd);
    del_trainer_free(plain);
    del_trainer_free(tr);
    del_model_free(s);
    del_model_free(s2);
    del_model_free(t);
    del_model_free(wide);
    del_model_free(big);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_labeled_and_transfer_streams_share_the_distillation_mean)
{
    /* The transfer set is the same images, unlabeled: the step's images are
     * the 12 labeled and the 12 unlabeled, the KL mean over all 24, the CE
     * over the 12 labeled. */
    del_dataset *ds = images(1), *u = images(0);
    del_model *s = linear_model(1.3), *t = linear_model(0.7);
    float s0[K * D + K], t0[K * D + K], want[K * D + K];
    memcpy(s0, del_model_params(s), sizeof s0);
    memcpy(t0, del_model_params(t), sizeof t0);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, ds, u));
    plain_sgd(tr);
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, N));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    expected_step(s0, t0, ds, 2, 4.0, 0.9, 0.1, 0.5, want);
    check_params(del_model_params(s), want);
    del_trainer_free(tr);
    del_model_free(s);
    del_model_free(t);
    del_dataset_free(u);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_alpha_one_trains_on_unlabeled_images_alone)
{
    del_dataset *u = images(0);
    del_model *s = linear_model(1.3), *t = linear_model(0.7);
    float s0[K * D + K], t0[K * D + K], want[K * D + K];
    memcpy(s0, del_model_params(s), sizeof s0);
    memcpy(t0, del_model_params(t), sizeof t0);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, NULL, u));
    ck_assert_del_ok(del_trainer_set_distill_alpha(tr, 1.0f));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.5f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, N));
    ck_assert_del_err(del_trainer_set_batch_size(tr, 4), DEL_EINVAL, "no labeled stream");
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    expected_step(s0, t0, u, 1, 4.0, 1.0, 0.0, 0.5, want);
    check_params(del_model_params(s), want);
    del_trainer_free(tr);
    del_model_free(s);
    del_model_free(t);
    del_dataset_free(u);
}
END_TEST

START_TEST(test_teacher_normalisation_equal_to_the_students_changes_nothing)
{
    /* scale std/std = 1 and shift 0 exactly: the teacher's input is the
     * student's, bit for bit. A different one changes the result. */
    del_dataset *ds = images(1);
    float p[3][K * D + K];
    for (int run = 0; run < 3; run++) {
        del_model *s = linear_model(1.3), *t = linear_model(0.7);
        del_trainer *tr = NULL;
        ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, ds, NULL));
        const float same_m[1] = {0.2860f}, same_s[1] = {0.3530f}, other_m[1] = {0.5f}, other_s[1] = {0.25f};
        if (run == 1)
            ck_assert_del_ok(del_trainer_set_teacher_normalize(tr, same_m, same_s, 1));
        if (run == 2)
            ck_assert_del_ok(del_trainer_set_teacher_normalize(tr, other_m, other_s, 1));
        ck_assert_del_ok(del_trainer_fit(tr, 2));
        memcpy(p[run], del_model_params(s), sizeof p[run]);
        del_trainer_free(tr);
        del_model_free(s);
        del_model_free(t);
    }
    ck_assert_mem_eq(p[0], p[1], sizeof p[0]);
    ck_assert_msg(memcmp(p[0], p[2], sizeof p[0]) != 0, "the teacher's normalisation had no effect");
    del_dataset_free(ds);
}
END_TEST

/* A distillation run of a CNN student from a CNN teacher with batchnorm,
 * crop + flip on both streams and CutMix on the labeled one, label
 * smoothing: 6 steps, or 3 + checkpoint + 3 in a new trainer. */
static void distill_run(int resume, float *params, int64_t n)
{
    enum { M = 40 };
    static uint8_t px[M * 64];
    static int32_t labels[M], none[M];
    for (int i = 0; i < M * 64; i++)
        px[i] = (uint8_t)((i * 37 + 11) % 256);
    for (int i = 0; i < M; i++) {
        labels[i] = i % 4;
        none[i] = -1;
    }
    del_dataset *l = NULL, *u = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&l, px, labels, M, 8, 8, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&u, px, none, M, 8, 8, 1));
    del_model *s = NULL, *t = NULL;
    ck_assert_del_ok(del_model_from_spec(&s, "input 1 8 8; flatten; linear 16; relu; linear 4"));
    ck_assert_del_ok(del_model_from_spec(&t, "input 1 8 8; conv2d 4 k=3 p=1; batchnorm; relu; flatten; linear 4"));
    ck_assert_del_ok(del_model_init(t, 9));
    del_augment *a = NULL, *b = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_random_crop(a, 8, 8, 1, 0));
    ck_assert_del_ok(del_augment_add_cutmix(a, 0.5f, 1.0f));
    ck_assert_del_ok(del_augment_new(&b));
    ck_assert_del_ok(del_augment_add_flip_h(b, 0.5f));
    del_trainer *tr = NULL;
    for (int part = 0; part < (resume ? 2 : 1); part++) {
        ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, l, u));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 16));
        ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, 24));
        ck_assert_del_ok(del_trainer_set_augment(tr, a));
        ck_assert_del_ok(del_trainer_set_augment_unlabeled(tr, b));
        ck_assert_del_ok(del_trainer_set_label_smoothing(tr, 0.1f));
        ck_assert_del_ok(del_trainer_set_total_steps(tr, 6));
        if (part == 0) { /* the second trainer gets them from the checkpoint */
            ck_assert_del_ok(del_trainer_set_temperature(tr, 2.5f));
            ck_assert_del_ok(del_trainer_set_distill_weights(tr, 0.7f, 0.4f));
            ck_assert_del_ok(del_trainer_set_teacher_training(tr, 1));
        }
        if (!resume) {
            ck_assert_del_ok(del_trainer_fit(tr, 6));
        } else if (part == 0) {
            ck_assert_del_ok(del_trainer_fit(tr, 3));
            ck_assert_del_ok(del_trainer_save_checkpoint(tr, "distill.delc"));
            del_trainer_free(tr);
            del_model_free(s);
            ck_assert_del_ok(del_model_from_spec(&s, "input 1 8 8; flatten; linear 16; relu; linear 4"));
            /* A fresh teacher too: its statistics (trained in training mode)
             * come back from the checkpoint. */
            del_model_free(t);
            ck_assert_del_ok(del_model_from_spec(&t, "input 1 8 8; conv2d 4 k=3 p=1; batchnorm; relu; flatten; "
                                                     "linear 4"));
            ck_assert_del_ok(del_model_init(t, 9));
        } else {
            ck_assert_del_ok(del_trainer_load_checkpoint(tr, "distill.delc"));
            ck_assert_del_ok(del_trainer_fit(tr, 3));
        }
    }
    ck_assert_int_eq(del_model_num_params(s), n);
    memcpy(params, del_model_params(s), (size_t)n * sizeof(float));
    del_trainer_free(tr);
    del_augment_free(a);
    del_augment_free(b);
    del_model_free(s);
    del_model_free(t);
    del_dataset_free(l);
    del_dataset_free(u);
}

START_TEST(test_distillation_resumes_bit_exactly_with_both_streams)
{
    enum { P = 64 * 16 + 16 + 16 * 4 + 4 };
    static float a[P], b[P];
    distill_run(0, a, P);
    distill_run(1, b, P);
    ck_assert_mem_eq(a, b, sizeof a);
}
END_TEST

START_TEST(test_bad_distillation_arguments_are_refused)
{
    del_dataset *ds = images(1);
    del_model *s = linear_model(1.3), *t = linear_model(0.7), *wide = NULL, *big = NULL;
    ck_assert_del_ok(del_model_from_spec(&wide, "input 1 2 2; flatten; linear 5"));
    ck_assert_del_ok(del_model_from_spec(&big, "input 1 3 3; flatten; linear 3"));
    del_trainer *tr = NULL;
    ck_assert_del_err(del_trainer_new_distill(&tr, s, wide, ds, NULL), DEL_EINVAL, "same classes");
    ck_assert_del_err(del_trainer_new_distill(&tr, s, big, ds, NULL), DEL_EINVAL, "same images");
    ck_assert_del_err(del_trainer_new_distill(&tr, s, s, ds, NULL), DEL_EINVAL, "another model");
    ck_assert_del_err(del_trainer_new_distill(&tr, s, t, NULL, NULL), DEL_EINVAL, "both be NULL");
    ck_assert_del_err(del_trainer_new_distill(&tr, s, NULL, ds, NULL), DEL_EINVAL, "must carry the teacher's soft");
    ck_assert_ptr_null(tr);
    ck_assert_del_ok(del_trainer_new_distill(&tr, s, t, ds, NULL));
    ck_assert_del_err(del_trainer_set_temperature(tr, 0.0f), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_trainer_set_temperature(tr, NAN), DEL_EINVAL, "finite");
    ck_assert_del_err(del_trainer_set_distill_alpha(tr, 1.5f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_distill_weights(tr, 0.0f, 0.0f), DEL_EINVAL, "both be 0");
    ck_assert_del_err(del_trainer_set_distill_weights(tr, -1.0f, 1.0f), DEL_EINVAL, "'kd_weight'");
    ck_assert_del_err(del_trainer_set_distill_t2(tr, 2), DEL_EINVAL, "'on'");
    ck_assert_del_err(del_trainer_set_teacher_training(tr, -1), DEL_EINVAL, "'training'");
    const float m[1] = {0.0f}, bad[1] = {0.0f};
    ck_assert_del_err(del_trainer_set_teacher_normalize(tr, m, bad, 1), DEL_EINVAL, "'std[0]'");
    ck_assert_del_err(del_trainer_set_unlabeled_batch_size(tr, 4), DEL_EINVAL, "no unlabeled stream");
    del_trainer_free(tr);
    ck_assert_del_ok(del_trainer_new_supervised(&tr, s, ds));
    ck_assert_del_err(del_trainer_set_temperature(tr, 2.0f), DEL_EINVAL, "does not apply to a supervised trainer");
    ck_assert_del_err(del_trainer_set_distill_alpha(tr, 0.5f), DEL_EINVAL, "does not apply");
    del_trainer_free(tr);
    del_model_free(s);
    del_model_free(t);
    del_model_free(wide);
    del_model_free(big);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_stored_soft_labels_train_as_the_live_teacher)
{
    /* The teacher's softmax over the set, stored on the datasets, gives the
     * steps of the live teacher (probabilities p are the logits log p up
     * to rounding: within 1e-5). */
    del_dataset *ds = images(1), *u = images(0);
    del_model *t = linear_model(0.7);
    const int64_t xs[4] = {N, 1, 2, 2}, ps[2] = {N, K};
    del_tensor *x = NULL, *p = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_tensor_new(&p, DEL_DTYPE_F32, 2, ps));
    int64_t rows[N];
    for (int i = 0; i < N; i++)
        rows[i] = i;
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    ck_assert_del_ok(del_dataset_batch(ds, rows, N, mean, stdv, x, NULL));
    ck_assert_del_ok(del_model_set_training(t, 0));
    ck_assert_del_ok(del_model_forward(t, x));
    ck_assert_del_ok(del_softmax(del_model_output(t), 1.0f, p));
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, p));
    ck_assert_del_ok(del_dataset_set_soft_labels(u, p));
    float live[K * D + K], stored[K * D + K];
    for (int run = 0; run < 2; run++) {
        del_model *s = linear_model(1.3);
        del_trainer *tr = NULL;
        ck_assert_del_ok(del_trainer_new_distill(&tr, s, run ? NULL : t, ds, u));
        ck_assert_del_ok(del_trainer_set_temperature(tr, 2.0f));
        ck_assert_del_ok(del_trainer_fit(tr, 4));
        memcpy(run ? stored : live, del_model_params(s), sizeof live);
        if (run)
            ck_assert_del_err(del_trainer_set_teacher_training(tr, 1), DEL_EINVAL, "no live teacher");
        del_trainer_free(tr);
        del_model_free(s);
    }
    for (int i = 0; i < K * D + K; i++)
        ck_assert_msg(fabsf(live[i] - stored[i]) <= 1e-5f, "param %d: %g vs %g", i, (double)live[i], (double)stored[i]);
    del_tensor_free(x);
    del_tensor_free(p);
    del_model_free(t);
    del_dataset_free(ds);
    del_dataset_free(u);
}
END_TEST

static Suite *distill_suite(void)
{
    Suite *s = suite_create("distill");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_one_step_matches_the_formula_on_labeled_images);
    tcase_add_test(tc, test_a_teacher_added_to_a_supervised_trainer_steps_by_the_formula);
    tcase_add_test(tc, test_label_smoothing_applies_to_cutmix_labels_in_distillation);
    tcase_add_test(tc, test_bad_added_teachers_are_refused_and_change_nothing);
    tcase_add_test(tc, test_labeled_and_transfer_streams_share_the_distillation_mean);
    tcase_add_test(tc, test_alpha_one_trains_on_unlabeled_images_alone);
    tcase_add_test(tc, test_teacher_normalisation_equal_to_the_students_changes_nothing);
    tcase_add_test(tc, test_distillation_resumes_bit_exactly_with_both_streams);
    tcase_add_test(tc, test_bad_distillation_arguments_are_refused);
    tcase_add_test(tc, test_stored_soft_labels_train_as_the_live_teacher);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_distill_XXXXXX";
    return test_run_suite_inside_tmpdir(distill_suite, tmpdir);
}
