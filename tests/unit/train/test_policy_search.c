/* RandAugment policy search: each cell equals a supervised training by
 * hand on the stratified split with its pipeline, the best cell is the
 * highest scored (first among equals), progress counts over the cells,
 * bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

/* The last message mentions needle. */
#define ck_assert_str_contains(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message '%s' lacks '%s'", (msg), (needle))

enum { N = 30, SIDE = 8, K = 3, PER_CLASS = 3, STEPS = 6 };

static const char MODEL[] = "input 1 8 8; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3";

/* n images of 8x8 from an LCG, labels i % K (-1 for every 7th: skipped). */
static del_dataset *images(uint32_t seed)
{
    uint8_t px[N * SIDE * SIDE];
    int32_t labels[N];
    uint32_t r = seed;
    for (int i = 0; i < N * SIDE * SIDE; i++) {
        r = r * 1664525u + 1013904223u;
        px[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < N; i++)
        labels[i] = i % 7 == 6 ? -1 : i % K;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SIDE, SIDE, 1));
    return ds;
}

static del_model *model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, MODEL));
    return m;
}

/* The split by hand: the first PER_CLASS labeled images of each class
 * validate, the other labeled ones train. */
static void split_by_hand(const del_dataset *ds, del_dataset **train, del_dataset **val)
{
    const int32_t *y = del_dataset_labels(ds);
    int64_t ti[N], vi[N];
    int nt = 0, nv = 0, seen[K] = {0};
    for (int i = 0; i < N; i++) {
        if (y[i] < 0)
            continue;
        if (seen[y[i]]++ < PER_CLASS)
            vi[nv++] = i;
        else
            ti[nt++] = i;
    }
    ck_assert_int_eq(nv, K * PER_CLASS);
    ck_assert_del_ok(del_dataset_subset(train, ds, ti, nt));
    ck_assert_del_ok(del_dataset_subset(val, ds, vi, nv));
}

/* A cell by hand: the model from seed 5, crop pad 1 + flip 0.5, then
 * RandAugment(n, m) when n > 0, the supervised trainer's defaults. */
static double cell_by_hand(const del_dataset *ds, int n, int m)
{
    del_dataset *train = NULL, *val = NULL;
    split_by_hand(ds, &train, &val);
    del_model *mod = model();
    ck_assert_del_ok(del_model_init(mod, 5));
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, 5));
    ck_assert_del_ok(del_augment_add_random_crop(aug, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    if (n > 0)
        ck_assert_del_ok(del_augment_add_randaugment(aug, n, m));
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, mod, train));
    ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_set_seed(tr, 5));
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));
    double acc = -1.0;
    ck_assert_del_ok(del_trainer_evaluate(tr, val, &acc));
    del_trainer_free(tr);
    del_augment_free(aug);
    del_model_free(mod);
    del_dataset_free(train);
    del_dataset_free(val);
    return acc;
}

static int64_t last_step, last_total, calls;

static int record(int64_t step, int64_t total, float loss, void *user)
{
    (void)loss;
    (void)user;
    ck_assert_int_gt(step, last_step);
    last_step = step;
    last_total = total;
    calls++;
    return 0;
}

