/* Convolution as gemms on single-threaded sgemm, parallel over images.
 *
 * Stride-1 convolutions use a "wide" layout: the input is copied once into
 * a zero-padded plane of width wp = w_in + 2*pad, and the output is
 * computed on an h_out x wp grid whose last wp - w_out columns are
 * discarded. The waste is (wp - w_out)/wp of the flops (7% at 28x28, 13%
 * at 14x14). On that grid the input seen by kernel tap (kh, kw) is the
 * padded plane shifted by kh*wp + kw: a [c_in, h_out*wp] matrix with row
 * stride hp*wp, which sgemm reads in place. So with c_in large enough
 * ("shifted" path) a convolution is k*k gemms with K = c_in accumulating
 * into one output, the weight gradient k*k gemms against the same shifted
 * views, and the input gradient k*k gemms accumulating straight into the
 * padded gradient plane: no im2col and no col2im, which cost more than the
 * gemms' own packing (measured 2x on the forward, 3x on dx at 28x28, 32
 * channels). The weights are permuted to [k*k][c_out][c_in] once per call.
 * (3x3 / stride 1 / pad 1 layers with 16 or more channels go to Winograd,
 * cpu_winograd.c, for all three passes; see use_winograd.)
 * Few input channels (the first layer) make those gemms too thin; there a
 * wide im2col builds the usual [c_in*k*k, h_out*wp] column matrix, each
 * row one contiguous slice of the padded plane.
 *
 * The batch is cut into CONV_SLOTS fixed, contiguous ranges of images
 * ("slots") whatever the thread count; each slot has its own buffers and
 * its own partial weight gradient, and the partials are summed in slot
 * order at the end. Threads only decide which slot runs where, so results
 * are bit-identical for any thread count. One image per gemm keeps the
 * buffers in L2 and lets the forward write straight into the NCHW output. */
#include <string.h>

/* The build's -O2 leaves loops with a run-time trip count scalar (gcc's
 * "very cheap" vectoriser cost model); these kernels need the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "backend/cpu/cpu_winograd.h"
#include "core/isa.h"
#include "core/threads.h"

/* More slots than any likely core count of a training box, few enough
 * that the partial weight gradients stay small. */
#define CONV_SLOTS 8

static int conv_slots(const del_conv2d_shape *s)
{
    return s->n < CONV_SLOTS ? s->n : CONV_SLOTS;
}

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

