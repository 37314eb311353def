/* Max and average pooling, parallel over (image, channel) planes. */
#include <math.h>
#include <string.h>

/* The build's -O2 leaves loops with a run-time trip count scalar (gcc's
 * "very cheap" vectoriser cost model); these kernels need the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "core/isa.h"
#include "core/threads.h"

typedef struct pool_job {
    const del_pool_shape *s;
    const float *x, *dy;
    const int32_t *argmax_in;
    float *y, *dx;
    int32_t *argmax;
} pool_job;

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* Even and odd lanes of the 8-float concatenation (a, b): GCC and clang
 * spell the vector shuffle differently. */
#if defined(__clang__)
#define SHUFFLE_EVEN(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6)
#define SHUFFLE_ODD(a, b) __builtin_shufflevector((a), (b), 1, 3, 5, 7)
#else
#define SHUFFLE_EVEN(a, b) __builtin_shuffle((a), (b), (v4i){0, 2, 4, 6})
#define SHUFFLE_ODD(a, b) __builtin_shuffle((a), (b), (v4i){1, 3, 5, 7})
#endif

/* m ? a : b lane by lane (m all ones or all zeros) */
static inline v4f sel_f(v4i m, v4f a, v4f b)
{
    return (v4f)((m & (v4i)a) | (~m & (v4i)b));
}

static inline v4i sel_i(v4i m, v4i a, v4i b)
{
    return (m & a) | (~m & b);
}

/* The common 2x2 / stride 2 case, four windows at a time: the even and odd
 * columns are split by shuffles and the max taken by compare-and-select
 * (the comparisons are unpredictable, so no branches), with the tests of
 * del_cpu_pool_takes lane by lane: the first maximum on ties, else the
 * last NaN, as the scalar tail and the general kernel give. The selects
 * are one instruction with AVX2 or AVX-512 (three with SSE2), which pays
 * for the NaN tests: one version per ISA level (core/isa.h). Compares and
 * selects only, so every version gives the same bits. */
DEL_ISA_BODY void pool2x2_plane_body(const del_pool_shape *s, const float *xp, float *yp, int32_t *ap)
{
    for (int oh = 0; oh < s->h_out; oh++) {
        const float *r0 = xp + (size_t)(2 * oh) * s->w_in, *r1 = r0 + s->w_in;
        int i0 = 2 * oh * s->w_in, i1 = i0 + s->w_in, ow = 0;
        float *yrow = yp + (size_t)oh * s->w_out;
        int32_t *arow = ap + (size_t)oh * s->w_out;
        for (; ow + 4 <= s->w_out; ow += 4) {
            v4f p0, p1, q0, q1;
            memcpy(&p0, r0 + 2 * ow, sizeof p0);
            memcpy(&p1, r0 + 2 * ow + 4, sizeof p1);
            memcpy(&q0, r1 + 2 * ow, sizeof q0);
            memcpy(&q1, r1 + 2 * ow + 4, sizeof q1);
            v4f a = SHUFFLE_EVEN(p0, p1), b = SHUFFLE_ODD(p0, p1);
            v4f c = SHUFFLE_EVEN(q0, q1), d = SHUFFLE_ODD(q0, q1);
            v4i ia = (v4i){0, 2, 4, 6} + (i0 + 2 * ow), ic = ia + (i1 - i0);
            v4i mab = (b > a) | (b != b), mcd = (d > c) | (d != d);
            v4f ab = sel_f(mab, b, a), cd = sel_f(mcd, d, c);
            v4i iab = sel_i(mab, ia + 1, ia), icd = sel_i(mcd, ic + 1, ic);
            v4i take_cd = (cd > ab) | (cd != cd);
            v4f y = sel_f(take_cd, cd, ab);
            v4i idx = sel_i(take_cd, icd, iab);
            memcpy(yrow + ow, &y, sizeof y);
            memcpy(arow + ow, &idx, sizeof idx);
        }
        for (; ow < s->w_out; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            int ia = i0 + 2 * ow, ic = i1 + 2 * ow;
            float ab = b > a ? b : a, cd = d > c ? d : c;
            int iab = b > a ? ia + 1 : ia, icd = d > c ? ic + 1 : ic;
            int take_cd = cd > ab;
            float y = take_cd ? cd : ab;
            int idx = take_cd ? icd : iab;
            /* a NaN is rare, so a branch (gcc turned the selects of
             * del_cpu_pool_takes into branches here, 30% slower) */
            if (isunordered(a, b) || isunordered(c, d)) {
                y = d != d ? d : c != c ? c : b != b ? b : a;
                idx = d != d ? ic + 1 : c != c ? ic : b != b ? ia + 1 : ia;
            }
            yrow[ow] = y;
            arow[ow] = idx;
        }
    }
}
DEL_ISA_VERSIONS(pool2x2_plane, (const del_pool_shape *s, const float *xp, float *yp, int32_t *ap),
                 (s, xp, yp, ap))

/* Whether x[0..n) holds a NaN: an or of compares, which gcc vectorises. */
static int has_nan(const float *x, size_t n)
{
    int any = 0;
    for (size_t i = 0; i < n; i++)
        any |= x[i] != x[i];
    return any;
}

/* Any window size and stride, one plane. with_nan (a constant at each
 * call): the plane holds a NaN, so the windows take del_cpu_pool_takes;
 * otherwise the plain strict compare, first maximum on ties (the NaN
 * test in every window cost 10-20% even when never true). */
