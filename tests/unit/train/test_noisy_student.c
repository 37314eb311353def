/* Noisy Student (SPEC §1.6): the selection and balancing of pseudo-labels
 * against counts by hand, an iteration's student against the steps
 * written out by hand from the public building blocks, iterations that
 * chain, the figures of a validation split, a run killed with SIGKILL at
 * chosen and at random moments that ends byte-identical to an
 * uninterrupted one, another run's directory refused, bad arguments. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "del.h"
#include "train_util.h"

/* The last message mentions needle. */
#define ck_assert_str_contains(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message '%s' lacks '%s'", (msg), (needle))

enum { NL = 12, NU = 30, SIDE = 4, K = 3 };

static const char MODEL[] = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; dropout 0.25; linear 3";

/* n images of 4x4 from an LCG; labels i % K, or -1 (unlabeled). */
static del_dataset *images(int n, uint32_t seed, int labeled)
{
    uint8_t px[64 * SIDE * SIDE];
    int32_t labels[64];
    uint32_t r = seed;
    for (int i = 0; i < n * SIDE * SIDE; i++) {
        r = r * 1664525u + 1013904223u;
        px[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < n; i++)
        labels[i] = labeled ? i % K : -1;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, n, SIDE, SIDE, 1));
    return ds;
}

static del_model *model(uint64_t seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, MODEL));
    ck_assert_del_ok(del_model_init(m, seed));
    return m;
}

static del_tensor *matrix(int64_t rows, int64_t cols, const float *v)
{
    const int64_t shape[2] = {rows, cols};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    if (v)
        memcpy(del_tensor_data(t), v, (size_t)(rows * cols) * sizeof(float));
    return t;
}

static void check_rows(const int64_t *got, int64_t n, const int64_t *want, int64_t m)
{
    ck_assert_int_eq(n, m);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "row %lld: %lld, want %lld", (long long)i, (long long)got[i],
                      (long long)want[i]);
}

START_TEST(test_selection_and_balancing_match_a_count_by_hand)
{
    /* 8 rows of 3 classes; top class and probability of each:
     * 0: c0 .5   1: c1 .9   2: c0 .8   3: c0 .4
     * 4: c0 .6   5: c0 .35  6: c0 .7   7: c2 .4 */
    const float p[8 * 3] = {.5f, .3f, .2f, .05f, .9f, .05f, .8f, .1f,  .1f, .4f,  .4f, .2f,
                            .6f, .2f, .2f, .35f, .35f, .3f, .7f, .15f, .15f, .3f, .3f, .4f};
    /* (Rows 3 and 5 tie: the first of equal values, class 0, is theirs.) */
    del_tensor *probs = matrix(8, 3, p);
    int64_t *rows = NULL, n = -1;
    /* No balancing: every kept row (all 8 reach .3) once, in row order. */
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 0.3f, 0));
    const int64_t all[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    check_rows(rows, n, all, 8);
    del_buffer_free(rows);
    /* Threshold .5 keeps 0 (.5), 1 (.9), 2 (.8), 4 (.6), 6 (.7). */
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 0.5f, 0));
    const int64_t half[5] = {0, 1, 2, 4, 6};
    check_rows(rows, n, half, 5);
    del_buffer_free(rows);
    /* Balanced to 2 per class at .5: class 0 has 2 (.8), 6 (.7), 4 (.6),
     * 0 (.5): keeps 2, 6; class 1 has only 1: repeated; class 2 none. */
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 0.5f, 2));
    const int64_t two[4] = {2, 6, 1, 1};
    check_rows(rows, n, two, 4);
    del_buffer_free(rows);
    /* The mean at .3: class 0 has 0, 2, 3, 4, 5, 6 (6 rows), class 1 has
     * 1, class 2 has 7: mean 8/3 rounds to 3. Class 0 by confidence: 2 (.8),
     * 6 (.7), 4 (.6); class 1: 1, 1, 1; class 2: 7, 7, 7. */
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 0.3f, DEL_BALANCE_MEAN));
    const int64_t mean[9] = {2, 6, 4, 1, 1, 1, 7, 7, 7};
    check_rows(rows, n, mean, 9);
    del_buffer_free(rows);
    /* A short class repeats its rows most confident first: class 0 at .3
     * to 8 takes 2 6 4 0 3 5 (.8 .7 .6 .5 .4 .35) then 2 6 again. */
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 0.3f, 8));
    ck_assert_int_eq(n, 24);
    const int64_t c0[8] = {2, 6, 4, 0, 3, 5, 2, 6};
    check_rows(rows, 8, c0, 8);
    del_buffer_free(rows);
    /* Nothing reaches 1: no rows, no error. */
    rows = (int64_t *)1;
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &n, probs, 1.0f, DEL_BALANCE_MEAN));
    ck_assert_ptr_null(rows);
    ck_assert_int_eq(n, 0);
    /* Bad arguments. */
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, probs, 1.5f, 0), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'threshold' must be in [0, 1], got 1.5");
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, probs, -0.1f, 0), DEL_EINVAL);
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, probs, NAN, 0), DEL_EINVAL);
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, probs, 0.3f, -2), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'per_class'");
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, NULL, 0.3f, 0), DEL_EINVAL);
    ((float *)del_tensor_data(probs))[7] = NAN;
    ck_assert_int_eq(del_select_pseudo_labels(&rows, &n, probs, 0.3f, 0), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "row 2 has a NaN");
    del_tensor_free(probs);
}
END_TEST