static size_t w_floats(const del_conv2d_shape *s)
{
    return (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
}

/* 1x1, stride 1, no padding: the input plane already is the column matrix. */
static int is_pointwise(const del_conv2d_shape *s)
{
    return s->kernel == 1 && s->stride == 1 && s->pad == 0;
}

static int is_wide(const del_conv2d_shape *s)
{
    return s->stride == 1 && !is_pointwise(s);
}

/* Below this many input channels the per-tap gemms (K = c_in) are too thin. */
#define SHIFT_MIN_C_IN 8

static int is_shifted(const del_conv2d_shape *s)
{
    return is_wide(s) && s->c_in >= SHIFT_MIN_C_IN;
}

/* The permuted weights of the shifted path come first, shared by all slots. */
static size_t wperm_floats(const del_conv2d_shape *s)
{
    return is_shifted(s) ? round16(w_floats(s)) : 0;
}

/* Where each buffer of a slot lives, in floats from the slot's start;
 * every buffer starts on a cache line. */
typedef struct slot_layout {
    int wp, hp;          /* padded plane (wide path) */
    size_t nw;           /* columns of the column matrix: h_out*wp or h_out*w_out */
    size_t pad_plane;    /* hp*wp */
    size_t col, padded, wide_y, dw, db, total;
    size_t wperm;        /* floats before slot 0: the permuted weights */
} slot_layout;

static slot_layout layout_of(const del_conv2d_shape *s)
{
    slot_layout l = {0};
    size_t cik = (size_t)s->c_in * s->kernel * s->kernel, at = 0;
    if (is_wide(s)) {
        l.wp = s->w_in + 2 * s->pad;
        l.hp = s->h_in + 2 * s->pad;
        l.pad_plane = (size_t)l.hp * l.wp;
        l.nw = (size_t)s->h_out * l.wp;
    } else {
        l.nw = (size_t)s->h_out * s->w_out;
    }
    l.col = at;
    at += is_pointwise(s) || is_shifted(s) ? 0 : round16(cik * l.nw);
    l.padded = at;
    /* the last rows of the wide column matrix read up to kernel - 1
     * floats past the last plane (only for discarded columns) */
    at += is_wide(s) ? round16((size_t)s->c_in * l.pad_plane + (size_t)s->kernel) : 0;
    /* the wide output grid; for the other paths an output-sized scratch
     * used only when the forward pools (conv2d_forward_affine) */
    l.wide_y = at;
    at += round16((size_t)s->c_out * l.nw);
    l.dw = at;
    at += round16(w_floats(s));
    l.db = at;
    at += round16((size_t)s->c_out);
    l.total = at;
    l.wperm = wperm_floats(s);
    return l;
}

/* 3x3 / stride 1 / pad 1 layers with enough channels run their forward,
 * input gradient and weight gradient through Winograd (cpu_winograd.c);
 * only a bias gradient stays on the code below. The passes never use the
 * workspace at the same time, so they share it. */
static int use_winograd(const del_conv2d_shape *s)
{
    return del_cpu_wg_applies(s);
}

size_t del_cpu_conv2d_workspace(const del_conv2d_shape *s)
{
    size_t direct = (wperm_floats(s) + (size_t)conv_slots(s) * layout_of(s).total) * sizeof(float) + 64;
    size_t wg = use_winograd(s) ? del_cpu_wg_workspace(s) : 0;
    return direct > wg ? direct : wg;
}

/* The workspace from the caller may be only 4-byte aligned. */
static float *ws_base(void *ws)
{
    return (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
}

static float *slot_base(const slot_layout *l, void *ws, int slot)
{
    return ws_base(ws) + l->wperm + (size_t)slot * l->total;
}

/* The valid output columns [lo, hi) for kernel column kw: those whose
 * input column ow*stride - pad + kw lies inside [0, w_in). */
static void valid_cols(const del_conv2d_shape *s, int kw, int *lo, int *hi)
{
    int off = kw - s->pad, st = s->stride;
    int a = off >= 0 ? 0 : (-off + st - 1) / st;
    int b = s->w_in - off <= 0 ? 0 : (s->w_in - off - 1) / st + 1;
    if (b > s->w_out)
        b = s->w_out;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* col[(ci*k + kh)*k + kw, oh*w_out + ow] = x[ci, oh*s - p + kh, ow*s - p + kw] (0 outside).
 * The strided copies of im2col / col2im (stride 2) vectorise only with
 * AVX2 or AVX-512 permutes: one version per ISA level (core/isa.h).
 * Copies and per-element additions in the same order, so every version
 * gives the same bits. */
DEL_ISA_BODY void im2col_body(const del_conv2d_shape *s, const float *x, float *col)
{
    int k = s->kernel, ho = s->h_out, wo = s->w_out, st = s->stride;
    size_t hw = (size_t)ho * wo;
    for (int ci = 0; ci < s->c_in; ci++) {
        const float *plane = x + (size_t)ci * s->h_in * s->w_in;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                float *row = col + ((size_t)(ci * k + kh) * k + kw) * hw;
                int lo, hi;
                valid_cols(s, kw, &lo, &hi);
                for (int oh = 0; oh < ho; oh++) {
                    float *dst = row + (size_t)oh * wo;
                    int ih = oh * st - s->pad + kh;
                    if (ih < 0 || ih >= s->h_in || lo >= hi) {
                        memset(dst, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    /* input column of output column ow: ow*st + c0 */
                    const float *src = plane + (size_t)ih * s->w_in;
                    int c0 = kw - s->pad;
                    for (int ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0f;
                    if (st == 1)
                        memcpy(dst + lo, src + lo + c0, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] = src[ow * st + c0];
                    for (int ow = hi; ow < wo; ow++)
                        dst[ow] = 0.0f;
                }
            }
    }
}
DEL_ISA_VERSIONS(im2col, (const del_conv2d_shape *s, const float *x, float *col), (s, x, col))

/* The adjoint of im2col: dx[...] += col[...] (dx zeroed by the caller).
 * The (kh, kw) loops are outermost per channel so every dx element gets
 * its contributions in the same fixed order. */
DEL_ISA_BODY void col2im_body(const del_conv2d_shape *s, const float *col, float *dx)
{
    int k = s->kernel, ho = s->h_out, wo = s->w_out, st = s->stride;
    size_t hw = (size_t)ho * wo;
    for (int ci = 0; ci < s->c_in; ci++) {
        float *plane = dx + (size_t)ci * s->h_in * s->w_in;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const float *row = col + ((size_t)(ci * k + kh) * k + kw) * hw;
                int lo, hi;
                valid_cols(s, kw, &lo, &hi);
                for (int oh = 0; oh < ho; oh++) {
                    int ih = oh * st - s->pad + kh;
                    if (ih < 0 || ih >= s->h_in)
                        continue;
                    const float *src = row + (size_t)oh * wo;
                    float *dst = plane + (size_t)ih * s->w_in;
                    int c0 = kw - s->pad;
                    if (st == 1)
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow + c0] += src[ow];
                    else
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow * st + c0] += src[ow];
                }
            }
    }
}
DEL_ISA_VERSIONS(col2im, (const del_conv2d_shape *s, const float *col, float *dx), (s, col, dx))

/* ---- the wide stride-1 path ---- */

static inline void copy_row(float *restrict dst, const float *restrict src, int len)
{
    memcpy(dst, src, (size_t)len * sizeof(float));
}

static inline void zero_row(float *dst, int len)
{
    memset(dst, 0, (size_t)len * sizeof(float));
}

/* padded[ci, pad + h, pad + w] = x[ci, h, w], zero border (and the slack
 * after the last plane); every element is written once */
static void pad_planes(const del_conv2d_shape *s, const slot_layout *l, const float *x, float *padded)
{
    int p = s->pad, right = l->wp - p - s->w_in;
    for (int ci = 0; ci < s->c_in; ci++) {
        const float *src = x + (size_t)ci * s->h_in * s->w_in;
        float *plane = padded + (size_t)ci * l->pad_plane;
        zero_row(plane, p * l->wp + p);
        for (int h = 0; h < s->h_in; h++) {
            float *row = plane + (size_t)(h + p) * l->wp + p;
            copy_row(row, src + (size_t)h * s->w_in, s->w_in);
            /* the right border of this row and the left border of the next */
            zero_row(row + s->w_in, h + 1 < s->h_in ? right + p : right);
        }
        zero_row(plane + (size_t)(s->h_in + p) * l->wp, (l->hp - s->h_in - p) * l->wp);
    }
    zero_row(padded + (size_t)s->c_in * l->pad_plane, s->kernel);
}

/* col[(ci*k + kh)*k + kw, j] = padded[ci, kh*wp + kw + j] for j < h_out*wp */
static void wide_im2col(const del_conv2d_shape *s, const slot_layout *l, const float *padded, float *col)
{
    int k = s->kernel;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                float *row = col + ((size_t)(ci * k + kh) * k + kw) * l->nw;
                const float *src = padded + (size_t)ci * l->pad_plane + (size_t)kh * l->wp + kw;
                memcpy(row, src, l->nw * sizeof(float));
            }
}

/* The adjoint: padded[...] += col[...] row by row (fixed order). */
static void wide_col2im(const del_conv2d_shape *s, const slot_layout *l, const float *col, float *padded)
{
    int k = s->kernel;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const float *row = col + ((size_t)(ci * k + kh) * k + kw) * l->nw;
                float *dst = padded + (size_t)ci * l->pad_plane + (size_t)kh * l->wp + kw;
                for (size_t j = 0; j < l->nw; j++)
                    dst[j] += row[j];
            }
}

