/* Backend: the fused batchnorm + relu entries and the vectorised 2x2 max
 * pooling, against naive double-precision loops written here, and
 * bit-identical across thread counts. */
#include <math.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "testutil.h"
#include "backend_bufs.h"

typedef struct bn_case {
    int n, c, hw;
} bn_case;

/* hw below, at and above the 8-lane blocks, and a 2-d (hw = 1) case */
static const bn_case cases[] = {{4, 3, 5}, {2, 4, 16}, {3, 5, 49}, {16, 3, 1}};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static size_t at(const bn_case *b, int i, int ch, int j)
{
    return ((size_t)i * b->c + ch) * b->hw + j;
}

/* per-channel batch mean and biased variance, in double */
static void stats_ref(const bn_case *b, const float *x, double *mean, double *var)
{
    double cnt = (double)b->n * b->hw;
    for (int ch = 0; ch < b->c; ch++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < b->n; i++)
            for (int j = 0; j < b->hw; j++)
                s += x[at(b, i, ch, j)];
        mean[ch] = s / cnt;
        for (int i = 0; i < b->n; i++)
            for (int j = 0; j < b->hw; j++) {
                double d = x[at(b, i, ch, j)] - mean[ch];
                s2 += d * d;
            }
        var[ch] = s2 / cnt;
    }
}

START_TEST(test_bn_relu_train_forward_is_max_of_zero_and_normalised_input)
{
    const bn_case *b = &cases[_i];
    const del_backend *be = del_backend_get();
    size_t len = (size_t)b->n * b->c * b->hw;
    float *x = rand_buf(len, 10 + _i), *y = fill_buf(len, 9.0f);
    float *gamma = rand_buf((size_t)b->c, 20), *beta = rand_buf((size_t)b->c, 21);
    float *rm = fill_buf((size_t)b->c, 0.0f), *rv = fill_buf((size_t)b->c, 1.0f);
    float *sm = fill_buf((size_t)b->c, 0.0f), *si = fill_buf((size_t)b->c, 0.0f);
    double mean[8], var[8];
    stats_ref(b, x, mean, var);
    be->batchnorm_forward_train(b->n, b->c, b->hw, x, gamma, beta, 1e-5f, 0.1f, rm, rv, 1, y, sm, si, NULL);
    int zeros = 0;
    for (int i = 0; i < b->n; i++)
        for (int ch = 0; ch < b->c; ch++)
            for (int j = 0; j < b->hw; j++) {
                size_t k = at(b, i, ch, j);
                double v = gamma[ch] * (x[k] - mean[ch]) / sqrt(var[ch] + 1e-5) + beta[ch];
                double want = v > 0 ? v : 0;
                ck_assert_double_eq_tol(y[k], want, 1e-4);
                ck_assert(y[k] >= 0.0f);
                zeros += y[k] == 0.0f;
            }
    ck_assert_int_gt(zeros, 0);
    for (int ch = 0; ch < b->c; ch++)
        ck_assert_double_eq_tol(sm[ch], mean[ch], 1e-5);
    free(x);
    free(y);
    free(gamma);
    free(beta);
    free(rm);
    free(rv);
    free(sm);
    free(si);
}
END_TEST

/* mean / std = 1000, and the first image shifted by 5 std from the
 * others: the single statistics pass must still get the variance */
START_TEST(test_bn_train_variance_survives_a_large_mean)
{
    const del_backend *be = del_backend_get();
    const bn_case b = {6, 2, 49};
    size_t len = (size_t)b.n * b.c * b.hw;
    float *x = rand_buf(len, 15), *y = fill_buf(len, 0.0f);
    for (int i = 0; i < b.n; i++)
        for (int ch = 0; ch < b.c; ch++)
            for (int j = 0; j < b.hw; j++) {
                size_t k = at(&b, i, ch, j);
                x[k] = 100.0f + 0.1f * x[k] + (i == 0 ? 0.5f : 0.0f);
            }
    float gamma[2] = {1.0f, 1.0f}, beta[2] = {0.0f, 0.0f}, rm[2] = {0, 0}, rv[2] = {0, 0}, sm[2], si[2];
    double mean[2], var[2];
    stats_ref(&b, x, mean, var);
    be->batchnorm_forward_train(b.n, b.c, b.hw, x, gamma, beta, 1e-5f, 1.0f, rm, rv, 0, y, sm, si, NULL);
    double cnt = (double)b.n * b.hw;
    for (int ch = 0; ch < b.c; ch++) {
        ck_assert_double_eq_tol(sm[ch], mean[ch], 1e-4);
        ck_assert_double_eq_tol(rv[ch], var[ch] * cnt / (cnt - 1), 1e-3 * var[ch]);
        ck_assert_double_eq_tol(si[ch], 1.0 / sqrt(var[ch] + 1e-5), 1e-3 / sqrt(var[ch] + 1e-5));
    }
    free(x);
    free(y);
}
END_TEST

