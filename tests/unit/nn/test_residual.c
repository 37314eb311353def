/* Residual blocks, stochastic depth and pooling layers: forward against
 * hand-worked values and a naive double-precision reference of the block,
 * the ResNet presets (layer lists and parameter counts worked out by
 * hand), spec strings, argument errors and thread-count independence.
 * Gradients are checked in test_gradcheck.c. */
#include <math.h>

#include "core/tensor_internal.h"
#include "nn/model_internal.h"
#include "testutil.h"

/* Deterministic pattern in [lo, hi), independent of the library. */
static void fill_range(float *d, int64_t n, uint32_t seed, float lo, float hi)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = lo + (hi - lo) * ((float)(s >> 8) / 16777216.0f);
    }
}

static del_tensor *new_input(int n, int c, int h, int w, uint32_t seed)
{
    int64_t shape[4] = {n, c, h, w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    fill_range(del_tensor_data(x), del_tensor_numel(x), seed, -1.0f, 1.0f);
    return x;
}

static void check_layers(const del_model *m, const char *const *names, int n)
{
    ck_assert_int_eq(del_model_num_layers(m), n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(del_model_layer_type(m, i), names[i]);
}

/* ---- hand-worked blocks on 1x1 images (only the centre tap of each
 * 3x3 kernel sees the image; the rest multiply the zero padding) ---- */

/* params: w1[9], gamma1, beta1, w2[9], gamma2, beta2 for one channel */
static del_model *one_channel_block(float survival)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 1));
    ck_assert_del_ok(del_model_add_residual(m, 1, 1, survival));
    ck_assert_int_eq(del_model_num_params(m), 9 + 2 + 9 + 2);
    float *p = del_model_params(m);
    fill_range(p, 22, 3, -1.0f, 1.0f); /* off-centre taps: must not matter */
    p[4] = 2.0f;                       /* w1 centre */
    p[9] = 1.5f;                       /* gamma1 */
    p[10] = -0.5f;                     /* beta1 */
    p[11 + 4] = -1.0f;                 /* w2 centre */
    p[20] = 0.5f;                      /* gamma2 */
    p[21] = 0.25f;                     /* beta2 */
    return m;
}

/* Eval, running mean 0 and variance 1, s = 1/sqrt(1 + 1e-5):
 * x = 0.8:  a1 = 1.6, h1 = relu(1.5 s 1.6 - 0.5) = 2.4 s - 0.5,
 *           b2 = 0.5 s (-h1) + 0.25, y = relu(b2 + 0.8) = 0.100015...
 * x = -0.2: a1 = -0.4, h1 = relu(-0.6 s - 0.5) = 0, b2 = 0.25,
 *           y = relu(0.25 - 0.2) = 0.05.
 * Stochastic depth keeps the branch unscaled in evaluation. */
START_TEST(test_residual_eval_hand_worked_and_stochastic_depth_is_identity)
{
    double s = 1.0 / sqrt(1.00001);
    double h1 = 2.4 * s - 0.5, want0 = 0.5 * s * -h1 + 0.25 + 0.8;
    const float xs[2] = {0.8f, -0.2f};
    for (int k = 0; k < 2; k++) {
        del_model *m = one_channel_block(k == 0 ? 1.0f : 0.5f);
        del_tensor *x = new_input(2, 1, 1, 1, 1);
        memcpy(del_tensor_data(x), xs, sizeof xs);
        ck_assert_del_ok(del_model_set_training(m, 0));
        for (int rep = 0; rep < 3; rep++) { /* no draws in eval: the same every time */
            ck_assert_del_ok(del_model_forward(m, x));
            const float *y = del_tensor_data(del_model_output(m));
            ck_assert_double_eq_tol(y[0], want0, 1e-6);
            ck_assert_double_eq_tol(y[1], 0.05, 1e-6);
        }
        del_tensor_free(x);
        del_model_free(m);
    }
}
END_TEST

/* Training: batch statistics over the batch (biased variance), then
 * y_i = relu(m_i b2_i + x_i) with m_i in {0, 1/survival}. */
