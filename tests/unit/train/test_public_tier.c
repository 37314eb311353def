/* The public calls the trainers are built on (they compile against the
 * public headers only): del_set_error, del_permutation and
 * del_augment_batch_epochs with per-image epochs and caller-given targets. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "testutil.h"

START_TEST(test_set_error_sets_the_message_and_returns_the_status)
{
    ck_assert_int_eq(del_set_error(DEL_EINVAL, "my_trainer: 'k' must be >= 1"), DEL_EINVAL);
    ck_assert_str_eq(del_last_error(), "my_trainer: 'k' must be >= 1");
    ck_assert_int_eq(del_set_error(DEL_EFORMAT, NULL), DEL_EFORMAT);
    ck_assert_str_eq(del_last_error(), del_status_str(DEL_EFORMAT));
}
END_TEST

static int is_permutation(const int64_t *p, int64_t n)
{
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok)
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

START_TEST(test_permutation_depends_only_on_seed_epoch_and_stream)
{
    enum { N = 1000 };
    static int64_t a[N], b[N], c[N], d[N];
    ck_assert_del_ok(del_permutation(a, N, 42, 3, UINT64_C(1) << 40));
    ck_assert(is_permutation(a, N));
    ck_assert_del_ok(del_permutation(b, N, 42, 3, UINT64_C(1) << 40));
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_del_ok(del_permutation(c, N, 42, 4, UINT64_C(1) << 40));
    ck_assert_del_ok(del_permutation(d, N, 42, 3, (UINT64_C(1) << 40) + 1));
    int same_c = 0, same_d = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        same_c += a[i] == c[i];
        same_d += a[i] == d[i];
        fixed += a[i] == i;
    }
    /* Independent uniform permutations agree in ~1 place (Poisson(1)). */
    ck_assert_int_lt(same_c, 10);
    ck_assert_int_lt(same_d, 10);
    ck_assert_int_lt(fixed, 10);
    ck_assert_del_ok(del_permutation(NULL, 0, 1, 0, 0));
    int64_t one = -1;
    ck_assert_del_ok(del_permutation(&one, 1, 1, 0, 0));
    ck_assert_int_eq(one, 0);
    ck_assert_del_err(del_permutation(NULL, 3, 1, 0, 0), DEL_EINVAL, "'perm'");
    ck_assert_del_err(del_permutation(a, -1, 1, 0, 0), DEL_EINVAL, "'n'");
}
END_TEST

START_TEST(test_permutation_is_the_trainers_batch_order)
{
    /* One supervised step on 5 of 10 images equals the same step written
     * by hand on the first 5 rows of del_permutation(seed, epoch 0, the
     * labeled stream's key 0x6261746368): the order is the documented one. */
    enum { N = 10, B = 5 };
    static uint8_t px[N * 4];
    static int32_t labels[N];
    for (int i = 0; i < N * 4; i++)
        px[i] = (uint8_t)((i * 53) % 256);
    for (int i = 0; i < N; i++)
        labels[i] = i % 3;
    del_dataset *ds = NULL;
    del_model *a = NULL, *b = NULL;
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 2, 2, 1));
    ck_assert_del_ok(del_model_from_spec(&a, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_model_from_spec(&b, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, a, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, B));
    ck_assert_del_ok(del_trainer_set_seed(tr, 77));
    ck_assert_del_ok(del_trainer_fit(tr, 1));

    int64_t perm[N];
    ck_assert_del_ok(del_permutation(perm, N, 77, 0, UINT64_C(0x6261746368)));
    const int64_t xs[4] = {B, 1, 2, 2}, ys[1] = {B}, gs[2] = {B, 3};
    del_tensor *x = NULL, *y = NULL, *g = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gs));
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f}; /* the trainer's defaults */
    ck_assert_del_ok(del_dataset_batch(ds, perm, B, mean, stdv, x, y));
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, b, 0.05f, 0.9f, 5e-4f, 1));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_COSINE, 1, 0.0f));
    ck_assert_del_ok(del_model_set_training(b, 1));
    float loss = 0.0f;
    ck_assert_del_ok(del_model_forward(b, x));
    ck_assert_del_ok(del_loss_cross_entropy(del_model_output(b), y, &loss, g));
    ck_assert_del_ok(del_model_zero_grad(b));
    ck_assert_del_ok(del_model_backward(b, g));
    ck_assert_del_ok(del_optimizer_step(opt));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), 15 * sizeof(float));
    del_optimizer_free(opt);
    del_tensor_free(x);
    del_tensor_free(y);
    del_tensor_free(g);
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(ds);
}
END_TEST

/* 8 images of 6x6, labels 0..3 (images 6 and 7 unlabeled). */
static del_dataset *small_set(void)
{
    static uint8_t px[8 * 36];
    static int32_t labels[8] = {0, 1, 2, 3, 0, 1, -1, -1};
    for (int i = 0; i < 8 * 36; i++)
        px[i] = (uint8_t)((i * 29) % 251);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 8, 6, 6, 1));
    return ds;
}

static del_tensor *f32(int ndim, const int64_t *shape)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, ndim, shape));
    return t;
}

