/* Backend: the Winograd F(4x4, 3x3) path of conv2d (3x3, stride 1, pad 1,
 * at least 16 input and output channels) against a naive convolution in
 * double precision, with an elementwise error bound; its epilogue, pooling,
 * input gradient and weight gradient; no cross-talk between images; and bit-identical
 * results for 1, 2, 3 and 4 threads and at every SIMD level (DEL_CPU_ISA).
 *
 * The bound. Winograd computes y = A^T [sum_ci U . V] A with U = G g G^T
 * (in double, rounded once to float) and V = B^T d B for the 6x6 input
 * block d. Standard forward error analysis (Higham, "Accuracy and
 * Stability of Numerical Algorithms", 3.5: fl(AB) = AB + E with
 * |E| <= gamma_k |A||B|) applied stage by stage -- U rounded (1 rounding),
 * B^T d B (two passes of at most 4 roundings each; the multiplications by
 * 2 and 4 are exact), the products and the sum over c_in (c_in + 1), two
 * passes of A^T (at most 4 roundings each; 2, 4, 8 exact) -- bounds the
 * error of each output by
 *     gamma_(c_in + 18) * ( |A^T| [sum_ci (|G||g||G^T|) . (|B^T||d||B|)] |A| )
 * where gamma_k = k u / (1 - k u), u = 2^-24. The test uses the looser
 * (c_in + 32) u and computes the bracket in double. For comparison the
 * direct method's bound is gamma_(9 c_in) * sum |w||x|; the Winograd
 * bracket is larger by the magnitudes of the transform entries (up to 8
 * in A, 5 in B, 1/4 in G), so its errors are larger, and the test also
 * checks the largest error relative to sum |w||x| (measured: up to
 * 3.5e-6, against ~1e-7 for the direct method). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "testutil.h"
#include "backend_bufs.h"

typedef struct wg_case {
    int n, c_in, h, w, c_out;
} wg_case;

/* odd sizes (partial tiles), channel counts off multiples of 16, batches
 * that leave the last group of 16 images part-empty or span two groups */
static const wg_case cases[] = {
    {3, 16, 8, 8, 16},
    {17, 16, 7, 9, 24},
    {2, 32, 14, 14, 16},
    {1, 20, 28, 28, 32},
    {5, 24, 5, 3, 17},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static del_conv2d_shape shape_of(const wg_case *c)
{
    del_conv2d_shape s = {c->n, c->c_in, c->h, c->w, c->c_out, c->h, c->w, 3, 1, 1};
    return s;
}

static const double AT[4][6] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1},
};
static const double BT[6][6] = {
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1},
};
static const double G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

/* |B^T| |d| |B| of the 6x6 input block of tile (ty, tx) of one h x w plane
 * (zero outside the plane), into v[36]. */
static void abs_input_tile(const float *plane, int h, int w, int ty, int tx, double *v)
{
    double d[6][6], t[6][6];
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
            int y = 4 * ty + a - 1, x = 4 * tx + b - 1;
            d[a][b] = y < 0 || y >= h || x < 0 || x >= w ? 0 : fabs(plane[(size_t)y * w + x]);
        }
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
            t[a][b] = 0;
            for (int k = 0; k < 6; k++)
                t[a][b] += fabs(BT[a][k]) * d[k][b];
        }
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
            double acc = 0;
            for (int k = 0; k < 6; k++)
                acc += t[a][k] * fabs(BT[b][k]);
            v[a * 6 + b] = acc;
        }
}

/* A same-size 3x3 convolution in double: out[i][o] = sum_c sum_kh,kw k(o, c, kh, kw) * in[i][c][y+kh-1][x+kw-1],
 * and its Winograd error bound. k(o, c) is w[o][c] or, when flip, w[c][o] rotated by 180 degrees
 * (the backward-data convolution). in has ci channels, out co. */
