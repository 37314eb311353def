/* Softmax with temperature, softmax cross-entropy (hard, smoothed and soft
 * targets) and the distillation loss. Reference values come from hand-worked
 * cases, SPEC 1.3's test vectors, loss definitions evaluated here in double,
 * and tests/data/nn/loss_golden.txt (written by gen_loss_golden.py with
 * PyTorch). */
#include <math.h>

#include "loss_helpers.h"

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

/* ---- label smoothing ---- */

/* Loss from the definition in double, independent of the library:
 * mean_r -sum_k t_rk log softmax(z_r)_k with t = (1 - s) onehot + s / K. */
static double smooth_ce_reference(const double *z, const int32_t *y, double s, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        double sum = 0.0;
        for (int j = 0; j < k; j++)
            sum += exp(z[r * k + j]);
        for (int j = 0; j < k; j++) {
            double t = (j == y[r] ? 1.0 - s : 0.0) + s / k;
            total -= t * log(exp(z[r * k + j]) / sum);
        }
    }
    return total / n;
}

/* z = (0, 0, 0), y = 0, s = 0.3: t = (0.8, 0.1, 0.1) and softmax = 1/3, so
 * loss = log 3 = 1.09861229 whatever s is, and grad = (1/3 - t) / N.
 * z = (ln 1, ln 2, ln 1), y = 1, s = 0.3: softmax = (1/4, 1/2, 1/4),
 * t = (0.1, 0.8, 0.1): loss = -(0.1 ln 1/4 + 0.8 ln 1/2 + 0.1 ln 1/4)
 * = 0.2 ln 4 + 0.8 ln 2 = 1.2 ln 2 = 0.83177662. Mean 0.96519446. */
START_TEST(test_cross_entropy_smooth_matches_hand_worked_case)
{
    const float z[6] = {0, 0, 0, 0, (float)M_LN2, 0};
    const int32_t y[2] = {0, 1};
    del_tensor *logits = f32_2d(2, 3, z), *labels = i32_1d(2, y), *grad = f32_2d(2, 3, NULL);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, 0.3f, &loss, grad));
    ck_assert_float_eq_tol(loss, 0.96519446f, 1e-6f);
    const float want[6] = {(1.0f / 3 - 0.8f) / 2, (1.0f / 3 - 0.1f) / 2, (1.0f / 3 - 0.1f) / 2,
                           (0.25f - 0.1f) / 2,    (0.5f - 0.8f) / 2,     (0.25f - 0.1f) / 2};
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(g[i], want[i], 1e-6f);
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_cross_entropy_smooth_zero_equals_plain_bit_for_bit)
{
    enum { N = 3, K = 4 };
    /* -inf is a legal logit for the plain loss (a masked class). */
    const float z[N * K] = {0.3f, -1.2f, 2.0f, 0.5f, 41.5f, 1.4f, -0.7f, 0.0f, -2.0f, -INFINITY, 0.1f, 3.1f};
    const int32_t y[N] = {2, 1, 3};
    del_tensor *logits = f32_2d(N, K, z), *labels = i32_1d(N, y);
    del_tensor *g_plain = f32_2d(N, K, NULL), *g_smooth = f32_2d(N, K, NULL);
    float l_plain = 0.0f, l_smooth = 1.0f;
    ck_assert_del_ok(del_loss_cross_entropy(logits, labels, &l_plain, g_plain));
    ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, 0.0f, &l_smooth, g_smooth));
    ck_assert_msg(isfinite(l_plain), "plain loss %g", (double)l_plain);
    ck_assert_msg(memcmp(&l_plain, &l_smooth, sizeof l_plain) == 0, "plain %.9g != smooth %.9g", (double)l_plain,
                  (double)l_smooth);
    ck_assert_msg(memcmp(del_tensor_data(g_plain), del_tensor_data(g_smooth), sizeof z) == 0, "gradients differ");
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(g_plain);
    del_tensor_free(g_smooth);
}
END_TEST