static void hand_training_outputs(const float *x, int n, double survival_scale, double *kept, double *dropped)
{
    double a1[64], h1[64], a2[64], b2[64];
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += a1[i] = 2.0 * x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (a1[i] - mean) * (a1[i] - mean);
    var /= n;
    for (int i = 0; i < n; i++) {
        double v = 1.5 * (a1[i] - mean) / sqrt(var + 1e-5) - 0.5;
        h1[i] = v > 0 ? v : 0;
    }
    mean = var = 0;
    for (int i = 0; i < n; i++)
        mean += a2[i] = -h1[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (a2[i] - mean) * (a2[i] - mean);
    var /= n;
    for (int i = 0; i < n; i++) {
        b2[i] = 0.5 * (a2[i] - mean) / sqrt(var + 1e-5) + 0.25;
        double k = survival_scale * b2[i] + x[i];
        kept[i] = k > 0 ? k : 0;
        dropped[i] = x[i] > 0 ? x[i] : 0;
    }
}

START_TEST(test_residual_training_hand_worked_with_stochastic_depth)
{
    enum { N = 40 };
    del_model *m = one_channel_block(0.6f);
    del_tensor *x = new_input(N, 1, 1, 1, 7);
    const float *xd = del_tensor_data(x);
    double kept[N], dropped[N];
    hand_training_outputs(xd, N, 1.0 / 0.6, kept, dropped);
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m));
    int n_kept = 0, n_dropped = 0;
    for (int i = 0; i < N; i++) {
        int is_kept = fabs(y[i] - kept[i]) <= 1e-5, is_dropped = fabs(y[i] - dropped[i]) <= 1e-5;
        ck_assert_msg(is_kept || is_dropped, "image %d: %g is neither %g (kept) nor %g (dropped)", i, y[i],
                      kept[i], dropped[i]);
        /* count only the images where the two differ */
        if (fabs(kept[i] - dropped[i]) > 1e-3) {
            n_kept += is_kept;
            n_dropped += is_dropped;
        }
    }
    ck_assert_int_gt(n_kept, 0);
    ck_assert_int_gt(n_dropped, 0);
    /* survival 1: every image keeps its branch, unscaled */
    del_model_free(m);
    m = one_channel_block(1.0f);
    hand_training_outputs(xd, N, 1.0, kept, dropped);
    ck_assert_del_ok(del_model_forward(m, x));
    y = del_tensor_data(del_model_output(m));
    for (int i = 0; i < N; i++)
        ck_assert_double_eq_tol(y[i], kept[i], 1e-5);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* About survival of the images keep their branch: with survival 0.7 and
 * 1000 images, 700 +- 4.4 standard deviations (sd = 14.5). */
START_TEST(test_stochastic_depth_keeps_a_survival_fraction_per_image)
{
    enum { N = 1000 };
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 2));
    ck_assert_del_ok(del_model_add_residual(m, 1, 1, 0.7f));
    /* a branch that always adds 10 (beta2 = 10, gamma2 = 0) */
    float *p = del_model_params(m);
    p[9 + 2 + 9] = 0.0f;
    p[9 + 2 + 9 + 1] = 10.0f;
    del_tensor *x = new_input(N, 1, 1, 2, 9);
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m)), *xd = del_tensor_data(x);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        /* kept: x + 10/0.7 on both pixels; dropped: relu(x) */
        int k0 = fabsf(y[2 * i] - (xd[2 * i] + 10.0f / 0.7f)) < 1e-4f;
        int k1 = fabsf(y[2 * i + 1] - (xd[2 * i + 1] + 10.0f / 0.7f)) < 1e-4f;
        ck_assert_int_eq(k0, k1); /* one draw per image, not per value */
        kept += k0;
    }
    ck_assert_int_ge(kept, 636);
    ck_assert_int_le(kept, 764);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* ---- a naive double-precision reference of the block ---- */

typedef struct ref {
    int n, cin, c, h, w, stride, ho, wo, proj;
} ref;

static void ref_conv(const ref *r, const double *x, int cin, int h, int w, const float *wt, int k, int stride,
                     int pad, double *y)
{
    for (int i = 0; i < r->n; i++)
        for (int co = 0; co < r->c; co++)
            for (int oh = 0; oh < r->ho; oh++)
                for (int ow = 0; ow < r->wo; ow++) {
                    double acc = 0;
                    for (int ci = 0; ci < cin; ci++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                                    continue;
                                acc += wt[((co * cin + ci) * k + kh) * k + kw] *
                                       x[((i * cin + ci) * h + ih) * w + iw];
                            }
                    y[((i * r->c + co) * r->ho + oh) * r->wo + ow] = acc;
                }
}

