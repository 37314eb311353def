/* Backend: NaN and infinities through every path that applies a relu or a
 * max pooling, as PyTorch has them: relu(NaN) = NaN, relu(+inf) = +inf,
 * relu(-inf) = 0, and a pooling window holding a NaN gives NaN (argmax:
 * the last NaN in scan order). A NaN must reach exactly the outputs that
 * depend on it, and everything else keep its value (finite inputs, the
 * same bits as without the special values), for 1 to 4 threads.
 *
 * The clones of the Winograd transforms and the 2x2 max pooling
 * (target_clones avx512f / avx2 / default) are picked by the CPU at load
 * time: on an AVX-512 machine a plain run tests the avx512f versions,
 * valgrind (which reports no AVX-512) the avx2 ones, and the sanitizer
 * build, which has no clones, the default code. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"
#include "backend_bufs.h"

#define MAX_THREADS 4

/* x86's default NaN has its sign bit set; both signs must pass. */
static float neg_nan(void)
{
    return -NAN;
}

/* relu as PyTorch defines it, written independently of the library */
static float relu_ref(float v)
{
    if (isnan(v))
        return v;
    return v > 0.0f ? v : 0.0f;
}

/* got equals want: both NaN, or the same bits (so +0.0 and -0.0 differ) */
static int same(float got, float want)
{
    if (isnan(want))
        return isnan(got);
    return memcmp(&got, &want, sizeof got) == 0;
}

/* Check's assertions are slow per call: count mismatches, report the first. */
typedef struct mismatch {
    size_t count, first;
    float got, want;
} mismatch;

static void expect_same(mismatch *m, size_t i, float got, float want)
{
    if (same(got, want))
        return;
    if (m->count++ == 0) {
        m->first = i;
        m->got = got;
        m->want = want;
    }
}

#define ASSERT_NO_MISMATCH(m, what, threads)                                                                    \
    ck_assert_msg((m).count == 0, "%s, %d threads: %zu mismatches, first [%zu] = %.8g, want %.8g", (what),     \
                  (threads), (m).count, (m).first, (m).got, (m).want)

/* ---- relu ---- */

START_TEST(test_relu_forward_keeps_nan_and_maps_infinities_as_pytorch)
{
    const del_backend *be = del_backend_get();
    /* five blocks of the elementwise kernels, the last one short */
    const int64_t count = 4 * 16384 + 123;
    const struct {
        int64_t at;
        float v;
    } special[] = {{0, NAN},           {5, INFINITY},  {7, -INFINITY}, {9, -0.0f}, {16383, 0.0f},
                   {16384, neg_nan()}, {40000, NAN},   {40001, INFINITY}, {65536, -INFINITY},
                   {count - 1, NAN}};
    float *x = rand_buf((size_t)count, 1), *y = fill_buf((size_t)count, 9.0f), *xi = malloc((size_t)count * 4);
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++)
        x[special[k].at] = special[k].v;
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        be->relu_forward(count, x, y);
        memcpy(xi, x, (size_t)count * sizeof(float));
        be->relu_forward(count, xi, xi);
        mismatch m = {0}, mi = {0};
        for (int64_t i = 0; i < count; i++) {
            expect_same(&m, (size_t)i, y[i], relu_ref(x[i]));
            expect_same(&mi, (size_t)i, xi[i], relu_ref(x[i]));
        }
        ASSERT_NO_MISMATCH(m, "relu", t);
        ASSERT_NO_MISMATCH(mi, "relu in place", t);
        ck_assert(isnan(y[0]) && isnan(y[16384]) && isnan(y[count - 1]));
        ck_assert(y[5] == INFINITY && y[40001] == INFINITY);
        /* -inf and -0.0 give +0.0, as before NaN propagated */
        ck_assert(y[7] == 0.0f && !signbit(y[7]) && y[9] == 0.0f && !signbit(y[9]));
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(y);
    free(xi);
}
END_TEST

