/* Backend: every entry of the CPU table against naive reference loops
 * written here (double precision), finite differences for the gradients,
 * and bit-identical results whatever the thread count. */
#include <math.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "testutil.h"
#include "backend_bufs.h"

/* |got - want| <= rtol * scale + atol, where scale is the sum of the
 * magnitudes of the terms that made up want. */
static void check_close(const char *what, size_t i, double got, double want, double scale)
{
    double tol = 2e-5 * scale + 1e-6;
    ck_assert_msg(fabs(got - want) <= tol, "%s[%zu]: got %.8g, want %.8g (tol %.3g)", what, i, got, want, tol);
}

/* ---- gemm ---- */

START_TEST(test_gemm_matches_naive_for_every_transpose)
{
    const del_backend *be = del_backend_get();
    int m = 5, n = 7, k = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
            int arows = ta ? k : m, brows = tb ? n : k;
            float *a = rand_buf((size_t)arows * lda, 1), *b = rand_buf((size_t)brows * ldb, 2);
            float *c = rand_buf((size_t)m * ldc, 3), *c0 = malloc((size_t)m * ldc * sizeof *c0);
            memcpy(c0, c, (size_t)m * ldc * sizeof *c0);
            be->gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c, ldc);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double acc = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double av = ta ? a[p * lda + i] : a[i * lda + p];
                        double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                        acc += av * bv;
                        mag += fabs(av * bv);
                    }
                    double want = 0.5 * acc + 2.0 * c0[i * ldc + j];
                    check_close("gemm", (size_t)(i * ldc + j), c[i * ldc + j], want, mag + fabs(want));
                }
            /* the padding column beyond n is untouched */
            for (int i = 0; i < m; i++)
                ck_assert(c[i * ldc + n] == c0[i * ldc + n]);
            free(a);
            free(b);
            free(c);
            free(c0);
        }
}
END_TEST

/* ---- convolution ---- */

static const del_conv2d_shape conv_shapes[] = {
    /* n, c_in, h_in, w_in, c_out, h_out, w_out, kernel, stride, pad */
    {2, 3, 7, 7, 4, 7, 7, 3, 1, 1},
    {3, 2, 8, 8, 5, 4, 4, 3, 2, 1},
    {2, 4, 5, 6, 3, 5, 6, 1, 1, 0},
    {2, 3, 9, 9, 2, 4, 4, 3, 2, 0},
    {2, 3, 7, 6, 4, 4, 3, 1, 2, 0},
    /* stride 2, 5x5, pad 2, odd width: kernel columns on both halves of the split rows */
    {2, 3, 11, 9, 4, 6, 5, 5, 2, 2},
    {1, 1, 28, 28, 8, 28, 28, 3, 1, 1},
    {5, 16, 14, 14, 12, 14, 14, 3, 1, 1},
    {3, 2, 6, 5, 3, 4, 3, 3, 1, 0},
    /* c_in >= 8, stride 1: the shifted path (per-tap gemms on the padded plane) */
    {3, 8, 9, 7, 5, 9, 7, 3, 1, 1},
    {2, 9, 8, 8, 3, 4, 4, 5, 1, 0},
    {2, 8, 6, 7, 4, 6, 7, 5, 1, 2},
    {9, 8, 5, 5, 3, 3, 3, 3, 1, 0},
};
#define N_CONV_SHAPES (int)(sizeof conv_shapes / sizeof conv_shapes[0])

static size_t conv_x_len(const del_conv2d_shape *s)
{
    return (size_t)s->n * s->c_in * s->h_in * s->w_in;
}

static size_t conv_y_len(const del_conv2d_shape *s)
{
    return (size_t)s->n * s->c_out * s->h_out * s->w_out;
}

