/* The training loop every trainer shares: the trainer record's life, the
 * optimizer of a fit or a run, and fit / step with the progress callback,
 * cancel, prefetching and the non-finite checks around the objective's
 * step (trainer_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_PREFETCH 2

del_status del_trainer_create(del_trainer **out, const del_objective *obj, del_model *model, const char *fn)
{
    *out = NULL;
    if (del_model_num_params(model) < 1)
        return train_error(DEL_EINVAL, "%s: 'model' has no parameters to train", fn);
    int c = 0, h = 0, w = 0, ndim = 0;
    int64_t shape[3];
    del_status st = del_model_input_shape(model, &c, &h, &w);
    if (st == DEL_OK)
        st = del_model_output_shape(model, &ndim, shape);
    if (st != DEL_OK)
        return st;
    if (ndim != 1)
        return train_error(DEL_EINVAL, "%s: 'model' must output a vector of class scores, got %d-d output per image", fn,
                         ndim);
    if (c > MAX_CHANNELS)
        return train_error(DEL_EINVAL, "%s: 'model' takes %d channels, at most %d supported", fn, c, MAX_CHANNELS);
    del_trainer *tr = calloc(1, sizeof *tr);
    void *state = obj->state_size > 0 ? calloc(1, obj->state_size) : NULL;
    if (!tr || (obj->state_size > 0 && !state)) {
        free(tr);
        free(state);
        return train_error(DEL_ENOMEM, "%s: out of memory", fn);
    }
    tr->obj = obj;
    tr->state = state;
    tr->model = model;
    tr->channels = c;
    tr->height = h;
    tr->width = w;
    tr->num_outputs = (int)shape[0];
    tr->prefetch = DEFAULT_PREFETCH;
    del_settings_defaults(&tr->set);
    *out = tr;
    return DEL_OK;
}

del_status del_trainer_start(del_trainer *tr, const char *fn)
{
    int used = 0;
    for (int s = 0; s < DEL_NSTREAMS; s++)
        used += (tr->obj->streams & (1u << s)) && tr->streams[s].data;
    if (!used)
        return train_error(DEL_EINVAL, "%s: the %s trainer has no images to train on", fn, tr->obj->name);
    return del_trainer_own_enomem(tr->obj->init(tr->state, tr, fn), fn);
}

del_status del_trainer_finish(del_trainer **out, del_trainer *tr, del_status st, const char *fn)
{
    if (st == DEL_OK)
        st = del_trainer_start(tr, fn);
    if (st != DEL_OK) {
        del_trainer_free(tr);
        return del_trainer_own_enomem(st, fn);
    }
    *out = tr;
    return DEL_OK;
}

del_status del_trainer_state_of(del_trainer *tr, const del_objective *a, const del_objective *b, void **state,
                                const char *setting, const char *fn)
{
    del_status st = del_trainer_check_settable(tr, fn);
    if (st != DEL_OK)
        return st;
    if (tr->obj != a && tr->obj != b)
        return b ? train_error(DEL_EINVAL, "%s: '%s' does not apply to a %s trainer (only to %s and %s trainers)", fn,
                               setting, tr->obj->name, a->name, b->name)
                 : train_error(DEL_EINVAL, "%s: '%s' does not apply to a %s trainer (only to %s trainers)", fn,
                               setting, tr->obj->name, a->name);
    *state = tr->state;
    return DEL_OK;
}

del_status del_check_new_task(const del_model *model, const del_dataset *labeled, int num_classes, const char *fn)
{
    if (num_classes < 1)
        return train_error(DEL_EINVAL, "%s: 'num_classes' must be >= 1, got %d", fn, num_classes);
    int c = 0, h = 0, w = 0;
    del_status st = del_model_input_shape(model, &c, &h, &w);
    if (st != DEL_OK)
        return st;
    if (del_dataset_channels(labeled) != c || del_dataset_height(labeled) != h || del_dataset_width(labeled) != w)
        return train_error(DEL_EINVAL, "%s: the images of 'labeled' (%d x %d x %d) do not fit 'model' (input %d x %d "
                           "x %d)", fn, del_dataset_channels(labeled), del_dataset_height(labeled),
                           del_dataset_width(labeled), c, h, w);
    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= num_classes)
            return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'num_classes' is %d (give the new task's "
                               "labels as 0..num_classes-1)", fn, (int)labels[i], num_classes);
    return DEL_OK;
}

int del_model_classes(const del_model *model)
{
    int ndim = 0;
    int64_t shape[4] = {0};
    if (del_model_output_shape(model, &ndim, shape) != DEL_OK || ndim != 1 || shape[0] > INT32_MAX)
        return 0;
    return (int)shape[0];
}

del_status del_check_images_fit(const del_dataset *ds, const char *arg, int c, int h, int w, const char *model_arg,
                                const char *fn)
{
    if (del_dataset_channels(ds) != c || del_dataset_height(ds) != h || del_dataset_width(ds) != w)
        return train_error(DEL_EINVAL, "%s: '%s' has %d x %d x %d images (C x H x W), but '%s' takes %d x %d x %d", fn,
                           arg, del_dataset_channels(ds), del_dataset_height(ds), del_dataset_width(ds), model_arg, c,
                           h, w);
    return DEL_OK;
}

del_status del_check_labeled_set(const del_dataset *ds, const char *arg, int classes, const char *model_arg,
                                 const char *fn)
{
    const int64_t n = del_dataset_size(ds);
    const int32_t *y = del_dataset_labels(ds);
    int64_t labeled = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] >= classes)
            return train_error(DEL_EINVAL, "%s: '%s' has label %d but '%s' has only %d outputs", fn, arg, (int)y[i],
                               model_arg, classes);
        labeled += y[i] >= 0;
    }
    if (labeled == 0)
        return train_error(DEL_EINVAL, "%s: '%s' has no labeled image", fn, arg);
    return DEL_OK;
}

DEL_API void del_trainer_free(del_trainer *trainer)
{
    if (!trainer)
        return;
    if (trainer->obj->release)
        trainer->obj->release(trainer->state);
    free(trainer->state);
    if (trainer->teacher) {
        del_teacher_release(trainer->teacher);
        free(trainer->teacher);
    }
    for (int s = 0; s < DEL_NSTREAMS; s++)
        del_stream_release(&trainer->streams[s]);
    del_optimizer_free(trainer->opt);
    free(trainer->saved_params);
    free(trainer->saved_buffers);
    del_model_free(trainer->ema);
    free(trainer);
}

del_status del_trainer_ensure_matrix(del_tensor **t, int64_t rows, int64_t cols)
{
    if (*t && del_tensor_ndim(*t) == 2 && del_tensor_dim(*t, 0) == rows && del_tensor_dim(*t, 1) == cols)
        return DEL_OK;
    del_tensor *fresh = NULL;
    const int64_t shape[2] = {rows, cols};
    del_status st = del_tensor_new(&fresh, DEL_DTYPE_F32, 2, shape);
    if (st != DEL_OK)
        return st;
    del_tensor_free(*t);
    *t = fresh;
    return DEL_OK;
}

del_status del_trainer_ensure_like(del_tensor **t, const del_tensor *like)
{
    const int nd = del_tensor_ndim(like);
    int64_t shape[4] = {0, 0, 0, 0};
    int same = *t && del_tensor_ndim(*t) == nd && del_tensor_dtype(*t) == del_tensor_dtype(like);
    for (int a = 0; a < nd; a++) {
        shape[a] = del_tensor_dim(like, a);
        same = same && del_tensor_dim(*t, a) == shape[a];
    }
    if (same)
        return DEL_OK;
    del_tensor *fresh = NULL;
    del_status st = del_tensor_new(&fresh, del_tensor_dtype(like), nd, shape);
    if (st != DEL_OK)
        return st;
    del_tensor_free(*t);
    *t = fresh;
    return DEL_OK;
}

del_status del_trainer_make_optimizer(del_model *model, const train_settings *s, int64_t steps,
                                      del_optimizer **out)
{
    del_optimizer *opt = NULL;
    del_status st = s->use_adamw ? del_optimizer_new_adamw(&opt, model, s->adam_lr, s->beta1, s->beta2, s->adam_eps,
                                                           s->adam_weight_decay)
                                 : del_optimizer_new_sgd(&opt, model, s->lr, s->momentum, s->weight_decay,
                                                         s->nesterov);
    if (st == DEL_OK)
        st = s->schedule == DEL_SCHEDULE_STEP ? del_optimizer_set_step_schedule(opt, s->step_size, s->gamma)
                                              : del_optimizer_set_schedule(opt, s->schedule, steps, 0.0f);
    if (st == DEL_OK)
        st = del_optimizer_set_warmup(opt, s->warmup);
    if (st == DEL_OK)
        st = del_optimizer_set_clip_norm(opt, s->clip_norm);
    if (st != DEL_OK) {
        del_optimizer_free(opt);
        return st;
    }
    *out = opt;
    return DEL_OK;
}

/* Room to keep the model's parameters and buffers as they were before a
 * step (restored when the step goes non-finite). */
