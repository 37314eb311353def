/* Pseudo-labeling (SPEC §1.5, Lee 2013): each step trains on a labeled
 * batch and an unlabeled one, the unlabeled images labeled by the model's
 * own prediction on them in that very step (argmax, or the softmax as a
 * soft target), kept when its top probability reaches a threshold:
 *   loss = CE(labels, z_L) + α(t) · (1/N_U) Σ_{kept} CE(pseudo, z_U)
 * with α(t) = 0 for t < T1, α_f (t − T1)/(T2 − T1) for T1 ≤ t < T2, α_f
 * after (t: steps taken before this one; α_f = 3, T1 and T2 by default 20 %
 * and 60 % of the run). The pseudo-labels are constants (no gradient flows
 * through them). The unlabeled pass goes through the model in one joint
 * batch with the labeled one (batchnorm statistics of both), or, as an
 * option, on its own with the running statistics left as the labeled pass
 * made them. Before T1 (α = 0) the unlabeled batch is not run.
 * Noisy Student's student (noisy_student.c) runs this objective with
 * stored targets: the unlabeled set's soft labels (a teacher's, computed
 * once) instead of the model's own prediction, at a constant weight. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64
#define DEFAULT_UNLABELED_BATCH 256
#define DEFAULT_ALPHA_F 3.0f
#define DEFAULT_T1_FRACTION 0.2
#define DEFAULT_T2_FRACTION 0.6

typedef struct pseudo_state {
    int64_t t1, t2;             /* the ramp as set; t2 == 0: the default fractions of the run */
    int64_t ramp_t1, ramp_t2;   /* the ramp of the current fit */
    float alpha_f;
    float threshold;            /* 0: every pseudo-label kept */
    int soft;                   /* 1: the softmax as the target */
    del_pseudo_bn bn;
    int stored;                 /* 1: targets are the unlabeled set's soft labels, weight stored_weight */
    float stored_weight;
    int32_t *truth;             /* the unlabeled set's hidden labels (-1 unknown), for the log only */
    int64_t truth_n;
    int64_t seen, kept, judged, correct; /* of the current fit */
    float *saved_buffers;       /* the running statistics around a frozen unlabeled pass */
    int64_t saved_n;
    del_tensor *x;              /* the joint batch */
    del_tensor *z_l, *z_u;      /* the logits of each part */
    del_tensor *g, *g_l, *g_u;  /* d loss / d logits: joint, labeled, unlabeled */
    del_tensor *labels, *targets, *mask;
} pseudo_state;

static del_status pseudo_init(void *state, del_trainer *tr, const char *fn)
{
    pseudo_state *s = state;
    const del_dataset *labeled = tr->streams[DEL_STREAM_L].data;
    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= tr->num_outputs)
            return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'model' has only %d outputs", fn,
                               (int)labels[i], tr->num_outputs);
    s->alpha_f = DEFAULT_ALPHA_F;
    s->bn = DEL_PSEUDO_BN_JOINT;
    return DEL_OK;
}

static void pseudo_release(void *state)
{
    pseudo_state *s = state;
    free(s->truth);
    free(s->saved_buffers);
    del_tensor *const all[] = {s->x, s->z_l, s->z_u, s->g, s->g_l, s->g_u, s->labels, s->targets, s->mask};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        del_tensor_free(all[i]);
}

/* The ramp of a fit of `steps` steps: as set, or 20 % and 60 % of the run
 * (its total steps when set, else up to this fit's end). */
static del_status pseudo_begin_fit(void *state, del_trainer *tr, int64_t steps, const char *fn)
{
    (void)fn;
    pseudo_state *s = state;
    if (s->t2 > 0) {
        s->ramp_t1 = s->t1;
        s->ramp_t2 = s->t2;
    } else {
        const int64_t run = tr->set.total_steps > 0 ? tr->set.total_steps : tr->steps_done + steps;
        s->ramp_t1 = (int64_t)llround(DEFAULT_T1_FRACTION * (double)run);
        s->ramp_t2 = (int64_t)llround(DEFAULT_T2_FRACTION * (double)run);
        if (s->ramp_t2 <= s->ramp_t1)
            s->ramp_t2 = s->ramp_t1 + 1;
    }
    s->seen = s->kept = s->judged = s->correct = 0;
    return DEL_OK;
}

/* α(t), t the steps taken before this one. */
static float ramp_alpha(const pseudo_state *s, int64_t t)
{
    if (s->stored)
        return s->stored_weight;
    if (t < s->ramp_t1)
        return 0.0f;
    if (t >= s->ramp_t2)
        return s->alpha_f;
    return (float)((double)s->alpha_f * (double)(t - s->ramp_t1) / (double)(s->ramp_t2 - s->ramp_t1));
}