static void reference(int n, int ci, int co, int h, int w, const float *in, const float *wt, int flip, double *out,
                      double *bound)
{
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    double *ua = malloc((size_t)co * ci * 36 * sizeof *ua);
    for (int o = 0; o < co; o++)
        for (int c = 0; c < ci; c++) {
            double g[3][3], t[6][3];
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    g[a][b] = fabs(flip ? wt[((size_t)c * co + o) * 9 + (2 - a) * 3 + (2 - b)]
                                        : wt[((size_t)o * ci + c) * 9 + a * 3 + b]);
            for (int r = 0; r < 6; r++)
                for (int b = 0; b < 3; b++)
                    t[r][b] = fabs(G[r][0]) * g[0][b] + fabs(G[r][1]) * g[1][b] + fabs(G[r][2]) * g[2][b];
            for (int r = 0; r < 6; r++)
                for (int q = 0; q < 6; q++)
                    ua[((size_t)o * ci + c) * 36 + r * 6 + q] =
                        t[r][0] * fabs(G[q][0]) + t[r][1] * fabs(G[q][1]) + t[r][2] * fabs(G[q][2]);
        }
    double *va = malloc((size_t)ci * 36 * sizeof *va);
    for (int i = 0; i < n; i++)
        for (int ty = 0; ty < th; ty++)
            for (int tx = 0; tx < tw; tx++) {
                for (int c = 0; c < ci; c++)
                    abs_input_tile(in + ((size_t)i * ci + c) * h * w, h, w, ty, tx, va + (size_t)c * 36);
                for (int o = 0; o < co; o++) {
                    double m[36] = {0};
                    for (int c = 0; c < ci; c++)
                        for (int e = 0; e < 36; e++)
                            m[e] += ua[((size_t)o * ci + c) * 36 + e] * va[(size_t)c * 36 + e];
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            int y = 4 * ty + a, x = 4 * tx + b;
                            if (y >= h || x >= w)
                                continue;
                            double acc = 0;
                            for (int p = 0; p < 6; p++)
                                for (int q = 0; q < 6; q++)
                                    acc += fabs(AT[a][p]) * m[p * 6 + q] * fabs(AT[b][q]);
                            size_t at = (((size_t)i * co + o) * h + y) * w + x;
                            bound[at] = (ci + 32) * 0x1p-24 * acc;
                            double exact = 0;
                            for (int c = 0; c < ci; c++)
                                for (int kh = 0; kh < 3; kh++)
                                    for (int kw = 0; kw < 3; kw++) {
                                        int yy = y + kh - 1, xx = x + kw - 1;
                                        if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                            continue;
                                        double kv = flip ? wt[((size_t)c * co + o) * 9 + (2 - kh) * 3 + (2 - kw)]
                                                         : wt[((size_t)o * ci + c) * 9 + kh * 3 + kw];
                                        exact += kv * in[(((size_t)i * ci + c) * h + yy) * w + xx];
                                    }
                            out[at] = exact;
                        }
                }
            }
    free(ua);
    free(va);
}

/* sum |k||in| of each output, the scale of the direct method's error */
static void magnitude(int n, int ci, int co, int h, int w, const float *in, const float *wt, int flip, double *mag)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < co; o++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double acc = 0;
                    for (int c = 0; c < ci; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int yy = y + kh - 1, xx = x + kw - 1;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                    continue;
                                double kv = flip ? wt[((size_t)c * co + o) * 9 + (2 - kh) * 3 + (2 - kw)]
                                                 : wt[((size_t)o * ci + c) * 9 + kh * 3 + kw];
                                acc += fabs(kv * in[(((size_t)i * ci + c) * h + yy) * w + xx]);
                            }
                    mag[(((size_t)i * co + o) * h + y) * w + x] = acc;
                }
}

static void check_bound(const char *what, int k, size_t len, const float *got, const double *want,
                        const double *bound, const double *mag)
{
    double worst = 0;
    for (size_t e = 0; e < len; e++) {
        double err = fabs(got[e] - want[e]);
        ck_assert_msg(err <= bound[e], "case %d %s[%zu]: got %.9g, want %.9g, error %.3g > bound %.3g", k, what, e,
                      got[e], want[e], err, bound[e]);
        if (mag[e] > 0 && err / mag[e] > worst)
            worst = err / mag[e];
    }
    /* the figure quoted in cpu_winograd.c's header and the docs */
    ck_assert_msg(worst < 1e-5, "case %d %s: largest error %.3g of sum |w||x|", k, what, worst);
    fprintf(stderr, "winograd case %d %s: largest error %.3g x sum|w||x|\n", k, what, worst);
}

