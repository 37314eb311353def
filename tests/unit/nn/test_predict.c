/* del_model_predict: a model's outputs over a whole dataset. Logits
 * against del_model_forward on the same batches in evaluation mode (bit
 * for bit), probabilities against softmax values worked out by hand (the
 * SPEC's test vectors), the thread count, unlabeled images, heads, the
 * training flag, and every error. */
#include <math.h>

#include "testutil.h"

/* Conv layers of 16 channels (Winograd), batchnorm, a linear layer big
 * enough that its gemm is split into blocks: the paths whose rounding
 * depends on an image's position in its batch. */
#define CNN_SPEC "input 1 12 12; conv2d 16 k=3 p=1 bias=0; batchnorm; relu; conv2d 16 k=3 p=1 bias=0; batchnorm; " \
                 "relu; maxpool 2; flatten; linear 64; relu; dropout 0.5; linear 10"
#define CNN_SIDE 12

static const float MEAN1[1] = {0.25f}, STD1[1] = {0.5f};

/* The test's own random numbers (xorshift64*), independent of the library. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* n random 1-channel side x side images; labels cycle through 0..9 with
 * every third image unlabeled (-1), or all -1 if !labeled. */
static del_dataset *random_dataset(int64_t n, int side, int labeled)
{
    size_t bytes = (size_t)n * (size_t)side * (size_t)side;
    uint8_t *images = malloc(bytes);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    ck_assert_ptr_nonnull(images);
    ck_assert_ptr_nonnull(labels);
    for (size_t i = 0; i < bytes; i++)
        images[i] = (uint8_t)(next_random() >> 56);
    for (int64_t i = 0; i < n; i++)
        labels[i] = labeled && i % 3 != 2 ? (int32_t)(i % 10) : -1;
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, images, labels, n, side, side, 1));
    free(labels);
    free(images);
    return ds;
}

/* CNN_SPEC with seeded weights and running statistics away from their
 * initial 0 / 1, so that evaluation mode differs from training mode. */
static del_model *cnn(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, CNN_SPEC));
    ck_assert_del_ok(del_model_init(m, 11));
    float *buf = del_model_buffers(m);
    int64_t nb = del_model_num_buffers(m);
    ck_assert_int_gt(nb, 0);
    /* Each batchnorm's buffers are its running means then its variances. */
    for (int64_t i = 0; i < nb; i++)
        buf[i] = (i / 16) % 2 ? 0.5f + (float)(next_random() >> 40) / 16777216.0f
                              : 0.2f * ((float)(next_random() >> 40) / 16777216.0f - 0.5f);
    return m;
}

static float *copy_floats(const void *src, size_t n)
{
    float *p = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* model's eval-mode forward on images idx[0..n-1] of ds (default head). */
static const float *forward_images(del_model *m, const del_dataset *ds, const int64_t *idx, int64_t n)
{
    int64_t shape[4] = {n, 1, del_dataset_height(ds), del_dataset_width(ds)};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    ck_assert_del_ok(del_dataset_batch(ds, idx, n, MEAN1, STD1, x, NULL));
    int was_training = del_model_is_training(m);
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_set_training(m, was_training));
    del_tensor_free(x);
    return del_tensor_data(del_model_output(m));
}

static void assert_rows_equal(const float *a, const float *b, int64_t rows, int64_t k, int64_t first_row)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++)
            ck_assert_msg(memcmp(&a[r * k + j], &b[r * k + j], sizeof(float)) == 0,
                          "image %lld output %lld: %.9g vs %.9g", (long long)(first_row + r), (long long)j,
                          (double)a[r * k + j], (double)b[r * k + j]);
}

/* Every row is the eval-mode forward of its batch of B = predict_batch
 * images, the last batch filled up with copies of the last image. */