/* The run's settings for the tests: full batches, plain SGD. */
static del_noisy_student *run_for(del_model *teacher, const del_dataset *l, const del_dataset *u, int iterations,
                                  int64_t steps)
{
    del_noisy_student *ns = NULL;
    ck_assert_del_ok(del_noisy_student_new(&ns, teacher, l, u));
    ck_assert_del_ok(del_noisy_student_set_iterations(ns, iterations));
    ck_assert_del_ok(del_noisy_student_set_steps(ns, steps));
    ck_assert_del_ok(del_noisy_student_set_batch_sizes(ns, NL, 1000));
    ck_assert_del_ok(del_noisy_student_set_sgd(ns, 0.2f, 0.5f, 1e-3f, 0));
    return ns;
}

/* Iteration 1 written out: the teacher's softmax on U, the selection, and
 * `steps` SGD steps (lr 0.2, momentum 0.5, weight decay 1e-3, cosine to 0)
 * of the student (the teacher's architecture from seed 1) on the whole
 * labeled set and the whole pool per step, in one joint batch, in the
 * trainer's batch orders (seed 1), loss CE(L) + mean CE(target, pool). */
static del_model *iteration_by_hand(del_model *teacher, const del_dataset *l, const del_dataset *u, int64_t steps,
                                    int hard, float smoothing)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    del_tensor *probs = NULL;
    ck_assert_del_ok(del_model_predict(&probs, teacher, NULL, u, mean, stdv, 1.0f, 1));
    int64_t *rows = NULL, np = 0;
    ck_assert_del_ok(del_select_pseudo_labels(&rows, &np, probs, 0.3f, DEL_BALANCE_MEAN));
    ck_assert_int_gt(np, 0);
    const float *p = del_tensor_data(probs);
    float *target = malloc((size_t)np * K * sizeof *target);
    ck_assert_ptr_nonnull(target);
    for (int64_t i = 0; i < np; i++) {
        const float *pi = p + rows[i] * K;
        int best = 0;
        for (int c = 1; c < K; c++)
            best = pi[c] > pi[best] ? c : best;
        for (int c = 0; c < K; c++)
            target[i * K + c] = hard ? (c == best ? 1.0f - smoothing + smoothing / K : smoothing / K) : pi[c];
    }
    del_dataset *pool = NULL;
    ck_assert_del_ok(del_dataset_subset(&pool, u, rows, np));

    del_model *m = model(1);
    const int64_t xs[4] = {NL + np, 1, SIDE, SIDE}, xls[4] = {NL, 1, SIDE, SIDE}, xps[4] = {np, 1, SIDE, SIDE};
    const int64_t ys[1] = {NL}, ws[1] = {np};
    del_tensor *x = NULL, *xl = NULL, *xp = NULL, *y = NULL, *w = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_tensor_new(&xl, DEL_DTYPE_F32, 4, xls));
    ck_assert_del_ok(del_tensor_new(&xp, DEL_DTYPE_F32, 4, xps));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&w, DEL_DTYPE_F32, 1, ws));
    for (int64_t i = 0; i < np; i++)
        ((float *)del_tensor_data(w))[i] = 1.0f;
    del_tensor *zl = matrix(NL, K, NULL), *zp = matrix(np, K, NULL), *gl = matrix(NL, K, NULL),
               *gp = matrix(np, K, NULL), *g = matrix(NL + np, K, NULL), *t = matrix(np, K, NULL);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.2f, 0.5f, 1e-3f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_COSINE, steps, 0.0f));
    ck_assert_del_ok(del_model_set_training(m, 1));
    int64_t *pl = malloc(NL * sizeof *pl), *pp = malloc((size_t)np * sizeof *pp);
    ck_assert_ptr_nonnull(pl);
    ck_assert_ptr_nonnull(pp);
    const size_t image = SIDE * SIDE;
    for (int64_t s = 0; s < steps; s++) {
        ck_assert_del_ok(del_permutation(pl, NL, 1, (uint64_t)s, UINT64_C(0x6261746368)));
        ck_assert_del_ok(del_permutation(pp, np, 1, (uint64_t)s, UINT64_C(0x756e6c6162)));
        ck_assert_del_ok(del_dataset_batch(l, pl, NL, mean, stdv, xl, y));
        ck_assert_del_ok(del_dataset_batch(pool, pp, np, mean, stdv, xp, NULL));
        for (int64_t i = 0; i < np; i++)
            memcpy((float *)del_tensor_data(t) + i * K, target + pp[i] * K, K * sizeof(float));
        memcpy(del_tensor_data(x), del_tensor_data(xl), NL * image * sizeof(float));
        memcpy((float *)del_tensor_data(x) + NL * image, del_tensor_data(xp), (size_t)np * image * sizeof(float));
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_forward(m, x));
        const float *z = del_tensor_data(del_model_output(m));
        memcpy(del_tensor_data(zl), z, NL * K * sizeof(float));
        memcpy(del_tensor_data(zp), z + NL * K, (size_t)np * K * sizeof(float));
        float ce = 0.0f, lp = 0.0f;
        ck_assert_del_ok(del_loss_cross_entropy(zl, y, &ce, gl));
        memset(del_tensor_data(gp), 0, (size_t)np * K * sizeof(float));
        ck_assert_del_ok(del_loss_soft_cross_entropy_acc(zp, t, w, 1.0f, &lp, gp));
        memcpy(del_tensor_data(g), del_tensor_data(gl), NL * K * sizeof(float));
        memcpy((float *)del_tensor_data(g) + NL * K, del_tensor_data(gp), (size_t)np * K * sizeof(float));
        ck_assert_del_ok(del_model_backward(m, g));
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    del_optimizer_free(opt);
    del_tensor *const all[] = {x, xl, xp, y, w, zl, zp, gl, gp, g, t, probs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        del_tensor_free(all[i]);
    free(pl);
    free(pp);
    free(target);
    del_buffer_free(rows);
    del_dataset_free(pool);
    return m;
}

