/* Softmax with temperature, softmax cross-entropy (hard targets, smoothed
 * hard targets, soft targets) and the distillation loss, row-wise over
 * [N, K], each in two forms: the plain one overwrites its gradient, the
 * _acc one weighs rows and adds its gradient into the caller's. Both forms
 * share one body per loss; with every weight 1 the weighting multiplies by
 * an exact 1.0, so the plain losses keep their results bit for bit.
 * N x K is small (a batch of logits), so these are plain loops; sums run in
 * double for accuracy and a fixed order. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "del/model.h"

static const char *dtype_name(del_dtype d)
{
    return d == DEL_DTYPE_F32 ? "f32" : d == DEL_DTYPE_U8 ? "u8" : d == DEL_DTYPE_I32 ? "i32" : "?";
}

/* Checks that t is f32 [N, K]; names arg in the message. */
static del_status check_logits(const char *func, const char *arg, const del_tensor *t)
{
    if (!t)
        return del_error_null(func, arg);
    if (t->dtype != DEL_DTYPE_F32 || t->ndim != 2) {
        char sh[96];
        del_tensor_shape_str(t, sh, sizeof sh);
        return del_error(DEL_EINVAL, "%s: '%s' must be f32 [N, K], got %s %s", func, arg,
                         dtype_name(t->dtype), sh);
    }
    return DEL_OK;
}

/* t must be f32 with the shape of like, called like_arg in the message. */
static del_status check_like(const char *func, const char *arg, const del_tensor *t, const char *like_arg,
                             const del_tensor *like)
{
    if (!del_tensor_has_shape(t, DEL_DTYPE_F32, like->ndim, like->shape)) {
        char want[96], got[96];
        del_tensor_shape_str(like, want, sizeof want);
        del_tensor_shape_str(t, got, sizeof got);
        return del_error(DEL_EINVAL, "%s: '%s' must be f32 %s like '%s', got %s %s", func, arg, want, like_arg,
                         dtype_name(t->dtype), got);
    }
    return DEL_OK;
}

static del_status check_same(const char *func, const char *arg, const del_tensor *t, const del_tensor *like)
{
    return check_like(func, arg, t, "logits", like);
}

/* The losses that compare two logit-shaped tensors: a (checked as logits),
 * b of a's shape, the loss pointer, and an optional grad of a's shape. */
static del_status check_pair(const char *func, const char *a_arg, const del_tensor *a, const char *b_arg,
                             const del_tensor *b, const float *loss, const del_tensor *grad)
{
    del_status st = check_logits(func, a_arg, a);
    if (st != DEL_OK)
        return st;
    if (!b)
        return del_error_null(func, b_arg);
    if (!loss)
        return del_error_null(func, "loss");
    st = check_like(func, b_arg, b, a_arg, a);
    if (st == DEL_OK && grad)
        st = check_like(func, "grad", grad, a_arg, a);
    return st;
}

DEL_API del_status del_softmax(const del_tensor *logits, float temperature, del_tensor *probs)
{
    del_status st = check_logits("del_softmax", "logits", logits);
    if (st != DEL_OK)
        return st;
    if (!probs)
        return del_error_null("del_softmax", "probs");
    st = check_same("del_softmax", "probs", probs, logits);
    if (st != DEL_OK)
        return st;
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return del_error(DEL_EINVAL, "del_softmax: 'temperature' must be a finite value > 0, got %g", (double)temperature);
    int64_t n = logits->shape[0], k = logits->shape[1];
    const float *z = logits->data;
    float *p = probs->data;
    double inv_t = 1.0 / (double)temperature;
    for (int64_t r = 0; r < n; r++) {
        const float *zr = z + r * k;
        float *pr = p + r * k;
        float zmax = zr[0];
        for (int64_t j = 1; j < k; j++)
            if (zr[j] > zmax)
                zmax = zr[j];
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            double e = exp(((double)zr[j] - zmax) * inv_t);
            pr[j] = (float)e; /* pr may alias zr: zr[j] is not read again */
            sum += e;
        }
        for (int64_t j = 0; j < k; j++)
            pr[j] = (float)((double)pr[j] / sum);
    }
    return DEL_OK;
}

