/* Softmax with temperature and softmax cross-entropy (hard and soft targets). */
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

/* Row 0: z = (1, 2, 3), t = (0.2, 0.3, 0.5): loss = lse - sum_k t_k z_k
 * = 3.40760596 - 2.3 = 1.10760596, with lse = log(e + e^2 + e^3).
 * Row 1: z = (0, 0, 0), t = (0.5, 0.5, 0): loss = log 3 = 1.09861229.
 * Mean 1.10310913; grad = (softmax - t) / 2 with the softmax values of the
 * hard-label case above. */
START_TEST(test_soft_cross_entropy_matches_hand_worked_case)
{
    const float z[6] = {1, 2, 3, 0, 0, 0};
    const float t[6] = {0.2f, 0.3f, 0.5f, 0.5f, 0.5f, 0.0f};
    del_tensor *logits = f32_2d(2, 3, z), *targets = f32_2d(2, 3, t), *grad = f32_2d(2, 3, NULL);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &loss, grad));
    ck_assert_float_eq_tol(loss, 1.10310913f, 1e-6f);
    const float want[6] = {(0.09003057f - 0.2f) / 2, (0.24472847f - 0.3f) / 2, (0.66524096f - 0.5f) / 2,
                           (1.0f / 3 - 0.5f) / 2,    (1.0f / 3 - 0.5f) / 2,    1.0f / 6};
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(g[i], want[i], 1e-6f);
    float loss2 = 0.0f;
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &loss2, NULL));
    ck_assert_float_eq(loss, loss2);
    del_tensor_free(logits);
    del_tensor_free(targets);
    del_tensor_free(grad);
}
END_TEST

/* Trainers feed one-hot rows through the soft loss when a pipeline could
 * mix labels; without mixing the result must not change by a single bit. */
START_TEST(test_soft_cross_entropy_equals_hard_for_one_hot_targets)
{
    enum { N = 4, K = 5 };
    float z[N * K], t[N * K] = {0};
    const int32_t y[N] = {3, 0, 4, 1};
    for (int i = 0; i < N * K; i++)
        z[i] = (float)((i * 37) % 11) * 0.7f - 3.0f + (i == 7 ? 40.0f : 0.0f);
    for (int r = 0; r < N; r++)
        t[r * K + y[r]] = 1.0f;
    del_tensor *logits = f32_2d(N, K, z), *targets = f32_2d(N, K, t), *labels = i32_1d(N, y);
    del_tensor *g_soft = f32_2d(N, K, NULL), *g_hard = f32_2d(N, K, NULL);
    float l_soft = 0.0f, l_hard = 1.0f;
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &l_soft, g_soft));
    ck_assert_del_ok(del_loss_cross_entropy(logits, labels, &l_hard, g_hard));
    ck_assert_msg(memcmp(&l_soft, &l_hard, sizeof l_soft) == 0, "soft %.9g != hard %.9g", (double)l_soft,
                  (double)l_hard);
    ck_assert_msg(memcmp(del_tensor_data(g_soft), del_tensor_data(g_hard), sizeof z) == 0, "gradients differ");
    del_tensor_free(logits);
    del_tensor_free(targets);
    del_tensor_free(labels);
    del_tensor_free(g_soft);
    del_tensor_free(g_hard);
}
END_TEST

/* Loss in double from the definition, independent of the library:
 * mean_r sum_k -t_rk log(exp(z_rk) / sum_j exp(z_rj)). */
static double soft_ce_reference(const double *z, const float *t, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        double sum = 0.0;
        for (int j = 0; j < k; j++)
            sum += exp(z[r * k + j]);
        for (int j = 0; j < k; j++)
            total -= (double)t[r * k + j] * log(exp(z[r * k + j]) / sum);
    }
    return total / n;
}