static del_status ensure_saved(del_trainer *tr, const char *func)
{
    const int64_t np = del_model_num_params(tr->model), nb = del_model_num_buffers(tr->model);
    if (np != tr->saved_nparams) {
        float *p = malloc((size_t)np * sizeof *p);
        if (!p)
            return train_error(DEL_ENOMEM, "%s: out of memory for a copy of %lld parameters", func, (long long)np);
        free(tr->saved_params);
        tr->saved_params = p;
        tr->saved_nparams = np;
    }
    if (nb != tr->saved_nbuf) {
        float *p = nb > 0 ? malloc((size_t)nb * sizeof *p) : NULL;
        if (nb > 0 && !p)
            return train_error(DEL_ENOMEM, "%s: out of memory for a copy of %lld buffer values", func, (long long)nb);
        free(tr->saved_buffers);
        tr->saved_buffers = p;
        tr->saved_nbuf = nb;
    }
    return DEL_OK;
}

/* Everything a fit or a step needs before its first batch: pipelines
 * that still fit, slots, the copies for the non-finite checks, and the
 * optimizer (*opt; *fresh when it is this call's own, freed by the
 * caller). */
static del_status prepare(del_trainer *tr, int64_t steps, del_optimizer **opt, del_optimizer **fresh,
                          const char *fn)
{
    *opt = *fresh = NULL;
    /* Steps may have been added to the pipelines since they were set. */
    del_status st = DEL_OK;
    static const char *const names[DEL_NSTREAMS] = {"augment", "augment_unlabeled"};
    for (int s = 0; s < DEL_NSTREAMS && st == DEL_OK; s++)
        if (tr->streams[s].aug)
            st = del_stream_check_pipeline(tr, tr->streams[s].aug, fn, names[s]);
    if (st == DEL_OK && tr->aug_unlabeled)
        st = del_stream_check_pipeline(tr, tr->aug_unlabeled, fn, "augment_unlabeled");
    for (int s = 0; s < DEL_NSTREAMS && st == DEL_OK; s++)
        if (tr->streams[s].aug2)
            st = del_stream_check_pipeline(tr, tr->streams[s].aug2, fn, "strong");
    if (st == DEL_OK)
        st = del_streams_ensure_slots(tr, del_prefetch_slots(tr->prefetch), fn);
    if (st == DEL_OK)
        st = ensure_saved(tr, fn);
    if (st != DEL_OK)
        return st;
    if (tr->set.total_steps == 0) {
        st = del_trainer_make_optimizer(tr->model, &tr->set, steps, fresh);
        *opt = *fresh;
    } else if (tr->opt) {
        if (del_model_num_params(tr->model) != tr->opt_params)
            st = train_error(DEL_ESTATE, "%s: the model has %lld parameters, the kept optimizer was made for %lld "
                           "(call del_trainer_set_total_steps to start a new run)", fn,
                           (long long)del_model_num_params(tr->model), (long long)tr->opt_params);
        *opt = tr->opt;
    } else {
        st = del_trainer_make_optimizer(tr->model, &tr->set, tr->set.total_steps, &tr->opt);
        tr->opt_params = del_model_num_params(tr->model);
        *opt = tr->opt;
    }
    return st;
}

