/* The shared loop's own calls: del_trainer_step trains exactly as the
 * steps of a fit do. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "del.h"
#include "train_util.h"

enum { N = 96, SIDE = 8 };

static del_dataset *random_dataset(void)
{
    static uint8_t px[N * SIDE * SIDE];
    static int32_t labels[N];
    uint32_t r = 7;
    for (size_t i = 0; i < sizeof px; i++) {
        r = r * 1664525u + 1013904223u;
        px[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < N; i++)
        labels[i] = i % 4;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SIDE, SIDE, 1));
    return ds;
}

/* A trainer over a small CNN with batchnorm and dropout, crop + flip, a
 * batch size that does not divide the set (batches cross epochs). */
static del_trainer *make_trainer(del_model **m, const del_dataset *ds, del_augment **aug)
{
    ck_assert_del_ok(del_model_from_spec(m, "input 1 8 8; conv2d 4 k=3 p=1; batchnorm; relu; flatten; dropout 0.3; "
                                            "linear 4"));
    ck_assert_del_ok(del_model_init(*m, 5));
    ck_assert_del_ok(del_augment_new(aug));
    ck_assert_del_ok(del_augment_set_seed(*aug, 9));
    ck_assert_del_ok(del_augment_add_random_crop(*aug, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_flip_h(*aug, 0.5f));
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, *m, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 40));
    ck_assert_del_ok(del_trainer_set_augment(tr, *aug));
    ck_assert_del_ok(del_trainer_set_seed(tr, 21));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 7));
    return tr;
}

START_TEST(test_steps_one_by_one_equal_a_fit)
{
    del_dataset *ds = random_dataset();
    del_model *a = NULL, *b = NULL;
    del_augment *aug_a = NULL, *aug_b = NULL;
    del_trainer *ta = make_trainer(&a, ds, &aug_a), *tb = make_trainer(&b, ds, &aug_b);
    ck_assert_del_ok(del_trainer_fit(ta, 7));
    ck_assert_del_ok(del_model_set_training(b, 0));
    for (int i = 0; i < 7; i++) {
        float loss = NAN;
        ck_assert_del_ok(del_trainer_step(tb, &loss));
        ck_assert(isfinite(loss) && loss > 0.0f);
    }
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    ck_assert_int_eq(del_model_is_training(b), 0); /* left as it was */
    del_trainer_free(ta);
    del_trainer_free(tb);
    del_augment_free(aug_a);
    del_augment_free(aug_b);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_step_needs_total_steps_and_arguments)
{
    del_dataset *ds = random_dataset();
    del_model *m = NULL;
    del_augment *aug = NULL;
    del_trainer *tr = make_trainer(&m, ds, &aug);
    float loss = 0.0f;
    ck_assert_del_err(del_trainer_step(NULL, &loss), DEL_EINVAL, "trainer");
    ck_assert_del_err(del_trainer_step(tr, NULL), DEL_EINVAL, "loss");
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 0));
    int64_t n = 0;
    float *before = copy_params(m, &n);
    ck_assert_del_err(del_trainer_step(tr, &loss), DEL_ESTATE, "del_trainer_set_total_steps");
    ck_assert_mem_eq(before, del_model_params(m), (size_t)n * sizeof(float));
    free(before);
    del_trainer_free(tr);
    del_augment_free(aug);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_fit_times_split_the_fit_into_waiting_and_steps)
{
    del_dataset *ds = random_dataset();
    del_model *m = NULL;
    del_augment *aug = NULL;
    del_trainer *tr = make_trainer(&m, ds, &aug);
    double wait = -1.0, step = -1.0;
    ck_assert_del_ok(del_trainer_fit_times(tr, &wait, &step));
    ck_assert(wait == 0.0 && step == 0.0); /* before any fit */
    /* Inline batches (no prefetch thread): every batch is waited for. */
    ck_assert_del_ok(del_trainer_set_prefetch(tr, 0));
    const double t0 = wall_now();
    ck_assert_del_ok(del_trainer_fit(tr, 4));
    const double wall = wall_now() - t0;
    ck_assert_del_ok(del_trainer_fit_times(tr, &wait, &step));
    ck_assert_msg(wait > 0.0 && step > 0.0, "wait %g, step %g", wait, step);
    ck_assert_msg(wait + step <= wall, "wait %g + step %g > the fit's %g s", wait, step, wall);
    /* A later fit starts its own count. */
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    double wait1 = 0.0, step1 = 0.0;
    ck_assert_del_ok(del_trainer_fit_times(tr, &wait1, NULL));
    ck_assert_del_ok(del_trainer_fit_times(tr, NULL, &step1));
    ck_assert(step1 > 0.0 && step1 < step + wait);
    ck_assert_int_eq(del_trainer_fit_times(NULL, &wait, &step), DEL_EINVAL);
    del_trainer_free(tr);
    del_augment_free(aug);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_steps_one_by_one_equal_a_fit);
    tcase_add_test(tc, test_step_needs_total_steps_and_arguments);
    tcase_add_test(tc, test_fit_times_split_the_fit_into_waiting_and_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(loop_suite());
}