static size_t conv_w_len(const del_conv2d_shape *s)
{
    return (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
}

/* Index of the input pixel under kernel tap (kh, kw) for output (oh, ow),
 * or -1 in the zero padding. */
static long conv_tap(const del_conv2d_shape *s, int i, int ci, int oh, int ow, int kh, int kw)
{
    int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
    if (ih < 0 || ih >= s->h_in || iw < 0 || iw >= s->w_in)
        return -1;
    return (((long)i * s->c_in + ci) * s->h_in + ih) * s->w_in + iw;
}

static long w_index(const del_conv2d_shape *s, int co, int ci, int kh, int kw)
{
    return (((long)co * s->c_in + ci) * s->kernel + kh) * s->kernel + kw;
}

static long y_index(const del_conv2d_shape *s, int i, int co, int oh, int ow)
{
    return (((long)i * s->c_out + co) * s->h_out + oh) * s->w_out + ow;
}

START_TEST(test_conv2d_forward_matches_direct_loops)
{
    const del_conv2d_shape *s = &conv_shapes[_i];
    const del_backend *be = del_backend_get();
    ck_assert_int_eq(s->h_out, (s->h_in + 2 * s->pad - s->kernel) / s->stride + 1);
    ck_assert_int_eq(s->w_out, (s->w_in + 2 * s->pad - s->kernel) / s->stride + 1);
    float *x = rand_buf(conv_x_len(s), 10 + _i), *w = rand_buf(conv_w_len(s), 20 + _i);
    float *bias = rand_buf((size_t)s->c_out, 30 + _i), *y = fill_buf(conv_y_len(s), 99.0f);
    void *ws = malloc(be->conv2d_workspace(s) + 1);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        be->conv2d_forward(s, x, w, with_bias ? bias : NULL, y, ws);
        for (int i = 0; i < s->n; i++)
            for (int co = 0; co < s->c_out; co++)
                for (int oh = 0; oh < s->h_out; oh++)
                    for (int ow = 0; ow < s->w_out; ow++) {
                        double acc = with_bias ? bias[co] : 0.0, mag = fabs(acc);
                        for (int ci = 0; ci < s->c_in; ci++)
                            for (int kh = 0; kh < s->kernel; kh++)
                                for (int kw = 0; kw < s->kernel; kw++) {
                                    long xi = conv_tap(s, i, ci, oh, ow, kh, kw);
                                    if (xi < 0)
                                        continue;
                                    double t = (double)x[xi] * w[w_index(s, co, ci, kh, kw)];
                                    acc += t;
                                    mag += fabs(t);
                                }
                        long yi = y_index(s, i, co, oh, ow);
                        check_close("conv y", (size_t)yi, y[yi], acc, mag);
                    }
    }
    free(x);
    free(w);
    free(bias);
    free(y);
    free(ws);
}
END_TEST

START_TEST(test_conv2d_backward_matches_direct_loops)
{
    const del_conv2d_shape *s = &conv_shapes[_i];
    const del_backend *be = del_backend_get();
    size_t xl = conv_x_len(s), wl = conv_w_len(s), yl = conv_y_len(s);
    float *x = rand_buf(xl, 40 + _i), *w = rand_buf(wl, 50 + _i), *dy = rand_buf(yl, 60 + _i);
    float *dx = fill_buf(xl, 123.0f), *dw = fill_buf(wl, 0.25f), *db = fill_buf((size_t)s->c_out, -0.5f);
    double *rdx = calloc(xl, sizeof *rdx), *mdx = calloc(xl, sizeof *mdx);
    double *rdw = calloc(wl, sizeof *rdw), *mdw = calloc(wl, sizeof *mdw);
    void *ws = malloc(be->conv2d_workspace(s) + 1);
    be->conv2d_backward(s, x, w, dy, dx, dw, db, ws);

    for (int i = 0; i < s->n; i++)
        for (int co = 0; co < s->c_out; co++)
            for (int oh = 0; oh < s->h_out; oh++)
                for (int ow = 0; ow < s->w_out; ow++) {
                    double g = dy[y_index(s, i, co, oh, ow)];
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int kh = 0; kh < s->kernel; kh++)
                            for (int kw = 0; kw < s->kernel; kw++) {
                                long xi = conv_tap(s, i, ci, oh, ow, kh, kw);
                                if (xi < 0)
                                    continue;
                                long wi = w_index(s, co, ci, kh, kw);
                                rdx[xi] += g * w[wi];
                                mdx[xi] += fabs(g * w[wi]);
                                rdw[wi] += g * x[xi];
                                mdw[wi] += fabs(g * x[xi]);
                            }
                }
    for (size_t j = 0; j < xl; j++)
        check_close("conv dx", j, dx[j], rdx[j], mdx[j]);
    for (size_t j = 0; j < wl; j++)
        check_close("conv dw (accumulated)", j, dw[j], 0.25 + rdw[j], mdw[j] + 0.25);
    for (int co = 0; co < s->c_out; co++) {
        double acc = -0.5, mag = 0.5;
        for (int i = 0; i < s->n; i++)
            for (int p = 0; p < s->h_out * s->w_out; p++) {
                double g = dy[((size_t)i * s->c_out + co) * s->h_out * s->w_out + p];
                acc += g;
                mag += fabs(g);
            }
        check_close("conv dbias (accumulated)", (size_t)co, db[co], acc, mag);
    }

    /* dx and dbias NULL: dw is still accumulated the same way */
    float *dw2 = fill_buf(wl, 0.25f);
    be->conv2d_backward(s, x, w, dy, NULL, dw2, NULL, ws);
    for (size_t j = 0; j < wl; j++)
        check_close("conv dw without dx", j, dw2[j], 0.25 + rdw[j], mdw[j] + 0.25);

    free(x);
    free(w);
    free(dy);
    free(dx);
    free(dw);
    free(dw2);
    free(db);
    free(rdx);
    free(mdx);
    free(rdw);
    free(mdw);
    free(ws);
}
END_TEST

