/* Consistency training (SPEC §1.7, FixMatch / FlexMatch) and the moving
 * average of weights (del_trainer_set_ema): the trainer's steps equal the
 * loss written by hand from the public building blocks (two views of each
 * unlabeled image, the pseudo-label of the weak one kept above tau or
 * FlexMatch's per-class thresholds, CE on the strong one, the EMA after
 * each step), bit-exact resume, bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

enum { NL = 12, NU = 10, SIDE = 4, K = 3 };

static const char MODEL[] = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3";

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

/* FixMatch's views at 4x4: weak = crop (pad 1) + flip; strong = crop +
 * RandAugment(2, 10) + cutout 2. */
static void pipelines(del_augment **weak, del_augment **strong)
{
    ck_assert_del_ok(del_augment_new(weak));
    ck_assert_del_ok(del_augment_set_seed(*weak, 5));
    ck_assert_del_ok(del_augment_add_random_crop(*weak, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_flip_h(*weak, 0.5f));
    ck_assert_del_ok(del_augment_new(strong));
    ck_assert_del_ok(del_augment_set_seed(*strong, 6));
    ck_assert_del_ok(del_augment_add_random_crop(*strong, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_randaugment(*strong, 2, 10));
    ck_assert_del_ok(del_augment_add_cutout(*strong, 1.0f, 2, 0));
}

/* FlexMatch's thresholds as its paper writes them (warm-up variant). */
static void flex(const int32_t *selected, float tau, float *thr)
{
    int64_t count[K] = {0}, unused = 0, most = 0;
    for (int i = 0; i < NU; i++) {
        if (selected[i] < 0)
            unused++;
        else
            count[selected[i]]++;
    }
    for (int c = 0; c < K; c++)
        if (count[c] > most)
            most = count[c];
    const double norm = (double)(most > unused ? most : unused);
    for (int c = 0; c < K; c++) {
        const double beta = norm > 0 ? (double)count[c] / norm : 0.0;
        thr[c] = (float)((double)tau * beta / (2.0 - beta));
    }
}

/* steps of plain SGD (lr 0.3) by hand on the whole labeled and unlabeled
 * sets each step, tau, lambda 1.5, EMA 0.9 into ema. */
static void by_hand(del_model *m, del_model *ema, const del_dataset *l, const del_dataset *u, float tau, int use_flex,
                    int steps, int64_t *kept)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f}, lambda = 1.5f;
    const int64_t xls[4] = {NL, 1, SIDE, SIDE}, xus[4] = {NU, 1, SIDE, SIDE}, xjs[4] = {NL + 2 * NU, 1, SIDE, SIDE};
    const int64_t ys[1] = {NL}, hs[1] = {NU}, zls[2] = {NL, K}, zus[2] = {NU, K}, zjs[2] = {NL + 2 * NU, K};
    del_tensor *xl = NULL, *xw = NULL, *xs = NULL, *xj = NULL, *y = NULL, *hard = NULL, *zl = NULL, *zs = NULL,
               *gl = NULL, *gs = NULL, *gj = NULL;
    ck_assert_del_ok(del_tensor_new(&xl, DEL_DTYPE_F32, 4, xls));
    ck_assert_del_ok(del_tensor_new(&xw, DEL_DTYPE_F32, 4, xus));
    ck_assert_del_ok(del_tensor_new(&xs, DEL_DTYPE_F32, 4, xus));
    ck_assert_del_ok(del_tensor_new(&xj, DEL_DTYPE_F32, 4, xjs));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&hard, DEL_DTYPE_I32, 1, hs));
    ck_assert_del_ok(del_tensor_new(&zl, DEL_DTYPE_F32, 2, zls));
    ck_assert_del_ok(del_tensor_new(&zs, DEL_DTYPE_F32, 2, zus));
    ck_assert_del_ok(del_tensor_new(&gl, DEL_DTYPE_F32, 2, zls));
    ck_assert_del_ok(del_tensor_new(&gs, DEL_DTYPE_F32, 2, zus));
    ck_assert_del_ok(del_tensor_new(&gj, DEL_DTYPE_F32, 2, zjs));
    del_augment *weak = NULL, *strong = NULL;
    pipelines(&weak, &strong);
    int32_t selected[NU];
    for (int i = 0; i < NU; i++)
        selected[i] = -1;
    const size_t image = SIDE * SIDE;
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.3f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_CONSTANT, steps, 0.0f));
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int t = 0; t < steps; t++) {
        int64_t pl[NL], pu[NU], epochs[NU];
        float ce = 0.0f, lu = 0.0f;
        ck_assert_del_ok(del_permutation(pl, NL, 0, (uint64_t)t, UINT64_C(0x6261746368)));
        ck_assert_del_ok(del_permutation(pu, NU, 0, (uint64_t)t, UINT64_C(0x756e6c6162)));
        for (int i = 0; i < NU; i++)
            epochs[i] = t;
        ck_assert_del_ok(del_dataset_batch(l, pl, NL, mean, stdv, xl, y));
        ck_assert_del_ok(del_augment_batch_epochs(weak, u, pu, epochs, NU, (uint64_t)t, (uint64_t)t, mean, stdv, xw,
                                                  NULL, NULL, K));
        ck_assert_del_ok(del_augment_batch_epochs(strong, u, pu, epochs, NU, (uint64_t)t, (uint64_t)t, mean, stdv,
                                                  xs, NULL, NULL, K));
        float *x = del_tensor_data(xj);
        memcpy(x, del_tensor_data(xl), NL * image * sizeof(float));
        memcpy(x + NL * image, del_tensor_data(xw), NU * image * sizeof(float));
        memcpy(x + (NL + NU) * image, del_tensor_data(xs), NU * image * sizeof(float));
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_forward(m, xj));
        const float *z = del_tensor_data(del_model_output(m));
        memcpy(del_tensor_data(zl), z, sizeof(float) * NL * K);
        memcpy(del_tensor_data(zs), z + (NL + NU) * K, sizeof(float) * NU * K);
        float thr[K] = {tau, tau, tau};
        if (use_flex)
            flex(selected, tau, thr);
        int32_t *h = del_tensor_data(hard);
        for (int r = 0; r < NU; r++) {
            const float *zw = z + (NL + r) * K;
            int best = 0;
            for (int c = 1; c < K; c++)
                if (zw[c] > zw[best])
                    best = c;
            double sum = 0.0;
            for (int c = 0; c < K; c++)
                sum += exp((double)zw[c] - (double)zw[best]);
            h[r] = 1.0 / sum >= (double)thr[best] ? best : -1;
            *kept += h[r] >= 0;
            if (use_flex && 1.0 / sum > (double)tau)
                selected[pu[r]] = best;
        }
        ck_assert_del_ok(del_loss_cross_entropy(zl, y, &ce, gl));
        memset(del_tensor_data(gs), 0, sizeof(float) * NU * K);
        ck_assert_del_ok(del_loss_cross_entropy_acc(zs, hard, NULL, 0.0f, lambda, &lu, gs));
        float *g = del_tensor_data(gj);
        memcpy(g, del_tensor_data(gl), sizeof(float) * NL * K);
        memset(g + NL * K, 0, sizeof(float) * NU * K);
        memcpy(g + (NL + NU) * K, del_tensor_data(gs), sizeof(float) * NU * K);
        ck_assert_del_ok(del_model_backward(m, gj));
        ck_assert_del_ok(del_optimizer_step(opt));
        ck_assert_del_ok(del_model_ema_update(ema, m, 0.9f));
    }
    del_optimizer_free(opt);
    del_augment_free(weak);
    del_augment_free(strong);
    del_tensor *const all[] = {xl, xw, xs, xj, y, hard, zl, zs, gl, gs, gj};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        del_tensor_free(all[i]);
}

