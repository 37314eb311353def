/* Transfer learning (SPEC §1.2): del_trainer_new_finetune replaces a
 * pre-trained model's classifier and trains a linear probe (frozen
 * backbone, batchnorm on running statistics) or the whole model with the
 * backbone at a smaller learning rate, optionally after a head warm-up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_util.h"

enum { N = 60, SIDE = 6 };

static del_dataset *task(int classes, uint32_t seed)
{
    static uint8_t px[N * SIDE * SIDE];
    static int32_t labels[N];
    uint32_t r = seed;
    for (size_t i = 0; i < sizeof px; i++) {
        r = r * 1664525u + 1013904223u;
        px[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < N; i++)
        labels[i] = i % classes;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SIDE, SIDE, 1));
    return ds;
}

static const char PRETRAINED[] = "input 1 6 6; conv2d 4 k=3 p=1; batchnorm; relu; flatten; linear 16; relu; linear 5";

/* A model trained on a 5-class task, saved, and loaded back as another
 * program would. */
static del_model *pretrained(void)
{
    del_model *m = NULL;
    del_trainer *tr = NULL;
    del_dataset *ds = task(5, 1);
    ck_assert_del_ok(del_model_from_spec(&m, PRETRAINED));
    ck_assert_del_ok(del_model_init(m, 3));
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_fit(tr, 5));
    ck_assert_del_ok(del_model_save(m, "pretrained.delm"));
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
    del_model *loaded = NULL;
    ck_assert_del_ok(del_model_load(&loaded, "pretrained.delm"));
    return loaded;
}

static float *copy_floats(const float *v, int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    memcpy(p, v, (size_t)n * sizeof *p);
    return p;
}

START_TEST(test_linear_probe_trains_only_the_new_head)
{
    del_model *m = pretrained();
    del_dataset *ds = task(3, 2);
    const int64_t nb = del_model_num_buffers(m);
    float *buffers = copy_floats(del_model_buffers(m), nb);
    /* The backbone is everything but the last linear layer. */
    int64_t head_off = 0, head_count = 0;
    ck_assert_del_ok(del_model_layer_params(m, del_model_num_layers(m) - 1, &head_off, &head_count));
    float *backbone = copy_floats(del_model_params(m), head_off);

    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_LINEAR_PROBE));
    ck_assert_int_eq(del_model_num_heads(m), 1);
    ck_assert_str_eq(del_model_head_name(m, 0), "head");
    int ndim = 0;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(shape[0], 3);
    ck_assert_int_eq(del_model_backbone_layers(m), del_model_num_layers(m) - 1);
    for (int i = 0; i < del_model_backbone_layers(m); i++)
        ck_assert_int_eq(del_model_layer_frozen(m, i), 1);
    ck_assert_int_eq(del_model_layer_frozen(m, del_model_num_layers(m) - 1), 0);
    const int64_t new_head_off = del_model_num_params(m) - (16 * 3 + 3);
    ck_assert_int_eq(new_head_off, head_off);
    float *head = copy_floats(del_model_params(m) + head_off, 16 * 3 + 3);

    ck_assert_del_ok(del_trainer_fit(tr, 8));
    ck_assert_mem_eq(del_model_params(m), backbone, (size_t)head_off * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(m), buffers, (size_t)nb * sizeof(float)); /* running stats frozen */
    ck_assert_msg(memcmp(del_model_params(m) + head_off, head, sizeof(float) * (16 * 3 + 3)) != 0,
                  "the head did not train");
    double acc = 0.0;
    ck_assert_del_ok(del_trainer_evaluate(tr, ds, &acc));
    free(head);
    free(backbone);
    free(buffers);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

/* One full fine-tuning step of plain SGD (no momentum, no decay) from the
 * same pre-trained model with backbone multiplier mult; returns the
 * parameter change (caller frees) and its length in *n. */
static float *one_step_delta(float mult, int64_t *n)
{
    del_model *m = pretrained();
    del_dataset *ds = task(3, 2);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
    if (mult != 0.1f)
        ck_assert_del_ok(del_trainer_set_backbone_lr_mult(tr, mult));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    for (int i = 0; i < del_model_backbone_layers(m); i++) {
        ck_assert_int_eq(del_model_layer_frozen(m, i), 0);
        ck_assert_float_eq(del_model_layer_lr_mult(m, i), mult);
    }
    *n = del_model_num_params(m);
    float *before = copy_floats(del_model_params(m), *n);
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    for (int64_t i = 0; i < *n; i++)
        before[i] = del_model_params(m)[i] - before[i];
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
    return before;
}