/* How a loss body weighs its rows and writes its gradient. */
typedef struct loss_form {
    const del_tensor *row_weights; /* f32 [N], or NULL: every row 1 */
    double weight;                 /* scales the loss and the gradient */
    int accumulate;                /* 1: grad += ..., rows weighing 0 skipped; 0: grad = ... */
} loss_form;

/* The plain losses: every row 1, grad overwritten. */
static const loss_form PLAIN = {NULL, 1.0, 0};

static void grad_put(float *g, double v, int accumulate)
{
    *g = accumulate ? (float)((double)*g + v) : (float)v;
}

/* Row r's weight w_r; an exact 1.0 in the plain form. */
static double row_weight(const loss_form *form, int64_t r)
{
    return form->row_weights ? (double)((const float *)form->row_weights->data)[r] : 1.0;
}

/* 1 if the memory of a and b overlaps. */
static int overlaps(const del_tensor *a, const del_tensor *b)
{
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    return a0 < b0 + del_tensor_nbytes(b) && b0 < a0 + del_tensor_nbytes(a);
}

/* grad, added into, must not be read as t meanwhile. */
static del_status check_apart(const char *func, const del_tensor *grad, const char *arg, const del_tensor *t)
{
    if (grad && t && overlaps(grad, t))
        return del_error(DEL_EINVAL, "%s: 'grad' must not share memory with '%s' (it is added into)", func, arg);
    return DEL_OK;
}

/* The checks of the _acc forms beyond their plain loss's: weight finite
 * and >= 0, row_weights f32 [n] of finite values >= 0, grad apart from
 * them and from logits. */
static del_status check_form(const char *func, const loss_form *form, int64_t n, const char *logits_arg,
                             const del_tensor *logits, del_tensor *grad)
{
    if (!(form->weight >= 0.0) || !isfinite(form->weight))
        return del_error(DEL_EINVAL, "%s: 'weight' must be a finite value >= 0, got %g", func, form->weight);
    const del_tensor *rw = form->row_weights;
    if (rw) {
        if (rw->dtype != DEL_DTYPE_F32 || rw->ndim != 1 || rw->shape[0] != n) {
            char sh[96];
            del_tensor_shape_str(rw, sh, sizeof sh);
            return del_error(DEL_EINVAL, "%s: 'row_weights' must be f32 [%lld] (one per row of '%s'), got %s %s",
                             func, (long long)n, logits_arg, dtype_name(rw->dtype), sh);
        }
        const float *w = rw->data;
        for (int64_t r = 0; r < n; r++)
            if (!(w[r] >= 0.0f) || !isfinite(w[r]))
                return del_error(DEL_EINVAL, "%s: 'row_weights' row %lld must be a finite value >= 0, got %g",
                                 func, (long long)r, (double)w[r]);
    }
    del_status st = check_apart(func, grad, logits_arg, logits);
    return st == DEL_OK ? check_apart(func, grad, "row_weights", rw) : st;
}

/* Hard-label cross-entropy against the smoothed target
 * (1 - s) onehot(y) + s / K, the body of every hard-label loss. With
 * s = 0 every smoothing term is an exact 0 or 1 factor, so the result is
 * the plain cross-entropy bit for bit. The accumulating form takes label
 * -1 as an ignored row. */