START_TEST(test_cross_entropy_smooth_equals_soft_cross_entropy_on_smoothed_targets)
{
    enum { N = 2, K = 5 };
    const float z[N * K] = {1.0f, -0.5f, 0.25f, 2.0f, 0.0f, -3.0f, 0.5f, 0.5f, 1.5f, -1.0f};
    const int32_t y[N] = {3, 0};
    const float s = 0.2f;
    float t[N * K];
    for (int r = 0; r < N; r++)
        for (int j = 0; j < K; j++)
            t[r * K + j] = (j == y[r] ? 1.0f - s : 0.0f) + s / K;
    del_tensor *logits = f32_2d(N, K, z), *labels = i32_1d(N, y), *targets = f32_2d(N, K, t);
    del_tensor *g_hard = f32_2d(N, K, NULL), *g_soft = f32_2d(N, K, NULL);
    float l_hard = 0.0f, l_soft = 0.0f;
    ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, s, &l_hard, g_hard));
    ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &l_soft, g_soft));
    ck_assert_float_eq_tol(l_hard, l_soft, 1e-6f);
    const float *gh = del_tensor_data(g_hard), *gs = del_tensor_data(g_soft);
    for (int i = 0; i < N * K; i++)
        ck_assert_float_eq_tol(gh[i], gs[i], 1e-7f);
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(targets);
    del_tensor_free(g_hard);
    del_tensor_free(g_soft);
}
END_TEST

START_TEST(test_cross_entropy_smooth_gradient_matches_finite_differences)
{
    enum { N = 3, K = 4 };
    const float z[N * K] = {0.3f, -1.2f, 2.0f, 0.5f, 1.5f, 1.4f, -0.7f, 0.0f, -2.0f, 0.9f, 0.1f, 3.1f};
    const int32_t y[N] = {2, 0, 1};
    const float smoothings[3] = {0.0f, 0.1f, 0.75f};
    del_tensor *logits = f32_2d(N, K, z), *labels = i32_1d(N, y), *grad = f32_2d(N, K, NULL);
    for (int c = 0; c < 3; c++) {
        const double s = smoothings[c];
        float loss = 0.0f;
        ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, smoothings[c], &loss, grad));
        double zd[N * K];
        for (int i = 0; i < N * K; i++)
            zd[i] = z[i];
        ck_assert_double_eq_tol(loss, smooth_ce_reference(zd, y, s, N, K), 1e-6);
        const float *g = del_tensor_data(grad);
        const double h = 1e-5;
        for (int i = 0; i < N * K; i++) {
            double saved = zd[i];
            zd[i] = saved + h;
            double up = smooth_ce_reference(zd, y, s, N, K);
            zd[i] = saved - h;
            double down = smooth_ce_reference(zd, y, s, N, K);
            zd[i] = saved;
            double numeric = (up - down) / (2 * h);
            ck_assert_msg(fabs(numeric - g[i]) < 1e-6, "s %g grad[%d] = %.8f, finite difference %.8f", s, i,
                          (double)g[i], numeric);
        }
    }
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_cross_entropy_smooth_rejects_bad_arguments)
{
    const int32_t y[2] = {0, 1}, bad[2] = {0, 3};
    del_tensor *logits = f32_2d(2, 3, NULL), *labels = i32_1d(2, y), *high = i32_1d(2, bad);
    del_tensor *wide = f32_2d(2, 4, NULL);
    float loss;
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, labels, -0.1f, &loss, NULL), DEL_EINVAL,
                      "del_loss_cross_entropy_smooth: 'smoothing' must be in [0, 1), got -0.1");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, labels, 1.0f, &loss, NULL), DEL_EINVAL, "'smoothing'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, labels, NAN, &loss, NULL), DEL_EINVAL, "'smoothing'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(NULL, labels, 0.1f, &loss, NULL), DEL_EINVAL, "'logits'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, NULL, 0.1f, &loss, NULL), DEL_EINVAL, "'labels'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, labels, 0.1f, NULL, NULL), DEL_EINVAL, "'loss'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, labels, 0.1f, &loss, wide), DEL_EINVAL, "'grad'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(wide, labels, 0.1f, &loss, logits), DEL_EINVAL, "'grad'");
    ck_assert_del_err(del_loss_cross_entropy_smooth(logits, high, 0.1f, &loss, NULL), DEL_EINVAL,
                      "del_loss_cross_entropy_smooth: 'labels' row 1");
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(high);
    del_tensor_free(wide);
}
END_TEST

