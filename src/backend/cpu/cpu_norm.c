/* Batch normalisation over [n, c, hw]. Each channel's statistics are
 * summed in one fixed order: 8 float lanes within a plane, the planes'
 * sums added in double in image order.
 *
 * Two ways to run a pass, with the same bits: with a workspace, in
 * parallel over images (each plane's sum into the workspace, then the
 * sums added per channel in image order), so that a thread reads the
 * images it wrote in the layer before (the pool gives each thread the
 * same share of every pass) and finds them in its own cache; without
 * one, in parallel over channels, each channel summed by one task. */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The build's -O2 leaves loops with a run-time trip count scalar (gcc's
 * "very cheap" vectoriser cost model); these kernels need the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "core/threads.h"

#define LANES 8

typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
typedef int32_t v4i __attribute__((vector_size(4 * sizeof(int32_t))));

/* sum_j (p[j] - shift), in LANES fixed partial sums. */
static double plane_sum(const float *restrict p, int hw, float shift)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= hw; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += p[j + l] - shift;
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    for (; j < hw; j++)
        s += p[j] - shift;
    return s;
}

/* sum_j (p[j] - m)^2 */
static double plane_sq(const float *restrict p, int hw, float m)
{
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= hw; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = p[j + l] - m;
            acc[l] += d * d;
        }
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    for (; j < hw; j++) {
        double d = p[j] - m;
        s += d * d;
    }
    return s;
}

/* The gradient reaching the batchnorm: dy, or with a fused relu dy where
 * the forward output p * sc + sh (the same float expression as
 * plane_affine, so the same sign) was > 0 and 0 elsewhere. */
typedef struct relu_mask {
    int on;
    float sc, sh;
} relu_mask;

/* sum_j g[j] and sum_j g[j] * (p[j] - m) */
static void plane_grad_sums(const float *restrict p, const float *restrict dy, relu_mask rm, int hw, float m,
                            double *sg, double *sgx)
{
    /* explicit vectors: gcc does not if-convert the select in a lane
     * loop; the mask as an AND gives the same +0.0 for masked lanes. Two
     * 4-float halves (lanes 0-3, 4-7): the SSE2 baseline has no 8-float
     * compare, and gcc splits one lane by lane. */
    v4f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int j = 0;
    for (; j + LANES <= hw; j += LANES) {
        v4f g0, g1, p0, p1;
        memcpy(&g0, dy + j, sizeof g0);
        memcpy(&g1, dy + j + 4, sizeof g1);
        memcpy(&p0, p + j, sizeof p0);
        memcpy(&p1, p + j + 4, sizeof p1);
        if (rm.on) {
            g0 = (v4f)((v4i)g0 & (p0 * rm.sc + rm.sh > 0.0f));
            g1 = (v4f)((v4i)g1 & (p1 * rm.sc + rm.sh > 0.0f));
        }
        a0 += g0;
        a1 += g1;
        b0 += g0 * (p0 - m);
        b1 += g1 * (p1 - m);
    }
    double s = 0.0, t = 0.0;
    for (int l = 0; l < 4; l++) {
        s += a0[l];
        t += b0[l];
    }
    for (int l = 0; l < 4; l++) {
        s += a1[l];
        t += b1[l];
    }
    for (; j < hw; j++) {
        float g = dy[j];
        if (rm.on && !(p[j] * rm.sc + rm.sh > 0.0f))
            g = 0.0f;
        s += g;
        t += (double)g * (p[j] - m);
    }
    *sg += s;
    *sgx += t;
}

/* q = p * a + b, then max(q, 0) if relu */
static void plane_affine(const float *restrict p, float *restrict q, int hw, float a, float b, int relu)
{
    if (relu)
        for (int j = 0; j < hw; j++)
            q[j] = del_cpu_relu(p[j] * a + b);
    else
        for (int j = 0; j < hw; j++)
            q[j] = p[j] * a + b;
}

/* d = k * g + a * p + b with g as in plane_grad_sums */
static void plane_dx(const float *restrict p, const float *restrict dy, relu_mask rm, float *restrict d, int hw,
                     float k, float a, float b)
{
    if (rm.on)
        for (int j = 0; j < hw; j++) {
            float g = dy[j], v = p[j] * rm.sc + rm.sh;
            g = v > 0.0f ? g : 0.0f;
            d[j] = k * g + a * p[j] + b;
        }
    else
        for (int j = 0; j < hw; j++)
            d[j] = k * dy[j] + a * p[j] + b;
}

