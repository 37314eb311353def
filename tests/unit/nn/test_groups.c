/* Parameter groups: frozen layers (no gradients, no optimizer updates,
 * batchnorm on running statistics) and learning-rate multipliers, against
 * hand-worked optimizer steps, naive batchnorm formulas and finite
 * differences. */
#include <math.h>

#include "nn/model_internal.h"
#include "testutil.h"

/* The test's own random numbers (xorshift64*), independent of the library. */
static uint64_t test_rng_state = 0x2545f4914f6cdd1dull;

static double test_uniform(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    return (double)((test_rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static del_tensor *new_tensor(int ndim, int64_t a, int64_t b, int64_t c, int64_t d, del_dtype dt)
{
    int64_t shape[4] = {a, b, c, d};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, dt, ndim, shape));
    return t;
}

static del_tensor *random_input(int n, int c, int h, int w)
{
    del_tensor *x = new_tensor(4, n, c, h, w, DEL_DTYPE_F32);
    float *d = del_tensor_data(x);
    for (int64_t i = 0; i < del_tensor_numel(x); i++)
        d[i] = (float)(test_uniform() * 2.0 - 1.0);
    return x;
}

/* flatten, linear 1 -> 1 (bias), linear 1 -> 1 (bias): layers 1 and 2 own
 * parameters 0-1 and 2-3, all set to 1 with gradient 0.5 (as test_optim). */
static del_model *two_linear_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 1));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, 1, 1));
    ck_assert_del_ok(del_model_add_linear(m, 1, 1));
    ck_assert_int_eq(del_model_num_params(m), 4);
    for (int i = 0; i < 4; i++) {
        del_model_params(m)[i] = 1.0f;
        del_model_grads(m)[i] = 0.5f;
    }
    return m;
}

START_TEST(test_new_layers_are_trainable_at_unit_lr)
{
    del_model *m = two_linear_model();
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(del_model_layer_frozen(m, i), 0);
        ck_assert_float_eq(del_model_layer_lr_mult(m, i), 1.0f);
    }
    ck_assert_del_ok(del_model_freeze(m, 0, -2));
    ck_assert_int_eq(del_model_layer_frozen(m, 0), 1);
    ck_assert_int_eq(del_model_layer_frozen(m, 1), 1);
    ck_assert_int_eq(del_model_layer_frozen(m, 2), 0);
    ck_assert_del_ok(del_model_unfreeze(m, -2, -2));
    ck_assert_int_eq(del_model_layer_frozen(m, 1), 0);
    ck_assert_int_eq(del_model_layer_frozen(m, 0), 1);
    /* out of range queries answer 0 */
    ck_assert_int_eq(del_model_layer_frozen(m, 3), 0);
    ck_assert_int_eq(del_model_layer_frozen(NULL, 0), 0);
    ck_assert_float_eq(del_model_layer_lr_mult(m, -1), 0.0f);
    del_model_free(m);
}
END_TEST

/* lr 0.1, momentum 0.9, wd 0.01, p = 1, g = 0.5 on the trainable layer:
 * g1 = 0.51, v1 = 0.51, p = 0.949; g2 = 0.5 + 0.00949 = 0.50949,
 * v2 = 0.459 + 0.50949 = 0.96849, p = 0.949 - 0.096849 = 0.852151.
 * Once unfrozen, the other layer starts from zero momentum (as if it had
 * never been stepped): g = 0.51, v = 0.51, p = 0.949. */
