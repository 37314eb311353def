/* The trainers' checkpoints, on the public checkpoint record
 * (include/del/checkpoint.h): the model and its optimizer, the settings and
 * the place in the batch orders as named fields under the objective's
 * name, and whatever the objective adds (its settings, tensors, models). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define FIELD_KEY_MAX 32
#define MAX_FIELDS 64

enum { FIELD_I64 = DEL_CHECKPOINT_KIND_I64, FIELD_F32 = DEL_CHECKPOINT_KIND_F32 };

/* One field of the trainer record. */
typedef struct trainer_field {
    char key[FIELD_KEY_MAX + 1];
    int kind;
    int64_t i;
    float f;
} trainer_field;

/* FNV-1a over the labeled images' indices and labels: a resumed run must
 * draw from the same pool. */
static int64_t pool_hash(const train_stream *st)
{
    const int32_t *labels = del_dataset_labels(st->data);
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (int64_t k = 0; k < st->pool_n; k++) {
        uint64_t v[2] = {(uint64_t)st->pool[k], (uint64_t)(uint32_t)labels[st->pool[k]]};
        for (int j = 0; j < 2; j++)
            for (int b = 0; b < 8; b++) {
                h ^= (v[j] >> (8 * b)) & 0xff;
                h *= UINT64_C(0x100000001b3);
            }
    }
    return (int64_t)h;
}

/* Each stream's fields: its rows (count, hash of rows and labels), whether
 * it had a pipeline, its batch size and place in its order. The labeled
 * stream's keys are the ones the supervised trainer always wrote. */
enum { SF_ROWS, SF_HASH, SF_AUGMENT, SF_BATCH, SF_EPOCH, SF_POSITION, SF_COUNT };
static const char *const stream_keys[DEL_NSTREAMS][SF_COUNT] = {
    {"labeled", "labels_hash", "augment", "batch", "epoch", "position"},
    {"unlabeled", "u_labels_hash", "u_augment", "u_batch", "u_epoch", "u_position"},
};

/* The trainer's record: what identifies the datasets, the settings, the
 * place in the batch orders. del_trainer_load_checkpoint reads the same. */
static int trainer_fields(const del_trainer *tr, trainer_field *f)
{
    int n = 0;
#define I64(k, v) f[n++] = (trainer_field){.key = k, .kind = FIELD_I64, .i = (int64_t)(v)}
#define F32(k, v) f[n++] = (trainer_field){.key = k, .kind = FIELD_F32, .f = (v)}
    for (int s = 0; s < DEL_NSTREAMS; s++) {
        const train_stream *st = &tr->streams[s];
        if (!st->data)
            continue;
        const char *const *k = stream_keys[s];
        I64("", st->pool_n);
        strcpy(f[n - 1].key, k[SF_ROWS]);
        I64("", pool_hash(st));
        strcpy(f[n - 1].key, k[SF_HASH]);
        I64("", st->aug != NULL);
        strcpy(f[n - 1].key, k[SF_AUGMENT]);
        I64("", st->batch);
        strcpy(f[n - 1].key, k[SF_BATCH]);
        I64("", st->order.epoch);
        strcpy(f[n - 1].key, k[SF_EPOCH]);
        I64("", st->order.pos);
        strcpy(f[n - 1].key, k[SF_POSITION]);
    }
    I64("outputs", tr->num_outputs);
    I64("seed", tr->seed);
    I64("steps_done", tr->steps_done);
    I64("total_steps", tr->set.total_steps);
    I64("adamw", tr->set.use_adamw);
    F32("sgd_lr", tr->set.lr);
    F32("sgd_momentum", tr->set.momentum);
    F32("sgd_weight_decay", tr->set.weight_decay);
    I64("sgd_nesterov", tr->set.nesterov);
    F32("adamw_lr", tr->set.adam_lr);
    F32("adamw_beta1", tr->set.beta1);
    F32("adamw_beta2", tr->set.beta2);
    F32("adamw_eps", tr->set.adam_eps);
    F32("adamw_weight_decay", tr->set.adam_weight_decay);
    I64("schedule", tr->set.schedule);
    I64("step_size", tr->set.step_size);
    F32("gamma", tr->set.gamma);
    I64("warmup", tr->set.warmup);
    F32("clip_norm", tr->set.clip_norm);
    F32("label_smoothing", tr->set.smoothing);
    I64("nonfinite", tr->set.nonfinite);
    I64("skipped", tr->skipped);
    static const char *const means[MAX_CHANNELS] = {"mean_0", "mean_1", "mean_2"};
    static const char *const stds[MAX_CHANNELS] = {"std_0", "std_1", "std_2"};
    for (int c = 0; c < tr->channels; c++) {
        F32("", tr->set.mean[c]);
        strcpy(f[n - 1].key, means[c]);
        F32("", tr->set.std[c]);
        strcpy(f[n - 1].key, stds[c]);
    }
#undef I64
#undef F32
    return n;
}