static del_status hard_cross_entropy(const char *func, const del_tensor *logits, const del_tensor *labels,
                                     double smoothing, const loss_form *form, float *loss, del_tensor *grad)
{
    del_status st = check_logits(func, "logits", logits);
    if (st != DEL_OK)
        return st;
    if (!labels)
        return del_error_null(func, "labels");
    if (!loss)
        return del_error_null(func, "loss");
    int64_t n = logits->shape[0], k = logits->shape[1];
    if (labels->dtype != DEL_DTYPE_I32 || labels->ndim != 1 || labels->shape[0] != n) {
        char sh[96];
        del_tensor_shape_str(labels, sh, sizeof sh);
        return del_error(DEL_EINVAL, "%s: 'labels' must be i32 [%lld] (one per row of 'logits'), got %s %s",
                         func, (long long)n, dtype_name(labels->dtype), sh);
    }
    if (grad) {
        st = check_same(func, "grad", grad, logits);
        if (st != DEL_OK)
            return st;
    }
    if (form->accumulate) {
        st = check_form(func, form, n, "logits", logits, grad);
        if (st == DEL_OK)
            st = check_apart(func, grad, "labels", labels);
        if (st != DEL_OK)
            return st;
    }
    const int32_t *y = labels->data;
    const int32_t lowest = form->accumulate ? -1 : 0;
    for (int64_t r = 0; r < n; r++)
        if (y[r] < lowest || y[r] >= k)
            return del_error(DEL_EINVAL, "%s: 'labels' row %lld must be in 0..%lld%s, got %d", func, (long long)r,
                             (long long)(k - 1), form->accumulate ? " or -1 (ignored)" : "", (int)y[r]);
    const float *z = logits->data;
    float *g = grad ? grad->data : NULL;
    const double keep = 1.0 - smoothing, spread = smoothing / (double)k;
    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        const double w = row_weight(form, r), c = form->weight * w;
        if (y[r] < 0 || c == 0.0)
            continue;
        const float *zr = z + r * k;
        float zmax = zr[0];
        for (int64_t j = 1; j < k; j++)
            if (zr[j] > zmax)
                zmax = zr[j];
        double sum = 0.0, shifted_sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            sum += exp((double)zr[j] - zmax);
            shifted_sum += (double)zr[j] - zmax;
        }
        double log_sum = log(sum);
        /* -sum_j t_j log softmax_j = log sum_j exp(z_j - max)
         *   - [(1 - s)(z_y - max) + (s / K) sum_j (z_j - max)] */
        double target_dot = keep * ((double)zr[y[r]] - zmax);
        if (spread != 0.0) /* 0 * -inf would turn a finite plain loss into NaN */
            target_dot += spread * shifted_sum;
        total += w * (log_sum - target_dot);
        if (g) {
            float *gr = g + r * k;
            for (int64_t j = 0; j < k; j++) {
                double pj = exp((double)zr[j] - zmax - log_sum);
                grad_put(gr + j, c * (pj - ((j == y[r] ? keep : 0.0) + spread)) / (double)n, form->accumulate);
            }
        }
    }
    *loss = (float)(form->weight * total / (double)n);
    return DEL_OK;
}

DEL_API del_status del_loss_cross_entropy(const del_tensor *logits, const del_tensor *labels, float *loss,
                                          del_tensor *grad)
{
    return hard_cross_entropy("del_loss_cross_entropy", logits, labels, 0.0, &PLAIN, loss, grad);
}

static del_status check_smoothing(const char *func, float smoothing)
{
    /* torch also takes s = 1, but then the label no longer matters. */
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'smoothing' must be in [0, 1), got %g", func, (double)smoothing);
    return DEL_OK;
}

DEL_API del_status del_loss_cross_entropy_smooth(const del_tensor *logits, const del_tensor *labels,
                                                 float smoothing, float *loss, del_tensor *grad)
{
    static const char *func = "del_loss_cross_entropy_smooth";
    del_status st = check_smoothing(func, smoothing);
    return st != DEL_OK ? st : hard_cross_entropy(func, logits, labels, (double)smoothing, &PLAIN, loss, grad);
}

DEL_API del_status del_loss_cross_entropy_acc(const del_tensor *logits, const del_tensor *labels,
                                              const del_tensor *row_weights, float smoothing, float weight,
                                              float *loss, del_tensor *grad)
{
    static const char *func = "del_loss_cross_entropy_acc";
    del_status st = check_smoothing(func, smoothing);
    const loss_form form = {row_weights, (double)weight, 1};
    return st != DEL_OK ? st : hard_cross_entropy(func, logits, labels, (double)smoothing, &form, loss, grad);
}

/* Rows of targets must be probability vectors; the tolerance admits the
 * rounding of labels mixed in float (CutMix, MixUp, teacher softmax). */
#define SOFT_ROW_TOLERANCE 1e-3

/* Every row of t (f32 [N, K], called arg) is a probability vector. */
static del_status check_prob_rows(const char *func, const char *arg, const del_tensor *t)
{
    int64_t n = t->shape[0], k = t->shape[1];
    const float *p = t->data;
    for (int64_t r = 0; r < n; r++) {
        const float *pr = p + r * k;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            if (!(pr[j] >= 0.0f) || !isfinite(pr[j]))
                return del_error(DEL_EINVAL, "%s: '%s' row %lld must be a probability vector, got %g at column %lld",
                                 func, arg, (long long)r, (double)pr[j], (long long)j);
            sum += pr[j];
        }
        if (fabs(sum - 1.0) > SOFT_ROW_TOLERANCE)
            return del_error(DEL_EINVAL, "%s: '%s' row %lld must sum to 1 (within %g), got %.6g", func, arg,
                             (long long)r, SOFT_ROW_TOLERANCE, sum);
    }
    return DEL_OK;
}

