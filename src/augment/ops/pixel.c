/* Row kernels of the point and colour ops, written for the vectoriser.
 *
 * Each kernel walks fixed blocks of BLOCK samples: a loop with a constant
 * trip count and no possible cross-iteration aliasing (DEL_IVDEP: output
 * sample k depends only on input samples of the same k) is vectorised
 * even by -O2's cheap cost model, then a scalar tail evaluates the very
 * same expression. DEL_ISA_VERSIONS (core/isa.h) builds an AVX2 and an
 * AVX-512 version of each, picked by DEL_ISA_PICK. The float blends are
 * one single-precision multiply and one add in Pillow's order (never
 * fused), so SIMD lanes, versions and the scalar tail all round alike and
 * match Pillow bit for bit. */
#include <string.h>

#include "augment/ops/image.h"

enum { BLOCK = 64 };

#if defined(__clang__)
#define DEL_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define DEL_IVDEP _Pragma("GCC ivdep")
#else
#define DEL_IVDEP
#endif

DEL_ISA_BODY void blend_row_k_body(uint8_t *out, const uint8_t *in1, const uint8_t *in2, size_t n, float alpha)
{
    alpha = del_blend_alpha(alpha);
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        const uint8_t *a = in1 + i, *b = in2 + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            o[k] = del_pil_blend(a[k], b[k], alpha);
    }
    for (; i < n; i++)
        out[i] = del_pil_blend(in1[i], in2[i], alpha);
}
DEL_ISA_VERSIONS(blend_row_k, (uint8_t *out, const uint8_t *in1, const uint8_t *in2, size_t n, float alpha),
                 (out, in1, in2, n, alpha))

DEL_ISA_BODY void blend_const_row_k_body(uint8_t *out, int in1, const uint8_t *in2, size_t n, float alpha)
{
    alpha = del_blend_alpha(alpha);
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        const uint8_t *b = in2 + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            o[k] = del_pil_blend(in1, b[k], alpha);
    }
    for (; i < n; i++)
        out[i] = del_pil_blend(in1, in2[i], alpha);
}
DEL_ISA_VERSIONS(blend_const_row_k, (uint8_t *out, int in1, const uint8_t *in2, size_t n, float alpha),
                 (out, in1, in2, n, alpha))

static inline void color_px(uint8_t *out, const uint8_t *rgb, float alpha)
{
    const int g = del_img_luma(rgb);
    const uint8_t r = del_pil_blend(g, rgb[0], alpha), gr = del_pil_blend(g, rgb[1], alpha),
                  b = del_pil_blend(g, rgb[2], alpha);
    out[0] = r;
    out[1] = gr;
    out[2] = b;
}

DEL_ISA_BODY void color_row_k_body(uint8_t *out, const uint8_t *rgb, size_t npix, float alpha)
{
    alpha = del_blend_alpha(alpha);
    size_t i = 0;
    for (; i + BLOCK <= npix; i += BLOCK) {
        const uint8_t *p = rgb + 3 * i;
        uint8_t *o = out + 3 * i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            color_px(o + 3 * k, p + 3 * k, alpha);
    }
    for (; i < npix; i++)
        color_px(out + 3 * i, rgb + 3 * i, alpha);
}
DEL_ISA_VERSIONS(color_row_k, (uint8_t *out, const uint8_t *rgb, size_t npix, float alpha), (out, rgb, npix, alpha))

DEL_ISA_BODY uint64_t luma_sum_k_body(const uint8_t *rgb, size_t npix)
{
    uint64_t sum = 0;
    size_t i = 0;
    for (; i + BLOCK <= npix; i += BLOCK) {
        const uint8_t *p = rgb + 3 * i;
        uint32_t part = 0; /* at most BLOCK * 255 */
        for (int k = 0; k < BLOCK; k++)
            part += del_img_luma(p + 3 * k);
        sum += part;
    }
    for (; i < npix; i++)
        sum += del_img_luma(rgb + 3 * i);
    return sum;
}
DEL_ISA_VERSIONS_RET(uint64_t, luma_sum_k, (const uint8_t *rgb, size_t npix), (rgb, npix))