/* ---- distillation ---- */

/* T^2 KL(softmax_T(zt) || softmax_T(zs)), mean over rows, from the
 * definition in double. */
static double distill_reference(const double *zs, const double *zt, double t, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        double ss = 0.0, st = 0.0;
        for (int j = 0; j < k; j++) {
            ss += exp(zs[r * k + j] / t);
            st += exp(zt[r * k + j] / t);
        }
        for (int j = 0; j < k; j++) {
            double ps = exp(zs[r * k + j] / t) / ss, pt = exp(zt[r * k + j] / t) / st;
            total += pt * log(pt / ps);
        }
    }
    return t * t * total / n;
}

/* SPEC 1.3: softmax_T=100(5, 10) = (0.4875, 0.5125). Against a uniform
 * student (logits 0): grad = T (1/2 - p_t) = (1.25, -1.25) and
 * loss = T^2 (0.4875 ln 0.975 + 0.5125 ln 1.025) = 3.1253 (the 4-digit
 * vector; the rounding moves it by 1.3e-3). At T = 1 the teacher is
 * (0.0067, 0.9933) and the same student has grad (0.4933, -0.4933). */
START_TEST(test_distill_matches_spec_vectors)
{
    const float teacher[2] = {5.0f, 10.0f}, student[2] = {0.0f, 0.0f};
    del_tensor *zt = f32_2d(1, 2, teacher), *zs = f32_2d(1, 2, student), *grad = f32_2d(1, 2, NULL);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_distill(zs, zt, 100.0f, &loss, grad));
    const float *g = del_tensor_data(grad);
    ck_assert_float_eq_tol(g[0], 1.25f, 0.001f);
    ck_assert_float_eq_tol(g[1], -1.25f, 0.001f);
    ck_assert_float_eq_tol(loss, 3.1253f, 0.002f);
    ck_assert_del_ok(del_loss_distill(zs, zt, 1.0f, &loss, grad));
    ck_assert_float_eq_tol(g[0], 0.5f - 0.0067f, 0.00005f);
    ck_assert_float_eq_tol(g[1], 0.0067f - 0.5f, 0.00005f);
    del_tensor_free(zt);
    del_tensor_free(zs);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_distill_is_zero_when_student_matches_teacher_up_to_a_row_shift)
{
    /* softmax is unchanged by adding a constant to a row. */
    const float teacher[6] = {5, 10, -2, 0.5f, 0.25f, 0}, student[6] = {8, 13, 1, -99.5f, -99.75f, -100};
    del_tensor *zt = f32_2d(2, 3, teacher), *zs = f32_2d(2, 3, student), *grad = f32_2d(2, 3, NULL);
    float loss = -1.0f;
    ck_assert_del_ok(del_loss_distill(zs, zt, 3.0f, &loss, grad));
    ck_assert_float_eq_tol(loss, 0.0f, 1e-6f);
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(g[i], 0.0f, 1e-6f);
    del_tensor_free(zt);
    del_tensor_free(zs);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_distill_gradient_matches_finite_differences)
{
    enum { N = 3, K = 4 };
    const float s[N * K] = {0.3f, -1.2f, 2.0f, 0.5f, 1.5f, 1.4f, -0.7f, 0.0f, -2.0f, 0.9f, 0.1f, 3.1f};
    const float t[N * K] = {1.0f, 0.2f, -0.5f, 2.5f, -1.0f, 3.0f, 0.0f, 0.4f, 0.7f, -0.3f, 2.2f, 1.1f};
    const float temps[3] = {1.0f, 3.0f, 10.0f};
    del_tensor *zs = f32_2d(N, K, s), *zt = f32_2d(N, K, t), *grad = f32_2d(N, K, NULL);
    double sd[N * K], td[N * K];
    for (int i = 0; i < N * K; i++) {
        sd[i] = s[i];
        td[i] = t[i];
    }
    for (int c = 0; c < 3; c++) {
        const double temp = temps[c];
        float loss = 0.0f;
        ck_assert_del_ok(del_loss_distill(zs, zt, temps[c], &loss, grad));
        double want = distill_reference(sd, td, temp, N, K);
        ck_assert_msg(fabs(loss - want) <= 1e-6 * (1.0 + want), "T %g: loss %.8g, reference %.8g", temp,
                      (double)loss, want);
        const float *g = del_tensor_data(grad);
        const double h = 1e-5;
        for (int i = 0; i < N * K; i++) {
            double saved = sd[i];
            sd[i] = saved + h;
            double up = distill_reference(sd, td, temp, N, K);
            sd[i] = saved - h;
            double down = distill_reference(sd, td, temp, N, K);
            sd[i] = saved;
            double numeric = (up - down) / (2 * h);
            ck_assert_msg(fabs(numeric - g[i]) < 1e-6, "T %g grad[%d] = %.8f, finite difference %.8f", temp, i,
                          (double)g[i], numeric);
        }
    }
    del_tensor_free(zs);
    del_tensor_free(zt);
    del_tensor_free(grad);
}
END_TEST

