/* Every allocation of a public call may fail: with its k-th allocation
 * failing, for k = 1, 2, ... until the call succeeds, each call returns
 * DEL_ENOMEM with a message naming it, leaves nothing allocated and its
 * inputs and out-params as they were (alloc_fail.h). */
#include <math.h>

#include "alloc_fail.h"

/* ---- shared inputs ---- */

/* A small model with parameters in two layers and a head, p[i] = i / 100. */
static del_model *small_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; conv2d 2 k=3 p=1; relu; flatten; linear 5"));
    ck_assert_del_ok(del_model_add_head(m, "aux", "linear 3"));
    float *p = del_model_params(m);
    for (int64_t i = 0; i < del_model_num_params(m); i++)
        p[i] = (float)i / 100.0f;
    return m;
}

/* What a failed call must leave of a model: its layers, heads, parameters. */
typedef struct {
    int n_layers, n_heads;
    int64_t n_params;
    float *params;
} model_snapshot;

static model_snapshot snapshot(del_model *m)
{
    model_snapshot s = {del_model_num_layers(m), del_model_num_heads(m), del_model_num_params(m), NULL};
    s.params = malloc((size_t)s.n_params * sizeof(float));
    ck_assert_ptr_nonnull(s.params);
    memcpy(s.params, del_model_params(m), (size_t)s.n_params * sizeof(float));
    return s;
}

static void assert_same_model(del_model *m, const model_snapshot *s)
{
    ck_assert_int_eq(del_model_num_layers(m), s->n_layers);
    ck_assert_int_eq(del_model_num_heads(m), s->n_heads);
    ck_assert_int_eq(del_model_num_params(m), s->n_params);
    ck_assert_int_eq(memcmp(del_model_params(m), s->params, (size_t)s->n_params * sizeof(float)), 0);
}

static del_dataset *small_dataset(int64_t n, int channels)
{
    uint8_t *px = malloc((size_t)n * 16 * (size_t)channels);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    ck_assert_ptr_nonnull(px);
    ck_assert_ptr_nonnull(labels);
    for (int64_t i = 0; i < n * 16 * channels; i++)
        px[i] = (uint8_t)(i * 37 % 256);
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int32_t)(i % 5);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, n, 4, 4, channels));
    free(px);
    free(labels);
    return ds;
}

/* A context most cases share: a model (and its snapshot), a dataset, an
 * optimizer, tensors, out-params. */
typedef struct {
    del_model *model;
    model_snapshot snap;
    del_dataset *ds;
    del_optimizer *opt;
    del_augment *aug;
    del_trainer *trainer;
    del_tensor *t, *x, *out_tensor;
    del_model *out_model;
    del_dataset *out_ds, *out_ds2;
    del_optimizer *out_opt;
    del_augment *out_aug;
    del_trainer *out_trainer;
    void *buf;
    size_t size;
    int n_steps;
} ctx;

static ctx *ctx_new(void)
{
    ctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    /* A non-NULL garbage value: a failed call must set out-params to NULL. */
    c->out_tensor = (del_tensor *)c;
    c->out_model = (del_model *)c;
    c->out_ds = c->out_ds2 = (del_dataset *)c;
    c->out_opt = (del_optimizer *)c;
    c->out_aug = (del_augment *)c;
    c->out_trainer = (del_trainer *)c;
    c->buf = c;
    c->size = 12345;
    return c;
}

#define OUT(p) ((void *)(p) == (void *)c ? NULL : (p))

static void ctx_free(void *v)
{
    ctx *c = v;
    del_tensor_free(OUT(c->out_tensor));
    del_model_free(OUT(c->out_model));
    del_dataset_free(OUT(c->out_ds));
    del_dataset_free(OUT(c->out_ds2));
    del_optimizer_free(OUT(c->out_opt));
    del_augment_free(OUT(c->out_aug));
    del_trainer_free(OUT(c->out_trainer));
    if (c->buf != (void *)c)
        del_buffer_free(c->buf);
    del_trainer_free(c->trainer);
    del_optimizer_free(c->opt);
    del_augment_free(c->aug);
    del_tensor_free(c->t);
    del_tensor_free(c->x);
    del_dataset_free(c->ds);
    del_model_free(c->model);
    free(c->snap.params);
    free(c);
}

