/* Consistency training (SPEC §1.7, FixMatch: Sohn et al. 2020; FlexMatch:
 * Zhang et al. 2021): every unlabeled image of a step is seen twice, a
 * weakly augmented view (crop + flip) and a strongly augmented one
 * (RandAugment + cutout) of the same image. The model's prediction on the
 * weak view is the pseudo-label (argmax, a constant), kept when its top
 * probability reaches τ (FlexMatch: a per-class threshold), and the strong
 * view is trained on it:
 *   loss = CE(labels, z_L) + λu · (1/N_U) Σ_kept CE(pseudo, z_strong)
 * The labeled batch and both views go through the model in one forward
 * (batchnorm over all of them, as FixMatch's implementation); the weak
 * rows get no gradient. An EMA of the weights (0.999) is what
 * del_trainer_evaluate scores. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64
#define DEFAULT_RATIO 7
#define DEFAULT_THRESHOLD 0.95f
#define DEFAULT_WEIGHT 1.0f
#define DEFAULT_EMA 0.999f
#define DEL_MAX_CLASSES_FLEX 1024 /* FlexMatch's per-class counts live on the stack */

typedef struct consistency_state {
    float threshold, weight;
    int flex;               /* FlexMatch's per-class thresholds */
    int32_t *selected;      /* FlexMatch: per unlabeled row, the class last predicted above τ (-1 none) */
    int64_t selected_n;
    int64_t seen, kept;     /* of the current fit */
    del_tensor *x, *z_l, *z_s, *g, *g_l, *g_s, *labels;
} consistency_state;

static del_status consistency_init(void *state, del_trainer *tr, const char *fn)
{
    consistency_state *s = state;
    const del_dataset *labeled = tr->streams[DEL_STREAM_L].data;
    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= tr->num_outputs)
            return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'model' has only %d outputs", fn,
                               (int)labels[i], tr->num_outputs);
    s->threshold = DEFAULT_THRESHOLD;
    s->weight = DEFAULT_WEIGHT;
    s->selected_n = del_dataset_size(tr->streams[DEL_STREAM_U].data);
    s->selected = malloc((size_t)s->selected_n * sizeof *s->selected);
    if (!s->selected)
        return train_error(DEL_ENOMEM, "%s: out of memory for %lld unlabeled images", fn, (long long)s->selected_n);
    for (int64_t i = 0; i < s->selected_n; i++)
        s->selected[i] = -1;
    return del_trainer_set_ema(tr, DEFAULT_EMA);
}

static void consistency_release(void *state)
{
    consistency_state *s = state;
    free(s->selected);
    del_tensor *const all[] = {s->x, s->z_l, s->z_s, s->g, s->g_l, s->g_s, s->labels};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        del_tensor_free(all[i]);
}

static del_status consistency_begin_fit(void *state, del_trainer *tr, int64_t steps, const char *fn)
{
    (void)tr;
    (void)steps;
    (void)fn;
    consistency_state *s = state;
    s->seen = s->kept = 0;
    return DEL_OK;
}

/* FlexMatch's thresholds (the warm-up variant): β_c = σ_c / max(max_c σ_c,
 * unused), σ_c the unlabeled images last predicted as c above τ, unused
 * those never so; the threshold of class c is τ · β_c / (2 − β_c). */
static void flex_thresholds(const consistency_state *s, int k, float *thr)
{
    int64_t count[DEL_MAX_CLASSES_FLEX] = {0}, unused = 0, most = 0;
    for (int64_t i = 0; i < s->selected_n; i++) {
        if (s->selected[i] < 0)
            unused++;
        else
            count[s->selected[i]]++;
    }
    for (int c = 0; c < k; c++)
        most = count[c] > most ? count[c] : most;
    const double norm = (double)(most > unused ? most : unused);
    for (int c = 0; c < k; c++) {
        const double beta = norm > 0.0 ? (double)count[c] / norm : 0.0;
        thr[c] = (float)((double)s->threshold * beta / (2.0 - beta));
    }
}

/* The pseudo-labels from the weak view's logits zw (n x k) into
 * s->labels (-1 where not kept). */