/* Hinton's reason for T^2: softmax_T's gradients shrink as 1/T^2, the
 * factor restores them. For fixed logits the gradient tends to
 * ((s_j - mean s) - (t_j - mean t)) / (K N) as T grows (first-order
 * expansion of softmax_T around uniform), so its norm stays of one order;
 * without the factor it would fall 10,000-fold from T = 1 to T = 100. */
START_TEST(test_distill_gradient_scale_stays_of_one_order_as_temperature_grows)
{
    enum { N = 2, K = 4 };
    const float s[N * K] = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, 1.5f, -0.5f, 0.25f};
    const float t[N * K] = {2.0f, 0.0f, -1.0f, 1.0f, -0.5f, 2.5f, 0.0f, 1.0f};
    double limit[N * K], limit_norm = 0.0;
    for (int r = 0; r < N; r++) {
        double ms = 0.0, mt = 0.0;
        for (int j = 0; j < K; j++) {
            ms += s[r * K + j] / (double)K;
            mt += t[r * K + j] / (double)K;
        }
        for (int j = 0; j < K; j++) {
            limit[r * K + j] = ((s[r * K + j] - ms) - (t[r * K + j] - mt)) / (K * N);
            limit_norm += limit[r * K + j] * limit[r * K + j];
        }
    }
    limit_norm = sqrt(limit_norm);
    del_tensor *zs = f32_2d(N, K, s), *zt = f32_2d(N, K, t), *grad = f32_2d(N, K, NULL);
    const float temps[6] = {2.0f, 5.0f, 10.0f, 20.0f, 50.0f, 100.0f};
    for (int c = 0; c < 6; c++) {
        float loss;
        ck_assert_del_ok(del_loss_distill(zs, zt, temps[c], &loss, grad));
        const float *g = del_tensor_data(grad);
        double norm = 0.0;
        for (int i = 0; i < N * K; i++)
            norm += (double)g[i] * g[i];
        norm = sqrt(norm);
        ck_assert_msg(norm > 0.5 * limit_norm && norm < 2.0 * limit_norm, "T %g: gradient norm %.6g, limit %.6g",
                      (double)temps[c], norm, limit_norm);
    }
    float loss;
    ck_assert_del_ok(del_loss_distill(zs, zt, 10000.0f, &loss, grad));
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < N * K; i++)
        ck_assert_msg(fabs(g[i] - limit[i]) < 1e-3 * limit_norm, "T 1e4 grad[%d] %.8g, limit %.8g", i, (double)g[i],
                      limit[i]);
    del_tensor_free(zs);
    del_tensor_free(zt);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_distill_many_classes_and_grad_aliasing_the_student)
{
    /* 300 classes takes the heap path for the row buffers. */
    enum { N = 2, K = 300 };
    static float s[N * K], t[N * K];
    static double sd[N * K], td[N * K];
    for (int i = 0; i < N * K; i++) {
        s[i] = (float)((i * 37) % 101) * 0.05f - 2.5f;
        t[i] = (float)((i * 53) % 97) * 0.06f - 3.0f;
        sd[i] = s[i];
        td[i] = t[i];
    }
    del_tensor *zs = f32_2d(N, K, s), *zt = f32_2d(N, K, t), *grad = f32_2d(N, K, NULL);
    float loss = 0.0f, loss2 = 0.0f;
    ck_assert_del_ok(del_loss_distill(zs, zt, 2.0f, &loss, grad));
    double want = distill_reference(sd, td, 2.0, N, K);
    ck_assert_msg(fabs(loss - want) <= 1e-6 * (1.0 + want), "loss %.8g, reference %.8g", (double)loss, want);
    /* grad into the student's own tensor gives the same bits */
    ck_assert_del_ok(del_loss_distill(zs, zt, 2.0f, &loss2, zs));
    ck_assert_msg(memcmp(&loss, &loss2, sizeof loss) == 0, "loss changed with aliasing");
    ck_assert_msg(memcmp(del_tensor_data(grad), del_tensor_data(zs), sizeof s) == 0, "aliased gradient differs");
    del_tensor_free(zs);
    del_tensor_free(zt);
    del_tensor_free(grad);
}
END_TEST

