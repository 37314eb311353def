/* Single-image augmentation ops: hand-worked cases, the op table and the
 * argument checks (the golden comparisons are in test_augment_golden.c). */
#include <math.h>

#include "augment/ops/image.h" /* the internal op table */
#include "del/augment.h"
#include "testutil.h"

static del_tensor *u8_image(int h, int w, int c)
{
    del_tensor *t = NULL;
    const int64_t shape[3] = {h, w, c};
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 3, shape));
    return t;
}

/* ---- hand-worked cases ---- */

static del_tensor *image_from(const uint8_t *px, int h, int w, int c)
{
    del_tensor *t = u8_image(h, w, c);
    ck_assert_del_ok(del_tensor_copy_from(t, px, (size_t)h * (size_t)w * (size_t)c));
    return t;
}

static void expect_pixels(del_tensor *t, const uint8_t *want, size_t n)
{
    ck_assert_uint_eq(del_tensor_nbytes(t), n);
    const uint8_t *got = del_tensor_data(t);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "sample %zu: got %u, want %u", i, got[i], want[i]);
}

START_TEST(test_brightness_add_saturates_in_place)
{
    const uint8_t px[4] = {0, 100, 155, 250};
    del_tensor *t = image_from(px, 2, 2, 1);
    ck_assert_del_ok(del_image_brightness_add(t, t, 100));
    expect_pixels(t, (const uint8_t[]){100, 200, 255, 255}, 4);
    ck_assert_del_ok(del_image_brightness_add(t, t, -150));
    expect_pixels(t, (const uint8_t[]){0, 50, 105, 105}, 4);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_posterize_solarize_and_brightness_by_hand)
{
    const uint8_t px[4] = {0, 127, 128, 255};
    del_tensor *s = image_from(px, 1, 4, 1), *d = u8_image(1, 4, 1);
    ck_assert_del_ok(del_image_posterize(d, s, 1));
    expect_pixels(d, (const uint8_t[]){0, 0, 128, 128}, 4);
    ck_assert_del_ok(del_image_posterize(d, s, 0));
    expect_pixels(d, (const uint8_t[]){0, 0, 0, 0}, 4);
    ck_assert_del_ok(del_image_solarize(d, s, 128.0f));
    expect_pixels(d, (const uint8_t[]){0, 127, 127, 0}, 4);
    ck_assert_del_ok(del_image_solarize(d, s, 127.5f));
    expect_pixels(d, (const uint8_t[]){0, 127, 127, 0}, 4);
    ck_assert_del_ok(del_image_solarize(d, s, 300.0f));
    expect_pixels(d, px, 4);
    /* 127 * 1.5 = 190.5 truncates to 190; 255 * 1.5 clips. */
    ck_assert_del_ok(del_image_brightness(d, s, 1.5f));
    expect_pixels(d, (const uint8_t[]){0, 190, 192, 255}, 4);
    del_tensor_free(s);
    del_tensor_free(d);
}
END_TEST

START_TEST(test_autocontrast_and_equalize_by_hand)
{
    /* Range 50..150 stretched: lut(v) = int((v - 50) * 2.55). */
    const uint8_t px[4] = {50, 100, 150, 100};
    del_tensor *s = image_from(px, 2, 2, 1), *d = u8_image(2, 2, 1);
    ck_assert_del_ok(del_image_autocontrast(d, s));
    expect_pixels(d, (const uint8_t[]){0, 127, 255, 127}, 4);
    /* Histogram {50: 1, 100: 2, 150: 1}: step = (4 - 1) / 255 = 0, so the
     * image is unchanged (PIL's rule for tiny images). */
    ck_assert_del_ok(del_image_equalize(d, s));
    expect_pixels(d, px, 4);
    /* A constant channel is left alone by both. */
    const uint8_t flat[4] = {9, 9, 9, 9};
    del_tensor *f = image_from(flat, 2, 2, 1);
    ck_assert_del_ok(del_image_autocontrast(d, f));
    expect_pixels(d, flat, 4);
    ck_assert_del_ok(del_image_equalize(d, f));
    expect_pixels(d, flat, 4);
    del_tensor_free(s);
    del_tensor_free(d);
    del_tensor_free(f);
}
END_TEST

