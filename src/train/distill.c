/* Knowledge distillation (SPEC §1.3, Hinton et al. 2015): the student
 * learns the teacher's temperature-softened outputs on every image of the
 * step (the labeled batch, the unlabeled transfer batch, or both) and the
 * hard labels of the labeled ones:
 *   loss = w_kd · mean over the step's images of T² KL(softmax_T(t) ‖ softmax_T(s))
 *        + w_ce · CE(labels, s) over the labeled images,
 * with w_kd = α, w_ce = 1 − α by default (α = 0.9, T = 4). The teacher
 * sees the same augmented batch as the student, normalised with its own
 * mean and std, in evaluation mode unless asked otherwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64
#define DEFAULT_TEMPERATURE 4.0f
#define DEFAULT_ALPHA 0.9f

typedef struct distill_state {
    del_model *teacher;       /* borrowed; NULL: the datasets' stored soft labels */
    float temperature;
    float kd_weight, ce_weight;
    int t2;                   /* 1: the T² factor (Hinton's), 0: without it */
    int teacher_training;     /* 1: the teacher's batchnorm and dropout in training mode */
    int teacher_norm;         /* 1: the teacher has its own normalisation */
    float t_mean[MAX_CHANNELS], t_std[MAX_CHANNELS];
    del_tensor *tx;           /* the batch as the teacher sees it */
    del_tensor *tlogits;      /* the teacher's logits of the batch */
    del_tensor *g_kd, *g_ce;  /* d loss / d student logits of each term */
} distill_state;

static del_status distill_init(void *state, del_trainer *tr, const char *fn)
{
    distill_state *s = state;
    const del_dataset *labeled = tr->streams[DEL_STREAM_L].data;
    if (labeled) {
        const int64_t n = del_dataset_size(labeled);
        const int32_t *labels = del_dataset_labels(labeled);
        for (int64_t i = 0; i < n; i++)
            if (labels[i] >= tr->num_outputs)
                return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'student' has only %d outputs", fn,
                                   (int)labels[i], tr->num_outputs);
    }
    s->temperature = DEFAULT_TEMPERATURE;
    s->kd_weight = DEFAULT_ALPHA;
    s->ce_weight = 1.0f - DEFAULT_ALPHA;
    s->t2 = 1;
    return DEL_OK;
}

static void distill_release(void *state)
{
    distill_state *s = state;
    del_tensor_free(s->tx);
    del_tensor_free(s->tlogits);
    del_tensor_free(s->g_kd);
    del_tensor_free(s->g_ce);
}

/* The teacher's logits of batch x into s->tlogits (a copy: the teacher's
 * output tensor is its own). */
static del_status teacher_logits(distill_state *s, const del_trainer *tr, const del_tensor *x)
{
    const del_tensor *in = x;
    if (s->teacher_norm) {
        /* x = (v - m) / d with the student's (m, d); the teacher's input is
         * (v - m') / d' = (x d + m - m') / d'. */
        del_status st = del_trainer_ensure_like(&s->tx, x);
        if (st != DEL_OK)
            return st;
        const float *src = del_tensor_data((del_tensor *)x);
        float *dst = del_tensor_data(s->tx);
        const int64_t n = del_tensor_dim(x, 0), plane = (int64_t)tr->height * tr->width;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < tr->channels; c++) {
                const float scale = tr->set.std[c] / s->t_std[c];
                const float shift = (tr->set.mean[c] - s->t_mean[c]) / s->t_std[c];
                const int64_t base = (i * tr->channels + c) * plane;
                for (int64_t k = 0; k < plane; k++)
                    dst[base + k] = src[base + k] * scale + shift;
            }
        in = s->tx;
    }
    del_status st = del_model_set_training(s->teacher, s->teacher_training);
    if (st == DEL_OK)
        st = del_model_forward(s->teacher, in);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->tlogits, del_tensor_dim(x, 0), tr->num_outputs);
    if (st == DEL_OK)
        memcpy(del_tensor_data(s->tlogits), del_tensor_data(del_model_output(s->teacher)),
               (size_t)del_tensor_numel(s->tlogits) * sizeof(float));
    return st;
}

