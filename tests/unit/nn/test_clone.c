/* Copies of models: del_model_clone (a deep, independent copy that trains
 * exactly as the original), del_model_copy_weights (weights between two
 * models of one architecture) and the exponential moving average of
 * weights (del_model_ema_update[_step]) against hand-worked values. */
#include <math.h>

#include "testutil.h"

/* The test's own random numbers (xorshift64*), independent of the library. */
static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static double test_uniform(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    return (double)((test_rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static del_tensor *new_tensor(del_dtype dt, int ndim, const int64_t *shape)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, dt, ndim, shape));
    return t;
}

/* A batch of n images of m's input shape, uniform in [-1, 1). */
static del_tensor *random_input(const del_model *m, int n)
{
    int c, h, w;
    ck_assert_del_ok(del_model_input_shape(m, &c, &h, &w));
    int64_t shape[4] = {n, c, h, w};
    del_tensor *x = new_tensor(DEL_DTYPE_F32, 4, shape);
    float *d = del_tensor_data(x);
    for (int64_t i = 0; i < del_tensor_numel(x); i++)
        d[i] = (float)(test_uniform() * 2.0 - 1.0);
    return x;
}

/* Labels 0, 1, 2, 0, ... (valid for every head below, the smallest has 3 classes). */
static del_tensor *labels(int n)
{
    int64_t shape[1] = {n};
    del_tensor *y = new_tensor(DEL_DTYPE_I32, 1, shape);
    int32_t *d = del_tensor_data(y);
    for (int i = 0; i < n; i++)
        d[i] = i % 3;
    return y;
}

static size_t param_bytes(const del_model *m)
{
    return (size_t)del_model_num_params(m) * sizeof(float);
}

static size_t buffer_bytes(const del_model *m)
{
    return (size_t)del_model_num_buffers(m) * sizeof(float);
}

static float *snapshot(const float *p, size_t bytes)
{
    float *s = malloc(bytes > 0 ? bytes : 1);
    ck_assert_ptr_nonnull(s);
    if (bytes > 0)
        memcpy(s, p, bytes);
    return s;
}

/* One SGD step on cross-entropy against `labels`: with heads, through every
 * head (del_model_backward_heads), else through the output. */
static void train_step(del_model *m, del_optimizer *opt, const del_tensor *x, const del_tensor *y)
{
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_forward(m, x));
    int nh = del_model_num_heads(m), count = nh > 0 ? nh : 1;
    const char *names[4];
    del_tensor *grads[4];
    ck_assert_int_le(count, 4);
    for (int h = 0; h < count; h++) {
        names[h] = nh > 0 ? del_model_head_name(m, h) : NULL;
        del_tensor *out = nh > 0 ? del_model_head_output(m, names[h]) : del_model_output(m);
        int64_t shape[2] = {del_tensor_dim(out, 0), del_tensor_dim(out, 1)};
        grads[h] = new_tensor(DEL_DTYPE_F32, 2, shape);
        float loss;
        ck_assert_del_ok(del_loss_cross_entropy(out, y, &loss, grads[h]));
    }
    if (nh > 0)
        ck_assert_del_ok(del_model_backward_heads(m, count, names, (const del_tensor *const *)grads));
    else
        ck_assert_del_ok(del_model_backward(m, grads[0]));
    ck_assert_del_ok(del_optimizer_step(opt));
    for (int h = 0; h < count; h++)
        del_tensor_free(grads[h]);
}

static del_optimizer *sgd(del_model *m)
{
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.05f, 0.9f, 1e-3f, 0));
    return opt;
}

/* ---- the models ---- */

static del_model *preset(const char *name, int c, int h, int w, int classes)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, name, c, h, w, classes));
    return m;
}

/* Residual blocks with stochastic depth (one draw per image and block). */
static del_model *stochastic_resnet(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 3 8 8; conv2d 8 k=3 p=1 bias=0; batchnorm; relu; "
                                             "residual 8 survival=0.5; residual 16 s=2 survival=0.6; gap; linear 4"));
    return m;
}

/* A backbone with dropout, two heads, a frozen stem (conv, batchnorm, relu)
 * and learning-rate multipliers on the rest. */