START_TEST(test_equalize_two_level_image_by_hand)
{
    /* 300 zeros and 300 samples of 200: step = 300 // 255 = 1, lut[v] =
     * (0 + count below v) // 1, so 0 -> 0 and 200 -> 300 -> clipped 255. */
    uint8_t px[600];
    for (int i = 0; i < 600; i++)
        px[i] = i < 300 ? 0 : 200;
    del_tensor *s = image_from(px, 20, 30, 1), *d = u8_image(20, 30, 1);
    ck_assert_del_ok(del_image_equalize(d, s));
    const uint8_t *o = del_tensor_data(d);
    ck_assert_uint_eq(o[0], 0);
    ck_assert_uint_eq(o[599], 255);
    del_tensor_free(s);
    del_tensor_free(d);
}
END_TEST

START_TEST(test_quarter_turns_by_hand)
{
    /* 2 x 3 image   a b c      rotate90 (ccw):  c f     rotate270 (cw):  d a
     *               d e f                      b e                      e b
     *                                          a d                      f c */
    const uint8_t px[6] = {'a', 'b', 'c', 'd', 'e', 'f'};
    del_tensor *s = image_from(px, 2, 3, 1), *d = u8_image(3, 2, 1), *d2 = u8_image(2, 3, 1);
    ck_assert_del_ok(del_image_rotate90(d, s));
    expect_pixels(d, (const uint8_t *)"cfbead", 6);
    ck_assert_del_ok(del_image_rotate270(d, s));
    expect_pixels(d, (const uint8_t *)"daebfc", 6);
    ck_assert_del_ok(del_image_rotate180(d2, s));
    expect_pixels(d2, (const uint8_t *)"fedcba", 6);
    ck_assert_del_ok(del_image_flip_h(d2, s));
    expect_pixels(d2, (const uint8_t *)"cbafed", 6);
    ck_assert_del_ok(del_image_flip_v(d2, s));
    expect_pixels(d2, (const uint8_t *)"defabc", 6);
    del_tensor_free(s);
    del_tensor_free(d);
    del_tensor_free(d2);
}
END_TEST

START_TEST(test_rotate_by_90_on_square_is_the_quarter_turn)
{
    uint8_t px[5 * 5 * 3];
    for (int i = 0; i < 75; i++)
        px[i] = (uint8_t)(i * 7);
    del_tensor *s = image_from(px, 5, 5, 3), *a = u8_image(5, 5, 3), *b = u8_image(5, 5, 3);
    ck_assert_del_ok(del_image_rotate(a, s, 90.0f, DEL_INTERP_BILINEAR, 0));
    ck_assert_del_ok(del_image_rotate90(b, s));
    ck_assert_mem_eq(del_tensor_data(a), del_tensor_data(b), 75);
    ck_assert_del_ok(del_image_rotate(a, s, -90.0f, DEL_INTERP_NEAREST, 0));
    ck_assert_del_ok(del_image_rotate270(b, s));
    ck_assert_mem_eq(del_tensor_data(a), del_tensor_data(b), 75);
    ck_assert_del_ok(del_image_rotate(a, s, 720.0f, DEL_INTERP_BILINEAR, 0));
    ck_assert_mem_eq(del_tensor_data(a), px, 75);
    del_tensor_free(s);
    del_tensor_free(a);
    del_tensor_free(b);
}
END_TEST

