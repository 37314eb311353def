/* The trainer's settings: each public setter checks the trainer can be
 * changed, then a settings_* function checks the values and writes them
 * into a train_settings record. del_trainer_load_checkpoint runs the same
 * functions on a copy of the record, so a checkpoint's values pass the
 * same checks and the live trainer changes only when all of them pass. */
#include <math.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

del_status del_trainer_check_settable(const del_trainer *tr, const char *func)
{
    if (!tr)
        return train_error_null(func, "trainer");
    if (tr->fitting)
        return train_error(DEL_ESTATE, "%s: cannot change settings while del_trainer_fit runs", func);
    return DEL_OK;
}

/* An optimizer setting changed: the next fit starts a new optimizer. */
static del_status drop_optimizer(del_trainer *tr, del_status st)
{
    if (st == DEL_OK) {
        del_optimizer_free(tr->opt);
        tr->opt = NULL;
    }
    return st;
}

#define DEFAULT_STEP_SIZE 1000
#define DEFAULT_STEP_GAMMA 0.1f

void del_settings_defaults(train_settings *s)
{
    *s = (train_settings){0};
    s->lr = 0.05f;
    s->momentum = 0.9f;
    s->weight_decay = 5e-4f;
    s->nesterov = 1;
    /* torch's AdamW defaults, unused until set_adamw; kept valid so that a
     * checkpoint's settings always pass the setters' checks */
    s->adam_lr = 1e-3f;
    s->beta1 = 0.9f;
    s->beta2 = 0.999f;
    s->adam_eps = 1e-8f;
    s->adam_weight_decay = 1e-2f;
    s->schedule = DEL_SCHEDULE_COSINE;
    s->step_size = DEFAULT_STEP_SIZE;
    s->gamma = DEFAULT_STEP_GAMMA;
    for (int c = 0; c < MAX_CHANNELS; c++) {
        s->mean[c] = 0.2860f;
        s->std[c] = 0.3530f;
    }
}

static int positive_finite(float v)
{
    return v > 0.0f && isfinite(v);
}

static int nonnegative_finite(float v)
{
    return v >= 0.0f && isfinite(v);
}