START_TEST(test_bn_relu_eval_applies_running_stats_then_relu)
{
    const del_backend *be = del_backend_get();
    const bn_case b = {3, 4, 10};
    size_t len = (size_t)b.n * b.c * b.hw;
    float *x = rand_buf(len, 30), *y = fill_buf(len, 9.0f);
    float gamma[4] = {1.0f, 2.0f, -0.5f, 0.0f}, beta[4] = {0.0f, 1.0f, 0.2f, -3.0f};
    float rm[4] = {0.5f, -1.0f, 0.0f, 2.0f}, rv[4] = {1.0f, 4.0f, 0.25f, 9.0f};
    be->batchnorm_forward_eval(b.n, b.c, b.hw, x, gamma, beta, rm, rv, 1e-5f, 1, y);
    for (int i = 0; i < b.n; i++)
        for (int ch = 0; ch < b.c; ch++)
            for (int j = 0; j < b.hw; j++) {
                size_t k = at(&b, i, ch, j);
                double v = gamma[ch] * (x[k] - rm[ch]) / sqrt(rv[ch] + 1e-5) + beta[ch];
                ck_assert_double_eq_tol(y[k], v > 0 ? v : 0, 1e-5);
            }
    free(x);
    free(y);
}
END_TEST

/* The textbook batchnorm gradient with g = (forward output > 0) ? dy : 0:
 * dbeta = sum g, dgamma = sum g xhat,
 * dx = gamma invstd / N (N g - sum g - xhat sum g xhat). */
START_TEST(test_bn_relu_backward_matches_masked_textbook_gradient)
{
    const bn_case *b = &cases[_i];
    const del_backend *be = del_backend_get();
    size_t len = (size_t)b->n * b->c * b->hw;
    float *x = rand_buf(len, 40 + _i), *dy = rand_buf(len, 50 + _i), *y = fill_buf(len, 0.0f);
    float *gamma = rand_buf((size_t)b->c, 41), *beta = rand_buf((size_t)b->c, 42);
    float *rm = fill_buf((size_t)b->c, 0.0f), *rv = fill_buf((size_t)b->c, 1.0f);
    float *sm = fill_buf((size_t)b->c, 0.0f), *si = fill_buf((size_t)b->c, 0.0f);
    float *dx = fill_buf(len, 77.0f), *dg = fill_buf((size_t)b->c, 1.0f), *db = fill_buf((size_t)b->c, 2.0f);
    be->batchnorm_forward_train(b->n, b->c, b->hw, x, gamma, beta, 1e-5f, 0.1f, rm, rv, 1, y, sm, si, NULL);
    be->batchnorm_backward(b->n, b->c, b->hw, x, dy, gamma, beta, 1, sm, si, dx, dg, db, NULL);

    double mean[8], var[8], cnt = (double)b->n * b->hw;
    stats_ref(b, x, mean, var);
    for (int ch = 0; ch < b->c; ch++) {
        double is = 1.0 / sqrt(var[ch] + 1e-5), sg = 0, sgx = 0;
        for (int i = 0; i < b->n; i++)
            for (int j = 0; j < b->hw; j++) {
                size_t k = at(b, i, ch, j);
                double xhat = (x[k] - mean[ch]) * is;
                double g = y[k] > 0.0f ? dy[k] : 0.0; /* the forward output's sign */
                sg += g;
                sgx += g * xhat;
            }
        ck_assert_double_eq_tol(db[ch], 2.0 + sg, 1e-4);
        ck_assert_double_eq_tol(dg[ch], 1.0 + sgx, 1e-4);
        for (int i = 0; i < b->n; i++)
            for (int j = 0; j < b->hw; j++) {
                size_t k = at(b, i, ch, j);
                double xhat = (x[k] - mean[ch]) * is;
                double g = y[k] > 0.0f ? dy[k] : 0.0; /* the forward output's sign */
                double want = gamma[ch] * is / cnt * (cnt * g - sg - xhat * sgx);
                ck_assert_double_eq_tol(dx[k], want, 2e-4 * (1 + fabs(gamma[ch] * is)));
            }
    }
    free(x);
    free(dy);
    free(y);
    free(gamma);
    free(beta);
    free(rm);
    free(rv);
    free(sm);
    free(si);
    free(dx);
    free(dg);
    free(db);
}
END_TEST