/* In place; batch statistics (stored in mean/var) or the running ones. */
static void ref_bn(const ref *r, double *v, const float *gamma, const float *beta, const float *rstate,
                   int training, double *mean, double *var, int relu)
{
    int hw = r->ho * r->wo;
    for (int ch = 0; ch < r->c; ch++) {
        double m = rstate[ch], s2 = rstate[r->c + ch];
        if (training) {
            m = s2 = 0;
            for (int i = 0; i < r->n; i++)
                for (int j = 0; j < hw; j++)
                    m += v[(i * r->c + ch) * hw + j];
            m /= r->n * hw;
            for (int i = 0; i < r->n; i++)
                for (int j = 0; j < hw; j++) {
                    double d = v[(i * r->c + ch) * hw + j] - m;
                    s2 += d * d;
                }
            s2 /= r->n * hw;
            mean[ch] = m;
            var[ch] = s2;
        }
        for (int i = 0; i < r->n; i++)
            for (int j = 0; j < hw; j++) {
                double *e = &v[(i * r->c + ch) * hw + j];
                *e = gamma[ch] * (*e - m) / sqrt(s2 + 1e-5) + beta[ch];
                if (relu && *e < 0)
                    *e = 0;
            }
    }
}

/* y = relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut); means/vars
 * receive the batch statistics of bn1, bn2, bnp in training. */
static void ref_block(const ref *r, const float *xf, const float *p, const float *state, int training, double *y,
                      double means[3][16], double vars[3][16])
{
    size_t in = (size_t)r->n * r->cin * r->h * r->w, out = (size_t)r->n * r->c * r->ho * r->wo;
    double *x = malloc(in * 8), *a = malloc(out * 8), *sc = malloc(out * 8);
    for (size_t i = 0; i < in; i++)
        x[i] = xf[i];
    int64_t c = r->c, w1 = 0, bn1 = 9 * c * r->cin, w2 = bn1 + 2 * c, bn2 = w2 + 9 * c * c, wp = bn2 + 2 * c,
            bnp = wp + c * r->cin;
    ref_conv(r, x, r->cin, r->h, r->w, p + w1, 3, r->stride, 1, a);
    ref_bn(r, a, p + bn1, p + bn1 + c, state, training, means[0], vars[0], 1);
    ref_conv(r, a, r->c, r->ho, r->wo, p + w2, 3, 1, 1, y);
    ref_bn(r, y, p + bn2, p + bn2 + c, state + 2 * c, training, means[1], vars[1], 0);
    if (r->proj) {
        ref_conv(r, x, r->cin, r->h, r->w, p + wp, 1, r->stride, 0, sc);
        ref_bn(r, sc, p + bnp, p + bnp + c, state + 4 * c, training, means[2], vars[2], 0);
    } else {
        for (size_t i = 0; i < out; i++)
            sc[i] = x[i];
    }
    for (size_t i = 0; i < out; i++)
        y[i] = y[i] + sc[i] > 0 ? y[i] + sc[i] : 0;
    free(x);
    free(a);
    free(sc);
}

static void check_against_reference(int n, int cin, int h, int w, int c, int stride)
{
    ref r = {n, cin, c, h, w, stride, (h - 1) / stride + 1, (w - 1) / stride + 1, stride != 1 || cin != c};
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, cin, h, w));
    ck_assert_del_ok(del_model_add_residual(m, c, stride, 1.0f));
    fill_range(del_model_params(m), del_model_num_params(m), 21, -0.8f, 0.8f);
    /* running statistics: any means, variances in [0.5, 2) */
    int nbn = r.proj ? 3 : 2;
    for (int k = 0; k < nbn; k++) {
        fill_range(m->state + 2 * c * k, c, 30 + k, -0.5f, 0.5f);
        fill_range(m->state + 2 * c * k + c, c, 40 + k, 0.5f, 2.0f);
    }
    float *state0 = malloc((size_t)m->n_state * 4);
    memcpy(state0, m->state, (size_t)m->n_state * 4);
    del_tensor *x = new_input(n, cin, h, w, 5);
    size_t out = (size_t)n * c * r.ho * r.wo;
    double *want = malloc(out * 8), means[3][16], vars[3][16];
    for (int training = 0; training < 2; training++) {
        ck_assert_del_ok(del_model_set_training(m, training));
        ck_assert_del_ok(del_model_forward(m, x));
        ref_block(&r, del_tensor_data(x), del_model_params(m), state0, training, want, means, vars);
        const float *y = del_tensor_data(del_model_output(m));
        ck_assert_int_eq(del_tensor_numel(del_model_output(m)), (int64_t)out);
        for (size_t i = 0; i < out; i++)
            ck_assert_msg(fabs(y[i] - want[i]) <= 1e-4 + 1e-4 * fabs(want[i]), "%s y[%zu] = %.7g, want %.7g",
                          training ? "training" : "eval", i, y[i], want[i]);
    }
    /* the training forward moved the running statistics (momentum 0.1,
     * unbiased variance) */
    int count = n * r.ho * r.wo;
    for (int k = 0; k < nbn; k++)
        for (int ch = 0; ch < c; ch++) {
            double rm = 0.9 * state0[2 * c * k + ch] + 0.1 * means[k][ch];
            double rv = 0.9 * state0[2 * c * k + c + ch] + 0.1 * vars[k][ch] * count / (count - 1);
            ck_assert_double_eq_tol(m->state[2 * c * k + ch], rm, 1e-5);
            ck_assert_double_eq_tol(m->state[2 * c * k + c + ch], rv, 1e-5);
        }
    free(state0);
    free(want);
    del_tensor_free(x);
    del_model_free(m);
}

