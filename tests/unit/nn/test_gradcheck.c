/* Finite-difference gradient checks for every layer, with respect to the
 * parameters and the input, and for the cross-entropy loss.
 *
 * The scalar checked is L = sum_r w_r y_r over the model output y with
 * fixed random weights w, summed in double; the analytic gradient is what
 * del_model_backward gives for grad_output = w. The numerical one is the
 * central difference (L(v + eps) - L(v - eps)) / 2 eps with eps = 1e-2 on
 * f32 values. Layers that are linear in the perturbed value are exact up
 * to f32 rounding of L (~1e-6 relative, i.e. ~1e-4 after dividing by
 * 2 eps); smooth ones (batchnorm) add O(eps^2) truncation. Hence the
 * tolerance |num - ana| <= 2e-3 + 2e-3 |ana|; every case here also passes
 * at 5e-4, so it is not loose enough to hide a wrong term. Piecewise-linear
 * layers (relu, maxpool) get inputs at least 0.05 away from their kinks, so
 * no perturbation crosses one; the whole-network check, whose kinks cannot
 * be steered, uses eps = 2e-3 instead. */
#include <math.h>

#include "testutil.h"

#define GC_EPS 1e-2
#define GC_ATOL 2e-3
#define GC_RTOL 2e-3
#define GC_MAX_CHECKS 120

/* The test's own random numbers (xorshift64*), independent of the library. */
static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static double test_uniform(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    return (double)((test_rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Uniform in [-1, 1], but at least `gap` away from 0. */
static float away_from_zero(double gap)
{
    double u = test_uniform() * 2.0 - 1.0;
    double mag = gap + fabs(u) * (1.0 - gap);
    return (float)(u < 0 ? -mag : mag);
}

static del_tensor *make_input(int n, int c, int h, int w, double gap)
{
    int64_t shape[4] = {n, c, h, w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    float *d = del_tensor_data(x);
    for (int64_t i = 0; i < del_tensor_numel(x); i++)
        d[i] = away_from_zero(gap);
    return x;
}

/* Distinct values spaced 0.05 apart in a random order, so that no +-eps
 * perturbation changes which element of a pooling window is the max. */
static del_tensor *make_spread_input(int n, int c, int h, int w)
{
    del_tensor *x = make_input(n, c, h, w, 0.0);
    float *d = del_tensor_data(x);
    int64_t count = del_tensor_numel(x);
    for (int64_t i = 0; i < count; i++)
        d[i] = (float)(0.05 * (double)i - 0.025 * (double)count);
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = (int64_t)(test_uniform() * (double)(i + 1));
        float t = d[i];
        d[i] = d[j];
        d[j] = t;
    }
    return x;
}

typedef struct gc {
    double eps;
    del_model *m;
    del_tensor *x;
    del_tensor *w;   /* output weights = grad_output */
    int reset_masks; /* restart the dropout stream before each forward */
} gc;

static double gc_loss(gc *g)
{
    if (g->reset_masks) {
        /* del_model_init also re-draws the weights: keep the perturbed ones. */
        int64_t np = del_model_num_params(g->m);
        float *saved = np ? malloc((size_t)np * sizeof(float)) : NULL;
        if (np)
            memcpy(saved, del_model_params(g->m), (size_t)np * sizeof(float));
        ck_assert_del_ok(del_model_init(g->m, 42));
        if (np)
            memcpy(del_model_params(g->m), saved, (size_t)np * sizeof(float));
        free(saved);
    }
    ck_assert_del_ok(del_model_forward(g->m, g->x));
    del_tensor *y = del_model_output(g->m);
    if (!g->w)
        return 0.0;
    const float *yd = del_tensor_data(y), *wd = del_tensor_data(g->w);
    double L = 0.0;
    for (int64_t i = 0; i < del_tensor_numel(y); i++)
        L += (double)wd[i] * (double)yd[i];
    return L;
}

static int close_enough(double num, double ana)
{
    return fabs(num - ana) <= GC_ATOL + GC_RTOL * fabs(ana);
}

/* Checks d L / d v numerically for the values v[0..n), a sample of at
 * most GC_MAX_CHECKS of them evenly spread. */
static void gc_check_values(gc *g, float *v, int64_t n, const float *ana, const char *what)
{
    int64_t step = n > GC_MAX_CHECKS ? (n + GC_MAX_CHECKS - 1) / GC_MAX_CHECKS : 1;
    for (int64_t i = 0; i < n; i += step) {
        float orig = v[i];
        v[i] = (float)(orig + g->eps);
        double lp = gc_loss(g);
        v[i] = (float)(orig - g->eps);
        double lm = gc_loss(g);
        v[i] = orig;
        double num = (lp - lm) / (2.0 * g->eps);
        ck_assert_msg(close_enough(num, ana[i]), "%s[%lld]: numerical %.6f, analytic %.6f", what,
                      (long long)i, num, (double)ana[i]);
    }
}

/* If set, moves the random parameters away from a layer's kinks. */
static void (*gc_adjust_params)(del_model *m);

/* Runs the check for every parameter (sampled) and the input. */
static void gradcheck_eps(del_model *m, del_tensor *x, int reset_masks, double eps)
{
    gc g = {eps, m, x, NULL, reset_masks};
    /* Random parameters: initial ones (gamma 1, beta 0) would hide errors. */
    int64_t np = del_model_num_params(m);
    for (int64_t i = 0; i < np; i++)
        del_model_params(m)[i] = (float)(test_uniform() * 2.0 - 1.0);
    if (gc_adjust_params) {
        gc_adjust_params(m);
        gc_adjust_params = NULL; /* one call: a failed check leaves it set */
    }

    ck_assert_del_ok(del_model_set_training(m, 1));
    gc_loss(&g);
    ck_assert_del_ok(del_tensor_copy(&g.w, del_model_output(m)));
    float *wd = del_tensor_data(g.w);
    for (int64_t i = 0; i < del_tensor_numel(g.w); i++)
        wd[i] = (float)(test_uniform() * 2.0 - 1.0);

    gc_loss(&g);
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward(m, g.w));
    float *pgrad = np ? malloc((size_t)np * sizeof(float)) : NULL;
    if (np)
        memcpy(pgrad, del_model_grads(m), (size_t)np * sizeof(float));
    del_tensor *xgrad = NULL;
    ck_assert_ptr_nonnull(del_model_input_grad(m));
    ck_assert_del_ok(del_tensor_copy(&xgrad, del_model_input_grad(m)));
    ck_assert_int_eq(del_tensor_numel(xgrad), del_tensor_numel(x));

    if (np)
        gc_check_values(&g, del_model_params(m), np, pgrad, "param");
    gc_check_values(&g, del_tensor_data(x), del_tensor_numel(x), del_tensor_data(xgrad), "input");

    free(pgrad);
    del_tensor_free(xgrad);
    del_tensor_free(g.w);
}

static void gradcheck(del_model *m, del_tensor *x, int reset_masks)
{
    gradcheck_eps(m, x, reset_masks, GC_EPS);
}

static void run_linear(int bias)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 6, 1, 1));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, 4, bias));
    ck_assert_int_eq(del_model_num_params(m), 6 * 4 + (bias ? 4 : 0));
    del_tensor *x = make_input(3, 6, 1, 1, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}