typedef struct bn_job {
    int n, c, hw;
    const float *x, *dy, *gamma, *beta, *rmean_in, *rvar_in, *save_mean, *save_invstd;
    float eps, momentum;
    int relu;
    float *y, *dx, *rmean, *rvar, *out_mean, *out_invstd, *dgamma, *dbeta;
    double *ps, *pt; /* image-parallel passes: per (image, channel) plane sums, [n][c] */
    float *fk, *fa, *fb; /* and the backward's dx coefficients per channel */
} bn_job;

static const float *plane(const bn_job *j, const float *base, int i, int ch)
{
    return base + ((size_t)i * j->c + ch) * j->hw;
}

/* ---- per-channel steps shared by both ways ---- */

/* The shift of channel ch's sums: its first element. Two passes (sum,
 * then squares about the mean): the one-pass formula loses the variance
 * of activations with a large mean; the shift keeps the float partial
 * sums small. */
static float bn_shift(const bn_job *j, int ch)
{
    return j->x[(size_t)ch * j->hw];
}

static float bn_mean(float shift, double sum, double count)
{
    return (float)(shift + sum / count);
}

/* From the mean and the sum of squares about it: the running statistics,
 * the saved mean and invstd, and the affine map y = x * scale + sh. */
static void bn_finish_channel(const bn_job *j, int ch, float m, double sq, double count, float *scale, float *sh)
{
    double var = sq / count;
    float invstd = (float)(1.0 / sqrt(var + j->eps));
    *scale = j->gamma[ch] * invstd;
    *sh = j->beta[ch] - m * *scale;
    /* PyTorch updates the running variance with the unbiased estimate */
    double unbiased = count > 1 ? sq / (count - 1) : var;
    j->rmean[ch] = (1.0f - j->momentum) * j->rmean[ch] + j->momentum * m;
    j->rvar[ch] = (1.0f - j->momentum) * j->rvar[ch] + j->momentum * (float)unbiased;
    j->out_mean[ch] = m;
    j->out_invstd[ch] = invstd;
}

/* The forward's fused relu, recomputed with its float expressions. */
static relu_mask bn_mask(const bn_job *j, int ch)
{
    relu_mask rm = {0, 0.0f, 0.0f};
    if (j->relu) {
        rm.on = 1;
        rm.sc = j->gamma[ch] * j->save_invstd[ch];
        rm.sh = j->beta[ch] - j->save_mean[ch] * rm.sc;
    }
    return rm;
}

/* The parameter gradients of channel ch from its gradient sums, and dx's
 * coefficients: dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat))
 * as dx = k*dy + a*x + b, so that one pass suffices. */
static void bn_finish_grad(const bn_job *j, int ch, double sdy, double sdyx, double count, float *fk, float *a,
                           float *b)
{
    float m = j->save_mean[ch], is = j->save_invstd[ch];
    j->dgamma[ch] += (float)(sdyx * is);
    j->dbeta[ch] += (float)sdy;
    double kk = (double)j->gamma[ch] * is, mdy = sdy / count, mdyx = sdyx * is / count;
    *fk = (float)kk;
    *a = (float)(-kk * is * mdyx);
    *b = (float)(-kk * mdy + kk * is * mdyx * m);
}

/* ---- parallel over channels (no workspace) ----
 *
 * Channels are handled in blocks, each pass going image by image through
 * the block's planes: one contiguous run of memory per image, which the
 * hardware prefetcher follows (a channel's planes alone are short runs
 * c * hw floats apart, and walking them measured 2-3x slower). Every
 * channel still sees exactly the operations of a channel-at-a-time loop,
 * images in order, so results do not depend on the blocking. */
#define BN_BLOCK 64

static void bn_train_channels(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    double count = (double)j->n * j->hw;
    for (int c0 = (int)begin; c0 < (int)end; c0 += BN_BLOCK) {
        int nc = (int)end - c0 < BN_BLOCK ? (int)end - c0 : BN_BLOCK;
        double sum[BN_BLOCK], sq[BN_BLOCK];
        float shift[BN_BLOCK], m[BN_BLOCK], scale[BN_BLOCK], sh[BN_BLOCK];
        for (int k = 0; k < nc; k++) {
            shift[k] = bn_shift(j, c0 + k);
            sum[k] = 0.0;
            sq[k] = 0.0;
        }
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                sum[k] += plane_sum(plane(j, j->x, i, c0 + k), j->hw, shift[k]);
        for (int k = 0; k < nc; k++)
            m[k] = bn_mean(shift[k], sum[k], count);
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                sq[k] += plane_sq(plane(j, j->x, i, c0 + k), j->hw, m[k]);
        for (int k = 0; k < nc; k++)
            bn_finish_channel(j, c0 + k, m[k], sq[k], count, &scale[k], &sh[k]);
        if (!j->y)
            continue;
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                plane_affine(plane(j, j->x, i, c0 + k), (float *)plane(j, j->y, i, c0 + k), j->hw, scale[k], sh[k],
                             j->relu);
    }
}

