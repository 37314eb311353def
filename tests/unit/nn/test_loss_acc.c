/* The accumulating, weighted losses (del_loss_*_acc): row weights, ignored
 * rows, the mean over all N rows, the loss weight, gradients added into
 * the caller's. Reference values come from a hand-worked case, the loss
 * definitions evaluated here in double (with finite differences for the
 * gradients), and tests/data/nn/loss_acc_golden.txt (written by
 * gen_loss_golden.py with PyTorch). */
#include <math.h>

#include "loss_helpers.h"

static del_tensor *f32_1d(int64_t n, const float *values)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 1, &n));
    if (values)
        ck_assert_del_ok(del_tensor_copy_from(t, values, (size_t)n * sizeof(float)));
    return t;
}

static void fill(del_tensor *t, float v)
{
    float *d = del_tensor_data(t);
    for (int64_t i = 0; i < del_tensor_numel(t); i++)
        d[i] = v;
}

/* Row 0: z = (1, 2, 3), y = 2, w = 0.5: CE = log(e + e^2 + e^3) - 3
 * = 0.40760596, softmax (0.09003057, 0.24472847, 0.66524096).
 * Row 1: y = -1 (ignored), its logits NaN, w = 7.
 * Row 2: z = (0, 0, 0), y = 0, w = 2: CE = log 3 = 1.09861229.
 * weight 3: loss = 3 (0.5 * 0.40760596 + 2 * 1.09861229) / 3 = 2.40102756;
 * grad_r += 3 w_r (softmax - onehot) / 3 on rows 0 and 2, row 1 keeps its
 * values and no NaN spreads. */
START_TEST(test_cross_entropy_acc_weighs_rows_and_skips_ignored_ones)
{
    const float z[9] = {1, 2, 3, NAN, NAN, NAN, 0, 0, 0};
    const int32_t y[3] = {2, -1, 0};
    const float w[3] = {0.5f, 7.0f, 2.0f};
    del_tensor *logits = f32_2d(3, 3, z), *labels = i32_1d(3, y), *rw = f32_1d(3, w), *grad = f32_2d(3, 3, NULL);
    fill(grad, 0.25f);
    float loss = 0.0f;
    ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, 3.0f, &loss, grad));
    ck_assert_float_eq_tol(loss, 2.40102756f, 2e-6f);
    const float want[9] = {0.25f + 0.5f * 0.09003057f, 0.25f + 0.5f * 0.24472847f, 0.25f + 0.5f * (0.66524096f - 1),
                           0.25f, 0.25f, 0.25f,
                           0.25f + 2 * (1.0f / 3 - 1), 0.25f + 2.0f / 3, 0.25f + 2.0f / 3};
    const float *g = del_tensor_data(grad);
    for (int i = 0; i < 9; i++)
        ck_assert_msg(fabsf(g[i] - want[i]) < 1e-6f, "grad[%d] = %.8f, want %.8f", i, (double)g[i], (double)want[i]);
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(rw);
    del_tensor_free(grad);
}
END_TEST

/* A row of weight 0, or a loss weight 0, adds nothing, even where the
 * logits would make the loss infinite or NaN. */
START_TEST(test_zero_weights_add_nothing_even_for_non_finite_rows)
{
    const float z[6] = {-INFINITY, 0, 0, 1, 2, 3};
    const int32_t y[2] = {0, 1};
    const float w[2] = {0.0f, 1.0f};
    const float t[6] = {1, 0, 0, 0, 1, 0};
    del_tensor *logits = f32_2d(2, 3, z), *labels = i32_1d(2, y), *rw = f32_1d(2, w), *targets = f32_2d(2, 3, t);
    del_tensor *grad = f32_2d(2, 3, NULL), *teacher = f32_2d(2, 3, NULL);
    fill(teacher, 0.0f);
    float loss = -1.0f;
    fill(grad, 0.5f);
    ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, rw, 0.1f, 1.0f, &loss, grad));
    ck_assert_msg(isfinite(loss) && loss > 0.0f, "loss %g", (double)loss);
    ck_assert_del_ok(del_loss_soft_cross_entropy_acc(logits, targets, rw, 1.0f, &loss, grad));
    ck_assert_msg(isfinite(loss) && loss > 0.0f, "loss %g", (double)loss);
    ck_assert_del_ok(del_loss_distill_acc(logits, teacher, rw, 2.0f, 0, 1.0f, &loss, grad));
    ck_assert_msg(isfinite(loss) && loss > 0.0f, "loss %g", (double)loss);
    const float *g = del_tensor_data(grad);
    for (int j = 0; j < 3; j++)
        ck_assert_msg(g[j] == 0.5f, "grad[%d] = %g", j, (double)g[j]);
    /* weight 0: nothing at all, loss 0 */
    ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.0f, 0.0f, &loss, grad));
    ck_assert_float_eq(loss, 0.0f);
    ck_assert_del_ok(del_loss_distill_acc(logits, teacher, NULL, 2.0f, 0, 0.0f, &loss, grad));
    ck_assert_float_eq(loss, 0.0f);
    for (int j = 0; j < 3; j++)
        ck_assert_msg(g[j] == 0.5f, "grad[%d] = %g after weight 0", j, (double)g[j]);
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(rw);
    del_tensor_free(targets);
    del_tensor_free(grad);
    del_tensor_free(teacher);
}
END_TEST