START_TEST(test_full_finetune_updates_the_backbone_at_its_multiplier)
{
    int64_t n = 0, n1 = 0;
    float *d01 = one_step_delta(0.1f, &n), *d1 = one_step_delta(1.0f, &n1);
    ck_assert_int_eq(n, n1);
    const int64_t head = 16 * 3 + 3;
    int moved = 0;
    for (int64_t i = 0; i < n - head; i++) {
        /* lr * 0.1 * g against lr * g, from the same gradient; the changes
         * are read back as differences of parameters ~1, so to within a
         * few of their ulps (1e-7). */
        ck_assert_msg(fabsf(d01[i] - 0.1f * d1[i]) <= 1e-3f * fabsf(d1[i]) + 2e-7f, "param %lld: %g vs %g",
                      (long long)i, (double)d01[i], (double)d1[i]);
        moved += d1[i] != 0.0f;
    }
    ck_assert_int_gt(moved, 0);
    ck_assert_mem_eq(d01 + (n - head), d1 + (n - head), (size_t)head * sizeof(float));
    free(d01);
    free(d1);
}
END_TEST

START_TEST(test_head_warmup_keeps_the_backbone_until_it_ends)
{
    del_model *m = pretrained();
    del_dataset *ds = task(3, 2);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_ok(del_trainer_set_head_warmup(tr, 2));
    ck_assert_int_eq(del_model_layer_frozen(m, 0), 1);
    const int64_t head = 16 * 3 + 3, nb = del_model_num_params(m) - head;
    float *backbone = copy_floats(del_model_params(m), nb);
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 4));
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_mem_eq(del_model_params(m), backbone, (size_t)nb * sizeof(float));
    ck_assert_del_ok(del_trainer_fit(tr, 1));
    ck_assert_msg(memcmp(del_model_params(m), backbone, (size_t)nb * sizeof(float)) != 0,
                  "the backbone did not train after the warm-up");
    ck_assert_int_eq(del_model_layer_frozen(m, 0), 0);
    ck_assert_float_eq(del_model_layer_lr_mult(m, 0), 0.1f);
    free(backbone);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

/* A fine-tuning run of 6 steps, or 1 + checkpoint + 5 in a new trainer
 * made the same way (its warm-up from the checkpoint): the same weights. */
/* Full fine-tuning with a distillation teacher (del_trainer_add_teacher):
 * its steps equal the loss written by hand from the public blocks, on a
 * clone of the model as the constructor left it (new head, backbone group
 * at 0.1x): alpha T^2 KL(teacher || z) + (1 - alpha) CE per batch. */