START_TEST(test_distill_rejects_bad_arguments)
{
    del_tensor *zs = f32_2d(2, 3, NULL), *zt = f32_2d(2, 3, NULL), *wide = f32_2d(2, 4, NULL);
    int64_t six = 6;
    del_tensor *flat = NULL, *ints = NULL;
    ck_assert_del_ok(del_tensor_new(&flat, DEL_DTYPE_F32, 1, &six));
    const int64_t shape[2] = {2, 3};
    ck_assert_del_ok(del_tensor_new(&ints, DEL_DTYPE_I32, 2, shape));
    float loss;
    ck_assert_del_err(del_loss_distill(zs, zt, 0.0f, &loss, NULL), DEL_EINVAL,
                      "del_loss_distill: 'temperature' must be a finite value > 0, got 0");
    ck_assert_del_err(del_loss_distill(zs, zt, -2.0f, &loss, NULL), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_loss_distill(zs, zt, NAN, &loss, NULL), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_loss_distill(zs, zt, INFINITY, &loss, NULL), DEL_EINVAL, "'temperature'");
    ck_assert_del_err(del_loss_distill(zs, wide, 1.0f, &loss, NULL), DEL_EINVAL,
                      "'teacher_logits' must be f32 [2, 3] like 'student_logits'");
    ck_assert_del_err(del_loss_distill(zs, ints, 1.0f, &loss, NULL), DEL_EINVAL, "'teacher_logits'");
    ck_assert_del_err(del_loss_distill(zs, zt, 1.0f, &loss, wide), DEL_EINVAL, "'grad'");
    ck_assert_del_err(del_loss_distill(flat, zt, 1.0f, &loss, NULL), DEL_EINVAL, "'student_logits'");
    ck_assert_del_err(del_loss_distill(NULL, zt, 1.0f, &loss, NULL), DEL_EINVAL, "'student_logits'");
    ck_assert_del_err(del_loss_distill(zs, NULL, 1.0f, &loss, NULL), DEL_EINVAL, "'teacher_logits'");
    ck_assert_del_err(del_loss_distill(zs, zt, 1.0f, NULL, NULL), DEL_EINVAL, "'loss'");
    del_tensor_free(zs);
    del_tensor_free(zt);
    del_tensor_free(wide);
    del_tensor_free(flat);
    del_tensor_free(ints);
}
END_TEST

/* ---- against PyTorch (tests/data/nn/loss_golden.txt) ---- */