START_TEST(test_gradcheck_linear_with_bias)
{
    run_linear(1);
}
END_TEST

START_TEST(test_gradcheck_linear_without_bias)
{
    run_linear(0);
}
END_TEST

static void run_conv(int c_in, int h, int w, int c_out, int k, int s, int p, int bias)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, c_in, h, w));
    ck_assert_del_ok(del_model_add_conv2d(m, c_out, k, s, p, bias));
    ck_assert_int_eq(del_model_num_params(m), c_out * c_in * k * k + (bias ? c_out : 0));
    del_tensor *x = make_input(2, c_in, h, w, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}

START_TEST(test_gradcheck_conv2d_3x3_with_bias)
{
    run_conv(2, 5, 5, 3, 3, 1, 0, 1);
}
END_TEST

START_TEST(test_gradcheck_conv2d_stride2_pad1_without_bias)
{
    run_conv(3, 7, 6, 2, 3, 2, 1, 0);
}
END_TEST

START_TEST(test_gradcheck_conv2d_1x1_and_pad2)
{
    run_conv(3, 4, 4, 2, 1, 1, 0, 1);
    run_conv(1, 4, 5, 2, 5, 1, 2, 1);
}
END_TEST

START_TEST(test_gradcheck_batchnorm_4d_training)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 3, 3, 3));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    del_tensor *x = make_input(4, 3, 3, 3, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_batchnorm_2d_training)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 5, 1, 1));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    del_tensor *x = make_input(6, 5, 1, 1, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_relu)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 3, 4));
    ck_assert_del_ok(del_model_add_relu(m));
    del_tensor *x = make_input(2, 2, 3, 4, 0.05);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_maxpool)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 5, 6));
    ck_assert_del_ok(del_model_add_maxpool(m, 2, 2));
    del_tensor *x = make_spread_input(2, 2, 5, 6);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);

    /* overlapping windows: kernel 3, stride 1 */
    ck_assert_del_ok(del_model_new(&m, 1, 5, 5));
    ck_assert_del_ok(del_model_add_maxpool(m, 3, 1));
    x = make_spread_input(2, 1, 5, 5);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_flatten)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 2, 3));
    ck_assert_del_ok(del_model_add_flatten(m));
    del_tensor *x = make_input(2, 2, 2, 3, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_dropout_with_fixed_mask)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 3, 4, 4));
    ck_assert_del_ok(del_model_add_dropout(m, 0.5f));
    del_tensor *x = make_input(2, 3, 4, 4, 0.0);
    gradcheck(m, x, 1);
    /* the mask really drops: about half of the outputs are zero */
    ck_assert_del_ok(del_model_forward(m, x));
    int zeros = 0;
    const float *y = del_tensor_data(del_model_output(m));
    for (int i = 0; i < 96; i++)
        zeros += y[i] == 0.0f;
    ck_assert_int_gt(zeros, 20);
    ck_assert_int_lt(zeros, 76);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_avgpool)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 5, 6));
    ck_assert_del_ok(del_model_add_avgpool(m, 2, 2));
    del_tensor *x = make_input(2, 2, 5, 6, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);

    /* overlapping windows: kernel 3, stride 1 */
    ck_assert_del_ok(del_model_new(&m, 1, 5, 4));
    ck_assert_del_ok(del_model_add_avgpool(m, 3, 1));
    x = make_input(2, 1, 5, 4, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_gradcheck_global_avgpool)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 3, 4, 5));
    ck_assert_del_ok(del_model_add_global_avgpool(m));
    del_tensor *x = make_input(2, 3, 4, 5, 0.0);
    gradcheck(m, x, 0);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* The residual block's relus (after bn1 and after the join) see batch-
 * normalised values that cannot be steered away from 0 by the input, so
 * the batchnorms are: gamma shrunk to [-0.5, 0.5] (bn1) or [-0.3, 0.3]
 * (bn2, projection) and beta +6 on even channels, -6 on odd ones (|x_hat|
 * <= sqrt(count - 1) < 10 here). Every relu input then lies well away
 * from 0, on both sides (a dropped image's is the shortcut alone), so no
 * perturbation crosses a kink while both branches of each relu are used. */
static int gc_res_cin, gc_res_c;

static void residual_away_from_kinks(del_model *m)
{
    int64_t c = gc_res_c, cin = gc_res_cin;
    float *p = del_model_params(m);
    int64_t bn[3] = {9 * c * cin, 9 * c * cin + 2 * c + 9 * c * c, 0};
    float shrink[3] = {0.5f, 0.3f, 0.3f};
    int n_bn = 2;
    if (del_model_num_params(m) > bn[1] + 2 * c) { /* a projection follows bn2 */
        bn[2] = bn[1] + 2 * c + c * cin;
        n_bn = 3;
    }
    for (int k = 0; k < n_bn; k++)
        for (int64_t ch = 0; ch < c; ch++) {
            p[bn[k] + ch] *= shrink[k];
            p[bn[k] + c + ch] = ch % 2 == 0 ? 6.0f : -6.0f;
        }
}

static void run_residual(int c_in, int h, int w, int c_out, int stride, float survival, int n)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, c_in, h, w));
    ck_assert_del_ok(del_model_add_residual(m, c_out, stride, survival));
    int64_t c = c_out, proj = stride != 1 || c_in != c_out;
    ck_assert_int_eq(del_model_num_params(m), 9 * c * c_in + 9 * c * c + 4 * c + proj * (c * c_in + 2 * c));
    /* |x| >= 0.05: a dropped image's output is relu(x) */
    del_tensor *x = make_input(n, c_in, h, w, 0.05);
    gc_res_cin = c_in;
    gc_res_c = c_out;
    gc_adjust_params = residual_away_from_kinks;
    gradcheck(m, x, survival < 1.0f);
    del_tensor_free(x);
    del_model_free(m);
}

