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
static del_model *finetune_run(int resume)
{
    del_model *m = pretrained();
    del_dataset *ds = task(3, 2);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
    ck_assert_del_ok(del_trainer_set_head_warmup(tr, 2));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 6));
    if (!resume) {
        ck_assert_del_ok(del_trainer_fit(tr, 6));
    } else {
        ck_assert_del_ok(del_trainer_fit(tr, 1)); /* inside the warm-up */
        ck_assert_del_ok(del_trainer_save_checkpoint(tr, "finetune.delc"));
        del_trainer_free(tr);
        del_model_free(m);
        m = pretrained();
        /* The warm-up comes back from the checkpoint. */
        ck_assert_del_ok(del_trainer_new_finetune(&tr, m, ds, 3, DEL_FINETUNE_FULL));
        ck_assert_del_ok(del_trainer_load_checkpoint(tr, "finetune.delc"));
        ck_assert_del_ok(del_trainer_fit(tr, 5));
    }
    del_trainer_free(tr);
    del_dataset_free(ds);
    return m;
}

START_TEST(test_finetune_resumes_bit_exactly_from_a_checkpoint)
{
    del_model *a = finetune_run(0), *b = finetune_run(1);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), (size_t)del_model_num_params(a) * sizeof(float));
    ck_assert_mem_eq(del_model_buffers(a), del_model_buffers(b), (size_t)del_model_num_buffers(a) * sizeof(float));
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