/* With no row weights, weight 1 and a zeroed gradient, each _acc form is
 * its plain loss, to the bit (gradients compared with ==, so +0 = -0). */
START_TEST(test_acc_forms_into_a_zeroed_grad_equal_the_plain_losses_bit_for_bit)
{
    enum { N = 4, K = 5 };
    float z[N * K], zt[N * K], t[N * K] = {0};
    const int32_t y[N] = {3, 0, 4, 1};
    for (int i = 0; i < N * K; i++) {
        z[i] = (float)((i * 37) % 11) * 0.7f - 3.0f + (i == 7 ? 40.0f : 0.0f);
        zt[i] = (float)((i * 53) % 13) * 0.45f - 2.0f;
    }
    for (int r = 0; r < N; r++) {
        t[r * K + y[r]] = 0.625f;
        t[r * K + (y[r] + 2) % K] = 0.375f;
    }
    del_tensor *logits = f32_2d(N, K, z), *teacher = f32_2d(N, K, zt), *targets = f32_2d(N, K, t);
    del_tensor *labels = i32_1d(N, y), *g_plain = f32_2d(N, K, NULL), *g_acc = f32_2d(N, K, NULL);
    for (int c = 0; c < 4; c++) {
        float l_plain = 0.0f, l_acc = 1.0f;
        fill(g_acc, 0.0f);
        switch (c) {
        case 0:
            ck_assert_del_ok(del_loss_cross_entropy(logits, labels, &l_plain, g_plain));
            ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.0f, 1.0f, &l_acc, g_acc));
            break;
        case 1:
            ck_assert_del_ok(del_loss_cross_entropy_smooth(logits, labels, 0.1f, &l_plain, g_plain));
            ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.1f, 1.0f, &l_acc, g_acc));
            break;
        case 2:
            ck_assert_del_ok(del_loss_soft_cross_entropy(logits, targets, &l_plain, g_plain));
            ck_assert_del_ok(del_loss_soft_cross_entropy_acc(logits, targets, NULL, 1.0f, &l_acc, g_acc));
            break;
        default:
            ck_assert_del_ok(del_loss_distill(logits, teacher, 4.0f, &l_plain, g_plain));
            ck_assert_del_ok(del_loss_distill_acc(logits, teacher, NULL, 4.0f, DEL_DISTILL_DEFAULT, 1.0f, &l_acc,
                                                  g_acc));
            break;
        }
        ck_assert_msg(memcmp(&l_plain, &l_acc, sizeof l_plain) == 0, "case %d: plain %.9g, acc %.9g", c,
                      (double)l_plain, (double)l_acc);
        const float *gp = del_tensor_data(g_plain), *ga = del_tensor_data(g_acc);
        for (int i = 0; i < N * K; i++)
            ck_assert_msg(gp[i] == ga[i], "case %d grad[%d]: plain %.9g, acc %.9g", c, i, (double)gp[i],
                          (double)ga[i]);
    }
    del_tensor_free(logits);
    del_tensor_free(teacher);
    del_tensor_free(targets);
    del_tensor_free(labels);
    del_tensor_free(g_plain);
    del_tensor_free(g_acc);
}
END_TEST

/* A teacher's softmax p passed as probabilities gives the loss of its
 * logits, at every temperature, with and without T^2; 300 classes take
 * the heap path for the row buffers. */
START_TEST(test_distill_acc_teacher_probabilities_equal_their_logits)
{
    enum { N = 2, K = 300 };
    static float s[N * K], zt[N * K];
    for (int i = 0; i < N * K; i++) {
        s[i] = (float)((i * 37) % 101) * 0.05f - 2.5f;
        zt[i] = (float)((i * 53) % 97) * 0.06f - 3.0f;
    }
    del_tensor *student = f32_2d(N, K, s), *logits = f32_2d(N, K, zt), *probs = f32_2d(N, K, NULL);
    del_tensor *g_logits = f32_2d(N, K, NULL), *g_probs = f32_2d(N, K, NULL);
    ck_assert_del_ok(del_softmax(logits, 1.0f, probs));
    const float temps[3] = {1.0f, 4.0f, 20.0f};
    for (int c = 0; c < 6; c++) {
        const int no_t2 = c % 2 ? DEL_DISTILL_NO_T_SQUARED : 0;
        float l_logits, l_probs;
        fill(g_logits, 0.0f);
        fill(g_probs, 0.0f);
        ck_assert_del_ok(del_loss_distill_acc(student, logits, NULL, temps[c / 2], no_t2, 1.0f, &l_logits, g_logits));
        ck_assert_del_ok(del_loss_distill_acc(student, probs, NULL, temps[c / 2], no_t2 | DEL_DISTILL_TEACHER_PROBS,
                                              1.0f, &l_probs, g_probs));
        ck_assert_msg(fabs(l_logits - l_probs) <= 2e-6 * fabs(l_logits) + 1e-7, "case %d: logits %.9g, probs %.9g",
                      c, (double)l_logits, (double)l_probs);
        const float *gl = del_tensor_data(g_logits), *gp = del_tensor_data(g_probs);
        for (int i = 0; i < N * K; i++)
            ck_assert_msg(fabsf(gl[i] - gp[i]) <= 1e-7f, "case %d grad[%d]: %.9g, %.9g", c, i, (double)gl[i],
                          (double)gp[i]);
    }
    del_tensor_free(student);
    del_tensor_free(logits);
    del_tensor_free(probs);
    del_tensor_free(g_logits);
    del_tensor_free(g_probs);
}
END_TEST