static del_model *heads_with_groups(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 8 8; conv2d 4 k=3 p=1 bias=0; batchnorm; relu; maxpool 2; "
                                             "flatten; linear 16; relu; dropout 0.3"));
    ck_assert_del_ok(del_model_add_head(m, "cls", "linear 5"));
    ck_assert_del_ok(del_model_add_head(m, "aux", "linear 8; relu; linear 3"));
    ck_assert_del_ok(del_model_freeze(m, 0, 2));
    ck_assert_del_ok(del_model_set_lr_mult(m, 5, 5, 0.1f));
    int first, count;
    ck_assert_del_ok(del_model_head_layers(m, "aux", &first, &count));
    ck_assert_del_ok(del_model_set_lr_mult(m, first, first + count - 1, 2.5f));
    return m;
}

/* A model that has trained two steps from seed 1234: parameters, running
 * statistics and the random stream all away from a new model's. */
static del_model *trained(del_model *m)
{
    ck_assert_del_ok(del_model_init(m, 1234));
    del_optimizer *opt = sgd(m);
    del_tensor *x = random_input(m, 4), *y = labels(4);
    train_step(m, opt, x, y);
    train_step(m, opt, x, y);
    del_optimizer_free(opt);
    del_tensor_free(x);
    del_tensor_free(y);
    return m;
}

/* ---- clone ---- */

/* Everything del_model_clone promises to copy, compared with the original;
 * and what it promises not to: no gradients, no last forward. */
static void assert_same_model(del_model *a, del_model *b)
{
    ck_assert_ptr_ne(a, b);
    int ca, ha, wa, cb, hb, wb;
    ck_assert_del_ok(del_model_input_shape(a, &ca, &ha, &wa));
    ck_assert_del_ok(del_model_input_shape(b, &cb, &hb, &wb));
    ck_assert(ca == cb && ha == hb && wa == wb);
    ck_assert_int_eq(del_model_num_layers(b), del_model_num_layers(a));
    for (int i = 0; i < del_model_num_layers(a); i++) {
        ck_assert_str_eq(del_model_layer_type(b, i), del_model_layer_type(a, i));
        ck_assert_int_eq(del_model_layer_frozen(b, i), del_model_layer_frozen(a, i));
        ck_assert_float_eq(del_model_layer_lr_mult(b, i), del_model_layer_lr_mult(a, i));
    }
    ck_assert_int_eq(del_model_num_params(b), del_model_num_params(a));
    ck_assert_int_eq(del_model_num_buffers(b), del_model_num_buffers(a));
    if (del_model_num_params(a) > 0) {
        ck_assert_ptr_ne(del_model_params(a), del_model_params(b));
        ck_assert_mem_eq(del_model_params(b), del_model_params(a), param_bytes(a));
    }
    if (del_model_num_buffers(a) > 0) {
        ck_assert_ptr_ne(del_model_buffers(a), del_model_buffers(b));
        ck_assert_mem_eq(del_model_buffers(b), del_model_buffers(a), buffer_bytes(a));
    }
    ck_assert_int_eq(del_model_num_heads(b), del_model_num_heads(a));
    ck_assert_int_eq(del_model_backbone_layers(b), del_model_backbone_layers(a));
    for (int h = 0; h < del_model_num_heads(a); h++) {
        const char *name = del_model_head_name(a, h);
        ck_assert_str_eq(del_model_head_name(b, h), name);
        int fa, na, fb, nb;
        ck_assert_del_ok(del_model_head_layers(a, name, &fa, &na));
        ck_assert_del_ok(del_model_head_layers(b, name, &fb, &nb));
        ck_assert(fa == fb && na == nb);
    }
    ck_assert_int_eq(del_model_is_training(b), del_model_is_training(a));
    ck_assert_ptr_null(del_model_output(b));
    for (int64_t k = 0; k < del_model_num_params(b); k++)
        ck_assert_float_eq(del_model_grads(b)[k], 0.0f);
}

static del_model *clone_of(const del_model *m)
{
    del_model *c = NULL;
    ck_assert_del_ok(del_model_clone(&c, m));
    ck_assert_ptr_nonnull(c);
    return c;
}

static void check_clone_is_equal(del_model *m)
{
    m = trained(m);
    del_model *c = clone_of(m);
    assert_same_model(m, c);
    del_model_free(c);
    del_model_free(m);
}