/* L = sum(y * r): dL/dx and dL/dw by central differences of a double
 * forward pass must match the backward pass fed with dy = r. */
static double conv_loss(const del_conv2d_shape *s, const double *x, const double *w, const float *r)
{
    double loss = 0.0;
    for (int i = 0; i < s->n; i++)
        for (int co = 0; co < s->c_out; co++)
            for (int oh = 0; oh < s->h_out; oh++)
                for (int ow = 0; ow < s->w_out; ow++) {
                    double acc = 0.0;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int kh = 0; kh < s->kernel; kh++)
                            for (int kw = 0; kw < s->kernel; kw++) {
                                long xi = conv_tap(s, i, ci, oh, ow, kh, kw);
                                if (xi >= 0)
                                    acc += x[xi] * w[w_index(s, co, ci, kh, kw)];
                            }
                    loss += acc * r[y_index(s, i, co, oh, ow)];
                }
    return loss;
}

START_TEST(test_conv2d_backward_matches_finite_differences)
{
    const del_conv2d_shape s = {2, 2, 5, 5, 3, 3, 3, 3, 2, 1};
    const del_backend *be = del_backend_get();
    size_t xl = conv_x_len(&s), wl = conv_w_len(&s), yl = conv_y_len(&s);
    float *x = rand_buf(xl, 70), *w = rand_buf(wl, 71), *r = rand_buf(yl, 72);
    float *dx = fill_buf(xl, 0.0f), *dw = fill_buf(wl, 0.0f);
    double *xd = malloc(xl * sizeof *xd), *wd = malloc(wl * sizeof *wd);
    for (size_t j = 0; j < xl; j++)
        xd[j] = x[j];
    for (size_t j = 0; j < wl; j++)
        wd[j] = w[j];
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_backward(&s, x, w, r, dx, dw, NULL, ws);
    const double h = 1e-4;
    for (size_t j = 0; j < xl; j++) {
        double keep = xd[j];
        xd[j] = keep + h;
        double lp = conv_loss(&s, xd, wd, r);
        xd[j] = keep - h;
        double lm = conv_loss(&s, xd, wd, r);
        xd[j] = keep;
        ck_assert_double_eq_tol(dx[j], (lp - lm) / (2 * h), 1e-4);
    }
    for (size_t j = 0; j < wl; j++) {
        double keep = wd[j];
        wd[j] = keep + h;
        double lp = conv_loss(&s, xd, wd, r);
        wd[j] = keep - h;
        double lm = conv_loss(&s, xd, wd, r);
        wd[j] = keep;
        ck_assert_double_eq_tol(dw[j], (lp - lm) / (2 * h), 1e-4);
    }
    free(x);
    free(w);
    free(r);
    free(dx);
    free(dw);
    free(xd);
    free(wd);
    free(ws);
}
END_TEST

/* ---- max pooling ---- */

static const del_pool_shape pool_shapes[] = {
    /* n, c, h_in, w_in, h_out, w_out, kernel, stride */
    {2, 3, 6, 6, 3, 3, 2, 2},
    {1, 2, 7, 7, 3, 3, 2, 2},
    {2, 2, 7, 7, 3, 3, 3, 2},
    {3, 4, 28, 28, 14, 14, 2, 2},
    {1, 1, 5, 4, 3, 2, 3, 1},
};
#define N_POOL_SHAPES (int)(sizeof pool_shapes / sizeof pool_shapes[0])