START_TEST(test_logits_equal_eval_forward_of_the_same_batches)
{
    del_model *m = cnn();
    const int b = del_model_predict_batch(m);
    ck_assert_int_eq(b, 512);
    const int64_t n = b + 37;
    del_dataset *ds = random_dataset(n, CNN_SIDE, 1);
    del_tensor *y = NULL;
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_tensor_ndim(y), 2);
    ck_assert_int_eq(del_tensor_dim(y, 0), n);
    ck_assert_int_eq(del_tensor_dim(y, 1), 10);
    const float *got = del_tensor_data(y);

    int64_t *idx = malloc((size_t)b * sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    for (int i = 0; i < b; i++)
        idx[i] = i;
    assert_rows_equal(got, forward_images(m, ds, idx, b), b, 10, 0);
    for (int i = 0; i < b; i++)
        idx[i] = i < 37 ? b + i : n - 1;
    assert_rows_equal(got + (size_t)b * 10, forward_images(m, ds, idx, b), 37, 10, b);

    free(idx);
    del_tensor_free(y);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* An image's row depends on its index mod B only: a dataset's prefix gets
 * the same rows as the whole, though its last batch holds fewer images. */
START_TEST(test_rows_do_not_depend_on_the_dataset_size)
{
    del_model *m = cnn();
    del_dataset *ds = random_dataset(600, CNN_SIDE, 1), *prefix = NULL;
    int64_t idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    ck_assert_del_ok(del_dataset_subset(&prefix, ds, idx, 100));
    del_tensor *all = NULL, *part = NULL;
    ck_assert_del_ok(del_model_predict(&all, m, NULL, ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_del_ok(del_model_predict(&part, m, NULL, prefix, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_tensor_dim(part, 0), 100);
    assert_rows_equal(del_tensor_data(part), del_tensor_data(all), 100, 10, 0);
    del_tensor_free(part);
    del_tensor_free(all);
    del_dataset_free(prefix);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* flatten; linear 2 on 1x1x2 images with mean 0, std 1, so x = v / 255:
 * W = [[2, 1], [4, -1]], b = (3, 6). Image (255, 0) gives the logits
 * (5, 10), image (0, 255) gives (4, 5), image (0, 0) gives (3, 6). */
static del_model *linear_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 1 2; flatten; linear 2"));
    int64_t off = 0, count = 0;
    ck_assert_del_ok(del_model_layer_params(m, 1, &off, &count));
    ck_assert_int_eq(count, 6);
    const float wb[6] = {2, 1, 4, -1, 3, 6};
    memcpy(del_model_params(m) + off, wb, sizeof wb);
    return m;
}

static del_dataset *linear_dataset(void)
{
    const uint8_t px[6] = {255, 0, 0, 255, 0, 0};
    const int32_t labels[3] = {1, -1, 0};
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 3, 1, 2, 1));
    return ds;
}

static const float ZERO1[1] = {0.0f}, ONE1[1] = {1.0f};

START_TEST(test_logits_of_a_hand_set_linear_model)
{
    del_model *m = linear_model();
    del_dataset *ds = linear_dataset();
    del_tensor *y = NULL;
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 1.0f, 0));
    const float *z = del_tensor_data(y);
    const float want[6] = {5, 10, 4, 5, 3, 6};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(z[i], want[i]);
    del_tensor_free(y);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* softmax(a, b) = (1 / (1 + e^(b-a)/T), ...): SPEC softmax(5, 10) =
 * (0.0067, 0.9933), softmax_T=100(5, 10) = (0.4875, 0.5125); to more
 * digits 1/(1+e^5) = 0.0066928509, 1/(1+e^0.05) = 0.4875026039,
 * 1/(1+e) = 0.2689414214, 1/(1+e^0.01) = 0.4975000083,
 * 1/(1+e^3) = 0.0474258732, 1/(1+e^0.03) = 0.4925005400. */
START_TEST(test_softmax_with_temperature_matches_the_spec_vectors)
{
    del_model *m = linear_model();
    del_dataset *ds = linear_dataset();
    const struct {
        float t;
        double p0[3];
    } cases[] = {
        {1.0f, {0.0066928509, 0.2689414214, 0.0474258732}},
        {100.0f, {0.4875026039, 0.4975000083, 0.4925005400}},
    };
    for (int c = 0; c < 2; c++) {
        del_tensor *y = NULL;
        ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, cases[c].t, 1));
        const float *p = del_tensor_data(y);
        for (int r = 0; r < 3; r++) {
            ck_assert_double_eq_tol(p[2 * r], cases[c].p0[r], 1e-7);
            ck_assert_double_eq_tol(p[2 * r + 1], 1.0 - cases[c].p0[r], 1e-7);
        }
        del_tensor_free(y);
    }
    /* The SPEC's four-digit values. */
    del_tensor *y = NULL;
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 1.0f, 1));
    ck_assert_double_eq_tol(((float *)del_tensor_data(y))[0], 0.0067, 5e-5);
    ck_assert_double_eq_tol(((float *)del_tensor_data(y))[1], 0.9933, 5e-5);
    del_tensor_free(y);
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 100.0f, 1));
    ck_assert_double_eq_tol(((float *)del_tensor_data(y))[0], 0.4875, 5e-5);
    ck_assert_double_eq_tol(((float *)del_tensor_data(y))[1], 0.5125, 5e-5);
    del_tensor_free(y);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

