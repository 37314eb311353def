/* Point and colour ops: each is a 256-entry LUT or a per-pixel blend that
 * reproduces Pillow's arithmetic (float blend, truncation), because the
 * reference for RandAugment is torchvision on PIL images. */
#include <math.h>
#include <string.h>

#include "augment/ops/image.h"
#include "core/error.h"

/* Pillow's ImagingBlend: in1 + alpha (in2 - in1) in float, truncated and
 * clipped; with alpha in [0, 1] the value is already in range. */
static inline uint8_t pil_blend(int in1, int in2, float alpha)
{
    float t = (float)in1 + alpha * (float)(in2 - in1);
    if (t <= 0.0f)
        return 0;
    if (t >= 255.0f)
        return 255;
    return (uint8_t)t;
}

/* The checks every enhance-style op (a blend factor) starts with. */
static del_status factor_args(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src,
                              int may_alias, float factor)
{
    del_status st = del_img_same(d, s, fn, dst, src, may_alias);
    if (st == DEL_OK)
        st = del_img_check_factor(fn, factor);
    return st;
}

DEL_API del_status del_image_brightness_add(del_tensor *dst, const del_tensor *src, int delta)
{
    static const char fn[] = "del_image_brightness_add";
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 1);
    if (st != DEL_OK)
        return st;
    if (delta < -255 || delta > 255)
        return del_error(DEL_EINVAL, "%s: 'delta' must be in -255..255, got %d", fn, delta);
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) {
        int t = v + delta;
        lut[v] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
    }
    del_img_apply_lut(&d, &s, lut, 0);
    return DEL_OK;
}

DEL_API del_status del_image_brightness(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_brightness";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 1, factor);
    if (st != DEL_OK)
        return st;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = pil_blend(0, v, factor);
    del_img_apply_lut(&d, &s, lut, 0);
    return DEL_OK;
}

DEL_API del_status del_image_contrast(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_contrast";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 1, factor);
    if (st != DEL_OK)
        return st;
    size_t npix = (size_t)s.h * (size_t)s.w;
    uint64_t sum = 0;
    if (s.c == 1) {
        for (size_t i = 0; i < npix; i++)
            sum += s.px[i];
    } else {
        for (size_t i = 0; i < npix; i++)
            sum += del_img_luma(s.px + 3 * i);
    }
    /* ImageStat's mean (a double) rounded half up, as int(mean + 0.5). */
    int mean = (int)((double)sum / (double)npix + 0.5);
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = pil_blend(mean, v, factor);
    del_img_apply_lut(&d, &s, lut, 0);
    return DEL_OK;
}

DEL_API del_status del_image_color(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_color";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 1, factor);
    if (st != DEL_OK)
        return st;
    size_t npix = (size_t)s.h * (size_t)s.w;
    if (s.c == 1) {
        if (d.px != s.px)
            memcpy(d.px, s.px, npix);
        return DEL_OK;
    }
    del_blend bl;
    del_blend_init(&bl, factor);
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *p = s.px + 3 * i;
        int g = del_img_luma(p);
        uint8_t r = del_blend_px(&bl, g, p[0]), gr = del_blend_px(&bl, g, p[1]), b = del_blend_px(&bl, g, p[2]);
        uint8_t *q = d.px + 3 * i;
        q[0] = r;
        q[1] = gr;
        q[2] = b;
    }
    return DEL_OK;
}

DEL_API del_status del_image_sharpness(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_sharpness";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 0, factor);
    if (st != DEL_OK)
        return st;
    size_t n = (size_t)s.h * (size_t)s.w * (size_t)s.c;
    memcpy(d.px, s.px, n);
    if (s.h <= 2 || s.w <= 2)
        return DEL_OK;
    /* Pillow sums the kernel (divided by 13 in float) plus a 0.5 rounding
     * offset in float and truncates. With S the integer weighted sum,
     * S/13 + 0.5 is never within 1/26 of an integer while float error
     * stays below 1e-3, so (2S + 13) / 26 in integers is the same value. */
    const int c = s.c;
    const size_t stride = (size_t)s.w * (size_t)c;
    del_blend bl;
    del_blend_init(&bl, factor);
    for (int y = 1; y < s.h - 1; y++) {
        const uint8_t *up = s.px + (size_t)(y - 1) * stride;
        const uint8_t *mid = up + stride;
        const uint8_t *down = mid + stride;
        uint8_t *out = d.px + (size_t)y * stride;
        for (size_t i = (size_t)c; i < stride - (size_t)c; i++) {
            int sum = up[i - c] + up[i] + up[i + c] + mid[i - c] + 5 * mid[i] + mid[i + c] + down[i - c] + down[i] +
                      down[i + c];
            out[i] = del_blend_px(&bl, (2 * sum + 13) / 26, mid[i]);
        }
    }
    return DEL_OK;
}