START_TEST(test_finetune_with_a_teacher_steps_as_written_by_hand)
{
    enum { STEPS = 3 };
    const float alpha = 0.7f, t = 2.5f, mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    del_model *a = pretrained(), *b = NULL, *teacher = NULL;
    del_dataset *ds = task(3, 2);
    ck_assert_del_ok(del_model_from_spec(&teacher, "input 1 6 6; flatten; linear 8; relu; linear 3"));
    ck_assert_del_ok(del_model_init(teacher, 11));
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, a, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, N));
    ck_assert_del_ok(del_trainer_set_sgd(tr, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tr, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_add_teacher(tr, teacher, t, alpha));
    ck_assert_del_ok(del_model_clone(&b, a));
    ck_assert_del_ok(del_trainer_fit(tr, STEPS));

    const int64_t xs[4] = {N, 1, SIDE, SIDE}, ys[1] = {N}, zs[2] = {N, 3};
    del_tensor *x = NULL, *y = NULL, *tz = NULL, *gc = NULL, *gk = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, ys));
    ck_assert_del_ok(del_tensor_new(&tz, DEL_DTYPE_F32, 2, zs));
    ck_assert_del_ok(del_tensor_new(&gc, DEL_DTYPE_F32, 2, zs));
    ck_assert_del_ok(del_tensor_new(&gk, DEL_DTYPE_F32, 2, zs));
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, b, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_CONSTANT, STEPS, 0.0f));
    ck_assert_del_ok(del_model_set_training(b, 1));
    ck_assert_del_ok(del_model_set_training(teacher, 0));
    for (int s = 0; s < STEPS; s++) {
        int64_t perm[N];
        float ce = 0.0f, kd = 0.0f;
        ck_assert_del_ok(del_permutation(perm, N, 0, (uint64_t)s, UINT64_C(0x6261746368)));
        ck_assert_del_ok(del_dataset_batch(ds, perm, N, mean, stdv, x, y));
        ck_assert_del_ok(del_model_zero_grad(b));
        ck_assert_del_ok(del_model_forward(b, x));
        ck_assert_del_ok(del_model_forward(teacher, x));
        memcpy(del_tensor_data(tz), del_tensor_data(del_model_output(teacher)), N * 3 * sizeof(float));
        ck_assert_del_ok(del_loss_cross_entropy(del_model_output(b), y, &ce, gc));
        ck_assert_del_ok(del_loss_distill(del_model_output(b), tz, t, &kd, gk));
        float *g = del_tensor_data(gc);
        const float *k = del_tensor_data(gk);
        for (int i = 0; i < N * 3; i++)
            g[i] = alpha * k[i] + (1.0f - alpha) * g[i];
        ck_assert_del_ok(del_model_backward(b, gc));
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    ck_assert_int_eq(del_model_num_params(a), del_model_num_params(b));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    /* Without the teacher the same run ends elsewhere. */
    del_model *c = pretrained();
    del_trainer *tc = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tc, c, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_ok(del_trainer_set_batch_size(tc, N));
    ck_assert_del_ok(del_trainer_set_sgd(tc, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_trainer_set_schedule(tc, DEL_SCHEDULE_CONSTANT));
    ck_assert_del_ok(del_trainer_fit(tc, STEPS));
    ck_assert_msg(memcmp(del_model_params(a), del_model_params(c), (size_t)del_model_num_params(a) * 4) != 0,
                  "the teacher had no effect");
    del_optimizer_free(opt);
    del_tensor_free(x);
    del_tensor_free(y);
    del_tensor_free(tz);
    del_tensor_free(gc);
    del_tensor_free(gk);
    del_trainer_free(tr);
    del_trainer_free(tc);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
    del_model_free(teacher);
    del_dataset_free(ds);
}
END_TEST

/* The teacher of the runs with one: a CNN whose batchnorm trains (so its
 * statistics are part of the checkpoint). */
static del_model *bn_teacher(void)
{
    del_model *t = NULL;
    ck_assert_del_ok(del_model_from_spec(&t, "input 1 6 6; conv2d 3 k=3 p=1; batchnorm; relu; flatten; linear 3"));
    ck_assert_del_ok(del_model_init(t, 12));
    return t;
}

/* 6 steps of full fine-tuning (2 of warm-up), in one go or 1 + checkpoint
 * + 5 in a new trainer; with_teacher adds a teacher in training mode with
 * its own normalisation. */
static del_model *finetune_run(int resume, int with_teacher)
{
    const float tmean[1] = {0.5f}, tstd[1] = {0.25f};
    del_model *m = pretrained(), *teacher = with_teacher ? bn_teacher() : NULL;
    del_dataset *ds = task(3, 2);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_ok(del_trainer_set_head_warmup(tr, 2));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 6));
    if (with_teacher) {
        ck_assert_del_ok(del_trainer_add_teacher(tr, teacher, 3.0f, 0.5f));
        ck_assert_del_ok(del_trainer_set_teacher_training(tr, 1));
        ck_assert_del_ok(del_trainer_set_teacher_normalize(tr, tmean, tstd, 1));
    }
    if (!resume) {
        ck_assert_del_ok(del_trainer_fit(tr, 6));
    } else {
        ck_assert_del_ok(del_trainer_fit(tr, 1)); /* inside the warm-up */
        ck_assert_del_ok(del_trainer_save_checkpoint(tr, "finetune.delc"));
        del_trainer_free(tr);
        del_model_free(m);
        m = pretrained();
        /* The warm-up comes back from the checkpoint, and the teacher's
         * settings and statistics (a fresh teacher, plain settings). */
        ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
        if (with_teacher) {
            del_model_free(teacher);
            teacher = bn_teacher();
            ck_assert_del_ok(del_trainer_add_teacher(tr, teacher, 1.0f, 0.9f));
        }
        ck_assert_del_ok(del_trainer_load_checkpoint(tr, "finetune.delc"));
        ck_assert_del_ok(del_trainer_fit(tr, 5));
    }
    del_trainer_free(tr);
    del_dataset_free(ds);
    del_model_free(teacher);
    return m;
}

START_TEST(test_finetune_resumes_bit_exactly_from_a_checkpoint)
{
    del_model *a = finetune_run(0, 0), *b = finetune_run(1, 0);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
    /* A trainer without a teacher refuses this checkpoint of one with. */
    del_model *c = finetune_run(0, 1), *d = finetune_run(1, 1);
    ck_assert_mem_eq(del_model_params(c), del_model_params(d), (size_t)del_model_num_params(c) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(c), del_model_buffers(d), (size_t)del_model_num_buffers(c) * sizeof(float));
    ck_assert_msg(memcmp(del_model_params(a), del_model_params(c), (size_t)del_model_num_params(a) * 4) != 0,
                  "the teacher had no effect");
    {
        del_dataset *three = task(3, 2);
        del_model *e = pretrained(), *teacher = bn_teacher();
        del_trainer *te = NULL;
        ck_assert_del_ok(del_trainer_new_finetune(&te, e, three, 3, DEL_FINETUNE_FULL));
        ck_assert_del_err(del_trainer_load_checkpoint(te, "finetune.delc"), DEL_EINVAL, "with a teacher");
        /* ... and one with a teacher a checkpoint of one without. */
        del_model_free(finetune_run(1, 0)); /* rewrites finetune.delc without a teacher */
        ck_assert_del_ok(del_trainer_add_teacher(te, teacher, 4.0f, 0.9f));
        ck_assert_del_err(del_trainer_load_checkpoint(te, "finetune.delc"), DEL_EINVAL, "without a teacher");
        del_trainer_free(te);
        del_model_free(e);
        del_model_free(teacher);
        del_dataset_free(three);
    }
    del_model_free(c);
    del_model_free(d);
    /* A supervised trainer refuses a fine-tuning checkpoint. */
    del_dataset *ds = task(3, 2);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, a, ds));
    ck_assert_del_err(del_trainer_load_checkpoint(tr, "finetune.delc"), DEL_EINVAL, "finetune trainer");
    del_trainer_free(tr);
    del_dataset_free(ds);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

