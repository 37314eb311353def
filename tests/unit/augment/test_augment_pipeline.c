/* Augmentation pipelines: RandAugment's and crop/flip's draws, determinism across thread
 * counts, CutMix / MixUp against hand computations, the Beta sampler, and
 * argument errors. */
#include <math.h>

#include "augment/augment_internal.h"
#include "testutil.h"

/* ---- helpers ---- */

static del_dataset *make_dataset(int n, int h, int w, int c, int random_pixels)
{
    uint8_t *px = malloc((size_t)n * (size_t)h * (size_t)w * (size_t)c);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    uint32_t x = 12345;
    for (int i = 0; i < n; i++) {
        labels[i] = i % 4;
        for (int k = 0; k < h * w * c; k++) {
            x = x * 1103515245u + 12345u;
            px[(size_t)i * (size_t)(h * w * c) + (size_t)k] = random_pixels ? (uint8_t)(x >> 24) : (uint8_t)(10 * (i + 1));
        }
    }
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, n, h, w, c));
    free(px);
    free(labels);
    return ds;
}

static del_tensor *f32_tensor(int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    const int64_t shape[4] = {a, b, c, d};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, ndim, shape));
    return t;
}

static const float MEAN0[3] = {0, 0, 0}, STD1[3] = {1, 1, 1};

/* ---- RandAugment ---- */

/* torchvision 0.14's bin 9 of 31 on a 32 x 32 image, from its
 * _augmentation_space printed by Python (torch.linspace in float32):
 * shear 0.0900000036, translate int(4.35045...) = 4, rotate 9,
 * enhance 1 +- 0.269999981, posterize 8 - round(9 / 7.5) = 7,
 * solarize 255 - 9 * 8.5 = 178.5; identity/autocontrast/equalize 0. */
static float expected_bin9(int op, int negative)
{
    const float s = negative ? -1.0f : 1.0f;
    switch (op) {
    case 1:
    case 2: return s * 0.0900000036f;
    case 3:
    case 4: return s * 4.0f;
    case 5: return s * 9.0f;
    case 6:
    case 7:
    case 8:
    case 9: return (float)(1.0 + (double)(s * 0.269999981f));
    case 10: return 7.0f;
    case 11: return 178.5f;
    default: return 0.0f;
    }
}

START_TEST(test_randaugment_draws_op_then_sign_with_torchvision_magnitudes)
{
    static const int is_signed[14] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        del_rng r, ref;
        del_rng_seed(&r, seed);
        del_rng_seed(&ref, seed);
        del_ra_choice ch[3];
        del_randaugment_draw(&r, 3, 9, 32, 32, ch);
        for (int k = 0; k < 3; k++) {
            int op = (int)del_rng_below(&ref, 14);
            int neg = is_signed[op] ? (int)del_rng_below(&ref, 2) : 0;
            ck_assert_int_eq(ch[k].op, op);
            ck_assert_msg(ch[k].value == expected_bin9(op, neg), "seed %d op %d: value %.9g, expected %.9g",
                          (int)seed, op, ch[k].value, expected_bin9(op, neg));
        }
        /* Both streams consumed the same number of draws. */
        ck_assert(del_rng_u64(&r) == del_rng_u64(&ref));
    }
}
END_TEST

START_TEST(test_randaugment_chooses_each_of_the_14_ops_uniformly)
{
    int count[14] = {0};
    del_rng r;
    del_rng_seed(&r, 7);
    for (int i = 0; i < 7000; i++) {
        del_ra_choice ch[2];
        del_randaugment_draw(&r, 2, 9, 28, 28, ch);
        count[ch[0].op]++;
        count[ch[1].op]++;
    }
    /* Expected 1000 each; 5 sigma is about 150. */
    for (int k = 0; k < 14; k++)
        ck_assert_msg(count[k] > 850 && count[k] < 1150, "op %d chosen %d times of 14000", k, count[k]);
}
END_TEST