/* The pseudo-labels of the unlabeled batch u from its logits z, and their
 * loss (weight alpha) into s->g_u. */
static del_status pseudo_loss(pseudo_state *s, const del_trainer *tr, const batch_slot *u, const del_tensor *z,
                              float alpha, float *loss)
{
    const int64_t n = del_tensor_dim(z, 0);
    const int k = tr->num_outputs;
    del_status st = del_trainer_ensure_matrix(&s->g_u, n, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->targets, n, k);
    const int64_t rows[1] = {n};
    if (st == DEL_OK && (!s->mask || del_tensor_dim(s->mask, 0) != n)) {
        del_tensor_free(s->mask);
        s->mask = NULL;
        st = del_tensor_new(&s->mask, DEL_DTYPE_F32, 1, rows);
    }
    if (st == DEL_OK && (!s->labels || del_tensor_dim(s->labels, 0) != n)) {
        del_tensor_free(s->labels);
        s->labels = NULL;
        st = del_tensor_new(&s->labels, DEL_DTYPE_I32, 1, rows);
    }
    if (st != DEL_OK)
        return st;
    if (s->stored) {
        st = del_dataset_soft_batch(tr->streams[DEL_STREAM_U].data, u->idx, n, s->targets);
        if (st != DEL_OK)
            return st;
    }
    const float *zv = del_tensor_data((del_tensor *)z);
    float *p = del_tensor_data(s->targets), *mask = del_tensor_data(s->mask);
    int32_t *label = del_tensor_data(s->labels);
    for (int64_t r = 0; r < n; r++) {
        const float *zr = zv + r * k;
        float *pr = p + r * k;
        int best = 0;
        double top = 0.0;
        if (s->stored) {
            for (int c = 1; c < k; c++)
                best = pr[c] > pr[best] ? c : best;
            top = pr[best];
        } else {
            for (int c = 1; c < k; c++)
                best = zr[c] > zr[best] ? c : best;
            /* The softmax in double; the top probability is 1 / sum. */
            double sum = 0.0;
            for (int c = 0; c < k; c++)
                sum += exp((double)zr[c] - (double)zr[best]);
            for (int c = 0; c < k; c++)
                pr[c] = (float)(exp((double)zr[c] - (double)zr[best]) / sum);
            top = 1.0 / sum;
        }
        const int keep = top >= (double)s->threshold;
        mask[r] = keep ? 1.0f : 0.0f;
        label[r] = keep ? best : -1;
        s->seen++;
        s->kept += keep;
        const int64_t row = u->idx[r];
        if (keep && s->truth && s->truth[row] >= 0) {
            s->judged++;
            s->correct += s->truth[row] == best;
        }
    }
    memset(del_tensor_data(s->g_u), 0, (size_t)n * (size_t)k * sizeof(float));
    return s->soft || s->stored ? del_loss_soft_cross_entropy_acc(z, s->targets, s->mask, alpha, loss, s->g_u)
                   : del_loss_cross_entropy_acc(z, s->labels, NULL, 0.0f, alpha, loss, s->g_u);
}

/* *t as an f32 tensor of x's image shape with n rows, kept when it has it. */
static del_status ensure_images(del_tensor **t, const del_tensor *x, int64_t n)
{
    const int64_t shape[4] = {n, del_tensor_dim(x, 1), del_tensor_dim(x, 2), del_tensor_dim(x, 3)};
    if (*t && del_tensor_dim(*t, 0) == n)
        return DEL_OK;
    del_tensor *fresh = NULL;
    del_status st = del_tensor_new(&fresh, DEL_DTYPE_F32, 4, shape);
    if (st == DEL_OK) {
        del_tensor_free(*t);
        *t = fresh;
    }
    return st;
}

/* Rows [first, first + n) of the model's output into *t. */
static del_status copy_rows(del_tensor **t, const del_tensor *z, int64_t first, int64_t n, int k)
{
    del_status st = del_trainer_ensure_matrix(t, n, k);
    if (st == DEL_OK)
        memcpy(del_tensor_data(*t), (const float *)del_tensor_data((del_tensor *)z) + first * k,
               (size_t)n * (size_t)k * sizeof(float));
    return st;
}