/* ---- residual joins ---- */

START_TEST(test_residual_join_keeps_nan_and_maps_infinities)
{
    const del_backend *be = del_backend_get();
    const int rows = 3;
    const int64_t cols = 16384 + 100; /* two tasks per row */
    size_t len = (size_t)rows * (size_t)cols;
    float *a = rand_buf(len, 2), *b = rand_buf(len, 3), *y = fill_buf(len, 9.0f);
    const float scale[3] = {1.0f, 0.5f, 2.0f};
    a[3] = NAN;
    b[100] = neg_nan();
    a[200] = INFINITY;
    a[201] = -INFINITY;
    a[202] = INFINITY, b[202] = -INFINITY; /* inf - inf */
    a[cols + 16384] = NAN;                 /* second task of row 1 */
    b[2 * cols + 7] = INFINITY;
    a[len - 1] = NAN;
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        for (int scaled = 0; scaled < 2; scaled++) {
            be->residual_join_forward(rows, cols, a, scaled ? scale : NULL, b, y);
            mismatch m = {0};
            for (int r = 0; r < rows; r++)
                for (int64_t j = 0; j < cols; j++) {
                    size_t i = (size_t)r * (size_t)cols + (size_t)j;
                    float s = scaled ? scale[r] : 1.0f;
                    expect_same(&m, i, y[i], relu_ref(s * a[i] + b[i]));
                }
            ASSERT_NO_MISMATCH(m, scaled ? "join, scaled" : "join", t);
            ck_assert(isnan(y[3]) && isnan(y[100]) && isnan(y[202]) && isnan(y[cols + 16384]) &&
                      isnan(y[len - 1]));
            ck_assert(y[200] == INFINITY && y[201] == 0.0f && y[2 * cols + 7] == INFINITY);
        }
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(a);
    free(b);
    free(y);
}
END_TEST

START_TEST(test_residual_join_bn_keeps_nan_and_maps_infinities)
{
    const del_backend *be = del_backend_get();
    const int n = 5, c = 3, hw = 37;
    size_t len = (size_t)n * c * hw;
    float *a = rand_buf(len, 4), *b = rand_buf(len, 5), *y = fill_buf(len, 9.0f);
    const float as[3] = {0.7f, 1.3f, 0.2f}, ash[3] = {0.1f, -0.2f, 0.3f};
    const float bs[3] = {1.1f, 0.9f, 0.4f}, bsh[3] = {-0.1f, 0.05f, 0.2f};
    const float scale[5] = {1.0f, 2.0f, 0.0f, 0.5f, 1.25f};
    a[4] = NAN;                 /* image 0 */
    b[hw + 3] = neg_nan();      /* image 0, channel 1 */
    a[2 * c * hw + 1] = NAN;    /* image 2: scale 0 must not hide it */
    a[3 * c * hw + 2] = INFINITY;
    a[3 * c * hw + 5] = -INFINITY;
    b[4 * c * hw + 2 * hw] = INFINITY;
    b[len - 1] = NAN;
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        for (int proj = 0; proj < 2; proj++) {
            be->residual_join_forward_bn(n, c, hw, a, as, ash, scale, b, proj ? bs : NULL, proj ? bsh : NULL, y);
            mismatch m = {0};
            for (int i = 0; i < n; i++)
                for (int ch = 0; ch < c; ch++)
                    for (int k = 0; k < hw; k++) {
                        size_t o = ((size_t)i * c + ch) * hw + k;
                        float u = proj ? b[o] * bs[ch] + bsh[ch] : b[o];
                        expect_same(&m, o, y[o], relu_ref(scale[i] * (a[o] * as[ch] + ash[ch]) + u));
                    }
            ASSERT_NO_MISMATCH(m, proj ? "join_bn, projection" : "join_bn", t);
            ck_assert(isnan(y[4]) && isnan(y[hw + 3]) && isnan(y[2 * c * hw + 1]) && isnan(y[len - 1]));
            ck_assert(y[3 * c * hw + 2] == INFINITY && y[3 * c * hw + 5] == 0.0f);
            ck_assert(y[4 * c * hw + 2 * hw] == INFINITY);
        }
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(a);
    free(b);
    free(y);
}
END_TEST

