/* Learning without Forgetting (SPEC §1.4): the trainer's steps equal the
 * loss written by hand from the public building blocks (recorded Y_o, CE
 * on the new head, lambda T^2 KL on the old one, backward through both
 * heads), the warm-up trains the new head alone, evaluation of each head,
 * bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

enum { N = 16, D = 4, KO = 3, KN = 2 };

static del_dataset *new_task(void)
{
    static uint8_t px[N * D];
    static int32_t labels[N];
    for (int i = 0; i < N * D; i++)
        px[i] = (uint8_t)((i * 67 + 3) % 256);
    for (int i = 0; i < N; i++)
        labels[i] = i % KN;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 2, 2, 1));
    return ds;
}

static del_model *old_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 5; relu; linear 3"));
    ck_assert_del_ok(del_model_init(m, 4));
    return m;
}

/* The same three steps by hand: plain SGD over the whole set per step, in
 * the trainer's batch order (del_permutation of each epoch, the labeled
 * stream's key). */
static void by_hand_kd(del_model *m, const del_dataset *ds, float lambda, float t, int steps, del_model *teacher,
                       float kd_t, float alpha)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t xs[4] = {N, 1, 2, 2}, ys[1] = {N}, os[2] = {N, KO}, ns[2] = {N, KN};
    del_tensor *x = NULL, *y = NULL, *yo = NULL, *g_old = NULL, *g_new = NULL, *tz = NULL, *g_kd = NULL;
    ck_assert_del_ok(del_tensor_new(&tz, DEL_DTYPE_F32, 2, ns));
    ck_assert_del_ok(del_tensor_new(&g_kd, DEL_DTYPE_F32, 2, ns));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&yo, DEL_DTYPE_F32, 2, os));
    ck_assert_del_ok(del_tensor_new(&g_old, DEL_DTYPE_F32, 2, os));
    ck_assert_del_ok(del_tensor_new(&g_new, DEL_DTYPE_F32, 2, ns));
    ck_assert_del_ok(del_model_split_head(m, "old", -1));
    ck_assert_del_ok(del_model_add_head(m, "new", "linear 2"));
    /* Y_o of every row in dataset order, before training. */
    static float rec[N * KO];
    int64_t rows[N];
    for (int i = 0; i < N; i++)
        rows[i] = i;
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_dataset_batch(ds, rows, N, mean, stdv, x, NULL));
    ck_assert_del_ok(del_model_forward(m, x));
    memcpy(rec, del_tensor_data(del_model_head_output(m, "old")), sizeof rec);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.2f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_CONSTANT, steps, 0.0f));
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int s = 0; s < steps; s++) {
        int64_t perm[N];
        ck_assert_del_ok(del_permutation(perm, N, 0, (uint64_t)s, UINT64_C(0x6261746368)));
        ck_assert_del_ok(del_dataset_batch(ds, perm, N, mean, stdv, x, y));
        float *v = del_tensor_data(yo);
        for (int i = 0; i < N; i++)
            memcpy(v + i * KO, rec + perm[i] * KO, KO * sizeof(float));
        float ce = 0.0f, kd = 0.0f;
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_loss_cross_entropy(del_model_head_output(m, "new"), y, &ce, g_new));
        if (teacher) {
            /* The teacher's term on the new head, on the same batch. */
            ck_assert_del_ok(del_model_set_training(teacher, 0));
            ck_assert_del_ok(del_model_forward(teacher, x));
            memcpy(del_tensor_data(tz), del_tensor_data(del_model_output(teacher)), N * KN * sizeof(float));
            float kd_new = 0.0f;
            ck_assert_del_ok(del_loss_distill(del_model_head_output(m, "new"), tz, kd_t, &kd_new, g_kd));
            float *gn = del_tensor_data(g_new);
            const float *gk = del_tensor_data(g_kd);
            for (int i = 0; i < N * KN; i++)
                gn[i] = alpha * gk[i] + (1.0f - alpha) * gn[i];
        }
        ck_assert_del_ok(del_loss_distill(del_model_head_output(m, "old"), yo, t, &kd, g_old));
        float *g = del_tensor_data(g_old);
        for (int i = 0; i < N * KO; i++)
            g[i] *= lambda;
        const char *names[2] = {"new", "old"};
        const del_tensor *grads[2] = {g_new, g_old};
        ck_assert_del_ok(del_model_backward_heads(m, 2, names, grads));
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    del_optimizer_free(opt);
    del_tensor_free(x);
    del_tensor_free(y);
    del_tensor_free(yo);
    del_tensor_free(g_old);
    del_tensor_free(g_new);
    del_tensor_free(tz);
    del_tensor_free(g_kd);
}

