/* The vectorised row kernels behind the point and colour ops, and the
 * nearest-neighbour affine warp, against naive loops written from Pillow's
 * C sources (Blend.c, Filter.c, Geometry.c): every input pair where that
 * is feasible, and lengths that are not multiples of the SIMD block, so
 * both the vector blocks and the scalar tails run. */
#include <math.h>

#include "augment/ops/image.h"
#include "testutil.h"

/* ---- references ---- */

/* ImagingBlend's extrapolating branch, as Pillow writes it. */
static uint8_t pillow_blend(int in1, int in2, float alpha)
{
    float temp = (float)((int)in1 + alpha * ((int)in2 - (int)in1));
    if (temp <= 0.0)
        return 0;
    if (temp >= 255.0)
        return 255;
    return (uint8_t)temp;
}

/* ImagingConvert's RGB -> L. */
static int pillow_luma(int r, int g, int b)
{
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

static uint32_t lcg_state = 2463534242u;

static uint8_t rand_u8(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (uint8_t)(lcg_state >> 24);
}

/* RandAugment's and TrivialAugmentWide's enhance factors, and values
 * around the kernels' cap on alpha (512) up to the largest float. */
static int blend_factors(float *f)
{
    int n = 0;
    for (int m = 0; m < 31; m++) {
        const float e = 0.9f * (float)m / 30.0f, wd = 0.99f * (float)m / 30.0f;
        f[n++] = (float)(1.0 + e);
        f[n++] = (float)(1.0 - e);
        f[n++] = (float)(1.0 + wd);
        f[n++] = (float)(1.0 - wd);
    }
    const float extra[] = {0.0f,   1.0f,   0.5f,    2.0f,     3.7f,   10.0f, 0.3333333f, 1.0f / 13.0f,
                           255.5f, 511.9f, 512.0f, 512.25f, 1e6f, 3e38f};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        f[n++] = extra[i];
    return n;
}

/* ---- blends ---- */

START_TEST(test_blend_row_matches_pillow_for_every_sample_pair)
{
    enum { N = 65536 };
    uint8_t *in1 = malloc(N), *in2 = malloc(N), *out = malloc(N), *buf = malloc(N);
    for (int i = 0; i < N; i++) {
        in1[i] = (uint8_t)(i >> 8);
        in2[i] = (uint8_t)i;
    }
    float f[200];
    const int nf = blend_factors(f);
    for (int k = 0; k < nf; k++) {
        /* The whole table, then from sample 1 (a tail of 63 samples). */
        del_blend_row(out, in1, in2, N, f[k]);
        del_blend_row(out + 1, in1 + 1, in2 + 1, N - 1, f[k]);
        memcpy(buf, in2, N);
        del_blend_row(buf, in1, buf, N - 5, f[k]); /* in place on in2 */
        int bad = -1;
        for (int i = 0; i < N && bad < 0; i++)
            if (out[i] != pillow_blend(in1[i], in2[i], f[k]) || (i < N - 5 && buf[i] != out[i]))
                bad = i;
        ck_assert_msg(bad < 0, "factor %.9g: in1 %d, in2 %d: got %u, want %u", (double)f[k], bad >> 8, bad & 255,
                      out[bad & (N - 1)], pillow_blend(bad >> 8, bad & 255, f[k]));
        memcpy(buf, in1, N);
        del_blend_row(buf, buf, in2, N, f[k]); /* in place on in1 */
        ck_assert(memcmp(buf, out, N) == 0);
    }
    free(in1);
    free(in2);
    free(out);
    free(buf);
}
END_TEST

START_TEST(test_blend_const_row_matches_pillow_for_every_sample_pair)
{
    enum { N = 256 + 37 };
    uint8_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint8_t)i;
    float f[200];
    const int nf = blend_factors(f);
    for (int k = 0; k < nf; k++)
        for (int c = 0; c < 256; c++) {
            del_blend_const_row(out, c, in, N, f[k]);
            for (int i = 0; i < N; i++)
                if (out[i] != pillow_blend(c, in[i], f[k]))
                    ck_abort_msg("factor %.9g: in1 %d, in2 %d: got %u, want %u", (double)f[k], c, in[i], out[i],
                                 pillow_blend(c, in[i], f[k]));
        }
}
END_TEST