START_TEST(test_clone_of_fmnist_cnn_has_equal_parameters_and_buffers)
{
    check_clone_is_equal(preset("fmnist-cnn", 1, 28, 28, 10));
}
END_TEST

START_TEST(test_clone_of_resnet20_has_equal_parameters_and_buffers)
{
    check_clone_is_equal(preset("resnet20", 3, 16, 16, 10));
}
END_TEST

START_TEST(test_clone_keeps_heads_groups_and_mode)
{
    del_model *m = trained(heads_with_groups());
    ck_assert_del_ok(del_model_set_training(m, 0));
    del_model *c = clone_of(m);
    assert_same_model(m, c);
    ck_assert_int_eq(del_model_is_training(c), 0);
    ck_assert_int_eq(del_model_layer_frozen(c, 1), 1);
    ck_assert_int_eq(del_model_layer_frozen(c, 3), 0);
    ck_assert_float_eq(del_model_layer_lr_mult(c, 5), 0.1f);
    ck_assert_float_eq(del_model_layer_lr_mult(c, del_model_num_layers(c) - 1), 2.5f);
    ck_assert_str_eq(del_model_head_name(c, 0), "cls");
    ck_assert_str_eq(del_model_head_name(c, 1), "aux");
    del_model_free(c);
    del_model_free(m);
}
END_TEST

START_TEST(test_clone_of_a_model_without_layers)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 3, 4));
    del_model *c = clone_of(m);
    assert_same_model(m, c);
    ck_assert_int_eq(del_model_num_params(c), 0);
    del_model_free(c);
    del_model_free(m);
}
END_TEST

/* Eval-mode outputs (every head's) are the same, bit for bit. */
static void check_eval_outputs_equal(del_model *m)
{
    m = trained(m);
    del_model *c = clone_of(m);
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_set_training(c, 0));
    del_tensor *x = random_input(m, 3);
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_forward(c, x));
    int nh = del_model_num_heads(m);
    for (int h = 0; h < (nh > 0 ? nh : 1); h++) {
        del_tensor *a = nh > 0 ? del_model_head_output(m, del_model_head_name(m, h)) : del_model_output(m);
        del_tensor *b = nh > 0 ? del_model_head_output(c, del_model_head_name(c, h)) : del_model_output(c);
        ck_assert_int_eq(del_tensor_numel(a), del_tensor_numel(b));
        ck_assert_mem_eq(del_tensor_data(b), del_tensor_data(a), del_tensor_nbytes(a));
    }
    del_tensor_free(x);
    del_model_free(c);
    del_model_free(m);
}

START_TEST(test_clone_computes_the_same_eval_outputs)
{
    check_eval_outputs_equal(preset("fmnist-cnn", 1, 28, 28, 10));
    check_eval_outputs_equal(preset("resnet20", 3, 16, 16, 10));
    check_eval_outputs_equal(heads_with_groups());
}
END_TEST

/* Trained on with the same optimizer settings and data, the clone takes
 * exactly the original's steps: the same dropout masks and stochastic-depth
 * draws (the stream is copied where it stands), the same frozen layers and
 * learning-rate multipliers, the same running statistics. */
static void check_training_is_identical(del_model *m)
{
    m = trained(m);
    del_model *c = clone_of(m);
    del_optimizer *om = sgd(m), *oc = sgd(c);
    del_tensor *x = random_input(m, 4), *y = labels(4);
    for (int step = 0; step < 2; step++) {
        train_step(m, om, x, y);
        train_step(c, oc, x, y);
        ck_assert_mem_eq(del_tensor_data(del_model_output(c)), del_tensor_data(del_model_output(m)),
                         del_tensor_nbytes(del_model_output(m)));
        ck_assert_mem_eq(del_model_params(c), del_model_params(m), param_bytes(m));
        ck_assert_mem_eq(del_model_grads(c), del_model_grads(m), param_bytes(m));
        if (del_model_num_buffers(m) > 0)
            ck_assert_mem_eq(del_model_buffers(c), del_model_buffers(m), buffer_bytes(m));
    }
    del_optimizer_free(om);
    del_optimizer_free(oc);
    del_tensor_free(x);
    del_tensor_free(y);
    del_model_free(c);
    del_model_free(m);
}

START_TEST(test_clone_of_fmnist_cnn_trains_identically)
{
    check_training_is_identical(preset("fmnist-cnn", 1, 28, 28, 10));
}
END_TEST