static void by_hand(del_model *m, const del_dataset *ds, float lambda, float t, int steps)
{
    by_hand_kd(m, ds, lambda, t, steps, NULL, 0.0f, 0.0f);
}

START_TEST(test_steps_equal_the_loss_written_by_hand)
{
    del_dataset *ds = new_task();
    del_model *a = old_model(), *b = old_model();
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tr, a, ds, "old", "new", KN));
    ck_assert_int_eq(del_model_num_heads(a), 2);
    ck_assert_str_eq(del_model_head_name(a, 0), "old");
    ck_assert_str_eq(del_model_head_name(a, 1), "new");
    ck_assert_del_ok(del_trainer_set_batch_size(tr, N));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.2f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_lwf_lambda(tr, 1.5f));
    ck_assert_del_ok(del_trainer_set_temperature(tr, 3.0f));
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    by_hand(b, ds, 1.5f, 3.0f, 3);
    ck_assert_int_eq(del_model_num_params(a), del_model_num_params(b));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    /* lambda matters: without it the old head drifts differently. */
    del_model *c = old_model();
    del_trainer *tc = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tc, c, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_set_batch_size(tc, N));
    ck_assert_del_ok(del_trainer_set_sgd(tc, 0.2f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tc, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_lwf_lambda(tc, 0.0f));
    ck_assert_del_ok(del_trainer_fit(tc, 3));
    ck_assert_msg(memcmp(del_model_params(a), del_model_params(c), (size_t)del_model_num_params(a) * 4) != 0,
                  "lambda had no effect");
    del_trainer_free(tc);
    del_model_free(c);
    /* Without T^2: lambda 1.5 / 9 with T^2 is the same step. */
    del_model *d = old_model(), *e = old_model();
    del_trainer *td = NULL, *te = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&td, d, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_new_lwf(&te, e, ds, "old", "new", KN));
    del_trainer *both[2] = {td, te};
    for (int i = 0; i < 2; i++) {
        ck_assert_del_ok(del_trainer_set_batch_size(both[i], N));
        ck_assert_del_ok(del_trainer_set_sgd(both[i], 0.2f, 0.0f, 0.0f, 0));
        ck_assert_del_ok(del_trainer_set_schedule(both[i], DEL_SCHEDULE_CONSTANT));
        ck_assert_del_ok(del_trainer_set_temperature(both[i], 3.0f));
    }
    ck_assert_del_ok(del_trainer_set_lwf_lambda(td, 1.5f));
    ck_assert_del_ok(del_trainer_set_distill_t2(td, 0));
    ck_assert_del_ok(del_trainer_set_lwf_lambda(te, 1.5f / 9.0f));
    ck_assert_del_ok(del_trainer_fit(td, 2));
    ck_assert_del_ok(del_trainer_fit(te, 2));
    const float *pd = del_model_params(d), *pe = del_model_params(e);
    for (int64_t i = 0; i < del_model_num_params(d); i++)
        ck_assert_msg(fabsf(pd[i] - pe[i]) <= 1e-6f + 1e-6f * fabsf(pe[i]), "param %lld", (long long)i);
    del_trainer_free(td);
    del_trainer_free(te);
    del_model_free(d);
    del_model_free(e);
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(b);
    del_dataset_free(ds);
}
END_TEST

/* LwF with a distillation teacher on the new head (del_trainer_add_teacher):
 * the new head's loss is alpha T^2 KL(teacher || new) + (1 - alpha) CE,
 * the old head's LwF term as before; LwF's temperature stays its own. */