/* ---- finite differences against the definitions in double ---- */

/* log softmax_T(z_r)_j of a row, in double. */
static double log_softmax_at(const double *zr, int k, double temp, int j)
{
    double sum = 0.0;
    for (int i = 0; i < k; i++)
        sum += exp(zr[i] / temp);
    return zr[j] / temp - log(sum);
}

/* weight (1/N) sum_{y_r != -1} w_r -sum_j t_rj log softmax(z_r)_j,
 * t_r = (1 - s) onehot(y_r) + s / K. */
static double ce_reference(const double *z, const int32_t *y, const float *w, double s, double weight, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        if (y[r] < 0)
            continue;
        for (int j = 0; j < k; j++) {
            double t = (j == y[r] ? 1.0 - s : 0.0) + s / k;
            total -= w[r] * t * log_softmax_at(z + r * k, k, 1.0, j);
        }
    }
    return weight * total / n;
}

/* weight (1/N) sum_r w_r -sum_j t_rj log softmax(z_r)_j. */
static double soft_reference(const double *z, const float *t, const float *w, double weight, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < k; j++)
            total -= w[r] * t[r * k + j] * log_softmax_at(z + r * k, k, 1.0, j);
    return weight * total / n;
}

/* weight f (1/N) sum_r w_r KL(q_r || softmax_T(zs_r)), q from teacher
 * logits or from probabilities as p^(1/T) / sum p^(1/T). */
static double kd_reference(const double *zs, const float *teacher, int flags, const float *w, double temp,
                           double weight, int n, int k)
{
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        const float *tr = teacher + r * k;
        double qsum = 0.0;
        for (int j = 0; j < k; j++)
            qsum += flags & DEL_DISTILL_TEACHER_PROBS ? pow(tr[j], 1.0 / temp) : exp(tr[j] / temp);
        for (int j = 0; j < k; j++) {
            double q = (flags & DEL_DISTILL_TEACHER_PROBS ? pow(tr[j], 1.0 / temp) : exp(tr[j] / temp)) / qsum;
            if (q > 0.0)
                total += w[r] * q * (log(q) - log_softmax_at(zs + r * k, k, temp, j));
        }
    }
    double f = flags & DEL_DISTILL_NO_T_SQUARED ? 1.0 : temp * temp;
    return weight * f * total / n;
}

enum { FD_N = 4, FD_K = 4 };

static const float fd_logits[FD_N * FD_K] = {0.3f, -1.2f, 2.0f, 0.5f, 1.5f, 1.4f, -0.7f, 0.0f,
                                             -2.0f, 0.9f, 0.1f, 3.1f, 0.8f, -0.4f, 1.1f, -1.6f};
static const float fd_weights[FD_N] = {0.5f, 2.0f, 0.0f, 1.25f};

/* The loss being checked, as a function of the logits in double. */
typedef double (*fd_loss_fn)(const double *z, const void *ctx);

/* grad - grad0 against central differences of loss at the golden logits;
 * grad started at 0.1 everywhere, so accumulation is checked too. */
static void check_against_finite_differences(const char *what, const float *grad, fd_loss_fn loss, const void *ctx)
{
    double z[FD_N * FD_K];
    for (int i = 0; i < FD_N * FD_K; i++)
        z[i] = fd_logits[i];
    const double h = 1e-5;
    for (int i = 0; i < FD_N * FD_K; i++) {
        double saved = z[i];
        z[i] = saved + h;
        double up = loss(z, ctx);
        z[i] = saved - h;
        double down = loss(z, ctx);
        z[i] = saved;
        double numeric = (up - down) / (2 * h);
        double added = (double)grad[i] - (double)0.1f;
        ck_assert_msg(fabs(numeric - added) < 1e-6, "%s grad[%d] added %.8f, finite difference %.8f", what, i, added,
                      numeric);
    }
}

typedef struct ce_ctx {
    const int32_t *y;
    double s, weight;
} ce_ctx;

static double ce_fd(const double *z, const void *ctx)
{
    const ce_ctx *c = ctx;
    return ce_reference(z, c->y, fd_weights, c->s, c->weight, FD_N, FD_K);
}

START_TEST(test_cross_entropy_acc_gradient_matches_finite_differences)
{
    const int32_t y[FD_N] = {2, -1, 1, 0};
    const float smoothings[3] = {0.0f, 0.1f, 0.75f};
    del_tensor *logits = f32_2d(FD_N, FD_K, fd_logits), *labels = i32_1d(FD_N, y), *rw = f32_1d(FD_N, fd_weights);
    del_tensor *grad = f32_2d(FD_N, FD_K, NULL);
    for (int c = 0; c < 3; c++) {
        const ce_ctx ctx = {y, smoothings[c], 1.5};
        double z[FD_N * FD_K];
        for (int i = 0; i < FD_N * FD_K; i++)
            z[i] = fd_logits[i];
        fill(grad, 0.1f);
        float loss;
        ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, rw, smoothings[c], 1.5f, &loss, grad));
        ck_assert_double_eq_tol(loss, ce_fd(z, &ctx), 2e-6);
        check_against_finite_differences("ce", del_tensor_data(grad), ce_fd, &ctx);
    }
    del_tensor_free(logits);
    del_tensor_free(labels);
    del_tensor_free(rw);
    del_tensor_free(grad);
}
END_TEST