static void check_iteration_against_hand(int hard, float smoothing)
{
    enum { STEPS = 6 };
    del_dataset *l = images(NL, 1, 1), *u = images(NU, 2, 0);
    del_model *teacher = model(7);
    del_noisy_student *ns = run_for(teacher, l, u, 1, STEPS);
    if (hard)
        ck_assert_del_ok(del_noisy_student_set_hard(ns, 1, smoothing));
    ck_assert_del_ok(del_noisy_student_run(ns));
    del_model *want = iteration_by_hand(teacher, l, u, STEPS, hard, smoothing);
    del_model *got = del_noisy_student_model(ns);
    ck_assert_ptr_ne(got, teacher);
    ck_assert_mem_eq(del_model_params(got), del_model_params(want), (size_t)del_model_num_params(want) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(got), del_model_buffers(want),
                     (size_t)del_model_num_buffers(want) * sizeof(float));
    del_model_free(want);
    del_noisy_student_free(ns);
    del_model_free(teacher);
    del_dataset_free(l);
    del_dataset_free(u);
}

START_TEST(test_an_iteration_with_soft_targets_equals_the_steps_by_hand)
{
    check_iteration_against_hand(0, 0.0f);
}
END_TEST

START_TEST(test_an_iteration_with_smoothed_hard_targets_equals_the_steps_by_hand)
{
    check_iteration_against_hand(1, 0.1f);
}
END_TEST

