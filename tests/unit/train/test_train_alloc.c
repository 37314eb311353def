/* The trainers under allocation failure (tests/unit/alloc_fail.h): every
 * failing allocation of a constructor, a fit or a step gives DEL_ENOMEM
 * under the public function's name, leaks nothing, and a retry works —
 * a fit whose batch slot was half built (ensure_slots) used to count it
 * and write through its NULL index array on the next fit. */
#include <stdlib.h>
#include <string.h>

#include "alloc_fail.h"
#include "del.h"
#include "testutil.h"

enum { N = 24, SIDE = 6 };

typedef struct trainer_ctx {
    del_dataset *ds, *unlabeled;
    del_model *model, *teacher;
    del_augment *aug;
    del_trainer *tr, *out;
    int kind; /* 0 supervised, 1 finetune, 2 distill, 3 pseudo-label (joint batch), 4 (frozen statistics), 5 consistency */
} trainer_ctx;

static del_dataset *dataset(int labeled)
{
    static uint8_t px[N * SIDE * SIDE];
    static int32_t labels[N];
    for (int i = 0; i < N * SIDE * SIDE; i++)
        px[i] = (uint8_t)((i * 31 + 7) % 256);
    for (int i = 0; i < N; i++)
        labels[i] = labeled ? i % 3 : -1;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, SIDE, SIDE, 1));
    return ds;
}

static trainer_ctx *inputs(int kind)
{
    trainer_ctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->kind = kind;
    c->ds = dataset(1);
    c->unlabeled = dataset(0);
    ck_assert_del_ok(del_model_from_spec(&c->model, "input 1 6 6; conv2d 2 k=3 p=1; batchnorm; relu; flatten; "
                                                    "linear 3"));
    ck_assert_del_ok(del_model_from_spec(&c->teacher, "input 1 6 6; flatten; linear 3"));
    ck_assert_del_ok(del_augment_new(&c->aug));
    ck_assert_del_ok(del_augment_add_random_crop(c->aug, SIDE, SIDE, 1, 0));
    ck_assert_del_ok(del_augment_add_flip_h(c->aug, 0.5f));
    return c;
}

static del_status make(trainer_ctx *c, del_trainer **out)
{
    switch (c->kind) {
    case 0: return del_trainer_new_supervised(out, c->model, c->ds);
    case 1: return del_trainer_new_finetune(out, c->model, c->ds, 3, DEL_FINETUNE_FULL);
    case 2: return del_trainer_new_distill(out, c->model, c->teacher, c->ds, c->unlabeled);
    case 5: return del_trainer_new_consistency(out, c->model, c->ds, c->unlabeled, c->aug, c->aug);
    default: return del_trainer_new_pseudo_label(out, c->model, c->ds, c->unlabeled);
    }
}

/* A trainer ready to fit: a pipeline on its labeled stream, batches
 * built on the calling thread (no prefetch: one allocation order). */
static void *setup_fit(int kind)
{
    trainer_ctx *c = inputs(kind);
    ck_assert_del_ok(make(c, &c->tr));
    ck_assert_del_ok(del_trainer_set_augment(c->tr, c->aug));
    ck_assert_del_ok(del_trainer_set_prefetch(c->tr, 0));
    ck_assert_del_ok(del_trainer_set_batch_size(c->tr, 8));
    ck_assert_del_ok(del_trainer_set_total_steps(c->tr, 4));
    if (kind == 5)
        ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(c->tr, 8));
    if (kind == 3 || kind == 4) { /* the unlabeled batch from the second step on */
        ck_assert_del_ok(del_trainer_set_unlabeled_batch_size(c->tr, 8));
        ck_assert_del_ok(del_trainer_set_pseudo_label_ramp(c->tr, 0, 1, 1.0f));
        ck_assert_del_ok(del_trainer_set_pseudo_label_bn(c->tr, kind == 4 ? DEL_PSEUDO_BN_FROZEN
                                                                          : DEL_PSEUDO_BN_JOINT));
    }
    return c;
}

