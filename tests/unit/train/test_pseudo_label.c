/* Pseudo-labeling (SPEC §1.5): the trainer's steps equal the loss written
 * by hand from the public building blocks (the ramp, the threshold, hard
 * and soft targets, a joint batch or frozen statistics), the hidden labels
 * never train and their statistics match a count by hand, bit-exact
 * resume, bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

enum { NL = 12, NU = 20, SIDE = 4, K = 3 };

static const char MODEL[] = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3";

/* n images of 4x4 from an LCG; labels i % K, or -1 (unlabeled). */
static del_dataset *images(int n, uint32_t seed, int labeled)
{
    static uint8_t px[2][64 * SIDE * SIDE];
    static int32_t labels[2][64];
    const int which = labeled ? 0 : 1;
    uint32_t r = seed;
    for (int i = 0; i < n * SIDE * SIDE; i++) {
        r = r * 1664525u + 1013904223u;
        px[which][i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < n; i++)
        labels[which][i] = labeled ? i % K : -1;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px[which], labels[which], n, SIDE, SIDE, 1));
    return ds;
}

static del_model *model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, MODEL));
    ck_assert_del_ok(del_model_init(m, 21));
    return m;
}

typedef struct options {
    float threshold;
    int soft, frozen;
    const int32_t *truth; /* of the unlabeled rows, or NULL */
} options;

typedef struct counts {
    int64_t seen, kept, judged, correct;
} counts;

/* The pseudo-label targets of logits z (n x K) as written in the
 * docs: softmax in double, kept when its top probability >= threshold. */
static void targets(const float *z, int64_t n, const int64_t *rows, const options *o, int32_t *hard, float *soft,
                    float *mask, counts *c)
{
    for (int64_t r = 0; r < n; r++) {
        double p[K], sum = 0.0, top = z[r * K];
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[r * K + k] > top) {
                top = z[r * K + k];
                best = k;
            }
        for (int k = 0; k < K; k++)
            sum += p[k] = exp((double)z[r * K + k] - top);
        const int keep = p[best] / sum >= o->threshold;
        for (int k = 0; k < K; k++)
            soft[r * K + k] = (float)(p[k] / sum);
        hard[r] = keep ? best : -1;
        mask[r] = keep ? 1.0f : 0.0f;
        c->seen++;
        c->kept += keep;
        if (keep && o->truth) {
            c->judged++;
            c->correct += o->truth[rows[r]] == best;
        }
    }
}

/* `steps` steps of plain SGD (lr 0.3) by hand, each on the whole labeled
 * set and the whole unlabeled set in the trainer's batch orders, with
 * alpha(t) of the ramp (1, 3, 2). */