START_TEST(test_soft_cross_entropy_gradient_matches_finite_differences)
{
    enum { N = 3, K = 4 };
    const float z[N * K] = {0.3f, -1.2f, 2.0f, 0.5f, 1.5f, 1.4f, -0.7f, 0.0f, -2.0f, 0.9f, 0.1f, 3.1f};
    const float t[N * K] = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f, 0.75f, 0.25f, 0.0f, 0.5f, 0.0f, 0.0f, 0.5f};
    del_tensor *logits = f32_2d(N, K, z), *targets = f32_2d(N, K, t), *grad = f32_2d(N, K, NULL);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &loss, grad));
    double zd[N * K];
    for (int i = 0; i < N * K; i++)
        zd[i] = z[i];
    ck_assert_double_eq_tol(loss, soft_ce_reference(zd, t, N, K), 1e-6);
    const float *g = del_tensor_data(grad);
    const double h = 1e-5;
    for (int i = 0; i < N * K; i++) {
        double saved = zd[i];
        zd[i] = saved + h;
        double up = soft_ce_reference(zd, t, N, K);
        zd[i] = saved - h;
        double down = soft_ce_reference(zd, t, N, K);
        zd[i] = saved;
        double numeric = (up - down) / (2 * h);
        ck_assert_msg(fabs(numeric - g[i]) < 1e-6, "grad[%d] = %.8f, finite difference %.8f", i, (double)g[i],
                      numeric);
    }
    del_tensor_free(logits);
    del_tensor_free(targets);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_soft_cross_entropy_rejects_bad_arguments)
{
    const float good[6] = {1, 0, 0, 0.5f, 0.25f, 0.25f};
    const float negative[6] = {1, 0, 0, 1.25f, -0.25f, 0};
    const float short_row[6] = {1, 0, 0, 0.5f, 0.25f, 0.2f};
    const float nan_row[6] = {NAN, 1, 0, 0, 1, 0};
    del_tensor *logits = f32_2d(2, 3, NULL), *targets = f32_2d(2, 3, good), *neg = f32_2d(2, 3, negative);
    del_tensor *sum = f32_2d(2, 3, short_row), *nan_t = f32_2d(2, 3, nan_row), *wide = f32_2d(2, 4, NULL);
    const int32_t y[2] = {0, 1};
    del_tensor *labels = i32_1d(2, y);
    int64_t six = 6;
    del_tensor *flat = NULL;
    ck_assert_del_ok(del_tensor_new(&flat, DEL_DTYPE_F32, 1, &six));
    float loss;
    ck_assert_del_err(del_loss_soft_cross_entropy(NULL, targets, &loss, NULL), DEL_EINVAL, "'logits'");
    ck_assert_del_err(del_loss_soft_cross_entropy(flat, targets, &loss, NULL), DEL_EINVAL, "'logits'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, NULL, &loss, NULL), DEL_EINVAL, "'targets'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, targets, NULL, NULL), DEL_EINVAL, "'loss'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, wide, &loss, NULL), DEL_EINVAL, "'targets'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, labels, &loss, NULL), DEL_EINVAL, "'targets'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, targets, &loss, wide), DEL_EINVAL, "'grad'");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, neg, &loss, NULL), DEL_EINVAL, "row 1");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, sum, &loss, NULL), DEL_EINVAL, "row 1");
    ck_assert_del_err(del_loss_soft_cross_entropy(logits, nan_t, &loss, NULL), DEL_EINVAL, "row 0");
    /* within the 1e-3 tolerance */
    const float almost[6] = {0.9995f, 0, 0, 0.5f, 0.25f, 0.25f};
    del_tensor *ok = f32_2d(2, 3, almost);
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, ok, &loss, NULL));
    del_tensor_free(ok);
    del_tensor_free(logits);
    del_tensor_free(targets);
    del_tensor_free(neg);
    del_tensor_free(sum);
    del_tensor_free(nan_t);
    del_tensor_free(wide);
    del_tensor_free(labels);
    del_tensor_free(flat);
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
    tcase_add_test(tc, test_soft_cross_entropy_matches_hand_worked_case);
    tcase_add_test(tc, test_soft_cross_entropy_equals_hard_for_one_hot_targets);
    tcase_add_test(tc, test_soft_cross_entropy_gradient_matches_finite_differences);
    tcase_add_test(tc, test_soft_cross_entropy_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(loss_suite());
}