START_TEST(test_maxpool_matches_direct_loops)
{
    const del_pool_shape *s = &pool_shapes[_i];
    const del_backend *be = del_backend_get();
    size_t planes = (size_t)s->n * s->c, in = (size_t)s->h_in * s->w_in, out = (size_t)s->h_out * s->w_out;
    float *x = rand_buf(planes * in, 80 + _i), *y = fill_buf(planes * out, 5.0f);
    float *dy = rand_buf(planes * out, 90 + _i), *dx = fill_buf(planes * in, 7.0f);
    double *rdx = calloc(planes * in, sizeof *rdx);
    int32_t *am = malloc(planes * out * sizeof *am);
    be->maxpool2d_forward(s, x, y, am);
    for (size_t p = 0; p < planes; p++)
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                float best = -INFINITY;
                int bi = -1;
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++) {
                        int idx = (oh * s->stride + kh) * s->w_in + ow * s->stride + kw;
                        if (x[p * in + idx] > best) {
                            best = x[p * in + idx];
                            bi = idx;
                        }
                    }
                size_t o = p * out + (size_t)oh * s->w_out + ow;
                ck_assert(y[o] == best);
                ck_assert_int_eq(am[o], bi);
                rdx[p * in + bi] += dy[o];
            }
    be->maxpool2d_backward(s, dy, am, dx);
    for (size_t j = 0; j < planes * in; j++)
        check_close("maxpool dx", j, dx[j], rdx[j], fabs(rdx[j]) + 1.0);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(rdx);
    free(am);
}
END_TEST

START_TEST(test_maxpool_takes_first_max_on_ties)
{
    const del_pool_shape s = {1, 1, 4, 4, 2, 2, 2, 2};
    const del_backend *be = del_backend_get();
    float x[16], y[4];
    int32_t am[4];
    for (int i = 0; i < 16; i++)
        x[i] = 1.0f;
    x[15] = -1.0f; /* window 3 = {10, 11, 14, 15}: the first max is 10 */
    be->maxpool2d_forward(&s, x, y, am);
    ck_assert_int_eq(am[0], 0);
    ck_assert_int_eq(am[1], 2);
    ck_assert_int_eq(am[2], 8);
    ck_assert_int_eq(am[3], 10);
    for (int i = 0; i < 4; i++)
        ck_assert(y[i] == 1.0f);
}
END_TEST

/* ---- batch normalisation ---- */

typedef struct bn_case {
    int n, c, hw;
} bn_case;

static const bn_case bn_cases[] = {{4, 3, 5}, {2, 8, 49}, {16, 2, 1}, {3, 5, 196}};
#define N_BN_CASES (int)(sizeof bn_cases / sizeof bn_cases[0])

/* Reference training-mode forward in double; returns y, mean, var. */
static void bn_ref(int n, int c, int hw, const double *x, const float *gamma, const float *beta, double eps,
                   double *y, double *mean, double *var)
{
    size_t cs = (size_t)c * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++)
                s += x[i * cs + (size_t)ch * hw + j];
        double m = s / ((double)n * hw);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) {
                double d = x[i * cs + (size_t)ch * hw + j] - m;
                s2 += d * d;
            }
        double v = s2 / ((double)n * hw);
        mean[ch] = m;
        var[ch] = v;
        if (y)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < hw; j++) {
                    size_t k = i * cs + (size_t)ch * hw + j;
                    y[k] = gamma[ch] * (x[k] - m) / sqrt(v + eps) + beta[ch];
                }
    }
}

START_TEST(test_batchnorm_train_matches_reference_and_updates_running_stats)
{
    const bn_case *bc = &bn_cases[_i];
    const del_backend *be = del_backend_get();
    int n = bc->n, c = bc->c, hw = bc->hw;
    size_t len = (size_t)n * c * hw;
    float *x = rand_buf(len, 100 + _i), *y = fill_buf(len, 0.0f);
    for (size_t j = 0; j < len; j++)
        x[j] = 3.0f + 2.0f * x[j]; /* a mean far from zero */
    float *gamma = rand_buf((size_t)c, 101), *beta = rand_buf((size_t)c, 102);
    float *rm = rand_buf((size_t)c, 103), *rv = fill_buf((size_t)c, 1.5f);
    float *rm0 = malloc((size_t)c * sizeof *rm0), *sm = fill_buf((size_t)c, 0), *si = fill_buf((size_t)c, 0);
    memcpy(rm0, rm, (size_t)c * sizeof *rm0);
    double *xd = calloc(len, sizeof *xd), *yd = calloc(len, sizeof *yd);
    double *mean = malloc((size_t)c * sizeof *mean), *var = malloc((size_t)c * sizeof *var);
    for (size_t j = 0; j < len; j++)
        xd[j] = x[j];
    const float eps = 1e-5f, mom = 0.1f;
    be->batchnorm_forward_train(n, c, hw, x, gamma, beta, eps, mom, rm, rv, 0, y, sm, si, NULL);
    bn_ref(n, c, hw, xd, gamma, beta, eps, yd, mean, var);
    for (size_t j = 0; j < len; j++)
        ck_assert_double_eq_tol(y[j], yd[j], 1e-4);
    double cnt = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        ck_assert_double_eq_tol(sm[ch], mean[ch], 1e-5);
        ck_assert_double_eq_tol(si[ch], 1.0 / sqrt(var[ch] + eps), 1e-4 / sqrt(var[ch] + eps));
        ck_assert_double_eq_tol(rm[ch], 0.9 * rm0[ch] + 0.1 * mean[ch], 1e-5);
        ck_assert_double_eq_tol(rv[ch], 0.9 * 1.5 + 0.1 * var[ch] * cnt / (cnt - 1), 1e-5);
    }
    free(x);
    free(y);
    free(gamma);
    free(beta);
    free(rm);
    free(rv);
    free(rm0);
    free(sm);
    free(si);
    free(xd);
    free(yd);
    free(mean);
    free(var);
}
END_TEST