static void by_hand(del_model *m, const del_dataset *l, const del_dataset *u, const options *o, int steps, counts *c)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t xls[4] = {NL, 1, SIDE, SIDE}, xus[4] = {NU, 1, SIDE, SIDE}, xjs[4] = {NL + NU, 1, SIDE, SIDE};
    const int64_t ys[1] = {NL}, hs[1] = {NU}, zls[2] = {NL, K}, zus[2] = {NU, K}, zjs[2] = {NL + NU, K};
    del_tensor *xl = NULL, *xu = NULL, *xj = NULL, *y = NULL, *hard = NULL, *soft = NULL, *mask = NULL, *zl = NULL,
               *zu = NULL, *gl = NULL, *gu = NULL, *gj = NULL;
    ck_assert_del_ok(del_tensor_new(&xl, DEL_DTYPE_F32, 4, xls));
    ck_assert_del_ok(del_tensor_new(&xu, DEL_DTYPE_F32, 4, xus));
    ck_assert_del_ok(del_tensor_new(&xj, DEL_DTYPE_F32, 4, xjs));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&hard, DEL_DTYPE_I32, 1, hs));
    ck_assert_del_ok(del_tensor_new(&mask, DEL_DTYPE_F32, 1, hs));
    ck_assert_del_ok(del_tensor_new(&soft, DEL_DTYPE_F32, 2, zus));
    ck_assert_del_ok(del_tensor_new(&zl, DEL_DTYPE_F32, 2, zls));
    ck_assert_del_ok(del_tensor_new(&zu, DEL_DTYPE_F32, 2, zus));
    ck_assert_del_ok(del_tensor_new(&gl, DEL_DTYPE_F32, 2, zls));
    ck_assert_del_ok(del_tensor_new(&gu, DEL_DTYPE_F32, 2, zus));
    ck_assert_del_ok(del_tensor_new(&gj, DEL_DTYPE_F32, 2, zjs));
    const size_t image = SIDE * SIDE;
    const int64_t nb = del_model_num_buffers(m);
    float *saved = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *saved);
    ck_assert_ptr_nonnull(saved);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.3f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_CONSTANT, steps, 0.0f));
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int t = 0; t < steps; t++) {
        const float alpha = t < 1 ? 0.0f : t >= 3 ? 2.0f : (float)(2.0 * (t - 1) / 2.0);
        int64_t pl[NL], pu[NU];
        float ce = 0.0f, lu = 0.0f;
        ck_assert_del_ok(del_permutation(pl, NL, 0, (uint64_t)t, UINT64_C(0x6261746368)));
        ck_assert_del_ok(del_permutation(pu, NU, 0, (uint64_t)t, UINT64_C(0x756e6c6162)));
        ck_assert_del_ok(del_dataset_batch(l, pl, NL, mean, stdv, xl, y));
        ck_assert_del_ok(del_dataset_batch(u, pu, NU, mean, stdv, xu, NULL));
        ck_assert_del_ok(del_model_zero_grad(m));
        memset(del_tensor_data(gu), 0, sizeof(float) * NU * K);
        if (alpha == 0.0f || o->frozen) {
            ck_assert_del_ok(del_model_forward(m, xl));
            ck_assert_del_ok(del_loss_cross_entropy(del_model_output(m), y, &ce, gl));
            ck_assert_del_ok(del_model_backward(m, gl));
        }
        if (alpha != 0.0f && o->frozen) {
            memcpy(saved, del_model_buffers(m), (size_t)nb * sizeof(float));
            ck_assert_del_ok(del_model_forward(m, xu));
            memcpy(del_tensor_data(zu), del_tensor_data(del_model_output(m)), sizeof(float) * NU * K);
        } else if (alpha != 0.0f) {
            memcpy(del_tensor_data(xj), del_tensor_data(xl), NL * image * sizeof(float));
            memcpy((float *)del_tensor_data(xj) + NL * image, del_tensor_data(xu), NU * image * sizeof(float));
            ck_assert_del_ok(del_model_forward(m, xj));
            const float *z = del_tensor_data(del_model_output(m));
            memcpy(del_tensor_data(zl), z, sizeof(float) * NL * K);
            memcpy(del_tensor_data(zu), z + NL * K, sizeof(float) * NU * K);
            ck_assert_del_ok(del_loss_cross_entropy(zl, y, &ce, gl));
        }
        if (alpha != 0.0f) {
            targets(del_tensor_data(zu), NU, pu, o, del_tensor_data(hard), del_tensor_data(soft),
                    del_tensor_data(mask), c);
            if (o->soft)
                ck_assert_del_ok(del_loss_soft_cross_entropy_acc(zu, soft, mask, alpha, &lu, gu));
            else
                ck_assert_del_ok(del_loss_cross_entropy_acc(zu, hard, NULL, 0.0f, alpha, &lu, gu));
        }
        if (alpha != 0.0f && o->frozen) {
            ck_assert_del_ok(del_model_backward(m, gu));
            memcpy(del_model_buffers(m), saved, (size_t)nb * sizeof(float));
        } else if (alpha != 0.0f) {
            float *g = del_tensor_data(gj);
            memcpy(g, del_tensor_data(gl), sizeof(float) * NL * K);
            memcpy(g + NL * K, del_tensor_data(gu), sizeof(float) * NU * K);
            ck_assert_del_ok(del_model_backward(m, gj));
        }
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    del_optimizer_free(opt);
    free(saved);
    del_tensor *const all[] = {xl, xu, xj, y, hard, soft, mask, zl, zu, gl, gu, gj};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        del_tensor_free(all[i]);
}