/* Index of the first NaN or infinity in v[0..n-1]; n if all are finite.
 * Blocks are scanned with an exponent test the compiler vectorises, and
 * only a block with a hit is searched element by element. */
static int64_t first_nonfinite(const float *v, int64_t n)
{
    enum { BLOCK = 1024 };
    const uint32_t *u = (const uint32_t *)(const void *)v;
    for (int64_t i = 0; i < n; i += BLOCK) {
        const int64_t m = n - i < BLOCK ? n - i : BLOCK;
        uint32_t hit = 0;
        for (int64_t j = 0; j < m; j++)
            hit |= (uint32_t)((u[i + j] & 0x7f800000u) == 0x7f800000u);
        if (hit)
            for (int64_t j = 0; j < m; j++)
                if (!isfinite(v[i + j]))
                    return i + j;
    }
    return n;
}

/* Sets the DEL_ENUMERIC message of a step whose `what` ("gradient",
 * "parameters after the update") went non-finite at parameter k. */
static del_status nonfinite_params(const del_trainer *tr, int64_t step, const char *what, int64_t k,
                                   const float *v, const char *fn)
{
    const int n = del_model_num_layers(tr->model);
    int layer = 0;
    for (int i = 0; i < n; i++) {
        int64_t off = 0, count = 0;
        if (del_model_layer_params(tr->model, i, &off, &count) == DEL_OK && k >= off && k < off + count)
            layer = i;
    }
    return train_error(DEL_ENUMERIC, "%s: step %lld: the %s of layer %d (%s) is not finite (%g at parameter %lld of "
                     "%lld); the model is as it was before this step (lower the learning rate, or clip gradients "
                     "with del_trainer_set_clip_norm)", fn, (long long)step, what, layer,
                     del_model_layer_type(tr->model, layer), (double)v[k], (long long)k,
                     (long long)del_model_num_params(tr->model));
}