START_TEST(test_lwf_with_a_teacher_steps_as_written_by_hand)
{
    del_dataset *ds = new_task();
    del_model *a = old_model(), *b = old_model(), *teacher = NULL;
    ck_assert_del_ok(del_model_from_spec(&teacher, "input 1 2 2; flatten; linear 6; relu; linear 2"));
    ck_assert_del_ok(del_model_init(teacher, 8));
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tr, a, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, N));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.2f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_set_lwf_lambda(tr, 1.5f));
    ck_assert_del_ok(del_trainer_add_teacher(tr, teacher, 4.0f, 0.6f));
    ck_assert_del_ok(del_trainer_set_temperature(tr, 3.0f)); /* LwF's T */
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    by_hand_kd(b, ds, 1.5f, 3.0f, 3, teacher, 4.0f, 0.6f);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    /* The teacher's term matters. */
    del_model *c = old_model();
    by_hand(c, ds, 1.5f, 3.0f, 3);
    ck_assert_msg(memcmp(del_model_params(a), del_model_params(c), (size_t)del_model_num_params(a) * 4) != 0,
                  "the teacher had no effect");
    /* A teacher of the old task's classes does not fit the new head. */
    del_model *wrong = NULL;
    del_trainer *t2 = NULL;
    del_model *d = old_model();
    ck_assert_del_ok(del_model_from_spec(&wrong, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_trainer_new_lwf(&t2, d, ds, "old", "new", KN));
    ck_assert_del_err(del_trainer_add_teacher(t2, wrong, 4.0f, 0.5f), DEL_EINVAL, "3 class scores");
    del_trainer_free(t2);
    del_model_free(d);
    del_model_free(wrong);
    del_trainer_free(tr);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
    del_model_free(teacher);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_warmup_trains_the_new_head_alone_then_everything)
{
    del_dataset *ds = new_task();
    del_model *m = old_model();
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tr, m, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_set_head_warmup(tr, 2));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 3));
    int first = 0, count = 0;
    ck_assert_del_ok(del_model_head_layers(m, "new", &first, &count));
    int64_t off = 0, n = 0;
    ck_assert_del_ok(del_model_layer_params(m, first, &off, &n));
    float *before = malloc((size_t)off * sizeof *before);
    memcpy(before, del_model_params(m), (size_t)off * sizeof *before);
    float *head = malloc((size_t)n * sizeof *head);
    memcpy(head, del_model_params(m) + off, (size_t)n * sizeof *head);
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_mem_eq(del_model_params(m), before, (size_t)off * sizeof(float)); /* backbone + old head */
    ck_assert_msg(memcmp(del_model_params(m) + off, head, (size_t)n * sizeof(float)) != 0, "new head not trained");
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    ck_assert_msg(memcmp(del_model_params(m), before, (size_t)off * sizeof(float)) != 0,
                  "the backbone and old head did not train after the warm-up");
    /* The trainer's task is the new head; the old one is evaluated by name. */
    double acc_new = -1.0, acc_old = -1.0;
    ck_assert_del_ok(del_trainer_evaluate(tr, ds, &acc_new));
    ck_assert_del_ok(del_trainer_evaluate_head(tr, ds, "old", &acc_old));
    ck_assert(acc_new >= 0.0 && acc_old >= 0.0);
    ck_assert_del_err(del_trainer_evaluate_head(tr, ds, "gone", &acc_old), DEL_EINVAL, "no head called 'gone'");
    free(before);
    free(head);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_bad_lwf_arguments_change_nothing)
{
    del_dataset *ds = new_task();
    del_model *m = old_model();
    del_trainer *tr = NULL;
    const int64_t n = del_model_num_params(m);
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, "old", "old", KN), DEL_EINVAL, "two head names");
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, "old", "new", 1), DEL_EINVAL, "label 1");
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, "old", "new", 0), DEL_EINVAL, "'num_classes'");
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, NULL, "new", KN), DEL_EINVAL, "'old_head'");
    ck_assert_int_eq(del_model_num_heads(m), 0);
    ck_assert_int_eq(del_model_num_params(m), n);
    ck_assert_del_ok(del_model_split_head(m, "cls", -1));
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, "old", "new", KN), DEL_EINVAL, "no first head called 'old'");
    ck_assert_del_ok(del_model_add_head(m, "extra", "linear 2"));
    ck_assert_del_err(del_trainer_new_lwf(&tr, m, ds, "cls", "extra", KN), DEL_EINVAL, "already has a head");
    ck_assert_del_ok(del_model_remove_head(m, "extra"));
    ck_assert_ptr_null(tr);
    ck_assert_del_ok(del_trainer_new_lwf(&tr, m, ds, "cls", "new", KN));
    ck_assert_del_err(del_trainer_set_lwf_lambda(tr, -1.0f), DEL_EINVAL, "'lambda'");
    ck_assert_del_err(del_trainer_set_distill_alpha(tr, 0.5f), DEL_EINVAL, "does not apply to a lwf trainer");
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