static del_status distill_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    (void)fn;
    distill_state *s = state;
    int64_t total = 0;
    for (int k = 0; k < DEL_NSTREAMS; k++)
        if (in->in[k])
            total += del_tensor_dim(in->in[k]->x, 0);
    const float t2_undo = s->t2 ? 1.0f : 1.0f / (s->temperature * s->temperature);
    double sum = 0.0;
    for (int k = 0; k < DEL_NSTREAMS; k++) {
        const batch_slot *b = in->in[k];
        if (!b)
            continue;
        const int64_t n = del_tensor_dim(b->x, 0);
        /* Each image's share of the distillation term: the mean over all
         * the step's images, whichever stream they came from. */
        const float kd_w = s->kd_weight * t2_undo * (float)n / (float)total;
        const float ce_w = k == DEL_STREAM_L ? s->ce_weight : 0.0f;
        float kd = 0.0f, ce = 0.0f;
        del_status st = DEL_OK;
        if (s->teacher) {
            st = teacher_logits(s, tr, b->x);
        } else {
            /* Stored soft labels: the rows of the batch's images. */
            st = del_trainer_ensure_matrix(&s->tlogits, n, tr->num_outputs);
            if (st == DEL_OK)
                st = del_dataset_soft_batch(tr->streams[k].data, b->idx, n, s->tlogits);
        }
        if (st == DEL_OK)
            st = del_trainer_ensure_matrix(&s->g_kd, n, tr->num_outputs);
        if (st == DEL_OK)
            st = del_trainer_ensure_matrix(&s->g_ce, n, tr->num_outputs);
        if (st == DEL_OK)
            st = del_model_forward(in->model, b->x);
        const del_tensor *z = del_model_output(in->model);
        if (st == DEL_OK && s->teacher) {
            st = del_loss_distill(z, s->tlogits, s->temperature, &kd, s->g_kd);
        } else if (st == DEL_OK) {
            memset(del_tensor_data(s->g_kd), 0, (size_t)del_tensor_numel(s->g_kd) * sizeof(float));
            st = del_loss_distill_acc(z, s->tlogits, NULL, s->temperature, DEL_DISTILL_TEACHER_PROBS, 1.0f, &kd,
                                      s->g_kd);
        }
        if (st == DEL_OK && ce_w != 0.0f)
            st = b->soft ? del_loss_soft_cross_entropy(z, b->soft, &ce, s->g_ce)
                         : del_loss_cross_entropy_smooth(z, b->y, tr->set.smoothing, &ce, s->g_ce);
        if (st != DEL_OK)
            return st;
        float *g = del_tensor_data(s->g_kd);
        const float *gc = del_tensor_data(s->g_ce);
        const int64_t count = del_tensor_numel(s->g_kd);
        if (ce_w != 0.0f)
            for (int64_t i = 0; i < count; i++)
                g[i] = kd_w * g[i] + ce_w * gc[i];
        else
            for (int64_t i = 0; i < count; i++)
                g[i] = kd_w * g[i];
        sum += (double)kd_w * kd + (double)ce_w * ce;
        st = del_model_backward(in->model, s->g_kd);
        if (st != DEL_OK)
            return st;
    }
    *loss = (float)sum;
    return DEL_OK;
}

static const char *const teacher_mean_keys[MAX_CHANNELS] = {"distill_teacher_mean_0", "distill_teacher_mean_1",
                                                            "distill_teacher_mean_2"};
static const char *const teacher_std_keys[MAX_CHANNELS] = {"distill_teacher_std_0", "distill_teacher_std_1",
                                                           "distill_teacher_std_2"};

/* The settings, and a teacher whose batchnorm trains (its statistics are
 * part of the run). */
