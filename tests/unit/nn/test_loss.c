/* Softmax with temperature and softmax cross-entropy. */
#include <math.h>

#include "testutil.h"

static del_tensor *f32_2d(int64_t n, int64_t k, const float *values)
{
    int64_t shape[2] = {n, k};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    if (values)
        ck_assert_del_ok(del_tensor_copy_from(t, values, (size_t)(n * k) * sizeof(float)));
    return t;
}

static del_tensor *i32_1d(int64_t n, const int32_t *values)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_I32, 1, &n));
    ck_assert_del_ok(del_tensor_copy_from(t, values, (size_t)n * sizeof(int32_t)));
    return t;
}

/* SPEC 1.3 test vectors (Hinton et al.): softmax(5, 10) = (0.0067, 0.9933). */
START_TEST(test_softmax_matches_spec_vector)
{
    const float z[2] = {5.0f, 10.0f};
    del_tensor *logits = f32_2d(1, 2, z), *probs = f32_2d(1, 2, NULL);
    ck_assert_del_ok(del_softmax(logits, 1.0f, probs));
    const float *p = del_tensor_data(probs);
    ck_assert_float_eq_tol(p[0], 0.0067f, 0.00005f);
    ck_assert_float_eq_tol(p[1], 0.9933f, 0.00005f);
    del_tensor_free(logits);
    del_tensor_free(probs);
}
END_TEST

/* softmax_T=100(5, 10) = (0.4875, 0.5125). */
START_TEST(test_softmax_temperature_matches_spec_vector)
{
    const float z[2] = {5.0f, 10.0f};
    del_tensor *logits = f32_2d(1, 2, z), *probs = f32_2d(1, 2, NULL);
    ck_assert_del_ok(del_softmax(logits, 100.0f, probs));
    const float *p = del_tensor_data(probs);
    ck_assert_float_eq_tol(p[0], 0.4875f, 0.00005f);
    ck_assert_float_eq_tol(p[1], 0.5125f, 0.00005f);
    del_tensor_free(logits);
    del_tensor_free(probs);
}
END_TEST

START_TEST(test_softmax_in_place_and_stable_for_large_logits)
{
    /* exp(1000) overflows a float: only a max-shifted softmax gets 1/(1+e^-1). */
    const float z[4] = {1000.0f, 999.0f, -1.0f, -1.0f};
    del_tensor *t = f32_2d(2, 2, z);
    ck_assert_del_ok(del_softmax(t, 1.0f, t));
    const float *p = del_tensor_data(t);
    ck_assert_float_eq_tol(p[0], 0.7310586f, 1e-6f);
    ck_assert_float_eq_tol(p[1], 0.2689414f, 1e-6f);
    ck_assert_float_eq_tol(p[2], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(p[3], 0.5f, 1e-7f);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_softmax_rejects_bad_arguments)
{
    del_tensor *logits = f32_2d(2, 3, NULL), *probs = f32_2d(2, 3, NULL), *wrong = f32_2d(3, 2, NULL);
    ck_assert_del_err(del_softmax(logits, 0.0f, probs), DEL_EINVAL, "temperature");
    ck_assert_del_err(del_softmax(logits, -1.0f, probs), DEL_EINVAL, "temperature");
    ck_assert_del_err(del_softmax(logits, 1.0f, wrong), DEL_EINVAL, "probs");
    ck_assert_del_err(del_softmax(NULL, 1.0f, probs), DEL_EINVAL, "logits");
    ck_assert_del_err(del_softmax(logits, 1.0f, NULL), DEL_EINVAL, "probs");
    del_tensor_free(logits);
    del_tensor_free(probs);
    del_tensor_free(wrong);
}
END_TEST

/* Row 0: z = (1, 2, 3), y = 2: loss = log(e + e^2 + e^3) - 3 = 0.40760596;
 * softmax = (0.09003057, 0.24472847, 0.66524096).
 * Row 1: z = (0, 0, 0), y = 0: loss = log 3 = 1.09861229; softmax = 1/3 each.
 * Mean loss 0.75310912; grad = (softmax - onehot) / 2. */
START_TEST(test_cross_entropy_matches_hand_worked_case)
{
    const float z[6] = {1, 2, 3, 0, 0, 0};
    const int32_t y[2] = {2, 0};
    del_tensor *logits = f32_2d(2, 3, z), *labels = i32_1d(2, y), *grad = f32_2d(2, 3, NULL);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_cross_entropy(logits, labels, &loss, grad));
    ck_assert_float_eq_tol(loss, 0.75310912f, 1e-6f);
    const float want[6] = {0.09003057f / 2, 0.24472847f / 2, (0.66524096f - 1) / 2,
                           (1.0f / 3 - 1) / 2, 1.0f / 6, 1.0f / 6};
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(g[i], want[i], 1e-6f);
    /* grad is optional */
    float loss2 = 0.0f;
    ck_assert_del_ok(del_loss_cross_entropy(logits, labels, &loss2, NULL));
    ck_assert_float_eq(loss, loss2);
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_cross_entropy_rejects_label_out_of_range)
{
    const float z[6] = {0};
    const int32_t bad_high[2] = {0, 3}, bad_low[2] = {-1, 0};
    del_tensor *logits = f32_2d(2, 3, z), *high = i32_1d(2, bad_high), *low = i32_1d(2, bad_low);
    float loss;
    ck_assert_del_err(del_loss_cross_entropy(logits, high, &loss, NULL), DEL_EINVAL, "row 1");
    ck_assert_del_err(del_loss_cross_entropy(logits, low, &loss, NULL), DEL_EINVAL, "row 0");
    del_tensor_free(logits);
    del_tensor_free(high);
    del_tensor_free(low);
}
END_TEST