START_TEST(test_residual_identity_matches_naive_reference)
{
    check_against_reference(3, 4, 6, 5, 4, 1);
}
END_TEST

START_TEST(test_residual_projection_matches_naive_reference)
{
    check_against_reference(2, 3, 7, 6, 5, 2); /* odd sizes: 7x6 -> 4x3 */
    check_against_reference(2, 4, 5, 5, 2, 1); /* channels only */
}
END_TEST

/* ---- pooling layers ---- */

START_TEST(test_avgpool_and_gap_layers_hand_worked)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 2 2 4; avgpool 2; gap"));
    static const char *const names[] = {"avgpool", "global_avgpool"};
    check_layers(m, names, 2);
    int ndim = 0;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 2);
    del_tensor *x = new_input(1, 2, 2, 4, 1);
    float *xd = del_tensor_data(x);
    for (int i = 0; i < 16; i++)
        xd[i] = (float)i; /* channel 0: 0..7, channel 1: 8..15 */
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m));
    ck_assert_float_eq(y[0], 3.5f);  /* mean of the window means 2.5 and 4.5 */
    ck_assert_float_eq(y[1], 11.5f);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_pooling_builders_reject_bad_arguments)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 4, 4));
    ck_assert_del_err(del_model_add_avgpool(m, 0, 1), DEL_EINVAL, "del_model_add_avgpool: 'kernel'");
    ck_assert_del_err(del_model_add_avgpool(m, 2, 0), DEL_EINVAL, "'stride'");
    ck_assert_del_err(del_model_add_avgpool(m, 5, 1), DEL_EINVAL, "larger than the input");
    ck_assert_del_err(del_model_add_avgpool(NULL, 2, 2), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_add_global_avgpool(NULL), DEL_EINVAL, "'model'");
    ck_assert_del_ok(del_model_add_global_avgpool(m));
    ck_assert_del_err(del_model_add_global_avgpool(m), DEL_EINVAL, "4-d input");
    ck_assert_del_err(del_model_add_avgpool(m, 1, 1), DEL_EINVAL, "4-d input");
    ck_assert_int_eq(del_model_num_layers(m), 1);
    del_model_free(m);
}
END_TEST

START_TEST(test_residual_builder_rejects_bad_arguments)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 3, 8, 8));
    ck_assert_del_err(del_model_add_residual(NULL, 4, 1, 1.0f), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_add_residual(m, 0, 1, 1.0f), DEL_EINVAL,
                      "del_model_add_residual: 'out_channels' must be >= 1, got 0");
    ck_assert_del_err(del_model_add_residual(m, 4, 0, 1.0f), DEL_EINVAL, "'stride' must be >= 1");
    ck_assert_del_err(del_model_add_residual(m, 4, 1, 0.0f), DEL_EINVAL, "'survival_prob' must be in (0, 1]");
    ck_assert_del_err(del_model_add_residual(m, 4, 1, 1.5f), DEL_EINVAL, "'survival_prob'");
    ck_assert_del_err(del_model_add_residual(m, 4, 1, NAN), DEL_EINVAL, "'survival_prob'");
    ck_assert_del_err(del_model_add_residual(m, 1 << 20, 1, 1.0f), DEL_EINVAL, "too large");
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_err(del_model_add_residual(m, 4, 1, 1.0f), DEL_EINVAL, "4-d input");
    ck_assert_int_eq(del_model_num_layers(m), 1);
    del_model_free(m);
}
END_TEST