START_TEST(test_frozen_layer_keeps_params_and_momentum_under_sgd)
{
    del_model *m = two_linear_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_model_freeze(m, 1, 1));
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.9f, 0.01f, 0));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_del_ok(del_optimizer_step(o));
    float *p = del_model_params(m);
    ck_assert_float_eq(p[0], 1.0f);
    ck_assert_float_eq(p[1], 1.0f);
    ck_assert_float_eq_tol(p[2], 0.852151f, 1e-6f);
    ck_assert_float_eq_tol(p[3], 0.852151f, 1e-6f);
    ck_assert_del_ok(del_model_unfreeze(m, 1, 1));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(p[0], 0.949f, 1e-6f);
    ck_assert_float_eq_tol(p[1], 0.949f, 1e-6f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* A layer frozen after the optimizer was made is left alone from the next
 * step on. AdamW step 1 with lr 0.1, wd 0.01, g = 0.5: p = 0.999, then
 * p -= 0.1 * 0.5 / (0.5 + 1e-8) -> 0.899. */
START_TEST(test_frozen_layer_skips_adamw_update_and_decay)
{
    del_model *m = two_linear_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f));
    ck_assert_del_ok(del_model_freeze(m, 2, 2));
    ck_assert_del_ok(del_optimizer_step(o));
    float *p = del_model_params(m);
    ck_assert_float_eq_tol(p[0], 0.899f, 1e-6f);
    ck_assert_float_eq_tol(p[1], 0.899f, 1e-6f);
    ck_assert_float_eq(p[2], 1.0f);
    ck_assert_float_eq(p[3], 1.0f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* Plain SGD, lr 0.5, g 0.5: the unscaled layer moves by 0.25, the one at
 * 0.1x by 0.025, i.e. exactly a tenth. */
START_TEST(test_lr_mult_scales_the_sgd_update)
{
    del_model *m = two_linear_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_model_set_lr_mult(m, 1, 1, 0.1f));
    ck_assert_float_eq(del_model_layer_lr_mult(m, 1), 0.1f);
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.5f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_step(o));
    float *p = del_model_params(m);
    float scaled = 1.0f - p[0], plain = 1.0f - p[2];
    ck_assert_float_eq_tol(plain, 0.25f, 1e-7f);
    ck_assert_float_eq_tol(scaled, 0.025f, 1e-7f);
    ck_assert_float_eq_tol(scaled / plain, 0.1f, 1e-6f);
    /* a later change applies from the next step */
    ck_assert_del_ok(del_model_set_lr_mult(m, 0, -1, 2.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(p[0], 0.975f - 0.5f, 1e-6f);
    ck_assert_float_eq_tol(p[2], 0.75f - 0.5f, 1e-6f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* Frozen gradients (here set to 100 by hand) do not count: the norm is
 * that of the trainable ones, sqrt(2 * 0.5^2). */
START_TEST(test_clip_norm_measures_trainable_gradients_only)
{
    del_model *m = two_linear_model();
    del_model_grads(m)[0] = 100.0f;
    del_model_grads(m)[1] = 100.0f;
    ck_assert_del_ok(del_model_freeze(m, 1, 1));
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 10.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_double_eq_tol(del_optimizer_grad_norm(o), sqrt(0.5), 1e-6);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

START_TEST(test_bad_ranges_are_rejected)
{
    del_model *m = two_linear_model();
    ck_assert_del_err(del_model_freeze(NULL, 0, 0), DEL_EINVAL, "model");
    ck_assert_del_err(del_model_freeze(m, 3, 3), DEL_EINVAL, "'first'");
    ck_assert_del_err(del_model_freeze(m, 0, 3), DEL_EINVAL, "'last'");
    ck_assert_del_err(del_model_freeze(m, -4, 0), DEL_EINVAL, "'first'");
    ck_assert_del_err(del_model_unfreeze(m, 2, 1), DEL_EINVAL, "must not come after");
    ck_assert_del_err(del_model_unfreeze(m, -1, 0), DEL_EINVAL, "must not come after");
    ck_assert_del_err(del_model_set_lr_mult(m, 0, 5, 1.0f), DEL_EINVAL, "'last'");
    ck_assert_del_err(del_model_set_lr_mult(m, 0, 0, 0.0f), DEL_EINVAL, "'mult'");
    ck_assert_del_err(del_model_set_lr_mult(m, 0, 0, -1.0f), DEL_EINVAL, "'mult'");
    ck_assert_del_err(del_model_set_lr_mult(m, 0, 0, NAN), DEL_EINVAL, "'mult'");
    ck_assert_del_err(del_model_set_lr_mult(m, 0, 0, INFINITY), DEL_EINVAL, "'mult'");
    /* nothing changed */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(del_model_layer_frozen(m, i), 0);
        ck_assert_float_eq(del_model_layer_lr_mult(m, i), 1.0f);
    }
    del_model *empty = NULL;
    ck_assert_del_ok(del_model_new(&empty, 1, 2, 2));
    ck_assert_del_err(del_model_freeze(empty, 0, -1), DEL_EINVAL, "no layers");
    del_model_free(empty);
    del_model_free(m);
}
END_TEST

/* Runs one training-mode forward of x through m (batchnorm at layer 0
 * still trainable), so that its running statistics move away from 0 / 1,
 * and returns them as PyTorch computes them, in double: mean 0.1 * batch
 * mean, var 0.9 + 0.1 * unbiased batch variance. */
static void warm_batchnorm(del_model *m, const del_tensor *x, double *rmean, double *rvar)
{
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x));
    int n = (int)del_tensor_dim(x, 0), c = (int)del_tensor_dim(x, 1);
    int hw = (int)(del_tensor_dim(x, 2) * del_tensor_dim(x, 3));
    const float *d = del_tensor_data((del_tensor *)x);
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0, ss = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++)
                s += d[((int64_t)i * c + ch) * hw + k];
        double mean = s / (n * hw);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                double v = d[((int64_t)i * c + ch) * hw + k] - mean;
                ss += v * v;
            }
        rmean[ch] = 0.1 * mean;
        rvar[ch] = 0.9 + 0.1 * ss / (n * hw - 1);
    }
}