START_TEST(test_translate_shifts_and_fills)
{
    const uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    del_tensor *s = image_from(px, 2, 3, 1), *d = u8_image(2, 3, 1);
    ck_assert_del_ok(del_image_translate_x(d, s, 1, 9));
    expect_pixels(d, (const uint8_t[]){9, 1, 2, 9, 4, 5}, 6);
    ck_assert_del_ok(del_image_translate_x(d, s, -2, 0));
    expect_pixels(d, (const uint8_t[]){3, 0, 0, 6, 0, 0}, 6);
    ck_assert_del_ok(del_image_translate_y(d, s, -1, 7));
    expect_pixels(d, (const uint8_t[]){4, 5, 6, 7, 7, 7}, 6);
    ck_assert_del_ok(del_image_translate_y(d, s, 1000, 7));
    expect_pixels(d, (const uint8_t[]){7, 7, 7, 7, 7, 7}, 6);
    del_tensor_free(s);
    del_tensor_free(d);
}
END_TEST

START_TEST(test_pad_crop_and_cutout_by_hand)
{
    const uint8_t px[4] = {1, 2, 3, 4};
    del_tensor *s = image_from(px, 2, 2, 1), *d = u8_image(2, 2, 1), *c = u8_image(3, 2, 1);
    /* Padded by 1 with 8:  8 8 8 8 / 8 1 2 8 / 8 3 4 8 / 8 8 8 8. */
    ck_assert_del_ok(del_image_pad_crop(d, s, 1, 0, 0, 8));
    expect_pixels(d, (const uint8_t[]){8, 8, 8, 1}, 4);
    ck_assert_del_ok(del_image_pad_crop(d, s, 1, 2, 1, 8));
    expect_pixels(d, (const uint8_t[]){3, 4, 8, 8}, 4);
    ck_assert_del_ok(del_image_pad_crop(c, s, 1, 1, 2, 8));
    expect_pixels(c, (const uint8_t[]){2, 8, 4, 8, 8, 8}, 6);
    ck_assert_del_ok(del_image_cutout(d, s, 0, 0, 2, 0));
    expect_pixels(d, (const uint8_t[]){0, 2, 3, 4}, 4);
    ck_assert_del_ok(del_image_cutout(d, s, 1, 1, 3, 5));
    expect_pixels(d, (const uint8_t[]){5, 5, 5, 5}, 4);
    ck_assert_del_ok(del_image_cutout(d, s, 9, 9, 4, 5));
    expect_pixels(d, px, 4);
    del_tensor_free(s);
    del_tensor_free(d);
    del_tensor_free(c);
}
END_TEST

START_TEST(test_sharpness_leaves_borders_and_tiny_images_unchanged)
{
    /* 3 x 3 with a bright centre: blur(centre) = (8*10 + 5*140)/13 = 60,
     * factor 0 gives the blur, borders stay. */
    const uint8_t px[9] = {10, 10, 10, 10, 140, 10, 10, 10, 10};
    del_tensor *s = image_from(px, 3, 3, 1), *d = u8_image(3, 3, 1);
    ck_assert_del_ok(del_image_sharpness(d, s, 0.0f));
    expect_pixels(d, (const uint8_t[]){10, 10, 10, 10, 60, 10, 10, 10, 10}, 9);
    /* factor 2: 60 + 2 * (140 - 60) = 220. */
    ck_assert_del_ok(del_image_sharpness(d, s, 2.0f));
    expect_pixels(d, (const uint8_t[]){10, 10, 10, 10, 220, 10, 10, 10, 10}, 9);
    const uint8_t tiny[12] = {0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6};
    del_tensor *t = image_from(tiny, 2, 2, 3), *td = u8_image(2, 2, 3);
    ck_assert_del_ok(del_image_sharpness(td, t, 0.0f));
    expect_pixels(td, tiny, 12);
    del_tensor_free(s);
    del_tensor_free(d);
    del_tensor_free(t);
    del_tensor_free(td);
}
END_TEST