START_TEST(test_cross_entropy_smooth_matches_torch)
{
    golden gd;
    golden_load(&gd, "loss_golden.txt");
    int cases = 0;
    for (int c = 0;; c++) {
        const double *meta = golden_find(&gd, "smooth", c, "meta", 3);
        if (!meta)
            break;
        int n = (int)meta[0], k = (int)meta[1];
        const double *z = golden_find(&gd, "smooth", c, "logits", n * k);
        const double *yv = golden_find(&gd, "smooth", c, "labels", n);
        const double *want_loss = golden_find(&gd, "smooth", c, "loss", 1);
        const double *want_grad = golden_find(&gd, "smooth", c, "grad", n * k);
        ck_assert(z && yv && want_loss && want_grad);
        int32_t y[16];
        ck_assert_int_le(n, 16);
        for (int r = 0; r < n; r++)
            y[r] = (int32_t)yv[r];
        del_tensor *logits = f32_from_doubles(n, k, z), *labels = i32_1d(n, y), *grad = f32_2d(n, k, NULL);
        float loss = 0.0f;
        ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, (float)meta[2], &loss, grad));
        check_close("smooth loss", c, 0, loss, want_loss[0]);
        const float *g = del_tensor_data(grad);
        for (int i = 0; i < n * k; i++)
            check_close("smooth grad", c, i, g[i], want_grad[i]);
        del_tensor_free(logits);
        del_tensor_free(labels);
        del_tensor_free(grad);
        cases++;
    }
    ck_assert_int_ge(cases, 5);
    golden_free(&gd);
}
END_TEST

START_TEST(test_distill_matches_torch)
{
    golden gd;
    golden_load(&gd, "loss_golden.txt");
    int cases = 0;
    for (int c = 0;; c++) {
        const double *meta = golden_find(&gd, "distill", c, "meta", 3);
        if (!meta)
            break;
        int n = (int)meta[0], k = (int)meta[1];
        const double *s = golden_find(&gd, "distill", c, "student", n * k);
        const double *t = golden_find(&gd, "distill", c, "teacher", n * k);
        const double *want_loss = golden_find(&gd, "distill", c, "loss", 1);
        const double *want_grad = golden_find(&gd, "distill", c, "grad", n * k);
        ck_assert(s && t && want_loss && want_grad);
        del_tensor *zs = f32_from_doubles(n, k, s), *zt = f32_from_doubles(n, k, t), *grad = f32_2d(n, k, NULL);
        float loss = 0.0f;
        ck_assert_del_ok(del_loss_distill(zs, zt, (float)meta[2], &loss, grad));
        check_close("distill loss", c, 0, loss, want_loss[0]);
        const float *g = del_tensor_data(grad);
        for (int i = 0; i < n * k; i++)
            check_close("distill grad", c, i, g[i], want_grad[i]);
        del_tensor_free(zs);
        del_tensor_free(zt);
        del_tensor_free(grad);
        cases++;
    }
    ck_assert_int_ge(cases, 6);
    golden_free(&gd);
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
    tcase_add_test(tc, test_cross_entropy_smooth_matches_hand_worked_case);
    tcase_add_test(tc, test_cross_entropy_smooth_zero_equals_plain_bit_for_bit);
    tcase_add_test(tc, test_cross_entropy_smooth_equals_soft_cross_entropy_on_smoothed_targets);
    tcase_add_test(tc, test_cross_entropy_smooth_gradient_matches_finite_differences);
    tcase_add_test(tc, test_cross_entropy_smooth_rejects_bad_arguments);
    tcase_add_test(tc, test_cross_entropy_smooth_matches_torch);
    tcase_add_test(tc, test_distill_matches_spec_vectors);
    tcase_add_test(tc, test_distill_is_zero_when_student_matches_teacher_up_to_a_row_shift);
    tcase_add_test(tc, test_distill_gradient_matches_finite_differences);
    tcase_add_test(tc, test_distill_gradient_scale_stays_of_one_order_as_temperature_grows);
    tcase_add_test(tc, test_distill_many_classes_and_grad_aliasing_the_student);
    tcase_add_test(tc, test_distill_rejects_bad_arguments);
    tcase_add_test(tc, test_distill_matches_torch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(loss_suite());
}