/* 2x2 windows over an odd width (floor mode drops the last column), values
 * from {0, 1, 2} so most windows hold ties: the first maximum in window
 * order (row-major) must win, in the vector body and in the tail. */
START_TEST(test_maxpool2x2_first_max_wins_in_vector_body_and_tail)
{
    const del_backend *be = del_backend_get();
    const del_pool_shape s = {2, 3, 8, 19, 4, 9, 2, 2};
    size_t planes = (size_t)s.n * s.c, in = (size_t)s.h_in * s.w_in, out = (size_t)s.h_out * s.w_out;
    float *x = malloc(planes * in * sizeof *x), *y = fill_buf(planes * out, -9.0f);
    int32_t *am = malloc(planes * out * sizeof *am);
    del_rng r;
    del_rng_seed(&r, 60);
    for (size_t i = 0; i < planes * in; i++)
        x[i] = (float)(int)(3.0f * del_rng_uniform(&r));
    be->maxpool2d_forward(&s, x, y, am);
    for (size_t p = 0; p < planes; p++)
        for (int oh = 0; oh < s.h_out; oh++)
            for (int ow = 0; ow < s.w_out; ow++) {
                const float *xp = x + p * in;
                int best = 2 * oh * s.w_in + 2 * ow;
                for (int kh = 0; kh < 2; kh++)
                    for (int kw = 0; kw < 2; kw++) {
                        int idx = (2 * oh + kh) * s.w_in + 2 * ow + kw;
                        if (xp[idx] > xp[best])
                            best = idx;
                    }
                size_t o = p * out + (size_t)oh * s.w_out + ow;
                ck_assert_msg(am[o] == best, "plane %zu window (%d, %d): argmax %d, want %d", p, oh, ow,
                              am[o], best);
                ck_assert(y[o] == xp[best]);
            }
    free(x);
    free(y);
    free(am);
}
END_TEST

START_TEST(test_relu_over_many_blocks_in_place_and_not)
{
    const del_backend *be = del_backend_get();
    const int64_t n = 70001; /* several parallel blocks and a ragged end */
    float *x = rand_buf((size_t)n, 70), *y = fill_buf((size_t)n, 9.0f), *dy = rand_buf((size_t)n, 71);
    float *dx = fill_buf((size_t)n, 9.0f);
    be->relu_forward(n, x, y);
    be->relu_backward(n, y, dy, dx);
    for (int64_t i = 0; i < n; i++) {
        ck_assert(y[i] == (x[i] > 0.0f ? x[i] : 0.0f));
        ck_assert(dx[i] == (x[i] > 0.0f ? dy[i] : 0.0f));
    }
    be->relu_backward(n, y, dy, dy);
    be->relu_forward(n, x, x);
    ck_assert_mem_eq(dy, dx, (size_t)n * sizeof *dx);
    ck_assert_mem_eq(x, y, (size_t)n * sizeof *y);
    free(x);
    free(y);
    free(dy);
    free(dx);
}
END_TEST

/* One shape per conv path: per-tap gemms (c_in >= 8), wide im2col (c_in
 * 1), strided im2col, pointwise. */
static const del_conv2d_shape affine_shapes[] = {
    /* n, c_in, h_in, w_in, c_out, h_out, w_out, kernel, stride, pad */
    {3, 8, 7, 6, 5, 7, 6, 3, 1, 1},
    {2, 1, 9, 9, 4, 9, 9, 3, 1, 1},
    {2, 3, 8, 7, 4, 4, 4, 3, 2, 1},
    {2, 9, 4, 5, 3, 4, 5, 1, 1, 0},
};
#define N_AFFINE (int)(sizeof affine_shapes / sizeof affine_shapes[0])