START_TEST(test_randaugment_extreme_bins_match_torchvision_ranges)
{
    /* Bin 30: shear 0.3, translate 150/331 * 331 = 150, rotate 30,
     * posterize 4, solarize 0; bin 0: enhance factor exactly 1. */
    ck_assert(del_randaugment_value(1, 30, 0, 331, 331) == 0.300000012f);
    ck_assert(del_randaugment_value(3, 30, 1, 331, 331) == -150.0f);
    ck_assert(del_randaugment_value(5, 30, 1, 10, 10) == -30.0f);
    ck_assert(del_randaugment_value(10, 30, 0, 10, 10) == 4.0f);
    ck_assert(del_randaugment_value(11, 30, 0, 10, 10) == 0.0f);
    ck_assert(del_randaugment_value(6, 0, 1, 10, 10) == 1.0f);
    /* posterize is unsigned: negate has no effect. */
    ck_assert(del_randaugment_value(10, 9, 1, 10, 10) == 7.0f);
}
END_TEST

START_TEST(test_trivialaugment_draws_bins_over_the_wide_ranges)
{
    del_rng r;
    del_rng_seed(&r, 3);
    int seen_rotate_big = 0;
    for (int i = 0; i < 5000; i++) {
        del_ra_choice ch;
        del_trivialaugment_draw(&r, &ch);
        ck_assert(ch.op >= 0 && ch.op < 14);
        if (ch.op == 5) {
            ck_assert(fabsf(ch.value) <= 135.0f);
            seen_rotate_big |= fabsf(ch.value) > 30.0f;
        }
        if (ch.op == 10)
            ck_assert(ch.value >= 2.0f && ch.value <= 8.0f);
    }
    ck_assert(seen_rotate_big);
}
END_TEST

/* ---- del_augment_image's buffers ---- */

/* RandAugment's result is its drawn ops applied in turn, each into a new
 * tensor: whatever buffers the pipeline picks (in place, straight into
 * dst, identity skipped), and with a crop before it or CutMix after. */
