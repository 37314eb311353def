/* Knowledge distillation (SPEC §1.3, Hinton et al. 2015): the student
 * learns the teacher's temperature-softened outputs on every image of the
 * step (the labeled batch, the unlabeled transfer batch, or both) and the
 * hard labels of the labeled ones:
 *   loss = w_kd · mean over the step's images of T² KL(softmax_T(t) ‖ softmax_T(s))
 *        + w_ce · CE(labels, s) over the labeled images,
 * with w_kd = α, w_ce = 1 − α by default (α = 0.9, T = 4). The teacher
 * sees the same augmented batch as the student, normalised with its own
 * mean and std, in evaluation mode unless asked otherwise (teacher.c, the
 * term other trainers get from del_trainer_add_teacher). Its setters here
 * apply to either. */
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
    teacher_term term; /* its teacher NULL: the datasets' stored soft labels */
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
    del_teacher_defaults(&s->term, s->term.teacher, DEFAULT_TEMPERATURE, DEFAULT_ALPHA);
    return DEL_OK;
}

static void distill_release(void *state)
{
    distill_state *s = state;
    del_teacher_release(&s->term);
}

static del_status distill_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    (void)fn;
    teacher_term *t = &((distill_state *)state)->term;
    int64_t total = 0;
    for (int k = 0; k < DEL_NSTREAMS; k++)
        if (in->in[k])
            total += del_tensor_dim(in->in[k]->x, 0);
    const float t2_undo = t->t2 ? 1.0f : 1.0f / (t->temperature * t->temperature);
    double sum = 0.0;
    for (int k = 0; k < DEL_NSTREAMS; k++) {
        const batch_slot *b = in->in[k];
        if (!b)
            continue;
        const int64_t n = del_tensor_dim(b->x, 0);
        /* Each image's share of the distillation term: the mean over all
         * the step's images, whichever stream they came from. */
        const float kd_w = t->kd_weight * t2_undo * (float)n / (float)total;
        const float ce_w = k == DEL_STREAM_L ? t->ce_weight : 0.0f;
        float kd = 0.0f, ce = 0.0f;
        del_status st = DEL_OK;
        if (t->teacher) {
            st = del_teacher_logits(t, tr, b->x);
        } else {
            /* Stored soft labels: the rows of the batch's images. */
            st = del_trainer_ensure_matrix(&t->tlogits, n, tr->num_outputs);
            if (st == DEL_OK)
                st = del_dataset_soft_batch(tr->streams[k].data, b->idx, n, t->tlogits);
        }
        if (st == DEL_OK)
            st = del_trainer_ensure_matrix(&t->g_kd, n, tr->num_outputs);
        if (st == DEL_OK)
            st = del_trainer_ensure_matrix(&t->g_ce, n, tr->num_outputs);
        if (st == DEL_OK)
            st = del_model_forward(in->model, b->x);
        const del_tensor *z = del_model_output(in->model);
        if (st == DEL_OK && t->teacher) {
            st = del_loss_distill(z, t->tlogits, t->temperature, &kd, t->g_kd);
        } else if (st == DEL_OK) {
            memset(del_tensor_data(t->g_kd), 0, (size_t)del_tensor_numel(t->g_kd) * sizeof(float));
            st = del_loss_distill_acc(z, t->tlogits, NULL, t->temperature, DEL_DISTILL_TEACHER_PROBS, 1.0f, &kd,
                                      t->g_kd);
        }
        if (st == DEL_OK && ce_w != 0.0f)
            st = del_task_ce(tr, b, z, &ce, t->g_ce);
        if (st != DEL_OK)
            return st;
        float *g = del_tensor_data(t->g_kd);
        const float *gc = del_tensor_data(t->g_ce);
        const int64_t count = del_tensor_numel(t->g_kd);
        if (ce_w != 0.0f)
            for (int64_t i = 0; i < count; i++)
                g[i] = kd_w * g[i] + ce_w * gc[i];
        else
            for (int64_t i = 0; i < count; i++)
                g[i] = kd_w * g[i];
        sum += (double)kd_w * kd + (double)ce_w * ce;
        st = del_model_backward(in->model, t->g_kd);
        if (st != DEL_OK)
            return st;
    }
    *loss = (float)sum;
    return DEL_OK;
}

/* The settings, and a teacher whose batchnorm trains (its statistics are
 * part of the run). */
static del_status distill_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)fn;
    const distill_state *s = state;
    return del_teacher_save(&s->term, "distill", "teacher", tr->channels, ck);
}

static del_status distill_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    distill_state *s = state;
    teacher_term read;
    del_status st = del_teacher_read(&read, &s->term, "distill", "teacher", tr->channels, ck, fn);
    if (st == DEL_OK)
        del_teacher_take(&s->term, &read, "teacher", ck);
    return st;
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
    del_status st = teacher ? DEL_OK : check_stored(student, labeled, transfer, fn);
    if (st != DEL_OK)
        return st;
    del_trainer *tr = NULL;
    st = del_trainer_create(&tr, &del_objective_distill, student, fn);
    if (st == DEL_OK && teacher)
        st = del_teacher_check(tr, teacher, fn);
    if (st == DEL_OK) {
        distill_state *s = tr->state;
        s->term.teacher = teacher;
    }
    if (st == DEL_OK && labeled)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    if (st == DEL_OK && transfer)
        st = del_stream_init(tr, DEL_STREAM_U, transfer, 0, DEFAULT_BATCH, "transfer", fn);
    return del_trainer_finish(out, tr, st, fn);
}

