/* A live teacher's distillation term, shared by the distillation
 * objective and by the trainers of a labeled head that a teacher is added
 * to (del_trainer_add_teacher: supervised, fine-tuning, LwF), and the
 * task head's loss those objectives compute through it:
 *   loss = kd_w · T² KL(softmax_T(teacher) ‖ softmax_T(z)) + ce_w · CE(labels, z)
 * (the batch mean of each; CE alone without a teacher). The teacher sees
 * the batch the model sees (augmented, mixed), normalised its own way when
 * it has one, and is never updated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

del_status del_teacher_check(const del_trainer *tr, const del_model *teacher, const char *fn)
{
    if (teacher == tr->model)
        return train_error(DEL_EINVAL, "%s: 'teacher' must be another model than the one trained (clone it first)",
                           fn);
    int tc = 0, th = 0, tw = 0, tn = 0;
    int64_t to[3];
    del_status st = del_model_input_shape(teacher, &tc, &th, &tw);
    if (st == DEL_OK)
        st = del_model_output_shape(teacher, &tn, to);
    if (st != DEL_OK)
        return train_error_as(st, fn);
    if (tc != tr->channels || th != tr->height || tw != tr->width)
        return train_error(DEL_EINVAL, "%s: 'teacher' takes %d x %d x %d images, the student %d x %d x %d (C x H x "
                           "W): they must see the same images", fn, tc, th, tw, tr->channels, tr->height, tr->width);
    if (tn != 1 || to[0] != tr->num_outputs)
        return train_error(DEL_EINVAL, "%s: 'teacher' gives %lld class scores, the student's trained head %d: they "
                           "must have the same classes", fn, (long long)(tn == 1 ? to[0] : 0), tr->num_outputs);
    return DEL_OK;
}

void del_teacher_defaults(teacher_term *t, del_model *teacher, float temperature, float kd_weight)
{
    memset(t, 0, sizeof *t);
    t->teacher = teacher;
    t->temperature = temperature;
    t->kd_weight = kd_weight;
    t->ce_weight = 1.0f - kd_weight;
    t->t2 = 1;
}

void del_teacher_release(teacher_term *t)
{
    del_tensor_free(t->tx);
    del_tensor_free(t->tlogits);
    del_tensor_free(t->g_kd);
    del_tensor_free(t->g_ce);
    t->tx = t->tlogits = t->g_kd = t->g_ce = NULL;
}

del_status del_teacher_logits(teacher_term *t, const del_trainer *tr, const del_tensor *x)
{
    const del_tensor *in = x;
    if (t->norm) {
        /* x = (v - m) / d with the student's (m, d); the teacher's input is
         * (v - m') / d' = (x d + m - m') / d'. */
        del_status st = del_trainer_ensure_like(&t->tx, x);
        if (st != DEL_OK)
            return st;
        const float *src = del_tensor_data((del_tensor *)x);
        float *dst = del_tensor_data(t->tx);
        const int64_t n = del_tensor_dim(x, 0), plane = (int64_t)tr->height * tr->width;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < tr->channels; c++) {
                const float scale = tr->set.std[c] / t->t_std[c];
                const float shift = (tr->set.mean[c] - t->t_mean[c]) / t->t_std[c];
                const int64_t base = (i * tr->channels + c) * plane;
                for (int64_t k = 0; k < plane; k++)
                    dst[base + k] = src[base + k] * scale + shift;
            }
        in = t->tx;
    }
    del_status st = del_model_set_training(t->teacher, t->training);
    if (st == DEL_OK)
        st = del_model_forward(t->teacher, in);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&t->tlogits, del_tensor_dim(x, 0), tr->num_outputs);
    if (st == DEL_OK)
        memcpy(del_tensor_data(t->tlogits), del_tensor_data(del_model_output(t->teacher)),
               (size_t)del_tensor_numel(t->tlogits) * sizeof(float));
    return st;
}

/* Smooths the soft labels of a batch in place: t' = (1 - s) t + s / K. The
 * slot belongs to the fitting thread until it is released, and the
 * producer rewrites its labels before using it again. */