/* Offset of kernel tap t = kh*k + kw in the padded plane. */
static size_t tap_shift(const del_conv2d_shape *s, const slot_layout *l, int t)
{
    return (size_t)(t / s->kernel) * l->wp + (size_t)(t % s->kernel);
}

typedef struct perm_job {
    const del_conv2d_shape *s;
    const float *w;
    float *wperm;
} perm_job;

static void permute_range(void *ctx, int64_t begin, int64_t end)
{
    const perm_job *j = ctx;
    const del_conv2d_shape *s = j->s;
    int kk = s->kernel * s->kernel;
    for (int co = (int)begin; co < (int)end; co++)
        for (int ci = 0; ci < s->c_in; ci++)
            for (int t = 0; t < kk; t++)
                j->wperm[((size_t)t * s->c_out + co) * s->c_in + ci] =
                    j->w[((size_t)co * s->c_in + ci) * kk + t];
}

/* wperm[tap, co, ci] = w[co, ci, tap]; a copy, split over co (it ran on
 * one thread before every forward and backward of the shifted path) */
static void permute_weights(const del_conv2d_shape *s, const float *w, float *wperm)
{
    perm_job j = {s, w, wperm};
    del_parallel_for(s->c_out, permute_range, &j);
}

/* ---- the parallel drivers ---- */