START_TEST(test_color_leaves_grey_images_and_grey_pixels_unchanged)
{
    const uint8_t px[6] = {10, 200, 30, 77, 77, 77};
    del_tensor *s = image_from(px, 1, 2, 3), *d = u8_image(1, 2, 3);
    ck_assert_del_ok(del_image_color(d, s, 0.0f));
    /* Factor 0 gives the luma: (19595*10 + 38470*200 + 7471*30 + 32768) >> 16 = 124. */
    expect_pixels(d, (const uint8_t[]){124, 124, 124, 77, 77, 77}, 6);
    del_tensor *g = image_from(px, 2, 3, 1), *gd = u8_image(2, 3, 1);
    ck_assert_del_ok(del_image_color(gd, g, 0.0f));
    expect_pixels(gd, px, 6);
    del_tensor_free(s);
    del_tensor_free(d);
    del_tensor_free(g);
    del_tensor_free(gd);
}
END_TEST

START_TEST(test_affine_identity_and_integer_shift_are_exact)
{
    uint8_t px[4 * 5 * 3];
    for (int i = 0; i < 60; i++)
        px[i] = (uint8_t)(3 * i + 1);
    del_tensor *s = image_from(px, 4, 5, 3), *d = u8_image(4, 5, 3);
    const float id[6] = {1, 0, 0, 0, 1, 0};
    for (int interp = 0; interp < 2; interp++) {
        ck_assert_del_ok(del_image_affine(d, s, id, (del_interp)interp, 0));
        ck_assert_mem_eq(del_tensor_data(d), px, 60);
    }
    /* Moving content 1 right: column 0 becomes fill, bilinear included. */
    const float shift[6] = {1, 0, 1, 0, 1, 0};
    ck_assert_del_ok(del_image_affine(d, s, shift, DEL_INTERP_BILINEAR, 99));
    const uint8_t *o = del_tensor_data(d);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++)
            for (int k = 0; k < 3; k++)
                ck_assert_uint_eq(o[(y * 5 + x) * 3 + k], x == 0 ? 99 : px[(y * 5 + x - 1) * 3 + k]);
    const float persp_id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    ck_assert_del_ok(del_image_perspective(d, s, persp_id, DEL_INTERP_BILINEAR, 0));
    ck_assert_mem_eq(del_tensor_data(d), px, 60);
    del_tensor_free(s);
    del_tensor_free(d);
}
END_TEST

START_TEST(test_points_helpers_by_hand)
{
    /* Scale 2 and shift (1, -1): (0,0)->(1,-1), (1,0)->(3,-1), (0,1)->(1,1). */
    const float src[6] = {0, 0, 1, 0, 0, 1}, dst[6] = {1, -1, 3, -1, 1, 1};
    float m[6];
    ck_assert_del_ok(del_affine_from_points(m, src, dst));
    const float want[6] = {2, 0, 1, 0, 2, -1};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(m[i], want[i], 1e-6f);
    const float sq[8] = {0, 0, 1, 0, 1, 1, 0, 1}, sq3[8] = {0, 0, 3, 0, 3, 3, 0, 3};
    float h[9];
    ck_assert_del_ok(del_perspective_from_points(h, sq, sq3));
    const float hw[9] = {3, 0, 0, 0, 3, 0, 0, 0, 1};
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq_tol(h[i], hw[i], 1e-6f);
}
END_TEST

/* ---- the op table ---- */

START_TEST(test_op_table_lists_randaugment_ops_in_torchvision_order)
{
    static const char *names[14] = {"identity",  "shear_x",    "shear_y",  "translate_x", "translate_y",
                                    "rotate",    "brightness", "color",    "contrast",    "sharpness",
                                    "posterize", "solarize",   "autocontrast", "equalize"};
    int n = 0;
    const del_aug_op *t = del_aug_op_table(&n);
    ck_assert_int_ge(n, 14);
    for (int i = 0; i < 14; i++) {
        ck_assert_str_eq(t[i].name, names[i]);
        ck_assert_ptr_eq(del_aug_op_find(names[i]), &t[i]);
    }
    ck_assert_ptr_null(del_aug_op_find("no_such_op"));
    ck_assert_ptr_null(del_aug_op_find(NULL));
}
END_TEST