/* An LwF run of 3 steps, Y_o recorded or from the live original. */
static del_model *lwf_run(int live, del_augment *aug)
{
    del_dataset *ds = new_task();
    del_model *m = old_model();
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tr, m, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 8));
    ck_assert_del_ok(del_trainer_set_lwf_live_original(tr, live));
    if (aug)
        ck_assert_del_ok(del_trainer_set_augment(tr, aug));
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    ck_assert_del_err(del_trainer_set_lwf_live_original(tr, !live), DEL_ESTATE, "before the first step");
    del_trainer_free(tr);
    del_dataset_free(ds);
    return m;
}

START_TEST(test_live_original_equals_recorded_outputs_without_augmentation)
{
    /* Without augmentation the original's outputs on a batch are the
     * recorded rows (linear layers: no batch-position effects), so both
     * give the same weights; with a flip they differ (the live copy sees
     * the flipped images, the record does not). */
    del_model *a = lwf_run(0, NULL), *b = lwf_run(1, NULL);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    del_augment *flip = NULL;
    ck_assert_del_ok(del_augment_new(&flip));
    ck_assert_del_ok(del_augment_add_flip_h(flip, 1.0f));
    del_model *c = lwf_run(0, flip), *d = lwf_run(1, flip);
    ck_assert_msg(memcmp(del_model_params(c), del_model_params(d), (size_t)del_model_num_params(c) * 4) != 0,
                  "the live original saw the same targets as the record on flipped images");
    del_augment_free(flip);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
    del_model_free(d);
}
END_TEST

/* 4 steps, or 1 + checkpoint + 3 in a new trainer made from the original
 * model (the targets and settings come back from the checkpoint: the
 * second trainer keeps the defaults until the load). */
static del_model *resume_run(int resume, int live)
{
    del_dataset *ds = new_task();
    del_model *m = old_model();
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_lwf(&tr, m, ds, "old", "new", KN));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 8));
    ck_assert_del_ok(del_trainer_set_lwf_live_original(tr, live));
    ck_assert_del_ok(del_trainer_set_lwf_lambda(tr, 2.0f));
    ck_assert_del_ok(del_trainer_set_temperature(tr, 3.0f));
    ck_assert_del_ok(del_trainer_set_head_warmup(tr, 1));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 4));
    if (!resume) {
        ck_assert_del_ok(del_trainer_fit(tr, 4));
    } else {
        ck_assert_del_ok(del_trainer_fit(tr, 1));
        ck_assert_del_ok(del_trainer_save_checkpoint(tr, "lwf.delc"));
        /* The run goes on in the first trainer: the file keeps step 1. */
        ck_assert_del_ok(del_trainer_fit(tr, 1));
        del_trainer_free(tr);
        del_model_free(m);
        m = old_model();
        ck_assert_del_ok(del_trainer_new_lwf(&tr, m, ds, "old", "new", KN));
        ck_assert_del_ok(del_trainer_set_batch_size(tr, 8));
        ck_assert_del_ok(del_trainer_set_lwf_live_original(tr, live));
        ck_assert_del_ok(del_trainer_set_total_steps(tr, 4));
        ck_assert_del_ok(del_trainer_load_checkpoint(tr, "lwf.delc"));
        ck_assert_del_ok(del_trainer_fit(tr, 3));
    }
    del_trainer_free(tr);
    del_dataset_free(ds);
    return m;
}

START_TEST(test_lwf_resumes_bit_exactly_from_a_checkpoint)
{
    for (int live = 0; live < 2; live++) {
        del_model *a = resume_run(0, live), *b = resume_run(1, live);
        ck_assert_msg(memcmp(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * 4) == 0,
                      "live %d: the resumed run differs", live);
        del_model_free(a);
        del_model_free(b);
    }
}
END_TEST

static Suite *lwf_suite(void)
{
    Suite *s = suite_create("lwf");
    TCase *tc = tcase_create("small");
    tcase_add_test(tc, test_steps_equal_the_loss_written_by_hand);
    tcase_add_test(tc, test_lwf_with_a_teacher_steps_as_written_by_hand);
    tcase_add_test(tc, test_warmup_trains_the_new_head_alone_then_everything);
    tcase_add_test(tc, test_bad_lwf_arguments_change_nothing);
    tcase_add_test(tc, test_live_original_equals_recorded_outputs_without_augmentation);
    tcase_add_test(tc, test_lwf_resumes_bit_exactly_from_a_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_lwf_XXXXXX";
    return test_run_suite_inside_tmpdir(lwf_suite, tmpdir);
}