static inline __attribute__((always_inline)) void pool_plane(const del_pool_shape *s, const float *xp, float *yp,
                                                             int32_t *ap, int with_nan)
{
    for (int oh = 0; oh < s->h_out; oh++)
        for (int ow = 0; ow < s->w_out; ow++) {
            int base = oh * s->stride * s->w_in + ow * s->stride, best = base;
            float bv = xp[base];
            for (int kh = 0; kh < s->kernel; kh++)
                for (int kw = 0; kw < s->kernel; kw++) {
                    int idx = base + kh * s->w_in + kw;
                    if (with_nan ? del_cpu_pool_takes(xp[idx], bv) : xp[idx] > bv) {
                        bv = xp[idx];
                        best = idx;
                    }
                }
            yp[oh * s->w_out + ow] = bv;
            ap[oh * s->w_out + ow] = best;
        }
}

static void pool_fwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const del_pool_shape *s = j->s;
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    if (s->kernel == 2 && s->stride == 2) {
        for (int64_t p = begin; p < end; p++)
            DEL_ISA_PICK(pool2x2_plane)(s, j->x + p * in_sz, j->y + p * out_sz, j->argmax + p * out_sz);
        return;
    }
    for (int64_t p = begin; p < end; p++) {
        const float *xp = j->x + p * in_sz;
        if (has_nan(xp, in_sz))
            pool_plane(s, xp, j->y + p * out_sz, j->argmax + p * out_sz, 1);
        else
            pool_plane(s, xp, j->y + p * out_sz, j->argmax + p * out_sz, 0);
    }
}

void del_cpu_maxpool2d_forward(const del_pool_shape *s, const float *x, float *y, int32_t *argmax)
{
    pool_job j = {.s = s, .x = x, .y = y, .argmax = argmax};
    del_parallel_for((int64_t)s->n * s->c, pool_fwd_planes, &j);
}

static void pool_bwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const del_pool_shape *s = j->s;
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    for (int64_t p = begin; p < end; p++) {
        float *dxp = j->dx + p * in_sz;
        const float *dyp = j->dy + p * out_sz;
        const int32_t *ap = j->argmax_in + p * out_sz;
        memset(dxp, 0, in_sz * sizeof(float));
        /* windows in output order, so overlapping windows add up in a fixed order */
        for (size_t o = 0; o < out_sz; o++)
            dxp[ap[o]] += dyp[o];
    }
}

void del_cpu_maxpool2d_backward(const del_pool_shape *s, const float *dy, const int32_t *argmax, float *dx)
{
    pool_job j = {.s = s, .dy = dy, .argmax_in = argmax, .dx = dx};
    del_parallel_for((int64_t)s->n * s->c, pool_bwd_planes, &j);
}

/* ---- average pooling ---- */

typedef struct avg_job {
    const del_pool_shape *s;
    const float *src;
    float *dst;
    int64_t hw; /* global pooling: values per plane */
} avg_job;

static void avg_fwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const avg_job *j = ctx;
    const del_pool_shape *s = j->s;
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    float div = (float)(s->kernel * s->kernel);
    for (int64_t p = begin; p < end; p++) {
        const float *xp = j->src + p * in_sz;
        float *yp = j->dst + p * out_sz;
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                const float *win = xp + (size_t)oh * s->stride * s->w_in + (size_t)ow * s->stride;
                float acc = 0.0f;
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++)
                        acc += win[(size_t)kh * s->w_in + kw];
                yp[(size_t)oh * s->w_out + ow] = acc / div;
            }
    }
}

void del_cpu_avgpool2d_forward(const del_pool_shape *s, const float *x, float *y)
{
    avg_job j = {.s = s, .src = x, .dst = y};
    del_parallel_for((int64_t)s->n * s->c, avg_fwd_planes, &j);
}

static void avg_bwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const avg_job *j = ctx;
    const del_pool_shape *s = j->s;
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    float div = (float)(s->kernel * s->kernel);
    for (int64_t p = begin; p < end; p++) {
        const float *dyp = j->src + p * out_sz;
        float *dxp = j->dst + p * in_sz;
        memset(dxp, 0, in_sz * sizeof(float));
        /* output order, so overlapping windows add up in a fixed order */
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                float g = dyp[(size_t)oh * s->w_out + ow] / div;
                float *win = dxp + (size_t)oh * s->stride * s->w_in + (size_t)ow * s->stride;
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++)
                        win[(size_t)kh * s->w_in + kw] += g;
            }
    }
}

void del_cpu_avgpool2d_backward(const del_pool_shape *s, const float *dy, float *dx)
{
    avg_job j = {.s = s, .src = dy, .dst = dx};
    del_parallel_for((int64_t)s->n * s->c, avg_bwd_planes, &j);
}

static void gap_fwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const avg_job *j = ctx;
    for (int64_t p = begin; p < end; p++) {
        const float *xp = j->src + p * j->hw;
        float acc = 0.0f;
        for (int64_t i = 0; i < j->hw; i++)
            acc += xp[i];
        j->dst[p] = acc / (float)j->hw;
    }
}

void del_cpu_global_avgpool_forward(int64_t planes, int hw, const float *x, float *y)
{
    avg_job j = {.src = x, .dst = y, .hw = hw};
    del_parallel_for(planes, gap_fwd_planes, &j);
}

static void gap_bwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const avg_job *j = ctx;
    for (int64_t p = begin; p < end; p++) {
        float g = j->src[p] / (float)j->hw, *dxp = j->dst + p * j->hw;
        for (int64_t i = 0; i < j->hw; i++)
            dxp[i] = g;
    }
}

void del_cpu_global_avgpool_backward(int64_t planes, int hw, const float *dy, float *dx)
{
    avg_job j = {.src = dy, .dst = dx, .hw = hw};
    del_parallel_for(planes, gap_bwd_planes, &j);
}