static void *save(const del_model *m, size_t *size)
{
    void *buf = NULL;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, size));
    return buf;
}

START_TEST(test_the_student_teaches_the_next_iteration)
{
    /* Two iterations from seed 0 equal one from seed 0 and then one from
     * seed 1 taught by its student: iteration k draws from seed + k. */
    enum { STEPS = 5 };
    del_dataset *l = images(NL, 3, 1), *u = images(NU, 4, 0);
    del_model *teacher = model(9);
    del_noisy_student *two = run_for(teacher, l, u, 2, STEPS), *first = run_for(teacher, l, u, 1, STEPS);
    ck_assert_del_ok(del_noisy_student_run(two));
    ck_assert_del_ok(del_noisy_student_run(first));
    del_model *middle = NULL;
    ck_assert_del_ok(del_model_clone(&middle, del_noisy_student_model(first)));
    del_noisy_student *second = run_for(middle, l, u, 1, STEPS);
    ck_assert_del_ok(del_noisy_student_set_seed(second, 1));
    ck_assert_del_ok(del_noisy_student_run(second));
    size_t na = 0, nb = 0;
    void *a = save(del_noisy_student_model(two), &na), *b = save(del_noisy_student_model(second), &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na);
    /* And the iterations' figures are each iteration's own. */
    int64_t kept1 = 0, pool1 = 0, kept2 = 0, pool2 = 0, kept = 0, pool = 0;
    ck_assert_del_ok(del_noisy_student_stats(two, 1, NULL, &kept1, &pool1));
    ck_assert_del_ok(del_noisy_student_stats(two, 2, NULL, &kept2, &pool2));
    ck_assert_del_ok(del_noisy_student_stats(second, 1, NULL, &kept, &pool));
    ck_assert_int_eq(kept2, kept);
    ck_assert_int_eq(pool2, pool);
    ck_assert_int_gt(pool1, 0);
    ck_assert_int_le(kept1, NU);
    /* A finished run does not run again. */
    ck_assert_int_eq(del_noisy_student_run(two), DEL_ESTATE);
    del_buffer_free(a);
    del_buffer_free(b);
    del_noisy_student_free(two);
    del_noisy_student_free(first);
    del_noisy_student_free(second);
    del_model_free(middle);
    del_model_free(teacher);
    del_dataset_free(l);
    del_dataset_free(u);
}
END_TEST

/* Top-1 accuracy of m on ds, by hand from its logits. */
static double accuracy_by_hand(del_model *m, const del_dataset *ds)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    del_tensor *z = NULL;
    ck_assert_del_ok(del_model_predict(&z, m, NULL, ds, mean, stdv, 1.0f, 0));
    const float *v = del_tensor_data(z);
    const int32_t *y = del_dataset_labels(ds);
    int64_t right = 0, n = del_dataset_size(ds);
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < K; c++)
            best = v[i * K + c] > v[i * K + best] ? c : best;
        right += best == y[i];
    }
    del_tensor_free(z);
    return (double)right / (double)n;
}

