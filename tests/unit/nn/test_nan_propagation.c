/* NaN through the layers, as PyTorch: relu(NaN) = NaN, a max pooling
 * window holding a NaN gives NaN, so a NaN in the input (or a diverged
 * model's NaN activations) shows in the scores instead of being masked
 * to numbers by a relu. Eval-mode forwards keep images apart (a NaN
 * image leaves the others finite); in training mode the batch statistics
 * of the first batchnorm carry it to every image. 1 to 4 threads. */
#include <math.h>

#include "testutil.h"

static del_tensor *new_input(int n, int c, int h, int w, uint32_t seed)
{
    int64_t shape[4] = {n, c, h, w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    float *d = del_tensor_data(x);
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < del_tensor_numel(x); i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = 2.0f * ((float)(s >> 8) / 16777216.0f) - 1.0f;
    }
    return x;
}

START_TEST(test_relu_layer_passes_nan_and_maps_infinities)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 2, 4));
    ck_assert_del_ok(del_model_add_relu(m));
    const float in[8] = {NAN, INFINITY, -INFINITY, -0.0f, 0.5f, -0.5f, -NAN, 0.0f};
    del_tensor *x = new_input(1, 1, 2, 4, 1);
    ck_assert_del_ok(del_tensor_copy_from(x, in, sizeof in));
    for (int training = 0; training < 2; training++) {
        ck_assert_del_ok(del_model_set_training(m, training));
        ck_assert_del_ok(del_model_forward(m, x));
        const float *y = del_tensor_data(del_model_output(m));
        ck_assert(isnan(y[0]) && isnan(y[6]));
        ck_assert(y[1] == INFINITY);
        ck_assert(y[2] == 0.0f && !signbit(y[2]) && y[3] == 0.0f && !signbit(y[3]));
        ck_assert(y[4] == 0.5f && y[5] == 0.0f && y[7] == 0.0f);
    }
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* 2x2 windows of a 4x4 image: a NaN makes its window NaN and takes the
 * whole gradient of it; +inf wins its window; -inf is ignored. */
START_TEST(test_maxpool_layer_window_with_nan_is_nan_and_takes_the_gradient)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 4, 4));
    ck_assert_del_ok(del_model_add_maxpool(m, 2, 2));
    const float in[16] = {
        0.9f,      0.1f, 0.2f, INFINITY, /* windows 0 and 1: a NaN after the larger 0.9; +inf */
        0.3f,      NAN,  0.4f, 0.5f,
        -INFINITY, 0.6f, 0.7f, 0.8f,     /* windows 2 and 3: -inf and 0.6; a NaN last */
        0.2f,      0.1f, 0.3f, NAN,
    };
    del_tensor *x = new_input(1, 1, 4, 4, 2), *g = new_input(1, 1, 2, 2, 3);
    ck_assert_del_ok(del_tensor_copy_from(x, in, sizeof in));
    const float dy[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    ck_assert_del_ok(del_tensor_copy_from(g, dy, sizeof dy));
    for (int t = 1; t <= 4; t++) {
        ck_assert_del_ok(del_set_num_threads(t));
        ck_assert_del_ok(del_model_set_training(m, 1));
        ck_assert_del_ok(del_model_forward(m, x));
        const float *y = del_tensor_data(del_model_output(m));
        ck_assert(isnan(y[0]) && y[1] == INFINITY && y[2] == 0.6f && isnan(y[3]));
        ck_assert_del_ok(del_model_backward(m, g));
        const float *dx = del_tensor_data(del_model_input_grad(m));
        const float want[16] = {0, 0, 0, 2, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 4};
        for (int i = 0; i < 16; i++)
            ck_assert_msg(dx[i] == want[i], "dx[%d] = %g, want %g", i, dx[i], want[i]);
    }
    ck_assert_del_ok(del_set_num_threads(1));
    del_tensor_free(x);
    del_tensor_free(g);
    del_model_free(m);
}
END_TEST

/* A preset's scores for a batch of 3 whose image 1 has one NaN pixel. */
static void preset_scores_with_nan_pixel(const char *preset, int c, int hw, int training, int threads,
                                         float *scores)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_set_num_threads(threads));
    ck_assert_del_ok(del_model_preset(&m, preset, c, hw, hw, 10));
    ck_assert_del_ok(del_model_init(m, 5));
    ck_assert_del_ok(del_model_set_training(m, training));
    del_tensor *x = new_input(3, c, hw, hw, 4);
    float *d = del_tensor_data(x);
    d[(size_t)c * hw * hw + (size_t)(hw / 2) * hw + hw / 2 + 1] = NAN;
    ck_assert_del_ok(del_model_forward(m, x));
    const del_tensor *y = del_model_output(m);
    ck_assert_int_eq(del_tensor_numel(y), 30);
    memcpy(scores, del_tensor_data((del_tensor *)y), 30 * sizeof(float));
    del_tensor_free(x);
    del_model_free(m);
    ck_assert_del_ok(del_set_num_threads(1));
}

/* fmnist-cnn: in eval mode conv + batchnorm + relu + maxpool run as one
 * folded pass; resnet20: its residual blocks' folded convs and joins,
 * and in training mode the batchnorm + relu kernels, the Winograd gather
 * of relu(bn1) and the join with bn2. */
START_TEST(test_preset_nan_pixel_gives_nan_scores_for_its_image_only_in_eval)
{
    static const struct {
        const char *name;
        int c, hw;
    } presets[] = {{"fmnist-cnn", 1, 28}, {"resnet20", 3, 32}};
    float scores[30];
    for (int p = 0; p < 2; p++)
        for (int t = 1; t <= 4; t++) {
            preset_scores_with_nan_pixel(presets[p].name, presets[p].c, presets[p].hw, 0, t, scores);
            for (int k = 0; k < 30; k++) {
                int img = k / 10;
                ck_assert_msg(img == 1 ? isnan(scores[k]) : isfinite(scores[k]), "%s, %d threads: score[%d] = %g",
                              presets[p].name, t, k, scores[k]);
            }
        }
}
END_TEST

START_TEST(test_preset_nan_pixel_gives_nan_scores_for_all_images_in_training)
{
    static const struct {
        const char *name;
        int c, hw;
    } presets[] = {{"fmnist-cnn", 1, 28}, {"resnet20", 3, 32}};
    float scores[30];
    for (int p = 0; p < 2; p++)
        for (int t = 1; t <= 4; t++) {
            preset_scores_with_nan_pixel(presets[p].name, presets[p].c, presets[p].hw, 1, t, scores);
            for (int k = 0; k < 30; k++)
                ck_assert_msg(isnan(scores[k]), "%s, %d threads: score[%d] = %g", presets[p].name, t, k, scores[k]);
        }
}
END_TEST

static Suite *nan_suite(void)
{
    Suite *s = suite_create("nan_propagation");
    TCase *t = tcase_create("nan");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_relu_layer_passes_nan_and_maps_infinities);
    tcase_add_test(t, test_maxpool_layer_window_with_nan_is_nan_and_takes_the_gradient);
    tcase_add_test(t, test_preset_nan_pixel_gives_nan_scores_for_its_image_only_in_eval);
    tcase_add_test(t, test_preset_nan_pixel_gives_nan_scores_for_all_images_in_training);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return test_run_suite(nan_suite());
}