START_TEST(test_op_table_entries_call_the_ops)
{
    const uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    del_tensor *s = image_from(px, 2, 3, 1), *a = u8_image(2, 3, 1), *b = u8_image(2, 3, 1);
    /* translate_x truncates its value like torchvision's int(). */
    ck_assert_del_ok(del_aug_op_find("translate_x")->fn(a, s, 1.9f, DEL_INTERP_NEAREST, 0));
    ck_assert_del_ok(del_image_translate_x(b, s, 1, 0));
    ck_assert_mem_eq(del_tensor_data(a), del_tensor_data(b), 6);
    ck_assert_del_ok(del_aug_op_find("identity")->fn(a, s, 0.0f, DEL_INTERP_NEAREST, 0));
    ck_assert_mem_eq(del_tensor_data(a), px, 6);
    ck_assert_del_ok(del_aug_op_find("posterize")->fn(a, s, 6.0f, DEL_INTERP_NEAREST, 0));
    expect_pixels(a, (const uint8_t[]){0, 0, 0, 4, 4, 4}, 6);
    del_tensor_free(s);
    del_tensor_free(a);
    del_tensor_free(b);
}
END_TEST

/* ---- argument checks ---- */

START_TEST(test_wrong_shapes_and_types_are_rejected_with_the_expected_shape)
{
    del_tensor *s = u8_image(13, 17, 3), *same = u8_image(13, 17, 3), *wrong = u8_image(13, 17, 1);
    ck_assert_del_err(del_image_rotate90(same, s), DEL_EINVAL, "[17, 13, 3]");
    ck_assert_del_err(del_image_flip_h(wrong, s), DEL_EINVAL, "'dst'");
    ck_assert_del_err(del_image_flip_h(wrong, s), DEL_EINVAL, "[13, 17, 3]");
    ck_assert_del_err(del_image_flip_h(NULL, s), DEL_EINVAL, "'dst'");
    ck_assert_del_err(del_image_equalize(same, NULL), DEL_EINVAL, "'src'");
    del_tensor *f = NULL, *two = u8_image(4, 4, 2), *flat = NULL;
    const int64_t shape3[3] = {13, 17, 3}, shape2[2] = {13, 17};
    ck_assert_del_ok(del_tensor_new(&f, DEL_DTYPE_F32, 3, shape3));
    ck_assert_del_ok(del_tensor_new(&flat, DEL_DTYPE_U8, 2, shape2));
    ck_assert_del_err(del_image_solarize(same, f, 128.0f), DEL_EINVAL, "'src' must be a u8 image");
    ck_assert_del_err(del_image_solarize(f, s, 128.0f), DEL_EINVAL, "got f32");
    ck_assert_del_err(del_image_contrast(two, two, 1.0f), DEL_EINVAL, "1 or 3");
    ck_assert_del_err(del_image_contrast(flat, flat, 1.0f), DEL_EINVAL, "'src'");
    del_tensor *crop = u8_image(14, 5, 3);
    ck_assert_del_err(del_image_crop(crop, s, 0, 0), DEL_EINVAL, "'y'");
    del_tensor_free(crop);
    crop = u8_image(5, 5, 3);
    ck_assert_del_err(del_image_crop(crop, s, 0, 13), DEL_EINVAL, "'x' must be in 0..12");
    ck_assert_del_err(del_image_pad_crop(crop, s, 2, 0, 17, 0), DEL_EINVAL, "'x' must be in 0..16");
    ck_assert_del_err(del_image_pad_crop(crop, s, -1, 0, 0, 0), DEL_EINVAL, "'pad'");
    ck_assert_del_err(del_image_crop(wrong, s, 0, 0), DEL_EINVAL, "[h, w, 3]");
    del_tensor_free(crop);
    del_tensor_free(s);
    del_tensor_free(same);
    del_tensor_free(wrong);
    del_tensor_free(f);
    del_tensor_free(two);
    del_tensor_free(flat);
}
END_TEST