START_TEST(test_clone_with_stochastic_depth_trains_identically)
{
    check_training_is_identical(stochastic_resnet());
    check_training_is_identical(preset("resnet20", 3, 16, 16, 10));
}
END_TEST

START_TEST(test_clone_with_heads_and_groups_trains_identically)
{
    check_training_is_identical(heads_with_groups());
}
END_TEST

/* After cloning, changing either model leaves the other as it was, and the
 * clone outlives the original. */
START_TEST(test_clone_is_independent_of_the_original)
{
    del_model *m = trained(heads_with_groups());
    del_model *c = clone_of(m);
    float *pm = snapshot(del_model_params(m), param_bytes(m));
    float *bm = snapshot(del_model_buffers(m), buffer_bytes(m));
    float *pc = snapshot(del_model_params(c), param_bytes(c));
    float *bc = snapshot(del_model_buffers(c), buffer_bytes(c));
    int layers = del_model_num_layers(m);

    del_model_params(c)[0] = 7.0f;
    del_model_buffers(c)[0] = 7.0f;
    ck_assert_del_ok(del_model_unfreeze(c, 0, -1));
    ck_assert_del_ok(del_model_set_lr_mult(c, 0, -1, 3.0f));
    ck_assert_del_ok(del_model_set_training(c, 0));
    ck_assert_del_ok(del_model_add_head(c, "extra", "linear 2"));
    ck_assert_mem_eq(del_model_params(m), pm, param_bytes(m));
    ck_assert_mem_eq(del_model_buffers(m), bm, buffer_bytes(m));
    ck_assert_int_eq(del_model_layer_frozen(m, 0), 1);
    ck_assert_float_eq(del_model_layer_lr_mult(m, 5), 0.1f);
    ck_assert_int_eq(del_model_is_training(m), 1);
    ck_assert_int_eq(del_model_num_layers(m), layers);
    ck_assert_int_eq(del_model_num_heads(m), 2);
    ck_assert_ptr_null(del_model_head_output(m, "extra"));
    ck_assert_del_ok(del_model_remove_head(c, "extra"));

    /* the original trains and is freed; the clone stays as it was */
    del_model_params(c)[0] = pc[0];
    del_model_buffers(c)[0] = bc[0];
    del_optimizer *opt = sgd(m);
    del_tensor *x = random_input(m, 2), *y = labels(2);
    train_step(m, opt, x, y);
    del_optimizer_free(opt);
    del_model_free(m);
    ck_assert_mem_eq(del_model_params(c), pc, param_bytes(c));
    ck_assert_mem_eq(del_model_buffers(c), bc, buffer_bytes(c));
    ck_assert_del_ok(del_model_forward(c, x));

    free(pm);
    free(bm);
    free(pc);
    free(bc);
    del_tensor_free(x);
    del_tensor_free(y);
    del_model_free(c);
}
END_TEST

START_TEST(test_clone_refuses_null_arguments)
{
    del_model *m = preset("mlp", 1, 4, 4, 3);
    del_model *c = m;
    ck_assert_del_err(del_model_clone(NULL, m), DEL_EINVAL, "del_model_clone: 'out'");
    ck_assert_del_err(del_model_clone(&c, NULL), DEL_EINVAL, "del_model_clone: 'model'");
    ck_assert_ptr_null(c);
    del_model_free(m);
}
END_TEST

/* ---- copy_weights ---- */