/* scale multiplies the initial weights: confident predictions from the
 * first step, so that FlexMatch's thresholds bind. */
static void check_against_hand(float tau, int use_flex, int STEPS, float scale)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_model *a = model(), *b = model(), *ema = NULL;
    for (int64_t i = 0; i < del_model_num_params(a); i++) {
        del_model_params(a)[i] *= scale;
        del_model_params(b)[i] *= scale;
    }
    ck_assert_del_ok(del_model_clone(&ema, b));
    del_augment *weak = NULL, *strong = NULL;
    pipelines(&weak, &strong);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_consistency(&tr, a, l, u, weak, strong));
    ck_assert_ptr_nonnull(del_trainer_ema_model(tr));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, NL));
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, NU));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.3f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_consistency_threshold(tr, tau));
    ck_assert_del_ok(del_trainer_set_consistency_weight(tr, 1.5f));
    ck_assert_del_ok(del_trainer_set_flexmatch(tr, use_flex));
    ck_assert_del_ok(del_trainer_set_ema(tr, 0.9f));
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));
    int64_t kept = 0;
    by_hand(b, ema, l, u, tau, use_flex, STEPS, &kept);
    const size_t bytes = (size_t)del_model_num_params(a) * sizeof(float);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), bytes);
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    ck_assert_mem_eq(del_model_params(del_trainer_ema_model(tr)), del_model_params(ema), bytes);
    double rate = 0.0;
    ck_assert_del_ok(del_trainer_consistency_stats(tr, &rate));
    ck_assert_double_eq(rate, (double)kept / (double)(STEPS * NU));
    ck_assert_msg(kept > 0 && kept < STEPS * NU, "tau %g kept %lld of %d: choose a tau that masks some", (double)tau,
                  (long long)kept, STEPS * NU);
    /* del_trainer_evaluate scores the moving average. */
    double acc_trainer = 0.0, acc_ema = 0.0;
    del_trainer *probe = NULL;
    ck_assert_del_ok(del_trainer_evaluate(tr, l, &acc_trainer));
    ck_assert_del_ok(del_trainer_new_supervised(&probe, ema, l));
    ck_assert_del_ok(del_trainer_evaluate(probe, l, &acc_ema));
    ck_assert_double_eq(acc_trainer, acc_ema);
    del_trainer_free(probe);
    del_trainer_free(tr);
    del_augment_free(weak);
    del_augment_free(strong);
    del_model_free(a);
    del_model_free(b);
    del_model_free(ema);
    del_dataset_free(l);
    del_dataset_free(u);
}