/* Pillow's SMOOTH kernel [1 1 1; 1 5 1; 1 1 1] / 13 at one sample: Pillow
 * adds 0.5 to the float sum S / 13 and truncates; S / 13 + 0.5 is never
 * within 1/26 of an integer while float error stays below 1e-3, so the
 * value is (2 S + 13) / 26 = (S + 6) / 13 in integers (S + 6.5 is never a
 * multiple of 13). */
static inline int smooth_at(const uint8_t *up, const uint8_t *mid, const uint8_t *down, ptrdiff_t c)
{
    const unsigned s = (unsigned)up[-c] + up[0] + up[c] + mid[-c] + 5u * mid[0] + mid[c] + down[-c] + down[0] +
                       down[c];
    return (int)((uint16_t)(s + 6u) / 13u);
}

DEL_ISA_BODY void sharpen_row_k_body(uint8_t *out, const uint8_t *up, const uint8_t *mid, const uint8_t *down, size_t n,
                                     int c, float alpha)
{
    alpha = del_blend_alpha(alpha);
    const ptrdiff_t cc = c;
    const size_t end = n - (size_t)c;
    size_t i = (size_t)c;
    for (; i + BLOCK <= end; i += BLOCK) {
        const uint8_t *u = up + i, *m = mid + i, *dn = down + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            o[k] = del_pil_blend(smooth_at(u + k, m + k, dn + k, cc), m[k], alpha);
    }
    for (; i < end; i++)
        out[i] = del_pil_blend(smooth_at(up + i, mid + i, down + i, cc), mid[i], alpha);
}
DEL_ISA_VERSIONS(sharpen_row_k,
                 (uint8_t *out, const uint8_t *up, const uint8_t *mid, const uint8_t *down, size_t n, int c,
                  float alpha),
                 (out, up, mid, down, n, c, alpha))

DEL_ISA_BODY void and_row_k_body(uint8_t *out, const uint8_t *in, size_t n, uint8_t mask)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        const uint8_t *a = in + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            o[k] = a[k] & mask;
    }
    for (; i < n; i++)
        out[i] = in[i] & mask;
}
DEL_ISA_VERSIONS(and_row_k, (uint8_t *out, const uint8_t *in, size_t n, uint8_t mask), (out, in, n, mask))

DEL_ISA_BODY void invert_from_row_k_body(uint8_t *out, const uint8_t *in, size_t n, int from)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        const uint8_t *a = in + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++)
            o[k] = (uint8_t)(a[k] >= from ? 255 - a[k] : a[k]);
    }
    for (; i < n; i++)
        out[i] = (uint8_t)(in[i] >= from ? 255 - in[i] : in[i]);
}
DEL_ISA_VERSIONS(invert_from_row_k, (uint8_t *out, const uint8_t *in, size_t n, int from), (out, in, n, from))

DEL_ISA_BODY void add_clamp_row_k_body(uint8_t *out, const uint8_t *in, size_t n, int delta)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        const uint8_t *a = in + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < BLOCK; k++) {
            const int t = a[k] + delta;
            o[k] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
        }
    }
    for (; i < n; i++) {
        const int t = in[i] + delta;
        out[i] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
    }
}
DEL_ISA_VERSIONS(add_clamp_row_k, (uint8_t *out, const uint8_t *in, size_t n, int delta), (out, in, n, delta))

/* Per-channel minimum and maximum of c-channel samples: running extremes
 * for each position of a 3 * BLOCK-sample window (whole pixels for c = 1
 * or 3), folded into channels at the end. */
DEL_ISA_BODY void channel_range_k_body(const uint8_t *px, size_t n, int c, uint8_t lo[3], uint8_t hi[3])
{
    enum { W = 3 * BLOCK };
    uint8_t mn[W], mx[W];
    memset(mn, 255, sizeof mn);
    memset(mx, 0, sizeof mx);
    size_t i = 0;
    for (; i + W <= n; i += W)
        for (int k = 0; k < W; k++) {
            const uint8_t v = px[i + (size_t)k];
            mn[k] = v < mn[k] ? v : mn[k];
            mx[k] = v > mx[k] ? v : mx[k];
        }
    for (int k = 0; i < n; i++, k++) {
        const uint8_t v = px[i];
        mn[k] = v < mn[k] ? v : mn[k];
        mx[k] = v > mx[k] ? v : mx[k];
    }
    for (int k = 0; k < c; k++) {
        lo[k] = 255;
        hi[k] = 0;
    }
    for (int k = 0; k < W; k++) {
        const int ch = k % c;
        lo[ch] = mn[k] < lo[ch] ? mn[k] : lo[ch];
        hi[ch] = mx[k] > hi[ch] ? mx[k] : hi[ch];
    }
}
DEL_ISA_VERSIONS(channel_range_k, (const uint8_t *px, size_t n, int c, uint8_t lo[3], uint8_t hi[3]),
                 (px, n, c, lo, hi))