DEL_API del_status del_trainer_save_checkpoint(del_trainer *trainer, const char *path)
{
    static const char fn[] = "del_trainer_save_checkpoint";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (!path)
        return train_error_null(fn, "path");
    if (trainer->fitting && trainer->set.total_steps == 0)
        return train_error(DEL_ESTATE, "%s: saving during a fit needs del_trainer_set_total_steps (without it the "
                         "fit's optimizer is not kept)", fn);
    trainer_field fields[MAX_FIELDS];
    const int n = trainer_fields(trainer, fields);
    del_checkpoint *ck = NULL;
    del_status st = del_checkpoint_new(&ck);
    if (st == DEL_OK)
        st = del_checkpoint_add_model(ck, DEL_CHECKPOINT_MODEL, trainer->model);
    if (st == DEL_OK && trainer->opt)
        st = del_checkpoint_add_optimizer(ck, DEL_CHECKPOINT_MODEL, trainer->opt);
    if (st == DEL_OK)
        st = del_checkpoint_set_trainer(ck, trainer->obj->name);
    for (int k = 0; k < n && st == DEL_OK; k++)
        st = fields[k].kind == FIELD_I64 ? del_checkpoint_set_i64(ck, fields[k].key, fields[k].i)
                                         : del_checkpoint_set_f32(ck, fields[k].key, fields[k].f);
    if (st == DEL_OK && trainer->obj->save)
        st = trainer->obj->save(trainer->state, trainer, ck, fn);
    if (st == DEL_OK && trainer->ema)
        st = del_checkpoint_set_f32(ck, "ema_decay", trainer->ema_decay);
    if (st == DEL_OK && trainer->ema)
        st = del_checkpoint_add_model(ck, "ema", trainer->ema);
    if (st == DEL_OK && trainer->teacher)
        st = del_checkpoint_set_i64(ck, "added_teacher", 1);
    if (st == DEL_OK && trainer->teacher)
        st = del_teacher_save(trainer->teacher, "added", "added_teacher", trainer->channels, ck);
    if (st == DEL_OK)
        st = del_checkpoint_write(ck, path);
    del_checkpoint_free(ck);
    return train_error_as(st, fn);
}

/* Reads the field key of kind into *i or *f. */
static del_status get_field(const del_checkpoint *c, const char *key, int kind, int64_t *i, float *f, const char *fn,
                            const char *path)
{
    if ((int)del_checkpoint_field_kind(c, key) != kind)
        return train_error(DEL_EFORMAT, "%s: '%s' is corrupt (the trainer record lacks '%s')", fn, path, key);
    return kind == FIELD_I64 ? del_checkpoint_get_i64(c, key, i) : del_checkpoint_get_f32(c, key, f);
}

del_status del_trainer_read_i64(const del_checkpoint *c, const char *key, int64_t *v, const char *fn)
{
    return get_field(c, key, FIELD_I64, v, NULL, fn, "the checkpoint");
}

del_status del_trainer_read_f32(const del_checkpoint *c, const char *key, float *v, const char *fn)
{
    return get_field(c, key, FIELD_F32, NULL, v, fn, "the checkpoint");
}

/* Reads an optional field (written since libdel 0.1 added it): absent, it
 * is 0. */
static int64_t optional_i64(const del_checkpoint *c, const char *key)
{
    int64_t v = 0;
    if (del_checkpoint_field_kind(c, key) == DEL_CHECKPOINT_KIND_I64)
        del_checkpoint_get_i64(c, key, &v);
    return v;
}

/* The saved settings, checked by the setters' own checks into s and
 * *seed; a value they refuse makes the file corrupt. */