/* A frozen batchnorm (gamma 1, beta 0) in training mode computes
 * (x - running_mean) / sqrt(running_var + eps), as in evaluation mode, bit
 * for bit, and a training forward leaves the running statistics alone. */
static void check_frozen_batchnorm_forward(int relu)
{
    enum { N = 3, C = 2, H = 2, W = 2 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, C, H, W));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    if (relu)
        ck_assert_del_ok(del_model_add_relu(m));
    del_tensor *x0 = random_input(N, C, H, W), *x1 = random_input(N, C, H, W);
    double rmean[C], rvar[C];
    warm_batchnorm(m, x0, rmean, rvar);
    ck_assert_del_ok(del_model_freeze(m, 0, -1));

    ck_assert_del_ok(del_model_forward(m, x1));
    del_tensor *frozen = NULL;
    ck_assert_del_ok(del_tensor_copy(&frozen, del_model_output(m)));
    const float *xs = del_tensor_data(x1), *y = del_tensor_data(frozen);
    for (int i = 0; i < N * C * H * W; i++) {
        int ch = (i / (H * W)) % C;
        double want = (xs[i] - rmean[ch]) / sqrt(rvar[ch] + 1e-5);
        if (relu && want < 0.0)
            want = 0.0;
        ck_assert_double_eq_tol(y[i], want, 1e-5);
    }
    /* another training forward must not move the statistics */
    ck_assert_del_ok(del_model_forward(m, x0));
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x1));
    ck_assert_mem_eq(del_tensor_data(del_model_output(m)), y, del_tensor_nbytes(frozen));
    ck_assert_mem_eq(del_model_params(m), ((const float[]){1, 1, 0, 0}), 4 * sizeof(float));

    del_tensor_free(frozen);
    del_tensor_free(x0);
    del_tensor_free(x1);
    del_model_free(m);
}

START_TEST(test_frozen_batchnorm_trains_as_eval_mode)
{
    check_frozen_batchnorm_forward(0);
}
END_TEST

START_TEST(test_frozen_batchnorm_with_relu_trains_as_eval_mode)
{
    check_frozen_batchnorm_forward(1);
}
END_TEST

static del_tensor *random_weights(int n, int k)
{
    del_tensor *w = new_tensor(2, n, k, 0, 0, DEL_DTYPE_F32);
    for (int i = 0; i < n * k; i++)
        ((float *)del_tensor_data(w))[i] = (float)(test_uniform() * 2.0 - 1.0);
    return w;
}