typedef struct conv_job {
    const del_conv2d_shape *s;
    slot_layout l;
    const float *x, *w, *wperm, *bias, *scale, *shift, *dy;
    int relu, pool;
    float *y, *dx;
    int want_dw, want_db;
    void *ws;
    int slots;
} conv_job;

static void slot_images(const conv_job *j, int slot, int *first, int *last)
{
    int n = j->s->n, q = n / j->slots, r = n % j->slots;
    *first = slot * q + (slot < r ? slot : r);
    *last = *first + q + (slot < r ? 1 : 0);
}

/* dst[p] = f(src[p]) for one row: + bias, then * scale + shift if
 * affine, then max(., 0) if relu; src == dst allowed (no restrict) */
static void epilogue_row(const float *src, float *dst, int len, float bias, int affine, float scale, float shift,
                         int relu)
{
    if (!affine && !relu) {
        for (int p = 0; p < len; p++)
            dst[p] = src[p] + bias;
        return;
    }
    if (!affine)
        scale = 1.0f, shift = 0.0f;
    /* relu hoisted out of the loop, so that gcc vectorises both */
    if (relu)
        for (int p = 0; p < len; p++)
            dst[p] = del_cpu_relu((src[p] + bias) * scale + shift);
    else
        for (int p = 0; p < len; p++)
            dst[p] = (src[p] + bias) * scale + shift;
}

/* 2x2 / stride 2 max pooling of rows r0, r1 into dst (w = pooled width),
 * with the comparisons of the maxpool kernel (first max wins, same NaN
 * handling), so a pooled forward equals conv, then maxpool. */
static void pool_rows(const float *r0, const float *r1, float *dst, int w)
{
    for (int q = 0; q < w; q++) {
        float a = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], d = r1[2 * q + 1];
        float ab = del_cpu_pool_takes(b, a) ? b : a, cd = del_cpu_pool_takes(d, c) ? d : c;
        dst[q] = del_cpu_pool_takes(cd, ab) ? cd : ab;
    }
}

/* From the conv result of one image, c_out planes at src + co*cstride with
 * rows rstride apart: the epilogue, then the pooling if asked, into yi. */
static void write_output(const conv_job *j, float *src, size_t cstride, int rstride, float *yi)
{
    const del_conv2d_shape *s = j->s;
    int affine = j->scale != NULL, post = j->bias || affine || j->relu;
    int ho = j->pool ? s->h_out / 2 : s->h_out, wo = j->pool ? s->w_out / 2 : s->w_out;
    for (int co = 0; co < s->c_out; co++) {
        float b = j->bias ? j->bias[co] : 0.0f, sc = affine ? j->scale[co] : 1.0f;
        float sh = affine ? j->shift[co] : 0.0f, *plane = src + co * cstride, *out = yi + (size_t)co * ho * wo;
        if (!j->pool) {
            for (int oh = 0; oh < s->h_out; oh++) {
                float *row = plane + (size_t)oh * rstride, *dst = out + (size_t)oh * wo;
                if (post)
                    epilogue_row(row, dst, wo, b, affine, sc, sh, j->relu);
                else if (row != dst)
                    copy_row(dst, row, wo);
            }
            continue;
        }
        /* in place on the scratch grid, then pooled out of it */
        for (int oh = 0; oh < 2 * ho; oh++)
            if (post)
                epilogue_row(plane + (size_t)oh * rstride, plane + (size_t)oh * rstride, s->w_out, b, affine, sc,
                             sh, j->relu);
        for (int r = 0; r < ho; r++)
            pool_rows(plane + (size_t)(2 * r) * rstride, plane + (size_t)(2 * r + 1) * rstride,
                      out + (size_t)r * wo, wo);
    }
}