static del_status load_settings(train_settings *s, uint64_t *seed, int channels, const del_checkpoint *c, const char *fn,
                                const char *path)
{
    static const char *const names[] = {
        "sgd_lr", "sgd_momentum", "sgd_weight_decay", "adamw_lr", "adamw_beta1", "adamw_beta2", "adamw_eps",
        "adamw_weight_decay", "gamma", "clip_norm", "label_smoothing", "mean_0", "std_0", "mean_1", "std_1",
        "mean_2", "std_2"};
    enum { N_F32 = sizeof names / sizeof names[0] };
    static const char *const inames[] = {"adamw", "sgd_nesterov", "schedule", "step_size", "warmup",
                                         "total_steps", "seed"};
    enum { N_I64 = sizeof inames / sizeof inames[0] };
    float v[N_F32];
    int64_t iv[N_I64];
    del_status st = DEL_OK;
    for (int k = 0; k < N_F32 && st == DEL_OK; k++)
        st = k < 11 + 2 * channels ? get_field(c, names[k], FIELD_F32, NULL, &v[k], fn, path) : DEL_OK;
    for (int k = 0; k < N_I64 && st == DEL_OK; k++)
        st = get_field(c, inames[k], FIELD_I64, &iv[k], NULL, fn, path);
    if (st != DEL_OK)
        return st;
    float mean[MAX_CHANNELS], stdv[MAX_CHANNELS];
    for (int ch = 0; ch < channels; ch++) {
        mean[ch] = v[11 + 2 * ch];
        stdv[ch] = v[12 + 2 * ch];
    }
    const int64_t nonfinite = optional_i64(c, "nonfinite");
    if (iv[0] != 0 && iv[0] != 1)
        st = train_error(DEL_EINVAL, "'adamw' must be 0 or 1");
    if (st == DEL_OK && iv[1] != 0 && iv[1] != 1)
        st = train_error(DEL_EINVAL, "'sgd_nesterov' must be 0 or 1");
    if (st == DEL_OK && iv[2] != DEL_SCHEDULE_STEP && iv[2] != DEL_SCHEDULE_CONSTANT && iv[2] != DEL_SCHEDULE_COSINE)
        st = train_error(DEL_EINVAL, "unknown schedule");
    if (st == DEL_OK && nonfinite != DEL_NONFINITE_STOP && nonfinite != DEL_NONFINITE_SKIP)
        st = train_error(DEL_EINVAL, "unknown non-finite policy");
    /* The optimizer not in use first: each check selects its own. */
    if (st == DEL_OK && iv[0])
        st = del_settings_sgd(s, v[0], v[1], v[2], (int)iv[1], "del_trainer_set_sgd");
    if (st == DEL_OK)
        st = del_settings_adamw(s, v[3], v[4], v[5], v[6], v[7], "del_trainer_set_adamw");
    if (st == DEL_OK && !iv[0])
        st = del_settings_sgd(s, v[0], v[1], v[2], (int)iv[1], "del_trainer_set_sgd");
    if (st == DEL_OK)
        st = del_settings_step_schedule(s, iv[3], v[8], "del_trainer_set_step_schedule");
    if (st == DEL_OK)
        st = del_settings_schedule(s, (del_schedule)iv[2], "del_trainer_set_schedule");
    if (st == DEL_OK)
        st = del_settings_warmup(s, iv[4], "del_trainer_set_warmup");
    if (st == DEL_OK)
        st = del_settings_clip_norm(s, v[9], "del_trainer_set_clip_norm");
    if (st == DEL_OK)
        st = del_settings_label_smoothing(s, v[10], "del_trainer_set_label_smoothing");
    if (st == DEL_OK)
        st = del_settings_normalize(s, mean, stdv, channels, "del_trainer_set_normalize");
    if (st == DEL_OK)
        st = del_settings_total_steps(s, iv[5], "del_trainer_set_total_steps");
    if (st == DEL_OK)
        st = del_settings_nonfinite(s, (del_nonfinite)nonfinite, "del_trainer_set_nonfinite");
    if (st != DEL_OK) {
        char why[TRAIN_ERROR_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return train_error(DEL_EFORMAT, "%s: '%s' is corrupt (trainer setting: %s)", fn, path, why);
    }
    *seed = (uint64_t)iv[6];
    return DEL_OK;
}

/* A checkpoint's place in the batch orders. */
typedef struct saved_position {
    int batch[DEL_NSTREAMS];
    order_cursor order[DEL_NSTREAMS];
    int64_t steps_done, skipped;
} saved_position;

/* One stream's dataset and pipeline checks and its place in its order. */
static del_status load_stream(const del_trainer *tr, int s, saved_position *pos, const del_checkpoint *c, const char *fn,
                              const char *path)
{
    const train_stream *st = &tr->streams[s];
    const char *const *keys = stream_keys[s];
    static const char *const what[DEL_NSTREAMS] = {"labeled", "unlabeled"};
    const int saved = del_checkpoint_field_kind(c, keys[SF_ROWS]) != DEL_CHECKPOINT_KIND_NONE;
    if (saved != (st->data != NULL))
        return train_error(DEL_EINVAL, "%s: '%s' was saved by a trainer %s %s images, this one has %s", fn, path,
                           saved ? "with" : "without", what[s], st->data ? "them" : "none");
    if (!st->data)
        return DEL_OK;
    int64_t v[SF_COUNT];
    for (int k = 0; k < SF_COUNT; k++) {
        del_status status = get_field(c, keys[k], FIELD_I64, &v[k], NULL, fn, path);
        if (status != DEL_OK)
            return status;
    }
    if (v[SF_ROWS] != st->pool_n || v[SF_HASH] != pool_hash(st))
        return train_error(DEL_EINVAL, "%s: '%s' was saved with another dataset (%lld %s images, this trainer "
                           "has %lld%s)", fn, path, (long long)v[SF_ROWS], what[s], (long long)st->pool_n,
                           v[SF_ROWS] == st->pool_n ? " with other labels or in another order" : "");
    if (v[SF_AUGMENT] != (st->aug != NULL))
        return train_error(DEL_EINVAL, "%s: '%s' was saved %s an augmentation pipeline for the %s images; %s", fn,
                           path, v[SF_AUGMENT] ? "with" : "without", what[s],
                           v[SF_AUGMENT] ? "set the same pipeline before loading"
                                         : "remove the trainer's pipeline before loading");
    if (v[SF_BATCH] < 1 || v[SF_BATCH] > st->pool_n || v[SF_EPOCH] < 0 || v[SF_POSITION] < 0 ||
        v[SF_POSITION] > st->pool_n)
        return train_error(DEL_EFORMAT, "%s: '%s' is corrupt (batch size or batch order out of range)", fn, path);
    pos->batch[s] = (int)v[SF_BATCH];
    pos->order[s].epoch = v[SF_EPOCH];
    pos->order[s].pos = v[SF_POSITION];
    return DEL_OK;
}

/* The dataset and pipeline checks and the place in the batch orders. */
static del_status load_position(const del_trainer *tr, saved_position *pos, const del_checkpoint *c, const char *fn,
                                const char *path)
{
    int64_t outputs = 0, steps = 0;
    del_status st = get_field(c, "outputs", FIELD_I64, &outputs, NULL, fn, path);
    if (st == DEL_OK)
        st = get_field(c, "steps_done", FIELD_I64, &steps, NULL, fn, path);
    if (st != DEL_OK)
        return st;
    if (outputs != tr->num_outputs)
        return train_error(DEL_EINVAL, "%s: '%s' was saved with a model of %lld outputs, this trainer's has %d", fn,
                           path, (long long)outputs, tr->num_outputs);
    for (int s = 0; s < DEL_NSTREAMS && st == DEL_OK; s++)
        st = load_stream(tr, s, pos, c, fn, path);
    if (st != DEL_OK)
        return st;
    const int64_t skipped = optional_i64(c, "skipped");
    if (steps < 0 || skipped < 0 || skipped > steps)
        return train_error(DEL_EFORMAT, "%s: '%s' is corrupt (batch size or batch order out of range)", fn, path);
    pos->steps_done = steps;
    pos->skipped = skipped;
    return DEL_OK;
}

DEL_API del_status del_trainer_load_checkpoint(del_trainer *trainer, const char *path)
{
    static const char fn[] = "del_trainer_load_checkpoint";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (!path)
        return train_error_null(fn, "path");
    if (trainer->fitting)
        return train_error(DEL_ESTATE, "%s: cannot load while del_trainer_fit runs", fn);
    del_checkpoint *c = NULL;
    del_optimizer *opt = NULL;
    del_status st = del_checkpoint_read(&c, path);
    if (st != DEL_OK)
        return train_error_as(st, fn);
    /* Everything is read and checked into these before the trainer
     * changes. */
    train_settings set = trainer->set;
    uint64_t seed = 0;
    saved_position pos = {0};
    const char *name = del_checkpoint_trainer(c);
    if (!name)
        st = train_error(DEL_EINVAL, "%s: '%s' holds no trainer state (saved with del_checkpoint_save; load it with "
                         "del_checkpoint_load)", fn, path);
    else if (strcmp(name, trainer->obj->name) != 0)
        st = train_error(DEL_EINVAL, "%s: '%s' was saved by a %s trainer, not a %s one", fn, path, name,
                         trainer->obj->name);
    if (st == DEL_OK)
        st = load_settings(&set, &seed, trainer->channels, c, fn, path);
    if (st == DEL_OK)
        st = load_position(trainer, &pos, c, fn, path);
    const char *kind = st == DEL_OK ? del_checkpoint_optimizer_type(c, DEL_CHECKPOINT_MODEL) : NULL;
    if (kind) {
        if (set.total_steps == 0 || (strcmp(kind, "adamw") == 0) != set.use_adamw)
            st = train_error(DEL_EFORMAT, "%s: '%s' is corrupt (its optimizer does not match the trainer's settings)",
                             fn, path);
        if (st == DEL_OK)
            st = del_trainer_make_optimizer(trainer->model, &set, set.total_steps, &opt);
    }
    if (st == DEL_OK)
        st = train_error_as(del_checkpoint_check_model(c, DEL_CHECKPOINT_MODEL, trainer->model, opt), fn);
    /* A teacher added to the trainer (del_trainer_add_teacher): both or
     * neither. */
    teacher_term added = {0};
    const int has_added = st == DEL_OK && optional_i64(c, "added_teacher") == 1;
    if (st == DEL_OK && has_added != (trainer->teacher != NULL))
        st = train_error(DEL_EINVAL, has_added ? "%s: '%s' was saved by a trainer with a teacher "
                         "(del_trainer_add_teacher), this one has none" : "%s: '%s' was saved by a trainer without "
                         "a teacher, this one has one (del_trainer_add_teacher)", fn, path);
    if (st == DEL_OK && has_added)
        st = del_teacher_read(&added, trainer->teacher, "added", "added_teacher", trainer->channels, c, fn);
    /* The moving average of the weights: both or neither. */
    const int has_ema = st == DEL_OK && del_checkpoint_has_model(c, "ema");
    float ema_decay = 0.0f;
    if (st == DEL_OK && has_ema != (trainer->ema != NULL))
        st = train_error(DEL_EINVAL, has_ema ? "%s: '%s' was saved by a trainer with a moving average of its weights "
                         "(del_trainer_set_ema), this one has none" : "%s: '%s' was saved by a trainer without a "
                         "moving average of its weights, this one has one (del_trainer_set_ema)", fn, path);
    if (st == DEL_OK && has_ema)
        st = del_trainer_read_f32(c, "ema_decay", &ema_decay, fn);
    if (st == DEL_OK && has_ema && !(ema_decay > 0.0f && ema_decay < 1.0f))
        st = train_error(DEL_EFORMAT, "%s: '%s' is corrupt (its moving-average decay is out of range)", fn, path);
    if (st == DEL_OK && has_ema)
        st = train_error_as(del_checkpoint_check_model(c, "ema", trainer->ema, NULL), fn);
    /* The objective checks and takes its own part last: it changes its
     * state only when all of it passed. */
    if (st == DEL_OK && trainer->obj->load)
        st = trainer->obj->load(trainer->state, trainer, c, fn);
    if (st == DEL_OK && has_added)
        del_teacher_take(trainer->teacher, &added, "added_teacher", c);
    if (st == DEL_OK && has_ema) {
        (void)del_checkpoint_restore_model(c, "ema", trainer->ema, NULL); /* checked above */
        trainer->ema_decay = ema_decay;
    }
    /* After a successful check with an optimizer of the stored kind and
     * settings, the restore cannot fail. */
    if (st == DEL_OK)
        st = train_error_as(del_checkpoint_restore_model(c, DEL_CHECKPOINT_MODEL, trainer->model, opt), fn);
    del_checkpoint_free(c);
    if (st != DEL_OK) {
        del_optimizer_free(opt);
        return st;
    }
    del_optimizer_free(trainer->opt);
    trainer->opt = opt;
    trainer->opt_params = del_model_num_params(trainer->model);
    trainer->set = set;
    trainer->seed = seed;
    for (int s = 0; s < DEL_NSTREAMS; s++) {
        train_stream *st_s = &trainer->streams[s];
        if (!st_s->data)
            continue;
        st_s->batch = pos.batch[s];
        st_s->order = pos.order[s];
        st_s->perm_epoch = -1;
    }
    trainer->steps_done = pos.steps_done;
    trainer->skipped = pos.skipped;
    return DEL_OK;
}