START_TEST(test_fixmatch_steps_equal_the_loss_written_by_hand)
{
    check_against_hand(0.5f, 0, 4, 1.0f);
}
END_TEST

START_TEST(test_flexmatch_thresholds_equal_the_papers)
{
    check_against_hand(0.8f, 1, 12, 6.0f);
}
END_TEST

/* 6 steps, FlexMatch, in one go or 3 + checkpoint + 3. */
static del_model *run(int resume)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_augment *weak = NULL, *strong = NULL;
    pipelines(&weak, &strong);
    del_model *m = model();
    del_trainer *tr = NULL;
    for (int part = 0; part < (resume ? 2 : 1); part++) {
        ck_assert_del_ok(del_trainer_new_consistency(&tr, m, l, u, weak, strong));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 4));
        ck_assert_del_ok(del_trainer_set_unlabeled_ratio(tr, 2));
        ck_assert_del_ok(del_trainer_set_total_steps(tr, 6));
        if (part == 0) {
            ck_assert_del_ok(del_trainer_set_consistency_threshold(tr, 0.5f));
            ck_assert_del_ok(del_trainer_set_flexmatch(tr, 1));
        }
        if (!resume) {
            ck_assert_del_ok(del_trainer_fit(tr, 6));
        } else if (part == 0) {
            ck_assert_del_ok(del_trainer_fit(tr, 3));
            ck_assert_del_ok(del_trainer_save_checkpoint(tr, "consistency.delc"));
            del_trainer_free(tr);
            del_model_free(m);
            m = model();
        } else {
            ck_assert_del_ok(del_trainer_load_checkpoint(tr, "consistency.delc"));
            ck_assert_del_ok(del_trainer_fit(tr, 3));
        }
    }
    /* The moving average goes with the model. */
    del_model *ema = NULL;
    ck_assert_del_ok(del_model_clone(&ema, del_trainer_ema_model(tr)));
    del_trainer_free(tr);
    del_model_free(m);
    del_augment_free(weak);
    del_augment_free(strong);
    del_dataset_free(l);
    del_dataset_free(u);
    return ema;
}

START_TEST(test_consistency_resumes_bit_exactly)
{
    del_model *a = run(0), *b = run(1);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    /* A trainer without a moving average refuses the checkpoint. */
    del_dataset *l = images(NL, 1, 1);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, a, l));
    ck_assert_del_err(del_trainer_load_checkpoint(tr, "consistency.delc"), DEL_EINVAL, "consistency trainer");
    del_trainer_free(tr);
    del_dataset_free(l);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

/* The moving average on any trainer: each step's update as
 * del_model_ema_update makes it; checkpoints carry it. */