/* The trainer set up as by_hand's steps. */
static del_trainer *trainer_for(del_model *m, const del_dataset *l, const del_dataset *u, const options *o)
{
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_pseudo_label(&tr, m, l, u));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, NL));
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, NU));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.3f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_pseudo_label_ramp(tr, 1, 3, 2.0f));
    ck_assert_del_ok(del_trainer_set_pseudo_label_threshold(tr, o->threshold));
    ck_assert_del_ok(del_trainer_set_pseudo_label_soft(tr, o->soft));
    ck_assert_del_ok(del_trainer_set_pseudo_label_bn(tr, o->frozen ? DEL_PSEUDO_BN_FROZEN : DEL_PSEUDO_BN_JOINT));
    if (o->truth)
        ck_assert_del_ok(del_trainer_set_unlabeled_truth(tr, o->truth, NU));
    return tr;
}

static void check_against_hand(const options *o)
{
    enum { STEPS = 5 };
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_model *a = model(), *b = model();
    del_trainer *tr = trainer_for(a, l, u, o);
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));
    counts c = {0};
    by_hand(b, l, u, o, STEPS, &c);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    /* The statistics count what the hand-written steps counted. */
    double mask_rate = 0.0, accuracy = 0.0;
    int64_t judged = -1;
    ck_assert_del_ok(del_trainer_pseudo_label_stats(tr, &mask_rate, &accuracy, &judged));
    ck_assert_int_eq(c.seen, 3 * NU); /* t = 2, 3, 4 (alpha is 0 at t = 0 and 1) */
    ck_assert_double_eq(mask_rate, (double)c.kept / (double)c.seen);
    ck_assert_int_eq(judged, c.judged);
    if (c.judged > 0)
        ck_assert_double_eq(accuracy, (double)c.correct / (double)c.judged);
    else
        ck_assert(isnan(accuracy));
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(l);
    del_dataset_free(u);
}

START_TEST(test_hard_labels_in_a_joint_batch_equal_the_steps_by_hand)
{
    const options o = {.threshold = 0.0f};
    check_against_hand(&o);
}
END_TEST

START_TEST(test_a_threshold_keeps_only_confident_pseudo_labels)
{
    static int32_t truth[NU];
    for (int i = 0; i < NU; i++)
        truth[i] = (i * 7) % K;
    const options o = {.threshold = 0.4f, .truth = truth};
    check_against_hand(&o);
}
END_TEST

START_TEST(test_soft_targets_with_frozen_statistics_equal_the_steps_by_hand)
{
    const options o = {.threshold = 0.4f, .soft = 1, .frozen = 1};
    check_against_hand(&o);
}
END_TEST

START_TEST(test_hard_targets_with_frozen_statistics_equal_the_steps_by_hand)
{
    const options o = {.threshold = 0.0f, .frozen = 1};
    check_against_hand(&o);
}
END_TEST

/* Before T1 the trainer is the supervised one, step for step. */
START_TEST(test_before_t1_it_trains_as_the_supervised_trainer)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_model *a = model(), *b = model();
    del_trainer *pl = NULL, *sup = NULL;
    ck_assert_del_ok(del_trainer_new_pseudo_label(&pl, a, l, u));
    ck_assert_del_ok(del_trainer_set_batch_size(pl, 4));
    ck_assert_del_ok(del_trainer_set_pseudo_label_ramp(pl, 3, 6, 3.0f));
    ck_assert_del_ok(del_trainer_new_supervised(&sup, b, l));
    ck_assert_del_ok(del_trainer_set_batch_size(sup, 4));
    ck_assert_del_ok(del_trainer_fit(pl, 3));
    ck_assert_del_ok(del_trainer_fit(sup, 3));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    double mask_rate = 0.0;
    ck_assert_del_ok(del_trainer_pseudo_label_stats(pl, &mask_rate, NULL, NULL));
    ck_assert(isnan(mask_rate));
    /* alpha(3) = 0 still; the fifth step (t = 4, alpha 1) uses the
     * unlabeled images. */
    ck_assert_del_ok(del_trainer_fit(pl, 1));
    ck_assert_del_ok(del_trainer_fit(sup, 1));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_del_ok(del_trainer_fit(pl, 1));
    ck_assert_del_ok(del_trainer_fit(sup, 1));
    ck_assert_msg(memcmp(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * 4) != 0,
                  "the unlabeled term had no effect");
    del_trainer_free(pl);
    del_trainer_free(sup);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(l);
    del_dataset_free(u);
}
END_TEST