START_TEST(test_winograd_forward_within_error_bound)
{
    const wg_case *c = &cases[_i];
    const del_conv2d_shape s = shape_of(c);
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)c->n * c->c_in * c->h * c->w, yl = (size_t)c->n * c->c_out * c->h * c->w;
    size_t wl = (size_t)c->c_out * c->c_in * 9;
    float *x = rand_buf(xl, 300 + _i), *w = rand_buf(wl, 310 + _i), *y = fill_buf(yl, 99.0f);
    double *want = malloc(yl * sizeof *want), *bound = malloc(yl * sizeof *bound), *mag = malloc(yl * sizeof *mag);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_forward(&s, x, w, NULL, y, ws);
    reference(c->n, c->c_in, c->c_out, c->h, c->w, x, w, 0, want, bound);
    magnitude(c->n, c->c_in, c->c_out, c->h, c->w, x, w, 0, mag);
    check_bound("y", _i, yl, y, want, bound, mag);
    free(x);
    free(w);
    free(y);
    free(want);
    free(bound);
    free(mag);
    free(ws);
}
END_TEST

START_TEST(test_winograd_backward_data_within_error_bound)
{
    const wg_case *c = &cases[_i];
    const del_conv2d_shape s = shape_of(c);
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)c->n * c->c_in * c->h * c->w, yl = (size_t)c->n * c->c_out * c->h * c->w;
    size_t wl = (size_t)c->c_out * c->c_in * 9;
    float *x = rand_buf(xl, 320 + _i), *w = rand_buf(wl, 330 + _i), *dy = rand_buf(yl, 340 + _i);
    float *dx = fill_buf(xl, 99.0f), *dw = fill_buf(wl, 0.0f), *db = fill_buf((size_t)c->c_out, 0.0f);
    double *want = malloc(xl * sizeof *want), *bound = malloc(xl * sizeof *bound), *mag = malloc(xl * sizeof *mag);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_backward(&s, x, w, dy, dx, dw, db, ws);
    /* dx is the convolution of dy (c_out channels) with the rotated, transposed kernels */
    reference(c->n, c->c_out, c->c_in, c->h, c->w, dy, w, 1, want, bound);
    magnitude(c->n, c->c_out, c->c_in, c->h, c->w, dy, w, 1, mag);
    check_bound("dx", _i, xl, dx, want, bound, mag);
    /* the bias gradient (direct code) is still right */
    for (int o = 0; o < c->c_out; o++) {
        double acc = 0, am = 0;
        for (int i = 0; i < c->n; i++)
            for (int p = 0; p < c->h * c->w; p++) {
                double v = dy[((size_t)i * c->c_out + o) * c->h * c->w + p];
                acc += v;
                am += fabs(v);
            }
        ck_assert_msg(fabs(db[o] - acc) <= 2e-5 * am + 1e-6, "case %d dbias[%d]", _i, o);
    }
    free(x);
    free(w);
    free(dy);
    free(dx);
    free(dw);
    free(db);
    free(want);
    free(bound);
    free(mag);
    free(ws);
}
END_TEST

/* The weight gradient: dg = G^T [sum over images and tiles of
 * (A dy A^T) . (B^T d B)] G for each (o, i), with dy the tile's 4x4 output
 * gradient and d its 6x6 input block. Exact value and bound in double,
 * the bound as for the forward: gamma_k times the bracket in absolute
 * values, with k = the number of tile terms summed (16 lanes per tile of
 * each group of images) + 32 for the transforms, products and roundings. */