START_TEST(test_ema_follows_each_step_of_a_supervised_trainer)
{
    del_dataset *l = images(NL, 1, 1);
    del_model *a = model(), *ema = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, a, l));
    ck_assert_ptr_null(del_trainer_ema_model(tr));
    ck_assert_del_ok(del_trainer_set_ema(tr, 0.75f));
    ck_assert_del_ok(del_model_clone(&ema, a));
    for (int s = 0; s < 3; s++) {
        ck_assert_del_ok(del_trainer_fit(tr, 1));
        ck_assert_del_ok(del_model_ema_update(ema, a, 0.75f));
    }
    const size_t bytes = (size_t)del_model_num_params(a) * sizeof(float);
    ck_assert_mem_eq(del_model_params(del_trainer_ema_model(tr)), del_model_params(ema), bytes);
    ck_assert_msg(memcmp(del_model_params(ema), del_model_params(a), bytes) != 0, "the average is the model");
    ck_assert_del_ok(del_trainer_save_checkpoint(tr, "ema.delc"));
    ck_assert_del_ok(del_trainer_set_ema(tr, 0.0f));
    ck_assert_ptr_null(del_trainer_ema_model(tr));
    ck_assert_del_err(del_trainer_load_checkpoint(tr, "ema.delc"), DEL_EINVAL, "moving average");
    ck_assert_del_err(del_trainer_set_ema(tr, 1.0f), DEL_EINVAL, "[0, 1)");
    ck_assert_del_err(del_trainer_set_ema(tr, -0.5f), DEL_EINVAL, "'decay'");
    ck_assert_del_err(del_trainer_set_ema(tr, NAN), DEL_EINVAL, "'decay'");
    ck_assert_del_err(del_trainer_set_ema(NULL, 0.5f), DEL_EINVAL, "'trainer'");
    ck_assert_del_ok(del_trainer_set_ema(tr, 0.5f));
    ck_assert_del_ok(del_trainer_load_checkpoint(tr, "ema.delc"));
    ck_assert_mem_eq(del_model_params(del_trainer_ema_model(tr)), del_model_params(ema), bytes);
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(ema);
    del_dataset_free(l);
}
END_TEST

START_TEST(test_bad_consistency_arguments_change_nothing)
{
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0), *big = NULL;
    static uint8_t px[4 * 25];
    static int32_t none[4] = {-1, -1, -1, -1};
    ck_assert_del_ok(del_dataset_from_arrays(&big, px, none, 4, 5, 5, 1));
    del_augment *weak = NULL, *strong = NULL, *shrink = NULL;
    pipelines(&weak, &strong);
    ck_assert_del_ok(del_augment_new(&shrink));
    ck_assert_del_ok(del_augment_add_random_crop(shrink, 2, 2, 0, 0));
    del_model *a = model(), *b = model();
    del_trainer *tr = NULL, *plain = NULL, *sup = NULL;
    ck_assert_del_err(del_trainer_new_consistency(&tr, a, l, big, weak, strong), DEL_EINVAL, "'unlabeled'");
    ck_assert_del_err(del_trainer_new_consistency(&tr, a, l, u, NULL, strong), DEL_EINVAL, "'weak'");
    ck_assert_del_err(del_trainer_new_consistency(&tr, a, l, u, weak, NULL), DEL_EINVAL, "'strong'");
    ck_assert_del_err(del_trainer_new_consistency(&tr, a, l, u, weak, shrink), DEL_EINVAL, "'strong'");
    ck_assert_ptr_null(tr);
    ck_assert_del_ok(del_trainer_new_consistency(&tr, a, l, u, weak, strong));
    ck_assert_del_err(del_trainer_set_consistency_threshold(tr, 1.01f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_consistency_threshold(tr, -0.5f), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_trainer_set_consistency_weight(tr, -1.0f), DEL_EINVAL, "'weight'");
    ck_assert_del_err(del_trainer_set_unlabeled_ratio(tr, 0), DEL_EINVAL, "'mu' must be >= 1");
    ck_assert_del_err(del_trainer_set_unlabeled_ratio(tr, 100), DEL_EINVAL, "unlabeled images");
    ck_assert_del_err(del_trainer_set_flexmatch(tr, 3), DEL_EINVAL, "'on'");
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 4));
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(tr, 8));
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    ck_assert_del_ok(del_trainer_new_consistency(&plain, b, l, u, weak, strong));
    ck_assert_del_ok(del_trainer_set_batch_size(plain, 4));
    ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(plain, 8));
    ck_assert_del_ok(del_trainer_fit(plain, 3));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_del_ok(del_trainer_new_supervised(&sup, a, l));
    ck_assert_del_err(del_trainer_set_consistency_threshold(sup, 0.5f), DEL_EINVAL,
                      "does not apply to a supervised trainer");
    ck_assert_del_err(del_trainer_consistency_stats(sup, NULL), DEL_EINVAL, "not a consistency one");
    del_trainer_free(sup);
    del_trainer_free(plain);
    del_trainer_free(tr);
    del_augment_free(weak);
    del_augment_free(strong);
    del_augment_free(shrink);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(l);
    del_dataset_free(u);
    del_dataset_free(big);
}
END_TEST

static Suite *consistency_suite(void)
{
    Suite *s = suite_create("consistency");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixmatch_steps_equal_the_loss_written_by_hand);
    tcase_add_test(tc, test_flexmatch_thresholds_equal_the_papers);
    tcase_add_test(tc, test_consistency_resumes_bit_exactly);
    tcase_add_test(tc, test_ema_follows_each_step_of_a_supervised_trainer);
    tcase_add_test(tc, test_bad_consistency_arguments_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_consistency_XXXXXX";
    return test_run_suite_inside_tmpdir(consistency_suite, tmpdir);
}