del_status del_settings_sgd(train_settings *s, float lr, float momentum, float weight_decay, int nesterov,
                            const char *fn)
{
    if (!positive_finite(lr))
        return train_error(DEL_EINVAL, "%s: 'lr' must be a finite value > 0, got %g", fn, (double)lr);
    if (!(momentum >= 0.0f && momentum < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'momentum' must be in [0, 1), got %g", fn, (double)momentum);
    if (!nonnegative_finite(weight_decay))
        return train_error(DEL_EINVAL, "%s: 'weight_decay' must be a finite value >= 0, got %g", fn,
                         (double)weight_decay);
    if (nesterov != 0 && nesterov != 1)
        return train_error(DEL_EINVAL, "%s: 'nesterov' must be 0 or 1, got %d", fn, nesterov);
    if (nesterov && momentum == 0.0f)
        return train_error(DEL_EINVAL, "%s: 'nesterov' needs 'momentum' > 0", fn);
    s->use_adamw = 0;
    s->lr = lr;
    s->momentum = momentum;
    s->weight_decay = weight_decay;
    s->nesterov = nesterov;
    return DEL_OK;
}

del_status del_settings_adamw(train_settings *s, float lr, float beta1, float beta2, float eps, float weight_decay,
                              const char *fn)
{
    if (!positive_finite(lr))
        return train_error(DEL_EINVAL, "%s: 'lr' must be a finite value > 0, got %g", fn, (double)lr);
    if (!(beta1 >= 0.0f && beta1 < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'beta1' must be in [0, 1), got %g", fn, (double)beta1);
    if (!(beta2 >= 0.0f && beta2 < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'beta2' must be in [0, 1), got %g", fn, (double)beta2);
    if (!positive_finite(eps))
        return train_error(DEL_EINVAL, "%s: 'eps' must be a finite value > 0, got %g", fn, (double)eps);
    if (!nonnegative_finite(weight_decay))
        return train_error(DEL_EINVAL, "%s: 'weight_decay' must be a finite value >= 0, got %g", fn,
                         (double)weight_decay);
    s->use_adamw = 1;
    s->adam_lr = lr;
    s->beta1 = beta1;
    s->beta2 = beta2;
    s->adam_eps = eps;
    s->adam_weight_decay = weight_decay;
    return DEL_OK;
}

del_status del_settings_schedule(train_settings *s, del_schedule kind, const char *fn)
{
    if (kind != DEL_SCHEDULE_CONSTANT && kind != DEL_SCHEDULE_COSINE && kind != DEL_SCHEDULE_STEP)
        return train_error(DEL_EINVAL, "%s: 'kind' must be DEL_SCHEDULE_CONSTANT (0), DEL_SCHEDULE_COSINE (1) or "
                         "DEL_SCHEDULE_STEP (2), got %d", fn, (int)kind);
    s->schedule = kind;
    return DEL_OK;
}

del_status del_settings_step_schedule(train_settings *s, int64_t step_size, float gamma, const char *fn)
{
    if (step_size < 1)
        return train_error(DEL_EINVAL, "%s: 'step_size' must be >= 1, got %lld", fn, (long long)step_size);
    if (!positive_finite(gamma))
        return train_error(DEL_EINVAL, "%s: 'gamma' must be a finite value > 0, got %g", fn, (double)gamma);
    s->schedule = DEL_SCHEDULE_STEP;
    s->step_size = step_size;
    s->gamma = gamma;
    return DEL_OK;
}

del_status del_settings_warmup(train_settings *s, int64_t warmup_steps, const char *fn)
{
    if (warmup_steps < 0)
        return train_error(DEL_EINVAL, "%s: 'warmup_steps' must be >= 0 (0 = off), got %lld", fn,
                         (long long)warmup_steps);
    s->warmup = warmup_steps;
    return DEL_OK;
}

del_status del_settings_clip_norm(train_settings *s, float max_norm, const char *fn)
{
    if (!nonnegative_finite(max_norm))
        return train_error(DEL_EINVAL, "%s: 'max_norm' must be a finite value >= 0 (0 = off), got %g", fn,
                         (double)max_norm);
    s->clip_norm = max_norm;
    return DEL_OK;
}

del_status del_settings_label_smoothing(train_settings *s, float smoothing, const char *fn)
{
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'smoothing' must be in [0, 1), got %g", fn, (double)smoothing);
    s->smoothing = smoothing;
    return DEL_OK;
}

del_status del_settings_total_steps(train_settings *s, int64_t total_steps, const char *fn)
{
    if (total_steps < 0)
        return train_error(DEL_EINVAL, "%s: 'total_steps' must be >= 0 (0: a fresh optimizer per fit), got %lld", fn,
                         (long long)total_steps);
    s->total_steps = total_steps;
    return DEL_OK;
}

del_status del_settings_normalize(train_settings *s, const float *mean, const float *std, int channels,
                                  const char *fn)
{
    for (int c = 0; c < channels; c++) {
        if (!isfinite(mean[c]))
            return train_error(DEL_EINVAL, "%s: 'mean[%d]' must be finite, got %g", fn, c, (double)mean[c]);
        if (!positive_finite(std[c]))
            return train_error(DEL_EINVAL, "%s: 'std[%d]' must be a finite value > 0, got %g", fn, c, (double)std[c]);
    }
    for (int c = 0; c < channels; c++) {
        s->mean[c] = mean[c];
        s->std[c] = std[c];
    }
    return DEL_OK;
}

del_status del_settings_nonfinite(train_settings *s, del_nonfinite policy, const char *fn)
{
    if (policy != DEL_NONFINITE_STOP && policy != DEL_NONFINITE_SKIP)
        return train_error(DEL_EINVAL, "%s: 'policy' must be DEL_NONFINITE_STOP (0) or DEL_NONFINITE_SKIP (1), got %d",
                         fn, (int)policy);
    s->nonfinite = policy;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_sgd(del_trainer *trainer, float lr, float momentum, float weight_decay,
                                       int nesterov)
{
    static const char fn[] = "del_trainer_set_sgd";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_sgd(&trainer->set, lr, momentum, weight_decay, nesterov, fn));
}

DEL_API del_status del_trainer_set_adamw(del_trainer *trainer, float lr, float beta1, float beta2, float eps,
                                         float weight_decay)
{
    static const char fn[] = "del_trainer_set_adamw";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_adamw(&trainer->set, lr, beta1, beta2, eps, weight_decay, fn));
}

DEL_API del_status del_trainer_set_schedule(del_trainer *trainer, del_schedule kind)
{
    static const char fn[] = "del_trainer_set_schedule";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_schedule(&trainer->set, kind, fn));
}

DEL_API del_status del_trainer_set_step_schedule(del_trainer *trainer, int64_t step_size, float gamma)
{
    static const char fn[] = "del_trainer_set_step_schedule";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_step_schedule(&trainer->set, step_size, gamma, fn));
}

DEL_API del_status del_trainer_set_warmup(del_trainer *trainer, int64_t warmup_steps)
{
    static const char fn[] = "del_trainer_set_warmup";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_warmup(&trainer->set, warmup_steps, fn));
}

DEL_API del_status del_trainer_set_clip_norm(del_trainer *trainer, float max_norm)
{
    static const char fn[] = "del_trainer_set_clip_norm";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_clip_norm(&trainer->set, max_norm, fn));
}

DEL_API del_status del_trainer_set_label_smoothing(del_trainer *trainer, float smoothing)
{
    static const char fn[] = "del_trainer_set_label_smoothing";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return del_settings_label_smoothing(&trainer->set, smoothing, fn);
}

DEL_API del_status del_trainer_set_total_steps(del_trainer *trainer, int64_t total_steps)
{
    static const char fn[] = "del_trainer_set_total_steps";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return drop_optimizer(trainer, del_settings_total_steps(&trainer->set, total_steps, fn));
}

DEL_API del_status del_trainer_set_normalize(del_trainer *trainer, const float *mean, const float *std, int channels)
{
    static const char fn[] = "del_trainer_set_normalize";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return del_settings_normalize_for(trainer->channels, &trainer->set, mean, std, channels, fn);
}

del_status del_settings_normalize_for(int image_channels, train_settings *s, const float *mean, const float *std,
                                      int channels, const char *fn)
{
    if (!mean)
        return train_error_null(fn, "mean");
    if (!std)
        return train_error_null(fn, "std");
    if (channels != image_channels)
        return train_error(DEL_EINVAL, "%s: 'channels' must be %d (the images'), got %d", fn, image_channels,
                           channels);
    return del_settings_normalize(s, mean, std, channels, fn);
}

DEL_API del_status del_trainer_set_nonfinite(del_trainer *trainer, del_nonfinite policy)
{
    static const char fn[] = "del_trainer_set_nonfinite";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    return del_settings_nonfinite(&trainer->set, policy, fn);
}

DEL_API int64_t del_trainer_skipped_steps(const del_trainer *trainer)
{
    return trainer ? trainer->skipped : 0;
}

DEL_API del_status del_trainer_set_seed(del_trainer *trainer, uint64_t seed)
{
    del_status st = del_trainer_check_settable(trainer, "del_trainer_set_seed");
    if (st != DEL_OK)
        return st;
    trainer->seed = seed;
    /* A new seed starts a new sequence of epochs and batch numbers. */
    del_streams_rewind(trainer);
    trainer->steps_done = 0;
    trainer->skipped = 0;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_progress(del_trainer *trainer, del_progress_fn fn, int64_t every, void *user)
{
    static const char name[] = "del_trainer_set_progress";
    del_status st = del_trainer_check_settable(trainer, name);
    if (st != DEL_OK)
        return st;
    if (fn && every < 1)
        return train_error(DEL_EINVAL, "%s: 'every' must be >= 1, got %lld", name, (long long)every);
    trainer->progress = fn;
    trainer->every = fn ? every : 0;
    trainer->user = fn ? user : NULL;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_ema(del_trainer *trainer, float decay)
{
    static const char fn[] = "del_trainer_set_ema";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!(decay >= 0.0f && decay < 1.0f))
        return train_error(DEL_EINVAL, "%s: 'decay' must be in [0, 1) (0: no moving average), got %g", fn,
                           (double)decay);
    if (decay == 0.0f) {
        del_model_free(trainer->ema);
        trainer->ema = NULL;
        trainer->ema_decay = 0.0f;
        return DEL_OK;
    }
    if (!trainer->ema) {
        st = del_model_clone(&trainer->ema, trainer->model);
        if (st != DEL_OK)
            return del_trainer_own_enomem(st, fn);
    }
    trainer->ema_decay = decay;
    return DEL_OK;
}

DEL_API del_model *del_trainer_ema_model(const del_trainer *trainer)
{
    return trainer ? trainer->ema : NULL;
}