static void reference_dw(const wg_case *c, const float *x, const float *dy, double *want, double *bound, double *mag)
{
    int h = c->h, w = c->w, th = (h + 3) / 4, tw = (w + 3) / 4, ci = c->c_in, co = c->c_out;
    double *acc = calloc((size_t)co * ci * 36, sizeof *acc);
    double *za = malloc((size_t)co * 36 * sizeof *za), *va = malloc((size_t)ci * 36 * sizeof *va);
    for (int i = 0; i < c->n; i++)
        for (int ty = 0; ty < th; ty++)
            for (int tx = 0; tx < tw; tx++) {
                for (int o = 0; o < co; o++) {
                    double t[6][4];
                    for (int r = 0; r < 6; r++)
                        for (int b = 0; b < 4; b++) {
                            t[r][b] = 0;
                            for (int a = 0; a < 4; a++) {
                                int y = 4 * ty + a, xx = 4 * tx + b;
                                if (y < h && xx < w)
                                    t[r][b] += fabs(AT[a][r]) * fabs(dy[(((size_t)i * co + o) * h + y) * w + xx]);
                            }
                        }
                    for (int r = 0; r < 6; r++)
                        for (int q = 0; q < 6; q++) {
                            double v = 0;
                            for (int b = 0; b < 4; b++)
                                v += t[r][b] * fabs(AT[b][q]);
                            za[(size_t)o * 36 + r * 6 + q] = v;
                        }
                }
                for (int cc = 0; cc < ci; cc++)
                    abs_input_tile(x + ((size_t)i * ci + cc) * h * w, h, w, ty, tx, va + (size_t)cc * 36);
                for (int o = 0; o < co; o++)
                    for (int cc = 0; cc < ci; cc++)
                        for (int e = 0; e < 36; e++)
                            acc[((size_t)o * ci + cc) * 36 + e] += za[(size_t)o * 36 + e] * va[(size_t)cc * 36 + e];
            }
    int groups = (c->n + 15) / 16;
    double k = (double)groups * 16 * th * tw + 32;
    for (int o = 0; o < co; o++)
        for (int cc = 0; cc < ci; cc++) {
            const double *m = acc + ((size_t)o * ci + cc) * 36;
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    double b = 0, exact = 0, mg = 0;
                    for (int r = 0; r < 6; r++)
                        for (int q = 0; q < 6; q++)
                            b += fabs(G[r][kh]) * m[r * 6 + q] * fabs(G[q][kw]);
                    for (int i = 0; i < c->n; i++)
                        for (int y = 0; y < h; y++)
                            for (int xx = 0; xx < w; xx++) {
                                int iy = y + kh - 1, ix = xx + kw - 1;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    continue;
                                double t = (double)dy[(((size_t)i * co + o) * h + y) * w + xx] *
                                           x[(((size_t)i * ci + cc) * h + iy) * w + ix];
                                exact += t;
                                mg += fabs(t);
                            }
                    size_t at = (((size_t)o * ci + cc) * 3 + kh) * 3 + kw;
                    want[at] = exact;
                    bound[at] = k * 0x1p-24 / (1 - k * 0x1p-24) * b;
                    mag[at] = mg;
                }
        }
    free(acc);
    free(za);
    free(va);
}

START_TEST(test_winograd_backward_weights_within_error_bound)
{
    const wg_case *c = &cases[_i];
    const del_conv2d_shape s = shape_of(c);
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)c->n * c->c_in * c->h * c->w, yl = (size_t)c->n * c->c_out * c->h * c->w;
    size_t wl = (size_t)c->c_out * c->c_in * 9;
    float *x = rand_buf(xl, 380 + _i), *w = rand_buf(wl, 390 + _i), *dy = rand_buf(yl, 400 + _i);
    float *dw = fill_buf(wl, 0.0f), *twice = malloc(wl * sizeof *twice);
    double *want = malloc(wl * sizeof *want), *bound = malloc(wl * sizeof *bound), *mag = malloc(wl * sizeof *mag);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_backward(&s, x, w, dy, NULL, dw, NULL, ws);
    reference_dw(c, x, dy, want, bound, mag);
    check_bound("dw", _i, wl, dw, want, bound, mag);
    /* dw is added to: a second call on the result doubles it exactly;
     * with dx wanted too (dy's transform then comes from the input
     * gradient's gathered rows) the weight gradient is the same bits */
    memcpy(twice, dw, wl * sizeof *dw);
    float *dx = malloc(xl * sizeof *dx);
    be->conv2d_backward(&s, x, w, dy, dx, twice, NULL, ws);
    free(dx);
    for (size_t e = 0; e < wl; e++)
        ck_assert_msg(twice[e] == 2.0f * dw[e], "case %d dw[%zu]: second call gave %.9g, want %.9g", _i, e,
                      twice[e], 2.0f * dw[e]);
    free(x);
    free(w);
    free(dy);
    free(dw);
    free(twice);
    free(want);
    free(bound);
    free(mag);
    free(ws);
}
END_TEST

/* conv2d_forward_affine on the Winograd path: exactly the plain
 * convolution followed by the epilogue's float expressions and the
 * maxpool comparisons, for every combination of bias, affine, relu, pool */