static del_status distill_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)fn;
    const distill_state *s = state;
    del_status st = del_checkpoint_set_f32(ck, "distill_temperature", s->temperature);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "distill_kd_weight", s->kd_weight);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "distill_ce_weight", s->ce_weight);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "distill_t2", s->t2);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "distill_teacher_training", s->teacher_training);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "distill_teacher_norm", s->teacher_norm);
    for (int c = 0; c < tr->channels && s->teacher_norm && st == DEL_OK; c++) {
        st = del_checkpoint_set_f32(ck, teacher_mean_keys[c], s->t_mean[c]);
        if (st == DEL_OK)
            st = del_checkpoint_set_f32(ck, teacher_std_keys[c], s->t_std[c]);
    }
    if (st == DEL_OK && s->teacher && s->teacher_training)
        st = del_checkpoint_add_model(ck, "teacher", s->teacher);
    return st;
}

static del_status distill_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    distill_state *s = state;
    distill_state n = *s;
    int64_t t2 = 0, training = 0, norm = 0;
    del_status st = del_trainer_read_f32(ck, "distill_temperature", &n.temperature, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "distill_kd_weight", &n.kd_weight, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "distill_ce_weight", &n.ce_weight, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "distill_t2", &t2, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "distill_teacher_training", &training, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "distill_teacher_norm", &norm, fn);
    for (int c = 0; c < tr->channels && norm && st == DEL_OK; c++) {
        st = del_trainer_read_f32(ck, teacher_mean_keys[c], &n.t_mean[c], fn);
        if (st == DEL_OK)
            st = del_trainer_read_f32(ck, teacher_std_keys[c], &n.t_std[c], fn);
    }
    if (st != DEL_OK)
        return st;
    int bad = !(n.temperature > 0.0f) || !isfinite(n.temperature) || !(n.kd_weight >= 0.0f) ||
              !isfinite(n.kd_weight) || !(n.ce_weight >= 0.0f) || !isfinite(n.ce_weight) || (t2 != 0 && t2 != 1) ||
              (training != 0 && training != 1) || (norm != 0 && norm != 1);
    for (int c = 0; c < tr->channels && norm; c++)
        bad |= !isfinite(n.t_mean[c]) || !(n.t_std[c] > 0.0f) || !isfinite(n.t_std[c]);
    if (bad)
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (distillation settings out of range)", fn);
    if ((training || norm) && !s->teacher)
        return train_error(DEL_EINVAL, "%s: the checkpoint was saved with a live teacher, this trainer distils from "
                           "stored soft labels", fn);
    const int has_teacher = del_checkpoint_has_model(ck, "teacher");
    if (has_teacher && !s->teacher)
        return train_error(DEL_EINVAL, "%s: the checkpoint holds a teacher, this trainer has none", fn);
    if (has_teacher)
        st = train_error_as(del_checkpoint_check_model(ck, "teacher", s->teacher, NULL), fn);
    if (st == DEL_OK && has_teacher)
        st = train_error_as(del_checkpoint_restore_model(ck, "teacher", s->teacher, NULL), fn);
    if (st != DEL_OK)
        return st;
    n.t2 = (int)t2;
    n.teacher_training = (int)training;
    n.teacher_norm = (int)norm;
    *s = n;
    return DEL_OK;
}

const del_objective del_objective_distill = {
    /* .name       = */ "distill",
    /* .streams    = */ (1u << DEL_STREAM_L) | (1u << DEL_STREAM_U),
    /* .state_size = */ sizeof(distill_state),
    /* .init       = */ distill_init,
    /* .release    = */ distill_release,
    /* .begin_fit  = */ NULL,
    /* .step       = */ distill_step,
    /* .save       = */ distill_save,
    /* .load       = */ distill_load,
};