DEL_ISA_BODY void stretch_row_k_body(uint8_t *out, const uint8_t *in, size_t n, int c, const uint8_t lo[3],
                                     const uint32_t mul[3])
{
    /* Per-position constants over a window of whole pixels. */
    enum { W = 3 * BLOCK };
    uint32_t lw[W], mw[W];
    for (int k = 0; k < W; k++) {
        lw[k] = lo[k % c];
        mw[k] = mul[k % c];
    }
    size_t i = 0;
    for (; i + W <= n; i += W) {
        const uint8_t *a = in + i;
        uint8_t *o = out + i;
        DEL_IVDEP
        for (int k = 0; k < W; k++)
            o[k] = (uint8_t)(((a[k] - lw[k]) * mw[k]) >> 16);
    }
    for (int k = 0; i < n; i++, k++)
        out[i] = (uint8_t)(((in[i] - lw[k]) * mw[k]) >> 16);
}
DEL_ISA_VERSIONS(stretch_row_k,
                 (uint8_t *out, const uint8_t *in, size_t n, int c, const uint8_t lo[3], const uint32_t mul[3]),
                 (out, in, n, c, lo, mul))

#if DEL_ISA_MULTI
#include <immintrin.h>

/* AVX-512 VBMI's two-table byte permute looks up 64 samples in a 128-byte
 * half of a table at once; bit 7 of the sample picks the half. With three
 * channels the byte's channel repeats every 3 vectors (192 bytes), so each
 * vector blends the three tables' results by a fixed mask. Returns how
 * many samples it did (a multiple of 64 * c). */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static size_t lut_vbmi(uint8_t *out, const uint8_t *in,
                                                                           size_t n, const uint8_t *lut, int c)
{
    __m512i t[3][4];
    __mmask64 pick[3][3] = {{0}}; /* [vector of the 3][channel] */
    for (int k = 0; k < c; k++)
        for (int j = 0; j < 4; j++)
            t[k][j] = _mm512_loadu_si512((const void *)(lut + 256 * k + 64 * j));
    for (int v = 0; v < 3; v++)
        for (int b = 0; b < 64; b++)
            pick[v][(64 * v + b) % c] |= (__mmask64)1 << b;
    const size_t step = 64 * (size_t)c;
    size_t i = 0;
    for (; i + step <= n; i += step)
        for (int v = 0; v < c; v++) {
            const __m512i x = _mm512_loadu_si512((const void *)(in + i + 64 * (size_t)v));
            const __mmask64 high = _mm512_movepi8_mask(x);
            __m512i r = _mm512_setzero_si512();
            for (int k = 0; k < c; k++) {
                const __m512i lo = _mm512_permutex2var_epi8(t[k][0], x, t[k][1]);
                const __m512i hi = _mm512_permutex2var_epi8(t[k][2], x, t[k][3]);
                r = _mm512_mask_blend_epi8(pick[v][k], r, _mm512_mask_blend_epi8(high, lo, hi));
            }
            _mm512_storeu_si512((void *)(out + i + 64 * (size_t)v), r);
        }
    return i;
}

static size_t lut_simd(uint8_t *out, const uint8_t *in, size_t n, const uint8_t *lut, int c)
{
    return del_isa_has_avx512vbmi() ? lut_vbmi(out, in, n, lut, c) : 0;
}

/* With AVX2 a float blend of 8 or 16 samples at once beats a table lookup
 * per sample; with SSE2 alone it does not. */