START_TEST(test_copy_weights_into_a_fresh_model_of_the_same_preset_gives_the_same_outputs)
{
    del_model *src = trained(preset("fmnist-cnn", 1, 28, 28, 10));
    del_model *dst = preset("fmnist-cnn", 1, 28, 28, 10);
    ck_assert_del_ok(del_model_init(dst, 99));
    ck_assert_del_ok(del_model_freeze(dst, 0, 5));
    ck_assert_del_ok(del_model_set_lr_mult(dst, -1, -1, 0.5f));
    ck_assert_del_ok(del_model_copy_weights(dst, src));
    ck_assert_mem_eq(del_model_params(dst), del_model_params(src), param_bytes(src));
    ck_assert_mem_eq(del_model_buffers(dst), del_model_buffers(src), buffer_bytes(src));
    /* dst's groups and mode are its own */
    ck_assert_int_eq(del_model_layer_frozen(dst, 5), 1);
    ck_assert_int_eq(del_model_layer_frozen(src, 5), 0);
    ck_assert_float_eq(del_model_layer_lr_mult(dst, -1 + del_model_num_layers(dst)), 0.5f);

    ck_assert_del_ok(del_model_set_training(src, 0));
    ck_assert_del_ok(del_model_set_training(dst, 0));
    del_tensor *x = random_input(src, 3);
    ck_assert_del_ok(del_model_forward(src, x));
    ck_assert_del_ok(del_model_forward(dst, x));
    ck_assert_mem_eq(del_tensor_data(del_model_output(dst)), del_tensor_data(del_model_output(src)),
                     del_tensor_nbytes(del_model_output(src)));
    /* onto itself: nothing happens */
    ck_assert_del_ok(del_model_copy_weights(src, src));
    ck_assert_mem_eq(del_model_params(dst), del_model_params(src), param_bytes(src));
    del_tensor_free(x);
    del_model_free(src);
    del_model_free(dst);
}
END_TEST

static del_model *spec_model(const char *spec)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, spec));
    return m;
}

/* dst of another architecture: DEL_EINVAL naming the first difference, and
 * dst untouched. */
static void check_copy_refused(del_model *dst, del_model *src, const char *needle)
{
    float *p = snapshot(del_model_params(dst), param_bytes(dst));
    float *b = snapshot(del_model_buffers(dst), buffer_bytes(dst));
    ck_assert_del_err(del_model_copy_weights(dst, src), DEL_EINVAL, needle);
    ck_assert_int_eq(strncmp(del_last_error(), "del_model_copy_weights: ", 24), 0);
    ck_assert_mem_eq(del_model_params(dst), p, param_bytes(dst));
    if (buffer_bytes(dst) > 0)
        ck_assert_mem_eq(del_model_buffers(dst), b, buffer_bytes(dst));
    free(p);
    free(b);
    del_model_free(dst);
    del_model_free(src);
}

START_TEST(test_copy_weights_into_another_architecture_is_refused)
{
    check_copy_refused(preset("fmnist-cnn", 1, 28, 28, 5), preset("fmnist-cnn", 1, 28, 28, 10),
                       "layer 18 (linear) differs: out 10 in 'src', 5 in 'dst'");
    check_copy_refused(preset("mlp", 1, 32, 32, 10), preset("mlp", 1, 28, 28, 10),
                       "'src' takes input 1 x 28 x 28, 'dst' takes 1 x 32 x 32");
    check_copy_refused(preset("resnet20", 3, 16, 16, 10), preset("fmnist-cnn", 3, 16, 16, 10),
                       "'src' has 19 layers, 'dst' has 14");
    check_copy_refused(spec_model("input 1 4 4; flatten; linear 3; dropout 0.5; linear 2"),
                       spec_model("input 1 4 4; flatten; linear 3; relu; linear 2"),
                       "layer 2 is relu in 'src', dropout in 'dst'");
    check_copy_refused(spec_model("input 1 4 4; flatten; dropout 0.25; linear 2"),
                       spec_model("input 1 4 4; flatten; dropout 0.5; linear 2"),
                       "layer 1 (dropout) differs: p 0.5 in 'src', 0.25 in 'dst'");

    del_model *a = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    del_model *b = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    ck_assert_del_ok(del_model_split_head(a, "cls", -1));
    check_copy_refused(b, a, "the number of heads differs: 1 in 'src', 0 in 'dst'");
    a = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    b = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    ck_assert_del_ok(del_model_split_head(a, "cls", -1));
    ck_assert_del_ok(del_model_split_head(b, "new", -1));
    check_copy_refused(b, a, "head 0 is 'cls' in 'src', 'new' in 'dst'");
    a = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    b = spec_model("input 1 4 4; flatten; linear 3; relu; linear 2");
    ck_assert_del_ok(del_model_split_head(a, "cls", -1));
    ck_assert_del_ok(del_model_split_head(b, "cls", -3));
    check_copy_refused(b, a, "head 'cls' is layers 3..3 in 'src', 1..3 in 'dst'");
}
END_TEST