/* A live teacher: the student's images and classes. */
static del_status check_teacher(const del_model *student, const del_model *teacher, const char *fn)
{
    if (teacher == student)
        return train_error(DEL_EINVAL, "%s: 'teacher' must be another model than 'student' (clone it first)", fn);
    int sc = 0, sh = 0, sw = 0, tc = 0, th = 0, tw = 0, sn = 0, tn = 0;
    int64_t so[3], to[3];
    del_status st = del_model_input_shape(student, &sc, &sh, &sw);
    if (st == DEL_OK)
        st = del_model_input_shape(teacher, &tc, &th, &tw);
    if (st == DEL_OK)
        st = del_model_output_shape(student, &sn, so);
    if (st == DEL_OK)
        st = del_model_output_shape(teacher, &tn, to);
    if (st != DEL_OK)
        return st;
    if (sc != tc || sh != th || sw != tw)
        return train_error(DEL_EINVAL, "%s: 'teacher' takes %d x %d x %d images, 'student' %d x %d x %d (C x H x W): "
                           "they must see the same images", fn, tc, th, tw, sc, sh, sw);
    if (tn != 1 || sn != 1 || to[0] != so[0])
        return train_error(DEL_EINVAL, "%s: 'teacher' gives %lld class scores, 'student' %lld: they must have the "
                           "same classes", fn, (long long)(tn == 1 ? to[0] : 0), (long long)(sn == 1 ? so[0] : 0));
    return DEL_OK;
}

/* No teacher: every dataset given carries soft labels of the student's
 * classes. */
static del_status check_stored(const del_model *student, const del_dataset *labeled, const del_dataset *transfer,
                               const char *fn)
{
    int sn = 0;
    int64_t so[3];
    del_status st = del_model_output_shape(student, &sn, so);
    if (st != DEL_OK)
        return st;
    const del_dataset *sets[2] = {labeled, transfer};
    static const char *const names[2] = {"labeled", "transfer"};
    for (int i = 0; i < 2; i++) {
        if (!sets[i])
            continue;
        const int k = del_dataset_num_soft_classes(sets[i]);
        if (k == 0)
            return train_error(DEL_EINVAL, "%s: 'teacher' is NULL, so '%s' must carry the teacher's soft labels "
                               "(del_dataset_set_soft_labels, e.g. from del_tensor_load)", fn, names[i]);
        if (sn != 1 || k != so[0])
            return train_error(DEL_EINVAL, "%s: the soft labels of '%s' have %d classes, 'student' %lld", fn,
                               names[i], k, (long long)(sn == 1 ? so[0] : 0));
    }
    return DEL_OK;
}

DEL_API del_status del_trainer_new_distill(del_trainer **out, del_model *student, del_model *teacher,
                                           const del_dataset *labeled, const del_dataset *transfer)
{
    static const char fn[] = "del_trainer_new_distill";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!student)
        return train_error_null(fn, "student");
    if (!labeled && !transfer)
        return train_error(DEL_EINVAL, "%s: 'labeled' and 'transfer' must not both be NULL (give the labeled "
                           "images, the unlabeled transfer set, or both)", fn);
    del_status st = teacher ? check_teacher(student, teacher, fn) : check_stored(student, labeled, transfer, fn);
    if (st != DEL_OK)
        return st;
    del_trainer *tr = NULL;
    st = del_trainer_create(&tr, &del_objective_distill, student, fn);
    if (st == DEL_OK) {
        distill_state *s = tr->state;
        s->teacher = teacher;
    }
    if (st == DEL_OK && labeled)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    if (st == DEL_OK && transfer)
        st = del_stream_init(tr, DEL_STREAM_U, transfer, 0, DEFAULT_BATCH, "transfer", fn);
    return del_trainer_finish(out, tr, st, fn);
}

/* The distillation trainer's state, or an error naming the setting. */
static del_status distill_of(del_trainer *tr, distill_state **s, const char *setting, const char *fn)
{
    void *state = NULL;
    del_status st = del_trainer_state_of(tr, &del_objective_distill, NULL, &state, setting, fn);
    *s = state;
    return st;
}