static void forward_image(const conv_job *j, float *base, int i)
{
    const del_conv2d_shape *s = j->s;
    const slot_layout *l = &j->l;
    int cik = s->c_in * s->kernel * s->kernel, hw = s->h_out * s->w_out;
    const float *xi = j->x + (size_t)i * s->c_in * s->h_in * s->w_in;
    size_t y_img = j->pool ? (size_t)s->c_out * (s->h_out / 2) * (s->w_out / 2) : (size_t)s->c_out * hw;
    float *yi = j->y + (size_t)i * y_img, *col = base + l->col, *scratch = base + l->wide_y;
    if (is_wide(s)) {
        float *padded = base + l->padded;
        pad_planes(s, l, xi, padded);
        if (is_shifted(s)) {
            /* wide[co, j] = sum_tap sum_ci wperm[tap, co, ci] * padded[ci, shift(tap) + j] */
            int kk = s->kernel * s->kernel, tap_w = s->c_out * s->c_in;
            for (int t = 0; t < kk; t++)
                del_cpu_sgemm(0, 0, s->c_out, (int)l->nw, s->c_in, 1.0f, j->wperm + (size_t)t * tap_w, s->c_in,
                              padded + tap_shift(s, l, t), (int)l->pad_plane, t ? 1.0f : 0.0f, scratch,
                              (int)l->nw);
        } else {
            wide_im2col(s, l, padded, col);
            del_cpu_sgemm(0, 0, s->c_out, (int)l->nw, cik, 1.0f, j->w, cik, col, (int)l->nw, 0.0f, scratch,
                          (int)l->nw);
        }
        /* the copy out of the wide grid doubles as the epilogue */
        write_output(j, scratch, l->nw, l->wp, yi);
        return;
    }
    /* the other paths write the NCHW output directly, unless it is pooled */
    float *dst = j->pool ? scratch : yi;
    if (is_pointwise(s)) {
        del_cpu_sgemm(0, 0, s->c_out, hw, cik, 1.0f, j->w, cik, xi, hw, 0.0f, dst, hw);
    } else {
        DEL_ISA_PICK(im2col)(s, xi, col);
        del_cpu_sgemm(0, 0, s->c_out, hw, cik, 1.0f, j->w, cik, col, hw, 0.0f, dst, hw);
    }
    write_output(j, dst, (size_t)hw, s->w_out, yi);
}

static void forward_slots(void *ctx, int64_t begin, int64_t end)
{
    const conv_job *j = ctx;
    for (int64_t slot = begin; slot < end; slot++) {
        int first, last;
        slot_images(j, (int)slot, &first, &last);
        for (int i = first; i < last; i++)
            forward_image(j, slot_base(&j->l, j->ws, (int)slot), i);
    }
}

void del_cpu_conv2d_forward(const del_conv2d_shape *s, const float *x, const float *w, const float *bias,
                            float *y, void *ws)
{
    del_cpu_conv2d_forward_affine(s, x, w, bias, NULL, NULL, 0, 0, y, ws);
}

void del_cpu_conv2d_forward_affine(const del_conv2d_shape *s, const float *x, const float *w, const float *bias,
                                   const float *scale, const float *shift, int relu, int pool, float *y, void *ws)
{
    if (use_winograd(s)) {
        del_cpu_wg_forward(s, (wg_input){x, NULL, NULL}, w, bias, scale, shift, relu, pool, y, ws);
        return;
    }
    conv_job j = {.s = s, .l = layout_of(s), .x = x, .w = w, .bias = bias, .scale = scale, .shift = shift,
                  .relu = relu != 0, .pool = pool != 0, .y = y, .ws = ws, .slots = conv_slots(s)};
    if (is_shifted(s)) {
        permute_weights(s, w, ws_base(ws));
        j.wperm = ws_base(ws);
    }
    del_parallel_for(j.slots, forward_slots, &j);
}

/* Backward of one image on the wide grid: dy is spread to h_out x wp with
 * zeros in the discarded columns, so they contribute nothing. */