static void pseudo_labels(consistency_state *s, const batch_slot *u, const float *zw, int64_t n, int k)
{
    float thr[DEL_MAX_CLASSES_FLEX];
    if (s->flex)
        flex_thresholds(s, k, thr);
    int32_t *label = del_tensor_data(s->labels);
    for (int64_t r = 0; r < n; r++) {
        const float *z = zw + r * k;
        int best = 0;
        for (int c = 1; c < k; c++)
            best = z[c] > z[best] ? c : best;
        double sum = 0.0;
        for (int c = 0; c < k; c++)
            sum += exp((double)z[c] - (double)z[best]);
        const double top = 1.0 / sum;
        const int keep = top >= (double)(s->flex ? thr[best] : s->threshold);
        label[r] = keep ? best : -1;
        s->seen++;
        s->kept += keep;
        if (s->flex && top > (double)s->threshold)
            s->selected[u->idx[r]] = best;
    }
}

static del_status consistency_step(void *state, del_trainer *tr, const train_step_in *in, float *loss,
                                   const char *fn)
{
    (void)fn;
    consistency_state *s = state;
    const batch_slot *l = in->in[DEL_STREAM_L], *u = in->in[DEL_STREAM_U];
    const int64_t nl = del_tensor_dim(l->x, 0), nu = del_tensor_dim(u->x, 0), n = nl + 2 * nu;
    const int k = tr->num_outputs;
    const size_t image = (size_t)del_tensor_numel(l->x) / (size_t)nl;
    const int64_t xshape[4] = {n, tr->channels, tr->height, tr->width}, ushape[1] = {nu};
    del_status st = DEL_OK;
    if (!s->x || del_tensor_dim(s->x, 0) != n) {
        del_tensor_free(s->x);
        s->x = NULL;
        st = del_tensor_new(&s->x, DEL_DTYPE_F32, 4, xshape);
    }
    if (st == DEL_OK && (!s->labels || del_tensor_dim(s->labels, 0) != nu)) {
        del_tensor_free(s->labels);
        s->labels = NULL;
        st = del_tensor_new(&s->labels, DEL_DTYPE_I32, 1, ushape);
    }
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->z_l, nl, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->z_s, nu, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g_l, nl, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g_s, nu, k);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g, n, k);
    if (st != DEL_OK)
        return st;
    /* [labeled; weak; strong] through the model at once. */
    float *x = del_tensor_data(s->x);
    memcpy(x, del_tensor_data(l->x), (size_t)nl * image * sizeof(float));
    memcpy(x + (size_t)nl * image, del_tensor_data(u->x), (size_t)nu * image * sizeof(float));
    memcpy(x + (size_t)(nl + nu) * image, del_tensor_data(u->x2), (size_t)nu * image * sizeof(float));
    st = del_model_forward(in->model, s->x);
    if (st != DEL_OK)
        return st;
    const float *z = del_tensor_data(del_model_output(in->model));
    memcpy(del_tensor_data(s->z_l), z, (size_t)nl * (size_t)k * sizeof(float));
    memcpy(del_tensor_data(s->z_s), z + (nl + nu) * k, (size_t)nu * (size_t)k * sizeof(float));
    pseudo_labels(s, u, z + nl * k, nu, k);
    float ce = 0.0f, lu = 0.0f;
    st = del_task_loss(tr, l, s->z_l, &ce, s->g_l);
    memset(del_tensor_data(s->g_s), 0, (size_t)nu * (size_t)k * sizeof(float));
    if (st == DEL_OK)
        st = del_loss_cross_entropy_acc(s->z_s, s->labels, NULL, 0.0f, s->weight, &lu, s->g_s);
    if (st != DEL_OK)
        return st;
    float *g = del_tensor_data(s->g);
    memcpy(g, del_tensor_data(s->g_l), (size_t)nl * (size_t)k * sizeof(float));
    memset(g + nl * k, 0, (size_t)nu * (size_t)k * sizeof(float)); /* the weak view: a constant */
    memcpy(g + (nl + nu) * k, del_tensor_data(s->g_s), (size_t)nu * (size_t)k * sizeof(float));
    *loss = ce + lu;
    return del_model_backward(in->model, s->g);
}