/* One forward and backward of the labeled and unlabeled batches together. */
static del_status joint_step(pseudo_state *s, del_trainer *tr, const train_step_in *in, float alpha, float *ce,
                             float *lu)
{
    const batch_slot *l = in->in[DEL_STREAM_L], *u = in->in[DEL_STREAM_U];
    const int64_t nl = del_tensor_dim(l->x, 0), nu = del_tensor_dim(u->x, 0);
    const int k = tr->num_outputs;
    const size_t image = (size_t)del_tensor_numel(l->x) / (size_t)nl;
    del_status st = ensure_images(&s->x, l->x, nl + nu);
    if (st == DEL_OK) {
        float *x = del_tensor_data(s->x);
        memcpy(x, del_tensor_data(l->x), (size_t)nl * image * sizeof(float));
        memcpy(x + (size_t)nl * image, del_tensor_data(u->x), (size_t)nu * image * sizeof(float));
        st = del_model_forward(in->model, s->x);
    }
    const del_tensor *z = del_model_output(in->model);
    if (st == DEL_OK)
        st = copy_rows(&s->z_l, z, 0, nl, k);
    if (st == DEL_OK)
        st = copy_rows(&s->z_u, z, nl, nu, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g_l, nl, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g, nl + nu, k);
    if (st == DEL_OK)
        st = del_task_loss(tr, l, s->z_l, ce, s->g_l);
    if (st == DEL_OK)
        st = pseudo_loss(s, tr, u, s->z_u, alpha, lu);
    if (st != DEL_OK)
        return st;
    float *g = del_tensor_data(s->g);
    memcpy(g, del_tensor_data(s->g_l), (size_t)nl * (size_t)k * sizeof(float));
    memcpy(g + nl * k, del_tensor_data(s->g_u), (size_t)nu * (size_t)k * sizeof(float));
    return del_model_backward(in->model, s->g);
}

/* The labeled batch, then the unlabeled one on its own, the running
 * statistics put back as the labeled pass left them. */
static del_status frozen_step(pseudo_state *s, del_trainer *tr, const train_step_in *in, float alpha, float *ce,
                              float *lu, const char *fn)
{
    const batch_slot *l = in->in[DEL_STREAM_L], *u = in->in[DEL_STREAM_U];
    del_model *m = in->model;
    const int64_t nb = del_model_num_buffers(m);
    if (nb > s->saved_n) {
        float *p = realloc(s->saved_buffers, (size_t)nb * sizeof *p);
        if (!p)
            return train_error(DEL_ENOMEM, "%s: out of memory for %lld running statistics", fn, (long long)nb);
        s->saved_buffers = p;
        s->saved_n = nb;
    }
    del_status st = del_trainer_ensure_matrix(&s->g_l, del_tensor_dim(l->x, 0), tr->num_outputs);
    if (st == DEL_OK)
        st = del_model_forward(m, l->x);
    if (st == DEL_OK)
        st = del_task_loss(tr, l, del_model_output(m), ce, s->g_l);
    if (st == DEL_OK)
        st = del_model_backward(m, s->g_l);
    if (st != DEL_OK)
        return st;
    if (nb > 0)
        memcpy(s->saved_buffers, del_model_buffers(m), (size_t)nb * sizeof(float));
    st = del_model_forward(m, u->x);
    if (st == DEL_OK)
        st = pseudo_loss(s, tr, u, del_model_output(m), alpha, lu);
    if (st == DEL_OK)
        st = del_model_backward(m, s->g_u);
    if (nb > 0)
        memcpy(del_model_buffers(m), s->saved_buffers, (size_t)nb * sizeof(float));
    return st;
}

static del_status pseudo_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    pseudo_state *s = state;
    const float alpha = ramp_alpha(s, in->step - 1);
    float ce = 0.0f, lu = 0.0f;
    del_status st = DEL_OK;
    if (alpha == 0.0f) {
        const batch_slot *l = in->in[DEL_STREAM_L];
        st = del_trainer_ensure_matrix(&s->g_l, del_tensor_dim(l->x, 0), tr->num_outputs);
        if (st == DEL_OK)
            st = del_model_forward(in->model, l->x);
        if (st == DEL_OK)
            st = del_task_loss(tr, l, del_model_output(in->model), &ce, s->g_l);
        if (st == DEL_OK)
            st = del_model_backward(in->model, s->g_l);
    } else {
        st = s->bn == DEL_PSEUDO_BN_JOINT ? joint_step(s, tr, in, alpha, &ce, &lu)
                                           : frozen_step(s, tr, in, alpha, &ce, &lu, fn);
    }
    *loss = ce + lu;
    return st;
}