/* The distillation term a setting changes: a distillation trainer's, or
 * the teacher added to another trainer; else an error naming the setting. */
static del_status term_of(del_trainer *tr, teacher_term **t, const char *setting, const char *fn)
{
    del_status st = del_trainer_check_settable(tr, fn);
    if (st != DEL_OK)
        return st;
    if (tr->obj == &del_objective_distill) {
        *t = &((distill_state *)tr->state)->term;
        return DEL_OK;
    }
    if (!tr->teacher)
        return train_error(DEL_EINVAL, "%s: '%s' does not apply to a %s trainer (only to distillation trainers and "
                           "trainers given a teacher with del_trainer_add_teacher)", fn, setting, tr->obj->name);
    *t = tr->teacher;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_distill_alpha(del_trainer *trainer, float alpha)
{
    static const char fn[] = "del_trainer_set_distill_alpha";
    teacher_term *t = NULL;
    del_status st = term_of(trainer, &t, "alpha", fn);
    if (st != DEL_OK)
        return st;
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'alpha' must be in [0, 1], got %g", fn, (double)alpha);
    t->kd_weight = alpha;
    t->ce_weight = 1.0f - alpha;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_distill_weights(del_trainer *trainer, float kd_weight, float ce_weight)
{
    static const char fn[] = "del_trainer_set_distill_weights";
    teacher_term *t = NULL;
    del_status st = term_of(trainer, &t, "weights", fn);
    if (st != DEL_OK)
        return st;
    if (!(kd_weight >= 0.0f) || !isfinite(kd_weight))
        return train_error(DEL_EINVAL, "%s: 'kd_weight' must be a finite value >= 0, got %g", fn, (double)kd_weight);
    if (!(ce_weight >= 0.0f) || !isfinite(ce_weight))
        return train_error(DEL_EINVAL, "%s: 'ce_weight' must be a finite value >= 0, got %g", fn, (double)ce_weight);
    if (kd_weight == 0.0f && ce_weight == 0.0f)
        return train_error(DEL_EINVAL, "%s: 'kd_weight' and 'ce_weight' must not both be 0", fn);
    t->kd_weight = kd_weight;
    t->ce_weight = ce_weight;
    return DEL_OK;
}

/* LwF's own temperature and T² come first on an LwF trainer (its teacher's
 * are given to del_trainer_add_teacher); on others, the term's. */
DEL_API del_status del_trainer_set_temperature(del_trainer *trainer, float temperature)
{
    static const char fn[] = "del_trainer_set_temperature";
    teacher_term *t = NULL;
    del_status st = trainer && trainer->obj == &del_objective_lwf ? del_trainer_check_settable(trainer, fn)
                                                                   : term_of(trainer, &t, "temperature", fn);
    if (st != DEL_OK)
        return st;
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return train_error(DEL_EINVAL, "%s: 'temperature' must be a finite value > 0, got %g", fn,
                           (double)temperature);
    if (!t)
        return del_lwf_set_temperature(trainer, temperature);
    t->temperature = temperature;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_distill_t2(del_trainer *trainer, int on)
{
    static const char fn[] = "del_trainer_set_distill_t2";
    teacher_term *t = NULL;
    del_status st = trainer && trainer->obj == &del_objective_lwf ? del_trainer_check_settable(trainer, fn)
                                                                   : term_of(trainer, &t, "t2", fn);
    if (st != DEL_OK)
        return st;
    if (on != 0 && on != 1)
        return train_error(DEL_EINVAL, "%s: 'on' must be 0 or 1, got %d", fn, on);
    if (!t)
        return del_lwf_set_t2(trainer, on);
    t->t2 = on;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_teacher_training(del_trainer *trainer, int training)
{
    static const char fn[] = "del_trainer_set_teacher_training";
    teacher_term *t = NULL;
    del_status st = term_of(trainer, &t, "teacher_training", fn);
    if (st != DEL_OK)
        return st;
    if (training != 0 && training != 1)
        return train_error(DEL_EINVAL, "%s: 'training' must be 0 or 1, got %d", fn, training);
    if (!t->teacher)
        return train_error(DEL_EINVAL, "%s: the trainer distills from stored soft labels: it has no live teacher", fn);
    t->training = training;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_teacher_normalize(del_trainer *trainer, const float *mean, const float *std,
                                                     int channels)
{
    static const char fn[] = "del_trainer_set_teacher_normalize";
    teacher_term *t = NULL;
    del_status st = term_of(trainer, &t, "teacher_normalize", fn);
    if (st != DEL_OK)
        return st;
    if (!t->teacher)
        return train_error(DEL_EINVAL, "%s: the trainer distills from stored soft labels: it has no live teacher", fn);
    train_settings check = trainer->set;
    st = del_settings_normalize_for(trainer->channels, &check, mean, std, channels, fn);
    if (st != DEL_OK)
        return st;
    for (int c = 0; c < channels; c++) {
        t->t_mean[c] = mean[c];
        t->t_std[c] = std[c];
    }
    t->norm = 1;
    return DEL_OK;
}