DEL_API del_status del_trainer_set_distill_alpha(del_trainer *trainer, float alpha)
{
    static const char fn[] = "del_trainer_set_distill_alpha";
    distill_state *s = NULL;
    del_status st = distill_of(trainer, &s, "alpha", fn);
    if (st != DEL_OK)
        return st;
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'alpha' must be in [0, 1], got %g", fn, (double)alpha);
    s->kd_weight = alpha;
    s->ce_weight = 1.0f - alpha;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_distill_weights(del_trainer *trainer, float kd_weight, float ce_weight)
{
    static const char fn[] = "del_trainer_set_distill_weights";
    distill_state *s = NULL;
    del_status st = distill_of(trainer, &s, "weights", fn);
    if (st != DEL_OK)
        return st;
    if (!(kd_weight >= 0.0f) || !isfinite(kd_weight))
        return train_error(DEL_EINVAL, "%s: 'kd_weight' must be a finite value >= 0, got %g", fn, (double)kd_weight);
    if (!(ce_weight >= 0.0f) || !isfinite(ce_weight))
        return train_error(DEL_EINVAL, "%s: 'ce_weight' must be a finite value >= 0, got %g", fn, (double)ce_weight);
    if (kd_weight == 0.0f && ce_weight == 0.0f)
        return train_error(DEL_EINVAL, "%s: 'kd_weight' and 'ce_weight' must not both be 0", fn);
    s->kd_weight = kd_weight;
    s->ce_weight = ce_weight;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_temperature(del_trainer *trainer, float temperature)
{
    static const char fn[] = "del_trainer_set_temperature";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_distill, &del_objective_lwf, &state, "temperature",
                                         fn);
    if (st != DEL_OK)
        return st;
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return train_error(DEL_EINVAL, "%s: 'temperature' must be a finite value > 0, got %g", fn,
                           (double)temperature);
    if (trainer->obj == &del_objective_lwf)
        return del_lwf_set_temperature(trainer, temperature);
    ((distill_state *)state)->temperature = temperature;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_distill_t2(del_trainer *trainer, int on)
{
    static const char fn[] = "del_trainer_set_distill_t2";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_distill, &del_objective_lwf, &state, "t2", fn);
    if (st != DEL_OK)
        return st;
    if (on != 0 && on != 1)
        return train_error(DEL_EINVAL, "%s: 'on' must be 0 or 1, got %d", fn, on);
    if (trainer->obj == &del_objective_lwf)
        return del_lwf_set_t2(trainer, on);
    ((distill_state *)state)->t2 = on;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_teacher_training(del_trainer *trainer, int training)
{
    static const char fn[] = "del_trainer_set_teacher_training";
    distill_state *s = NULL;
    del_status st = distill_of(trainer, &s, "teacher_training", fn);
    if (st != DEL_OK)
        return st;
    if (training != 0 && training != 1)
        return train_error(DEL_EINVAL, "%s: 'training' must be 0 or 1, got %d", fn, training);
    if (!s->teacher)
        return train_error(DEL_EINVAL, "%s: the trainer distills from stored soft labels: it has no live teacher", fn);
    s->teacher_training = training;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_teacher_normalize(del_trainer *trainer, const float *mean, const float *std,
                                                     int channels)
{
    static const char fn[] = "del_trainer_set_teacher_normalize";
    distill_state *s = NULL;
    del_status st = distill_of(trainer, &s, "teacher_normalize", fn);
    if (st != DEL_OK)
        return st;
    if (!s->teacher)
        return train_error(DEL_EINVAL, "%s: the trainer distills from stored soft labels: it has no live teacher", fn);
    train_settings check = trainer->set;
    st = del_settings_normalize_for(trainer, &check, mean, std, channels, fn);
    if (st != DEL_OK)
        return st;
    for (int c = 0; c < channels; c++) {
        s->t_mean[c] = mean[c];
        s->t_std[c] = std[c];
    }
    s->teacher_norm = 1;
    return DEL_OK;
}