/* The settings and FlexMatch's per-image classes (as an f32 tensor:
 * class indices are exact in float). */
static del_status consistency_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)tr;
    (void)fn;
    const consistency_state *s = state;
    del_status st = del_checkpoint_set_f32(ck, "consistency_threshold", s->threshold);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "consistency_weight", s->weight);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "consistency_flex", s->flex);
    if (st == DEL_OK && s->flex) {
        const int64_t shape[1] = {s->selected_n};
        del_tensor *t = NULL;
        st = del_tensor_new(&t, DEL_DTYPE_F32, 1, shape);
        if (st == DEL_OK) {
            float *v = del_tensor_data(t);
            for (int64_t i = 0; i < s->selected_n; i++)
                v[i] = (float)s->selected[i];
            st = del_checkpoint_add_tensor(ck, "consistency_selected", t);
        }
        del_tensor_free(t);
    }
    return st;
}

static del_status consistency_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    consistency_state *s = state;
    float threshold = 0.0f, weight = 0.0f;
    int64_t flex = 0;
    del_status st = del_trainer_read_f32(ck, "consistency_threshold", &threshold, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "consistency_weight", &weight, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "consistency_flex", &flex, fn);
    if (st != DEL_OK)
        return st;
    if (!(threshold >= 0.0f && threshold <= 1.0f) || !(weight >= 0.0f) || !isfinite(weight) ||
        (flex != 0 && flex != 1))
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (consistency settings out of range)", fn);
    int32_t *selected = NULL;
    if (flex) {
        del_tensor *t = NULL;
        st = train_error_as(del_checkpoint_get_tensor(&t, ck, "consistency_selected"), fn);
        if (st == DEL_OK && (del_tensor_dtype(t) != DEL_DTYPE_F32 || del_tensor_ndim(t) != 1 ||
                             del_tensor_dim(t, 0) != s->selected_n))
            st = train_error(DEL_EINVAL, "%s: the checkpoint's FlexMatch classes do not fit this trainer's %lld "
                             "unlabeled images", fn, (long long)s->selected_n);
        if (st == DEL_OK && !(selected = malloc((size_t)s->selected_n * sizeof *selected)))
            st = train_error(DEL_ENOMEM, "%s: out of memory", fn);
        for (int64_t i = 0; st == DEL_OK && i < s->selected_n; i++) {
            const float v = ((const float *)del_tensor_data(t))[i];
            if (!(v >= -1.0f && v < (float)tr->num_outputs) || v != floorf(v))
                st = train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (FlexMatch class %g)", fn, (double)v);
            else
                selected[i] = (int32_t)v;
        }
        del_tensor_free(t);
        if (st != DEL_OK) {
            free(selected);
            return st;
        }
    }
    if (selected) {
        free(s->selected);
        s->selected = selected;
    } else {
        for (int64_t i = 0; i < s->selected_n; i++)
            s->selected[i] = -1;
    }
    s->threshold = threshold;
    s->weight = weight;
    s->flex = (int)flex;
    return DEL_OK;
}

const del_objective del_objective_consistency = {
    /* .name       = */ "consistency",
    /* .streams    = */ (1u << DEL_STREAM_L) | (1u << DEL_STREAM_U),
    /* .state_size = */ sizeof(consistency_state),
    /* .init       = */ consistency_init,
    /* .release    = */ consistency_release,
    /* .begin_fit  = */ consistency_begin_fit,
    /* .step       = */ consistency_step,
    /* .save       = */ consistency_save,
    /* .load       = */ consistency_load,
};