static void backward_image_wide(const conv_job *j, float *base, int i)
{
    const del_conv2d_shape *s = j->s;
    const slot_layout *l = &j->l;
    int cik = s->c_in * s->kernel * s->kernel, hw = s->h_out * s->w_out, nw = (int)l->nw;
    const float *xi = j->x + (size_t)i * s->c_in * s->h_in * s->w_in, *dyi = j->dy + (size_t)i * s->c_out * hw;
    float *col = base + l->col, *padded = base + l->padded, *wdy = base + l->wide_y;
    for (int co = 0; co < s->c_out; co++)
        for (int oh = 0; oh < s->h_out; oh++) {
            float *row = wdy + co * l->nw + (size_t)oh * l->wp;
            copy_row(row, dyi + (size_t)co * hw + (size_t)oh * s->w_out, s->w_out);
            zero_row(row + s->w_out, l->wp - s->w_out);
        }
    int kk = s->kernel * s->kernel, tap_w = s->c_out * s->c_in, pp = (int)l->pad_plane;
    if (j->want_dw) {
        pad_planes(s, l, xi, padded);
        if (is_shifted(s)) {
            /* pdw[tap, co, ci] += sum_j dy[co, j] * padded[ci, shift(tap) + j] */
            for (int t = 0; t < kk; t++)
                del_cpu_sgemm(0, 1, s->c_out, s->c_in, nw, 1.0f, wdy, nw, padded + tap_shift(s, l, t), pp, 1.0f,
                              base + l->dw + (size_t)t * tap_w, s->c_in);
        } else {
            wide_im2col(s, l, padded, col);
            /* pdw[co, r] += sum_j dy[co, j] * col[r, j] */
            del_cpu_sgemm(0, 1, s->c_out, cik, nw, 1.0f, wdy, nw, col, nw, 1.0f, base + l->dw, cik);
        }
    }
    if (!j->dx)
        return;
    memset(padded, 0, ((size_t)s->c_in * l->pad_plane + (size_t)s->kernel) * sizeof(float));
    if (is_shifted(s)) {
        /* padded[ci, shift(tap) + j] += sum_co wperm[tap, co, ci] * dy[co, j]; the rows of one
         * gemm's output never overlap (h_out*wp < hp*wp), and the columns that spill into the
         * next plane are discarded ones, where dy is zero */
        for (int t = 0; t < kk; t++)
            del_cpu_sgemm(1, 0, s->c_in, nw, s->c_out, 1.0f, j->wperm + (size_t)t * tap_w, s->c_in, wdy, nw,
                          1.0f, padded + tap_shift(s, l, t), pp);
    } else {
        /* dcol[r, j] = sum_co w[co, r] * dy[co, j], then scattered back */
        del_cpu_sgemm(1, 0, cik, nw, s->c_out, 1.0f, j->w, cik, wdy, nw, 0.0f, col, nw);
        wide_col2im(s, l, col, padded);
    }
    float *dxi = j->dx + (size_t)i * s->c_in * s->h_in * s->w_in;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int h = 0; h < s->h_in; h++)
            copy_row(dxi + ((size_t)ci * s->h_in + h) * s->w_in,
                     padded + (size_t)ci * l->pad_plane + (size_t)(h + s->pad) * l->wp + s->pad, s->w_in);
}

static void backward_image(const conv_job *j, float *base, int i)
{
    const del_conv2d_shape *s = j->s;
    const slot_layout *l = &j->l;
    int cik = s->c_in * s->kernel * s->kernel, hw = s->h_out * s->w_out;
    size_t xs = (size_t)s->c_in * s->h_in * s->w_in;
    const float *dyi = j->dy + (size_t)i * s->c_out * hw;
    if (j->want_db) {
        float *pdb = base + l->db;
        for (int co = 0; co < s->c_out; co++) {
            const float *row = dyi + (size_t)co * hw;
            float acc = 0.0f;
            for (int p = 0; p < hw; p++)
                acc += row[p];
            pdb[co] += acc;
        }
    }
    if (is_wide(s)) {
        backward_image_wide(j, base, i);
        return;
    }
    float *col = base + l->col;
    if (j->want_dw) {
        const float *src = j->x + i * xs;
        if (!is_pointwise(s)) {
            DEL_ISA_PICK(im2col)(s, src, col);
            src = col;
        }
        del_cpu_sgemm(0, 1, s->c_out, cik, hw, 1.0f, dyi, hw, src, hw, 1.0f, base + l->dw, cik);
    }
    if (!j->dx)
        return;
    float *dxi = j->dx + i * xs;
    if (is_pointwise(s)) {
        del_cpu_sgemm(1, 0, cik, hw, s->c_out, 1.0f, j->w, cik, dyi, hw, 0.0f, dxi, hw);
    } else {
        del_cpu_sgemm(1, 0, cik, hw, s->c_out, 1.0f, j->w, cik, dyi, hw, 0.0f, col, hw);
        memset(dxi, 0, xs * sizeof(float));
        DEL_ISA_PICK(col2im)(s, col, dxi);
    }
}

