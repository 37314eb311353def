/* Exact geometry: flips, quarter turns, crops, padding, cutout and integer
 * translations. Pure copies, so no reference rounding to reproduce. */
#include <string.h>

#include "augment/ops/image.h"
#include "core/error.h"

static inline void copy_px(uint8_t *dst, const uint8_t *src, int c)
{
    dst[0] = src[0];
    if (c == 3) {
        dst[1] = src[1];
        dst[2] = src[2];
    }
}

DEL_API del_status del_image_flip_h(del_tensor *dst, const del_tensor *src)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, "del_image_flip_h", dst, src, 0);
    if (st != DEL_OK)
        return st;
    const int c = s.c;
    const size_t stride = (size_t)s.w * (size_t)c;
    for (int y = 0; y < s.h; y++) {
        const uint8_t *in = s.px + (size_t)y * stride;
        uint8_t *out = d.px + (size_t)y * stride + stride - (size_t)c;
        for (int x = 0; x < s.w; x++, in += c, out -= c)
            copy_px(out, in, c);
    }
    return DEL_OK;
}

DEL_API del_status del_image_flip_v(del_tensor *dst, const del_tensor *src)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, "del_image_flip_v", dst, src, 0);
    if (st != DEL_OK)
        return st;
    const size_t stride = (size_t)s.w * (size_t)s.c;
    for (int y = 0; y < s.h; y++)
        memcpy(d.px + (size_t)(s.h - 1 - y) * stride, s.px + (size_t)y * stride, stride);
    return DEL_OK;
}

DEL_API del_status del_image_rotate180(del_tensor *dst, const del_tensor *src)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, "del_image_rotate180", dst, src, 0);
    if (st != DEL_OK)
        return st;
    const int c = s.c;
    const size_t n = (size_t)s.h * (size_t)s.w;
    for (size_t i = 0; i < n; i++)
        copy_px(d.px + (n - 1 - i) * (size_t)c, s.px + i * (size_t)c, c);
    return DEL_OK;
}

/* Quarter turns: dst is [W, H, C]. ccw: dst[y][x] = src[x][W-1-y];
 * cw: dst[y][x] = src[H-1-x][y]. */
static del_status quarter_turn(del_tensor *dst, const del_tensor *src, int ccw, const char *fn)
{
    del_img d, s;
    del_status st = del_img_src(&s, fn, src);
    if (st == DEL_OK)
        st = del_img_dst(&d, fn, dst, s.w, s.h, s.c);
    if (st != DEL_OK)
        return st;
    if (del_img_overlap(dst, src))
        return del_error(DEL_EINVAL, "%s: 'dst' must not share memory with 'src' (not an in-place op)", fn);
    const int c = s.c;
    const size_t sstride = (size_t)s.w * (size_t)c;
    for (int y = 0; y < d.h; y++) {
        uint8_t *out = d.px + (size_t)y * (size_t)d.w * (size_t)c;
        if (ccw) {
            const uint8_t *in = s.px + (size_t)(s.w - 1 - y) * (size_t)c;
            for (int x = 0; x < d.w; x++, out += c, in += sstride)
                copy_px(out, in, c);
        } else {
            const uint8_t *in = s.px + (size_t)(s.h - 1) * sstride + (size_t)y * (size_t)c;
            for (int x = 0; x < d.w; x++, out += c, in -= sstride)
                copy_px(out, in, c);
        }
    }
    return DEL_OK;
}

DEL_API del_status del_image_rotate90(del_tensor *dst, const del_tensor *src)
{
    return quarter_turn(dst, src, 1, "del_image_rotate90");
}

DEL_API del_status del_image_rotate270(del_tensor *dst, const del_tensor *src)
{
    return quarter_turn(dst, src, 0, "del_image_rotate270");
}

DEL_API del_status del_image_crop(del_tensor *dst, const del_tensor *src, int y, int x)
{
    static const char fn[] = "del_image_crop";
    del_img d, s;
    del_status st = del_img_window(&d, &s, fn, dst, src);
    if (st != DEL_OK)
        return st;
    if (y < 0 || y > s.h - d.h)
        return del_error(DEL_EINVAL, "%s: 'y' must be in 0..%d for a %d-row window of a %d-row image, got %d", fn,
                         s.h - d.h, d.h, s.h, y);
    if (x < 0 || x > s.w - d.w)
        return del_error(DEL_EINVAL, "%s: 'x' must be in 0..%d for a %d-column window of a %d-column image, got %d",
                         fn, s.w - d.w, d.w, s.w, x);
    const size_t row = (size_t)d.w * (size_t)s.c;
    for (int r = 0; r < d.h; r++)
        memcpy(d.px + (size_t)r * row, s.px + ((size_t)(y + r) * (size_t)s.w + (size_t)x) * (size_t)s.c, row);
    return DEL_OK;
}