static void *setup_plain(void)
{
    return ctx_new();
}

static void *setup_model(void)
{
    ctx *c = ctx_new();
    c->model = small_model();
    c->snap = snapshot(c->model);
    return c;
}

/* A model with an optimizer over it, and a batch of 2 inputs. */
static void *setup_model_opt(void)
{
    ctx *c = setup_model();
    ck_assert_del_ok(del_optimizer_new_sgd(&c->opt, c->model, 0.1f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_tensor_new(&c->x, DEL_DTYPE_F32, 4, (const int64_t[]){2, 1, 4, 4}));
    float *x = del_tensor_data(c->x);
    for (int i = 0; i < 32; i++)
        x[i] = (float)i / 32.0f - 0.5f;
    return c;
}

static void *setup_dataset(void)
{
    ctx *c = ctx_new();
    c->ds = small_dataset(20, 1);
    return c;
}

static void *setup_augment(void)
{
    ctx *c = ctx_new();
    ck_assert_del_ok(del_augment_new(&c->aug));
    ck_assert_del_ok(del_augment_add_random_crop(c->aug, 4, 4, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(c->aug, 0.5f));
    c->n_steps = del_augment_num_steps(c->aug);
    c->ds = small_dataset(8, 3);
    return c;
}

static void check_out_tensor_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_tensor);
}

static void check_out_model_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_model);
}

static void check_model_unchanged(void *v)
{
    ctx *c = v;
    assert_same_model(c->model, &c->snap);
}

/* The model is as it was, and an optimizer made before still steps. */
static void check_model_and_optimizer_unchanged(void *v)
{
    ctx *c = v;
    assert_same_model(c->model, &c->snap);
    ck_assert_int_eq(del_optimizer_steps(c->opt), 0);
    ck_assert_del_ok(del_optimizer_step(c->opt));
}

static void check_aug_unchanged(void *v)
{
    ctx *c = v;
    ck_assert_int_eq(del_augment_num_steps(c->aug), c->n_steps);
}

/* ---- core ---- */

static del_status call_tensor_new(void *v)
{
    ctx *c = v;
    return del_tensor_new(&c->out_tensor, DEL_DTYPE_F32, 2, (const int64_t[]){3, 5});
}

static void *setup_tensor(void)
{
    ctx *c = ctx_new();
    ck_assert_del_ok(del_tensor_new(&c->t, DEL_DTYPE_I32, 1, (const int64_t[]){4}));
    for (int i = 0; i < 4; i++)
        ((int32_t *)del_tensor_data(c->t))[i] = 10 + i;
    return c;
}

static del_status call_tensor_copy(void *v)
{
    ctx *c = v;
    return del_tensor_copy(&c->out_tensor, c->t);
}

static void check_tensor_copy(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_tensor);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(((int32_t *)del_tensor_data(c->t))[i], 10 + i);
}

static del_status call_tensor_wrap(void *v)
{
    ctx *c = v;
    static float data[6];
    return del_tensor_wrap(&c->out_tensor, DEL_DTYPE_F32, 1, (const int64_t[]){6}, data);
}