static const float fd_targets[FD_N * FD_K] = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f, 0.75f, 0.25f, 0.0f,
                                              0.5f, 0.0f, 0.0f,  0.5f, 0.0f, 0.0f,  1.0f,  0.0f};

static double soft_fd(const double *z, const void *ctx)
{
    (void)ctx;
    return soft_reference(z, fd_targets, fd_weights, 0.75, FD_N, FD_K);
}

START_TEST(test_soft_cross_entropy_acc_gradient_matches_finite_differences)
{
    del_tensor *logits = f32_2d(FD_N, FD_K, fd_logits), *targets = f32_2d(FD_N, FD_K, fd_targets);
    del_tensor *rw = f32_1d(FD_N, fd_weights), *grad = f32_2d(FD_N, FD_K, NULL);
    double z[FD_N * FD_K];
    for (int i = 0; i < FD_N * FD_K; i++)
        z[i] = fd_logits[i];
    fill(grad, 0.1f);
    float loss;
    ck_assert_del_ok(del_loss_soft_cross_entropy_acc(logits, targets, rw, 0.75f, &loss, grad));
    ck_assert_double_eq_tol(loss, soft_fd(z, NULL), 2e-6);
    check_against_finite_differences("soft", del_tensor_data(grad), soft_fd, NULL);
    del_tensor_free(logits);
    del_tensor_free(targets);
    del_tensor_free(rw);
    del_tensor_free(grad);
}
END_TEST

typedef struct kd_ctx {
    const float *teacher;
    int flags;
    double temp;
} kd_ctx;

static double kd_fd(const double *z, const void *ctx)
{
    const kd_ctx *c = ctx;
    return kd_reference(z, c->teacher, c->flags, fd_weights, c->temp, 0.5, FD_N, FD_K);
}

START_TEST(test_distill_acc_gradient_matches_finite_differences)
{
    const float teacher_logits[FD_N * FD_K] = {1.0f, 0.2f, -0.5f, 2.5f, -1.0f, 3.0f, 0.0f, 0.4f,
                                               0.7f, -0.3f, 2.2f, 1.1f, 0.0f, 0.0f, 1.0f, -2.0f};
    /* rows of probabilities, one with a zero */
    const float teacher_probs[FD_N * FD_K] = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f, 0.75f, 0.125f, 0.125f,
                                              0.25f, 0.25f, 0.25f, 0.25f, 0.6f, 0.1f, 0.2f, 0.1f};
    const int flags[4] = {DEL_DISTILL_DEFAULT, DEL_DISTILL_NO_T_SQUARED, DEL_DISTILL_TEACHER_PROBS,
                          DEL_DISTILL_TEACHER_PROBS | DEL_DISTILL_NO_T_SQUARED};
    const float temps[2] = {1.0f, 4.0f};
    del_tensor *student = f32_2d(FD_N, FD_K, fd_logits), *rw = f32_1d(FD_N, fd_weights);
    del_tensor *tl = f32_2d(FD_N, FD_K, teacher_logits), *tp = f32_2d(FD_N, FD_K, teacher_probs);
    del_tensor *grad = f32_2d(FD_N, FD_K, NULL);
    for (int c = 0; c < 8; c++) {
        const int f = flags[c % 4];
        const kd_ctx ctx = {f & DEL_DISTILL_TEACHER_PROBS ? teacher_probs : teacher_logits, f, temps[c / 4]};
        double z[FD_N * FD_K];
        for (int i = 0; i < FD_N * FD_K; i++)
            z[i] = fd_logits[i];
        fill(grad, 0.1f);
        float loss;
        ck_assert_del_ok(del_loss_distill_acc(student, f & DEL_DISTILL_TEACHER_PROBS ? tp : tl, rw, temps[c / 4], f,
                                              0.5f, &loss, grad));
        double want = kd_fd(z, &ctx);
        ck_assert_msg(fabs(loss - want) <= 1e-6 * (1.0 + want), "case %d: loss %.8g, reference %.8g", c,
                      (double)loss, want);
        check_against_finite_differences("kd", del_tensor_data(grad), kd_fd, &ctx);
    }
    del_tensor_free(student);
    del_tensor_free(rw);
    del_tensor_free(tl);
    del_tensor_free(tp);
    del_tensor_free(grad);
}
END_TEST

/* ---- against PyTorch (tests/data/nn/loss_acc_golden.txt) ---- */

static del_tensor *labels_from_doubles(int n, const double *v)
{
    int32_t y[16];
    ck_assert_int_le(n, 16);
    for (int r = 0; r < n; r++)
        y[r] = (int32_t)v[r];
    return i32_1d(n, y);
}

static del_tensor *weights_from_doubles(int n, const double *v)
{
    float w[16];
    ck_assert_int_le(n, 16);
    for (int r = 0; r < n; r++)
        w[r] = (float)v[r];
    return f32_1d(n, w);
}

static void check_grad(const char *what, int c, const del_tensor *grad, const double *want)
{
    const float *g = del_tensor_data((del_tensor *)grad);
    for (int64_t i = 0; i < del_tensor_numel(grad); i++)
        check_close(what, c, (int)i, g[i], want[i]);
}

/* Includes ignore_index rows, per-row weights (one exactly 0), smoothing,
 * logits in the hundreds, a batch with every row ignored, and torch's
 * reduction='mean' with ignore_index as weight N / M. */