/* L = sum w * y over the output, in double. */
static double weighted_sum(del_model *m, const del_tensor *x, const del_tensor *w)
{
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m)), *wd = del_tensor_data((del_tensor *)w);
    double s = 0.0;
    for (int64_t i = 0; i < del_tensor_numel(w); i++)
        s += (double)wd[i] * y[i];
    return s;
}

/* Input gradient through a frozen batchnorm + relu (the relu's kinks kept
 * 0.1 away) against central differences; it is computed lazily, as the
 * backward stops at the trainable head, and then eagerly with the same
 * values. The frozen batchnorm gets no parameter gradient. */
START_TEST(test_input_grad_through_frozen_batchnorm_matches_finite_differences)
{
    enum { N = 2, C = 2, H = 2, W = 2, K = 3 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, C, H, W));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    ck_assert_del_ok(del_model_add_relu(m));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, K, 1));
    ck_assert_del_ok(del_model_init(m, 7));
    del_tensor *x0 = random_input(4, C, H, W);
    double rmean[C], rvar[C];
    warm_batchnorm(m, x0, rmean, rvar);
    ck_assert_del_ok(del_model_freeze(m, 0, 1));

    del_tensor *x = random_input(N, C, H, W);
    float *xs = del_tensor_data(x);
    for (int i = 0; i < N * C * H * W; i++) {
        int ch = (i / (H * W)) % C;
        double u = xs[i], z = u < 0 ? u - 0.1 : u + 0.1; /* |z| >= 0.1 */
        xs[i] = (float)(rmean[ch] + z * sqrt(rvar[ch] + 1e-5));
    }
    del_tensor *w = random_weights(N, K);

    ck_assert_del_ok(del_model_zero_grad(m));
    weighted_sum(m, x, w);
    ck_assert_del_ok(del_model_backward(m, w));
    del_tensor *lazy = NULL;
    ck_assert_ptr_nonnull(del_model_input_grad(m));
    ck_assert_del_ok(del_tensor_copy(&lazy, del_model_input_grad(m)));
    for (int i = 0; i < 2 * C; i++)
        ck_assert_float_eq(del_model_grads(m)[i], 0.0f);

    ck_assert_del_ok(del_model_zero_grad(m));
    weighted_sum(m, x, w);
    ck_assert_del_ok(del_model_backward(m, w));
    const float *eager = del_tensor_data(del_model_input_grad(m));
    ck_assert_mem_eq(eager, del_tensor_data(lazy), del_tensor_nbytes(lazy));

    const double eps = 1e-2;
    for (int i = 0; i < N * C * H * W; i++) {
        float keep = xs[i];
        xs[i] = keep + (float)eps;
        double up = weighted_sum(m, x, w);
        xs[i] = keep - (float)eps;
        double down = weighted_sum(m, x, w);
        xs[i] = keep;
        double num = (up - down) / (2 * eps), ana = ((const float *)del_tensor_data(lazy))[i];
        ck_assert_msg(fabs(num - ana) <= 2e-3 + 2e-3 * fabs(ana), "input %d: numerical %g, analytic %g", i,
                      num, ana);
    }
    del_tensor_free(lazy);
    del_tensor_free(w);
    del_tensor_free(x);
    del_tensor_free(x0);
    del_model_free(m);
}
END_TEST

/* One backward of L = sum w * y from zeroed gradients; then parameters
 * [frozen_begin, frozen_end) must have no gradient and [0, trained) must
 * match central differences of L. */
static void check_param_grads(del_model *m, const del_tensor *x, const del_tensor *w, int64_t trained,
                              int64_t frozen_begin, int64_t frozen_end)
{
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_zero_grad(m));
    weighted_sum(m, x, w);
    ck_assert_del_ok(del_model_backward(m, w));
    float *p = del_model_params(m);
    const float *g = del_model_grads(m);
    for (int64_t i = frozen_begin; i < frozen_end; i++)
        ck_assert_msg(g[i] == 0.0f, "frozen param %lld has gradient %g", (long long)i, (double)g[i]);
    const double eps = 1e-2;
    for (int64_t i = 0; i < trained; i++) {
        float keep = p[i];
        p[i] = keep + (float)eps;
        double up = weighted_sum(m, x, w);
        p[i] = keep - (float)eps;
        double down = weighted_sum(m, x, w);
        p[i] = keep;
        double num = (up - down) / (2 * eps);
        ck_assert_msg(fabs(num - g[i]) <= 2e-3 + 2e-3 * fabs(g[i]), "param %lld: numerical %g, analytic %g",
                      (long long)i, num, (double)g[i]);
    }
}