START_TEST(test_winograd_affine_relu_pool_equal_composition)
{
    const wg_case c = {18, 16, 7, 10, 20};
    const del_conv2d_shape s = shape_of(&c);
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)c.n * c.c_in * c.h * c.w, yl = (size_t)c.n * c.c_out * c.h * c.w;
    float *x = rand_buf(xl, 350), *w = rand_buf((size_t)c.c_out * c.c_in * 9, 351);
    float *bias = rand_buf((size_t)c.c_out, 352), *scale = rand_buf((size_t)c.c_out, 353);
    float *shift = rand_buf((size_t)c.c_out, 354), *z = malloc(yl * sizeof *z), *y = malloc(yl * sizeof *y);
    float *want = malloc(yl * sizeof *want);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_forward(&s, x, w, NULL, z, ws);
    for (int mode = 0; mode < 16; mode++) {
        int with_bias = mode & 1, affine = mode & 2, relu = (mode & 4) != 0, pool = (mode & 8) != 0;
        for (size_t e = 0; e < yl; e++) {
            int o = (int)(e / ((size_t)c.h * c.w) % (size_t)c.c_out);
            float b = with_bias ? bias[o] : 0.0f, v;
            if (!affine && !relu)
                v = z[e] + b;
            else {
                float sc = affine ? scale[o] : 1.0f, sh = affine ? shift[o] : 0.0f;
                v = (z[e] + b) * sc + sh;
                if (relu && !(v > 0.0f))
                    v = 0.0f;
            }
            want[e] = v;
        }
        size_t len = yl;
        if (pool) {
            int ph = c.h / 2, pw = c.w / 2;
            len = (size_t)c.n * c.c_out * ph * pw;
            for (size_t p = 0; p < (size_t)c.n * c.c_out; p++)
                for (int r = 0; r < ph; r++)
                    for (int q = 0; q < pw; q++) {
                        const float *src = want + p * c.h * c.w + (size_t)(2 * r) * c.w + 2 * q;
                        float a = src[0], b = src[1], cc = src[c.w], d = src[c.w + 1];
                        float ab = b > a ? b : a, cd = d > cc ? d : cc;
                        want[(p * ph + r) * pw + q] = cd > ab ? cd : ab; /* in place: written behind the reads */
                    }
        }
        be->conv2d_forward_affine(&s, x, w, with_bias ? bias : NULL, affine ? scale : NULL, affine ? shift : NULL,
                                  relu, pool, y, ws);
        for (size_t e = 0; e < len; e++)
            ck_assert_msg(y[e] == want[e], "mode %d: y[%zu] = %.9g, want %.9g", mode, e, y[e], want[e]);
    }
    free(x);
    free(w);
    free(bias);
    free(scale);
    free(shift);
    free(z);
    free(y);
    free(want);
    free(ws);
}
END_TEST

/* A convolution that reads its input through a training batchnorm and
 * relu (h never written) gives the bits of the batchnorm's output
 * convolved: y, dx (the gradient of h), dw, for every case and 1-4 threads. */
START_TEST(test_winograd_input_bn_equals_batchnorm_then_conv)
{
    const wg_case *c = &cases[_i];
    const del_conv2d_shape s = shape_of(c);
    const del_backend *be = del_backend_get();
    ck_assert(be->conv2d_fuses_input_bn(&s));
    size_t xl = (size_t)c->n * c->c_in * c->h * c->w, yl = (size_t)c->n * c->c_out * c->h * c->w;
    size_t wl = (size_t)c->c_out * c->c_in * 9;
    float *x = rand_buf(xl, 380), *w = rand_buf(wl, 381), *dy = rand_buf(yl, 382);
    float *gamma = rand_buf((size_t)c->c_in, 383), *beta = rand_buf((size_t)c->c_in, 384);
    float *st = fill_buf(4 * (size_t)c->c_in, 1.0f), *h = malloc(xl * sizeof *h);
    float *sc = malloc((size_t)c->c_in * sizeof *sc), *sh = malloc((size_t)c->c_in * sizeof *sh);
    float *y0 = malloc(yl * sizeof *y0), *dx0 = malloc(xl * sizeof *dx0), *dw0 = fill_buf(wl, 0.0f);
    float *y = malloc(yl * sizeof *y), *dx = malloc(xl * sizeof *dx), *dw = fill_buf(wl, 0.0f);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    const int ci = c->c_in;
    be->batchnorm_forward_train(c->n, ci, c->h * c->w, x, gamma, beta, 1e-5f, 0.1f, st, st + ci, 1, h, st + 2 * ci,
                                st + 3 * ci, NULL);
    int zeros = 0;
    for (size_t e = 0; e < xl; e++)
        zeros += h[e] == 0.0f;
    ck_assert(zeros > 0 && zeros < (int)xl); /* the relu acts */
    for (int ch = 0; ch < ci; ch++) {
        sc[ch] = gamma[ch] * st[3 * ci + ch];
        sh[ch] = beta[ch] - st[2 * ci + ch] * sc[ch];
    }
    be->conv2d_forward(&s, h, w, NULL, y0, ws);
    be->conv2d_backward(&s, h, w, dy, dx0, dw0, NULL, ws);
    static const int threads[] = {1, 2, 3, 4};
    for (int t = 0; t < 4; t++) {
        ck_assert_del_ok(del_set_num_threads(threads[t]));
        memset(dw, 0, wl * sizeof *dw);
        be->conv2d_forward_input_bn(&s, x, sc, sh, w, y, ws);
        be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, dx, dw, ws);
        ck_assert_msg(memcmp(y, y0, yl * 4) == 0, "y differs, %d threads", threads[t]);
        ck_assert_msg(memcmp(dx, dx0, xl * 4) == 0, "dx differs, %d threads", threads[t]);
        ck_assert_msg(memcmp(dw, dw0, wl * 4) == 0, "dw differs, %d threads", threads[t]);
        /* the weight gradient alone, and the input gradient alone */
        memset(dw, 0, wl * sizeof *dw);
        be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, NULL, dw, ws);
        ck_assert_msg(memcmp(dw, dw0, wl * 4) == 0, "dw alone differs, %d threads", threads[t]);
        be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, dx, NULL, ws);
        ck_assert_msg(memcmp(dx, dx0, xl * 4) == 0, "dx alone differs, %d threads", threads[t]);
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(w);
    free(dy);
    free(gamma);
    free(beta);
    free(st);
    free(h);
    free(sc);
    free(sh);
    free(y0);
    free(dx0);
    free(dw0);
    free(y);
    free(dx);
    free(dw);
    free(ws);
}
END_TEST