START_TEST(test_cross_entropy_acc_matches_torch)
{
    golden gd;
    golden_load(&gd, "loss_acc_golden.txt");
    int cases = 0;
    for (int c = 0;; c++) {
        const double *meta = golden_find(&gd, "ce", c, "meta", 5);
        if (!meta)
            break;
        int n = (int)meta[0], k = (int)meta[1];
        const double *z = golden_find(&gd, "ce", c, "logits", n * k);
        const double *yv = golden_find(&gd, "ce", c, "labels", n);
        const double *wv = golden_find(&gd, "ce", c, "weights", n);
        const double *want_loss = golden_find(&gd, "ce", c, "loss", 1);
        const double *want_grad = golden_find(&gd, "ce", c, "grad", n * k);
        ck_assert(z && yv && wv && want_loss && want_grad);
        del_tensor *logits = f32_from_doubles(n, k, z), *labels = labels_from_doubles(n, yv);
        del_tensor *rw = meta[4] != 0.0 ? weights_from_doubles(n, wv) : NULL, *grad = f32_2d(n, k, NULL);
        fill(grad, 0.0f);
        float loss = -1.0f;
        ck_assert_del_ok(
            del_loss_cross_entropy_acc(logits, labels, rw, (float)meta[2], (float)meta[3], &loss, grad));
        check_close("ce loss", c, 0, loss, want_loss[0]);
        check_grad("ce grad", c, grad, want_grad);
        del_tensor_free(logits);
        del_tensor_free(labels);
        del_tensor_free(rw);
        del_tensor_free(grad);
        cases++;
    }
    ck_assert_int_ge(cases, 6);
    golden_free(&gd);
}
END_TEST

START_TEST(test_soft_cross_entropy_acc_matches_torch)
{
    golden gd;
    golden_load(&gd, "loss_acc_golden.txt");
    int cases = 0;
    for (int c = 0;; c++) {
        const double *meta = golden_find(&gd, "softacc", c, "meta", 4);
        if (!meta)
            break;
        int n = (int)meta[0], k = (int)meta[1];
        const double *z = golden_find(&gd, "softacc", c, "logits", n * k);
        const double *t = golden_find(&gd, "softacc", c, "targets", n * k);
        const double *wv = golden_find(&gd, "softacc", c, "weights", n);
        const double *want_loss = golden_find(&gd, "softacc", c, "loss", 1);
        const double *want_grad = golden_find(&gd, "softacc", c, "grad", n * k);
        ck_assert(z && t && wv && want_loss && want_grad);
        del_tensor *logits = f32_from_doubles(n, k, z), *targets = f32_from_doubles(n, k, t);
        del_tensor *rw = meta[3] != 0.0 ? weights_from_doubles(n, wv) : NULL, *grad = f32_2d(n, k, NULL);
        fill(grad, 0.0f);
        float loss = -1.0f;
        ck_assert_del_ok(del_loss_soft_cross_entropy_acc(logits, targets, rw, (float)meta[2], &loss, grad));
        check_close("soft loss", c, 0, loss, want_loss[0]);
        check_grad("soft grad", c, grad, want_grad);
        del_tensor_free(logits);
        del_tensor_free(targets);
        del_tensor_free(rw);
        del_tensor_free(grad);
        cases++;
    }
    ck_assert_int_ge(cases, 3);
    golden_free(&gd);
}
END_TEST

/* T = 4 (timm's default) with and without T^2, teacher logits and
 * probabilities (some exactly 0), row weights and loss weights. */
START_TEST(test_distill_acc_matches_torch)
{
    golden gd;
    golden_load(&gd, "loss_acc_golden.txt");
    int cases = 0;
    for (int c = 0;; c++) {
        const double *meta = golden_find(&gd, "kd", c, "meta", 6);
        if (!meta)
            break;
        int n = (int)meta[0], k = (int)meta[1];
        const double *s = golden_find(&gd, "kd", c, "student", n * k);
        const double *t = golden_find(&gd, "kd", c, "teacher", n * k);
        const double *wv = golden_find(&gd, "kd", c, "weights", n);
        const double *want_loss = golden_find(&gd, "kd", c, "loss", 1);
        const double *want_grad = golden_find(&gd, "kd", c, "grad", n * k);
        ck_assert(s && t && wv && want_loss && want_grad);
        del_tensor *student = f32_from_doubles(n, k, s), *teacher = f32_from_doubles(n, k, t);
        del_tensor *rw = meta[5] != 0.0 ? weights_from_doubles(n, wv) : NULL, *grad = f32_2d(n, k, NULL);
        fill(grad, 0.0f);
        float loss = -1.0f;
        ck_assert_del_ok(del_loss_distill_acc(student, teacher, rw, (float)meta[2], (int)meta[3], (float)meta[4],
                                              &loss, grad));
        check_close("kd loss", c, 0, loss, want_loss[0]);
        check_grad("kd grad", c, grad, want_grad);
        del_tensor_free(student);
        del_tensor_free(teacher);
        del_tensor_free(rw);
        del_tensor_free(grad);
        cases++;
    }
    ck_assert_int_ge(cases, 7);
    golden_free(&gd);
}
END_TEST