/* ---- batchnorm + relu ---- */

/* Training mode: a NaN or an infinity in a channel makes its batch mean
 * and variance NaN, hence every output of that channel (PyTorch too); the
 * other channels keep their bits. */
START_TEST(test_bn_relu_train_channel_with_nan_or_inf_is_nan_others_unchanged)
{
    const del_backend *be = del_backend_get();
    const int n = 6, c = 4, hw = 29;
    size_t len = (size_t)n * c * hw;
    float *x = rand_buf(len, 6), *xs = malloc(len * sizeof(float));
    float *g = rand_buf((size_t)c, 7), *b = rand_buf((size_t)c, 8);
    float *yref = fill_buf(len, 9.0f), *y = fill_buf(len, 9.0f), st[4 * 4], stref[4 * 4];
    void *ws = malloc(be->batchnorm_workspace(n, c));
    memcpy(xs, x, len * sizeof(float));
    xs[((size_t)3 * c + 1) * hw + 5] = NAN;       /* channel 1 */
    xs[((size_t)0 * c + 2) * hw + 0] = INFINITY;  /* channel 2, the shift of its sums */
    xs[((size_t)5 * c + 3) * hw + 28] = -INFINITY; /* channel 3 */
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        for (int use_ws = 0; use_ws < 2; use_ws++) {
            for (int k = 0; k < 8; k++)
                stref[k] = st[k] = k < 4 ? 0.0f : 1.0f;
            be->batchnorm_forward_train(n, c, hw, x, g, b, 1e-5f, 0.1f, stref, stref + 4, 1, yref, stref + 8,
                                        stref + 12, use_ws ? ws : NULL);
            be->batchnorm_forward_train(n, c, hw, xs, g, b, 1e-5f, 0.1f, st, st + 4, 1, y, st + 8, st + 12,
                                        use_ws ? ws : NULL);
            mismatch m = {0};
            for (int i = 0; i < n; i++)
                for (int ch = 0; ch < c; ch++)
                    for (int k = 0; k < hw; k++) {
                        size_t o = ((size_t)i * c + ch) * hw + k;
                        expect_same(&m, o, y[o], ch == 0 ? yref[o] : NAN);
                    }
            ASSERT_NO_MISMATCH(m, use_ws ? "bn train + relu, workspace" : "bn train + relu, channels", t);
        }
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(xs);
    free(g);
    free(b);
    free(yref);
    free(y);
    free(ws);
}
END_TEST

/* Eval mode is elementwise: y = relu(x * scale + shift) with gamma > 0,
 * so +inf stays +inf and -inf gives 0. */
START_TEST(test_bn_relu_eval_keeps_nan_and_maps_infinities_elementwise)
{
    const del_backend *be = del_backend_get();
    const int n = 5, c = 3, hw = 23;
    size_t len = (size_t)n * c * hw;
    float *x = rand_buf(len, 9), *xs = malloc(len * sizeof(float)), *yref = fill_buf(len, 9.0f);
    float *y = fill_buf(len, 9.0f);
    const float g[3] = {0.5f, 1.5f, 2.0f}, b[3] = {0.1f, -0.3f, 0.2f};
    const float rm[3] = {0.05f, -0.1f, 0.0f}, rv[3] = {0.8f, 1.2f, 0.5f};
    memcpy(xs, x, len * sizeof(float));
    const size_t nan_at[] = {0, 2 * hw + 7, (size_t)3 * c * hw + hw + 22, len - 1};
    for (size_t k = 0; k < 4; k++)
        xs[nan_at[k]] = k % 2 ? neg_nan() : NAN;
    const size_t pinf = (size_t)c * hw + 3, ninf = (size_t)4 * c * hw + 2 * hw + 1;
    xs[pinf] = INFINITY;
    xs[ninf] = -INFINITY;
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        be->batchnorm_forward_eval(n, c, hw, x, g, b, rm, rv, 1e-5f, 1, yref);
        be->batchnorm_forward_eval(n, c, hw, xs, g, b, rm, rv, 1e-5f, 1, y);
        mismatch m = {0};
        for (size_t o = 0; o < len; o++) {
            float want = isnan(xs[o]) ? NAN : o == pinf ? INFINITY : o == ninf ? 0.0f : yref[o];
            expect_same(&m, o, y[o], want);
        }
        ASSERT_NO_MISMATCH(m, "bn eval + relu", t);
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(xs);
    free(yref);
    free(y);
}
END_TEST