START_TEST(test_gradcheck_residual_identity_shortcut)
{
    run_residual(3, 5, 5, 3, 1, 1.0f, 4);
}
END_TEST

START_TEST(test_gradcheck_residual_projection_shortcut)
{
    run_residual(2, 6, 5, 3, 2, 1.0f, 4); /* stride 2 and more channels */
    run_residual(3, 4, 4, 2, 1, 1.0f, 3); /* fewer channels at stride 1 */
}
END_TEST

/* With a fixed mask (the stream restarted at seed 42 before each forward):
 * the first six draws of that stream keep two images of six at survival
 * 0.3, so both kinds are checked. */
START_TEST(test_gradcheck_residual_stochastic_depth_fixed_mask)
{
    run_residual(2, 4, 4, 2, 1, 0.3f, 6);
    run_residual(2, 6, 6, 4, 2, 0.3f, 6); /* with a projection */

    /* the mask really drops some images (output relu(x)) and keeps others */
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 4, 4));
    ck_assert_del_ok(del_model_add_residual(m, 2, 1, 0.3f));
    del_tensor *x = make_input(6, 2, 4, 4, 0.05);
    ck_assert_del_ok(del_model_init(m, 42));
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m)), *xd = del_tensor_data(x);
    int dropped = 0;
    for (int i = 0; i < 6; i++) {
        int same = 1;
        for (int j = 0; j < 32; j++)
            same &= y[i * 32 + j] == (xd[i * 32 + j] > 0.0f ? xd[i * 32 + j] : 0.0f);
        dropped += same;
    }
    ck_assert_int_eq(dropped, 4);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* Every layer in one stack: the chain rule across layers. */