static void *setup_supervised(void) { return setup_fit(0); }
static void *setup_finetune(void) { return setup_fit(1); }
static void *setup_distill(void) { return setup_fit(2); }
static void *setup_pseudo_joint(void) { return setup_fit(3); }
static void *setup_pseudo_frozen(void) { return setup_fit(4); }
static void *setup_inputs_pseudo(void) { return inputs(3); }
static void *setup_consistency(void) { return setup_fit(5); }
static void *setup_inputs_consistency(void) { return inputs(5); }
static void *setup_inputs_supervised(void) { return inputs(0); }
static void *setup_inputs_finetune(void) { return inputs(1); }
static void *setup_inputs_distill(void) { return inputs(2); }

static void teardown(void *v)
{
    trainer_ctx *c = v;
    del_trainer_free(c->tr);
    del_trainer_free(c->out);
    del_augment_free(c->aug);
    del_model_free(c->model);
    del_model_free(c->teacher);
    del_dataset_free(c->ds);
    del_dataset_free(c->unlabeled);
    free(c);
}

static del_status call_fit(void *v)
{
    return del_trainer_fit(((trainer_ctx *)v)->tr, 2);
}

static del_status call_step(void *v)
{
    float loss = 0.0f;
    return del_trainer_step(((trainer_ctx *)v)->tr, &loss);
}

static del_status call_new(void *v)
{
    trainer_ctx *c = v;
    return make(c, &c->out);
}

/* After a failed fit: the trainer still trains (a half-built slot is built
 * again, not used) and its weights stay finite. */
static void retry_works(void *v)
{
    trainer_ctx *c = v;
    ck_assert_del_ok(del_trainer_fit(c->tr, 2));
    const float *p = del_model_params(c->model);
    for (int64_t i = 0; i < del_model_num_params(c->model); i++)
        ck_assert(p[i] == p[i]);
}

static void out_is_null(void *v)
{
    ck_assert_ptr_null(((trainer_ctx *)v)->out);
}

START_TEST(test_fit_under_allocation_failure_fails_cleanly_and_retries)
{
    static const alloc_fail_case cases[] = {
        {"del_trainer_fit", NULL, setup_supervised, call_fit, retry_works, teardown},
        {"del_trainer_fit", NULL, setup_finetune, call_fit, retry_works, teardown},
        {"del_trainer_fit", NULL, setup_distill, call_fit, retry_works, teardown},
        {"del_trainer_fit", NULL, setup_pseudo_joint, call_fit, retry_works, teardown},
        {"del_trainer_fit", NULL, setup_pseudo_frozen, call_fit, retry_works, teardown},
        {"del_trainer_fit", NULL, setup_consistency, call_fit, retry_works, teardown},
        {"del_trainer_step", NULL, setup_supervised, call_step, retry_works, teardown},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

START_TEST(test_constructors_under_allocation_failure_fail_cleanly)
{
    static const alloc_fail_case cases[] = {
        {"del_trainer_new_supervised", NULL, setup_inputs_supervised, call_new, out_is_null, teardown},
        {"del_trainer_new_finetune", NULL, setup_inputs_finetune, call_new, out_is_null, teardown},
        {"del_trainer_new_distill", NULL, setup_inputs_distill, call_new, out_is_null, teardown},
        {"del_trainer_new_pseudo_label", NULL, setup_inputs_pseudo, call_new, out_is_null, teardown},
        {"del_trainer_new_consistency", NULL, setup_inputs_consistency, call_new, out_is_null, teardown},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("train_alloc");
    TCase *tc = tcase_create("small");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fit_under_allocation_failure_fails_cleanly_and_retries);
    tcase_add_test(tc, test_constructors_under_allocation_failure_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* The library's one-time state (backend, thread pool) is made here,
     * before any armed run, so that runs count only their own blocks; with
     * one thread, so that no pool worker exists when Check forks. */
    del_set_num_threads(1);
    del_dataset *ds = NULL;
    del_model *m = NULL;
    del_trainer *tr = NULL;
    static const uint8_t px[4] = {1, 2, 3, 4};
    static const int32_t labels[1] = {0};
    if (del_dataset_from_arrays(&ds, px, labels, 1, 2, 2, 1) != DEL_OK ||
        del_model_from_spec(&m, "input 1 2 2; conv2d 1 k=1; flatten; linear 2") != DEL_OK ||
        del_trainer_new_supervised(&tr, m, ds) != DEL_OK || del_trainer_fit(tr, 1) != DEL_OK)
        return 1;
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
    return test_run_suite(alloc_suite());
}