START_TEST(test_copy_weights_refuses_null_arguments)
{
    del_model *m = preset("mlp", 1, 4, 4, 3);
    ck_assert_del_err(del_model_copy_weights(NULL, m), DEL_EINVAL, "del_model_copy_weights: 'dst'");
    ck_assert_del_err(del_model_copy_weights(m, NULL), DEL_EINVAL, "del_model_copy_weights: 'src'");
    del_model_free(m);
}
END_TEST

/* ---- EMA ---- */

/* flatten, linear 2 -> 1 with bias: three parameters (w0, w1, b). */
static del_model *three_params(float a, float b, float c)
{
    del_model *m = spec_model("input 1 1 2; flatten; linear 1");
    ck_assert_int_eq(del_model_num_params(m), 3);
    float *p = del_model_params(m);
    p[0] = a;
    p[1] = b;
    p[2] = c;
    return m;
}

static void assert_params_near(del_model *m, double a, double b, double c)
{
    const float *p = del_model_params(m);
    double want[3] = {a, b, c};
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(p[k] - want[k]) <= 1e-6 * (1.0 + fabs(want[k])), "param %d: %.9g, want %.9g", k,
                      (double)p[k], want[k]);
}

/* e0 = (1, 2, 3), p = (0, 10, -4), decay 0.9:
 *   e1 = 0.9 e0 + 0.1 p = (0.9, 2.8, 2.3)
 *   e2 = 0.9 e1 + 0.1 p = (0.81, 3.52, 1.67) = 0.81 e0 + 0.19 p (closed form);
 * then p' = (2, 0, 1): e3 = 0.9 e2 + 0.1 p' = (0.929, 3.168, 1.603). */
START_TEST(test_ema_update_matches_hand_worked_values)
{
    del_model *ema = three_params(1, 2, 3), *m = three_params(0, 10, -4);
    ck_assert_del_ok(del_model_ema_update(ema, m, 0.9f));
    assert_params_near(ema, 0.9, 2.8, 2.3);
    ck_assert_del_ok(del_model_ema_update(ema, m, 0.9f));
    assert_params_near(ema, 0.81, 3.52, 1.67);
    float *p = del_model_params(m);
    p[0] = 2;
    p[1] = 0;
    p[2] = 1;
    ck_assert_del_ok(del_model_ema_update(ema, m, 0.9f));
    assert_params_near(ema, 0.929, 3.168, 1.603);
    /* the model is only read */
    ck_assert(p[0] == 2 && p[1] == 0 && p[2] == 1);
    del_model_free(ema);
    del_model_free(m);
}
END_TEST

/* A parameter that does not move (a frozen layer's) stays bit for bit. */
START_TEST(test_ema_of_an_unchanged_parameter_stays_exact)
{
    del_model *m = trained(preset("fmnist-cnn", 1, 28, 28, 10));
    del_model *ema = clone_of(m);
    for (int i = 0; i < 20; i++)
        ck_assert_del_ok(del_model_ema_update(ema, m, 0.999f));
    ck_assert_mem_eq(del_model_params(ema), del_model_params(m), param_bytes(m));
    del_model_free(ema);
    del_model_free(m);
}
END_TEST

START_TEST(test_ema_copies_batchnorm_statistics)
{
    del_model *m = trained(heads_with_groups());
    del_model *ema = heads_with_groups();
    for (int64_t k = 0; k < del_model_num_buffers(m); k++) {
        del_model_buffers(m)[k] = 3.0f + (float)k;
        del_model_buffers(ema)[k] = 1.0f;
    }
    float *p = snapshot(del_model_params(ema), param_bytes(ema));
    ck_assert_del_ok(del_model_ema_update(ema, m, 0.5f));
    for (int64_t k = 0; k < del_model_num_buffers(m); k++)
        ck_assert_float_eq(del_model_buffers(ema)[k], 3.0f + (float)k);
    /* while the parameters moved half way */
    for (int64_t k = 0; k < del_model_num_params(m); k++)
        ck_assert_float_eq(del_model_params(ema)[k], (float)(0.5 * p[k] + 0.5 * del_model_params(m)[k]));
    free(p);
    del_model_free(ema);
    del_model_free(m);
}
END_TEST

/* decay 0 copies the parameters exactly (even from an infinite average),
 * decay 1 leaves them exactly as they are (even against a NaN model). */