START_TEST(test_each_iteration_is_scored_on_the_validation_split)
{
    del_dataset *l = images(NL, 5, 1), *u = images(NU, 6, 0), *val = images(24, 8, 1);
    del_model *teacher = model(11);
    del_noisy_student *ns = run_for(teacher, l, u, 2, 4);
    double acc = 0.0;
    ck_assert_int_eq(del_noisy_student_stats(ns, 0, &acc, NULL, NULL), DEL_ESTATE);
    ck_assert_del_ok(del_noisy_student_set_validation(ns, val));
    ck_assert_del_ok(del_noisy_student_run(ns));
    ck_assert_del_ok(del_noisy_student_stats(ns, 0, &acc, NULL, NULL));
    ck_assert_double_eq(acc, accuracy_by_hand(teacher, val));
    ck_assert_del_ok(del_noisy_student_stats(ns, 2, &acc, NULL, NULL));
    ck_assert_double_eq(acc, accuracy_by_hand(del_noisy_student_model(ns), val));
    ck_assert_int_eq(del_noisy_student_stats(ns, 3, &acc, NULL, NULL), DEL_EINVAL);
    del_noisy_student_free(ns);
    /* Without a split the accuracy is NaN. */
    ns = run_for(teacher, l, u, 1, 2);
    ck_assert_del_ok(del_noisy_student_run(ns));
    ck_assert_del_ok(del_noisy_student_stats(ns, 1, &acc, NULL, NULL));
    ck_assert(isnan(acc));
    del_noisy_student_free(ns);
    del_model_free(teacher);
    del_dataset_free(l);
    del_dataset_free(u);
    del_dataset_free(val);
}
END_TEST

START_TEST(test_a_teacher_sure_of_nothing_leaves_the_student_to_the_labels)
{
    /* At threshold 1 no image is kept: the student trains on L alone, as a
     * supervised trainer with the same settings would. */
    enum { STEPS = 4 };
    del_dataset *l = images(NL, 22, 1), *u = images(NU, 23, 0);
    del_model *teacher = model(24), *want = model(1);
    del_noisy_student *ns = run_for(teacher, l, u, 1, STEPS);
    ck_assert_del_ok(del_noisy_student_set_selection(ns, 1.0f, DEL_BALANCE_MEAN));
    ck_assert_del_ok(del_noisy_student_run(ns));
    int64_t kept = -1, pool = -1;
    ck_assert_del_ok(del_noisy_student_stats(ns, 1, NULL, &kept, &pool));
    ck_assert_int_eq(kept, 0);
    ck_assert_int_eq(pool, 0);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, want, l));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, NL));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.2f, 0.5f, 1e-3f, 0));
    ck_assert_del_ok(del_trainer_set_seed(tr, 1));
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));
    del_model *got = del_noisy_student_model(ns);
    ck_assert_mem_eq(del_model_params(got), del_model_params(want), (size_t)del_model_num_params(want) * sizeof(float));
    del_trainer_free(tr);
    del_noisy_student_free(ns);
    del_model_free(want);
    del_model_free(teacher);
    del_dataset_free(l);
    del_dataset_free(u);
}
END_TEST

/* ---- killed and started again ---- */

enum { KILL_STEPS = 40, KILL_ITERATIONS = 2 };

static int64_t kill_at; /* the run's step at which the child kills itself; 0: never */

static int killer(int64_t step, int64_t total, float loss, void *user)
{
    (void)total;
    (void)loss;
    (void)user;
    if (kill_at > 0 && step == kill_at)
        raise(SIGKILL);
    return 0;
}