static void bn_eval_channels(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int c0 = (int)begin; c0 < (int)end; c0 += BN_BLOCK) {
        int nc = (int)end - c0 < BN_BLOCK ? (int)end - c0 : BN_BLOCK;
        float scale[BN_BLOCK], sh[BN_BLOCK];
        for (int k = 0; k < nc; k++) {
            int ch = c0 + k;
            scale[k] = j->gamma[ch] / sqrtf(j->rvar_in[ch] + j->eps);
            sh[k] = j->beta[ch] - j->rmean_in[ch] * scale[k];
        }
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                plane_affine(plane(j, j->x, i, c0 + k), (float *)plane(j, j->y, i, c0 + k), j->hw, scale[k], sh[k],
                             j->relu);
    }
}

static void bn_backward_channels(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    double count = (double)j->n * j->hw;
    for (int c0 = (int)begin; c0 < (int)end; c0 += BN_BLOCK) {
        int nc = (int)end - c0 < BN_BLOCK ? (int)end - c0 : BN_BLOCK;
        double sdy[BN_BLOCK], sdyx[BN_BLOCK]; /* sum dy, sum dy * (x - mean) */
        relu_mask rm[BN_BLOCK];
        float fk[BN_BLOCK], a[BN_BLOCK], b[BN_BLOCK];
        for (int k = 0; k < nc; k++) {
            rm[k] = bn_mask(j, c0 + k);
            sdy[k] = 0.0;
            sdyx[k] = 0.0;
        }
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                plane_grad_sums(plane(j, j->x, i, c0 + k), plane(j, j->dy, i, c0 + k), rm[k], j->hw,
                                j->save_mean[c0 + k], &sdy[k], &sdyx[k]);
        for (int k = 0; k < nc; k++)
            bn_finish_grad(j, c0 + k, sdy[k], sdyx[k], count, &fk[k], &a[k], &b[k]);
        if (!j->dx)
            continue;
        for (int i = 0; i < j->n; i++)
            for (int k = 0; k < nc; k++)
                plane_dx(plane(j, j->x, i, c0 + k), plane(j, j->dy, i, c0 + k), rm[k],
                         (float *)plane(j, j->dx, i, c0 + k), j->hw, fk[k], a[k], b[k]);
    }
}

/* One contiguous range of channels per thread: the pool's finer chunks
 * (a few channels each) made each image's run of memory short again and
 * ran slower on two threads than on one. */
typedef struct bn_split {
    const bn_job *j;
    del_range_fn fn;
    int parts;
} bn_split;

static void bn_part(void *ctx, int64_t begin, int64_t end)
{
    const bn_split *b = ctx;
    int64_t c = b->j->c;
    for (int64_t p = begin; p < end; p++)
        b->fn((void *)b->j, c * p / b->parts, c * (p + 1) / b->parts);
}

static void bn_run_channels(const bn_job *j, del_range_fn fn)
{
    int parts = del_threads_count();
    if (parts > j->c)
        parts = j->c;
    bn_split b = {j, fn, parts < 1 ? 1 : parts};
    del_parallel_for(b.parts, bn_part, &b);
}

/* ---- parallel over images (with a workspace) ---- */

/* The workspace: two [n][c] arrays of plane sums, then three [c] floats. */
size_t del_cpu_batchnorm_workspace(int n, int c)
{
    return (size_t)2 * (size_t)n * (size_t)c * sizeof(double) + (size_t)3 * (size_t)c * sizeof(float);
}

static void bn_carve(bn_job *j, void *ws)
{
    size_t nc = (size_t)j->n * (size_t)j->c;
    j->ps = ws;
    j->pt = j->ps + nc;
    j->fk = (float *)(j->pt + nc);
    j->fa = j->fk + j->c;
    j->fb = j->fa + j->c;
}

/* Sum over images, in image order, of channel ch's plane values in a. */
static double sum_images(const bn_job *j, const double *a, int ch)
{
    double s = 0.0;
    for (int i = 0; i < j->n; i++)
        s += a[(size_t)i * j->c + ch];
    return s;
}

static void img_sums(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int i = (int)begin; i < (int)end; i++)
        for (int ch = 0; ch < j->c; ch++)
            j->ps[(size_t)i * j->c + ch] = plane_sum(plane(j, j->x, i, ch), j->hw, bn_shift(j, ch));
}