/* ---- convolution epilogues (and their 2x2 pooling) ---- */

/* One shape per conv path: per-tap gemms (c_in >= 8), wide im2col (c_in
 * 1), strided im2col, pointwise, Winograd (3x3 / pad 1, 16 channels). */
static const del_conv2d_shape conv_shapes[] = {
    /* n, c_in, h_in, w_in, c_out, h_out, w_out, kernel, stride, pad */
    {3, 8, 7, 6, 5, 7, 6, 3, 1, 1},
    {2, 1, 9, 9, 4, 9, 9, 3, 1, 1},
    {2, 3, 9, 7, 4, 5, 4, 3, 2, 1},
    {2, 9, 4, 5, 4, 4, 5, 1, 1, 0},
    {3, 16, 8, 8, 16, 8, 8, 3, 1, 1},
    {17, 16, 6, 10, 16, 6, 10, 3, 1, 1}, /* two Winograd groups, partial tiles */
};
#define N_CONV (int)(sizeof conv_shapes / sizeof conv_shapes[0])

static size_t conv_out_len(const del_conv2d_shape *s, int pool)
{
    int ho = pool ? s->h_out / 2 : s->h_out, wo = pool ? s->w_out / 2 : s->w_out;
    return (size_t)s->n * s->c_out * ho * wo;
}

/* A NaN, +inf or -inf in a channel's bias (no affine map) or shift makes
 * every output of that channel NaN, +inf or 0, pooled or not; the other
 * channels keep the bits of the run without them. */
START_TEST(test_conv_epilogue_relu_keeps_nan_and_maps_infinities_per_channel)
{
    const del_conv2d_shape *s = &conv_shapes[_i];
    const del_backend *be = del_backend_get();
    size_t xl = (size_t)s->n * s->c_in * s->h_in * s->w_in, wl = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
    float *x = rand_buf(xl, 10 + _i), *w = rand_buf(wl, 11), *bias = rand_buf((size_t)s->c_out, 12);
    float *scale = rand_buf((size_t)s->c_out, 13), *shift = rand_buf((size_t)s->c_out, 14);
    float *bias_s = malloc((size_t)s->c_out * sizeof(float)), *shift_s = malloc((size_t)s->c_out * sizeof(float));
    memcpy(bias_s, bias, (size_t)s->c_out * sizeof(float));
    memcpy(shift_s, shift, (size_t)s->c_out * sizeof(float));
    const float special[4] = {0.0f, NAN, INFINITY, -INFINITY}; /* what channels 1..3 get */
    for (int co = 1; co < 4; co++) {
        bias_s[co] = special[co];
        shift_s[co] = special[co];
    }
    size_t yl = conv_out_len(s, 0);
    float *yref = fill_buf(yl, 9.0f), *y = fill_buf(yl, 9.0f);
    void *ws = malloc(be->conv2d_workspace(s));
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        for (int pool = 0; pool < 2; pool++)
            for (int affine = 0; affine < 2; affine++) {
                const float *sc = affine ? scale : NULL;
                be->conv2d_forward_affine(s, x, w, bias, sc, affine ? shift : NULL, 1, pool, yref, ws);
                be->conv2d_forward_affine(s, x, w, affine ? bias : bias_s, sc, affine ? shift_s : NULL, 1, pool, y,
                                          ws);
                size_t plane = conv_out_len(s, pool) / ((size_t)s->n * s->c_out);
                mismatch m = {0};
                for (size_t o = 0; o < conv_out_len(s, pool); o++) {
                    int co = (int)(o / plane % (size_t)s->c_out);
                    float want = co == 0 || co >= 4 ? yref[o] : co == 1 ? NAN : co == 2 ? INFINITY : 0.0f;
                    expect_same(&m, o, y[o], want);
                }
                ck_assert_msg(m.count == 0, "shape %d pool %d affine %d, %d threads: %zu mismatches, first [%zu]"
                              " = %.8g, want %.8g", _i, pool, affine, t, m.count, m.first, m.got, m.want);
            }
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(w);
    free(bias);
    free(scale);
    free(shift);
    free(bias_s);
    free(shift_s);
    free(yref);
    free(y);
    free(ws);
}
END_TEST

