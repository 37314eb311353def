/* Point and colour ops: each is a 256-entry LUT or a per-pixel blend that
 * reproduces Pillow's arithmetic (float blend, truncation), because the
 * reference for RandAugment is torchvision on PIL images. */
#include <math.h>
#include <string.h>

#include "augment/ops/image.h"
#include "core/error.h"

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
    del_add_clamp_row(d.px, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c, delta);
    return DEL_OK;
}

DEL_API del_status del_image_brightness(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_brightness";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 1, factor);
    if (st != DEL_OK)
        return st;
    del_blend_const_row(d.px, 0, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c, factor);
    return DEL_OK;
}

DEL_API del_status del_image_contrast(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_contrast";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 1, factor);
    if (st != DEL_OK)
        return st;
    const size_t npix = (size_t)s.h * (size_t)s.w;
    uint64_t sum = 0;
    if (s.c == 1) {
        for (size_t i = 0; i < npix; i++)
            sum += s.px[i];
    } else {
        sum = del_luma_sum(s.px, npix);
    }
    /* ImageStat's mean (a double) rounded half up, as int(mean + 0.5). */
    const int mean = (int)((double)sum / (double)npix + 0.5);
    del_blend_const_row(d.px, mean, s.px, npix * (size_t)s.c, factor);
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
    del_color_row(d.px, s.px, npix, factor);
    return DEL_OK;
}

DEL_API del_status del_image_sharpness(del_tensor *dst, const del_tensor *src, float factor)
{
    static const char fn[] = "del_image_sharpness";
    del_img d, s;
    del_status st = factor_args(&d, &s, fn, dst, src, 0, factor);
    if (st != DEL_OK)
        return st;
    const size_t c = (size_t)s.c, stride = (size_t)s.w * c;
    if (s.h <= 2 || s.w <= 2) {
        memcpy(d.px, s.px, (size_t)s.h * stride);
        return DEL_OK;
    }
    /* Pillow's filter copies the border pixels; blending a pixel with
     * itself gives it back, so they stay as they are. */
    memcpy(d.px, s.px, stride);
    memcpy(d.px + (size_t)(s.h - 1) * stride, s.px + (size_t)(s.h - 1) * stride, stride);
    for (int y = 1; y < s.h - 1; y++) {
        const uint8_t *mid = s.px + (size_t)y * stride;
        uint8_t *out = d.px + (size_t)y * stride;
        memcpy(out, mid, c);
        memcpy(out + stride - c, mid + stride - c, c);
        del_sharpen_row(out, mid - stride, mid, mid + stride, stride, s.c, factor);
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
    const unsigned mask = ~((1u << (8 - bits)) - 1u) & 0xffu;
    del_and_row(d.px, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c, (uint8_t)mask);
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
    /* (float)v >= threshold for whole v exactly from ceil(threshold) on. */
    const double from = ceil((double)threshold);
    del_invert_from_row(d.px, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c,
                        from < 0.0 ? 0 : from > 256.0 ? 256 : (int)from);
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

/* ImageOps.autocontrast (no cutoff) maps the channel's range lo..hi onto
 * 0..255 in double arithmetic, truncated by int(). */
static void autocontrast_lut(int lo, int hi, uint8_t *l)
{
    if (hi <= lo) {
        identity_lut(l);
        return;
    }
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
    /* lut[v] = (step/2 + count below v) / step, capped at 255 (reached
     * only past the last occupied bin, where no sample maps). The
     * numerator only grows, so the quotient is stepped up to it instead of
     * dividing 256 times: q is the quotient while acc < next. */
    uint64_t acc = step / 2, q = 0, next = step;
    for (int v = 0; v < 256; v++) {
        while (q < 255 && acc >= next) {
            q++;
            next += step;
        }
        l[v] = (uint8_t)q;
        acc += hist[v];
    }
}

/* The integer form of autocontrast_lut for the samples lo..hi that occur:
 * floor((v - lo) 255 / (hi - lo)) is ((v - lo) mul) >> 16 with mul =
 * ceil(255 * 2^16 / (hi - lo)), as the excess, below 255 / 2^16, never
 * reaches the 1 / (hi - lo) a fraction of the quotient lacks to the next
 * integer; the product stays below 2^32. 0 if the double table differs
 * there (it could where the quotient is a whole number). */
static int autocontrast_mul(int lo, int hi, const uint8_t *lut, uint32_t *mul)
{
    if (hi <= lo) {
        *mul = 65536; /* the identity */
        return 1;
    }
    const uint32_t span = (uint32_t)(hi - lo);
    *mul = (255u * 65536u + span - 1) / span;
    for (int v = lo; v <= hi; v++)
        if ((((uint32_t)(v - lo) * *mul) >> 16) != lut[v])
            return 0;
    return 1;
}

DEL_API del_status del_image_autocontrast(del_tensor *dst, const del_tensor *src)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, "del_image_autocontrast", dst, src, 1);
    if (st != DEL_OK)
        return st;
    /* Its histogram is only used for the first and last occupied bins. */
    const size_t n = (size_t)s.h * (size_t)s.w * (size_t)s.c;
    uint8_t lo[3], hi[3], lut[3 * 256];
    uint32_t mul[3];
    int exact = 1;
    del_channel_range(s.px, n, s.c, lo, hi);
    for (int k = 0; k < s.c; k++) {
        autocontrast_lut(lo[k], hi[k], lut + 256 * k);
        exact &= autocontrast_mul(lo[k], hi[k], lut + 256 * k, &mul[k]);
        if (hi[k] <= lo[k])
            lo[k] = 0;
    }
    if (exact)
        del_stretch_row(d.px, s.px, n, s.c, lo, mul);
    else
        del_img_apply_lut(&d, &s, lut, 1);
    return DEL_OK;
}

DEL_API del_status del_image_equalize(del_tensor *dst, const del_tensor *src)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, "del_image_equalize", dst, src, 1);
    if (st != DEL_OK)
        return st;
    uint32_t hist[3][256];
    uint8_t lut[3 * 256];
    histograms(&s, hist);
    for (int k = 0; k < s.c; k++)
        equalize_lut(hist[k], lut + 256 * k);
    del_img_apply_lut(&d, &s, lut, 1);
    return DEL_OK;
}