START_TEST(test_randaugment_image_equals_its_drawn_ops_applied_in_turn)
{
    const del_aug_op *table = del_aug_op_table(NULL);
    const int64_t shape[3] = {9, 9, 3};
    del_tensor *src = NULL, *dst = NULL, *want[2] = {NULL, NULL};
    ck_assert_del_ok(del_tensor_new(&src, DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_new(&dst, DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_new(&want[0], DEL_DTYPE_U8, 3, shape));
    ck_assert_del_ok(del_tensor_new(&want[1], DEL_DTYPE_U8, 3, shape));
    uint8_t *px = del_tensor_data(src);
    for (int i = 0; i < 243; i++)
        px[i] = (uint8_t)(i * 37 % 251);
    for (int variant = 0; variant < 3; variant++) {
        del_augment *a = NULL;
        ck_assert_del_ok(del_augment_new(&a));
        ck_assert_del_ok(del_augment_set_seed(a, 11));
        if (variant == 1) /* no padding, crop to the same size: the image is unchanged, but now a buffer */
            ck_assert_del_ok(del_augment_add_random_crop(a, 9, 9, 0, 0));
        ck_assert_del_ok(del_augment_add_randaugment(a, 3, 12));
        if (variant == 2)
            ck_assert_del_ok(del_augment_add_cutmix(a, 1.0f, 1.0f));
        for (int64_t index = 0; index < 300; index++) {
            ck_assert_del_ok(del_augment_image(a, dst, src, 4, index));
            del_rng r;
            del_rng_seed_stream(&r, 11, 4, (uint64_t)index);
            if (variant == 1) { /* the crop's two draws */
                ck_assert_uint_eq(del_rng_below(&r, 1), 0);
                ck_assert_uint_eq(del_rng_below(&r, 1), 0);
            }
            del_ra_choice ch[3];
            del_randaugment_draw(&r, 3, 12, 9, 9, ch);
            del_tensor *cur = src;
            for (int k = 0; k < 3; k++) {
                ck_assert_del_ok(table[ch[k].op].fn(want[k & 1], cur, ch[k].value, DEL_INTERP_NEAREST, 0));
                cur = want[k & 1];
            }
            ck_assert_msg(memcmp(del_tensor_data(dst), del_tensor_data(cur), 243) == 0,
                          "variant %d, index %lld: ops %d %d %d", variant, (long long)index, ch[0].op, ch[1].op,
                          ch[2].op);
        }
        del_augment_free(a);
    }
    del_tensor_free(src);
    del_tensor_free(dst);
    del_tensor_free(want[0]);
    del_tensor_free(want[1]);
}
END_TEST

/* ---- determinism ---- */

static del_augment *std_pipeline(uint64_t seed, int with_batch_steps)
{
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_set_seed(a, seed));
    ck_assert_del_ok(del_augment_add_random_crop(a, 10, 10, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(a, 0.5f));
    ck_assert_del_ok(del_augment_add_randaugment(a, 2, 9));
    ck_assert_del_ok(del_augment_add_op(a, "rotate", 0.5f, -20.0f, 20.0f));
    ck_assert_del_ok(del_augment_add_cutout(a, 0.5f, 4, 0));
    if (with_batch_steps) {
        ck_assert_del_ok(del_augment_add_cutmix(a, 0.5f, 1.0f));
        ck_assert_del_ok(del_augment_add_mixup(a, 0.5f, 0.4f));
    }
    return a;
}

/* ---- random crop + flip draws (FMNIST-1k's std aug) ---- */

/* The crop offset (oy, ox in 0..4) and flip of image `index` in `epoch`,
 * read back from two images whose pixels hold their row and column + 1. */
static int crop_flip_code(del_augment *aug, const uint8_t *rows, const uint8_t *cols, int epoch, int index)
{
    const int64_t shape[3] = {28, 28, 1};
    uint8_t out[28 * 28];
    del_tensor *src = NULL, *dst = NULL;
    ck_assert_del_ok(del_tensor_wrap(&dst, DEL_DTYPE_U8, 3, shape, out));
    ck_assert_del_ok(del_tensor_wrap(&src, DEL_DTYPE_U8, 3, shape, (void *)rows));
    ck_assert_del_ok(del_augment_image(aug, dst, src, (uint64_t)epoch, index));
    int oy = out[2 * 28 + 2] - 1; /* output (2, 2) is padded row oy + 2, source row oy */
    del_tensor_free(src);
    ck_assert_del_ok(del_tensor_wrap(&src, DEL_DTYPE_U8, 3, shape, (void *)cols));
    ck_assert_del_ok(del_augment_image(aug, dst, src, (uint64_t)epoch, index));
    int v = out[2 * 28 + 2], flip = v >= 24, ox = flip ? v - 24 : v - 1; /* flipped: source column ox + 23 */
    del_tensor_free(src);
    del_tensor_free(dst);
    ck_assert_msg(oy >= 0 && oy <= 4 && ox >= 0 && ox <= 4, "undecodable crop: %d %d (%d)", oy, ox, v);
    return (oy * 5 + ox) * 2 + flip;
}

START_TEST(test_crop_and_flip_draws_are_uniform_and_fresh_every_epoch)
{
    /* pad 2, crop 28 of 28, flip p 0.5: 50 equally likely outcomes per
     * (image, epoch), drawn afresh in every epoch and for every image. */
    enum { N = 200, E = 25, K = 50 };
    uint8_t rows[28 * 28], cols[28 * 28];
    for (int r = 0; r < 28; r++)
        for (int c = 0; c < 28; c++) {
            rows[r * 28 + c] = (uint8_t)(r + 1);
            cols[r * 28 + c] = (uint8_t)(c + 1);
        }
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, 5));
    ck_assert_del_ok(del_augment_add_random_crop(aug, 28, 28, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    static int code[N][E];
    int hist[K] = {0}, repeat_epoch = 0, repeat_image = 0;
    for (int i = 0; i < N; i++)
        for (int e = 0; e < E; e++) {
            code[i][e] = crop_flip_code(aug, rows, cols, e, i);
            hist[code[i][e]]++;
            repeat_epoch += e > 0 && code[i][e] == code[i][e - 1];
            repeat_image += i > 0 && code[i][e] == code[i - 1][e];
        }
    /* chi-square with 49 degrees of freedom: mean 49, sd 9.9; 99.99 % below 95 */
    double expect = (double)N * E / K, chi2 = 0.0;
    for (int k = 0; k < K; k++)
        chi2 += (hist[k] - expect) * (hist[k] - expect) / expect;
    ck_assert_msg(chi2 < 95.0, "crop/flip outcomes not uniform: chi2 = %.1f", chi2);
    /* the same outcome as the epoch before (or the image before): 1 in 50,
     * 96 of 4,800 pairs expected, sd 9.7 */
    ck_assert_msg(repeat_epoch > 50 && repeat_epoch < 145, "same crop/flip as last epoch %d times of %d", repeat_epoch,
                  N * (E - 1));
    ck_assert_msg(repeat_image > 50 && repeat_image < 145, "same crop/flip as the image before %d times of %d",
                  repeat_image, (N - 1) * E);
    del_augment_free(aug);
}
END_TEST

START_TEST(test_batches_are_identical_with_1_2_and_4_threads)
{
    del_dataset *ds = make_dataset(24, 12, 12, 3, 1);
    int64_t idx[16];
    for (int i = 0; i < 16; i++)
        idx[i] = (i * 7) % 24;
    const size_t nx = 16 * 3 * 10 * 10, ny = 16 * 4;
    float *ref_x = malloc(nx * sizeof(float)), *ref_y = malloc(ny * sizeof(float));
    const int threads[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        ck_assert_del_ok(del_set_num_threads(threads[t]));
        del_augment *a = std_pipeline(99, 1);
        del_tensor *x = f32_tensor(4, 16, 3, 10, 10), *y = f32_tensor(2, 16, 4, 0, 0);
        for (uint64_t b = 0; b < 4; b++) {
            ck_assert_del_ok(del_augment_batch(a, ds, idx, 16, 3, b, MEAN0, STD1, x, y, 4));
            if (b != 3)
                continue;
            if (t == 0) {
                memcpy(ref_x, del_tensor_data(x), nx * sizeof(float));
                memcpy(ref_y, del_tensor_data(y), ny * sizeof(float));
            } else {
                ck_assert_msg(memcmp(ref_x, del_tensor_data(x), nx * sizeof(float)) == 0,
                              "images differ with %d threads", threads[t]);
                ck_assert_msg(memcmp(ref_y, del_tensor_data(y), ny * sizeof(float)) == 0,
                              "labels differ with %d threads", threads[t]);
            }
        }
        del_tensor_free(x);
        del_tensor_free(y);
        del_augment_free(a);
    }
    ck_assert_del_ok(del_set_num_threads(2));
    /* Another seed gives another batch. */
    del_augment *a = std_pipeline(100, 1);
    del_tensor *x = f32_tensor(4, 16, 3, 10, 10);
    ck_assert_del_ok(del_augment_batch(a, ds, idx, 16, 3, 3, MEAN0, STD1, x, NULL, 0));
    ck_assert(memcmp(ref_x, del_tensor_data(x), nx * sizeof(float)) != 0);
    del_tensor_free(x);
    del_augment_free(a);
    free(ref_x);
    free(ref_y);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_batch_image_equals_single_image_call_for_its_index)
{
    del_dataset *ds = make_dataset(8, 12, 12, 3, 1);
    del_augment *a = std_pipeline(5, 0);
    int64_t idx[3] = {6, 1, 6};
    del_tensor *x = f32_tensor(4, 3, 3, 10, 10);
    ck_assert_del_ok(del_augment_batch(a, ds, idx, 3, 2, 0, MEAN0, STD1, x, NULL, 0));
    const int64_t ishape[3] = {12, 12, 3}, oshape[3] = {10, 10, 3};
    del_tensor *src = NULL, *dst = NULL;
    ck_assert_del_ok(del_tensor_new(&src, DEL_DTYPE_U8, 3, ishape));
    ck_assert_del_ok(del_tensor_new(&dst, DEL_DTYPE_U8, 3, oshape));
    const float *xd = del_tensor_data(x);
    for (int i = 0; i < 3; i++) {
        ck_assert_del_ok(del_tensor_copy_from(src, del_dataset_images(ds) + idx[i] * 432, 432));
        ck_assert_del_ok(del_augment_image(a, dst, src, 2, idx[i]));
        const uint8_t *o = del_tensor_data(dst);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 100; p++)
                ck_assert(xd[i * 300 + c * 100 + p] == (float)o[p * 3 + c] / 255.0f);
    }
    /* The same image in the same epoch gets the same augmentation. */
    ck_assert(memcmp(xd, xd + 600, 300 * sizeof(float)) == 0);
    /* Another epoch, another augmentation. */
    ck_assert_del_ok(del_augment_batch(a, ds, idx, 3, 3, 0, MEAN0, STD1, x, NULL, 0));
    const uint8_t *o = del_tensor_data(dst);
    int same = 1;
    for (int p = 0; p < 300 && same; p++)
        same = xd[600 + (p % 3) * 100 + p / 3] == (float)o[p] / 255.0f;
    ck_assert(!same);
    del_tensor_free(src);
    del_tensor_free(dst);
    del_tensor_free(x);
    del_augment_free(a);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_op_with_probability_zero_or_one)
{
    del_dataset *ds = make_dataset(4, 6, 5, 1, 1);
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_op(a, "flip_v", 0.0f, 0, 0));
    ck_assert_del_ok(del_augment_add_op(a, "brightness_add", 1.0f, 7, 7));
    int64_t idx[2] = {0, 3};
    del_tensor *x = f32_tensor(4, 2, 1, 6, 5);
    ck_assert_del_ok(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x, NULL, 0));
    const float *xd = del_tensor_data(x);
    const uint8_t *img = del_dataset_images(ds);
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 30; p++) {
            int v = img[idx[i] * 30 + p] + 7;
            ck_assert(xd[i * 30 + p] == (float)(v > 255 ? 255 : v) / 255.0f);
        }
    del_tensor_free(x);
    del_augment_free(a);
    del_dataset_free(ds);
}
END_TEST