/* Output sizes (H-1)/s + 1 and parameter counts for both shortcuts. */
START_TEST(test_residual_shapes_and_parameter_counts)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 3, 7, 6));
    ck_assert_del_ok(del_model_add_residual(m, 3, 1, 1.0f)); /* identity: 2*81 + 4*3 */
    ck_assert_int_eq(del_model_num_params(m), 174);
    ck_assert_int_eq(m->n_state, 12);
    ck_assert_del_ok(del_model_add_residual(m, 8, 2, 0.9f)); /* 216 + 576 + 32 + 24 + 16 */
    ck_assert_int_eq(del_model_num_params(m), 174 + 864);
    ck_assert_int_eq(m->n_state, 12 + 48);
    int ndim = 0;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[0], 8);
    ck_assert_int_eq(shape[1], 4);
    ck_assert_int_eq(shape[2], 3);
    del_model_free(m);
}
END_TEST

/* PyTorch's defaults: conv weights within +-1/sqrt(fan_in), BN 1/0, running 0/1. */
START_TEST(test_residual_init_follows_pytorch_defaults)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 4, 5, 5));
    ck_assert_del_ok(del_model_add_residual(m, 6, 2, 1.0f));
    ck_assert_del_ok(del_model_init(m, 3));
    const float *p = del_model_params(m);
    int64_t off = 0;
    const int64_t sizes[6] = {6 * 4 * 9, 12, 6 * 6 * 9, 12, 6 * 4, 12};
    const double bounds[6] = {1 / 6.0, 0, 1 / sqrt(54.0), 0, 0.5, 0};
    for (int k = 0; k < 6; k++) {
        double maxabs = 0;
        for (int64_t i = 0; i < sizes[k]; i++) {
            if (bounds[k] > 0) {
                ck_assert(fabs(p[off + i]) <= bounds[k]);
                maxabs = fmax(maxabs, fabs(p[off + i]));
            } else {
                ck_assert_float_eq(p[off + i], i < 6 ? 1.0f : 0.0f);
            }
        }
        if (bounds[k] > 0) /* really spread over the range */
            ck_assert(maxabs > 0.7 * bounds[k]);
        off += sizes[k];
    }
    ck_assert_int_eq(off, del_model_num_params(m));
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 6; i++) {
            ck_assert_float_eq(m->state[12 * k + i], 0.0f);
            ck_assert_float_eq(m->state[12 * k + 6 + i], 1.0f);
        }
    del_model_free(m);
}
END_TEST

/* ---- presets ---- */

START_TEST(test_preset_resnet20_layers_and_params)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "resnet20", 3, 32, 32, 10));
    static const char *const names[] = {"conv2d",   "batchnorm", "relu",     "residual",       "residual",
                                        "residual", "residual",  "residual", "residual",       "residual",
                                        "residual", "residual",  "global_avgpool", "linear"};
    check_layers(m, names, 14);
    const int widths[9] = {16, 16, 16, 32, 32, 32, 64, 64, 64}, strides[9] = {1, 1, 1, 2, 1, 1, 2, 1, 1};
    for (int b = 0; b < 9; b++) {
        ck_assert_int_eq(m->layers[3 + b].cfg.out, widths[b]);
        ck_assert_int_eq(m->layers[3 + b].cfg.stride, strides[b]);
        ck_assert_float_eq(m->layers[3 + b].cfg.survival, 1.0f);
    }
    ck_assert_int_eq(m->layers[11].out_shape[1], 8); /* 32 -> 16 -> 8 */
    /* stem: conv 3*16*9 = 432, BN 32                                   464
     * stage 1, 3 x (16*16*9*2 + 2*2*16 = 4672)                      14016
     * stage 2 first: 16*32*9 + 32*32*9 + 4*32 + 16*32 + 2*32
     *              = 4608 + 9216 + 128 + 512 + 64                   14528
     *         other 2 x (32*32*9*2 + 4*32 = 18560)                  37120
     * stage 3 first: 32*64*9 + 64*64*9 + 4*64 + 32*64 + 2*64
     *              = 18432 + 36864 + 256 + 2048 + 128               57728
     *         other 2 x (64*64*9*2 + 4*64 = 73984)                 147968
     * linear 64*10 + 10                                               650
     * total                                                        272474 */
    ck_assert_int_eq(del_model_num_params(m), 272474);
    del_model_free(m);

    /* on 1x28x28: the stem has 1*16*9 instead of 3*16*9 weights, 28 -> 14 -> 7 */
    ck_assert_del_ok(del_model_preset(&m, "resnet20", 1, 28, 28, 10));
    ck_assert_int_eq(del_model_num_params(m), 272474 - 288);
    ck_assert_int_eq(m->layers[11].out_shape[1], 7);
    int ndim = 0;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 10);
    del_model_free(m);
}
END_TEST