/* One optimizer step on the prepared slot of every stream; `step` numbers
 * it in messages. On failure the model's buffers are restored and nothing
 * is updated: a non-finite loss, running statistic or gradient returns
 * DEL_ENUMERIC. Parameters made non-finite by the update are restored
 * too, and *fatal says the run cannot go on (the optimizer's state took
 * the non-finite values). */
static del_status train_step(del_trainer *tr, del_optimizer *opt, int slot, int64_t step, float *loss, int *fatal,
                             const char *fn)
{
    del_model *m = tr->model;
    const int64_t np = del_model_num_params(m), nb = del_model_num_buffers(m);
    *fatal = 0;
    train_step_in in = {.model = m, .step = step};
    for (int s = 0; s < DEL_NSTREAMS; s++)
        if (tr->streams[s].data && (tr->obj->streams & (1u << s)))
            in.in[s] = &tr->streams[s].slots[slot];
    if (nb > 0)
        memcpy(tr->saved_buffers, del_model_buffers(m), (size_t)nb * sizeof(float));
    del_status st = del_model_zero_grad(m);
    if (st == DEL_OK)
        st = tr->obj->step(tr->state, tr, &in, loss, fn);
    int64_t k = nb;
    if (st == DEL_OK && nb > 0 && (k = first_nonfinite(del_model_buffers(m), nb)) < nb)
        st = train_error(DEL_ENUMERIC, "%s: step %lld: the batchnorm running statistics are not finite (%g at buffer "
                       "value %lld of %lld); the model is as it was before this step (are the inputs normalised?)",
                       fn, (long long)step, (double)del_model_buffers(m)[k], (long long)k, (long long)nb);
    if (st == DEL_OK && !isfinite(*loss))
        st = train_error(DEL_ENUMERIC, "%s: step %lld: the loss is not finite (%g); the model is as it was before this "
                       "step (lower the learning rate, or clip gradients with del_trainer_set_clip_norm)", fn,
                       (long long)step, (double)*loss);
    if (st == DEL_OK && (k = first_nonfinite(del_model_grads(m), np)) < np)
        st = nonfinite_params(tr, step, "gradient", k, del_model_grads(m), fn);
    if (st == DEL_OK) {
        memcpy(tr->saved_params, del_model_params(m), (size_t)np * sizeof(float));
        st = del_optimizer_step(opt);
        if (st == DEL_OK && (k = first_nonfinite(del_model_params(m), np)) < np) {
            st = nonfinite_params(tr, step, "parameters after the update", k, del_model_params(m), fn);
            memcpy(del_model_params(m), tr->saved_params, (size_t)np * sizeof(float));
            *fatal = 1;
        }
        if (st == DEL_OK && tr->ema)
            st = del_model_ema_update(tr->ema, m, tr->ema_decay);
        if (st == DEL_ESTATE && opt == tr->opt)
            st = train_error(DEL_ESTATE, "%s: the model's layers or heads were replaced or removed since the kept "
                           "optimizer was made, so its state belongs to other parameters (call "
                           "del_trainer_set_total_steps to start a new run with a new optimizer)", fn);
    }
    if (st != DEL_OK && nb > 0)
        memcpy(del_model_buffers(m), tr->saved_buffers, (size_t)nb * sizeof(float));
    return st;
}