/* flatten, linear 4 -> 4, batchnorm (frozen), linear 4 -> 4 (frozen),
 * linear 4 -> 2: the first linear's gradients flow through the frozen
 * batchnorm's evaluation-mode map and the frozen linear, which get none. */
START_TEST(test_gradient_reaches_trainable_layer_below_frozen_ones)
{
    enum { N = 3, F = 4, K = 2 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, F));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, F, 1));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    ck_assert_del_ok(del_model_add_linear(m, F, 1));
    ck_assert_del_ok(del_model_add_linear(m, K, 1));
    ck_assert_del_ok(del_model_init(m, 3));
    del_tensor *x = random_input(N, 1, 1, F);
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x)); /* moves the running statistics */
    /* gamma, beta away from 1, 0 so that a missing factor shows */
    float *p = del_model_params(m);
    int64_t bn = F * F + F;
    for (int i = 0; i < F; i++) {
        p[bn + i] = 0.5f + 0.25f * (float)i;
        p[bn + F + i] = 0.1f * (float)i;
    }
    ck_assert_del_ok(del_model_freeze(m, 2, 3));
    del_tensor *w = random_weights(N, K);
    check_param_grads(m, x, w, bn, bn, bn + 2 * F + F * F + F);
    del_tensor_free(w);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* conv 3x3 (1 -> 2, pad 1), conv 3x3 (2 -> 2, pad 1, frozen), flatten,
 * linear 18 -> 2: a frozen conv2d passes the gradient down and skips its
 * own (the backend's dw == NULL path). */
START_TEST(test_gradient_reaches_conv_below_frozen_conv)
{
    enum { N = 2, S = 3, K = 2 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, S, S));
    ck_assert_del_ok(del_model_add_conv2d(m, 2, 3, 1, 1, 1));
    ck_assert_del_ok(del_model_add_conv2d(m, 2, 3, 1, 1, 1));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, K, 1));
    ck_assert_del_ok(del_model_init(m, 5));
    ck_assert_del_ok(del_model_freeze(m, 1, 1));
    del_tensor *x = random_input(N, 1, S, S);
    del_tensor *w = random_weights(N, K);
    int64_t first = 2 * 9 + 2, second = 2 * 2 * 9 + 2;
    check_param_grads(m, x, w, first, first, first + second);
    del_tensor_free(w);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* A frozen residual block (with a projection and stochastic depth) runs
 * as in evaluation mode in training: bit-identical output, no branch
 * dropped, batchnorm statistics unmoved; the input gradient through it
 * matches central differences and its parameters get none. */