START_TEST(test_preset_wrn_16_k_layers_and_params)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "wrn-16-4", 3, 32, 32, 10));
    static const char *const names[] = {"conv2d",   "batchnorm", "relu",     "residual", "residual",
                                        "residual", "residual",  "residual", "residual", "global_avgpool",
                                        "linear"};
    check_layers(m, names, 11);
    /* stem 432 + 32                                                    464
     * stage 1: 16->64: 16*64*9 + 64*64*9 + 4*64 + 16*64 + 2*64 = 47488
     *          64->64: 2*64*64*9 + 4*64                          = 73984
     * stage 2: 64->128/2: 64*128*9 + 128*128*9 + 4*128 + 64*128 + 2*128
     *                   = 73728 + 147456 + 512 + 8192 + 256      = 230144
     *          2*128*128*9 + 4*128                                = 295424
     * stage 3: 128->256/2: 294912 + 589824 + 1024 + 32768 + 512  = 919040
     *          2*256*256*9 + 4*256                                = 1180672
     * linear 256*10 + 10                                          = 2570
     * total 2749786 (the paper's 2.7 M) */
    ck_assert_int_eq(del_model_num_params(m), 2749786);
    del_model_free(m);

    /* k = 1: widths 16/32/64, the first stage keeps 16 channels: no projection */
    ck_assert_del_ok(del_model_preset(&m, "wrn-16-1", 3, 32, 32, 10));
    /* 464 + 2*4672 + (14528 + 18560) + (57728 + 73984) + 650 */
    ck_assert_int_eq(del_model_num_params(m), 464 + 2 * 4672 + 14528 + 18560 + 57728 + 73984 + 650);
    del_model_free(m);
}
END_TEST

START_TEST(test_preset_names_are_checked)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_preset(&m, "wrn-16-0", 3, 32, 32, 10), DEL_EINVAL, "needs K in 1..10");
    ck_assert_del_err(del_model_preset(&m, "wrn-16-11", 3, 32, 32, 10), DEL_EINVAL, "got 'wrn-16-11'");
    ck_assert_del_err(del_model_preset(&m, "wrn-16-", 3, 32, 32, 10), DEL_EINVAL, "wrn-16-K");
    ck_assert_del_err(del_model_preset(&m, "wrn-16-4x", 3, 32, 32, 10), DEL_EINVAL, "needs K");
    ck_assert_del_err(del_model_preset(&m, "wrn-16-04", 3, 32, 32, 10), DEL_EINVAL, "needs K");
    ck_assert_del_err(del_model_preset(&m, "resnet", 3, 32, 32, 10), DEL_EINVAL,
                      "one of fmnist-cnn, mlp, resnet20, wrn-16-K (K = 1..10)");
    ck_assert_ptr_null(m);
}
END_TEST

/* ---- spec strings ---- */

START_TEST(test_spec_residual_and_pooling_equal_c_calls)
{
    del_model *a = NULL, *b = NULL;
    ck_assert_del_ok(del_model_from_spec(&a, "input 3 12 12; conv2d 4 k=3 p=1 bias=0; residual 4; "
                                             "residual 8 s=2 survival=0.8; avgpool 3 s=1; gap; linear 5"));
    ck_assert_del_ok(del_model_new(&b, 3, 12, 12));
    ck_assert_del_ok(del_model_add_conv2d(b, 4, 3, 1, 1, 0));
    ck_assert_del_ok(del_model_add_residual(b, 4, 1, 1.0f));
    ck_assert_del_ok(del_model_add_residual(b, 8, 2, 0.8f));
    ck_assert_del_ok(del_model_add_avgpool(b, 3, 1));
    ck_assert_del_ok(del_model_add_global_avgpool(b));
    ck_assert_del_ok(del_model_add_linear(b, 5, 1));
    ck_assert_int_eq(del_model_num_layers(a), del_model_num_layers(b));
    for (int i = 0; i < del_model_num_layers(a); i++) {
        ck_assert_str_eq(del_model_layer_type(a, i), del_model_layer_type(b, i));
        ck_assert(memcmp(&a->layers[i].cfg, &b->layers[i].cfg, sizeof(del_layer_cfg)) == 0);
    }
    ck_assert_int_eq(del_model_num_params(a), del_model_num_params(b));
    ck_assert_int_eq(a->layers[3].out_shape[1], 4); /* 6x6 -> avgpool 3 s=1 -> 4x4 */
    del_model_free(a);
    del_model_free(b);

    /* avgpool's stride defaults to its kernel */
    ck_assert_del_ok(del_model_from_spec(&a, "input 1 9 9; avgpool 3"));
    ck_assert_int_eq(a->layers[0].cfg.stride, 3);
    ck_assert_int_eq(a->layers[0].out_shape[1], 3);
    del_model_free(a);
}
END_TEST