START_TEST(test_every_cell_equals_a_training_by_hand_and_the_best_is_the_highest)
{
    del_dataset *ds = images(3);
    del_model *arch = model();
    del_policy_search *s = NULL;
    ck_assert_del_ok(del_policy_search_new(&s, arch, ds));
    const int ns[3] = {0, 1, 3}, ms[2] = {4, 20};
    ck_assert_del_ok(del_policy_search_set_grid(s, ns, 3, ms, 2));
    ck_assert_del_ok(del_policy_search_set_validation(s, PER_CLASS));
    ck_assert_del_ok(del_policy_search_set_steps(s, STEPS));
    ck_assert_del_ok(del_policy_search_set_crop_flip(s, 1, 0.5f));
    ck_assert_del_ok(del_policy_search_set_seed(s, 5));
    ck_assert_del_ok(del_policy_search_set_progress(s, record, 2, NULL));
    ck_assert_int_eq(del_policy_search_num_cells(s), 6);
    ck_assert_int_eq(del_policy_search_best(s, NULL, NULL, NULL), DEL_ESTATE);
    last_step = 0;
    ck_assert_del_ok(del_policy_search_run(s));
    ck_assert_int_eq(last_step, 6 * STEPS);
    ck_assert_int_eq(last_total, 6 * STEPS);
    ck_assert_int_eq(calls, 6 * (STEPS / 2));
    double best = -1.0;
    int best_i = -1;
    for (int i = 0; i < 6; i++) {
        int n = -1, m = -1;
        double acc = -1.0;
        ck_assert_del_ok(del_policy_search_cell(s, i, &n, &m, &acc));
        ck_assert_int_eq(n, ns[i / 2]);
        ck_assert_int_eq(m, ms[i % 2]);
        ck_assert_double_eq(acc, cell_by_hand(ds, n, m));
        if (acc > best) {
            best = acc;
            best_i = i;
        }
    }
    int bn = -1, bm = -1;
    double bacc = -1.0;
    ck_assert_del_ok(del_policy_search_best(s, &bn, &bm, &bacc));
    ck_assert_int_eq(bn, ns[best_i / 2]);
    ck_assert_int_eq(bm, ms[best_i % 2]);
    ck_assert_double_eq(bacc, best);
    /* Run once. */
    ck_assert_int_eq(del_policy_search_run(s), DEL_ESTATE);
    ck_assert_int_eq(del_policy_search_set_steps(s, 3), DEL_ESTATE);
    del_policy_search_free(s);
    del_model_free(arch);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_bad_arguments_get_clear_errors_and_change_nothing)
{
    del_dataset *ds = images(4);
    del_model *arch = model(), *wide = NULL;
    del_policy_search *s = NULL;
    ck_assert_int_eq(del_policy_search_new(&s, NULL, ds), DEL_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_del_ok(del_model_from_spec(&wide, "input 1 9 9; flatten; linear 3"));
    ck_assert_int_eq(del_policy_search_new(&s, wide, ds), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'labeled' has 1 x 8 x 8 images (C x H x W), but 'model' takes 1 x 9 x 9");
    ck_assert_del_ok(del_policy_search_new(&s, arch, ds));
    const int good[1] = {2}, n15[2] = {2, 15}, mneg[1] = {-1}, m31[1] = {31};
    ck_assert_int_eq(del_policy_search_set_grid(s, n15, 2, good, 1), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'n[1]' is 15: N must be in 0..14");
    ck_assert_int_eq(del_policy_search_set_grid(s, good, 1, m31, 1), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'m[0]' is 31: M must be in 0..30");
    ck_assert_int_eq(del_policy_search_set_grid(s, good, 1, mneg, 1), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_grid(s, good, 0, good, 1), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_grid(s, NULL, 1, good, 1), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_num_cells(s), 9); /* unchanged: the default 3 x 3 */
    /* 30 images, every 7th unlabeled: class 0 has 8 labeled (0, 3, ..., 27 but 6 and 27). */
    ck_assert_int_eq(del_policy_search_set_validation(s, 9), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "labeled images: holding out 9 leaves none to train on");
    ck_assert_int_eq(del_policy_search_set_validation(s, 0), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_steps(s, 0), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_crop_flip(s, -2, 0.5f), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_crop_flip(s, 2, 1.5f), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_set_progress(s, record, 0, NULL), DEL_EINVAL);
    const float m3[3] = {0}, s3[3] = {1, 1, 1};
    ck_assert_int_eq(del_policy_search_set_normalize(s, m3, s3, 3), DEL_EINVAL);
    ck_assert_int_eq(del_policy_search_cell(s, 9, NULL, NULL, NULL), DEL_EINVAL);
    double acc = 0.0;
    ck_assert_del_ok(del_policy_search_cell(s, 0, NULL, NULL, &acc));
    ck_assert(isnan(acc));
    /* The default split: 20 per class is more than a class has. */
    ck_assert_int_eq(del_policy_search_run(s), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "holding out 20");
    del_policy_search_free(s);
    del_policy_search_free(NULL);
    del_model_free(arch);
    del_model_free(wide);
    del_dataset_free(ds);
}
END_TEST

static Suite *policy_search_suite(void)
{
    Suite *s = suite_create("policy_search");
    TCase *tc = tcase_create("policy_search");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_cell_equals_a_training_by_hand_and_the_best_is_the_highest);
    tcase_add_test(tc, test_bad_arguments_get_clear_errors_and_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(policy_search_suite());
}