static void smooth_soft_labels(float smoothing, int k, del_tensor *soft)
{
    float *t = del_tensor_data(soft);
    const int64_t count = del_tensor_numel(soft);
    const float keep = 1.0f - smoothing, spread = smoothing / (float)k;
    for (int64_t i = 0; i < count; i++)
        t[i] = keep * t[i] + spread;
}

del_status del_task_ce(const del_trainer *tr, const batch_slot *b, const del_tensor *z, float *loss, del_tensor *grad)
{
    const float smoothing = tr->set.smoothing;
    if (b->soft && smoothing != 0.0f)
        smooth_soft_labels(smoothing, tr->num_outputs, b->soft);
    return b->soft ? del_loss_soft_cross_entropy(z, b->soft, loss, grad)
                   : del_loss_cross_entropy_smooth(z, b->y, smoothing, loss, grad);
}

del_status del_task_loss(del_trainer *tr, const batch_slot *b, const del_tensor *z, float *loss, del_tensor *grad)
{
    teacher_term *t = tr->teacher;
    if (!t)
        return del_task_ce(tr, b, z, loss, grad);
    const int64_t n = del_tensor_dim(b->x, 0);
    float ce = 0.0f, kd = 0.0f;
    del_status st = del_trainer_ensure_matrix(&t->g_kd, n, tr->num_outputs);
    if (st == DEL_OK)
        st = del_teacher_logits(t, tr, b->x);
    if (st == DEL_OK)
        st = del_loss_distill(z, t->tlogits, t->temperature, &kd, t->g_kd);
    if (st == DEL_OK && t->ce_weight != 0.0f)
        st = del_task_ce(tr, b, z, &ce, grad);
    if (st != DEL_OK)
        return st;
    const float kd_w = t->t2 ? t->kd_weight : t->kd_weight / (t->temperature * t->temperature);
    const float ce_w = t->ce_weight;
    float *g = del_tensor_data(grad);
    const float *gk = del_tensor_data(t->g_kd);
    const int64_t count = del_tensor_numel(grad);
    if (ce_w != 0.0f)
        for (int64_t i = 0; i < count; i++)
            g[i] = kd_w * gk[i] + ce_w * g[i];
    else
        for (int64_t i = 0; i < count; i++)
            g[i] = kd_w * gk[i];
    *loss = kd_w * kd + ce_w * ce;
    return DEL_OK;
}

/* ---- checkpoints ---- */

enum { KEY_MAX = 48 };

static const char *key(char buf[KEY_MAX], const char *prefix, const char *field)
{
    snprintf(buf, KEY_MAX, "%s_%s", prefix, field);
    return buf;
}

static const char *channel_key(char buf[KEY_MAX], const char *prefix, const char *field, int c)
{
    snprintf(buf, KEY_MAX, "%s_%s_%d", prefix, field, c);
    return buf;
}

del_status del_teacher_save(const teacher_term *t, const char *prefix, const char *model, int channels,
                            del_checkpoint *ck)
{
    char k[KEY_MAX];
    del_status st = del_checkpoint_set_f32(ck, key(k, prefix, "temperature"), t->temperature);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, key(k, prefix, "kd_weight"), t->kd_weight);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, key(k, prefix, "ce_weight"), t->ce_weight);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, key(k, prefix, "t2"), t->t2);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, key(k, prefix, "teacher_training"), t->training);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, key(k, prefix, "teacher_norm"), t->norm);
    for (int c = 0; c < channels && t->norm && st == DEL_OK; c++) {
        st = del_checkpoint_set_f32(ck, channel_key(k, prefix, "teacher_mean", c), t->t_mean[c]);
        if (st == DEL_OK)
            st = del_checkpoint_set_f32(ck, channel_key(k, prefix, "teacher_std", c), t->t_std[c]);
    }
    if (st == DEL_OK && t->teacher && t->training)
        st = del_checkpoint_add_model(ck, model, t->teacher);
    return st;
}