START_TEST(test_spec_residual_errors_name_the_item)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; residual"), DEL_EFORMAT,
                      "item 2 'residual': expected a number for OUT");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; residual 4 k=3"), DEL_EFORMAT,
                      "unknown option 'k' (residual takes: s, survival)");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; residual 4 survival=high"), DEL_EFORMAT,
                      "expected a number for survival");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; residual 4 survival=0"), DEL_EINVAL,
                      "item 2 'residual 4 survival=0': 'survival_prob' must be in (0, 1]");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; gap 2"), DEL_EFORMAT, "unexpected '2'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; gap; residual 4"), DEL_EINVAL, "4-d input");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; avgpool"), DEL_EFORMAT, "expected a number for K");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; resnet 4"), DEL_EFORMAT, "avgpool, gap, residual");
    ck_assert_ptr_null(m);
}
END_TEST

/* ---- determinism ---- */

/* Two training steps (stochastic depth included) and an eval forward with
 * 1 and 4 threads give bit-identical outputs and gradients. */
START_TEST(test_residual_results_do_not_depend_on_thread_count)
{
    const char *spec = "input 1 12 12; conv2d 8 p=1 bias=0; batchnorm; relu; residual 8 survival=0.7; "
                       "residual 16 s=2 survival=0.6; avgpool 2; gap; linear 5";
    del_tensor *x = new_input(8, 1, 12, 12, 3), *g = NULL;
    int64_t gshape[2] = {8, 5};
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gshape));
    fill_range(del_tensor_data(g), 40, 4, -1.0f, 1.0f);
    float *out[2], *eval[2], *grads[2], *gin[2];
    int64_t np = 0;
    const int threads[2] = {1, 4};
    for (int r = 0; r < 2; r++) {
        ck_assert_del_ok(del_set_num_threads(threads[r]));
        del_model *m = NULL;
        ck_assert_del_ok(del_model_from_spec(&m, spec));
        ck_assert_del_ok(del_model_init(m, 5));
        np = del_model_num_params(m);
        for (int step = 0; step < 2; step++) {
            ck_assert_del_ok(del_model_forward(m, x));
            ck_assert_del_ok(del_model_backward(m, g));
        }
        out[r] = malloc(40 * 4);
        grads[r] = malloc((size_t)np * 4);
        gin[r] = malloc(del_tensor_nbytes(x));
        eval[r] = malloc(40 * 4);
        memcpy(out[r], del_tensor_data(del_model_output(m)), 40 * 4);
        memcpy(grads[r], del_model_grads(m), (size_t)np * 4);
        memcpy(gin[r], del_tensor_data(del_model_input_grad(m)), del_tensor_nbytes(x));
        ck_assert_del_ok(del_model_set_training(m, 0));
        ck_assert_del_ok(del_model_forward(m, x));
        memcpy(eval[r], del_tensor_data(del_model_output(m)), 40 * 4);
        del_model_free(m);
    }
    ck_assert_mem_eq(out[0], out[1], 40 * 4);
    ck_assert_mem_eq(eval[0], eval[1], 40 * 4);
    ck_assert_mem_eq(grads[0], grads[1], (size_t)np * 4);
    ck_assert_mem_eq(gin[0], gin[1], del_tensor_nbytes(x));
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(eval[r]);
        free(grads[r]);
        free(gin[r]);
    }
    del_tensor_free(x);
    del_tensor_free(g);
}
END_TEST

/* A frozen block may be run in evaluation mode during training (model.c
 * decides); its backward then gives the input gradient of the eval-mode
 * forward, checked here against central differences (the betas of the
 * batchnorms keep every relu input at least ~1 away from its kink). */
static double eval_loss(del_model *m, const del_tensor *x, const float *w)
{
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *y = del_model_output(m);
    const float *yd = del_tensor_data(y);
    double L = 0;
    for (int64_t i = 0; i < del_tensor_numel(y); i++)
        L += (double)w[i] * yd[i];
    return L;
}