START_TEST(test_gradcheck_small_network)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 2 6 6; conv2d 3 k=3 p=1; batchnorm; relu; maxpool 2;"
                                             "flatten; linear 5; dropout 0.25; linear 3"));
    del_tensor *x = make_input(4, 2, 6, 6, 0.0);
    gradcheck_eps(m, x, 1, 2e-3);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* d CE / d z against central differences of the loss itself. */
START_TEST(test_gradcheck_cross_entropy)
{
    int64_t shape[2] = {3, 4}, n = 3;
    del_tensor *z = NULL, *grad = NULL, *labels = NULL;
    ck_assert_del_ok(del_tensor_new(&z, DEL_DTYPE_F32, 2, shape));
    ck_assert_del_ok(del_tensor_new(&grad, DEL_DTYPE_F32, 2, shape));
    ck_assert_del_ok(del_tensor_new(&labels, DEL_DTYPE_I32, 1, &n));
    float *zd = del_tensor_data(z);
    int32_t *yd = del_tensor_data(labels);
    for (int i = 0; i < 12; i++)
        zd[i] = (float)(test_uniform() * 6.0 - 3.0);
    yd[0] = 3;
    yd[1] = 0;
    yd[2] = 2;
    float loss;
    ck_assert_del_ok(del_loss_cross_entropy(z, labels, &loss, grad));
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 12; i++) {
        float orig = zd[i], lp, lm;
        zd[i] = (float)(orig + GC_EPS);
        ck_assert_del_ok(del_loss_cross_entropy(z, labels, &lp, NULL));
        zd[i] = (float)(orig - GC_EPS);
        ck_assert_del_ok(del_loss_cross_entropy(z, labels, &lm, NULL));
        zd[i] = orig;
        double num = ((double)lp - lm) / (2.0 * GC_EPS);
        ck_assert_msg(fabs(num - g[i]) <= 1e-3 + 1e-2 * fabs(g[i]), "logit %d: numerical %.6f, analytic %.6f",
                      i, num, (double)g[i]);
    }
    del_tensor_free(z);
    del_tensor_free(grad);
    del_tensor_free(labels);
}
END_TEST

static Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("nn_gradcheck");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradcheck_linear_with_bias);
    tcase_add_test(tc, test_gradcheck_linear_without_bias);
    tcase_add_test(tc, test_gradcheck_conv2d_3x3_with_bias);
    tcase_add_test(tc, test_gradcheck_conv2d_stride2_pad1_without_bias);
    tcase_add_test(tc, test_gradcheck_conv2d_1x1_and_pad2);
    tcase_add_test(tc, test_gradcheck_batchnorm_4d_training);
    tcase_add_test(tc, test_gradcheck_batchnorm_2d_training);
    tcase_add_test(tc, test_gradcheck_relu);
    tcase_add_test(tc, test_gradcheck_maxpool);
    tcase_add_test(tc, test_gradcheck_flatten);
    tcase_add_test(tc, test_gradcheck_dropout_with_fixed_mask);
    tcase_add_test(tc, test_gradcheck_avgpool);
    tcase_add_test(tc, test_gradcheck_global_avgpool);
    tcase_add_test(tc, test_gradcheck_residual_identity_shortcut);
    tcase_add_test(tc, test_gradcheck_residual_projection_shortcut);
    tcase_add_test(tc, test_gradcheck_residual_stochastic_depth_fixed_mask);
    tcase_add_test(tc, test_gradcheck_small_network);
    tcase_add_test(tc, test_gradcheck_cross_entropy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(gradcheck_suite());
}