/* After a finished (or skipped) step: the batch order moves on. Read
 * before the slots go back to the producer. */
static void advance(del_trainer *tr, int slot)
{
    for (int s = 0; s < DEL_NSTREAMS; s++)
        if (tr->streams[s].data && (tr->obj->streams & (1u << s)))
            tr->streams[s].order = tr->streams[s].slots[slot].after;
    tr->steps_done++;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

del_status del_trainer_own_enomem(del_status st, const char *fn)
{
    if (st != DEL_ENOMEM || strncmp(del_last_error(), fn, strlen(fn)) == 0)
        return st;
    char why[TRAIN_ERROR_SIZE];
    snprintf(why, sizeof why, "%s", del_last_error());
    return train_error(DEL_ENOMEM, "%s: out of memory (%s)", fn, why);
}

DEL_API del_status del_trainer_fit(del_trainer *trainer, int64_t steps)
{
    static const char fn[] = "del_trainer_fit";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (trainer->fitting)
        return train_error(DEL_ESTATE, "%s: the trainer is already fitting (called from its progress callback?)", fn);
    if (steps < 1)
        return train_error(DEL_EINVAL, "%s: 'steps' must be >= 1, got %lld", fn, (long long)steps);

    del_trainer *tr = trainer;
    del_optimizer *opt = NULL, *fresh = NULL; /* fresh: this fit's own, freed at the end */
    del_prefetch pf;
    int prefetching = 0;
    del_status st = prepare(tr, steps, &opt, &fresh, fn);
    if (st != DEL_OK)
        goto cleanup;
    tr->fitting = 1;
    st = del_model_set_training(tr->model, 1);
    if (st == DEL_OK && tr->obj->begin_fit)
        st = tr->obj->begin_fit(tr->state, tr, steps, fn);
    if (st != DEL_OK)
        goto cleanup;

    for (int s = 0; s < DEL_NSTREAMS; s++)
        tr->streams[s].draw = tr->streams[s].order;
    tr->wait_s = tr->step_s = 0.0;
    del_prefetch_start(&pf, tr->prefetch, tr->steps_done, steps, del_streams_fill, tr);
    prefetching = 1;
    double loss_sum = 0.0;
    int64_t loss_count = 0;
    for (int64_t step = 1; step <= steps; step++) {
        float loss = 0.0f;
        int slot = 0, fatal = 0;
        const double t0 = seconds_now();
        st = del_prefetch_acquire(&pf, &slot);
        const double t1 = seconds_now();
        tr->wait_s += t1 - t0;
        if (st == DEL_OK)
            st = train_step(tr, opt, slot, tr->steps_done + 1, &loss, &fatal, fn);
        tr->step_s += seconds_now() - t1;
        const int skip = st == DEL_ENUMERIC && !fatal && tr->set.nonfinite == DEL_NONFINITE_SKIP;
        if (st != DEL_OK && !skip)
            goto cleanup;
        st = DEL_OK;
        advance(tr, slot);
        del_prefetch_release(&pf);
        if (skip) {
            tr->skipped++;
        } else {
            loss_sum += loss;
            loss_count++;
        }
        if (tr->progress && (step % tr->every == 0 || step == steps)) {
            float mean_loss = loss_count > 0 ? (float)(loss_sum / (double)loss_count) : NAN;
            loss_sum = 0.0;
            loss_count = 0;
            if (tr->progress(step, steps, mean_loss, tr->user) != 0) {
                st = train_error(DEL_ECANCELED, "%s: the progress callback stopped training after step %lld of %lld", fn,
                               (long long)step, (long long)steps);
                goto cleanup;
            }
        }
    }

cleanup:
    if (prefetching)
        del_prefetch_stop(&pf);
    del_model_set_training(tr->model, 0);
    del_optimizer_free(fresh);
    tr->fitting = 0;
    return del_trainer_own_enomem(st, fn);
}

DEL_API del_status del_trainer_step(del_trainer *trainer, float *loss)
{
    static const char fn[] = "del_trainer_step";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (!loss)
        return train_error_null(fn, "loss");
    if (trainer->fitting)
        return train_error(DEL_ESTATE, "%s: the trainer is fitting (called from its progress callback?)", fn);
    if (trainer->set.total_steps == 0)
        return train_error(DEL_ESTATE, "%s: steps outside a fit continue one run: call del_trainer_set_total_steps "
                         "first (it sets the schedule's length)", fn);
    del_trainer *tr = trainer;
    del_optimizer *opt = NULL, *fresh = NULL;
    const int was_training = del_model_is_training(tr->model);
    del_status st = prepare(tr, 1, &opt, &fresh, fn);
    tr->fitting = st == DEL_OK;
    if (st == DEL_OK)
        st = del_model_set_training(tr->model, 1);
    if (st == DEL_OK && tr->obj->begin_fit)
        st = tr->obj->begin_fit(tr->state, tr, 1, fn);
    for (int s = 0; s < DEL_NSTREAMS; s++)
        tr->streams[s].draw = tr->streams[s].order;
    if (st == DEL_OK)
        st = del_streams_fill(tr, 0, tr->steps_done);
    int fatal = 0;
    float value = 0.0f;
    if (st == DEL_OK)
        st = train_step(tr, opt, 0, tr->steps_done + 1, &value, &fatal, fn);
    if (st == DEL_OK) {
        advance(tr, 0);
        *loss = value;
    } else if (st == DEL_ENUMERIC && !fatal && tr->set.nonfinite == DEL_NONFINITE_SKIP) {
        advance(tr, 0);
        tr->skipped++;
        *loss = NAN;
        st = DEL_OK;
    }
    del_model_set_training(tr->model, was_training);
    del_optimizer_free(fresh);
    tr->fitting = 0;
    return del_trainer_own_enomem(st, fn);
}

DEL_API del_status del_trainer_fit_times(const del_trainer *trainer, double *data_wait_s, double *step_s)
{
    static const char fn[] = "del_trainer_fit_times";
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (data_wait_s)
        *data_wait_s = trainer->wait_s;
    if (step_s)
        *step_s = trainer->step_s;
    return DEL_OK;
}