/* 8 steps with crop + flip on both streams, default ramp over the run's
 * total steps, a threshold; the hidden labels given or shuffled; in one
 * go or 4 + checkpoint + 4. */
static del_model *run(int resume, const int32_t *truth)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_random_crop(a, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_flip_h(a, 0.5f));
    del_model *m = model();
    del_trainer *tr = NULL;
    for (int part = 0; part < (resume ? 2 : 1); part++) {
        ck_assert_del_ok(del_trainer_new_pseudo_label(&tr, m, l, u));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 6));
        ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, 10));
        ck_assert_del_ok(del_trainer_set_augment(tr, a));
        ck_assert_del_ok(del_trainer_set_augment_unlabeled(tr, a));
        ck_assert_del_ok(del_trainer_set_total_steps(tr, 8));
        if (truth)
            ck_assert_del_ok(del_trainer_set_unlabeled_truth(tr, truth, NU));
        if (part == 0) { /* the second trainer gets them from the checkpoint */
            ck_assert_del_ok(del_trainer_set_pseudo_label_threshold(tr, 0.35f));
            ck_assert_del_ok(del_trainer_set_pseudo_label_soft(tr, 1));
        }
        if (!resume) {
            ck_assert_del_ok(del_trainer_fit(tr, 8));
        } else if (part == 0) {
            ck_assert_del_ok(del_trainer_fit(tr, 4));
            ck_assert_del_ok(del_trainer_save_checkpoint(tr, "pseudo.delc"));
            del_trainer_free(tr);
            del_model_free(m);
            m = model();
        } else {
            ck_assert_del_ok(del_trainer_load_checkpoint(tr, "pseudo.delc"));
            ck_assert_del_ok(del_trainer_fit(tr, 4));
        }
    }
    del_trainer_free(tr);
    del_augment_free(a);
    del_dataset_free(l);
    del_dataset_free(u);
    return m;
}

START_TEST(test_hidden_labels_never_train_and_resume_is_bit_exact)
{
    static int32_t truth[NU], shuffled[NU];
    for (int i = 0; i < NU; i++) {
        truth[i] = i % K;
        shuffled[i] = (i * 7 + 2) % K;
    }
    del_model *a = run(0, NULL), *b = run(0, truth), *c = run(0, shuffled), *d = run(1, truth);
    const size_t bytes = (size_t)del_model_num_params(a) * sizeof(float);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), bytes);
    ck_assert_mem_eq(del_model_params(a), del_model_params(c), bytes);
    ck_assert_mem_eq(del_model_params(a), del_model_params(d), bytes);
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(d),
                     (size_t)del_model_num_buffers(a) * sizeof(float));
    /* Another technique's trainer refuses the checkpoint. */
    del_dataset *l = images(NL, 1, 1);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, a, l));
    ck_assert_del_err(del_trainer_load_checkpoint(tr, "pseudo.delc"), DEL_EINVAL, "pseudo_label trainer");
    del_trainer_free(tr);
    del_dataset_free(l);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
    del_model_free(d);
}
END_TEST