START_TEST(test_color_row_and_luma_sum_match_pillow)
{
    enum { NPIX = 1000 }; /* 15 blocks of 64 pixels and a tail of 40 */
    uint8_t rgb[3 * NPIX], out[3 * NPIX], inplace[3 * NPIX];
    for (int i = 0; i < 3 * NPIX; i++)
        rgb[i] = rand_u8();
    uint64_t want_sum = 0;
    for (int i = 0; i < NPIX; i++)
        want_sum += (uint64_t)pillow_luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    ck_assert_uint_eq(del_luma_sum(rgb, NPIX), want_sum);
    ck_assert_uint_eq(del_luma_sum(rgb, 0), 0);
    float f[200];
    const int nf = blend_factors(f);
    for (int k = 0; k < nf; k++) {
        del_color_row(out, rgb, NPIX, f[k]);
        memcpy(inplace, rgb, sizeof rgb);
        del_color_row(inplace, inplace, NPIX, f[k]);
        for (int i = 0; i < NPIX; i++) {
            const int g = pillow_luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
            for (int ch = 0; ch < 3; ch++) {
                const uint8_t want = pillow_blend(g, rgb[3 * i + ch], f[k]);
                if (out[3 * i + ch] != want || inplace[3 * i + ch] != want)
                    ck_abort_msg("factor %.9g, pixel %d, channel %d: got %u (in place %u), want %u", (double)f[k], i,
                                 ch, out[3 * i + ch], inplace[3 * i + ch], want);
            }
        }
    }
}
END_TEST

/* ---- sharpness ---- */

START_TEST(test_smooth_rounding_in_integers_equals_pillows)
{
    /* Pillow: trunc(S / 13 + 0.5) in float for the SMOOTH kernel's sum S
     * (at most 13 * 255); the kernel takes (S + 6) / 13. */
    for (int sum = 0; sum <= 13 * 255; sum++) {
        const float ss = (float)sum / 13.0f + 0.5f;
        ck_assert_int_eq((int)ss, (sum + 6) / 13);
        ck_assert_int_eq((2 * sum + 13) / 26, (sum + 6) / 13);
    }
}
END_TEST

START_TEST(test_sharpen_row_matches_smooth_then_blend)
{
    const int widths[] = {3, 4, 5, 22, 23, 66, 100, 224};
    float f[200];
    const int nf = blend_factors(f);
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int c = 1; c <= 3; c += 2) {
            const size_t n = (size_t)widths[wi] * (size_t)c;
            uint8_t *rows = malloc(3 * n), *out = malloc(n);
            for (size_t i = 0; i < 3 * n; i++)
                rows[i] = rand_u8();
            const uint8_t *up = rows, *mid = rows + n, *down = rows + 2 * n;
            for (int k = 0; k < nf; k++) {
                memset(out, 0xAB, n);
                del_sharpen_row(out, up, mid, down, n, c, f[k]);
                for (size_t i = 0; i < n; i++) {
                    int want = 0xAB; /* the border samples are not written */
                    if (i >= (size_t)c && i < n - (size_t)c) {
                        const int sum = up[i - c] + up[i] + up[i + c] + mid[i - c] + 5 * mid[i] + mid[i + c] +
                                        down[i - c] + down[i] + down[i + c];
                        want = pillow_blend((2 * sum + 13) / 26, mid[i], f[k]);
                    }
                    if (out[i] != want)
                        ck_abort_msg("width %d, c %d, factor %.9g, sample %zu: got %u, want %d", widths[wi], c,
                                     (double)f[k], i, out[i], want);
                }
            }
            free(rows);
            free(out);
        }
}
END_TEST

/* ---- integer point kernels ---- */