/* Whether output (oh, ow) reads input (ih, iw) through the kernel. */
static int in_field(const del_conv2d_shape *s, int oh, int ow, int ih, int iw)
{
    int dh = ih - (oh * s->stride - s->pad), dw = iw - (ow * s->stride - s->pad);
    return dh >= 0 && dh < s->kernel && dw >= 0 && dw < s->kernel;
}

/* Whether output (oh, ow) may see input (ih, iw): its receptive field
 * or, for Winograd, the 6x6 input window of its 4x4 output tile (the
 * transforms mix a tile's window, so a NaN may reach the whole tile). */
static int may_see(const del_conv2d_shape *s, int winograd, int oh, int ow, int ih, int iw)
{
    if (!winograd)
        return in_field(s, oh, ow, ih, iw);
    int r0 = oh / 4 * 4 - 1, c0 = ow / 4 * 4 - 1;
    return ih >= r0 && ih < r0 + 6 && iw >= c0 && iw < c0 + 6;
}

/* A NaN input pixel: conv + bias + affine + relu (pooled or not) is NaN
 * at every output (every channel) whose receptive field holds it, finite
 * at every output that cannot see it, and the pooled result equals the
 * unpooled one followed by maxpool2d_forward, NaN for NaN. */
START_TEST(test_conv_relu_nan_pixel_reaches_its_receptive_field_pooled_or_not)
{
    const del_conv2d_shape *s = &conv_shapes[_i];
    const del_backend *be = del_backend_get();
    int winograd = be->conv2d_fuses_input_bn(s);
    size_t xl = (size_t)s->n * s->c_in * s->h_in * s->w_in, wl = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
    float *x = rand_buf(xl, 20 + _i), *w = rand_buf(wl, 21), *bias = rand_buf((size_t)s->c_out, 22);
    float *scale = rand_buf((size_t)s->c_out, 23), *shift = rand_buf((size_t)s->c_out, 24);
    /* the NaN: the last image, the last input channel, an interior pixel */
    int img = s->n - 1, ci = s->c_in - 1, ih = s->h_in / 2, iw = s->w_in / 2 - 1;
    x[(((size_t)img * s->c_in + ci) * s->h_in + ih) * s->w_in + iw] = NAN;
    int ph = s->h_out / 2, pw = s->w_out / 2;
    size_t yl = conv_out_len(s, 0), pl = conv_out_len(s, 1);
    float *y = fill_buf(yl, 9.0f), *yp = fill_buf(pl, 9.0f), *ypref = fill_buf(pl, 9.0f);
    int32_t *am = malloc(pl * sizeof *am + 1);
    void *ws = malloc(be->conv2d_workspace(s));
    del_pool_shape ps = {s->n, s->c_out, s->h_out, s->w_out, ph, pw, 2, 2};
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        be->conv2d_forward_affine(s, x, w, bias, scale, shift, 1, 0, y, ws);
        be->conv2d_forward_affine(s, x, w, bias, scale, shift, 1, 1, yp, ws);
        be->maxpool2d_forward(&ps, y, ypref, am);
        size_t bad = 0;
        for (int i = 0; i < s->n; i++)
            for (int co = 0; co < s->c_out; co++)
                for (int oh = 0; oh < s->h_out; oh++)
                    for (int ow = 0; ow < s->w_out; ow++) {
                        float v = y[(((size_t)i * s->c_out + co) * s->h_out + oh) * s->w_out + ow];
                        if (i == img && in_field(s, oh, ow, ih, iw))
                            bad += !isnan(v);
                        else if (i != img || !may_see(s, winograd, oh, ow, ih, iw))
                            bad += !isfinite(v);
                    }
        ck_assert_msg(bad == 0, "shape %d, %d threads: %zu outputs wrong (NaN expected or not)", _i, t, bad);
        mismatch m = {0};
        for (size_t o = 0; o < pl; o++)
            expect_same(&m, o, yp[o], ypref[o]);
        ASSERT_NO_MISMATCH(m, "pooled vs conv then maxpool", t);
        size_t nans = 0;
        for (size_t o = 0; o < pl; o++)
            nans += isnan(yp[o]);
        ck_assert_msg(nans > 0, "shape %d: the NaN did not reach the pooled output", _i);
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(w);
    free(bias);
    free(scale);
    free(shift);
    free(y);
    free(yp);
    free(ypref);
    free(am);
    free(ws);
}
END_TEST