static del_status pseudo_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)tr;
    (void)fn;
    const pseudo_state *s = state;
    del_status st = del_checkpoint_set_i64(ck, "pseudo_t1", s->t1);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "pseudo_t2", s->t2);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "pseudo_alpha_f", s->alpha_f);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "pseudo_threshold", s->threshold);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "pseudo_soft", s->soft);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "pseudo_bn", s->bn);
    if (st == DEL_OK && s->stored)
        st = del_checkpoint_set_f32(ck, "pseudo_stored_weight", s->stored_weight);
    return st;
}

static del_status pseudo_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    (void)tr;
    pseudo_state *s = state;
    int64_t t1 = 0, t2 = 0, soft = 0, bn = 0;
    float alpha_f = 0.0f, threshold = 0.0f;
    del_status st = del_trainer_read_i64(ck, "pseudo_t1", &t1, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "pseudo_t2", &t2, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "pseudo_alpha_f", &alpha_f, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "pseudo_threshold", &threshold, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "pseudo_soft", &soft, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "pseudo_bn", &bn, fn);
    if (st != DEL_OK)
        return st;
    const int stored = del_checkpoint_field_kind(ck, "pseudo_stored_weight") != DEL_CHECKPOINT_KIND_NONE;
    if (stored != s->stored)
        return train_error(DEL_EINVAL, "%s: the checkpoint is of a pseudo-label trainer %s stored targets, this one "
                           "%s", fn, stored ? "with" : "without", s->stored ? "has them" : "has none");
    float stored_weight = 0.0f;
    if (stored && (st = del_trainer_read_f32(ck, "pseudo_stored_weight", &stored_weight, fn)) != DEL_OK)
        return st;
    if (stored && (!(stored_weight >= 0.0f) || !isfinite(stored_weight)))
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (pseudo-label settings out of range)", fn);
    if (t1 < 0 || t2 < 0 || (t2 > 0 && t2 <= t1) || !(alpha_f >= 0.0f) || !isfinite(alpha_f) ||
        !(threshold >= 0.0f && threshold <= 1.0f) || (soft != 0 && soft != 1) ||
        (bn != DEL_PSEUDO_BN_JOINT && bn != DEL_PSEUDO_BN_FROZEN))
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (pseudo-label settings out of range)", fn);
    s->t1 = t1;
    s->t2 = t2;
    s->alpha_f = alpha_f;
    s->threshold = threshold;
    s->soft = (int)soft;
    s->bn = (del_pseudo_bn)bn;
    s->stored_weight = stored_weight;
    return DEL_OK;
}

const del_objective del_objective_pseudo_label = {
    /* .name       = */ "pseudo_label",
    /* .streams    = */ (1u << DEL_STREAM_L) | (1u << DEL_STREAM_U),
    /* .state_size = */ sizeof(pseudo_state),
    /* .init       = */ pseudo_init,
    /* .release    = */ pseudo_release,
    /* .begin_fit  = */ pseudo_begin_fit,
    /* .step       = */ pseudo_step,
    /* .save       = */ pseudo_save,
    /* .load       = */ pseudo_load,
};

DEL_API del_status del_trainer_new_pseudo_label(del_trainer **out, del_model *model, const del_dataset *labeled,
                                                const del_dataset *unlabeled)
{
    static const char fn[] = "del_trainer_new_pseudo_label";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    if (!unlabeled)
        return train_error_null(fn, "unlabeled");
    del_trainer *tr = NULL;
    del_status st = del_trainer_create(&tr, &del_objective_pseudo_label, model, fn);
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_U, unlabeled, 0, DEFAULT_UNLABELED_BATCH, "unlabeled", fn);
    return del_trainer_finish(out, tr, st, fn);
}

del_status del_pseudo_label_use_stored(del_trainer *tr, float weight, const char *fn)
{
    const del_dataset *u = tr->streams[DEL_STREAM_U].data;
    if (del_dataset_num_soft_classes(u) != tr->num_outputs)
        return train_error(DEL_EINVAL, "%s: the pseudo-labeled set has %d soft classes, the model %d outputs", fn,
                           del_dataset_num_soft_classes(u), tr->num_outputs);
    pseudo_state *s = tr->state;
    s->stored = 1;
    s->stored_weight = weight;
    s->soft = 1;
    return DEL_OK;
}

static del_status pseudo_of(del_trainer *tr, pseudo_state **s, const char *setting, const char *fn)
{
    void *state = NULL;
    del_status st = del_trainer_state_of(tr, &del_objective_pseudo_label, NULL, &state, setting, fn);
    *s = state;
    return st;
}