START_TEST(test_ema_decay_0_copies_and_decay_1_keeps)
{
    del_model *ema = three_params(INFINITY, 1e30f, 3), *m = three_params(0.1f, 1e-30f, -4);
    ck_assert_del_ok(del_model_ema_update(ema, m, 0.0f));
    ck_assert_mem_eq(del_model_params(ema), del_model_params(m), param_bytes(m));
    del_model_params(m)[0] = NAN;
    del_model_params(m)[1] = INFINITY;
    float *before = snapshot(del_model_params(ema), param_bytes(ema));
    ck_assert_del_ok(del_model_ema_update(ema, m, 1.0f));
    ck_assert_mem_eq(del_model_params(ema), before, param_bytes(ema));
    free(before);
    del_model_free(ema);
    del_model_free(m);
}
END_TEST

START_TEST(test_ema_refuses_bad_decay_mismatch_and_null_leaving_ema_unchanged)
{
    del_model *ema = three_params(1, 2, 3), *m = three_params(0, 10, -4);
    float bad[] = {-0.1f, 1.0001f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_del_err(del_model_ema_update(ema, m, bad[i]), DEL_EINVAL,
                          "del_model_ema_update: 'decay' must be in [0, 1]");
        ck_assert_del_err(del_model_ema_update_step(ema, m, bad[i], 3), DEL_EINVAL,
                          "del_model_ema_update_step: 'decay' must be in [0, 1]");
    }
    assert_params_near(ema, 1, 2, 3);
    del_model *other = spec_model("input 1 1 2; flatten; linear 2");
    ck_assert_del_err(del_model_ema_update(other, m, 0.9f), DEL_EINVAL,
                      "del_model_ema_update: layer 1 (linear) differs: out 1 in 'model', 2 in 'ema'");
    ck_assert_del_err(del_model_ema_update_step(other, m, 0.9f, 0), DEL_EINVAL, "out 1 in 'model', 2 in 'ema'");
    ck_assert_del_err(del_model_ema_update(ema, ema, 0.9f), DEL_EINVAL, "'ema' and 'model' must be two models");
    ck_assert_del_err(del_model_ema_update(NULL, m, 0.9f), DEL_EINVAL, "del_model_ema_update: 'ema'");
    ck_assert_del_err(del_model_ema_update(ema, NULL, 0.9f), DEL_EINVAL, "del_model_ema_update: 'model'");
    ck_assert_del_err(del_model_ema_update_step(NULL, m, 0.9f, 0), DEL_EINVAL, "del_model_ema_update_step: 'ema'");
    ck_assert_del_err(del_model_ema_update_step(ema, NULL, 0.9f, 0), DEL_EINVAL, "del_model_ema_update_step: 'model'");
    ck_assert_del_err(del_model_ema_update_step(ema, m, 0.9f, -1), DEL_EINVAL,
                      "del_model_ema_update_step: 'step' must be >= 0, got -1");
    assert_params_near(ema, 1, 2, 3);
    del_model_free(other);
    del_model_free(ema);
    del_model_free(m);
}
END_TEST

/* The warm-up: step 0 uses 0.1, step 8 0.5, step 80 0.9 (below decay
 * 0.999); and over 2000 steps each update equals del_model_ema_update with
 * min(decay, (1 + t) / (10 + t)). */