START_TEST(test_frozen_residual_block_trains_as_eval_mode)
{
    enum { N = 2, C = 2, S = 4, K = 3 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, C, S, S));
    ck_assert_del_ok(del_model_add_residual(m, 3, 2, 0.5f));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, K, 1));
    ck_assert_del_ok(del_model_init(m, 11));
    del_tensor *x0 = random_input(4, C, S, S), *x = random_input(N, C, S, S);
    ck_assert_del_ok(del_model_forward(m, x0)); /* moves the running statistics */
    ck_assert_del_ok(del_model_freeze(m, 0, 0));
    float *state = malloc((size_t)m->n_state * sizeof(float));
    ck_assert_ptr_nonnull(state);
    memcpy(state, m->state, (size_t)m->n_state * sizeof(float));

    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *eval = NULL;
    ck_assert_del_ok(del_tensor_copy(&eval, del_model_output(m)));
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int rep = 0; rep < 3; rep++) {
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_mem_eq(del_tensor_data(del_model_output(m)), del_tensor_data(eval), del_tensor_nbytes(eval));
    }
    ck_assert_mem_eq(m->state, state, (size_t)m->n_state * sizeof(float));

    del_tensor *w = random_weights(N, K);
    int64_t block = del_model_num_params(m) - (3 * S / 2 * S / 2 * K + K);
    check_param_grads(m, x, w, 0, 0, block);
    del_tensor *dx = del_model_input_grad(m);
    ck_assert_ptr_nonnull(dx);
    float *xs = del_tensor_data(x);
    const float *ana = del_tensor_data(dx);
    const double eps = 1e-3;
    for (int i = 0; i < N * C * S * S; i++) {
        float keep = xs[i];
        xs[i] = keep + (float)eps;
        double up = weighted_sum(m, x, w);
        xs[i] = keep - (float)eps;
        double down = weighted_sum(m, x, w);
        xs[i] = keep;
        double num = (up - down) / (2 * eps);
        ck_assert_msg(fabs(num - ana[i]) <= 5e-3 + 5e-3 * fabs(ana[i]), "input %d: numerical %g, analytic %g", i,
                      num, (double)ana[i]);
    }
    del_tensor_free(w);
    del_tensor_free(eval);
    free(state);
    del_tensor_free(x);
    del_tensor_free(x0);
    del_model_free(m);
}
END_TEST

START_TEST(test_freezing_batchnorm_between_forward_and_backward_is_refused)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 2, 2));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, 2, 1));
    del_tensor *x = random_input(2, 2, 2, 2);
    del_tensor *g = new_tensor(2, 2, 2, 0, 0, DEL_DTYPE_F32);
    memset(del_tensor_data(g), 0, del_tensor_nbytes(g));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_freeze(m, 0, 0));
    ck_assert_del_err(del_model_backward(m, g), DEL_ESTATE, "forward again");
    ck_assert_del_ok(del_model_forward(m, x));
    /* other layers may change between the two */
    ck_assert_del_ok(del_model_freeze(m, 2, 2));
    ck_assert_del_ok(del_model_backward(m, g));
    del_tensor_free(g);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* A few SGD steps (momentum, Nesterov, weight decay) on random batches
 * with every layer but the last frozen. */
static void probe_steps(del_model *m, int n, int c, int h, int w, int classes, int steps)
{
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.05f, 0.9f, 5e-4f, 1));
    del_tensor *y = new_tensor(1, n, 0, 0, 0, DEL_DTYPE_I32);
    del_tensor *grad = new_tensor(2, n, classes, 0, 0, DEL_DTYPE_F32);
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int s = 0; s < steps; s++) {
        del_tensor *x = random_input(n, c, h, w);
        for (int i = 0; i < n; i++)
            ((int32_t *)del_tensor_data(y))[i] = (i + s) % classes;
        float loss;
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_loss_cross_entropy(del_model_output(m), y, &loss, grad));
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_backward(m, grad));
        ck_assert_del_ok(del_optimizer_step(o));
        del_tensor_free(x);
    }
    del_tensor_free(grad);
    del_tensor_free(y);
    del_optimizer_free(o);
}

/* Linear probe of a preset: the backbone (every parameter before the last
 * layer's, head_params of them at the end) stays bit-identical, gets no
 * gradient, and its batchnorm statistics stay put; the head learns. */