DEL_API del_status del_trainer_set_pseudo_label_ramp(del_trainer *trainer, int64_t t1, int64_t t2, float alpha_f)
{
    static const char fn[] = "del_trainer_set_pseudo_label_ramp";
    pseudo_state *s = NULL;
    del_status st = pseudo_of(trainer, &s, "ramp", fn);
    if (st != DEL_OK)
        return st;
    if (t1 < 0)
        return train_error(DEL_EINVAL, "%s: 't1' must be >= 0, got %lld", fn, (long long)t1);
    if (t2 <= t1)
        return train_error(DEL_EINVAL, "%s: 't2' must be > 't1' (%lld), got %lld", fn, (long long)t1, (long long)t2);
    if (!(alpha_f >= 0.0f) || !isfinite(alpha_f))
        return train_error(DEL_EINVAL, "%s: 'alpha_f' must be a finite value >= 0, got %g", fn, (double)alpha_f);
    s->t1 = t1;
    s->t2 = t2;
    s->alpha_f = alpha_f;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_pseudo_label_threshold(del_trainer *trainer, float threshold)
{
    static const char fn[] = "del_trainer_set_pseudo_label_threshold";
    pseudo_state *s = NULL;
    del_status st = pseudo_of(trainer, &s, "threshold", fn);
    if (st != DEL_OK)
        return st;
    if (!(threshold >= 0.0f && threshold <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'threshold' must be in [0, 1], got %g", fn, (double)threshold);
    s->threshold = threshold;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_pseudo_label_soft(del_trainer *trainer, int soft)
{
    static const char fn[] = "del_trainer_set_pseudo_label_soft";
    pseudo_state *s = NULL;
    del_status st = pseudo_of(trainer, &s, "soft", fn);
    if (st != DEL_OK)
        return st;
    if (soft != 0 && soft != 1)
        return train_error(DEL_EINVAL, "%s: 'soft' must be 0 or 1, got %d", fn, soft);
    s->soft = soft;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_pseudo_label_bn(del_trainer *trainer, del_pseudo_bn mode)
{
    static const char fn[] = "del_trainer_set_pseudo_label_bn";
    pseudo_state *s = NULL;
    del_status st = pseudo_of(trainer, &s, "bn", fn);
    if (st != DEL_OK)
        return st;
    if (mode != DEL_PSEUDO_BN_JOINT && mode != DEL_PSEUDO_BN_FROZEN)
        return train_error(DEL_EINVAL, "%s: 'mode' must be DEL_PSEUDO_BN_JOINT (0) or DEL_PSEUDO_BN_FROZEN (1), got "
                           "%d", fn, (int)mode);
    s->bn = mode;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_unlabeled_truth(del_trainer *trainer, const int32_t *labels, int64_t n)
{
    static const char fn[] = "del_trainer_set_unlabeled_truth";
    pseudo_state *s = NULL;
    del_status st = pseudo_of(trainer, &s, "unlabeled_truth", fn);
    if (st != DEL_OK)
        return st;
    if (!labels) {
        free(s->truth);
        s->truth = NULL;
        s->truth_n = 0;
        return DEL_OK;
    }
    const int64_t size = del_dataset_size(trainer->streams[DEL_STREAM_U].data);
    if (n != size)
        return train_error(DEL_EINVAL, "%s: 'n' must be the unlabeled set's %lld images, got %lld", fn,
                           (long long)size, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < -1 || labels[i] >= trainer->num_outputs)
            return train_error(DEL_EINVAL, "%s: 'labels[%lld]' is %d: a label must be -1 (unknown) or in 0..%d", fn,
                               (long long)i, (int)labels[i], trainer->num_outputs - 1);
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy)
        return train_error(DEL_ENOMEM, "%s: out of memory for %lld labels", fn, (long long)n);
    memcpy(copy, labels, (size_t)n * sizeof *copy);
    free(s->truth);
    s->truth = copy;
    s->truth_n = n;
    return DEL_OK;
}

DEL_API del_status del_trainer_pseudo_label_stats(const del_trainer *trainer, double *mask_rate, double *accuracy,
                                                  int64_t *judged)
{
    static const char fn[] = "del_trainer_pseudo_label_stats";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (trainer->obj != &del_objective_pseudo_label)
        return train_error(DEL_EINVAL, "%s: 'trainer' is a %s trainer, not a pseudo_label one", fn,
                           trainer->obj->name);
    const pseudo_state *s = trainer->state;
    if (mask_rate)
        *mask_rate = s->seen > 0 ? (double)s->kept / (double)s->seen : NAN;
    if (accuracy)
        *accuracy = s->judged > 0 ? (double)s->correct / (double)s->judged : NAN;
    if (judged)
        *judged = s->judged;
    return DEL_OK;
}