/* Copies src shifted by (oy, ox) into d (dst[y][x] = src[y - oy][x - ox]),
 * fill where that falls outside src. */
static void shifted_copy(const del_img *d, const del_img *s, int64_t oy, int64_t ox, uint8_t fill)
{
    const int c = s->c;
    const size_t drow = (size_t)d->w * (size_t)c;
    /* Columns of d covered by src: x in [x0, x1). */
    int64_t x0 = ox < 0 ? 0 : ox, x1 = ox + s->w;
    if (x1 > d->w)
        x1 = d->w;
    for (int y = 0; y < d->h; y++) {
        uint8_t *out = d->px + (size_t)y * drow;
        int64_t sy = (int64_t)y - oy;
        if (sy < 0 || sy >= s->h || x1 <= x0) {
            memset(out, fill, drow);
            continue;
        }
        memset(out, fill, (size_t)x0 * (size_t)c);
        memcpy(out + (size_t)x0 * (size_t)c, s->px + ((size_t)sy * (size_t)s->w + (size_t)(x0 - ox)) * (size_t)c,
               (size_t)(x1 - x0) * (size_t)c);
        memset(out + (size_t)x1 * (size_t)c, fill, (size_t)(d->w - x1) * (size_t)c);
    }
}

DEL_API del_status del_image_pad_crop(del_tensor *dst, const del_tensor *src, int pad, int y, int x, int fill)
{
    static const char fn[] = "del_image_pad_crop";
    del_img d, s;
    del_status st = del_img_window(&d, &s, fn, dst, src);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    if (pad < 0 || pad > INT32_MAX / 4)
        return del_error(DEL_EINVAL, "%s: 'pad' must be >= 0, got %d", fn, pad);
    int64_t ph = (int64_t)s.h + 2 * (int64_t)pad, pw = (int64_t)s.w + 2 * (int64_t)pad;
    if (y < 0 || y > ph - d.h)
        return del_error(DEL_EINVAL, "%s: 'y' must be in 0..%lld for a %d-row window of the padded image, got %d",
                         fn, (long long)(ph - d.h), d.h, y);
    if (x < 0 || x > pw - d.w)
        return del_error(DEL_EINVAL,
                         "%s: 'x' must be in 0..%lld for a %d-column window of the padded image, got %d", fn,
                         (long long)(pw - d.w), d.w, x);
    shifted_copy(&d, &s, (int64_t)pad - y, (int64_t)pad - x, (uint8_t)fill);
    return DEL_OK;
}

static del_status translate(del_tensor *dst, const del_tensor *src, int dy, int dx, int fill, const char *fn)
{
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 0);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    shifted_copy(&d, &s, dy, dx, (uint8_t)fill);
    return DEL_OK;
}

/* torchvision's TranslateX/Y (PIL path) maps output x to input x - t with
 * pixel centres at +0.5, which for integer t is this exact shift. */
DEL_API del_status del_image_translate_x(del_tensor *dst, const del_tensor *src, int pixels, int fill)
{
    return translate(dst, src, 0, pixels, fill, "del_image_translate_x");
}

DEL_API del_status del_image_translate_y(del_tensor *dst, const del_tensor *src, int pixels, int fill)
{
    return translate(dst, src, pixels, 0, fill, "del_image_translate_y");
}

DEL_API del_status del_image_cutout(del_tensor *dst, const del_tensor *src, int cy, int cx, int size, int fill)
{
    static const char fn[] = "del_image_cutout";
    del_img d, s;
    del_status st = del_img_same(&d, &s, fn, dst, src, 1);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    if (size < 0)
        return del_error(DEL_EINVAL, "%s: 'size' must be >= 0, got %d", fn, size);
    const size_t n = (size_t)s.h * (size_t)s.w * (size_t)s.c;
    if (d.px != s.px)
        memcpy(d.px, s.px, n);
    int64_t y0 = (int64_t)cy - size / 2, x0 = (int64_t)cx - size / 2;
    int64_t y1 = y0 + size, x1 = x0 + size;
    y0 = y0 < 0 ? 0 : y0;
    x0 = x0 < 0 ? 0 : x0;
    y1 = y1 > s.h ? s.h : y1;
    x1 = x1 > s.w ? s.w : x1;
    if (y1 <= y0 || x1 <= x0)
        return DEL_OK;
    for (int64_t y = y0; y < y1; y++)
        memset(d.px + ((size_t)y * (size_t)s.w + (size_t)x0) * (size_t)s.c, fill, (size_t)(x1 - x0) * (size_t)s.c);
    return DEL_OK;
}