/* ---- the Winograd row gather: relu(x * in_scale + in_shift) ---- */

/* conv2d_forward_input_bn and backward_input_bn equal conv2d_forward and
 * conv2d_backward of h = relu(x * scale + shift) formed here, NaN for NaN
 * (+inf and -inf in x give +inf and 0 in h). */
START_TEST(test_winograd_input_bn_gather_keeps_nan_as_explicit_relu)
{
    const del_conv2d_shape s = {5, 16, 8, 8, 16, 8, 8, 3, 1, 1};
    const del_backend *be = del_backend_get();
    ck_assert(be->conv2d_fuses_input_bn(&s));
    size_t xl = (size_t)s.n * s.c_in * 64, wl = (size_t)s.c_out * s.c_in * 9, yl = (size_t)s.n * s.c_out * 64;
    float *x = rand_buf(xl, 30), *w = rand_buf(wl, 31), *dy = rand_buf(yl, 32), *sh = rand_buf(16, 33);
    float *sc = rand_buf(16, 34), *h = malloc(xl * sizeof(float));
    for (int ch = 0; ch < 16; ch++)
        sc[ch] = fabsf(sc[ch]) + 0.25f; /* so that +inf stays +inf */
    x[((size_t)0 * 16 + 3) * 64 + 9] = NAN;
    x[((size_t)2 * 16 + 0) * 64 + 63] = neg_nan();
    x[((size_t)4 * 16 + 15) * 64 + 0] = NAN;
    x[((size_t)1 * 16 + 7) * 64 + 20] = INFINITY;
    x[((size_t)3 * 16 + 8) * 64 + 35] = -INFINITY;
    for (size_t i = 0; i < xl; i++) {
        int ch = (int)(i / 64 % 16);
        h[i] = relu_ref(x[i] * sc[ch] + sh[ch]);
    }
    ck_assert(isnan(h[3 * 64 + 9]) && h[(16 + 7) * 64 + 20] == INFINITY && h[(48 + 8) * 64 + 35] == 0.0f);
    float *y = fill_buf(yl, 9.0f), *yref = fill_buf(yl, 9.0f), *dx = fill_buf(xl, 9.0f);
    float *dxref = fill_buf(xl, 9.0f), *dw = fill_buf(wl, 0.0f), *dwref = fill_buf(wl, 0.0f);
    void *ws = malloc(be->conv2d_workspace(&s) + 1);
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        memset(dw, 0, wl * sizeof(float));
        memset(dwref, 0, wl * sizeof(float));
        be->conv2d_forward_input_bn(&s, x, sc, sh, w, y, ws);
        be->conv2d_forward(&s, h, w, NULL, yref, ws);
        be->conv2d_backward_input_bn(&s, x, sc, sh, w, dy, dx, dw, ws);
        be->conv2d_backward(&s, h, w, dy, dxref, dwref, NULL, ws);
        mismatch my = {0}, mx = {0}, mw = {0};
        for (size_t i = 0; i < yl; i++)
            expect_same(&my, i, y[i], yref[i]);
        for (size_t i = 0; i < xl; i++)
            expect_same(&mx, i, dx[i], dxref[i]);
        for (size_t i = 0; i < wl; i++)
            expect_same(&mw, i, dw[i], dwref[i]);
        ASSERT_NO_MISMATCH(my, "forward_input_bn", t);
        ASSERT_NO_MISMATCH(mx, "backward_input_bn dx", t);
        ASSERT_NO_MISMATCH(mw, "backward_input_bn dw", t);
        /* the NaN of image 0, channel 3, pixel (1, 1) reached its outputs and the weight gradient */
        ck_assert(isnan(y[0 * 64 + 0]) && isnan(y[((size_t)0 * 16 + 5) * 64 + 2 * 8 + 2]));
        ck_assert(isfinite(y[((size_t)0 * 16 + 5) * 64 + 63]));
        ck_assert(isnan(dw[((size_t)5 * 16 + 3) * 9 + 4]));
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(w);
    free(dy);
    free(sh);
    free(sc);
    free(h);
    free(y);
    free(yref);
    free(dx);
    free(dxref);
    free(dw);
    free(dwref);
    free(ws);
}
END_TEST