/* ---- CutMix and MixUp ---- */

/* Constant images of value 10 (i + 1) and labels i % 4: which image a
 * pixel came from is readable from its value. */
START_TEST(test_cutmix_lambda_equals_pasted_area_and_labels_sum_to_one)
{
    const int n = 4, h = 16, w = 12;
    del_dataset *ds = make_dataset(n, h, w, 1, 0);
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_cutmix(a, 1.0f, 1.0f));
    int64_t idx[4] = {0, 1, 2, 3};
    del_tensor *x = f32_tensor(4, n, 1, h, w), *y = f32_tensor(2, n, 4, 0, 0);
    int partial = 0;
    for (uint64_t b = 0; b < 20; b++) {
        ck_assert_del_ok(del_augment_batch(a, ds, idx, n, 0, b, MEAN0, STD1, x, y, 4));
        const float *xd = del_tensor_data(x), *yd = del_tensor_data(y);
        for (int i = 0; i < n; i++) {
            int j = n - 1 - i, from_partner = 0, ymin = h, ymax = -1, xmin = w, xmax = -1;
            for (int p = 0; p < h * w; p++) {
                float v = xd[i * h * w + p];
                ck_assert(v == (float)(10 * (i + 1)) / 255.0f || v == (float)(10 * (j + 1)) / 255.0f);
                if (v == (float)(10 * (j + 1)) / 255.0f) {
                    from_partner++;
                    ymin = p / w < ymin ? p / w : ymin;
                    ymax = p / w > ymax ? p / w : ymax;
                    xmin = p % w < xmin ? p % w : xmin;
                    xmax = p % w > xmax ? p % w : xmax;
                }
            }
            /* The pasted pixels form one rectangle. */
            if (from_partner)
                ck_assert_int_eq(from_partner, (ymax - ymin + 1) * (xmax - xmin + 1));
            double lam = 1.0 - (double)from_partner / (double)(h * w);
            const float *yi = yd + i * 4;
            ck_assert_msg(fabs(yi[i % 4] - lam) < 1e-6, "batch %d image %d: label weight %.8g, area gives %.8g",
                          (int)b, i, yi[i % 4], lam);
            ck_assert(fabs(yi[j % 4] - (1.0 - lam)) < 1e-6);
            ck_assert(fabs(yi[0] + yi[1] + yi[2] + yi[3] - 1.0) < 1e-6);
            partial |= from_partner > 0 && from_partner < h * w;
        }
    }
    ck_assert(partial);
    del_tensor_free(x);
    del_tensor_free(y);
    del_augment_free(a);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_mixup_pixel_is_lambda_x_plus_one_minus_lambda_partner)
{
    const int n = 3, h = 4, w = 5;
    del_dataset *ds = make_dataset(n, h, w, 1, 0);
    del_augment *a = NULL;
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_mixup(a, 1.0f, 0.4f));
    int64_t idx[3] = {0, 1, 2};
    const float mean[1] = {0.25f}, std[1] = {0.5f};
    del_tensor *x = f32_tensor(4, n, 1, h, w), *y = f32_tensor(2, n, 4, 0, 0);
    ck_assert_del_ok(del_augment_batch(a, ds, idx, n, 1, 1, mean, std, x, y, 4));
    const float *xd = del_tensor_data(x), *yd = del_tensor_data(y);
    /* Image 0 (value 10, label 0) with image 2 (value 30, label 2). */
    float lam = yd[0], rest = yd[2];
    ck_assert(lam > 0.0f && lam < 1.0f);
    ck_assert(fabsf(lam + rest - 1.0f) < 1e-6f);
    float x0 = ((float)10 / 255.0f - 0.25f) / 0.5f, x2 = ((float)30 / 255.0f - 0.25f) / 0.5f;
    for (int p = 0; p < h * w; p++) {
        ck_assert(xd[p] == x0 * lam + x2 * rest);
        ck_assert(xd[2 * h * w + p] == x2 * lam + x0 * rest);
    }
    /* Image 1 is its own partner. */
    float x1 = ((float)20 / 255.0f - 0.25f) / 0.5f;
    ck_assert(fabsf(xd[h * w] - x1) < 1e-6f);
    ck_assert(fabsf(yd[4 + 1] - 1.0f) < 1e-6f);
    del_tensor_free(x);
    del_tensor_free(y);
    del_augment_free(a);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_beta_sampler_mean_and_variance)
{
    const double ab[4][2] = {{1, 1}, {0.5, 0.5}, {2, 5}, {0.2, 1.0}};
    del_rng r;
    del_rng_seed(&r, 11);
    for (int k = 0; k < 4; k++) {
        double a = ab[k][0], b = ab[k][1], sum = 0, sum2 = 0;
        const int draws = 40000;
        for (int i = 0; i < draws; i++) {
            double v = del_rng_beta(&r, a, b);
            ck_assert(v >= 0.0 && v <= 1.0);
            sum += v;
            sum2 += v * v;
        }
        double mean = sum / draws, var = sum2 / draws - mean * mean;
        double want_mean = a / (a + b), want_var = a * b / ((a + b) * (a + b) * (a + b + 1));
        ck_assert_msg(fabs(mean - want_mean) < 0.01, "Beta(%g, %g) mean %.4f, expected %.4f", a, b, mean, want_mean);
        ck_assert_msg(fabs(var - want_var) < 0.01, "Beta(%g, %g) var %.4f, expected %.4f", a, b, var, want_var);
    }
}
END_TEST