static int simd_wide(void)
{
    return del_isa_level() >= DEL_ISA_AVX2;
}
#else
static size_t lut_simd(uint8_t *out, const uint8_t *in, size_t n, const uint8_t *lut, int c)
{
    (void)out, (void)in, (void)n, (void)lut, (void)c;
    return 0;
}

static int simd_wide(void)
{
    return 0;
}
#endif

/* out[i] = lut[256 k + in[i]], k the channel of sample i of c. */
static void apply_lut(uint8_t *out, const uint8_t *in, size_t n, const uint8_t *lut, int c)
{
    size_t i = lut_simd(out, in, n, lut, c);
    /* Several lookups before their stores, so that the loads of one step
     * need not wait for the stores of the last when out is in. */
    if (c == 1) {
        for (; i + 4 <= n; i += 4) {
            const uint8_t a = lut[in[i]], b = lut[in[i + 1]], e = lut[in[i + 2]], f = lut[in[i + 3]];
            out[i] = a;
            out[i + 1] = b;
            out[i + 2] = e;
            out[i + 3] = f;
        }
        for (; i < n; i++)
            out[i] = lut[in[i]];
        return;
    }
    for (; i < n; i += 3) {
        const uint8_t a = lut[in[i]], b = lut[256 + in[i + 1]], e = lut[512 + in[i + 2]];
        out[i] = a;
        out[i + 1] = b;
        out[i + 2] = e;
    }
}

void del_img_apply_lut(const del_img *d, const del_img *s, const uint8_t *lut, int per_channel)
{
    apply_lut(d->px, s->px, (size_t)s->h * (size_t)s->w * (size_t)s->c, lut, per_channel ? s->c : 1);
}

/* Entry points: each calls the version of its kernel for the ISA level in
 * use. */
void del_blend_row(uint8_t *out, const uint8_t *in1, const uint8_t *in2, size_t n, float alpha)
{
    DEL_ISA_PICK(blend_row_k)(out, in1, in2, n, alpha);
}

void del_blend_const_row(uint8_t *out, int in1, const uint8_t *in2, size_t n, float alpha)
{
    if (simd_wide()) {
        DEL_ISA_PICK(blend_const_row_k)(out, in1, in2, n, alpha);
        return;
    }
    uint8_t lut[256];
    const float a = del_blend_alpha(alpha);
    for (int v = 0; v < 256; v++)
        lut[v] = del_pil_blend(in1, v, a);
    apply_lut(out, in2, n, lut, 1);
}

void del_color_row(uint8_t *out, const uint8_t *rgb, size_t npix, float alpha)
{
    DEL_ISA_PICK(color_row_k)(out, rgb, npix, alpha);
}

uint64_t del_luma_sum(const uint8_t *rgb, size_t npix)
{
    return DEL_ISA_PICK(luma_sum_k)(rgb, npix);
}

void del_sharpen_row(uint8_t *out, const uint8_t *up, const uint8_t *mid, const uint8_t *down, size_t n, int c,
                     float alpha)
{
    DEL_ISA_PICK(sharpen_row_k)(out, up, mid, down, n, c, alpha);
}

void del_and_row(uint8_t *out, const uint8_t *in, size_t n, uint8_t mask)
{
    DEL_ISA_PICK(and_row_k)(out, in, n, mask);
}

void del_invert_from_row(uint8_t *out, const uint8_t *in, size_t n, int from)
{
    DEL_ISA_PICK(invert_from_row_k)(out, in, n, from);
}

void del_add_clamp_row(uint8_t *out, const uint8_t *in, size_t n, int delta)
{
    if (simd_wide()) {
        DEL_ISA_PICK(add_clamp_row_k)(out, in, n, delta);
        return;
    }
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) {
        const int t = v + delta;
        lut[v] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
    }
    apply_lut(out, in, n, lut, 1);
}

void del_channel_range(const uint8_t *px, size_t n, int c, uint8_t lo[3], uint8_t hi[3])
{
    DEL_ISA_PICK(channel_range_k)(px, n, c, lo, hi);
}

void del_stretch_row(uint8_t *out, const uint8_t *in, size_t n, int c, const uint8_t lo[3], const uint32_t mul[3])
{
    DEL_ISA_PICK(stretch_row_k)(out, in, n, c, lo, mul);
}