/* Two losses added into one gradient that already holds grad0 give
 * grad0 + torch's gradient of their sum: distillation
 * alpha KD + (1 - alpha) CE, LwF CE + lambda KD (no T^2), and FixMatch on a
 * concatenated batch of L labeled and U unlabeled rows, where the labeled
 * mean over L rows is weight N / L and lambda_u's mean over U rows of
 * mask * CE is weight lambda_u N / U. */
START_TEST(test_two_losses_accumulate_into_one_gradient_as_torch_sums_them)
{
    golden gd;
    golden_load(&gd, "loss_acc_golden.txt");
    for (int c = 0; c < 3; c++) {
        const double *meta = golden_find(&gd, "accum", c, "meta", 4);
        ck_assert_ptr_nonnull(meta);
        int n = c < 2 ? (int)meta[0] : (int)(meta[0] + meta[1]), k = c < 2 ? (int)meta[1] : (int)meta[2];
        const double *z = golden_find(&gd, "accum", c, "logits", n * k);
        const double *yv = golden_find(&gd, "accum", c, "labels", n);
        const double *g0 = golden_find(&gd, "accum", c, "grad0", n * k);
        const double *want_a = golden_find(&gd, "accum", c, "loss_a", 1);
        const double *want_b = golden_find(&gd, "accum", c, "loss_b", 1);
        const double *want_grad = golden_find(&gd, "accum", c, "grad", n * k);
        ck_assert(z && yv && g0 && want_a && want_b && want_grad);
        del_tensor *logits = f32_from_doubles(n, k, z), *labels = labels_from_doubles(n, yv);
        del_tensor *grad = f32_from_doubles(n, k, g0);
        float loss_a = 0.0f, loss_b = 0.0f;
        if (c < 2) {
            const float temp = (float)meta[2], coef = (float)meta[3];
            del_tensor *teacher = f32_from_doubles(n, k, golden_find(&gd, "accum", c, "teacher", n * k));
            if (c == 0) {
                ck_assert_del_ok(del_loss_distill_acc(logits, teacher, NULL, temp, 0, coef, &loss_a, grad));
                ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.0f, 1.0f - coef, &loss_b, grad));
            } else {
                ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.0f, 1.0f, &loss_a, grad));
                ck_assert_del_ok(del_loss_distill_acc(logits, teacher, NULL, temp, DEL_DISTILL_NO_T_SQUARED, coef,
                                                      &loss_b, grad));
            }
            del_tensor_free(teacher);
        } else {
            const float nl = (float)meta[0], nu = (float)meta[1], lam = (float)meta[3];
            del_tensor *pseudo = labels_from_doubles(n, golden_find(&gd, "accum", c, "pseudo", n));
            del_tensor *mask = weights_from_doubles(n, golden_find(&gd, "accum", c, "mask", n));
            ck_assert_del_ok(del_loss_cross_entropy_acc(logits, labels, NULL, 0.0f, (float)n / nl, &loss_a, grad));
            ck_assert_del_ok(
                del_loss_cross_entropy_acc(logits, pseudo, mask, 0.0f, lam * (float)n / nu, &loss_b, grad));
            del_tensor_free(pseudo);
            del_tensor_free(mask);
        }
        check_close("accum loss_a", c, 0, loss_a, want_a[0]);
        check_close("accum loss_b", c, 0, loss_b, want_b[0]);
        const float *g = del_tensor_data(grad);
        for (int i = 0; i < n * k; i++) /* the float sum rounds twice: an ulp of grad0 more */
            ck_assert_msg(fabs(g[i] - want_grad[i]) <= 2e-6 * fabs(want_grad[i]) + 1e-8,
                          "accum case %d [%d]: %.9g, torch %.9g", c, i, (double)g[i], want_grad[i]);
        del_tensor_free(logits);
        del_tensor_free(labels);
        del_tensor_free(grad);
    }
    golden_free(&gd);
}
END_TEST

/* ---- errors: each names its argument, and nothing is written ---- */

/* expr fails with DEL_EINVAL naming needle and leaves grad and loss as
 * they were (grad holds 0.5 everywhere, loss 7). */