START_TEST(test_batchnorm_eval_uses_running_stats)
{
    const del_backend *be = del_backend_get();
    int n = 3, c = 4, hw = 10;
    size_t len = (size_t)n * c * hw;
    float *x = rand_buf(len, 110), *y = fill_buf(len, 0.0f);
    float gamma[4] = {1.0f, 2.0f, -0.5f, 0.0f}, beta[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    float rm[4] = {0.5f, -1.0f, 0.0f, 2.0f}, rv[4] = {1.0f, 4.0f, 0.25f, 9.0f};
    be->batchnorm_forward_eval(n, c, hw, x, gamma, beta, rm, rv, 1e-5f, 0, y);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < hw; j++) {
                size_t k = ((size_t)i * c + ch) * hw + j;
                double want = gamma[ch] * (x[k] - rm[ch]) / sqrt(rv[ch] + 1e-5) + beta[ch];
                ck_assert_double_eq_tol(y[k], want, 1e-5);
            }
    free(x);
    free(y);
}
END_TEST

/* L = sum(y * r) through the double reference forward. */
static double bn_loss(int n, int c, int hw, const double *x, const float *gamma, const float *beta,
                      const float *r, double *scratch)
{
    double mean[16], var[16];
    bn_ref(n, c, hw, x, gamma, beta, 1e-5, scratch, mean, var);
    double l = 0;
    for (size_t j = 0; j < (size_t)n * c * hw; j++)
        l += scratch[j] * r[j];
    return l;
}

START_TEST(test_batchnorm_backward_matches_finite_differences)
{
    const bn_case *bc = &bn_cases[_i];
    const del_backend *be = del_backend_get();
    int n = bc->n, c = bc->c, hw = bc->hw;
    size_t len = (size_t)n * c * hw;
    ck_assert_int_le(c, 16);
    float *x = rand_buf(len, 120 + _i), *r = rand_buf(len, 130 + _i), *y = fill_buf(len, 0);
    float *gamma = rand_buf((size_t)c, 121), *beta = rand_buf((size_t)c, 122);
    float *rm = fill_buf((size_t)c, 0), *rv = fill_buf((size_t)c, 1), *sm = fill_buf((size_t)c, 0);
    float *si = fill_buf((size_t)c, 0), *dx = fill_buf(len, 55.0f);
    float *dg = fill_buf((size_t)c, 1.0f), *dbeta = fill_buf((size_t)c, 2.0f);
    double *xd = calloc(len, sizeof *xd), *scratch = calloc(len, sizeof *scratch);
    for (size_t j = 0; j < len; j++)
        xd[j] = x[j];
    be->batchnorm_forward_train(n, c, hw, x, gamma, beta, 1e-5f, 0.1f, rm, rv, 0, y, sm, si, NULL);
    be->batchnorm_backward(n, c, hw, x, r, gamma, NULL, 0, sm, si, dx, dg, dbeta, NULL);

    const double h = 1e-5;
    /* checking every element of the big case is slow; a stride covers all channels */
    size_t step = len > 600 ? 7 : 1;
    for (size_t j = 0; j < len; j += step) {
        double keep = xd[j];
        xd[j] = keep + h;
        double lp = bn_loss(n, c, hw, xd, gamma, beta, r, scratch);
        xd[j] = keep - h;
        double lm = bn_loss(n, c, hw, xd, gamma, beta, r, scratch);
        xd[j] = keep;
        ck_assert_double_eq_tol(dx[j], (lp - lm) / (2 * h), 2e-3);
    }
    for (int ch = 0; ch < c; ch++) {
        float g0 = gamma[ch], b0 = beta[ch];
        gamma[ch] = g0 + 1e-3f;
        double lp = bn_loss(n, c, hw, xd, gamma, beta, r, scratch);
        gamma[ch] = g0 - 1e-3f;
        double lm = bn_loss(n, c, hw, xd, gamma, beta, r, scratch);
        gamma[ch] = g0;
        double fd = (lp - lm) / ((double)(g0 + 1e-3f) - (double)(g0 - 1e-3f));
        ck_assert_double_eq_tol(dg[ch], 1.0 + fd, 2e-3 * (1 + fabs(fd)));
        double sr = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++)
                sr += r[((size_t)i * c + ch) * hw + j];
        (void)b0;
        ck_assert_double_eq_tol(dbeta[ch], 2.0 + sr, 1e-4 * (1 + fabs(sr)));
    }

    /* dx may be NULL: the parameter gradients are still accumulated */
    float *dg2 = fill_buf((size_t)c, 0.0f), *db2 = fill_buf((size_t)c, 0.0f);
    be->batchnorm_backward(n, c, hw, x, r, gamma, NULL, 0, sm, si, NULL, dg2, db2, NULL);
    for (int ch = 0; ch < c; ch++) {
        ck_assert_double_eq_tol(dg2[ch], dg[ch] - 1.0, 1e-5 * (1 + fabs(dg[ch])));
        ck_assert_double_eq_tol(db2[ch], dbeta[ch] - 2.0, 1e-5 * (1 + fabs(dbeta[ch])));
    }
    free(dg2);
    free(db2);
    free(x);
    free(r);
    free(y);
    free(gamma);
    free(beta);
    free(rm);
    free(rv);
    free(sm);
    free(si);
    free(dx);
    free(dg);
    free(dbeta);
    free(xd);
    free(scratch);
}
END_TEST