/* A run of the kill tests, in dir (NULL: none); its final model's bytes. */
static void *kill_run(const char *dir, size_t *size, del_status *status)
{
    del_dataset *l = images(NL, 12, 1), *u = images(NU, 13, 0);
    del_model *teacher = model(14);
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    ck_assert_del_ok(del_augment_set_seed(aug, 5));
    del_noisy_student *ns = NULL;
    ck_assert_del_ok(del_noisy_student_new(&ns, teacher, l, u));
    ck_assert_del_ok(del_noisy_student_set_iterations(ns, KILL_ITERATIONS));
    ck_assert_del_ok(del_noisy_student_set_steps(ns, KILL_STEPS));
    ck_assert_del_ok(del_noisy_student_set_batch_sizes(ns, 4, 8));
    ck_assert_del_ok(del_noisy_student_set_augment(ns, aug, aug));
    if (dir)
        ck_assert_del_ok(del_noisy_student_set_checkpoint_dir(ns, dir, 7));
    ck_assert_del_ok(del_noisy_student_set_progress(ns, killer, 1, NULL));
    *status = del_noisy_student_run(ns);
    void *buf = NULL;
    if (*status == DEL_OK)
        buf = save(del_noisy_student_model(ns), size);
    del_noisy_student_free(ns);
    del_augment_free(aug);
    del_model_free(teacher);
    del_dataset_free(l);
    del_dataset_free(u);
    return buf;
}

/* Runs kill_run(dir) in a child killed at run step `at` (0: not killed,
 * -1: by the parent after `delay_us`); returns 1 if the child finished. */
static int child_run(const char *dir, int64_t at, long delay_us)
{
    fflush(NULL);
    const pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        kill_at = at > 0 ? at : 0;
        size_t size = 0;
        del_status st = DEL_OK;
        void *buf = kill_run(dir, &size, &st);
        del_buffer_free(buf);
        _exit(st == DEL_OK ? 0 : 3);
    }
    if (at < 0) {
        struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int wstatus = 0;
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    if (WIFSIGNALED(wstatus)) {
        ck_assert_int_eq(WTERMSIG(wstatus), SIGKILL);
        return 0;
    }
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "the resumed run failed");
    return 1;
}

static void check_finishes_as_uninterrupted(const char *dir, const void *want, size_t want_size)
{
    size_t size = 0;
    del_status st = DEL_OK;
    void *got = kill_run(dir, &size, &st);
    ck_assert_msg(st == DEL_OK, "%s", del_last_error());
    ck_assert_uint_eq(size, want_size);
    ck_assert_mem_eq(got, want, size);
    del_buffer_free(got);
}

START_TEST(test_killed_at_chosen_moments_it_finishes_byte_identical)
{
    size_t want_size = 0;
    del_status st = DEL_OK;
    void *want = kill_run(NULL, &want_size, &st);
    ck_assert_del_ok(st);
    /* Each kill point alone, in a fresh directory: before the first
     * training checkpoint (step 7), just after one, at the end of
     * iteration 1's training (its figures not yet written), in
     * iteration 2; then all of them one after the other in one directory. */
    const int64_t points[] = {3, 8, KILL_STEPS, KILL_STEPS + 1, KILL_STEPS + 15, 2 * KILL_STEPS};
    char dir[64];
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        snprintf(dir, sizeof dir, "ns-point-%zu", i);
        ck_assert_int_eq(child_run(dir, points[i], 0), 0);
        check_finishes_as_uninterrupted(dir, want, want_size);
        test_remove_tree(dir);
    }
    snprintf(dir, sizeof dir, "ns-points");
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++)
        ck_assert_int_eq(child_run(dir, points[i], 0), 0);
    check_finishes_as_uninterrupted(dir, want, want_size);
    /* Finished, it is only read again: the same bytes. */
    check_finishes_as_uninterrupted(dir, want, want_size);
    test_remove_tree(dir);
    del_buffer_free(want);
}
END_TEST