START_TEST(test_softmax_rows_sum_to_one)
{
    del_model *m = cnn();
    del_dataset *ds = random_dataset(300, CNN_SIDE, 1);
    const float temps[3] = {0.5f, 1.0f, 4.0f};
    for (int t = 0; t < 3; t++) {
        del_tensor *y = NULL;
        ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, MEAN1, STD1, temps[t], 1));
        const float *p = del_tensor_data(y);
        for (int r = 0; r < 300; r++) {
            double sum = 0.0;
            for (int j = 0; j < 10; j++) {
                ck_assert(p[r * 10 + j] >= 0.0f && p[r * 10 + j] <= 1.0f);
                sum += p[r * 10 + j];
            }
            ck_assert_double_eq_tol(sum, 1.0, 1e-5);
        }
        del_tensor_free(y);
    }
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

START_TEST(test_thread_counts_1_2_3_give_identical_bits)
{
    const int saved = del_get_num_threads();
    del_model *m = cnn();
    del_dataset *ds = random_dataset(700, CNN_SIDE, 1);
    float *first = NULL;
    for (int t = 1; t <= 3; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        del_tensor *y = NULL;
        ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, MEAN1, STD1, 2.0f, 1));
        if (!first)
            first = copy_floats(del_tensor_data(y), 7000);
        else
            assert_rows_equal(del_tensor_data(y), first, 700, 10, 0);
        del_tensor_free(y);
    }
    ck_assert_del_ok(del_set_num_threads(saved));
    free(first);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* Labels play no part: every image gets its row, unlabeled or not, the
 * same as in a dataset without any labels. */