static del_status soft_cross_entropy(const char *func, const del_tensor *logits, const del_tensor *targets,
                                     const loss_form *form, float *loss, del_tensor *grad)
{
    del_status st = check_pair(func, "logits", logits, "targets", targets, loss, grad);
    if (st == DEL_OK && form->accumulate) {
        st = check_form(func, form, logits->shape[0], "logits", logits, grad);
        if (st == DEL_OK)
            st = check_apart(func, grad, "targets", targets);
    }
    if (st == DEL_OK)
        st = check_prob_rows(func, "targets", targets);
    if (st != DEL_OK)
        return st;
    int64_t n = logits->shape[0], k = logits->shape[1];
    const float *z = logits->data, *t = targets->data;
    float *g = grad ? grad->data : NULL;
    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        const double w = row_weight(form, r), c = form->weight * w;
        if (c == 0.0)
            continue;
        const float *zr = z + r * k;
        const float *tr = t + r * k;
        float zmax = zr[0];
        for (int64_t j = 1; j < k; j++)
            if (zr[j] > zmax)
                zmax = zr[j];
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++)
            sum += exp((double)zr[j] - zmax);
        double log_sum = log(sum);
        /* Zero targets are skipped rather than multiplied, so that a one-hot
         * row gives exactly del_loss_cross_entropy's value (and 0 * inf
         * cannot turn a finite loss into NaN). */
        double row = 0.0;
        for (int64_t j = 0; j < k; j++)
            if (tr[j] != 0.0f)
                row += (double)tr[j] * (log_sum - ((double)zr[j] - zmax));
        total += w * row;
        if (g) {
            float *gr = g + r * k;
            for (int64_t j = 0; j < k; j++) {
                double pj = exp((double)zr[j] - zmax - log_sum);
                grad_put(gr + j, c * (pj - (double)tr[j]) / (double)n, form->accumulate);
            }
        }
    }
    *loss = (float)(form->weight * total / (double)n);
    return DEL_OK;
}

DEL_API del_status del_loss_soft_cross_entropy(const del_tensor *logits, const del_tensor *targets, float *loss,
                                               del_tensor *grad)
{
    return soft_cross_entropy("del_loss_soft_cross_entropy", logits, targets, &PLAIN, loss, grad);
}

DEL_API del_status del_loss_soft_cross_entropy_acc(const del_tensor *logits, const del_tensor *targets,
                                                   const del_tensor *row_weights, float weight, float *loss,
                                                   del_tensor *grad)
{
    const loss_form form = {row_weights, (double)weight, 1};
    return soft_cross_entropy("del_loss_soft_cross_entropy_acc", logits, targets, &form, loss, grad);
}

/* Row r of softmax_T as log-probabilities in double: lp[j] = (z_j - max) / T
 * - log sum_i exp((z_i - max) / T). */
static void log_softmax_row(const float *zr, int64_t k, double inv_t, double *lp)
{
    float zmax = zr[0];
    for (int64_t j = 1; j < k; j++)
        if (zr[j] > zmax)
            zmax = zr[j];
    double sum = 0.0;
    for (int64_t j = 0; j < k; j++) {
        lp[j] = ((double)zr[j] - zmax) * inv_t;
        sum += exp(lp[j]);
    }
    double log_sum = log(sum);
    for (int64_t j = 0; j < k; j++)
        lp[j] -= log_sum;
}

/* The probability row pr softened by T, as log-probabilities in double:
 * log softmax(log p / T), i.e. log of p^(1/T) / sum_i p_i^(1/T). A zero
 * probability stays 0 (log -inf); a valid row has a positive entry. */