/* No cross-talk between the lanes of a group: an image's output and input
 * gradient do not change when the other images of the batch do. (They
 * may change with the image's position in its group of 16: OpenBLAS may
 * round the columns of a gemm differently by position, e.g. with the
 * Haswell kernels.) */
START_TEST(test_winograd_image_result_independent_of_other_images)
{
    const wg_case c = {21, 16, 9, 9, 16};
    const del_backend *be = del_backend_get();
    const del_conv2d_shape s = shape_of(&c);
    size_t img_x = (size_t)c.c_in * c.h * c.w, img_y = (size_t)c.c_out * c.h * c.w;
    float *x = rand_buf(img_x * c.n, 360), *w = rand_buf((size_t)c.c_out * c.c_in * 9, 361);
    float *dy = rand_buf(img_y * c.n, 362), *x2 = rand_buf(img_x * c.n, 363), *dy2 = rand_buf(img_y * c.n, 364);
    float *y = malloc(img_y * c.n * sizeof *y), *dx = malloc(img_x * c.n * sizeof *dx);
    float *y2 = malloc(img_y * c.n * sizeof *y2), *dx2 = malloc(img_x * c.n * sizeof *dx2);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_forward(&s, x, w, NULL, y, ws);
    be->conv2d_backward(&s, x, w, dy, dx, NULL, NULL, ws);
    static const int pick[] = {0, 7, 15, 16, 20};
    for (int k = 0; k < 5; k++) {
        int i = pick[k];
        memcpy(x2 + i * img_x, x + i * img_x, img_x * sizeof *x);
        memcpy(dy2 + i * img_y, dy + i * img_y, img_y * sizeof *dy);
    }
    be->conv2d_forward(&s, x2, w, NULL, y2, ws);
    be->conv2d_backward(&s, x2, w, dy2, dx2, NULL, NULL, ws);
    for (int k = 0; k < 5; k++) {
        int i = pick[k];
        ck_assert_msg(memcmp(y2 + i * img_y, y + i * img_y, img_y * sizeof *y) == 0, "y of image %d changed", i);
        ck_assert_msg(memcmp(dx2 + i * img_x, dx + i * img_x, img_x * sizeof *dx) == 0, "dx of image %d changed", i);
    }
    /* and the other images did change */
    ck_assert(memcmp(y2 + img_y, y + img_y, img_y * sizeof *y) != 0);
    free(x);
    free(w);
    free(dy);
    free(x2);
    free(dy2);
    free(y);
    free(dx);
    free(y2);
    free(dx2);
    free(ws);
}
END_TEST

typedef struct wg_out {
    float *y, *yp, *dx, *dw, *db;
} wg_out;