START_TEST(test_killed_at_random_moments_it_finishes_byte_identical)
{
    size_t want_size = 0;
    del_status st = DEL_OK;
    void *want = kill_run(NULL, &want_size, &st);
    ck_assert_del_ok(st);
    /* How long an uninterrupted run takes, to spread the kills over it. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(child_run("ns-timing", 0, 0), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    test_remove_tree("ns-timing");
    const long span = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L + 1;
    uint32_t r = 12345;
    int kills = 0;
    /* Kills at random moments within the first half of a run's time (its
     * speed varies with the machine's load) until one is killed and a later
     * one finishes; a run that finished before any kill starts over. */
    for (int attempt = 0; attempt < 200; attempt++) {
        r = r * 1664525u + 1013904223u;
        if (!child_run("ns-random", -1, (long)((r >> 8) % (uint32_t)(span / 2 + 1)))) {
            kills++;
        } else if (kills > 0) {
            break;
        } else {
            test_remove_tree("ns-random");
        }
    }
    ck_assert_int_gt(kills, 0);
    check_finishes_as_uninterrupted("ns-random", want, want_size);
    test_remove_tree("ns-random");
    del_buffer_free(want);
}
END_TEST

START_TEST(test_a_directory_of_another_run_is_refused)
{
    del_dataset *l = images(NL, 15, 1), *u = images(NU, 16, 0);
    del_model *teacher = model(17), *other = model(18);
    del_noisy_student *ns = run_for(teacher, l, u, 1, 3);
    ck_assert_del_ok(del_noisy_student_set_checkpoint_dir(ns, "ns-other", 0));
    ck_assert_del_ok(del_noisy_student_run(ns));
    del_noisy_student_free(ns);
    ns = run_for(teacher, l, u, 1, 4);
    ck_assert_del_ok(del_noisy_student_set_checkpoint_dir(ns, "ns-other", 0));
    ck_assert_int_eq(del_noisy_student_run(ns), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'ns-other' holds another run ('steps' is 3 there, 4 in this run)");
    ck_assert_ptr_eq(del_noisy_student_model(ns), teacher);
    del_noisy_student_free(ns);
    ns = run_for(other, l, u, 1, 3);
    ck_assert_del_ok(del_noisy_student_set_checkpoint_dir(ns, "ns-other", 0));
    ck_assert_int_eq(del_noisy_student_run(ns), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'teacher_digest'");
    del_noisy_student_free(ns);
    /* The same run again reads its finished iteration. */
    ns = run_for(teacher, l, u, 1, 3);
    ck_assert_del_ok(del_noisy_student_set_checkpoint_dir(ns, "ns-other", 0));
    ck_assert_del_ok(del_noisy_student_run(ns));
    del_noisy_student_free(ns);
    test_remove_tree("ns-other");
    del_model_free(teacher);
    del_model_free(other);
    del_dataset_free(l);
    del_dataset_free(u);
}
END_TEST

START_TEST(test_bad_arguments_get_clear_errors_and_change_nothing)
{
    del_dataset *l = images(NL, 19, 1), *u = images(NU, 20, 0);
    del_model *teacher = model(21);
    del_noisy_student *ns = NULL;
    ck_assert_int_eq(del_noisy_student_new(&ns, NULL, l, u), DEL_EINVAL);
    ck_assert_ptr_null(ns);
    /* An unlabeled set of another image shape. */
    uint8_t px[5 * 5 * 4] = {0};
    int32_t none[4] = {-1, -1, -1, -1};
    del_dataset *wide = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&wide, px, none, 4, 5, 5, 1));
    ck_assert_int_eq(del_noisy_student_new(&ns, teacher, l, wide), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'unlabeled' has 1 x 5 x 5 images (C x H x W), but 'teacher' takes 1 x 4 x 4");
    ck_assert_int_eq(del_noisy_student_new(&ns, teacher, wide, u), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_new(&ns, teacher, u, u), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'labeled' has no labeled image");
    ck_assert_del_ok(del_noisy_student_new(&ns, teacher, l, u));
    /* Out of range settings; the run afterwards is the default one. */
    ck_assert_int_eq(del_noisy_student_set_iterations(ns, 0), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_steps(ns, 0), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_batch_sizes(ns, 0, 5), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_selection(ns, 1.01f, 0), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'threshold' must be in [0, 1], got 1.01");
    ck_assert_int_eq(del_noisy_student_set_selection(ns, -0.5f, 0), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_selection(ns, 0.3f, -3), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_hard(ns, 2, 0.1f), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_hard(ns, 1, 1.0f), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_init_from_teacher(ns, 3), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_sgd(ns, -1.0f, 0.9f, 0.0f, 0), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_checkpoint_dir(ns, "", 0), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_checkpoint_dir(ns, "d", -1), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_progress(ns, killer, 0, NULL), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_validation(ns, wide), DEL_EINVAL);
    const float m3[3] = {0}, s3[3] = {1, 1, 1};
    ck_assert_int_eq(del_noisy_student_set_normalize(ns, m3, s3, 3), DEL_EINVAL);
    /* A student with another class count, or other images. */
    del_model *four = NULL, *big = NULL;
    ck_assert_del_ok(del_model_from_spec(&four, "input 1 4 4; flatten; linear 4"));
    ck_assert_del_ok(del_model_from_spec(&big, "input 1 5 5; flatten; linear 3"));
    ck_assert_int_eq(del_noisy_student_set_student(ns, 1, four), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "'model' gives 4 class scores, the teacher 3");
    ck_assert_int_eq(del_noisy_student_set_student(ns, 0, big), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_set_student(ns, 3, NULL), DEL_EINVAL);
    ck_assert_int_eq(del_noisy_student_stats(ns, 1, NULL, NULL, NULL), DEL_ESTATE);
    /* A student of another architecture cannot start from the teacher. */
    del_model *mlp = NULL;
    ck_assert_del_ok(del_model_from_spec(&mlp, "input 1 4 4; flatten; linear 8; relu; linear 3"));
    ck_assert_del_ok(del_noisy_student_set_student(ns, 1, mlp));
    ck_assert_del_ok(del_noisy_student_set_init_from_teacher(ns, 1));
    ck_assert_del_ok(del_noisy_student_set_iterations(ns, 1));
    ck_assert_del_ok(del_noisy_student_set_steps(ns, 2));
    ck_assert_int_eq(del_noisy_student_run(ns), DEL_EINVAL);
    ck_assert_str_contains(del_last_error(), "iteration 1: the student cannot start from the teacher's weights");
    /* From scratch it runs: a larger student. */
    ck_assert_del_ok(del_noisy_student_set_init_from_teacher(ns, 0));
    ck_assert_del_ok(del_noisy_student_run(ns));
    ck_assert_int_eq(del_model_num_layers(del_noisy_student_model(ns)), 4);
    ck_assert_int_eq(del_noisy_student_set_iterations(ns, 0), DEL_EINVAL);
    del_noisy_student_free(ns);
    del_noisy_student_free(NULL);
    del_model_free(four);
    del_model_free(big);
    del_model_free(mlp);
    del_model_free(teacher);
    del_dataset_free(wide);
    del_dataset_free(l);
    del_dataset_free(u);
}
END_TEST

static Suite *noisy_student_suite(void)
{
    Suite *s = suite_create("noisy_student");
    TCase *tc = tcase_create("noisy_student");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_selection_and_balancing_match_a_count_by_hand);
    tcase_add_test(tc, test_an_iteration_with_soft_targets_equals_the_steps_by_hand);
    tcase_add_test(tc, test_an_iteration_with_smoothed_hard_targets_equals_the_steps_by_hand);
    tcase_add_test(tc, test_the_student_teaches_the_next_iteration);
    tcase_add_test(tc, test_each_iteration_is_scored_on_the_validation_split);
    tcase_add_test(tc, test_a_teacher_sure_of_nothing_leaves_the_student_to_the_labels);
    tcase_add_test(tc, test_killed_at_chosen_moments_it_finishes_byte_identical);
    tcase_add_test(tc, test_killed_at_random_moments_it_finishes_byte_identical);
    tcase_add_test(tc, test_a_directory_of_another_run_is_refused);
    tcase_add_test(tc, test_bad_arguments_get_clear_errors_and_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del-noisy-student-XXXXXX";
    return test_run_suite_inside_tmpdir(noisy_student_suite, tmpdir);
}