START_TEST(test_bad_finetune_arguments_change_nothing)
{
    del_model *m = pretrained();
    del_dataset *ds = task(3, 2), *five = task(5, 2);
    const int64_t n = del_model_num_params(m);
    float *before = copy_floats(del_model_params(m), n);
    del_trainer *tr = NULL;
    ck_assert_del_err(del_trainer_new_finetune(&tr, m, five, 3, DEL_FINETUNE_FULL), DEL_EINVAL, "label 3");
    ck_assert_del_err(del_trainer_new_finetune(&tr, m, ds, 0, DEL_FINETUNE_FULL), DEL_EINVAL, "'num_classes'");
    ck_assert_del_err(del_trainer_new_finetune(&tr, m, ds, 3, (del_finetune_mode)7), DEL_EINVAL, "'mode'");
    ck_assert_del_err(del_trainer_new_finetune(&tr, NULL, ds, 3, DEL_FINETUNE_FULL), DEL_EINVAL, "'model'");
    ck_assert_ptr_null(tr);
    ck_assert_int_eq(del_model_num_heads(m), 0);
    ck_assert_int_eq(del_model_num_params(m), n);
    ck_assert_mem_eq(del_model_params(m), before, (size_t)n * sizeof(float));
    del_model *conv_last = NULL;
    ck_assert_del_ok(del_model_from_spec(&conv_last, "input 1 6 6; flatten; linear 4; relu"));
    ck_assert_del_err(del_trainer_new_finetune(&tr, conv_last, ds, 3, DEL_FINETUNE_FULL), DEL_EINVAL,
                      "must end in the linear layer");
    del_model *other = NULL;
    ck_assert_del_ok(del_model_from_spec(&other, "input 1 5 5; flatten; linear 4; relu; linear 2"));
    ck_assert_del_err(del_trainer_new_finetune(&tr, other, ds, 3, DEL_FINETUNE_FULL), DEL_EINVAL, "do not fit");
    /* Settings of the technique only. */
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, five));
    ck_assert_del_err(del_trainer_set_head_warmup(tr, 5), DEL_EINVAL, "does not apply to a supervised trainer");
    ck_assert_del_err(del_trainer_set_backbone_lr_mult(tr, 0.5f), DEL_EINVAL, "does not apply");
    del_trainer_free(tr);
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_LINEAR_PROBE));
    ck_assert_del_err(del_trainer_set_head_warmup(tr, 5), DEL_EINVAL, "linear probe");
    ck_assert_del_err(del_trainer_set_backbone_lr_mult(tr, 0.5f), DEL_EINVAL, "linear probe");
    del_trainer_free(tr);
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_err(del_trainer_set_backbone_lr_mult(tr, INFINITY), DEL_EINVAL, "finite");
    ck_assert_del_err(del_trainer_set_head_warmup(tr, -1), DEL_EINVAL, "'steps'");
    del_trainer_free(tr);
    free(before);
    del_model_free(other);
    del_model_free(conv_last);
    del_model_free(m);
    del_dataset_free(ds);
    del_dataset_free(five);
}
END_TEST

static Suite *finetune_suite(void)
{
    Suite *s = suite_create("finetune");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear_probe_trains_only_the_new_head);
    tcase_add_test(tc, test_full_finetune_updates_the_backbone_at_its_multiplier);
    tcase_add_test(tc, test_head_warmup_keeps_the_backbone_until_it_ends);
    tcase_add_test(tc, test_finetune_with_a_teacher_steps_as_written_by_hand);
    tcase_add_test(tc, test_finetune_resumes_bit_exactly_from_a_checkpoint);
    tcase_add_test(tc, test_bad_finetune_arguments_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char tmpdir[] = "/tmp/del_finetune_XXXXXX";
    return test_run_suite_inside_tmpdir(finetune_suite, tmpdir);
}