START_TEST(test_batch_epochs_without_epochs_or_targets_is_del_augment_batch)
{
    del_dataset *ds = small_set();
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, 5));
    ck_assert_del_ok(del_augment_add_random_crop(aug, 6, 6, 2, 0));
    ck_assert_del_ok(del_augment_add_mixup(aug, 1.0f, 1.0f));
    const int64_t idx[4] = {0, 3, 5, 2};
    const int64_t xs[4] = {4, 1, 6, 6}, ss[2] = {4, 4};
    del_tensor *xa = f32(4, xs), *xb = f32(4, xs), *sa = f32(2, ss), *sb = f32(2, ss);
    const float mean[1] = {0.3f}, stdv[1] = {0.5f};
    ck_assert_del_ok(del_augment_batch(aug, ds, idx, 4, 2, 9, mean, stdv, xa, sa, 4));
    ck_assert_del_ok(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 2, 9, mean, stdv, xb, NULL, sb, 4));
    ck_assert_mem_eq(del_tensor_data(xa), del_tensor_data(xb), 4 * 36 * sizeof(float));
    ck_assert_mem_eq(del_tensor_data(sa), del_tensor_data(sb), 16 * sizeof(float));
    /* Every image's own epoch equal to `epoch` is the same batch too. */
    const int64_t epochs[4] = {2, 2, 2, 2};
    ck_assert_del_ok(del_augment_batch_epochs(aug, ds, idx, epochs, 4, 2, 9, mean, stdv, xb, NULL, sb, 4));
    ck_assert_mem_eq(del_tensor_data(xa), del_tensor_data(xb), 4 * 36 * sizeof(float));
    del_tensor_free(xa);
    del_tensor_free(xb);
    del_tensor_free(sa);
    del_tensor_free(sb);
    del_augment_free(aug);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_batch_epochs_mixes_caller_targets_and_reads_no_label)
{
    /* MixUp with p = 1 mixes rows: out_i = lam t_i + (1 - lam) t_partner.
     * With the one-hot targets of the labels it gives del_augment_batch's
     * soft labels; with targets T = 3 x one-hot(label) (rows summing to 3)
     * it gives 3 x those (mixing is linear and the same draws are used).
     * Unlabeled images are accepted once targets are given. */
    del_dataset *ds = small_set();
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, 8));
    ck_assert_del_ok(del_augment_add_mixup(aug, 1.0f, 1.0f));
    const int64_t idx[4] = {1, 0, 4, 3}, xs[4] = {4, 1, 6, 6}, ss[2] = {4, 4};
    const int32_t *labels = del_dataset_labels(ds);
    del_tensor *x = f32(4, xs), *ref = f32(2, ss), *t = f32(2, ss), *out = f32(2, ss);
    const float mean[1] = {0.0f}, stdv[1] = {1.0f};
    ck_assert_del_ok(del_augment_batch(aug, ds, idx, 4, 0, 3, mean, stdv, x, ref, 4));
    float *tv = del_tensor_data(t);
    memset(tv, 0, 16 * sizeof(float));
    for (int i = 0; i < 4; i++)
        tv[i * 4 + labels[idx[i]]] = 3.0f;
    ck_assert_del_ok(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 0, 3, mean, stdv, x, t, out, 4));
    const float *o = del_tensor_data(out), *r = del_tensor_data(ref);
    for (int k = 0; k < 16; k++)
        ck_assert_float_eq_tol(o[k], 3.0f * r[k], 1e-6f);
    /* In place: targets == soft_labels. */
    ck_assert_del_ok(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 0, 3, mean, stdv, x, t, t, 4));
    ck_assert_mem_eq(del_tensor_data(t), o, 16 * sizeof(float));
    /* Unlabeled rows 6 and 7 with targets: fine; without: refused. */
    const int64_t unl[4] = {6, 7, 6, 7};
    ck_assert_del_ok(del_augment_batch_epochs(aug, ds, unl, NULL, 4, 0, 3, mean, stdv, x, out, out, 4));
    ck_assert_del_err(del_augment_batch_epochs(aug, ds, unl, NULL, 4, 0, 3, mean, stdv, x, NULL, out, 4), DEL_EINVAL,
                      "del_augment_batch_epochs");
    ck_assert_del_err(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 0, 3, mean, stdv, x, t, NULL, 4), DEL_EINVAL,
                      "'targets' needs 'soft_labels'");
    tv[5] = NAN;
    ck_assert_del_err(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 0, 3, mean, stdv, x, t, out, 4), DEL_EINVAL,
                      "non-finite");
    const int64_t bad[2] = {4, 3};
    del_tensor *wrong = f32(2, bad);
    ck_assert_del_err(del_augment_batch_epochs(aug, ds, idx, NULL, 4, 0, 3, mean, stdv, x, wrong, out, 4),
                      DEL_EINVAL, "'targets' must be f32 [4, 4]");
    del_tensor_free(wrong);
    del_tensor_free(x);
    del_tensor_free(ref);
    del_tensor_free(t);
    del_tensor_free(out);
    del_augment_free(aug);
    del_dataset_free(ds);
}
END_TEST

static Suite *tier_suite(void)
{
    Suite *s = suite_create("public_tier");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_set_error_sets_the_message_and_returns_the_status);
    tcase_add_test(tc, test_permutation_depends_only_on_seed_epoch_and_stream);
    tcase_add_test(tc, test_permutation_is_the_trainers_batch_order);
    tcase_add_test(tc, test_batch_epochs_without_epochs_or_targets_is_del_augment_batch);
    tcase_add_test(tc, test_batch_epochs_mixes_caller_targets_and_reads_no_label);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tier_suite());
}