START_TEST(test_unlabeled_images_are_included)
{
    del_model *m = cnn();
    const uint64_t seed = rng_state;
    del_dataset *mixed = random_dataset(40, CNN_SIDE, 1);
    rng_state = seed;
    del_dataset *none = random_dataset(40, CNN_SIDE, 0);
    ck_assert_int_eq(del_dataset_labels(mixed)[2], -1);
    ck_assert_int_eq(del_dataset_labels(mixed)[0], 0);
    del_tensor *a = NULL, *b = NULL;
    ck_assert_del_ok(del_model_predict(&a, m, NULL, mixed, MEAN1, STD1, 1.0f, 0));
    ck_assert_del_ok(del_model_predict(&b, m, NULL, none, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_tensor_dim(a, 0), 40);
    assert_rows_equal(del_tensor_data(a), del_tensor_data(b), 40, 10, 0);
    del_tensor_free(a);
    del_tensor_free(b);
    del_dataset_free(mixed);
    del_dataset_free(none);
    del_model_free(m);
}
END_TEST

/* From training mode: the outputs are evaluation mode's (no dropout, the
 * running statistics), the statistics are not updated, and the model is
 * back in training mode afterwards (also after an error). */
START_TEST(test_training_flag_restored_and_eval_mode_used)
{
    del_model *m = cnn();
    del_dataset *ds = random_dataset(50, CNN_SIDE, 1);
    const int64_t nb = del_model_num_buffers(m);
    float *stats = copy_floats(del_model_buffers(m), (size_t)nb);
    ck_assert_int_eq(del_model_is_training(m), 1);
    del_tensor *y = NULL;
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_model_is_training(m), 1);
    ck_assert_mem_eq(del_model_buffers(m), stats, (size_t)nb * sizeof(float));

    ck_assert_del_ok(del_model_set_training(m, 0));
    del_tensor *again = NULL;
    ck_assert_del_ok(del_model_predict(&again, m, NULL, ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_model_is_training(m), 0);
    assert_rows_equal(del_tensor_data(y), del_tensor_data(again), 50, 10, 0);

    ck_assert_del_ok(del_model_set_training(m, 1));
    del_model_params(m)[del_model_num_params(m) - 1] = NAN;
    del_tensor *bad = y;
    ck_assert_del_err(del_model_predict(&bad, m, NULL, ds, MEAN1, STD1, 1.0f, 0), DEL_ENUMERIC, "image 0");
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(del_model_is_training(m), 1);

    free(stats);
    del_tensor_free(again);
    del_tensor_free(y);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* head names the head whose outputs come back; NULL is the first head. */
START_TEST(test_head_selects_that_heads_outputs)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 6 6; conv2d 4 k=3 p=1; relu; flatten"));
    ck_assert_del_ok(del_model_add_head(m, "old", "linear 5"));
    ck_assert_del_ok(del_model_add_head(m, "new", "linear 32; relu; linear 3"));
    ck_assert_del_ok(del_model_init(m, 2));
    del_dataset *ds = random_dataset(20, 6, 1);
    del_tensor *old = NULL, *first = NULL, *new_head = NULL;
    ck_assert_del_ok(del_model_predict(&old, m, "old", ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_del_ok(del_model_predict(&first, m, NULL, ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_del_ok(del_model_predict(&new_head, m, "new", ds, MEAN1, STD1, 1.0f, 0));
    ck_assert_int_eq(del_tensor_dim(old, 1), 5);
    ck_assert_int_eq(del_tensor_dim(new_head, 1), 3);
    assert_rows_equal(del_tensor_data(first), del_tensor_data(old), 20, 5, 0);

    /* The batch of 512 the call ran: 20 images, then image 19 repeated. */
    const int b = del_model_predict_batch(m);
    int64_t *full = malloc((size_t)b * sizeof *full);
    ck_assert_ptr_nonnull(full);
    for (int i = 0; i < b; i++)
        full[i] = i < 20 ? i : 19;
    forward_images(m, ds, full, b);
    assert_rows_equal(del_tensor_data(old), del_tensor_data(del_model_head_output(m, "old")), 20, 5, 0);
    assert_rows_equal(del_tensor_data(new_head), del_tensor_data(del_model_head_output(m, "new")), 20, 3, 0);
    free(full);
    del_tensor_free(old);
    del_tensor_free(first);
    del_tensor_free(new_head);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* Only image 3 overflows: its two inputs times 3e38 add up past FLT_MAX. */
START_TEST(test_non_finite_output_names_the_image)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 1 2; flatten; linear 2"));
    int64_t off = 0, count = 0;
    ck_assert_del_ok(del_model_layer_params(m, 1, &off, &count));
    const float wb[6] = {3e38f, 3e38f, 1, 1, 0, 0};
    memcpy(del_model_params(m) + off, wb, sizeof wb);
    const uint8_t px[10] = {0, 0, 255, 0, 0, 255, 255, 255, 0, 0};
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, NULL, 5, 1, 2, 1));
    del_tensor *y = NULL;
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 1.0f, 1), DEL_ENUMERIC,
                      "output 0 of image 3 is inf");
    ck_assert_ptr_null(y);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

START_TEST(test_errors_name_the_argument)
{
    del_model *m = linear_model(), *empty = NULL, *conv = NULL, *heads = NULL;
    del_dataset *ds = linear_dataset(), *wrong = random_dataset(2, 2, 1);
    ck_assert_del_ok(del_model_new(&empty, 1, 1, 2));
    ck_assert_del_ok(del_model_from_spec(&conv, "input 1 1 2; conv2d 2 k=1"));
    ck_assert_del_ok(del_model_from_spec(&heads, "input 1 1 2; flatten"));
    ck_assert_del_ok(del_model_add_head(heads, "a", "linear 2"));
    del_tensor *y = NULL;
    const float nan1[1] = {NAN}, inf1[1] = {INFINITY}, neg1[1] = {-1.0f};
    const char *p = "del_model_predict";

    ck_assert_del_err(del_model_predict(NULL, m, NULL, ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_model_predict(&y, NULL, NULL, ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, NULL, ZERO1, ONE1, 1, 0), DEL_EINVAL, "'ds'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, NULL, ONE1, 1, 0), DEL_EINVAL, "'mean'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, NULL, 1, 0), DEL_EINVAL, "'std'");
    ck_assert_str_eq(strstr(del_last_error(), p), del_last_error());
    ck_assert_del_err(del_model_predict(&y, m, "old", ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "'head'");
    ck_assert_del_err(del_model_predict(&y, heads, "b", ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "'b'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, wrong, ZERO1, ONE1, 1, 0), DEL_EINVAL,
                      "must be 1 x 2 x 1 (HxWxC) as the model's input, got 2 x 2 x 1");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, nan1, ONE1, 1, 0), DEL_EINVAL, "'mean[0]' must be finite");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, inf1, ONE1, 1, 0), DEL_EINVAL, "'mean[0]'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ZERO1, 1, 0), DEL_EINVAL, "'std[0]' must be finite and > 0");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, neg1, 1, 0), DEL_EINVAL, "'std[0]'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, inf1, 1, 0), DEL_EINVAL, "'std[0]'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, nan1, 1, 0), DEL_EINVAL, "'std[0]'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 1, 2), DEL_EINVAL, "'softmax'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 0, 1), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, -2, 1), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, NAN, 1), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, INFINITY, 1), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_model_predict(&y, empty, NULL, ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "a vector per image");
    ck_assert_del_err(del_model_predict(&y, conv, NULL, ds, ZERO1, ONE1, 1, 0), DEL_EINVAL, "a vector per image");
    ck_assert_ptr_null(y);

    /* The temperature is not read for logits. */
    ck_assert_del_ok(del_model_predict(&y, m, NULL, ds, ZERO1, ONE1, 0, 0));
    del_tensor_free(y);
    ck_assert_int_eq(del_model_predict_batch(NULL), 0);

    del_model_free(heads);
    del_model_free(conv);
    del_model_free(empty);
    del_dataset_free(wrong);
    del_dataset_free(ds);
    del_model_free(m);
}
END_TEST