static void run_threads(int threads, const wg_case *c, wg_out *o)
{
    const del_backend *be = del_backend_get();
    ck_assert_del_ok(del_set_num_threads(threads));
    const del_conv2d_shape s = shape_of(c);
    size_t xl = (size_t)c->n * c->c_in * c->h * c->w, yl = (size_t)c->n * c->c_out * c->h * c->w;
    size_t wl = (size_t)c->c_out * c->c_in * 9;
    float *x = rand_buf(xl, 370), *w = rand_buf(wl, 371), *dy = rand_buf(yl, 372);
    float *bias = rand_buf((size_t)c->c_out, 373), *sc = rand_buf((size_t)c->c_out, 374);
    float *sh = rand_buf((size_t)c->c_out, 375);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    o->y = malloc(yl * sizeof(float));
    o->yp = malloc(yl / 4 * sizeof(float));
    o->dx = malloc(xl * sizeof(float));
    o->dw = fill_buf(wl, 0.0f);
    o->db = fill_buf((size_t)c->c_out, 0.0f);
    be->conv2d_forward(&s, x, w, bias, o->y, ws);
    be->conv2d_forward_affine(&s, x, w, bias, sc, sh, 1, 1, o->yp, ws);
    be->conv2d_backward(&s, x, w, dy, o->dx, o->dw, o->db, ws);
    free(x);
    free(w);
    free(dy);
    free(bias);
    free(sc);
    free(sh);
    free(ws);
}

START_TEST(test_winograd_bit_identical_for_1_2_3_4_threads)
{
    /* 3 groups of images, 2 chunks of tile rows each */
    const wg_case c = {37, 16, 16, 12, 32};
    size_t xl = (size_t)c.n * c.c_in * c.h * c.w, yl = (size_t)c.n * c.c_out * c.h * c.w;
    size_t wl = (size_t)c.c_out * c.c_in * 9;
    wg_out ref, other;
    run_threads(1, &c, &ref);
    static const int counts[] = {2, 3, 4};
    for (int t = 0; t < 3; t++) {
        run_threads(counts[t], &c, &other);
        ck_assert_msg(memcmp(ref.y, other.y, yl * 4) == 0, "y differs with %d threads", counts[t]);
        ck_assert_msg(memcmp(ref.yp, other.yp, yl / 4 * 4) == 0, "pooled y differs with %d threads", counts[t]);
        ck_assert_msg(memcmp(ref.dx, other.dx, xl * 4) == 0, "dx differs with %d threads", counts[t]);
        ck_assert_msg(memcmp(ref.dw, other.dw, wl * 4) == 0, "dw differs with %d threads", counts[t]);
        ck_assert_msg(memcmp(ref.db, other.db, (size_t)c.c_out * 4) == 0, "db differs with %d threads", counts[t]);
        free(other.y);
        free(other.yp);
        free(other.dx);
        free(other.dw);
        free(other.db);
    }
    free(ref.y);
    free(ref.yp);
    free(ref.dx);
    free(ref.dw);
    free(ref.db);
}
END_TEST

/* Every result of a few Winograd runs, one after the other: forward,
 * pooled forward and both gradients of the 37-image case above (3 groups,
 * the last part-empty), then with a batchnorm + relu on the input and
 * partial tiles the forward, both gradients, and the weight gradient
 * alone (whose dy transform is a kernel of its own). 1 thread. */
static float *isa_results(size_t *len)
{
    const del_backend *be = del_backend_get();
    const wg_case a = {37, 16, 16, 12, 32}, b = {17, 16, 7, 9, 24};
    size_t axl = (size_t)a.n * a.c_in * a.h * a.w, ayl = (size_t)a.n * a.c_out * a.h * a.w;
    size_t awl = (size_t)a.c_out * a.c_in * 9;
    size_t bxl = (size_t)b.n * b.c_in * b.h * b.w, byl = (size_t)b.n * b.c_out * b.h * b.w;
    size_t bwl = (size_t)b.c_out * b.c_in * 9;
    *len = ayl + ayl / 4 + axl + awl + (size_t)a.c_out + byl + bxl + 2 * bwl;
    float *all = malloc(*len * sizeof *all), *o = all;
    wg_out r;
    run_threads(1, &a, &r);
    memcpy(o, r.y, ayl * 4), o += ayl;
    memcpy(o, r.yp, ayl / 4 * 4), o += ayl / 4;
    memcpy(o, r.dx, axl * 4), o += axl;
    memcpy(o, r.dw, awl * 4), o += awl;
    memcpy(o, r.db, (size_t)a.c_out * 4), o += a.c_out;
    free(r.y);
    free(r.yp);
    free(r.dx);
    free(r.dw);
    free(r.db);
    const del_conv2d_shape s = shape_of(&b);
    float *x = rand_buf(bxl, 390), *w = rand_buf(bwl, 391), *dy = rand_buf(byl, 392);
    float *sc = rand_buf((size_t)b.c_in, 393), *sh = rand_buf((size_t)b.c_in, 394);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    be->conv2d_forward_input_bn(&s, x, sc, sh, w, o, ws), o += byl;
    memset(o, 0, 2 * bwl * sizeof *o);
    be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, o, o + bxl, ws), o += bxl + bwl;
    be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, NULL, o, ws);
    free(x);
    free(w);
    free(dy);
    free(sc);
    free(sh);
    free(ws);
    return all;
}