START_TEST(test_out_of_range_parameters_are_rejected)
{
    del_tensor *s = u8_image(6, 7, 3), *d = u8_image(6, 7, 3);
    ck_assert_del_err(del_image_brightness_add(d, s, 256), DEL_EINVAL, "'delta'");
    ck_assert_del_err(del_image_brightness(d, s, -0.5f), DEL_EINVAL, "'factor'");
    ck_assert_del_err(del_image_contrast(d, s, NAN), DEL_EINVAL, "'factor'");
    ck_assert_del_err(del_image_color(d, s, INFINITY), DEL_EINVAL, "'factor'");
    ck_assert_del_err(del_image_sharpness(d, s, -1.0f), DEL_EINVAL, "'factor'");
    ck_assert_del_err(del_image_posterize(d, s, 9), DEL_EINVAL, "'bits' must be in 0..8");
    ck_assert_del_err(del_image_solarize(d, s, NAN), DEL_EINVAL, "'threshold'");
    ck_assert_del_err(del_image_cutout(d, s, 1, 1, -2, 0), DEL_EINVAL, "'size'");
    ck_assert_del_err(del_image_cutout(d, s, 1, 1, 2, 256), DEL_EINVAL, "'fill' must be in 0..255");
    ck_assert_del_err(del_image_rotate(d, s, NAN, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "'degrees'");
    ck_assert_del_err(del_image_rotate(d, s, 10.0f, (del_interp)7, 0), DEL_EINVAL, "'interp'");
    ck_assert_del_err(del_image_shear_x(d, s, 1e9f, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "'m'");
    ck_assert_del_err(del_image_translate_y(d, s, 3, -1), DEL_EINVAL, "'fill'");
    const float singular[6] = {1, 2, 0, 2, 4, 0}, nan6[6] = {1, 0, NAN, 0, 1, 0};
    ck_assert_del_err(del_image_affine(d, s, singular, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "invertible");
    ck_assert_del_err(del_image_affine(d, s, nan6, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "'m[2]'");
    ck_assert_del_err(del_image_affine(d, s, NULL, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "'m'");
    const float zero9[9] = {0};
    ck_assert_del_err(del_image_perspective(d, s, zero9, DEL_INTERP_BILINEAR, 0), DEL_EINVAL, "invertible");
    float m[9];
    const float line[6] = {0, 0, 1, 1, 2, 2}, ok[6] = {0, 0, 1, 0, 0, 1};
    ck_assert_del_err(del_affine_from_points(m, line, ok), DEL_EINVAL, "collinear");
    ck_assert_del_err(del_affine_from_points(NULL, ok, ok), DEL_EINVAL, "'m_out'");
    ck_assert_del_err(del_affine_from_points(m, ok, NULL), DEL_EINVAL, "'dst_pts'");
    const float quad_line[8] = {0, 0, 1, 1, 2, 2, 0, 5}, quad[8] = {0, 0, 1, 0, 1, 1, 0, 1};
    ck_assert_del_err(del_perspective_from_points(m, quad_line, quad), DEL_EINVAL, "degenerate");
    del_tensor_free(s);
    del_tensor_free(d);
}
END_TEST

START_TEST(test_aliasing_rules)
{
    uint8_t buf[4 * 4 * 3] = {0};
    del_tensor *a = NULL, *b = NULL, *shifted = NULL;
    const int64_t shape[3] = {4, 4, 3}, small[3] = {3, 4, 3};
    ck_assert_del_ok(del_tensor_wrap(&a, DEL_DTYPE_U8, 3, shape, buf));
    ck_assert_del_ok(del_tensor_wrap(&b, DEL_DTYPE_U8, 3, shape, buf));
    ck_assert_del_ok(del_tensor_wrap(&shifted, DEL_DTYPE_U8, 3, small, buf + 12));
    /* Point ops work in place, through one tensor or two over one buffer. */
    ck_assert_del_ok(del_image_brightness_add(a, b, 5));
    ck_assert_uint_eq(buf[0], 5);
    ck_assert_del_ok(del_image_cutout(a, a, 0, 0, 2, 9));
    ck_assert_uint_eq(buf[0], 9);
    ck_assert_del_err(del_image_flip_h(a, b), DEL_EINVAL, "must not share memory");
    ck_assert_del_err(del_image_rotate(a, a, 10.0f, DEL_INTERP_NEAREST, 0), DEL_EINVAL, "must not share memory");
    ck_assert_del_err(del_image_sharpness(a, a, 1.0f), DEL_EINVAL, "must not share memory");
    ck_assert_del_err(del_image_crop(shifted, a, 0, 0), DEL_EINVAL, "must not share memory");
    del_tensor_free(a);
    del_tensor_free(b);
    del_tensor_free(shifted);
}
END_TEST

START_TEST(test_every_op_handles_one_pixel_images)
{
    for (int c = 1; c <= 3; c += 2) {
        const uint8_t px[3] = {200, 10, 90};
        del_tensor *s = image_from(px, 1, 1, c), *d = u8_image(1, 1, c);
        ck_assert_del_ok(del_image_autocontrast(d, s));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_equalize(d, s));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_sharpness(d, s, 1.7f));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_rotate(d, s, 33.0f, DEL_INTERP_BILINEAR, 0));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_shear_x(d, s, 0.3f, DEL_INTERP_BILINEAR, 0));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_rotate90(d, s));
        expect_pixels(d, px, (size_t)c);
        ck_assert_del_ok(del_image_contrast(d, s, 0.5f));
        ck_assert_del_ok(del_image_color(d, s, 0.5f));
        const float m[6] = {1, 0, 0, 0, 1, 0};
        ck_assert_del_ok(del_image_affine(d, s, m, DEL_INTERP_BILINEAR, 0));
        expect_pixels(d, px, (size_t)c);
        del_tensor_free(s);
        del_tensor_free(d);
    }
}
END_TEST