/* 512 images, halved while 512 images' largest layer output exceeds 2^25
 * floats: 128 x 32 x 32 = 2^17 floats per image fits 256 exactly. */
START_TEST(test_predict_batch_follows_the_largest_layer_output)
{
    const struct {
        const char *spec;
        int batch;
    } cases[] = {
        {"input 1 1 2; flatten; linear 2", 512},
        {"input 3 32 32; conv2d 64 k=3 p=1", 512},
        {"input 3 32 32; conv2d 128 k=3 p=1", 256},
        {"input 3 32 32; conv2d 129 k=3 p=1", 128},
        {"input 3 32 32; conv2d 160 k=3 p=1", 128},
        {"input 3 1024 1024; maxpool 4", 16},
    };
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        del_model *m = NULL;
        ck_assert_del_ok(del_model_from_spec(&m, cases[c].spec));
        ck_assert_msg(del_model_predict_batch(m) == cases[c].batch, "%s: %d, wanted %d", cases[c].spec,
                      del_model_predict_batch(m), cases[c].batch);
        del_model_free(m);
    }
}
END_TEST

static Suite *predict_suite(void)
{
    Suite *s = suite_create("nn_predict");
    TCase *tc = tcase_create("predict");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_logits_equal_eval_forward_of_the_same_batches);
    tcase_add_test(tc, test_rows_do_not_depend_on_the_dataset_size);
    tcase_add_test(tc, test_logits_of_a_hand_set_linear_model);
    tcase_add_test(tc, test_softmax_with_temperature_matches_the_spec_vectors);
    tcase_add_test(tc, test_softmax_rows_sum_to_one);
    tcase_add_test(tc, test_thread_counts_1_2_3_give_identical_bits);
    tcase_add_test(tc, test_unlabeled_images_are_included);
    tcase_add_test(tc, test_training_flag_restored_and_eval_mode_used);
    tcase_add_test(tc, test_head_selects_that_heads_outputs);
    tcase_add_test(tc, test_non_finite_output_names_the_image);
    tcase_add_test(tc, test_errors_name_the_argument);
    tcase_add_test(tc, test_predict_batch_follows_the_largest_layer_output);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(predict_suite());
}