#define ck_assert_rejects(expr, needle)                                                         \
    do {                                                                                        \
        fill(grad, 0.5f);                                                                       \
        loss = 7.0f;                                                                            \
        ck_assert_del_err(expr, DEL_EINVAL, needle);                                            \
        ck_assert_float_eq(loss, 7.0f);                                                         \
        for (int i_ = 0; i_ < 6; i_++)                                                          \
            ck_assert_msg(((float *)del_tensor_data(grad))[i_] == 0.5f, "%s wrote grad", #expr); \
    } while (0)

START_TEST(test_cross_entropy_acc_rejects_bad_arguments)
{
    const int32_t y[2] = {0, -1}, high[2] = {0, 3}, low[2] = {-2, 0};
    const float w[2] = {1.0f, 0.5f}, w_nan[2] = {1.0f, NAN}, w_neg[2] = {-0.5f, 1.0f}, w_inf[2] = {1.0f, INFINITY};
    del_tensor *logits = f32_2d(2, 3, NULL), *grad = f32_2d(2, 3, NULL), *wide = f32_2d(2, 4, NULL);
    fill(logits, 0.0f);
    del_tensor *labels = i32_1d(2, y), *lab_high = i32_1d(2, high), *lab_low = i32_1d(2, low);
    del_tensor *rw = f32_1d(2, w), *rw_nan = f32_1d(2, w_nan), *rw_neg = f32_1d(2, w_neg), *rw_inf = f32_1d(2, w_inf);
    del_tensor *rw3 = f32_1d(3, NULL), *rw_i32 = i32_1d(2, y);
    float loss;
    ck_assert_rejects(del_loss_cross_entropy_acc(NULL, labels, rw, 0.0f, 1.0f, &loss, grad),
                      "del_loss_cross_entropy_acc: 'logits' must not be NULL");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, NULL, rw, 0.0f, 1.0f, &loss, grad), "'labels'");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, 1.0f, NULL, grad), "'loss'");
    ck_assert_rejects(del_loss_cross_entropy_acc(rw, labels, rw, 0.0f, 1.0f, &loss, grad), "'logits' must be f32 [N, K]");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, rw, rw, 0.0f, 1.0f, &loss, grad), "'labels' must be i32 [2]");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, lab_high, rw, 0.0f, 1.0f, &loss, grad),
                      "del_loss_cross_entropy_acc: 'labels' row 1 must be in 0..2 or -1 (ignored), got 3");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, lab_low, rw, 0.0f, 1.0f, &loss, grad), "'labels' row 0");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw_nan, 0.0f, 1.0f, &loss, grad),
                      "del_loss_cross_entropy_acc: 'row_weights' row 1 must be a finite value >= 0, got nan");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw_neg, 0.0f, 1.0f, &loss, grad),
                      "'row_weights' row 0");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw_inf, 0.0f, 1.0f, &loss, grad),
                      "'row_weights' row 1");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw3, 0.0f, 1.0f, &loss, grad),
                      "'row_weights' must be f32 [2] (one per row of 'logits'), got f32 [3]");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw_i32, 0.0f, 1.0f, &loss, grad),
                      "'row_weights' must be f32 [2]");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, -0.1f, 1.0f, &loss, grad),
                      "del_loss_cross_entropy_acc: 'smoothing' must be in [0, 1), got -0.1");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 1.0f, 1.0f, &loss, grad), "'smoothing'");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, NAN, 1.0f, &loss, grad), "'smoothing'");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, -1.0f, &loss, grad),
                      "del_loss_cross_entropy_acc: 'weight' must be a finite value >= 0, got -1");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, NAN, &loss, grad), "'weight'");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, INFINITY, &loss, grad), "'weight'");
    ck_assert_rejects(del_loss_cross_entropy_acc(logits, labels, rw, 0.0f, 1.0f, &loss, wide), "'grad'");
    ck_assert_rejects(del_loss_cross_entropy_acc(grad, labels, rw, 0.0f, 1.0f, &loss, grad),
                      "'grad' must not share memory with 'logits'");
    /* tensors wrapping overlapping parts of one buffer */
    int64_t shape[2] = {1, 3};
    del_tensor *view = NULL, *lab1 = i32_1d(1, y), *small = NULL;
    ck_assert_del_ok(del_tensor_wrap(&view, DEL_DTYPE_F32, 2, shape, (float *)del_tensor_data(grad) + 1));
    ck_assert_del_ok(del_tensor_wrap(&small, DEL_DTYPE_F32, 2, shape, del_tensor_data(grad)));
    ck_assert_rejects(del_loss_cross_entropy_acc(view, lab1, NULL, 0.0f, 1.0f, &loss, small),
                      "'grad' must not share memory with 'logits'");
    del_tensor_free(view);
    del_tensor_free(small);
    del_tensor_free(lab1);
    del_tensor_free(logits);
    del_tensor_free(grad);
    del_tensor_free(wide);
    del_tensor_free(labels);
    del_tensor_free(lab_high);
    del_tensor_free(lab_low);
    del_tensor_free(rw);
    del_tensor_free(rw_nan);
    del_tensor_free(rw_neg);
    del_tensor_free(rw_inf);
    del_tensor_free(rw3);
    del_tensor_free(rw_i32);
}
END_TEST

START_TEST(test_soft_cross_entropy_acc_rejects_bad_arguments)
{
    const float good[6] = {1, 0, 0, 0.5f, 0.25f, 0.25f}, bad_sum[6] = {1, 0, 0, 0.5f, 0.25f, 0.2f};
    const float w_nan[2] = {NAN, 1.0f};
    del_tensor *logits = f32_2d(2, 3, NULL), *grad = f32_2d(2, 3, NULL), *wide = f32_2d(2, 4, NULL);
    fill(logits, 0.0f);
    del_tensor *targets = f32_2d(2, 3, good), *sum = f32_2d(2, 3, bad_sum), *rw_nan = f32_1d(2, w_nan);
    del_tensor *rw3 = f32_1d(3, NULL);
    float loss;
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(NULL, targets, NULL, 1.0f, &loss, grad),
                      "del_loss_soft_cross_entropy_acc: 'logits' must not be NULL");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, NULL, NULL, 1.0f, &loss, grad), "'targets'");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, targets, NULL, 1.0f, NULL, grad), "'loss'");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, wide, NULL, 1.0f, &loss, grad), "'targets'");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, sum, NULL, 1.0f, &loss, grad),
                      "del_loss_soft_cross_entropy_acc: 'targets' row 1 must sum to 1");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, targets, rw_nan, 1.0f, &loss, grad),
                      "'row_weights' row 0 must be a finite value >= 0, got nan");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, targets, rw3, 1.0f, &loss, grad),
                      "'row_weights' must be f32 [2]");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, targets, NULL, -2.0f, &loss, grad), "'weight'");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, targets, NULL, 1.0f, &loss, wide), "'grad'");
    ck_assert_rejects(del_loss_soft_cross_entropy_acc(logits, grad, NULL, 1.0f, &loss, grad),
                      "'grad' must not share memory with 'targets'");
    del_tensor_free(logits);
    del_tensor_free(grad);
    del_tensor_free(wide);
    del_tensor_free(targets);
    del_tensor_free(sum);
    del_tensor_free(rw_nan);
    del_tensor_free(rw3);
}
END_TEST