static void check_linear_probe(const char *preset, int c, int h, int w, int classes, int64_t head_params)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, preset, c, h, w, classes));
    ck_assert_del_ok(del_model_freeze(m, 0, -2));
    int64_t np = del_model_num_params(m), body = np - head_params;
    float *before = malloc((size_t)np * sizeof(float));
    float *state = malloc((size_t)(m->n_state + 1) * sizeof(float));
    ck_assert_ptr_nonnull(before);
    ck_assert_ptr_nonnull(state);
    memcpy(before, del_model_params(m), (size_t)np * sizeof(float));
    if (m->n_state)
        memcpy(state, m->state, (size_t)m->n_state * sizeof(float));
    probe_steps(m, 4, c, h, w, classes, 3);
    ck_assert_mem_eq(del_model_params(m), before, (size_t)body * sizeof(float));
    if (m->n_state)
        ck_assert_mem_eq(m->state, state, (size_t)m->n_state * sizeof(float));
    for (int64_t i = 0; i < body; i++)
        ck_assert_float_eq(del_model_grads(m)[i], 0.0f);
    int moved = 0;
    for (int64_t i = body; i < np; i++)
        moved += del_model_params(m)[i] != before[i];
    ck_assert_int_eq(moved, head_params);
    free(state);
    free(before);
    del_model_free(m);
}

/* mlp: flatten, linear 256, relu, linear 3 (256 * 3 + 3 head parameters). */
START_TEST(test_linear_probe_on_mlp_trains_only_the_head)
{
    check_linear_probe("mlp", 1, 8, 8, 3, 256 * 3 + 3);
}
END_TEST

/* fmnist-cnn: its last layer is linear 128 -> 10. */
START_TEST(test_linear_probe_on_fmnist_cnn_trains_only_the_head)
{
    check_linear_probe("fmnist-cnn", 1, 28, 28, 10, 128 * 10 + 10);
}
END_TEST

/* The supervised trainer makes its optimizers from the groups too. */
START_TEST(test_trainer_fit_respects_frozen_layers)
{
    enum { N = 12, S = 4 };
    uint8_t px[N * S * S];
    int32_t labels[N];
    for (int i = 0; i < N * S * S; i++)
        px[i] = (uint8_t)(test_uniform() * 255.0);
    for (int i = 0; i < N; i++)
        labels[i] = i % 2;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, S, S, 1));
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, S, S, 2));
    ck_assert_del_ok(del_model_freeze(m, 0, -2));
    int64_t np = del_model_num_params(m), body = np - (256 * 2 + 2);
    float *before = malloc((size_t)np * sizeof(float));
    ck_assert_ptr_nonnull(before);
    memcpy(before, del_model_params(m), (size_t)np * sizeof(float));
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 4));
    ck_assert_del_ok(del_trainer_fit(tr, 5));
    ck_assert_mem_eq(del_model_params(m), before, (size_t)body * sizeof(float));
    ck_assert(memcmp(del_model_params(m) + body, before + body, (size_t)(np - body) * sizeof(float)) != 0);
    del_trainer_free(tr);
    free(before);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

static Suite *groups_suite(void)
{
    Suite *s = suite_create("nn_groups");
    TCase *tc = tcase_create("groups");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_new_layers_are_trainable_at_unit_lr);
    tcase_add_test(tc, test_frozen_layer_keeps_params_and_momentum_under_sgd);
    tcase_add_test(tc, test_frozen_layer_skips_adamw_update_and_decay);
    tcase_add_test(tc, test_lr_mult_scales_the_sgd_update);
    tcase_add_test(tc, test_clip_norm_measures_trainable_gradients_only);
    tcase_add_test(tc, test_bad_ranges_are_rejected);
    tcase_add_test(tc, test_frozen_batchnorm_trains_as_eval_mode);
    tcase_add_test(tc, test_frozen_batchnorm_with_relu_trains_as_eval_mode);
    tcase_add_test(tc, test_input_grad_through_frozen_batchnorm_matches_finite_differences);
    tcase_add_test(tc, test_gradient_reaches_trainable_layer_below_frozen_ones);
    tcase_add_test(tc, test_gradient_reaches_conv_below_frozen_conv);
    tcase_add_test(tc, test_frozen_residual_block_trains_as_eval_mode);
    tcase_add_test(tc, test_freezing_batchnorm_between_forward_and_backward_is_refused);
    tcase_add_test(tc, test_linear_probe_on_mlp_trains_only_the_head);
    tcase_add_test(tc, test_linear_probe_on_fmnist_cnn_trains_only_the_head);
    tcase_add_test(tc, test_trainer_fit_respects_frozen_layers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(groups_suite());
}