DEL_API del_status del_trainer_new_consistency(del_trainer **out, del_model *model, const del_dataset *labeled,
                                               const del_dataset *unlabeled, del_augment *weak, del_augment *strong)
{
    static const char fn[] = "del_trainer_new_consistency";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    if (!unlabeled)
        return train_error_null(fn, "unlabeled");
    if (!weak)
        return train_error_null(fn, "weak");
    if (!strong)
        return train_error_null(fn, "strong");
    del_trainer *tr = NULL;
    del_status st = del_trainer_create(&tr, &del_objective_consistency, model, fn);
    if (st == DEL_OK && tr->num_outputs > DEL_MAX_CLASSES_FLEX)
        st = train_error(DEL_EINVAL, "%s: 'model' has %d outputs, at most %d supported", fn, tr->num_outputs,
                         DEL_MAX_CLASSES_FLEX);
    if (st == DEL_OK)
        st = del_stream_check_pipeline(tr, weak, fn, "weak");
    if (st == DEL_OK)
        st = del_stream_check_pipeline(tr, strong, fn, "strong");
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_U, unlabeled, 0, DEFAULT_BATCH * DEFAULT_RATIO, "unlabeled", fn);
    if (st == DEL_OK) {
        tr->aug_unlabeled = weak;
        tr->streams[DEL_STREAM_U].aug = weak;
        tr->streams[DEL_STREAM_U].aug2 = strong;
    }
    return del_trainer_finish(out, tr, st, fn);
}

static del_status consistency_of(del_trainer *tr, consistency_state **s, const char *setting, const char *fn)
{
    void *state = NULL;
    del_status st = del_trainer_state_of(tr, &del_objective_consistency, NULL, &state, setting, fn);
    *s = state;
    return st;
}

DEL_API del_status del_trainer_set_consistency_threshold(del_trainer *trainer, float threshold)
{
    static const char fn[] = "del_trainer_set_consistency_threshold";
    consistency_state *s = NULL;
    del_status st = consistency_of(trainer, &s, "threshold", fn);
    if (st != DEL_OK)
        return st;
    if (!(threshold >= 0.0f && threshold <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'threshold' must be in [0, 1], got %g", fn, (double)threshold);
    s->threshold = threshold;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_consistency_weight(del_trainer *trainer, float weight)
{
    static const char fn[] = "del_trainer_set_consistency_weight";
    consistency_state *s = NULL;
    del_status st = consistency_of(trainer, &s, "weight", fn);
    if (st != DEL_OK)
        return st;
    if (!(weight >= 0.0f) || !isfinite(weight))
        return train_error(DEL_EINVAL, "%s: 'weight' must be a finite value >= 0, got %g", fn, (double)weight);
    s->weight = weight;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_flexmatch(del_trainer *trainer, int on)
{
    static const char fn[] = "del_trainer_set_flexmatch";
    consistency_state *s = NULL;
    del_status st = consistency_of(trainer, &s, "flexmatch", fn);
    if (st != DEL_OK)
        return st;
    if (on != 0 && on != 1)
        return train_error(DEL_EINVAL, "%s: 'on' must be 0 or 1, got %d", fn, on);
    s->flex = on;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_unlabeled_ratio(del_trainer *trainer, int mu)
{
    static const char fn[] = "del_trainer_set_unlabeled_ratio";
    consistency_state *s = NULL;
    del_status st = consistency_of(trainer, &s, "unlabeled_ratio", fn);
    if (st != DEL_OK)
        return st;
    const int64_t batch = (int64_t)trainer->streams[DEL_STREAM_L].batch * mu;
    if (mu < 1)
        return train_error(DEL_EINVAL, "%s: 'mu' must be >= 1, got %d", fn, mu);
    if (batch > trainer->streams[DEL_STREAM_U].pool_n)
        return train_error(DEL_EINVAL, "%s: 'mu' %d times the labeled batch of %d is %lld, more than the %lld "
                           "unlabeled images", fn, mu, trainer->streams[DEL_STREAM_L].batch, (long long)batch,
                           (long long)trainer->streams[DEL_STREAM_U].pool_n);
    trainer->streams[DEL_STREAM_U].batch = (int)batch;
    return DEL_OK;
}

DEL_API del_status del_trainer_consistency_stats(const del_trainer *trainer, double *mask_rate)
{
    static const char fn[] = "del_trainer_consistency_stats";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (trainer->obj != &del_objective_consistency)
        return train_error(DEL_EINVAL, "%s: 'trainer' is a %s trainer, not a consistency one", fn,
                           trainer->obj->name);
    const consistency_state *s = trainer->state;
    if (mask_rate)
        *mask_rate = s->seen > 0 ? (double)s->kept / (double)s->seen : NAN;
    return DEL_OK;
}