START_TEST(test_bad_pseudo_label_arguments_change_nothing)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0), *big = NULL;
    static uint8_t px[4 * 25];
    static int32_t none[4] = {-1, -1, -1, -1};
    ck_assert_del_ok(del_dataset_from_arrays(&big, px, none, 4, 5, 5, 1));
    del_model *a = model(), *b = model();
    del_trainer *tr = NULL, *plain = NULL, *sup = NULL;
    ck_assert_del_err(del_trainer_new_pseudo_label(&tr, a, l, big), DEL_EINVAL, "'unlabeled'");
    ck_assert_del_err(del_trainer_new_pseudo_label(&tr, a, l, NULL), DEL_EINVAL, "'unlabeled'");
    ck_assert_del_err(del_trainer_new_pseudo_label(&tr, a, NULL, u), DEL_EINVAL, "'labeled'");
    ck_assert_ptr_null(tr);
    ck_assert_del_ok(del_trainer_new_pseudo_label(&tr, a, l, u));
    ck_assert_del_err(del_trainer_set_pseudo_label_threshold(tr, -0.1f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_pseudo_label_threshold(tr, 1.5f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_pseudo_label_threshold(tr, NAN), DEL_EINVAL, "'threshold'");
    ck_assert_del_err(del_trainer_set_pseudo_label_ramp(tr, 5, 5, 3.0f), DEL_EINVAL, "'t2' must be > 't1'");
    ck_assert_del_err(del_trainer_set_pseudo_label_ramp(tr, 6, 2, 3.0f), DEL_EINVAL, "'t2'");
    ck_assert_del_err(del_trainer_set_pseudo_label_ramp(tr, -1, 2, 3.0f), DEL_EINVAL, "'t1'");
    ck_assert_del_err(del_trainer_set_pseudo_label_ramp(tr, 0, 2, -1.0f), DEL_EINVAL, "'alpha_f'");
    ck_assert_del_err(del_trainer_set_pseudo_label_ramp(tr, 0, 2, INFINITY), DEL_EINVAL, "'alpha_f'");
    ck_assert_del_err(del_trainer_set_pseudo_label_soft(tr, 2), DEL_EINVAL, "'soft'");
    ck_assert_del_err(del_trainer_set_pseudo_label_bn(tr, (del_pseudo_bn)5), DEL_EINVAL, "'mode'");
    static int32_t truth[NU], bad[NU];
    bad[3] = K;
    ck_assert_del_err(del_trainer_set_unlabeled_truth(tr, truth, NU - 1), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_trainer_set_unlabeled_truth(tr, bad, NU), DEL_EINVAL, "'labels[3]'");
    ck_assert_del_err(del_trainer_set_unlabeled_batch_size(tr, NU + 1), DEL_EINVAL, "'batch_size'");
    ck_assert_del_ok(del_trainer_fit(tr, 6));
    ck_assert_del_ok(del_trainer_new_pseudo_label(&plain, b, l, u));
    ck_assert_del_ok(del_trainer_fit(plain, 6));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    /* Its settings belong to it alone. */
    ck_assert_del_ok(del_trainer_new_supervised(&sup, a, l));
    ck_assert_del_err(del_trainer_set_pseudo_label_threshold(sup, 0.5f), DEL_EINVAL,
                      "does not apply to a supervised trainer");
    ck_assert_del_err(del_trainer_pseudo_label_stats(sup, NULL, NULL, NULL), DEL_EINVAL, "not a pseudo_label one");
    ck_assert_del_err(del_trainer_pseudo_label_stats(NULL, NULL, NULL, NULL), DEL_EINVAL, "'trainer'");
    del_trainer_free(sup);
    del_trainer_free(plain);
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(l);
    del_dataset_free(u);
    del_dataset_free(big);
}
END_TEST

static Suite *pseudo_suite(void)
{
    Suite *s = suite_create("pseudo_label");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hard_labels_in_a_joint_batch_equal_the_steps_by_hand);
    tcase_add_test(tc, test_a_threshold_keeps_only_confident_pseudo_labels);
    tcase_add_test(tc, test_soft_targets_with_frozen_statistics_equal_the_steps_by_hand);
    tcase_add_test(tc, test_hard_targets_with_frozen_statistics_equal_the_steps_by_hand);
    tcase_add_test(tc, test_before_t1_it_trains_as_the_supervised_trainer);
    tcase_add_test(tc, test_hidden_labels_never_train_and_resume_is_bit_exact);
    tcase_add_test(tc, test_bad_pseudo_label_arguments_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_pseudo_XXXXXX";
    return test_run_suite_inside_tmpdir(pseudo_suite, tmpdir);
}
