/* Resampling kernels. Two families, each reproducing its reference's
 * arithmetic so golden comparisons can be exact:
 *   - Pillow's Image.transform(AFFINE) (torchvision's PIL path: rotate,
 *     shear, translate): pixel centres at +0.5, nearest in 16.16 fixed
 *     point, bilinear in double with clamped taps and truncation;
 *   - OpenCV's warpAffine / warpPerspective: integer pixel centres,
 *     coordinates quantised to 1/32 pixel, 15-bit integer bilinear
 *     weights, constant border blended into edge pixels. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "augment/ops/image.h"

static inline void put_px(uint8_t *out, const uint8_t *in, int c)
{
    out[0] = in[0];
    if (c == 3) {
        out[1] = in[1];
        out[2] = in[2];
    }
}

/* ---- Pillow ---- */

/* Pillow's COORD: negative coordinates are simply "outside". */
static inline int pil_coord(double v)
{
    return v < 0.0 ? -1 : v >= (double)INT_MAX ? INT_MAX : (int)v;
}

static inline int64_t pil_fix(double v)
{
    double t = v * 65536.0 + 0.5;
    return (int64_t)floor(t);
}

static int pil_fits_fixed(const double a[6], int x, int y)
{
    return fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

/* Floor and ceiling of n / m for m > 0. */
static inline int64_t floor_div(int64_t n, int64_t m)
{
    return n >= 0 ? n / m : -((-n + m - 1) / m);
}

static inline int64_t ceil_div(int64_t n, int64_t m)
{
    return -floor_div(-n, m);
}

/* Narrows the columns [*x0, *x1) to those x where the 16.16 coordinate
 * v + x dv, shifted down by 16, lies in 0..n-1 (v + x dv in [0, n << 16)). */
static void fixed_span(int64_t v, int64_t dv, int n, int *x0, int *x1)
{
    const int64_t top = ((int64_t)n << 16) - 1;
    int64_t lo, hi; /* inclusive */
    if (dv == 0) {
        if (v >= 0 && v <= top)
            return;
        lo = 1;
        hi = 0;
    } else if (dv > 0) {
        lo = ceil_div(-v, dv);
        hi = floor_div(top - v, dv);
    } else {
        lo = ceil_div(v - top, -dv);
        hi = floor_div(v, -dv);
    }
    if (lo > *x0)
        *x0 = lo > *x1 ? *x1 : (int)lo;
    if (hi + 1 < *x1)
        *x1 = hi + 1 < *x0 ? *x0 : (int)(hi + 1);
}

/* memcpy for the short runs of a shear: sizes up to 64 bytes as two
 * overlapping fixed-size copies, which compile to a few moves instead of
 * a call. d and s do not overlap. */
static inline void copy_run(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n > 64) {
        memcpy(d, s, n);
    } else if (n >= 32) {
        memcpy(d, s, 32);
        memcpy(d + n - 32, s + n - 32, 32);
    } else if (n >= 16) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

enum { SPAN_BLOCK = 64 };

/* n pixels of one output row in Pillow's 16.16 nearest sampling from
 * (xx, yy) on, every tap known to be inside the image. A unit x step
 * (a0 = 1.0, as in shear_x and shear_y) walks source rows in runs, copied
 * whole. */
DEL_ISA_BODY void pil_nearest_span_body(uint8_t *out, const del_img *s, int64_t xx, int64_t yy, int64_t a0, int64_t a3,
                                        int n)
{
    const int c = s->c;
    const size_t sstride = (size_t)s->w * (size_t)c;
    if (a0 == 65536) {
        while (n > 0) {
            const int64_t yi = yy >> 16;
            int64_t run = n;
            if (a3 > 0)
                run = ceil_div(((yi + 1) << 16) - yy, a3);
            else if (a3 < 0)
                run = floor_div(yy - (yi << 16), -a3) + 1;
            if (run > n)
                run = n;
            copy_run(out, s->px + (size_t)yi * sstride + (size_t)(xx >> 16) * (size_t)c, (size_t)run * (size_t)c);
            out += run * c;
            xx += run * 65536;
            yy += run * a3;
            n -= (int)run;
        }
        return;
    }
    /* A local base pointer: stores through out could alias s->px. */
    const uint8_t *const px = s->px;
    if ((uint64_t)s->h * sstride > UINT32_MAX) {
        for (int x = 0; x < n; x++, xx += a0, yy += a3, out += c)
            memcpy(out, px + (size_t)(yy >> 16) * sstride + (size_t)(xx >> 16) * (size_t)c, (size_t)c);
        return;
    }
    /* Source offsets a block at a time in 32-bit lanes (vectorised: inside
     * the image the 16.16 coordinates are below 2^31, and the offsets fit),
     * then the copies. */
    const uint32_t dx = (uint32_t)a0, dy = (uint32_t)a3, st = (uint32_t)sstride, cu = (uint32_t)c;
    uint32_t off[SPAN_BLOCK];
    while (n > 0) {
        const int m = n < SPAN_BLOCK ? n : SPAN_BLOCK;
        const uint32_t bx = (uint32_t)xx, by = (uint32_t)yy;
        for (int k = 0; k < SPAN_BLOCK; k++)
            off[k] = ((by + (uint32_t)k * dy) >> 16) * st + ((bx + (uint32_t)k * dx) >> 16) * cu;
        if (c == 3) {
            for (int k = 0; k < m; k++)
                memcpy(out + 3 * k, px + off[k], 3);
        } else {
            for (int k = 0; k < m; k++)
                out[k] = px[off[k]];
        }
        out += m * c;
        xx += m * a0;
        yy += m * a3;
        n -= m;
    }
}
DEL_ISA_VERSIONS(pil_nearest_span,
                 (uint8_t *out, const del_img *s, int64_t xx, int64_t yy, int64_t a0, int64_t a3, int n),
                 (out, s, xx, yy, a0, a3, n))

/* Fills d outside the source and samples it inside. */
static void pil_nearest(const del_img *d, const del_img *s, const double a[6], uint8_t fill)
{
    const int c = s->c;
    const size_t sstride = (size_t)s->w * (size_t)c, drow = (size_t)d->w * (size_t)c;
    if (pil_fits_fixed(a, 0, 0) && pil_fits_fixed(a, d->w, d->h) && pil_fits_fixed(a, 0, d->h) &&
        pil_fits_fixed(a, d->w, 0) && !(a[1] == 0 && a[3] == 0)) {
        /* Pillow's affine_transform: 16.16 fixed point, stepped per pixel;
         * xx and yy are linear in x, so the in-image columns of a row are
         * one interval, found by division. */
        int64_t a0 = pil_fix(a[0]), a1 = pil_fix(a[1]), a3 = pil_fix(a[3]), a4 = pil_fix(a[4]);
        int64_t a2 = pil_fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
        int64_t a5 = pil_fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
        for (int y = 0; y < d->h; y++, a2 += a1, a5 += a4) {
            uint8_t *out = d->px + (size_t)y * drow;
            int x0 = 0, x1 = d->w;
            fixed_span(a2, a0, s->w, &x0, &x1);
            fixed_span(a5, a3, s->h, &x0, &x1);
            if (x0 > 0)
                memset(out, fill, (size_t)x0 * (size_t)c);
            if (x1 > x0)
                DEL_ISA_PICK(pil_nearest_span)(out + (size_t)x0 * (size_t)c, s, a2 + x0 * a0, a5 + x0 * a3, a0, a3,
                                               x1 - x0);
            if (x1 < d->w)
                memset(out + (size_t)x1 * (size_t)c, fill, (size_t)(d->w - x1) * (size_t)c);
        }
        return;
    }
    memset(d->px, fill, (size_t)d->h * drow);
    if (a[1] == 0 && a[3] == 0) {
        /* ImagingScaleAffine: separable, positions accumulated in double. */
        double yo = a[5] + a[4] * 0.5;
        for (int y = 0; y < d->h; y++, yo += a[4]) {
            int yi = pil_coord(yo);
            if (yi < 0 || yi >= s->h)
                continue;
            const uint8_t *in = s->px + (size_t)yi * sstride;
            uint8_t *out = d->px + (size_t)y * drow;
            double xo = a[2] + a[0] * 0.5;
            for (int x = 0; x < d->w; x++, xo += a[0]) {
                int xi = pil_coord(xo);
                if (xi >= 0 && xi < s->w)
                    put_px(out + (size_t)x * (size_t)c, in + (size_t)xi * (size_t)c, c);
            }
        }
        return;
    }
    double xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    double yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (int y = 0; y < d->h; y++, xo += a[1], yo += a[4]) {
        uint8_t *out = d->px + (size_t)y * drow;
        double xx = xo, yy = yo;
        for (int x = 0; x < d->w; x++, xx += a[0], yy += a[3]) {
            int xi = pil_coord(xx), yi = pil_coord(yy);
            if (xi >= 0 && xi < s->w && yi >= 0 && yi < s->h)
                put_px(out + (size_t)x * (size_t)c, s->px + (size_t)yi * sstride + (size_t)xi * (size_t)c, c);
        }
    }
}

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void pil_bilinear(const del_img *d, const del_img *s, const double a[6])
{
    const int c = s->c;
    const size_t sstride = (size_t)s->w * (size_t)c;
    for (int y = 0; y < d->h; y++) {
        uint8_t *out = d->px + (size_t)y * (size_t)d->w * (size_t)c;
        const double yc = y + 0.5;
        for (int x = 0; x < d->w; x++, out += c) {
            const double xc = x + 0.5;
            double xin = a[0] * xc + a[1] * yc + a[2];
            double yin = a[3] * xc + a[4] * yc + a[5];
            if (!(xin >= 0.0 && xin < s->w && yin >= 0.0 && yin < s->h))
                continue;
            xin -= 0.5;
            yin -= 0.5;
            int xi = (int)floor(xin), yi = (int)floor(yin);
            double dx = xin - xi, dy = yin - yi;
            size_t x0 = (size_t)clampi(xi, 0, s->w - 1) * (size_t)c;
            size_t x1 = (size_t)clampi(xi + 1, 0, s->w - 1) * (size_t)c;
            const uint8_t *r0 = s->px + (size_t)clampi(yi, 0, s->h - 1) * sstride;
            const uint8_t *r1 = yi + 1 < s->h ? s->px + (size_t)(yi + 1) * sstride : NULL;
            for (int k = 0; k < c; k++) {
                double v1 = r0[x0 + k] + (r0[x1 + k] - r0[x0 + k]) * dx;
                double v2 = r1 ? r1[x0 + k] + (r1[x1 + k] - r1[x0 + k]) * dx : v1;
                v1 = v1 + (v2 - v1) * dy;
                out[k] = (uint8_t)v1;
            }
        }
    }
}

void del_warp_pil_affine(const del_img *d, const del_img *s, const double a[6], del_interp interp, uint8_t fill)
{
    if (interp == DEL_INTERP_NEAREST) {
        pil_nearest(d, s, a, fill);
        return;
    }
    memset(d->px, fill, (size_t)d->h * (size_t)d->w * (size_t)d->c);
    pil_bilinear(d, s, a);
}

/* ---- OpenCV ---- */

enum { CV_INTER_BITS = 5, CV_TAB = 1 << CV_INTER_BITS, CV_AB_BITS = 10, CV_AB_SCALE = 1 << CV_AB_BITS };

/* saturate_cast<int>(double): round half to even, here also clamped. */
static inline int64_t cv_round(double v)
{
    if (!(v > (double)INT_MIN))
        return INT_MIN;
    if (v >= (double)INT_MAX)
        return INT_MAX;
    return (int64_t)nearbyint(v);
}

static inline int64_t cv_short(int64_t v)
{
    return v < SHRT_MIN ? SHRT_MIN : v > SHRT_MAX ? SHRT_MAX : v;
}

/* remapNearest with BORDER_CONSTANT for one pixel. */
static inline void cv_nearest_px(uint8_t *out, const del_img *s, int64_t sx, int64_t sy, uint8_t fill)
{
    if (sx >= 0 && sx < s->w && sy >= 0 && sy < s->h)
        put_px(out, s->px + ((size_t)sy * (size_t)s->w + (size_t)sx) * (size_t)s->c, s->c);
    else
        memset(out, fill, (size_t)s->c);
}

/* remapBilinear with BORDER_CONSTANT: weights (32-ax)(32-ay)*32 etc. sum
 * to 1 << 15; taps outside the image read the fill value. */
static inline void cv_bilinear_px(uint8_t *out, const del_img *s, int64_t sx, int64_t sy, int ax, int ay,
                                  uint8_t fill)
{
    const int c = s->c;
    const int w00 = (CV_TAB - ax) * (CV_TAB - ay) * 32, w01 = ax * (CV_TAB - ay) * 32;
    const int w10 = (CV_TAB - ax) * ay * 32, w11 = ax * ay * 32;
    const size_t sstride = (size_t)s->w * (size_t)c;
    if (sx >= 0 && sx < s->w - 1 && sy >= 0 && sy < s->h - 1) {
        const uint8_t *p0 = s->px + (size_t)sy * sstride + (size_t)sx * (size_t)c, *p1 = p0 + sstride;
        for (int k = 0; k < c; k++)
            out[k] = (uint8_t)((p0[k] * w00 + p0[k + c] * w01 + p1[k] * w10 + p1[k + c] * w11 + (1 << 14)) >> 15);
        return;
    }
    if (sx >= s->w || sx + 1 < 0 || sy >= s->h || sy + 1 < 0) {
        memset(out, fill, (size_t)c);
        return;
    }
    const int in_x0 = sx >= 0, in_x1 = sx + 1 < s->w, in_y0 = sy >= 0, in_y1 = sy + 1 < s->h;
    for (int k = 0; k < c; k++) {
        int v00 = in_x0 && in_y0 ? s->px[(size_t)sy * sstride + (size_t)sx * (size_t)c + (size_t)k] : fill;
        int v01 = in_x1 && in_y0 ? s->px[(size_t)sy * sstride + (size_t)(sx + 1) * (size_t)c + (size_t)k] : fill;
        int v10 = in_x0 && in_y1 ? s->px[(size_t)(sy + 1) * sstride + (size_t)sx * (size_t)c + (size_t)k] : fill;
        int v11 = in_x1 && in_y1 ? s->px[(size_t)(sy + 1) * sstride + (size_t)(sx + 1) * (size_t)c + (size_t)k]
                                 : fill;
        out[k] = (uint8_t)((v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11 + (1 << 14)) >> 15);
    }
}

void del_warp_cv_affine(const del_img *d, const del_img *s, const double m[6], del_interp interp, uint8_t fill)
{
    const int c = d->c;
    const int64_t round_delta = interp == DEL_INTERP_NEAREST ? CV_AB_SCALE / 2 : CV_AB_SCALE / CV_TAB / 2;
    for (int y = 0; y < d->h; y++) {
        uint8_t *out = d->px + (size_t)y * (size_t)d->w * (size_t)c;
        const int64_t X0 = cv_round((m[1] * y + m[2]) * CV_AB_SCALE) + round_delta;
        const int64_t Y0 = cv_round((m[4] * y + m[5]) * CV_AB_SCALE) + round_delta;
        for (int x = 0; x < d->w; x++, out += c) {
            int64_t X = X0 + cv_round(m[0] * x * CV_AB_SCALE);
            int64_t Y = Y0 + cv_round(m[3] * x * CV_AB_SCALE);
            if (interp == DEL_INTERP_NEAREST) {
                cv_nearest_px(out, s, cv_short(X >> CV_AB_BITS), cv_short(Y >> CV_AB_BITS), fill);
            } else {
                X >>= CV_AB_BITS - CV_INTER_BITS;
                Y >>= CV_AB_BITS - CV_INTER_BITS;
                cv_bilinear_px(out, s, cv_short(X >> CV_INTER_BITS), cv_short(Y >> CV_INTER_BITS),
                               (int)(X & (CV_TAB - 1)), (int)(Y & (CV_TAB - 1)), fill);
            }
        }
    }
}

void del_warp_cv_perspective(const del_img *d, const del_img *s, const double m[9], del_interp interp,
                             uint8_t fill)
{
    const int c = d->c;
    const double scale = interp == DEL_INTERP_NEAREST ? 1.0 : (double)CV_TAB;
    for (int y = 0; y < d->h; y++) {
        uint8_t *out = d->px + (size_t)y * (size_t)d->w * (size_t)c;
        const double X0 = m[1] * y + m[2], Y0 = m[4] * y + m[5], W0 = m[7] * y + m[8];
        for (int x = 0; x < d->w; x++, out += c) {
            double W = W0 + m[6] * x;
            W = W != 0.0 ? scale / W : 0.0;
            int64_t X = cv_round((X0 + m[0] * x) * W);
            int64_t Y = cv_round((Y0 + m[3] * x) * W);
            if (interp == DEL_INTERP_NEAREST)
                cv_nearest_px(out, s, cv_short(X), cv_short(Y), fill);
            else
                cv_bilinear_px(out, s, cv_short(X >> CV_INTER_BITS), cv_short(Y >> CV_INTER_BITS),
                               (int)(X & (CV_TAB - 1)), (int)(Y & (CV_TAB - 1)), fill);
        }
    }
}