START_TEST(test_point_rows_match_their_formulas_for_every_value)
{
    enum { N = 256 + 63 };
    uint8_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint8_t)(i * 7);
    for (int bits = 0; bits <= 8; bits++) {
        const uint8_t mask = (uint8_t)(0xff00u >> bits);
        del_and_row(out, in, N, mask);
        for (int i = 0; i < N; i++)
            ck_assert_uint_eq(out[i], in[i] & mask);
    }
    for (int from = 0; from <= 256; from++) {
        del_invert_from_row(out, in, N, from);
        for (int i = 0; i < N; i++)
            ck_assert_uint_eq(out[i], in[i] >= from ? 255 - in[i] : in[i]);
    }
    for (int delta = -255; delta <= 255; delta += 5) {
        del_add_clamp_row(out, in, N, delta);
        for (int i = 0; i < N; i++) {
            const int t = in[i] + delta;
            ck_assert_uint_eq(out[i], t < 0 ? 0 : t > 255 ? 255 : t);
        }
    }
}
END_TEST

START_TEST(test_channel_range_finds_each_channels_extremes)
{
    const size_t npix[] = {0, 1, 2, 63, 64, 65, 200, 1001};
    for (size_t t = 0; t < sizeof npix / sizeof npix[0]; t++)
        for (int c = 1; c <= 3; c += 2) {
            const size_t n = npix[t] * (size_t)c;
            uint8_t *px = malloc(n + 1);
            for (size_t i = 0; i < n; i++)
                px[i] = (uint8_t)(rand_u8() / 2 + 40 * (int)(i % (size_t)c)); /* channels differ */
            uint8_t lo[3], hi[3];
            del_channel_range(px, n, c, lo, hi);
            for (int k = 0; k < c; k++) {
                int want_lo = 255, want_hi = 0;
                for (size_t i = (size_t)k; i < n; i += (size_t)c) {
                    want_lo = px[i] < want_lo ? px[i] : want_lo;
                    want_hi = px[i] > want_hi ? px[i] : want_hi;
                }
                ck_assert_int_eq(lo[k], want_lo);
                ck_assert_int_eq(hi[k], want_hi);
            }
            free(px);
        }
}
END_TEST

START_TEST(test_stretch_row_applies_each_channels_map)
{
    enum { NPIX = 201 };
    uint8_t in[3 * NPIX], out[3 * NPIX];
    for (int i = 0; i < 3 * NPIX; i++)
        in[i] = (uint8_t)(10 + rand_u8() % 100);
    const uint8_t lo[3] = {10, 0, 50};
    const uint32_t mul[3] = {65536, 12345, 3 * 65536};
    del_stretch_row(out, in, 3 * NPIX, 3, lo, mul);
    for (int i = 0; i < 3 * NPIX; i++)
        ck_assert_uint_eq(out[i], (uint8_t)((((uint32_t)in[i] - lo[i % 3]) * mul[i % 3]) >> 16));
}
END_TEST

START_TEST(test_apply_lut_maps_every_sample_through_its_channels_table)
{
    uint8_t lut[3 * 256];
    for (int i = 0; i < 3 * 256; i++)
        lut[i] = rand_u8();
    const int heights[] = {1, 2, 3, 7, 64};
    for (size_t hi = 0; hi < sizeof heights / sizeof heights[0]; hi++)
        for (int c = 1; c <= 3; c += 2)
            for (int per_channel = 0; per_channel <= 1; per_channel++) {
                const int h = heights[hi], w = 67; /* rows of 67 or 201 samples: SIMD blocks and tails */
                const size_t n = (size_t)h * (size_t)w * (size_t)c;
                uint8_t *in = malloc(n), *out = malloc(n), *inplace = malloc(n);
                for (size_t i = 0; i < n; i++)
                    in[i] = rand_u8();
                memcpy(inplace, in, n);
                del_img s = {in, h, w, c}, d = {out, h, w, c}, ip = {inplace, h, w, c};
                del_img_apply_lut(&d, &s, lut, per_channel);
                del_img_apply_lut(&ip, &ip, lut, per_channel);
                for (size_t i = 0; i < n; i++) {
                    const int table = per_channel ? (int)(i % (size_t)c) : 0;
                    ck_assert_msg(out[i] == lut[256 * table + in[i]] && inplace[i] == out[i],
                                  "%dx%dx%d per_channel %d, sample %zu", h, w, c, per_channel, i);
                }
                free(in);
                free(out);
                free(inplace);
            }
}
END_TEST