del_status del_teacher_read(teacher_term *out, const teacher_term *cur, const char *prefix, const char *model,
                            int channels, const del_checkpoint *ck, const char *fn)
{
    teacher_term n = *cur;
    int64_t t2 = 0, training = 0, norm = 0;
    char k[KEY_MAX];
    del_status st = del_trainer_read_f32(ck, key(k, prefix, "temperature"), &n.temperature, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, key(k, prefix, "kd_weight"), &n.kd_weight, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, key(k, prefix, "ce_weight"), &n.ce_weight, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, key(k, prefix, "t2"), &t2, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, key(k, prefix, "teacher_training"), &training, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, key(k, prefix, "teacher_norm"), &norm, fn);
    for (int c = 0; c < channels && norm && st == DEL_OK; c++) {
        st = del_trainer_read_f32(ck, channel_key(k, prefix, "teacher_mean", c), &n.t_mean[c], fn);
        if (st == DEL_OK)
            st = del_trainer_read_f32(ck, channel_key(k, prefix, "teacher_std", c), &n.t_std[c], fn);
    }
    if (st != DEL_OK)
        return st;
    int bad = !(n.temperature > 0.0f) || !isfinite(n.temperature) || !(n.kd_weight >= 0.0f) ||
              !isfinite(n.kd_weight) || !(n.ce_weight >= 0.0f) || !isfinite(n.ce_weight) || (t2 != 0 && t2 != 1) ||
              (training != 0 && training != 1) || (norm != 0 && norm != 1);
    for (int c = 0; c < channels && norm; c++)
        bad |= !isfinite(n.t_mean[c]) || !(n.t_std[c] > 0.0f) || !isfinite(n.t_std[c]);
    if (bad)
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (distillation settings out of range)", fn);
    if ((training || norm) && !cur->teacher)
        return train_error(DEL_EINVAL, "%s: the checkpoint was saved with a live teacher, this trainer distils from "
                           "stored soft labels", fn);
    const int has_teacher = del_checkpoint_has_model(ck, model);
    if (has_teacher && !cur->teacher)
        return train_error(DEL_EINVAL, "%s: the checkpoint holds a teacher, this trainer has none", fn);
    if (has_teacher)
        st = train_error_as(del_checkpoint_check_model(ck, model, cur->teacher, NULL), fn);
    if (st != DEL_OK)
        return st;
    n.t2 = (int)t2;
    n.training = (int)training;
    n.norm = (int)norm;
    *out = n;
    return DEL_OK;
}

void del_teacher_take(teacher_term *t, const teacher_term *read, const char *model, const del_checkpoint *ck)
{
    if (t->teacher && del_checkpoint_has_model(ck, model))
        (void)del_checkpoint_restore_model(ck, model, t->teacher, NULL);
    *t = *read;
}

/* ---- the public part ---- */

del_status del_teacher_of(del_trainer *tr, teacher_term **t, const char *setting, const char *fn)
{
    del_status st = del_trainer_check_settable(tr, fn);
    if (st != DEL_OK)
        return st;
    if (!tr->teacher)
        return train_error(DEL_EINVAL, "%s: '%s' does not apply to a %s trainer without a teacher (see "
                           "del_trainer_add_teacher)", fn, setting, tr->obj->name);
    *t = tr->teacher;
    return DEL_OK;
}

DEL_API del_status del_trainer_add_teacher(del_trainer *trainer, del_model *teacher, float temperature, float alpha)
{
    static const char fn[] = "del_trainer_add_teacher";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!teacher)
        return train_error_null(fn, "teacher");
    if (trainer->obj == &del_objective_distill)
        return train_error(DEL_EINVAL, "%s: a distillation trainer has its teacher from del_trainer_new_distill", fn);
    if (trainer->teacher)
        return train_error(DEL_EINVAL, "%s: the trainer has a teacher already", fn);
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return train_error(DEL_EINVAL, "%s: 'temperature' must be a finite value > 0, got %g", fn,
                           (double)temperature);
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return train_error(DEL_EINVAL, "%s: 'alpha' must be in [0, 1], got %g", fn, (double)alpha);
    st = del_teacher_check(trainer, teacher, fn);
    if (st != DEL_OK)
        return st;
    teacher_term *t = malloc(sizeof *t);
    if (!t)
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    del_teacher_defaults(t, teacher, temperature, alpha);
    trainer->teacher = t;
    return DEL_OK;
}