/* ---- elementwise ---- */

START_TEST(test_relu_forward_and_backward)
{
    const del_backend *be = del_backend_get();
    const int64_t n = 1037;
    float *x = rand_buf((size_t)n, 140), *y = fill_buf((size_t)n, 9), *dy = rand_buf((size_t)n, 141);
    float *dx = fill_buf((size_t)n, 9);
    x[0] = 0.0f;
    x[1] = -0.0f;
    be->relu_forward(n, x, y);
    for (int64_t i = 0; i < n; i++)
        ck_assert(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    be->relu_backward(n, y, dy, dx);
    for (int64_t i = 0; i < n; i++)
        ck_assert(dx[i] == (x[i] > 0 ? dy[i] : 0.0f));
    /* in place */
    be->relu_forward(n, x, x);
    for (int64_t i = 0; i < n; i++)
        ck_assert(x[i] == y[i]);
    be->relu_backward(n, y, dy, dy);
    for (int64_t i = 0; i < n; i++)
        ck_assert(dy[i] == dx[i]);
    free(x);
    free(y);
    free(dy);
    free(dx);
}
END_TEST

START_TEST(test_add_bias_rows_and_sum_rows)
{
    const del_backend *be = del_backend_get();
    int rows = 37, cols = 13;
    float *y = rand_buf((size_t)rows * cols, 150), *y0 = malloc((size_t)rows * cols * sizeof *y0);
    float *bias = rand_buf((size_t)cols, 151), *out = fill_buf((size_t)cols, 1.0f);
    memcpy(y0, y, (size_t)rows * cols * sizeof *y0);
    be->add_bias_rows(rows, cols, bias, y);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            ck_assert(y[r * cols + j] == y0[r * cols + j] + bias[j]);
    be->sum_rows(rows, cols, y0, out);
    for (int j = 0; j < cols; j++) {
        double acc = 1.0, mag = 1.0;
        for (int r = 0; r < rows; r++) {
            acc += y0[r * cols + j];
            mag += fabs(y0[r * cols + j]);
        }
        check_close("sum_rows", (size_t)j, out[j], acc, mag);
    }
    free(y);
    free(y0);
    free(bias);
    free(out);
}
END_TEST

/* ---- determinism across thread counts ---- */

typedef struct run_out {
    float *y, *dx, *dw, *db, *bny, *bndx, *bndg, *pool, *gemm;
    /* [path: without, with a workspace][relu: 0, 1] */
    float *bn_y[2][2], *bn_dx[2][2], *bn_dgb[2][2], *bn_stats[2][2];
} run_out;

/* Batchnorm forward and backward on a [9, 16, 196] batch (relu fused or
 * not, with or without a workspace): y, dx, dgamma|dbeta and the running
 * and saved statistics (4 x 16) into fresh buffers of o; the forward
 * without an output must give the same statistics. */
static void run_bn(run_out *o, const float *x, const float *dy, const float *g, const float *b, int with_ws,
                   int relu)
{
    const del_backend *be = del_backend_get();
    size_t len = 9 * 16 * 196;
    void *ws = with_ws ? malloc(be->batchnorm_workspace(9, 16)) : NULL;
    float *y = malloc(len * sizeof(float)), *dx = malloc(len * sizeof(float));
    float *dgb = fill_buf(32, 0), *st = fill_buf(64, 0.5f);
    be->batchnorm_forward_train(9, 16, 196, x, g, b, 1e-5f, 0.1f, st, st + 16, relu, y, st + 32, st + 48, ws);
    /* y NULL: the same statistics, running and saved, and no output */
    float *st2 = fill_buf(64, 0.5f);
    be->batchnorm_forward_train(9, 16, 196, x, g, b, 1e-5f, 0.1f, st2, st2 + 16, relu, NULL, st2 + 32, st2 + 48,
                                ws);
    ck_assert_msg(memcmp(st, st2, 64 * 4) == 0, "statistics-only forward differs: workspace %d, relu %d", with_ws,
                  relu);
    free(st2);
    be->batchnorm_backward(9, 16, 196, x, dy, g, b, relu, st + 32, st + 48, dx, dgb, dgb + 16, ws);
    o->bn_y[with_ws][relu] = y;
    o->bn_dx[with_ws][relu] = dx;
    o->bn_dgb[with_ws][relu] = dgb;
    o->bn_stats[with_ws][relu] = st;
    free(ws);
}

static void run_all(int threads, run_out *o)
{
    const del_backend *be = del_backend_get();
    ck_assert_del_ok(del_set_num_threads(threads));
    /* an odd batch so that chunks of images are uneven */
    const del_conv2d_shape s = {9, 8, 14, 14, 16, 14, 14, 3, 1, 1};
    size_t xl = conv_x_len(&s), wl = conv_w_len(&s), yl = conv_y_len(&s);
    float *x = rand_buf(xl, 200), *w = rand_buf(wl, 201), *dy = rand_buf(yl, 202);
    float *bias = rand_buf(16, 203), *g = rand_buf(16, 204), *b = rand_buf(16, 205);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    o->y = malloc(yl * sizeof(float));
    o->dx = malloc(xl * sizeof(float));
    o->dw = fill_buf(wl, 0);
    o->db = fill_buf(16, 0);
    be->conv2d_forward(&s, x, w, bias, o->y, ws);
    be->conv2d_backward(&s, x, w, dy, o->dx, o->dw, o->db, ws);

    float rm[16] = {0}, rv[16] = {0}, sm[16], si[16];
    o->bny = malloc(yl * sizeof(float));
    o->bndx = malloc(yl * sizeof(float));
    o->bndg = fill_buf(32, 0);
    be->batchnorm_forward_train(9, 16, 196, o->y, g, b, 1e-5f, 0.1f, rm, rv, 0, o->bny, sm, si, NULL);
    be->batchnorm_backward(9, 16, 196, o->y, dy, g, NULL, 0, sm, si, o->bndx, o->bndg, o->bndg + 16, NULL);
    be->relu_forward((int64_t)yl, o->bny, o->bny);
    for (int path = 0; path < 2; path++)
        for (int relu = 0; relu < 2; relu++)
            run_bn(o, o->y, dy, g, b, path, relu);

    const del_pool_shape ps = {9, 16, 14, 14, 7, 7, 2, 2};
    int32_t *am = malloc(yl / 4 * sizeof *am);
    o->pool = malloc(yl / 4 * sizeof(float));
    be->maxpool2d_forward(&ps, o->bny, o->pool, am);

    /* large enough to be split into blocks, both by rows and by columns */
    float *ga = rand_buf(128 * 784, 206), *gb = rand_buf(128 * 784, 207);
    o->gemm = fill_buf(128 * 128 + 128 * 784, 0);
    be->gemm(0, 1, 128, 128, 784, 1.0f, ga, 784, gb, 784, 0.0f, o->gemm, 128);
    be->gemm(1, 0, 128, 784, 128, 1.0f, o->gemm, 128, ga, 784, 0.0f, o->gemm + 128 * 128, 784);
    free(ga);
    free(gb);
    free(am);
    free(x);
    free(w);
    free(dy);
    free(bias);
    free(g);
    free(b);
    free(ws);
}

static void free_out(run_out *o)
{
    free(o->y);
    free(o->dx);
    free(o->dw);
    free(o->db);
    free(o->bny);
    free(o->bndx);
    free(o->bndg);
    free(o->pool);
    free(o->gemm);
    for (int path = 0; path < 2; path++)
        for (int relu = 0; relu < 2; relu++) {
            free(o->bn_y[path][relu]);
            free(o->bn_dx[path][relu]);
            free(o->bn_dgb[path][relu]);
            free(o->bn_stats[path][relu]);
        }
}

/* The batchnorm's two ways (over channels without a workspace, over
 * images with one) give the same bits as the reference run's channel way. */
static void check_bn_paths(const run_out *ref, const run_out *o, int threads)
{
    size_t yl = 9 * 16 * 196;
    for (int path = 0; path < 2; path++)
        for (int relu = 0; relu < 2; relu++) {
            ck_assert_msg(memcmp(ref->bn_y[0][relu], o->bn_y[path][relu], yl * 4) == 0,
                          "bn y differs: %d threads, workspace %d, relu %d", threads, path, relu);
            ck_assert_msg(memcmp(ref->bn_dx[0][relu], o->bn_dx[path][relu], yl * 4) == 0,
                          "bn dx differs: %d threads, workspace %d, relu %d", threads, path, relu);
            ck_assert_msg(memcmp(ref->bn_dgb[0][relu], o->bn_dgb[path][relu], 32 * 4) == 0,
                          "bn dgamma/dbeta differ: %d threads, workspace %d, relu %d", threads, path, relu);
            ck_assert_msg(memcmp(ref->bn_stats[0][relu], o->bn_stats[path][relu], 64 * 4) == 0,
                          "bn statistics differ: %d threads, workspace %d, relu %d", threads, path, relu);
        }
}

START_TEST(test_results_bit_identical_for_1_2_4_threads)
{
    run_out ref, other;
    size_t yl = 9 * 16 * 196, xl = 9 * 8 * 196, wl = 16 * 8 * 9;
    run_all(1, &ref);
    check_bn_paths(&ref, &ref, 1);
    static const int counts[] = {2, 4, 3};
    for (int t = 0; t < 3; t++) {
        run_all(counts[t], &other);
        ck_assert_msg(memcmp(ref.y, other.y, yl * 4) == 0, "conv y differs with %d threads", counts[t]);
        ck_assert_msg(memcmp(ref.dx, other.dx, xl * 4) == 0, "conv dx differs");
        ck_assert_msg(memcmp(ref.dw, other.dw, wl * 4) == 0, "conv dw differs");
        ck_assert_msg(memcmp(ref.db, other.db, 16 * 4) == 0, "conv dbias differs");
        ck_assert_msg(memcmp(ref.bny, other.bny, yl * 4) == 0, "bn/relu y differs");
        ck_assert_msg(memcmp(ref.bndx, other.bndx, yl * 4) == 0, "bn dx differs");
        ck_assert_msg(memcmp(ref.bndg, other.bndg, 32 * 4) == 0, "bn dgamma/dbeta differ");
        ck_assert_msg(memcmp(ref.pool, other.pool, yl / 4 * 4) == 0, "maxpool differs");
        ck_assert_msg(memcmp(ref.gemm, other.gemm, (128 * 128 + 128 * 784) * 4) == 0, "gemm differs");
        check_bn_paths(&ref, &other, counts[t]);
        free_out(&other);
    }
    free_out(&ref);
}
END_TEST

static Suite *backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_gemm_matches_naive_for_every_transpose);
    tcase_add_loop_test(t, test_conv2d_forward_matches_direct_loops, 0, N_CONV_SHAPES);
    tcase_add_loop_test(t, test_conv2d_backward_matches_direct_loops, 0, N_CONV_SHAPES);
    tcase_add_test(t, test_conv2d_backward_matches_finite_differences);
    tcase_add_loop_test(t, test_maxpool_matches_direct_loops, 0, N_POOL_SHAPES);
    tcase_add_test(t, test_maxpool_takes_first_max_on_ties);
    tcase_add_loop_test(t, test_batchnorm_train_matches_reference_and_updates_running_stats, 0, N_BN_CASES);
    tcase_add_test(t, test_batchnorm_eval_uses_running_stats);
    tcase_add_loop_test(t, test_batchnorm_backward_matches_finite_differences, 0, N_BN_CASES);
    tcase_add_test(t, test_relu_forward_and_backward);
    tcase_add_test(t, test_add_bias_rows_and_sum_rows);
    tcase_add_test(t, test_results_bit_identical_for_1_2_4_threads);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return test_run_suite(backend_suite());
}