START_TEST(test_core_calls_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_tensor_new", NULL, setup_plain, call_tensor_new, check_out_tensor_null, ctx_free},
        {"del_tensor_copy", NULL, setup_tensor, call_tensor_copy, check_tensor_copy, ctx_free},
        {"del_tensor_wrap", NULL, setup_plain, call_tensor_wrap, check_out_tensor_null, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

/* ---- models ---- */

static del_status call_model_new(void *v)
{
    ctx *c = v;
    return del_model_new(&c->out_model, 3, 8, 8);
}

static del_status call_model_from_spec(void *v)
{
    ctx *c = v;
    return del_model_from_spec(&c->out_model, "input 3 8 8; conv2d 4 k=3 p=1; batchnorm; relu; maxpool 2; "
                                              "residual 4; dropout 0.1; gap; linear 10");
}

/* Out of memory is not "the preset does not fit the input". */
static void check_preset_failure(void *v)
{
    check_out_model_null(v);
    ck_assert_msg(strstr(del_last_error(), "does not fit") == NULL, "%s", del_last_error());
}

static del_status call_model_preset_mlp(void *v)
{
    ctx *c = v;
    return del_model_preset(&c->out_model, "mlp", 1, 28, 28, 10);
}

static del_status call_model_preset_resnet20(void *v)
{
    ctx *c = v;
    return del_model_preset(&c->out_model, "resnet20", 3, 32, 32, 10);
}

static del_status call_add_head(void *v)
{
    ctx *c = v;
    return del_model_add_head(c->model, "second", "linear 4; relu; linear 2");
}

static del_status call_replace_head(void *v)
{
    ctx *c = v;
    return del_model_replace_head(c->model, "aux", "linear 6; relu; linear 3");
}

static del_status call_remove_head(void *v)
{
    ctx *c = v;
    return del_model_remove_head(c->model, "aux");
}

static del_status call_add_layer(void *v)
{
    ctx *c = v;
    return del_model_add_linear(c->model, 7, 1);
}

static void *setup_model_without_head(void)
{
    ctx *c = ctx_new();
    ck_assert_del_ok(del_model_from_spec(&c->model, "input 1 4 4; flatten; linear 6; relu"));
    c->snap = snapshot(c->model);
    return c;
}

static del_status call_model_save_buffer(void *v)
{
    ctx *c = v;
    return del_model_save_buffer(c->model, &c->buf, &c->size);
}

static void check_save_buffer(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->buf);
    ck_assert_uint_eq(c->size, 0);
    assert_same_model(c->model, &c->snap);
}

static void *setup_saved_model(void)
{
    ctx *c = setup_model();
    ck_assert_del_ok(del_model_save_buffer(c->model, &c->buf, &c->size));
    return c;
}

static del_status call_model_load_buffer(void *v)
{
    ctx *c = v;
    return del_model_load_buffer(&c->out_model, c->buf, c->size);
}

START_TEST(test_model_calls_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_model_new", NULL, setup_plain, call_model_new, check_out_model_null, ctx_free},
        {"del_model_from_spec", NULL, setup_plain, call_model_from_spec, check_out_model_null, ctx_free},
        {"del_model_preset", NULL, setup_plain, call_model_preset_mlp, check_preset_failure, ctx_free},
        {"del_model_preset", NULL, setup_plain, call_model_preset_resnet20, check_preset_failure, ctx_free},
        {"del_model_add_linear", NULL, setup_model_without_head, call_add_layer, check_model_unchanged, ctx_free},
        {"del_model_save_buffer", NULL, setup_model, call_model_save_buffer, check_save_buffer, ctx_free},
        {"del_model_load_buffer",
         "src/io/model_file.c lets the messages of del_model_new and del_model_add_* through",
         setup_saved_model, call_model_load_buffer, check_out_model_null, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

/* A failed head change leaves the model as it was, so that an optimizer
 * made before it still steps. */
START_TEST(test_head_changes_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_model_add_head", NULL, setup_model_opt, call_add_head, check_model_and_optimizer_unchanged, ctx_free},
        {"del_model_replace_head", NULL, setup_model_opt, call_replace_head, check_model_and_optimizer_unchanged,
         ctx_free},
        {"del_model_remove_head", NULL, setup_model_opt, call_remove_head, check_model_and_optimizer_unchanged,
         ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

static del_status call_forward(void *v)
{
    ctx *c = v;
    return del_model_forward(c->model, c->x);
}

static void *setup_forward_done(void)
{
    ctx *c = setup_model_opt();
    ck_assert_del_ok(del_model_forward(c->model, c->x));
    return c;
}

static del_status call_backward(void *v)
{
    ctx *c = v;
    return del_model_backward(c->model, del_model_output(c->model));
}

static del_status call_backward_heads(void *v)
{
    ctx *c = v;
    const char *names[1] = {"aux"};
    const del_tensor *grads[1] = {del_model_head_output(c->model, "aux")};
    return del_model_backward_heads(c->model, 1, names, grads);
}

static del_status call_optimizer_new_sgd(void *v)
{
    ctx *c = v;
    return del_optimizer_new_sgd(&c->out_opt, c->model, 0.1f, 0.9f, 1e-4f, 1);
}

static del_status call_optimizer_new_adamw(void *v)
{
    ctx *c = v;
    return del_optimizer_new_adamw(&c->out_opt, c->model, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f);
}

static void check_out_opt_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_opt);
    assert_same_model(c->model, &c->snap);
}

/* A freeze makes the next step rebuild its parameter ranges. */
static void *setup_frozen_step(void)
{
    ctx *c = setup_model_opt();
    ck_assert_del_ok(del_model_freeze(c->model, 0, 0));
    for (int64_t i = 0; i < del_model_num_params(c->model); i++)
        del_model_grads(c->model)[i] = 1.0f;
    return c;
}

static del_status call_optimizer_step(void *v)
{
    ctx *c = v;
    return del_optimizer_step(c->opt);
}

static void check_no_step(void *v)
{
    ctx *c = v;
    assert_same_model(c->model, &c->snap);
    ck_assert_int_eq(del_optimizer_steps(c->opt), 0);
}

START_TEST(test_forward_backward_and_optimizer_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_model_forward", NULL, setup_model_opt, call_forward, check_model_unchanged, ctx_free},
        {"del_model_backward", NULL, setup_forward_done, call_backward, check_model_unchanged, ctx_free},
        {"del_model_backward_heads", NULL, setup_forward_done, call_backward_heads, check_model_unchanged,
         ctx_free},
        {"del_optimizer_new_sgd", NULL, setup_model, call_optimizer_new_sgd, check_out_opt_null, ctx_free},
        {"del_optimizer_new_adamw", NULL, setup_model, call_optimizer_new_adamw, check_out_opt_null, ctx_free},
        {"del_optimizer_step", NULL, setup_frozen_step, call_optimizer_step, check_no_step, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        alloc_fail_run(&cases[i]);
}
END_TEST

/* ---- data ---- */

static del_status call_from_arrays(void *v)
{
    ctx *c = v;
    static const uint8_t px[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const int32_t labels[3] = {0, 1, 0};
    return del_dataset_from_arrays(&c->out_ds, px, labels, 3, 2, 2, 1);
}

static void check_out_ds_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_ds);
}

static del_status call_subset(void *v)
{
    ctx *c = v;
    static const int64_t idx[4] = {3, 1, 3, 0};
    return del_dataset_subset(&c->out_ds, c->ds, idx, 4);
}

static del_status call_split(void *v)
{
    ctx *c = v;
    return del_dataset_split_per_class(&c->out_ds, &c->out_ds2, c->ds, 2);
}

static void check_split(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_ds);
    ck_assert_ptr_null(c->out_ds2);
    ck_assert_int_eq(del_dataset_size(c->ds), 20);
}

START_TEST(test_dataset_calls_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_dataset_from_arrays", NULL, setup_plain, call_from_arrays, check_out_ds_null, ctx_free},
        {"del_dataset_subset", NULL, setup_dataset, call_subset, check_out_ds_null, ctx_free},
        {"del_dataset_split_per_class", NULL, setup_dataset, call_split, check_split, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

/* ---- augmentation ---- */

static del_status call_augment_new(void *v)
{
    ctx *c = v;
    return del_augment_new(&c->out_aug);
}

static void check_out_aug_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_aug);
}

static del_status call_add_op(void *v)
{
    ctx *c = v;
    return del_augment_add_op(c->aug, "rotate", 0.5f, -30.0f, 30.0f);
}

static del_status call_add_randaugment(void *v)
{
    ctx *c = v;
    return del_augment_add_randaugment(c->aug, 2, 9);
}

static del_status call_add_trivialaugment(void *v)
{
    ctx *c = v;
    return del_augment_add_trivialaugment(c->aug);
}

static del_status call_add_cutout(void *v)
{
    ctx *c = v;
    return del_augment_add_cutout(c->aug, 1.0f, 2, 0);
}

static del_status call_add_cutmix(void *v)
{
    ctx *c = v;
    return del_augment_add_cutmix(c->aug, 1.0f, 1.0f);
}

static del_status call_augment_batch(void *v)
{
    ctx *c = v;
    static const int64_t idx[4] = {0, 3, 5, 7};
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
    return del_augment_batch(c->aug, c->ds, idx, 4, 0, 0, mean, std, c->x, NULL, 0);
}

static void *setup_augment_batch(void)
{
    ctx *c = setup_augment();
    ck_assert_del_ok(del_augment_add_randaugment(c->aug, 2, 9));
    ck_assert_del_ok(del_augment_add_cutmix(c->aug, 1.0f, 1.0f));
    ck_assert_del_ok(del_tensor_new(&c->x, DEL_DTYPE_F32, 4, (const int64_t[]){4, 3, 4, 4}));
    c->n_steps = del_augment_num_steps(c->aug);
    return c;
}

static del_status call_augment_image(void *v)
{
    ctx *c = v;
    return del_augment_image(c->aug, c->out_tensor, c->t, 0, 1);
}

static void *setup_augment_image(void)
{
    ctx *c = setup_augment();
    ck_assert_del_ok(del_augment_add_randaugment(c->aug, 2, 9));
    ck_assert_del_ok(del_augment_add_op(c->aug, "rotate", 1.0f, 10.0f, 20.0f));
    c->n_steps = del_augment_num_steps(c->aug);
    ck_assert_del_ok(del_tensor_new(&c->t, DEL_DTYPE_U8, 3, (const int64_t[]){4, 4, 3}));
    ck_assert_del_ok(del_tensor_new(&c->out_tensor, DEL_DTYPE_U8, 3, (const int64_t[]){4, 4, 3}));
    return c;
}

START_TEST(test_augment_calls_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_augment_new", NULL, setup_plain, call_augment_new, check_out_aug_null, ctx_free},
        {"del_augment_add_op", NULL, setup_augment, call_add_op, check_aug_unchanged, ctx_free},
        {"del_augment_add_randaugment", NULL, setup_augment, call_add_randaugment, check_aug_unchanged, ctx_free},
        {"del_augment_add_trivialaugment", NULL, setup_augment, call_add_trivialaugment, check_aug_unchanged, ctx_free},
        {"del_augment_add_cutout", NULL, setup_augment, call_add_cutout, check_aug_unchanged, ctx_free},
        {"del_augment_add_cutmix", NULL, setup_augment, call_add_cutmix, check_aug_unchanged, ctx_free},
        {"del_augment_batch", NULL, setup_augment_batch, call_augment_batch, check_aug_unchanged, ctx_free},
        {"del_augment_image", NULL, setup_augment_image, call_augment_image, check_aug_unchanged, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        alloc_fail_run(&cases[i]);
}
END_TEST

/* ---- files ---- */

static char tmpdir[] = "/tmp/del_alloc_failure_XXXXXX";

static char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static del_status call_model_save(void *v)
{
    ctx *c = v;
    return del_model_save(c->model, tmp_path("m.delm"));
}

static void *setup_model_file(void)
{
    ctx *c = setup_model();
    ck_assert_del_ok(del_model_save(c->model, tmp_path("saved.delm")));
    return c;
}

static del_status call_model_load(void *v)
{
    ctx *c = v;
    return del_model_load(&c->out_model, tmp_path("saved.delm"));
}

static void *setup_png(void)
{
    ctx *c = ctx_new();
    ck_assert_del_ok(del_tensor_new(&c->t, DEL_DTYPE_U8, 3, (const int64_t[]){5, 7, 3}));
    return c;
}

static del_status call_write_png(void *v)
{
    ctx *c = v;
    return del_image_write_png(c->t, tmp_path("img.png"));
}

START_TEST(test_file_calls_fail_cleanly)
{
    const alloc_fail_case cases[] = {
        {"del_model_save", NULL, setup_model, call_model_save, check_model_unchanged, ctx_free},
        {"del_model_load", "src/io/model_file.c lets the messages of del_model_new and del_model_add_* through",
         setup_model_file, call_model_load, check_out_model_null, ctx_free},
        {"del_image_write_png", NULL, setup_png, call_write_png, NULL, ctx_free},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_ge(alloc_fail_run(&cases[i]), 1);
}
END_TEST

/* ---- trainer (src/train uses only the public API) ---- */

static void *setup_trainer_inputs(void)
{
    ctx *c = ctx_new();
    ck_assert_del_ok(del_model_from_spec(&c->model, "input 1 4 4; flatten; linear 5"));
    c->snap = snapshot(c->model);
    c->ds = small_dataset(20, 1);
    return c;
}

static del_status call_trainer_new(void *v)
{
    ctx *c = v;
    return del_trainer_new_supervised(&c->out_trainer, c->model, c->ds);
}

static void check_out_trainer_null(void *v)
{
    ctx *c = v;
    ck_assert_ptr_null(c->out_trainer);
    assert_same_model(c->model, &c->snap);
}

START_TEST(test_trainer_new_fails_cleanly)
{
    const alloc_fail_case c = {"del_trainer_new_supervised", NULL,
                               setup_trainer_inputs, call_trainer_new, check_out_trainer_null, ctx_free};
    ck_assert_int_ge(alloc_fail_run(&c), 1);
}
END_TEST

/* The hook itself: the n-th allocation fails once, counts and the live
 * total follow malloc and free. */
START_TEST(test_hook_fails_the_nth_allocation_once)
{
    long live = del_test_alloc_live();
    del_test_fail_alloc_after(3);
    void *a = malloc(8), *b = calloc(2, 8), *d = malloc(8), *e = malloc(8);
    int fired = del_test_alloc_fired();
    long count = del_test_alloc_count();
    del_test_fail_alloc_after(-1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(fired, 1);
    ck_assert_int_eq(count, 4);
    ck_assert_int_eq(del_test_alloc_live() - live, 3);
    free(a);
    free(b);
    free(e);
    ck_assert_int_eq(del_test_alloc_live() - live, 0);
    /* a failing library call */
    del_tensor *t = NULL;
    del_test_fail_alloc_after(1);
    del_status st = del_tensor_new(&t, DEL_DTYPE_U8, 1, (const int64_t[]){4});
    del_test_fail_alloc_after(-1);
    ck_assert_int_eq(st, DEL_ENOMEM);
    ck_assert_ptr_null(t);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc_failure");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_hook_fails_the_nth_allocation_once);
    tcase_add_test(tc, test_core_calls_fail_cleanly);
    tcase_add_test(tc, test_model_calls_fail_cleanly);
    tcase_add_test(tc, test_head_changes_fail_cleanly);
    tcase_add_test(tc, test_forward_backward_and_optimizer_fail_cleanly);
    tcase_add_test(tc, test_dataset_calls_fail_cleanly);
    tcase_add_test(tc, test_augment_calls_fail_cleanly);
    tcase_add_test(tc, test_file_calls_fail_cleanly);
    tcase_add_test(tc, test_trainer_new_fails_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite_in_tmpdir(alloc_suite, tmpdir);
}