/* naive conv + bias, then * scale + shift (if scale), then relu (if relu) */
static double conv_affine_ref(const del_conv2d_shape *s, const float *x, const float *w, const float *bias,
                              const float *scale, const float *shift, int relu, int i, int co, int oh, int ow)
{
    double acc = bias ? bias[co] : 0.0;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int kh = 0; kh < s->kernel; kh++)
            for (int kw = 0; kw < s->kernel; kw++) {
                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                if (ih < 0 || ih >= s->h_in || iw < 0 || iw >= s->w_in)
                    continue;
                acc += (double)w[((co * s->c_in + ci) * s->kernel + kh) * s->kernel + kw] *
                       x[(((size_t)i * s->c_in + ci) * s->h_in + ih) * s->w_in + iw];
            }
    if (scale)
        acc = acc * scale[co] + shift[co];
    return relu && acc < 0 ? 0.0 : acc;
}

START_TEST(test_conv2d_forward_affine_matches_naive_conv_then_affine_then_relu)
{
    const del_conv2d_shape *s = &affine_shapes[_i];
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)s->n * s->c_in * s->h_in * s->w_in, yl = (size_t)s->n * s->c_out * s->h_out * s->w_out;
    size_t wl = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
    float *x = rand_buf(xl, 90 + _i), *w = rand_buf(wl, 91), *bias = rand_buf((size_t)s->c_out, 92);
    float *scale = rand_buf((size_t)s->c_out, 93), *shift = rand_buf((size_t)s->c_out, 94);
    float *y = fill_buf(yl, 9.0f);
    void *ws = malloc(be->conv2d_workspace(s) + 1);
    /* (bias, affine, relu) in every useful combination */
    static const int combos[][3] = {{1, 1, 1}, {0, 1, 0}, {1, 0, 1}, {0, 0, 1}};
    for (int k = 0; k < 4; k++) {
        const float *b = combos[k][0] ? bias : NULL, *sc = combos[k][1] ? scale : NULL;
        const float *sh = combos[k][1] ? shift : NULL;
        int relu = combos[k][2];
        be->conv2d_forward_affine(s, x, w, b, sc, sh, relu, 0, y, (char *)ws + 1);
        for (int i = 0; i < s->n; i++)
            for (int co = 0; co < s->c_out; co++)
                for (int oh = 0; oh < s->h_out; oh++)
                    for (int ow = 0; ow < s->w_out; ow++) {
                        double want = conv_affine_ref(s, x, w, b, sc, sh, relu, i, co, oh, ow);
                        size_t o = (((size_t)i * s->c_out + co) * s->h_out + oh) * s->w_out + ow;
                        ck_assert_msg(fabs(y[o] - want) <= 1e-4 * (1 + fabs(want)),
                                      "combo %d y[%zu] = %.7g, want %.7g", k, o, y[o], want);
                    }
    }
    free(x);
    free(w);
    free(bias);
    free(scale);
    free(shift);
    free(y);
    free(ws);
}
END_TEST

/* conv + affine + relu, then 2x2 / stride 2 max pooling (odd output sizes
 * drop their last row and column) against the naive value of each
 * window's four inputs */
START_TEST(test_conv2d_forward_affine_pools_2x2_windows)
{
    static const del_conv2d_shape shapes[] = {
        {3, 8, 7, 6, 5, 7, 6, 3, 1, 1},
        {2, 1, 9, 9, 4, 9, 9, 3, 1, 1},
        {2, 3, 9, 7, 4, 5, 4, 3, 2, 1},
        {2, 9, 4, 5, 3, 4, 5, 1, 1, 0},
    };
    const del_conv2d_shape *s = &shapes[_i];
    const del_backend *be = del_backend_get();
    int ph = s->h_out / 2, pw = s->w_out / 2;
    size_t xl = (size_t)s->n * s->c_in * s->h_in * s->w_in, yl = (size_t)s->n * s->c_out * ph * pw;
    size_t wl = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
    float *x = rand_buf(xl, 95 + _i), *w = rand_buf(wl, 96), *bias = rand_buf((size_t)s->c_out, 97);
    float *scale = rand_buf((size_t)s->c_out, 98), *shift = rand_buf((size_t)s->c_out, 99);
    float *y = fill_buf(yl, 9.0f);
    void *ws = malloc(be->conv2d_workspace(s));
    for (int relu = 0; relu < 2; relu++) {
        be->conv2d_forward_affine(s, x, w, bias, scale, shift, relu, 1, y, ws);
        for (int i = 0; i < s->n; i++)
            for (int co = 0; co < s->c_out; co++)
                for (int r = 0; r < ph; r++)
                    for (int q = 0; q < pw; q++) {
                        double want = -INFINITY;
                        for (int dh = 0; dh < 2; dh++)
                            for (int dw = 0; dw < 2; dw++) {
                                double v = conv_affine_ref(s, x, w, bias, scale, shift, relu, i, co, 2 * r + dh,
                                                           2 * q + dw);
                                want = v > want ? v : want;
                            }
                        size_t o = (((size_t)i * s->c_out + co) * ph + r) * pw + q;
                        ck_assert_msg(fabs(y[o] - want) <= 1e-4 * (1 + fabs(want)), "relu %d y[%zu] = %.7g, want %.7g",
                                      relu, o, y[o], want);
                    }
    }
    free(x);
    free(w);
    free(bias);
    free(scale);
    free(shift);
    free(y);
    free(ws);
}
END_TEST