START_TEST(test_cross_entropy_rejects_shape_mismatch)
{
    const int32_t y3[3] = {0, 0, 0};
    del_tensor *logits = f32_2d(2, 3, NULL), *labels3 = i32_1d(3, y3), *grad = f32_2d(2, 4, NULL);
    const int32_t y2[2] = {0, 1};
    del_tensor *labels2 = i32_1d(2, y2);
    int64_t shape1[1] = {6};
    del_tensor *flat = NULL, *flabels = NULL;
    ck_assert_del_ok(del_tensor_new(&flat, DEL_DTYPE_F32, 1, shape1));
    int64_t two = 2;
    ck_assert_del_ok(del_tensor_new(&flabels, DEL_DTYPE_F32, 1, &two));
    float loss;
    ck_assert_del_err(del_loss_cross_entropy(logits, labels3, &loss, NULL), DEL_EINVAL, "labels");
    ck_assert_del_err(del_loss_cross_entropy(logits, labels2, &loss, grad), DEL_EINVAL, "grad");
    ck_assert_del_err(del_loss_cross_entropy(flat, labels2, &loss, NULL), DEL_EINVAL, "logits");
    ck_assert_del_err(del_loss_cross_entropy(logits, flabels, &loss, NULL), DEL_EINVAL, "i32");
    ck_assert_del_err(del_loss_cross_entropy(logits, labels2, NULL, NULL), DEL_EINVAL, "loss");
    del_tensor_free(logits);
    del_tensor_free(labels3);
    del_tensor_free(labels2);
    del_tensor_free(grad);
    del_tensor_free(flat);
    del_tensor_free(flabels);
}
END_TEST

static Suite *loss_suite(void)
{
    Suite *s = suite_create("nn_loss");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_softmax_matches_spec_vector);
    tcase_add_test(tc, test_softmax_temperature_matches_spec_vector);
    tcase_add_test(tc, test_softmax_in_place_and_stable_for_large_logits);
    tcase_add_test(tc, test_softmax_rejects_bad_arguments);
    tcase_add_test(tc, test_cross_entropy_matches_hand_worked_case);
    tcase_add_test(tc, test_cross_entropy_rejects_label_out_of_range);
    tcase_add_test(tc, test_cross_entropy_rejects_shape_mismatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(loss_suite());
}