static void log_soften_probs_row(const float *pr, int64_t k, double inv_t, double *lp)
{
    double lmax = -INFINITY;
    for (int64_t j = 0; j < k; j++) {
        lp[j] = log((double)pr[j]);
        if (lp[j] > lmax)
            lmax = lp[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j < k; j++) {
        lp[j] = (lp[j] - lmax) * inv_t;
        sum += exp(lp[j]);
    }
    double log_sum = log(sum);
    for (int64_t j = 0; j < k; j++)
        lp[j] -= log_sum;
}

/* Rows longer than this take their two log-probability rows from the heap. */
#define DISTILL_STACK_CLASSES 256

static del_status distill(const char *func, const del_tensor *student, const char *teacher_arg,
                          const del_tensor *teacher, float temperature, int flags, const loss_form *form,
                          float *loss, del_tensor *grad)
{
    del_status st = check_pair(func, "student_logits", student, teacher_arg, teacher, loss, grad);
    if (st != DEL_OK)
        return st;
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return del_error(DEL_EINVAL, "%s: 'temperature' must be a finite value > 0, got %g", func,
                         (double)temperature);
    if (flags & ~(DEL_DISTILL_TEACHER_PROBS | DEL_DISTILL_NO_T_SQUARED))
        return del_error(DEL_EINVAL, "%s: 'flags' must be an OR of del_distill_flags, got %#x", func,
                         (unsigned)flags);
    if (form->accumulate) {
        st = check_form(func, form, student->shape[0], "student_logits", student, grad);
        if (st == DEL_OK)
            st = check_apart(func, grad, teacher_arg, teacher);
        if (st != DEL_OK)
            return st;
    }
    const int probs = (flags & DEL_DISTILL_TEACHER_PROBS) != 0;
    if (probs && (st = check_prob_rows(func, teacher_arg, teacher)) != DEL_OK)
        return st;
    int64_t n = student->shape[0], k = student->shape[1];
    double stack_rows[2 * DISTILL_STACK_CLASSES];
    double *rows = stack_rows;
    if (k > DISTILL_STACK_CLASSES) {
        rows = malloc(2 * (size_t)k * sizeof *rows);
        if (!rows)
            return del_error(DEL_ENOMEM, "%s: out of memory for %lld classes", func, (long long)k);
    }
    double *ls = rows, *lt = rows + k;
    const double t = (double)temperature, inv_t = 1.0 / t;
    /* T^2 KL and its gradient T^2 (1/T)(p_s - p_t) = T (p_s - p_t); without
     * T^2, KL and (1/T)(p_s - p_t). */
    const int t_squared = !(flags & DEL_DISTILL_NO_T_SQUARED);
    const double loss_factor = t_squared ? t * t : 1.0, grad_factor = t_squared ? t : inv_t;
    const float *zs = student->data, *zt = teacher->data;
    float *g = grad ? grad->data : NULL;
    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        const double w = row_weight(form, r), c = form->weight * w;
        if (c == 0.0)
            continue;
        log_softmax_row(zs + r * k, k, inv_t, ls);
        if (probs)
            log_soften_probs_row(zt + r * k, k, inv_t, lt);
        else
            log_softmax_row(zt + r * k, k, inv_t, lt);
        /* KL(p_t || p_s) = sum_j p_t,j (log p_t,j - log p_s,j); a teacher
         * probability that underflows to 0 adds 0, as torch's xlogy. */
        double row = 0.0;
        for (int64_t j = 0; j < k; j++) {
            double pt = exp(lt[j]);
            if (pt != 0.0)
                row += pt * (lt[j] - ls[j]);
        }
        total += w * row;
        if (g) {
            float *gr = g + r * k;
            const double cg = c * grad_factor;
            for (int64_t j = 0; j < k; j++)
                grad_put(gr + j, cg * (exp(ls[j]) - exp(lt[j])) / (double)n, form->accumulate);
        }
    }
    *loss = (float)(form->weight * loss_factor * total / (double)n);
    if (rows != stack_rows)
        free(rows);
    return DEL_OK;
}

DEL_API del_status del_loss_distill(const del_tensor *student_logits, const del_tensor *teacher_logits,
                                    float temperature, float *loss, del_tensor *grad)
{
    return distill("del_loss_distill", student_logits, "teacher_logits", teacher_logits, temperature,
                   DEL_DISTILL_DEFAULT, &PLAIN, loss, grad);
}

DEL_API del_status del_loss_distill_acc(const del_tensor *student_logits, const del_tensor *teacher,
                                        const del_tensor *row_weights, float temperature, int flags, float weight,
                                        float *loss, del_tensor *grad)
{
    const loss_form form = {row_weights, (double)weight, 1};
    return distill("del_loss_distill_acc", student_logits, "teacher", teacher, temperature, flags, &form, loss,
                   grad);
}