START_TEST(test_ema_warmup_follows_min_decay_one_plus_t_over_ten_plus_t)
{
    del_model *ema = three_params(1, 2, 3), *m = three_params(0, 0, 0);
    ck_assert_del_ok(del_model_ema_update_step(ema, m, 0.999f, 0));
    assert_params_near(ema, 0.1, 0.2, 0.3);
    ck_assert_del_ok(del_model_ema_update_step(ema, m, 0.999f, 8));
    assert_params_near(ema, 0.05, 0.1, 0.15);
    ck_assert_del_ok(del_model_ema_update_step(ema, m, 0.999f, 80));
    assert_params_near(ema, 0.045, 0.09, 0.135);
    /* past the warm-up, decay itself: (1 + t) / (10 + t) > 0.5 from t = 9 */
    ck_assert_del_ok(del_model_ema_update_step(ema, m, 0.5f, 80));
    assert_params_near(ema, 0.0225, 0.045, 0.0675);
    del_model_free(ema);
    del_model_free(m);

    del_model *a = three_params(1, 2, 3), *b = three_params(1, 2, 3), *x = three_params(0, 0, 0);
    for (int64_t t = 0; t < 2000; t++) {
        float *p = del_model_params(x);
        for (int k = 0; k < 3; k++)
            p[k] = (float)(test_uniform() * 4.0 - 2.0);
        float warm = (float)((1.0 + (double)t) / (10.0 + (double)t));
        ck_assert_del_ok(del_model_ema_update_step(a, x, 0.99f, t));
        ck_assert_del_ok(del_model_ema_update(b, x, warm < 0.99f ? warm : 0.99f));
        ck_assert_mem_eq(del_model_params(a), del_model_params(b), param_bytes(a));
    }
    /* a step far beyond any run */
    ck_assert_del_ok(del_model_ema_update_step(a, x, 0.99f, INT64_MAX));
    ck_assert_del_ok(del_model_ema_update(b, x, 0.99f));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), param_bytes(a));
    del_model_free(a);
    del_model_free(b);
    del_model_free(x);
}
END_TEST

START_TEST(test_ema_does_not_depend_on_the_thread_count)
{
    del_model *m = trained(preset("fmnist-cnn", 1, 28, 28, 10));
    del_model *e1 = preset("fmnist-cnn", 1, 28, 28, 10), *e4 = clone_of(e1);
    int threads = del_get_num_threads();
    ck_assert_del_ok(del_set_num_threads(1));
    ck_assert_del_ok(del_model_ema_update_step(e1, m, 0.999f, 5));
    ck_assert_del_ok(del_set_num_threads(4));
    ck_assert_del_ok(del_model_ema_update_step(e4, m, 0.999f, 5));
    ck_assert_del_ok(del_set_num_threads(threads));
    ck_assert_mem_eq(del_model_params(e1), del_model_params(e4), param_bytes(m));
    del_model_free(e1);
    del_model_free(e4);
    del_model_free(m);
}
END_TEST

static Suite *clone_suite(void)
{
    Suite *s = suite_create("nn_clone");
    TCase *tc = tcase_create("clone");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_clone_of_fmnist_cnn_has_equal_parameters_and_buffers);
    tcase_add_test(tc, test_clone_of_resnet20_has_equal_parameters_and_buffers);
    tcase_add_test(tc, test_clone_keeps_heads_groups_and_mode);
    tcase_add_test(tc, test_clone_of_a_model_without_layers);
    tcase_add_test(tc, test_clone_computes_the_same_eval_outputs);
    tcase_add_test(tc, test_clone_of_fmnist_cnn_trains_identically);
    tcase_add_test(tc, test_clone_with_stochastic_depth_trains_identically);
    tcase_add_test(tc, test_clone_with_heads_and_groups_trains_identically);
    tcase_add_test(tc, test_clone_is_independent_of_the_original);
    tcase_add_test(tc, test_clone_refuses_null_arguments);
    suite_add_tcase(s, tc);
    TCase *cw = tcase_create("copy_weights");
    tcase_set_timeout(cw, 60);
    tcase_add_test(cw, test_copy_weights_into_a_fresh_model_of_the_same_preset_gives_the_same_outputs);
    tcase_add_test(cw, test_copy_weights_into_another_architecture_is_refused);
    tcase_add_test(cw, test_copy_weights_refuses_null_arguments);
    suite_add_tcase(s, cw);
    TCase *ema = tcase_create("ema");
    tcase_set_timeout(ema, 60);
    tcase_add_test(ema, test_ema_update_matches_hand_worked_values);
    tcase_add_test(ema, test_ema_of_an_unchanged_parameter_stays_exact);
    tcase_add_test(ema, test_ema_copies_batchnorm_statistics);
    tcase_add_test(ema, test_ema_decay_0_copies_and_decay_1_keeps);
    tcase_add_test(ema, test_ema_refuses_bad_decay_mismatch_and_null_leaving_ema_unchanged);
    tcase_add_test(ema, test_ema_warmup_follows_min_decay_one_plus_t_over_ten_plus_t);
    tcase_add_test(ema, test_ema_does_not_depend_on_the_thread_count);
    suite_add_tcase(s, ema);
    return s;
}

int main(void)
{
    return test_run_suite(clone_suite());
}