static void backward_slots(void *ctx, int64_t begin, int64_t end)
{
    const conv_job *j = ctx;
    for (int64_t slot = begin; slot < end; slot++) {
        float *base = slot_base(&j->l, j->ws, (int)slot);
        memset(base + j->l.dw, 0, w_floats(j->s) * sizeof(float));
        memset(base + j->l.db, 0, (size_t)j->s->c_out * sizeof(float));
        int first, last;
        slot_images(j, (int)slot, &first, &last);
        for (int i = first; i < last; i++)
            backward_image(j, base, i);
    }
}

typedef struct reduce_job {
    const del_conv2d_shape *s;
    const slot_layout *l;
    void *ws;
    int slots;
    float *out;
    size_t offset; /* of the partial within a slot's buffer */
    int permuted;  /* partials are [tap, co, ci], out is [co, ci, tap] */
} reduce_job;

/* out[e] += sum over slots in slot order, split over elements. */
static void reduce_slots(void *ctx, int64_t begin, int64_t end)
{
    const reduce_job *r = ctx;
    int kk = r->s->kernel * r->s->kernel;
    for (int64_t e = begin; e < end; e++) {
        size_t src = (size_t)e;
        if (r->permuted) {
            size_t co_ci = (size_t)e / (size_t)kk, t = (size_t)e % (size_t)kk;
            src = t * (size_t)r->s->c_out * r->s->c_in + co_ci;
        }
        float acc = 0.0f;
        for (int slot = 0; slot < r->slots; slot++)
            acc += slot_base(r->l, r->ws, slot)[r->offset + src];
        r->out[e] += acc;
    }
}

void del_cpu_conv2d_backward(const del_conv2d_shape *s, const float *x, const float *w, const float *dy,
                             float *dx, float *dw, float *dbias, void *ws)
{
    int wg = use_winograd(s), wg_dx = dx && wg, wg_dw = dw && wg;
    conv_job j = {.s = s, .l = layout_of(s), .x = x, .w = w, .dy = dy, .dx = wg_dx ? NULL : dx,
                  .want_dw = dw && !wg_dw, .want_db = dbias != NULL, .ws = ws, .slots = conv_slots(s)};
    if (j.dx || j.want_dw || j.want_db) {
        if (is_shifted(s)) {
            permute_weights(s, w, ws_base(ws));
            j.wperm = ws_base(ws);
        }
        del_parallel_for(j.slots, backward_slots, &j);
    }
    if (j.want_dw) {
        reduce_job r = {s, &j.l, ws, j.slots, dw, j.l.dw, is_shifted(s)};
        del_parallel_for((int64_t)w_floats(s), reduce_slots, &r);
    }
    if (dbias) {
        reduce_job r = {s, &j.l, ws, j.slots, dbias, j.l.db, 0};
        reduce_slots(&r, 0, s->c_out);
    }
    /* after the reductions: it reuses their workspace */
    if (wg_dx || wg_dw)
        del_cpu_wg_backward(s, (wg_input){x, NULL, NULL}, w, dy, wg_dx ? dx : NULL, wg_dw ? dw : NULL, ws);
}

int del_cpu_conv2d_fuses_input_bn(const del_conv2d_shape *s)
{
    return use_winograd(s);
}

void del_cpu_conv2d_forward_input_bn(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                     const float *in_shift, const float *w, float *y, void *ws)
{
    del_cpu_wg_forward(s, (wg_input){x, in_scale, in_shift}, w, NULL, NULL, NULL, 0, 0, y, ws);
}

void del_cpu_conv2d_backward_input_bn(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                      const float *in_shift, const float *w, const float *dy, float *dx, float *dw,
                                      void *ws)
{
    del_cpu_wg_backward(s, (wg_input){x, in_scale, in_shift}, w, dy, dx, dw, ws);
}