START_TEST(test_distill_acc_rejects_bad_arguments)
{
    const float probs[6] = {1, 0, 0, 0.5f, 0.25f, 0.25f}, not_probs[6] = {1, 0, 0, 0.5f, -0.25f, 0.75f};
    const float w_neg[2] = {1.0f, -1.0f};
    del_tensor *zs = f32_2d(2, 3, NULL), *grad = f32_2d(2, 3, NULL), *wide = f32_2d(2, 4, NULL);
    fill(zs, 0.0f);
    del_tensor *tp = f32_2d(2, 3, probs), *bad = f32_2d(2, 3, not_probs), *rw_neg = f32_1d(2, w_neg);
    float loss;
    const int P = DEL_DISTILL_TEACHER_PROBS;
    ck_assert_rejects(del_loss_distill_acc(NULL, tp, NULL, 4.0f, 0, 1.0f, &loss, grad),
                      "del_loss_distill_acc: 'student_logits' must not be NULL");
    ck_assert_rejects(del_loss_distill_acc(zs, NULL, NULL, 4.0f, 0, 1.0f, &loss, grad), "'teacher' must not be NULL");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, 4.0f, 0, 1.0f, NULL, grad), "'loss'");
    ck_assert_rejects(del_loss_distill_acc(zs, wide, NULL, 4.0f, 0, 1.0f, &loss, grad),
                      "'teacher' must be f32 [2, 3] like 'student_logits'");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, 0.0f, 0, 1.0f, &loss, grad),
                      "del_loss_distill_acc: 'temperature' must be a finite value > 0, got 0");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, -4.0f, 0, 1.0f, &loss, grad), "'temperature'");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, NAN, 0, 1.0f, &loss, grad), "'temperature'");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, INFINITY, 0, 1.0f, &loss, grad), "'temperature'");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, 4.0f, 4, 1.0f, &loss, grad),
                      "del_loss_distill_acc: 'flags' must be an OR of del_distill_flags, got 0x4");
    ck_assert_rejects(del_loss_distill_acc(zs, bad, NULL, 4.0f, P, 1.0f, &loss, grad),
                      "del_loss_distill_acc: 'teacher' row 1 must be a probability vector, got -0.25 at column 1");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, rw_neg, 4.0f, P, 1.0f, &loss, grad),
                      "'row_weights' row 1 must be a finite value >= 0, got -1");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, 4.0f, P, -0.5f, &loss, grad), "'weight'");
    ck_assert_rejects(del_loss_distill_acc(zs, tp, NULL, 4.0f, P, 1.0f, &loss, wide), "'grad'");
    ck_assert_rejects(del_loss_distill_acc(zs, grad, NULL, 4.0f, 0, 1.0f, &loss, grad),
                      "'grad' must not share memory with 'teacher'");
    ck_assert_rejects(del_loss_distill_acc(grad, tp, NULL, 4.0f, P, 1.0f, &loss, grad),
                      "'grad' must not share memory with 'student_logits'");
    /* negative logits as teacher are fine without the flag */
    ck_assert_del_ok(del_loss_distill_acc(zs, bad, NULL, 4.0f, 0, 1.0f, &loss, grad));
    del_tensor_free(zs);
    del_tensor_free(grad);
    del_tensor_free(wide);
    del_tensor_free(tp);
    del_tensor_free(bad);
    del_tensor_free(rw_neg);
}
END_TEST

static Suite *loss_acc_suite(void)
{
    Suite *s = suite_create("nn_loss_acc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cross_entropy_acc_weighs_rows_and_skips_ignored_ones);
    tcase_add_test(tc, test_zero_weights_add_nothing_even_for_non_finite_rows);
    tcase_add_test(tc, test_acc_forms_into_a_zeroed_grad_equal_the_plain_losses_bit_for_bit);
    tcase_add_test(tc, test_distill_acc_teacher_probabilities_equal_their_logits);
    tcase_add_test(tc, test_cross_entropy_acc_gradient_matches_finite_differences);
    tcase_add_test(tc, test_soft_cross_entropy_acc_gradient_matches_finite_differences);
    tcase_add_test(tc, test_distill_acc_gradient_matches_finite_differences);
    tcase_add_test(tc, test_cross_entropy_acc_matches_torch);
    tcase_add_test(tc, test_soft_cross_entropy_acc_matches_torch);
    tcase_add_test(tc, test_distill_acc_matches_torch);
    tcase_add_test(tc, test_two_losses_accumulate_into_one_gradient_as_torch_sums_them);
    tcase_add_test(tc, test_cross_entropy_acc_rejects_bad_arguments);
    tcase_add_test(tc, test_soft_cross_entropy_acc_rejects_bad_arguments);
    tcase_add_test(tc, test_distill_acc_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(loss_acc_suite());
}