static void check_eval_backward(int cin, int c, int stride)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, cin, 5, 5));
    ck_assert_del_ok(del_model_add_residual(m, c, stride, 0.5f));
    float *p = del_model_params(m);
    fill_range(p, del_model_num_params(m), 8, -0.3f, 0.3f);
    int64_t bn[3] = {9 * c * cin, 9 * c * cin + 2 * c + 9 * c * c, 9 * c * cin + 4 * c + 9 * c * c + c * cin};
    for (int k = 0; k < (stride != 1 || cin != c ? 3 : 2); k++)
        for (int ch = 0; ch < c; ch++)
            p[bn[k] + c + ch] = ch % 2 ? -6.0f : 6.0f;
    del_tensor *x = new_input(2, cin, 5, 5, 12), *w = NULL;
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_tensor_copy(&w, del_model_output(m)));
    fill_range(del_tensor_data(w), del_tensor_numel(w), 13, -1.0f, 1.0f);
    eval_loss(m, x, del_tensor_data(w));
    del_layer *l = &m->layers[0];
    del_layer_ctx ctx = {m->params, NULL, m->state, 0, 1, &m->rng, m->ws, m->ws_size};
    ck_assert_del_ok(l->ops->backward(l, &ctx, m->input, w));
    del_tensor *dx = NULL;
    ck_assert_del_ok(del_tensor_copy(&dx, l->dx));
    float *xd = del_tensor_data(x);
    const float *ana = del_tensor_data(dx);
    for (int64_t i = 0; i < del_tensor_numel(x); i++) {
        float orig = xd[i];
        xd[i] = orig + 1e-2f;
        double lp = eval_loss(m, x, del_tensor_data(w));
        xd[i] = orig - 1e-2f;
        double lm = eval_loss(m, x, del_tensor_data(w));
        xd[i] = orig;
        double num = (lp - lm) / 2e-2;
        ck_assert_msg(fabs(num - ana[i]) <= 2e-3 + 2e-3 * fabs(ana[i]), "dx[%lld]: numerical %.6f, analytic %.6f",
                      (long long)i, num, (double)ana[i]);
    }
    del_tensor_free(dx);
    del_tensor_free(w);
    del_tensor_free(x);
    del_model_free(m);
}

START_TEST(test_residual_eval_mode_backward_gives_the_input_gradient)
{
    check_eval_backward(2, 2, 1); /* identity */
    check_eval_backward(2, 4, 2); /* projection */
}
END_TEST

START_TEST(test_residual_training_needs_two_values_per_channel)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 1));
    ck_assert_del_ok(del_model_add_residual(m, 1, 1, 1.0f));
    del_tensor *x = new_input(1, 1, 1, 1, 2);
    ck_assert_del_err(del_model_forward(m, x), DEL_EINVAL, "more than 1 value per channel");
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

static Suite *residual_suite(void)
{
    Suite *s = suite_create("nn_residual");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_residual_eval_hand_worked_and_stochastic_depth_is_identity);
    tcase_add_test(tc, test_residual_training_hand_worked_with_stochastic_depth);
    tcase_add_test(tc, test_stochastic_depth_keeps_a_survival_fraction_per_image);
    tcase_add_test(tc, test_residual_identity_matches_naive_reference);
    tcase_add_test(tc, test_residual_projection_matches_naive_reference);
    tcase_add_test(tc, test_avgpool_and_gap_layers_hand_worked);
    tcase_add_test(tc, test_pooling_builders_reject_bad_arguments);
    tcase_add_test(tc, test_residual_builder_rejects_bad_arguments);
    tcase_add_test(tc, test_residual_shapes_and_parameter_counts);
    tcase_add_test(tc, test_residual_init_follows_pytorch_defaults);
    tcase_add_test(tc, test_preset_resnet20_layers_and_params);
    tcase_add_test(tc, test_preset_wrn_16_k_layers_and_params);
    tcase_add_test(tc, test_preset_names_are_checked);
    tcase_add_test(tc, test_spec_residual_and_pooling_equal_c_calls);
    tcase_add_test(tc, test_spec_residual_errors_name_the_item);
    tcase_add_test(tc, test_residual_results_do_not_depend_on_thread_count);
    tcase_add_test(tc, test_residual_eval_mode_backward_gives_the_input_gradient);
    tcase_add_test(tc, test_residual_training_needs_two_values_per_channel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(residual_suite());
}