/* ---- max pooling ---- */

/* PyTorch's max_pool2d, scanning each window row by row: a value wins if
 * it is larger (the first maximum on ties) or NaN (the last NaN). */
static void maxpool_ref(const del_pool_shape *s, const float *x, float *y, int32_t *am)
{
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    for (int p = 0; p < s->n * s->c; p++)
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                int best = -1;
                float bv = 0.0f;
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++) {
                        int idx = (oh * s->stride + kh) * s->w_in + ow * s->stride + kw;
                        float v = x[p * in_sz + idx];
                        if (best < 0 || isnan(v) || (!isnan(bv) && v > bv)) {
                            best = idx;
                            bv = v;
                        }
                    }
                y[p * out_sz + oh * s->w_out + ow] = bv;
                am[p * out_sz + oh * s->w_out + ow] = best;
            }
}

/* 2x2 / stride 2 with a vector body and a tail (w_out 6), overlapping 3x3
 * / stride 2 windows and 3x3 / stride 3 ones: NaN at a window's first,
 * last and middle element, two NaN in a window, +inf and -inf. */
START_TEST(test_maxpool_window_with_nan_is_nan_and_routes_gradient_to_it)
{
    static const int geom[][4] = {{10, 13, 2, 2}, {9, 11, 3, 2}, {9, 12, 3, 3}}; /* h, w, kernel, stride */
    const int *g = geom[_i];
    del_pool_shape s = {2, 3, g[0], g[1], (g[0] - g[2]) / g[3] + 1, (g[1] - g[2]) / g[3] + 1, g[2], g[3]};
    const del_backend *be = del_backend_get();
    size_t in_sz = (size_t)s.h_in * s.w_in, out_sz = (size_t)s.h_out * s.w_out;
    size_t xl = (size_t)s.n * s.c * in_sz, yl = (size_t)s.n * s.c * out_sz;
    float *x = rand_buf(xl, 40 + _i), *dy = rand_buf(yl, 41), *y = fill_buf(yl, 9.0f), *yref = fill_buf(yl, 9.0f);
    float *dx = fill_buf(xl, 9.0f), *dxref = fill_buf(xl, 0.0f);
    int32_t *am = malloc(yl * sizeof *am), *amref = malloc(yl * sizeof *amref);
    /* plane 0: window (0, 0) starts with NaN; window (0, 1) ends with one */
    x[0] = NAN;
    x[(size_t)(s.kernel - 1) * s.w_in + s.stride + s.kernel - 1] = NAN;
    /* plane 1: two NaN (the second wins the argmax) and a +inf in another window */
    x[in_sz + (size_t)s.stride * s.w_in + 2 * s.stride] = neg_nan();
    x[in_sz + (size_t)(s.stride + 1) * s.w_in + 2 * s.stride + 1] = NAN;
    x[in_sz + s.w_in + 1] = INFINITY;
    /* plane 4: a -inf (ignored) and a NaN in the middle of the last window */
    x[4 * in_sz + 1] = -INFINITY;
    x[4 * in_sz + (size_t)((s.h_out - 1) * s.stride + 1) * s.w_in + (s.w_out - 1) * s.stride + 1] = NAN;
    /* plane 5: a window of -inf only */
    for (int kh = 0; kh < s.kernel; kh++)
        for (int kw = 0; kw < s.kernel; kw++)
            x[5 * in_sz + (size_t)kh * s.w_in + kw] = -INFINITY;
    maxpool_ref(&s, x, yref, amref);
    for (size_t o = 0; o < yl; o++)
        dxref[o / out_sz * in_sz + (size_t)amref[o]] += dy[o];
    size_t nans = 0;
    for (size_t o = 0; o < yl; o++)
        nans += isnan(yref[o]);
    ck_assert_int_ge(nans, 4);
    for (int t = 1; t <= MAX_THREADS; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        be->maxpool2d_forward(&s, x, y, am);
        be->maxpool2d_backward(&s, dy, am, dx);
        mismatch m = {0}, md = {0};
        size_t bad_am = 0;
        for (size_t o = 0; o < yl; o++) {
            expect_same(&m, o, y[o], yref[o]);
            bad_am += am[o] != amref[o];
        }
        for (size_t i = 0; i < xl; i++)
            expect_same(&md, i, dx[i], dxref[i]);
        ASSERT_NO_MISMATCH(m, "maxpool y", t);
        ck_assert_msg(bad_am == 0, "geometry %d, %d threads: %zu argmax differ", _i, t, bad_am);
        ASSERT_NO_MISMATCH(md, "maxpool dx", t);
    }
    ck_assert_del_ok(del_set_num_threads(1));
    free(x);
    free(dy);
    free(y);
    free(yref);
    free(dx);
    free(dxref);
    free(am);
    free(amref);
}
END_TEST

static Suite *nan_suite(void)
{
    Suite *s = suite_create("backend_nan");
    TCase *t = tcase_create("nan");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_relu_forward_keeps_nan_and_maps_infinities_as_pytorch);
    tcase_add_test(t, test_residual_join_keeps_nan_and_maps_infinities);
    tcase_add_test(t, test_residual_join_bn_keeps_nan_and_maps_infinities);
    tcase_add_test(t, test_bn_relu_train_channel_with_nan_or_inf_is_nan_others_unchanged);
    tcase_add_test(t, test_bn_relu_eval_keeps_nan_and_maps_infinities_elementwise);
    tcase_add_loop_test(t, test_conv_epilogue_relu_keeps_nan_and_maps_infinities_per_channel, 0, N_CONV);
    tcase_add_loop_test(t, test_conv_relu_nan_pixel_reaches_its_receptive_field_pooled_or_not, 0, N_CONV);
    tcase_add_test(t, test_winograd_input_bn_gather_keeps_nan_as_explicit_relu);
    tcase_add_loop_test(t, test_maxpool_window_with_nan_is_nan_and_routes_gradient_to_it, 0, 3);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return test_run_suite(nan_suite());
}