START_TEST(test_cutmix_box_follows_timm_rand_bbox)
{
    /* lambda 0.75: ratio 0.5, cut 8 x 6 on 16 x 12; box = centre +- 4, +- 3 clipped. */
    del_rng r, ref;
    for (uint64_t s = 0; s < 50; s++) {
        del_rng_seed(&r, s);
        del_rng_seed(&ref, s);
        int y0, y1, x0, x1;
        del_cutmix_box(&r, 0.75, 16, 12, &y0, &y1, &x0, &x1);
        int cy = (int)del_rng_below(&ref, 16), cx = (int)del_rng_below(&ref, 12);
        ck_assert_int_eq(y0, cy - 4 < 0 ? 0 : cy - 4);
        ck_assert_int_eq(y1, cy + 4 > 16 ? 16 : cy + 4);
        ck_assert_int_eq(x0, cx - 3 < 0 ? 0 : cx - 3);
        ck_assert_int_eq(x1, cx + 3 > 12 ? 12 : cx + 3);
    }
}
END_TEST

/* ---- errors ---- */

START_TEST(test_bad_arguments_give_clear_errors)
{
    del_augment *a = NULL;
    ck_assert_del_err(del_augment_new(NULL), DEL_EINVAL, "out");
    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_err(del_augment_add_op(a, "rotate", 1.5f, 0, 10), DEL_EINVAL, "'p'");
    ck_assert_del_err(del_augment_add_op(a, "rotate", -0.1f, 0, 10), DEL_EINVAL, "[0, 1]");
    ck_assert_del_err(del_augment_add_op(a, "rotate", NAN, 0, 10), DEL_EINVAL, "'p'");
    ck_assert_del_err(del_augment_add_op(a, "rotate", 0.5f, 0, 500), DEL_EINVAL, "-180 <= lo <= hi <= 180");
    ck_assert_del_err(del_augment_add_op(a, "rotate", 0.5f, 10, 0), DEL_EINVAL, "rotate");
    ck_assert_del_err(del_augment_add_op(a, "posterize", 0.5f, 2.5f, 4), DEL_EINVAL, "whole numbers");
    ck_assert_del_err(del_augment_add_op(a, "brightness", 0.5f, -1, 1), DEL_EINVAL, "brightness");
    ck_assert_del_err(del_augment_add_op(a, "twirl", 0.5f, 0, 1), DEL_EINVAL, "unknown op 'twirl'");
    ck_assert_del_err(del_augment_add_op(a, "twirl", 0.5f, 0, 1), DEL_EINVAL, "shear_x, shear_y");
    ck_assert_del_err(del_augment_add_op(a, NULL, 0.5f, 0, 1), DEL_EINVAL, "name");
    ck_assert_del_err(del_augment_add_randaugment(a, 0, 9), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_augment_add_randaugment(a, 2, 31), DEL_EINVAL, "'m'");
    ck_assert_del_err(del_augment_add_cutmix(a, 0.5f, 0.0f), DEL_EINVAL, "'alpha'");
    ck_assert_del_err(del_augment_add_mixup(a, 2.0f, 1.0f), DEL_EINVAL, "'p'");
    ck_assert_del_err(del_augment_add_cutout(a, 0.5f, 0, 0), DEL_EINVAL, "'size'");
    ck_assert_del_err(del_augment_add_random_crop(a, 0, 4, 0, 0), DEL_EINVAL, "size_h");
    ck_assert_del_err(del_augment_add_random_crop(a, 4, 4, -1, 0), DEL_EINVAL, "'pad'");
    ck_assert_del_err(del_augment_set_interp(a, DEL_INTERP_BILINEAR, 300), DEL_EINVAL, "'fill'");
    ck_assert_int_eq(del_augment_num_steps(a), 0);

    /* A crop larger than the padded image fails when an image comes. */
    ck_assert_del_ok(del_augment_add_random_crop(a, 12, 9, 2, 0));
    int oh, ow;
    ck_assert_del_err(del_augment_output_size(a, 7, 7, &oh, &ow), DEL_EINVAL, "larger than the padded image");
    ck_assert_del_ok(del_augment_output_size(a, 8, 8, &oh, &ow));
    ck_assert_int_eq(oh, 12);
    ck_assert_int_eq(ow, 9);
    del_dataset *ds = make_dataset(4, 7, 7, 1, 1);
    int64_t idx[2] = {0, 1};
    del_tensor *x = f32_tensor(4, 2, 1, 12, 9);
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x, NULL, 0), DEL_EINVAL,
                      "larger than the padded image");
    del_augment_free(a);

    ck_assert_del_ok(del_augment_new(&a));
    ck_assert_del_ok(del_augment_add_cutmix(a, 1.0f, 1.0f));
    del_tensor *x7 = f32_tensor(4, 2, 1, 7, 7), *y = f32_tensor(2, 2, 4, 0, 0), *y3 = f32_tensor(2, 3, 4, 0, 0);
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x, NULL, 0), DEL_EINVAL, "'x'");
    int64_t idx3[3] = {0, 1, 9};
    ck_assert_del_err(del_augment_batch(a, ds, idx3, 3, 0, 0, MEAN0, STD1, x7, NULL, 0), DEL_EINVAL, "indices[2]");
    ck_assert_del_err(del_augment_batch(a, ds, idx, 0, 0, 0, MEAN0, STD1, x7, NULL, 0), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x7, y3, 4), DEL_EINVAL, "'soft_labels'");
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x7, y, 3), DEL_EINVAL, "'soft_labels'");
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x7, y, 0), DEL_EINVAL, "'num_classes'");
    const float zero_std[1] = {0};
    ck_assert_del_err(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, zero_std, x7, y, 4), DEL_EINVAL, "std[0]");
    int64_t bad_idx[2] = {0, 4};
    ck_assert_del_err(del_augment_batch(a, ds, bad_idx, 2, 0, 0, MEAN0, STD1, x7, y, 4), DEL_EINVAL, "indices[1]");
    ck_assert_del_ok(del_augment_batch(a, ds, idx, 2, 0, 0, MEAN0, STD1, x7, y, 4));

    /* Unlabeled images cannot get soft labels. */
    uint8_t px[2 * 4] = {0};
    int32_t lab[2] = {1, -1};
    del_dataset *un = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&un, px, lab, 2, 2, 2, 1));
    del_tensor *x2 = f32_tensor(4, 2, 1, 2, 2);
    ck_assert_del_err(del_augment_batch(a, un, idx, 2, 0, 0, MEAN0, STD1, x2, y, 4), DEL_EINVAL, "indices[1]");
    ck_assert_del_ok(del_augment_batch(a, un, idx, 2, 0, 0, MEAN0, STD1, x2, NULL, 0));

    const int64_t s3[3] = {7, 7, 1}, s5[3] = {5, 5, 1};
    del_tensor *src = NULL, *dst = NULL;
    ck_assert_del_ok(del_tensor_new(&src, DEL_DTYPE_U8, 3, s3));
    ck_assert_del_ok(del_tensor_new(&dst, DEL_DTYPE_U8, 3, s5));
    ck_assert_del_err(del_augment_image(a, dst, src, 0, 0), DEL_EINVAL, "'dst'");
    ck_assert_del_err(del_augment_image(a, src, src, 0, 0), DEL_EINVAL, "share memory");
    ck_assert_del_err(del_augment_image(a, dst, src, 0, -1), DEL_EINVAL, "'index'");

    del_tensor_free(src);
    del_tensor_free(dst);
    del_tensor_free(x);
    del_tensor_free(x2);
    del_tensor_free(x7);
    del_tensor_free(y);
    del_tensor_free(y3);
    del_dataset_free(ds);
    del_dataset_free(un);
    del_augment_free(a);
    del_augment_free(NULL);
}
END_TEST