static Suite *augment_ops_suite(void)
{
    Suite *s = suite_create("augment_ops");
    TCase *hand = tcase_create("hand");
    tcase_add_test(hand, test_brightness_add_saturates_in_place);
    tcase_add_test(hand, test_posterize_solarize_and_brightness_by_hand);
    tcase_add_test(hand, test_autocontrast_and_equalize_by_hand);
    tcase_add_test(hand, test_equalize_two_level_image_by_hand);
    tcase_add_test(hand, test_quarter_turns_by_hand);
    tcase_add_test(hand, test_rotate_by_90_on_square_is_the_quarter_turn);
    tcase_add_test(hand, test_translate_shifts_and_fills);
    tcase_add_test(hand, test_pad_crop_and_cutout_by_hand);
    tcase_add_test(hand, test_sharpness_leaves_borders_and_tiny_images_unchanged);
    tcase_add_test(hand, test_color_leaves_grey_images_and_grey_pixels_unchanged);
    tcase_add_test(hand, test_affine_identity_and_integer_shift_are_exact);
    tcase_add_test(hand, test_points_helpers_by_hand);
    suite_add_tcase(s, hand);
    TCase *table = tcase_create("table");
    tcase_add_test(table, test_op_table_lists_randaugment_ops_in_torchvision_order);
    tcase_add_test(table, test_op_table_entries_call_the_ops);
    suite_add_tcase(s, table);
    TCase *args = tcase_create("args");
    tcase_add_test(args, test_wrong_shapes_and_types_are_rejected_with_the_expected_shape);
    tcase_add_test(args, test_out_of_range_parameters_are_rejected);
    tcase_add_test(args, test_aliasing_rules);
    tcase_add_test(args, test_every_op_handles_one_pixel_images);
    suite_add_tcase(s, args);
    return s;
}

int main(void)
{
    return test_run_suite(augment_ops_suite());
}