DEL_API del_status del_image_posterize(del_tensor *dst, const del_tensor *src, int bits)
{
    static const char fn[] = "del_image_posterize";
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 1);
    if (st != DEL_OK)
        return st;
    if (bits < 0 || bits > 8)
        return del_error(DEL_EINVAL, "%s: 'bits' must be in 0..8, got %d", fn, bits);
    uint8_t lut[256];
    unsigned mask = ~((1u << (8 - bits)) - 1u) & 0xffu;
    for (unsigned v = 0; v < 256; v++)
        lut[v] = (uint8_t)(v & mask);
    del_img_apply_lut(&d, &s, lut, 0);
    return DEL_OK;
}

DEL_API del_status del_image_solarize(del_tensor *dst, const del_tensor *src, float threshold)
{
    static const char fn[] = "del_image_solarize";
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 1);
    if (st != DEL_OK)
        return st;
    if (isnan(threshold))
        return del_error(DEL_EINVAL, "%s: 'threshold' must not be NaN", fn);
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (uint8_t)((float)v >= threshold ? 255 - v : v);
    del_img_apply_lut(&d, &s, lut, 0);
    return DEL_OK;
}

static void histograms(const del_img *s, uint32_t hist[3][256])
{
    memset(hist, 0, sizeof(uint32_t) * 3 * 256);
    size_t npix = (size_t)s->h * (size_t)s->w;
    const uint8_t *p = s->px;
    if (s->c == 1) {
        for (size_t i = 0; i < npix; i++)
            hist[0][p[i]]++;
        return;
    }
    for (size_t i = 0; i < npix; i++, p += 3) {
        hist[0][p[0]]++;
        hist[1][p[1]]++;
        hist[2][p[2]]++;
    }
}

/* The identity map, for channels an op leaves alone. */
static void identity_lut(uint8_t *l)
{
    for (int v = 0; v < 256; v++)
        l[v] = (uint8_t)v;
}

static void autocontrast_lut(const uint32_t *hist, uint8_t *l)
{
    int lo = 0, hi = 255;
    while (lo < 255 && !hist[lo])
        lo++;
    while (hi > 0 && !hist[hi])
        hi--;
    if (hi <= lo) {
        identity_lut(l);
        return;
    }
    /* ImageOps.autocontrast's double arithmetic, truncated by int(). */
    double scale = 255.0 / (double)(hi - lo);
    double offset = (double)(-lo) * scale;
    for (int v = 0; v < 256; v++) {
        double t = (double)v * scale + offset;
        int iv = (int)t;
        l[v] = (uint8_t)(iv < 0 ? 0 : iv > 255 ? 255 : iv);
    }
}

static void equalize_lut(const uint32_t *hist, uint8_t *l)
{
    uint64_t total = 0, last = 0;
    int nonzero = 0;
    for (int v = 0; v < 256; v++) {
        if (hist[v]) {
            nonzero++;
            last = hist[v];
        }
        total += hist[v];
    }
    uint64_t step = nonzero > 1 ? (total - last) / 255 : 0;
    if (step == 0) {
        identity_lut(l);
        return;
    }
    /* lut[v] = (step/2 + count below v) / step; it can exceed 255 only
     * past the last occupied bin, where no sample maps. */
    uint64_t acc = step / 2;
    for (int v = 0; v < 256; v++) {
        uint64_t q = acc / step;
        l[v] = (uint8_t)(q > 255 ? 255 : q);
        acc += hist[v];
    }
}

/* The ImageOps that map each channel through a table built from that
 * channel's histogram alone. */
static del_status histogram_op(del_tensor *dst, const del_tensor *src, const char *fn,
                               void (*make_lut)(const uint32_t *hist, uint8_t *lut))
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 1);
    if (st != DEL_OK)
        return st;
    uint32_t hist[3][256];
    uint8_t lut[3 * 256];
    histograms(&s, hist);
    for (int k = 0; k < s.c; k++)
        make_lut(hist[k], lut + 256 * k);
    del_img_apply_lut(&d, &s, lut, 1);
    return DEL_OK;
}

DEL_API del_status del_image_autocontrast(del_tensor *dst, const del_tensor *src)
{
    return histogram_op(dst, src, "del_image_autocontrast", autocontrast_lut);
}

DEL_API del_status del_image_equalize(del_tensor *dst, const del_tensor *src)
{
    return histogram_op(dst, src, "del_image_equalize", equalize_lut);
}