static void img_squares(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int i = (int)begin; i < (int)end; i++)
        for (int ch = 0; ch < j->c; ch++)
            j->ps[(size_t)i * j->c + ch] = plane_sq(plane(j, j->x, i, ch), j->hw, j->out_mean[ch]);
}

/* y from x with the saved statistics: scale and shift are the float
 * expressions bn_finish_channel computed them with */
static void img_affine(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int i = (int)begin; i < (int)end; i++)
        for (int ch = 0; ch < j->c; ch++) {
            float scale = j->gamma[ch] * j->out_invstd[ch], sh = j->beta[ch] - j->out_mean[ch] * scale;
            plane_affine(plane(j, j->x, i, ch), (float *)plane(j, j->y, i, ch), j->hw, scale, sh, j->relu);
        }
}

static void bn_train_images(const bn_job *j)
{
    double count = (double)j->n * j->hw;
    del_parallel_for(j->n, img_sums, (void *)j);
    for (int ch = 0; ch < j->c; ch++)
        j->out_mean[ch] = bn_mean(bn_shift(j, ch), sum_images(j, j->ps, ch), count);
    del_parallel_for(j->n, img_squares, (void *)j);
    for (int ch = 0; ch < j->c; ch++) {
        float scale, sh;
        bn_finish_channel(j, ch, j->out_mean[ch], sum_images(j, j->ps, ch), count, &scale, &sh);
    }
    if (j->y)
        del_parallel_for(j->n, img_affine, (void *)j);
}

static void img_grad_sums(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int i = (int)begin; i < (int)end; i++)
        for (int ch = 0; ch < j->c; ch++) {
            size_t k = (size_t)i * j->c + ch;
            j->ps[k] = 0.0;
            j->pt[k] = 0.0;
            plane_grad_sums(plane(j, j->x, i, ch), plane(j, j->dy, i, ch), bn_mask(j, ch), j->hw,
                            j->save_mean[ch], &j->ps[k], &j->pt[k]);
        }
}

static void img_dx(void *ctx, int64_t begin, int64_t end)
{
    const bn_job *j = ctx;
    for (int i = (int)begin; i < (int)end; i++)
        for (int ch = 0; ch < j->c; ch++)
            plane_dx(plane(j, j->x, i, ch), plane(j, j->dy, i, ch), bn_mask(j, ch), (float *)plane(j, j->dx, i, ch),
                     j->hw, j->fk[ch], j->fa[ch], j->fb[ch]);
}

static void bn_backward_images(const bn_job *j)
{
    double count = (double)j->n * j->hw;
    del_parallel_for(j->n, img_grad_sums, (void *)j);
    for (int ch = 0; ch < j->c; ch++)
        bn_finish_grad(j, ch, sum_images(j, j->ps, ch), sum_images(j, j->pt, ch), count, &j->fk[ch], &j->fa[ch],
                       &j->fb[ch]);
    if (j->dx)
        del_parallel_for(j->n, img_dx, (void *)j);
}

/* ---- entry points ---- */

void del_cpu_batchnorm_forward_train(int n, int c, int hw, const float *x, const float *gamma,
                                     const float *beta, float eps, float momentum, float *running_mean,
                                     float *running_var, int relu, float *y, float *save_mean,
                                     float *save_invstd, void *ws)
{
    bn_job j = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .beta = beta, .eps = eps,
                .momentum = momentum, .rmean = running_mean, .rvar = running_var, .relu = relu, .y = y,
                .out_mean = save_mean, .out_invstd = save_invstd};
    if (ws) {
        bn_carve(&j, ws);
        bn_train_images(&j);
    } else {
        bn_run_channels(&j, bn_train_channels);
    }
}

void del_cpu_batchnorm_forward_eval(int n, int c, int hw, const float *x, const float *gamma,
                                    const float *beta, const float *running_mean, const float *running_var,
                                    float eps, int relu, float *y)
{
    bn_job j = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .beta = beta, .rmean_in = running_mean,
                .rvar_in = running_var, .eps = eps, .relu = relu, .y = y};
    bn_run_channels(&j, bn_eval_channels);
}

void del_cpu_batchnorm_backward(int n, int c, int hw, const float *x, const float *dy, const float *gamma,
                                const float *beta, int relu, const float *save_mean, const float *save_invstd,
                                float *dx, float *dgamma, float *dbeta, void *ws)
{
    bn_job j = {.n = n, .c = c, .hw = hw, .x = x, .dy = dy, .gamma = gamma, .beta = beta, .relu = relu != 0,
                .save_mean = save_mean, .save_invstd = save_invstd, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    if (ws) {
        bn_carve(&j, ws);
        bn_backward_images(&j);
    } else {
        bn_run_channels(&j, bn_backward_channels);
    }
}