static Suite *augment_pipeline_suite(void)
{
    Suite *s = suite_create("augment_pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_randaugment_draws_op_then_sign_with_torchvision_magnitudes);
    tcase_add_test(tc, test_randaugment_chooses_each_of_the_14_ops_uniformly);
    tcase_add_test(tc, test_randaugment_extreme_bins_match_torchvision_ranges);
    tcase_add_test(tc, test_trivialaugment_draws_bins_over_the_wide_ranges);
    tcase_add_test(tc, test_randaugment_image_equals_its_drawn_ops_applied_in_turn);
    tcase_add_test(tc, test_crop_and_flip_draws_are_uniform_and_fresh_every_epoch);
    tcase_add_test(tc, test_batches_are_identical_with_1_2_and_4_threads);
    tcase_add_test(tc, test_batch_image_equals_single_image_call_for_its_index);
    tcase_add_test(tc, test_op_with_probability_zero_or_one);
    tcase_add_test(tc, test_cutmix_lambda_equals_pasted_area_and_labels_sum_to_one);
    tcase_add_test(tc, test_mixup_pixel_is_lambda_x_plus_one_minus_lambda_partner);
    tcase_add_test(tc, test_beta_sampler_mean_and_variance);
    tcase_add_test(tc, test_cutmix_box_follows_timm_rand_bbox);
    tcase_add_test(tc, test_bad_arguments_give_clear_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(augment_pipeline_suite());
}