static const char *g_self; /* argv[0] */

/* isa_results of this program run again with DEL_CPU_ISA = level, read
 * from its output; *len floats. */
static float *isa_results_at(const char *level, size_t *len)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        setenv("DEL_CPU_ISA", level, 1);
        /* Check's choice of cases here would skip the child's one */
        unsetenv("CK_RUN_SUITE");
        unsetenv("CK_RUN_CASE");
        execl(g_self, g_self, "--isa-results", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t cap = (size_t)1 << 20, have = 0;
    char *got = malloc(cap);
    ssize_t n;
    while ((n = read(fd[0], got + have, cap - have)) > 0)
        if ((have += (size_t)n) == cap)
            got = realloc(got, cap *= 2);
    close(fd[0]);
    int wstatus;
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "%s --isa-results failed at %s", g_self, level);
    ck_assert_msg(have > 0 && have % sizeof(float) == 0, "%s --isa-results gave %zu bytes at %s", g_self, have, level);
    *len = have / sizeof(float);
    return (float *)got;
}

/* The transforms' versions per SIMD level (core/isa.h) only move data
 * differently, so the results at each level (capped at what the CPU has)
 * are the same bits. All come from child processes started alike, so
 * that OpenBLAS picks the same kernels for each (under valgrind, say,
 * this process sees another CPU). */
START_TEST(test_winograd_bit_identical_at_every_isa_level)
{
    static const char *const levels[] = {"avx2", "avx512"};
    size_t len;
    float *ref = isa_results_at("generic", &len);
    for (int k = 0; k < 2; k++) {
        size_t got_len;
        float *got = isa_results_at(levels[k], &got_len);
        ck_assert_msg(got_len == len, "DEL_CPU_ISA=%s: %zu results, not %zu", levels[k], got_len, len);
        size_t first = 0;
        while (first < len && memcmp(got + first, ref + first, sizeof *ref) == 0)
            first++;
        ck_assert_msg(first == len, "DEL_CPU_ISA=%s: result %zu of %zu differs (%.9g, generic %.9g)", levels[k],
                      first, len, first < len ? got[first] : 0.0, first < len ? ref[first] : 0.0);
        free(got);
    }
    free(ref);
}
END_TEST

/* The child's side of isa_results_at, run as a test of its own (the
 * helpers assert) with no report on stdout. */
START_TEST(write_isa_results)
{
    size_t len;
    float *all = isa_results(&len);
    ck_assert(fwrite(all, sizeof *all, len, stdout) == len && fflush(stdout) == 0);
    free(all);
}
END_TEST

static Suite *winograd_suite(void)
{
    Suite *s = suite_create("backend_winograd");
    TCase *t = tcase_create("winograd");
    tcase_set_timeout(t, 300);
    tcase_add_loop_test(t, test_winograd_forward_within_error_bound, 0, N_CASES);
    tcase_add_loop_test(t, test_winograd_backward_data_within_error_bound, 0, N_CASES);
    tcase_add_loop_test(t, test_winograd_backward_weights_within_error_bound, 0, N_CASES);
    tcase_add_test(t, test_winograd_affine_relu_pool_equal_composition);
    tcase_add_loop_test(t, test_winograd_input_bn_equals_batchnorm_then_conv, 0, N_CASES);
    tcase_add_test(t, test_winograd_image_result_independent_of_other_images);
    tcase_add_test(t, test_winograd_bit_identical_for_1_2_3_4_threads);
    tcase_add_test(t, test_winograd_bit_identical_at_every_isa_level);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    g_self = argv[0];
    if (argc > 1 && strcmp(argv[1], "--isa-results") == 0) {
        Suite *s = suite_create("isa_results");
        TCase *t = tcase_create("write");
        tcase_set_timeout(t, 300);
        tcase_add_test(t, write_isa_results);
        suite_add_tcase(s, t);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    return test_run_suite(winograd_suite());
}