/* autocontrast on one channel holding lo..hi, against ImageOps'
 * int(v * scale + offset) in double, for every range. */
START_TEST(test_autocontrast_matches_pillows_double_arithmetic_for_every_range)
{
    const int64_t shape[3] = {1, 256, 1};
    del_tensor *src = NULL, *dst = NULL;
    ck_assert_del_ok(del_tensor_new(&src, DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_new(&dst, DEL_DTYPE_U8, 3, shape));
    uint8_t *s = del_tensor_data(src), *d = del_tensor_data(dst);
    for (int lo = 0; lo < 256; lo++)
        for (int hi = lo; hi < 256; hi++) {
            for (int i = 0; i < 256; i++)
                s[i] = (uint8_t)(lo + i % (hi - lo + 1));
            ck_assert_del_ok(del_image_autocontrast(dst, src));
            const double scale = hi > lo ? 255.0 / (double)(hi - lo) : 1.0, offset = hi > lo ? -lo * scale : 0.0;
            for (int i = 0; i < 256; i++)
                if (d[i] != (int)(s[i] * scale + offset))
                    ck_abort_msg("range %d..%d, value %d: got %u, want %d", lo, hi, s[i], d[i],
                                 (int)(s[i] * scale + offset));
        }
    del_tensor_free(src);
    del_tensor_free(dst);
}
END_TEST

START_TEST(test_autocontrast_keeps_pillows_rounding_by_hand)
{
    /* 255 / 25 * 25 is 254.99999999999997 in double: Pillow maps the top
     * value to 254, where the exact quotient would give 255. */
    const uint8_t px[3] = {0, 5, 25};
    const int64_t shape[3] = {1, 3, 1};
    del_tensor *src = NULL, *dst = NULL;
    ck_assert_del_ok(del_tensor_new(&src, DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_new(&dst, DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_copy_from(src, px, sizeof px));
    ck_assert_del_ok(del_image_autocontrast(dst, src));
    const uint8_t *d = del_tensor_data(dst);
    ck_assert_uint_eq(d[0], 0);
    ck_assert_uint_eq(d[1], 51);
    ck_assert_uint_eq(d[2], 254);
    del_tensor_free(src);
    del_tensor_free(dst);
}
END_TEST

/* ---- nearest affine warp ---- */

/* Geometry.c's affine_transform for NEAREST, pixel by pixel: 16.16 fixed
 * point, every tap checked against the image. */
static void pillow_nearest_fixed(uint8_t *out, int oh, int ow, const uint8_t *in, int h, int w, int c,
                                 const double a[6], uint8_t fill)
{
    const int64_t a0 = (int64_t)floor(a[0] * 65536.0 + 0.5), a1 = (int64_t)floor(a[1] * 65536.0 + 0.5);
    const int64_t a3 = (int64_t)floor(a[3] * 65536.0 + 0.5), a4 = (int64_t)floor(a[4] * 65536.0 + 0.5);
    int64_t a2 = (int64_t)floor((a[2] + a[0] * 0.5 + a[1] * 0.5) * 65536.0 + 0.5);
    int64_t a5 = (int64_t)floor((a[5] + a[3] * 0.5 + a[4] * 0.5) * 65536.0 + 0.5);
    for (int y = 0; y < oh; y++, a2 += a1, a5 += a4) {
        int64_t xx = a2, yy = a5;
        for (int x = 0; x < ow; x++, xx += a0, yy += a3) {
            const int64_t xin = xx >> 16, yin = yy >> 16;
            for (int k = 0; k < c; k++)
                out[((size_t)y * (size_t)ow + (size_t)x) * (size_t)c + (size_t)k] =
                    xin >= 0 && xin < w && yin >= 0 && yin < h ? in[((size_t)yin * (size_t)w + (size_t)xin) * (size_t)c + (size_t)k]
                                                               : fill;
        }
    }
}

static double rand_unit(void)
{
    return (double)rand_u8() / 255.0;
}

START_TEST(test_nearest_warp_matches_pillows_fixed_point_loop)
{
    for (int trial = 0; trial < 3000; trial++) {
        const int kind = trial % 5;
        const int h = 1 + rand_u8() % (trial % 7 == 0 ? 240 : 40), w = 1 + rand_u8() % (trial % 11 == 0 ? 240 : 40);
        const int c = trial % 3 == 0 ? 1 : 3;
        const uint8_t fill = rand_u8();
        double a[6];
        if (kind == 0 || kind == 1) { /* rotation about the centre, as Image.rotate */
            const double r = (rand_unit() - 0.5) * 6.4;
            a[0] = cos(r), a[1] = sin(r), a[3] = -sin(r), a[4] = cos(r);
        } else if (kind == 2) { /* shear_x: unit x step, source rows in runs */
            a[0] = 1.0, a[1] = (rand_unit() - 0.5) * 2.0, a[3] = 0.0, a[4] = 1.0;
        } else if (kind == 3) { /* shear_y: unit x step, the source row changes along x */
            a[0] = 1.0, a[1] = 0.0, a[3] = (rand_unit() - 0.5) * 2.0, a[4] = 1.0;
        } else { /* anything, including mirror images and zooms */
            a[0] = (rand_unit() - 0.5) * 4.0, a[1] = (rand_unit() - 0.5) * 4.0;
            a[3] = (rand_unit() - 0.5) * 4.0, a[4] = (rand_unit() - 0.5) * 4.0;
        }
        if (a[1] == 0.0 && a[3] == 0.0)
            a[1] = 1.0 / 64.0; /* a pure scale takes Pillow's other (separable) path */
        a[2] = (rand_unit() - 0.5) * 2.0 * w + w / 2.0 - a[0] * w / 2.0 - a[1] * h / 2.0;
        a[5] = (rand_unit() - 0.5) * 2.0 * h + h / 2.0 - a[3] * w / 2.0 - a[4] * h / 2.0;
        const size_t n = (size_t)h * (size_t)w * (size_t)c;
        uint8_t *in = malloc(n), *got = malloc(n), *want = malloc(n);
        for (size_t i = 0; i < n; i++)
            in[i] = rand_u8();
        del_img s = {in, h, w, c}, d = {got, h, w, c};
        del_warp_pil_affine(&d, &s, a, DEL_INTERP_NEAREST, fill);
        pillow_nearest_fixed(want, h, w, in, h, w, c, a, fill);
        for (size_t i = 0; i < n; i++)
            if (got[i] != want[i])
                ck_abort_msg("trial %d (%dx%dx%d, a = %.17g %.17g %.17g %.17g %.17g %.17g): sample %zu: got %u, "
                             "want %u",
                             trial, h, w, c, a[0], a[1], a[2], a[3], a[4], a[5], i, got[i], want[i]);
        free(in);
        free(got);
        free(want);
    }
}
END_TEST

static Suite *augment_kernels_suite(void)
{
    Suite *s = suite_create("augment_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_blend_row_matches_pillow_for_every_sample_pair);
    tcase_add_test(tc, test_blend_const_row_matches_pillow_for_every_sample_pair);
    tcase_add_test(tc, test_color_row_and_luma_sum_match_pillow);
    tcase_add_test(tc, test_smooth_rounding_in_integers_equals_pillows);
    tcase_add_test(tc, test_sharpen_row_matches_smooth_then_blend);
    tcase_add_test(tc, test_point_rows_match_their_formulas_for_every_value);
    tcase_add_test(tc, test_channel_range_finds_each_channels_extremes);
    tcase_add_test(tc, test_stretch_row_applies_each_channels_map);
    tcase_add_test(tc, test_apply_lut_maps_every_sample_through_its_channels_table);
    tcase_add_test(tc, test_autocontrast_matches_pillows_double_arithmetic_for_every_range);
    tcase_add_test(tc, test_autocontrast_keeps_pillows_rounding_by_hand);
    tcase_add_test(tc, test_nearest_warp_matches_pillows_fixed_point_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(augment_kernels_suite());
}