typedef struct fused_out {
    float *y, *dx, *dgb, *stats;
} fused_out;

static void run_fused(int threads, fused_out *o)
{
    const del_backend *be = del_backend_get();
    ck_assert_del_ok(del_set_num_threads(threads));
    const int n = 5, c = 7, hw = 53;
    size_t len = (size_t)n * c * hw;
    float *x = rand_buf(len, 80), *dy = rand_buf(len, 81), *g = rand_buf(7, 82), *b = rand_buf(7, 83);
    o->y = fill_buf(len, 0.0f);
    o->dx = fill_buf(len, 0.0f);
    o->dgb = fill_buf(14, 0.0f);
    o->stats = fill_buf(28, 0.0f); /* running mean, var, save mean, invstd */
    float *st = o->stats;
    be->batchnorm_forward_train(n, c, hw, x, g, b, 1e-5f, 0.1f, st, st + 7, 1, o->y, st + 14, st + 21, NULL);
    be->batchnorm_backward(n, c, hw, x, dy, g, b, 1, st + 14, st + 21, o->dx, o->dgb, o->dgb + 7, NULL);
    free(x);
    free(dy);
    free(g);
    free(b);
}

START_TEST(test_fused_bn_relu_bit_identical_for_1_2_3_threads)
{
    fused_out ref, other;
    size_t len = 5 * 7 * 53;
    run_fused(1, &ref);
    for (int t = 2; t <= 3; t++) {
        run_fused(t, &other);
        ck_assert_mem_eq(ref.y, other.y, len * sizeof(float));
        ck_assert_mem_eq(ref.dx, other.dx, len * sizeof(float));
        ck_assert_mem_eq(ref.dgb, other.dgb, 14 * sizeof(float));
        ck_assert_mem_eq(ref.stats, other.stats, 28 * sizeof(float));
        free(other.y);
        free(other.dx);
        free(other.dgb);
        free(other.stats);
    }
    free(ref.y);
    free(ref.dx);
    free(ref.dgb);
    free(ref.stats);
}
END_TEST

static Suite *fused_suite(void)
{
    Suite *s = suite_create("backend_fused");
    TCase *t = tcase_create("fused");
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, test_bn_relu_train_forward_is_max_of_zero_and_normalised_input, 0, N_CASES);
    tcase_add_test(t, test_bn_train_variance_survives_a_large_mean);
    tcase_add_test(t, test_bn_relu_eval_applies_running_stats_then_relu);
    tcase_add_loop_test(t, test_bn_relu_backward_matches_masked_textbook_gradient, 0, N_CASES);
    tcase_add_loop_test(t, test_conv2d_forward_affine_matches_naive_conv_then_affine_then_relu, 0, N_AFFINE);
    tcase_add_loop_test(t, test_conv2d_forward_affine_pools_2x2_windows, 0, 4);
    tcase_add_test(t, test_maxpool2x2_first_max_wins_in_vector_body_and_tail);
    tcase_add_test(t, test_relu_over_many_blocks_in_place_and_not);
    tcase_add_test(t, test_fused_bn_relu_bit_identical_for_1_2_3_threads);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return test_run_suite(fused_suite());
}
