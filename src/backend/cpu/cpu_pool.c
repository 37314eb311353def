/* Max pooling over square windows, parallel over (image, channel) planes. */
#include <string.h>

/* The build's -O2 leaves loops with a run-time trip count scalar (gcc's
 * "very cheap" vectoriser cost model); these kernels need the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "core/threads.h"

typedef struct pool_job {
    const del_pool_shape *s;
    const float *x, *dy;
    const int32_t *argmax_in;
    float *y, *dx;
    int32_t *argmax;
} pool_job;

/* The common 2x2 / stride 2 case without the window loops; selects
 * instead of branches because the comparisons are unpredictable. */
static void pool2x2_plane(const del_pool_shape *s, const float *xp, float *yp, int32_t *ap)
{
    for (int oh = 0; oh < s->h_out; oh++) {
        const float *r0 = xp + (size_t)(2 * oh) * s->w_in, *r1 = r0 + s->w_in;
        int i0 = 2 * oh * s->w_in, i1 = i0 + s->w_in;
        for (int ow = 0; ow < s->w_out; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            int ia = i0 + 2 * ow, ic = i1 + 2 * ow;
            float ab = b > a ? b : a, cd = d > c ? d : c;
            int iab = b > a ? ia + 1 : ia, icd = d > c ? ic + 1 : ic;
            int take_cd = cd > ab;
            yp[oh * s->w_out + ow] = take_cd ? cd : ab;
            ap[oh * s->w_out + ow] = take_cd ? icd : iab;
        }
    }
}

static void pool_fwd_planes(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const del_pool_shape *s = j->s;
    size_t in_sz = (size_t)s->h_in * s->w_in, out_sz = (size_t)s->h_out * s->w_out;
    if (s->kernel == 2 && s->stride == 2) {
        for (int64_t p = begin; p < end; p++)
            pool2x2_plane(s, j->x + p * in_sz, j->y + p * out_sz, j->argmax + p * out_sz);
        return;
    }
    for (int64_t p = begin; p < end; p++) {
        const float *xp = j->x + p * in_sz;
        float *yp = j->y + p * out_sz;
        int32_t *ap = j->argmax + p * out_sz;
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                int base = oh * s->stride * s->w_in + ow * s->stride, best = base;
                float bv = xp[base];
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++) {
                        int idx = base + kh * s->w_in + kw;
                        /* strict: the first maximum wins ties */
                        if (xp[idx] > bv) {
                            bv = xp[idx];
                            best = idx;
                        }
                    }
                yp[oh * s->w_out + ow] = bv;
                ap[oh * s->w_out + ow] = best;
            }
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
