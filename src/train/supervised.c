/* The supervised trainer: minibatch SGD or AdamW with softmax
 * cross-entropy (optionally label-smoothed) on the labeled images of a
 * dataset, optionally augmented, with batches prepared ahead by the
 * prefetcher. Built on the public API only (plus the internal
 * error and random-stream helpers and the trainers' own prefetcher), as
 * every trainer is. Its checkpoints are in supervised_checkpoint.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "core/error.h"
#include "augment/augment_internal.h"
#include "core/rng.h"
#include "train/supervised_internal.h"

#define EVAL_BATCH 500
#define DEFAULT_PREFETCH 2
#define DEFAULT_STEP_SIZE 1000
#define DEFAULT_STEP_GAMMA 0.1f

/* Third coordinate of the batch-order stream: keeps it apart from streams
 * keyed by (seed, epoch, image index), e.g. augmentation. */
#define ORDER_STREAM UINT64_C(0x6261746368) /* "batch" */

static void free_slot(batch_slot *b)
{
    del_tensor_free(b->x);
    del_tensor_free(b->y);
    del_tensor_free(b->soft);
    free(b->idx);
    free(b->epochs);
    memset(b, 0, sizeof *b);
}

static void free_slots(del_trainer *tr)
{
    for (int i = 0; i < tr->nslots; i++)
        free_slot(&tr->slots[i]);
    tr->nslots = 0;
}

/* Makes n slots for the current batch size, with soft or hard labels;
 * slots that already fit are kept. */
static del_status ensure_slots(del_trainer *tr, int n, int soft, const char *func)
{
    if (tr->slot_batch != tr->batch || tr->slot_soft != soft)
        free_slots(tr);
    tr->slot_batch = tr->batch;
    tr->slot_soft = soft;
    const int64_t xshape[4] = {tr->batch, tr->channels, tr->height, tr->width};
    const int64_t yshape[1] = {tr->batch};
    const int64_t sshape[2] = {tr->batch, tr->num_outputs};
    while (tr->nslots < n) {
        batch_slot *b = &tr->slots[tr->nslots];
        del_status st = del_tensor_new(&b->x, DEL_DTYPE_F32, 4, xshape);
        if (st == DEL_OK)
            st = soft ? del_tensor_new(&b->soft, DEL_DTYPE_F32, 2, sshape)
                      : del_tensor_new(&b->y, DEL_DTYPE_I32, 1, yshape);
        if (st == DEL_OK) {
            b->idx = malloc((size_t)tr->batch * sizeof *b->idx);
            b->epochs = malloc((size_t)tr->batch * sizeof *b->epochs);
            if (!b->idx || !b->epochs)
                st = del_error(DEL_ENOMEM, "%s: out of memory for a batch of %d", func, tr->batch);
        }
        if (st != DEL_OK) {
            /* A slot is counted only once whole: a later call rebuilds it. */
            free_slot(b);
            return st;
        }
        tr->nslots++;
    }
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
            return del_error(DEL_ENOMEM, "%s: out of memory for a copy of %lld parameters", func, (long long)np);
        free(tr->saved_params);
        tr->saved_params = p;
        tr->saved_nparams = np;
    }
    if (nb != tr->saved_nbuf) {
        float *p = nb > 0 ? malloc((size_t)nb * sizeof *p) : NULL;
        if (nb > 0 && !p)
            return del_error(DEL_ENOMEM, "%s: out of memory for a copy of %lld buffer values", func, (long long)nb);
        free(tr->saved_buffers);
        tr->saved_buffers = p;
        tr->saved_nbuf = nb;
    }
    return DEL_OK;
}

/* The gradient tensor for batches of `batch` images; the old one and the
 * batch size are kept on failure. Batch buffers follow at the next fit. */
static del_status alloc_batch(del_trainer *tr, int batch)
{
    del_tensor *grad = NULL;
    const int64_t gshape[2] = {batch, tr->num_outputs};
    del_status st = del_tensor_new(&grad, DEL_DTYPE_F32, 2, gshape);
    if (st != DEL_OK)
        return st;
    del_tensor_free(tr->grad);
    tr->grad = grad;
    tr->batch = batch;
    return DEL_OK;
}

/* Refuses a dataset whose images do not match the model's input shape. */
static del_status check_input(const del_trainer *tr, const char *func)
{
    int c = 0, h = 0, w = 0;
    del_status st = del_model_input_shape(tr->model, &c, &h, &w);
    if (st != DEL_OK)
        return st;
    if (c != tr->channels || h != tr->height || w != tr->width)
        return del_error(DEL_EINVAL,
                         "%s: the images of 'labeled' (%d x %d x %d) do not fit 'model' (input %d x %d x %d)",
                         func, tr->channels, tr->height, tr->width, c, h, w);
    return DEL_OK;
}

DEL_API void del_trainer_free(del_trainer *trainer)
{
    if (!trainer)
        return;
    free(trainer->pool);
    free(trainer->perm);
    free_slots(trainer);
    del_tensor_free(trainer->grad);
    del_optimizer_free(trainer->opt);
    free(trainer->saved_params);
    free(trainer->saved_buffers);
    free(trainer);
}

DEL_API del_status del_trainer_new_supervised(del_trainer **out, del_model *model, const del_dataset *labeled)
{
    static const char fn[] = "del_trainer_new_supervised";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return del_error_null(fn, "model");
    if (!labeled)
        return del_error_null(fn, "labeled");
    if (del_model_num_params(model) < 1)
        return del_error(DEL_EINVAL, "%s: 'model' has no parameters to train", fn);
    if (del_dataset_channels(labeled) > MAX_CHANNELS)
        return del_error(DEL_EINVAL, "%s: 'labeled' has %d channels, at most %d supported", fn,
                         del_dataset_channels(labeled), MAX_CHANNELS);

    del_status st = DEL_OK;
    del_trainer *tr = calloc(1, sizeof *tr);
    if (!tr)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    tr->model = model;
    tr->data = labeled;
    tr->channels = del_dataset_channels(labeled);
    tr->height = del_dataset_height(labeled);
    tr->width = del_dataset_width(labeled);

    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    int32_t max_label = -1;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] >= 0)
            tr->pool_n++;
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    if (tr->pool_n == 0) {
        st = del_error(DEL_EINVAL, "%s: 'labeled' has no labeled image", fn);
        goto cleanup;
    }
    tr->pool = malloc((size_t)tr->pool_n * sizeof *tr->pool);
    tr->perm = malloc((size_t)tr->pool_n * sizeof *tr->perm);
    if (!tr->pool || !tr->perm) {
        st = del_error(DEL_ENOMEM, "%s: out of memory for %lld indices", fn, (long long)tr->pool_n);
        goto cleanup;
    }
    for (int64_t i = 0, k = 0; i < n; i++)
        if (labels[i] >= 0)
            tr->pool[k++] = i;

    st = check_input(tr, fn);
    if (st != DEL_OK)
        goto cleanup;
    int out_ndim = 0;
    int64_t out_shape[3];
    st = del_model_output_shape(model, &out_ndim, out_shape);
    if (st != DEL_OK)
        goto cleanup;
    if (out_ndim != 1) {
        st = del_error(DEL_EINVAL, "%s: 'model' must output a vector of class scores, got %d-d output per image", fn,
                       out_ndim);
        goto cleanup;
    }
    tr->num_outputs = (int)out_shape[0];
    if (max_label >= tr->num_outputs) {
        st = del_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'model' has only %d outputs", fn, (int)max_label,
                       tr->num_outputs);
        goto cleanup;
    }

    tr->perm_epoch = -1;
    tr->prefetch = DEFAULT_PREFETCH;
    tr->set.lr = 0.05f;
    tr->set.momentum = 0.9f;
    tr->set.weight_decay = 5e-4f;
    tr->set.nesterov = 1;
    /* torch's AdamW defaults, unused until set_adamw; kept valid so that a
     * checkpoint's settings always pass the setters' checks */
    tr->set.adam_lr = 1e-3f;
    tr->set.beta1 = 0.9f;
    tr->set.beta2 = 0.999f;
    tr->set.adam_eps = 1e-8f;
    tr->set.adam_weight_decay = 1e-2f;
    tr->set.schedule = DEL_SCHEDULE_COSINE;
    tr->set.step_size = DEFAULT_STEP_SIZE;
    tr->set.gamma = DEFAULT_STEP_GAMMA;
    for (int c = 0; c < MAX_CHANNELS; c++) {
        tr->set.mean[c] = 0.2860f;
        tr->set.std[c] = 0.3530f;
    }
    st = alloc_batch(tr, tr->pool_n < 64 ? (int)tr->pool_n : 64);
    if (st != DEL_OK)
        goto cleanup;
    *out = tr;
    tr = NULL;

cleanup:
    del_trainer_free(tr);
    return st;
}

DEL_API del_status del_trainer_set_batch_size(del_trainer *trainer, int batch_size)
{
    static const char fn[] = "del_trainer_set_batch_size";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (batch_size < 1 || batch_size > trainer->pool_n)
        return del_error(DEL_EINVAL, "%s: 'batch_size' must be in 1..%lld (the labeled images), got %d", fn,
                         (long long)trainer->pool_n, batch_size);
    if (batch_size == trainer->batch)
        return DEL_OK;
    return alloc_batch(trainer, batch_size);
}

/* Checks that aug runs on the dataset's images and keeps their size, which
 * is the model's input (checked when the trainer was made). */
static del_status check_pipeline(const del_trainer *tr, const del_augment *aug, const char *func, const char *arg)
{
    int oh = 0, ow = 0;
    del_status st = del_augment_output_size(aug, tr->height, tr->width, &oh, &ow);
    if (st != DEL_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: '%s' cannot run on the %d x %d images of the dataset (%s)", func, arg, tr->height,
                         tr->width, why);
    }
    if (oh != tr->height || ow != tr->width)
        return del_error(DEL_EINVAL, "%s: '%s' turns %d x %d images into %d x %d, but 'model' takes %d x %d x %d "
                         "(C x H x W) images", func, arg, tr->height, tr->width, oh, ow, tr->channels, tr->height,
                         tr->width);
    return DEL_OK;
}

static del_status set_pipeline(del_trainer *tr, del_augment **field, del_augment *aug, const char *func)
{
    del_status st = del_trainer_check_settable(tr, func);
    if (st == DEL_OK && aug)
        st = check_pipeline(tr, aug, func, "aug");
    if (st == DEL_OK)
        *field = aug;
    return st;
}

DEL_API del_status del_trainer_set_augment(del_trainer *trainer, del_augment *aug)
{
    return set_pipeline(trainer, trainer ? &trainer->aug : NULL, aug, "del_trainer_set_augment");
}

DEL_API del_status del_trainer_set_augment_unlabeled(del_trainer *trainer, del_augment *aug)
{
    return set_pipeline(trainer, trainer ? &trainer->aug_unlabeled : NULL, aug, "del_trainer_set_augment_unlabeled");
}

DEL_API del_status del_trainer_set_prefetch(del_trainer *trainer, int depth)
{
    static const char fn[] = "del_trainer_set_prefetch";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (depth < 0 || depth > DEL_PREFETCH_MAX_DEPTH)
        return del_error(DEL_EINVAL, "%s: 'depth' must be in 0..%d (0: no prefetching), got %d", fn,
                         DEL_PREFETCH_MAX_DEPTH, depth);
    trainer->prefetch = depth;
    return DEL_OK;
}

/* Draws the next batch's dataset indices at *cur, and the epoch each
 * one belongs to: positions continue through the current epoch's
 * permutation, and a batch that reaches its end carries on into the next
 * epoch's. Each permutation depends only on (seed, epoch). */
static void draw_batch(del_trainer *tr, order_cursor *cur, int64_t *idx, int64_t *epochs)
{
    for (int i = 0; i < tr->batch; i++) {
        if (cur->pos == tr->pool_n) {
            cur->epoch++;
            cur->pos = 0;
        }
        if (tr->perm_epoch != cur->epoch) {
            del_rng r;
            del_rng_seed_stream(&r, tr->seed, (uint64_t)cur->epoch, ORDER_STREAM);
            for (int64_t k = 0; k < tr->pool_n; k++)
                tr->perm[k] = k;
            del_rng_shuffle_i64(&r, tr->perm, tr->pool_n);
            tr->perm_epoch = cur->epoch;
        }
        epochs[i] = cur->epoch;
        idx[i] = tr->pool[tr->perm[cur->pos++]];
    }
}

/* The prefetcher's fill: runs on the producer thread during a fit, and is
 * the only code then touching draw, perm and the slot it is given. */
static del_status fill_batch(void *ctx, int slot, int64_t step)
{
    del_trainer *tr = ctx;
    batch_slot *b = &tr->slots[slot];
    draw_batch(tr, &tr->draw, b->idx, b->epochs);
    b->after = tr->draw;
    if (tr->aug)
        return del_augment_batch_epochs(tr->aug, tr->data, b->idx, b->epochs, tr->batch, (uint64_t)b->epochs[0],
                                        (uint64_t)step, tr->set.mean, tr->set.std, b->x, b->soft, tr->num_outputs);
    return del_dataset_batch(tr->data, b->idx, tr->batch, tr->set.mean, tr->set.std, b->x, b->y);
}

/* Smooths the soft labels of a batch in place: t' = (1 - s) t + s / K. The
 * slot belongs to the fitting thread until it is released, and the
 * producer rewrites its labels before using it again. */
static void smooth_soft_labels(const del_trainer *tr, del_tensor *soft)
{
    float *t = del_tensor_data(soft);
    const int64_t count = del_tensor_numel(soft);
    const float keep = 1.0f - tr->set.smoothing, spread = tr->set.smoothing / (float)tr->num_outputs;
    for (int64_t i = 0; i < count; i++)
        t[i] = keep * t[i] + spread;
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
    return del_error(DEL_ENUMERIC, "%s: step %lld: the %s of layer %d (%s) is not finite (%g at parameter %lld of "
                     "%lld); the model is as it was before this step (lower the learning rate, or clip gradients "
                     "with del_trainer_set_clip_norm)", fn, (long long)step, what, layer,
                     del_model_layer_type(tr->model, layer), (double)v[k], (long long)k,
                     (long long)del_model_num_params(tr->model));
}

/* One optimizer step on a prepared batch; `step` numbers it in messages.
 * On failure the model's buffers are restored and nothing is updated: a
 * non-finite loss, running statistic or gradient returns DEL_ENUMERIC.
 * Parameters made non-finite by the update are restored too, and *fatal
 * says the fit cannot go on (the optimizer's state took the non-finite
 * values). */
static del_status train_step(del_trainer *tr, del_optimizer *opt, const batch_slot *b, int64_t step, float *loss,
                             int *fatal, const char *fn)
{
    del_model *m = tr->model;
    const int64_t np = del_model_num_params(m), nb = del_model_num_buffers(m);
    *fatal = 0;
    if (nb > 0)
        memcpy(tr->saved_buffers, del_model_buffers(m), (size_t)nb * sizeof(float));
    del_status st = del_model_forward(m, b->x);
    if (st == DEL_OK && b->soft && tr->set.smoothing != 0.0f)
        smooth_soft_labels(tr, b->soft);
    if (st == DEL_OK)
        st = b->soft ? del_loss_soft_cross_entropy(del_model_output(m), b->soft, loss, tr->grad)
                     : del_loss_cross_entropy_smooth(del_model_output(m), b->y, tr->set.smoothing, loss, tr->grad);
    int64_t k = nb;
    if (st == DEL_OK && nb > 0 && (k = first_nonfinite(del_model_buffers(m), nb)) < nb)
        st = del_error(DEL_ENUMERIC, "%s: step %lld: the batchnorm running statistics are not finite (%g at buffer "
                       "value %lld of %lld); the model is as it was before this step (are the inputs normalised?)",
                       fn, (long long)step, (double)del_model_buffers(m)[k], (long long)k, (long long)nb);
    if (st == DEL_OK && !isfinite(*loss))
        st = del_error(DEL_ENUMERIC, "%s: step %lld: the loss is not finite (%g); the model is as it was before this "
                       "step (lower the learning rate, or clip gradients with del_trainer_set_clip_norm)", fn,
                       (long long)step, (double)*loss);
    if (st == DEL_OK)
        st = del_model_zero_grad(m);
    if (st == DEL_OK)
        st = del_model_backward(m, tr->grad);
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
    }
    if (st != DEL_OK && nb > 0)
        memcpy(del_model_buffers(m), tr->saved_buffers, (size_t)nb * sizeof(float));
    return st;
}

/* A new optimizer for `steps` steps (a fit's, or the run's total) of
 * model, from the settings s. */
del_status del_supervised_make_optimizer(del_model *model, const train_settings *s, int64_t steps,
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

DEL_API del_status del_trainer_fit(del_trainer *trainer, int64_t steps)
{
    static const char fn[] = "del_trainer_fit";
    if (!trainer)
        return del_error_null(fn, "trainer");
    if (trainer->fitting)
        return del_error(DEL_ESTATE, "%s: the trainer is already fitting (called from its progress callback?)", fn);
    if (steps < 1)
        return del_error(DEL_EINVAL, "%s: 'steps' must be >= 1, got %lld", fn, (long long)steps);

    del_trainer *tr = trainer;
    del_optimizer *opt = NULL, *fresh = NULL; /* fresh: this fit's own, freed at the end */
    del_prefetch pf;
    int prefetching = 0;
    /* Steps may have been added to the pipelines since they were set. */
    del_status st = tr->aug ? check_pipeline(tr, tr->aug, fn, "augment") : DEL_OK;
    if (st == DEL_OK && tr->aug_unlabeled)
        st = check_pipeline(tr, tr->aug_unlabeled, fn, "augment_unlabeled");
    if (st == DEL_OK)
        st = ensure_slots(tr, del_prefetch_slots(tr->prefetch), tr->aug != NULL, fn);
    if (st == DEL_OK)
        st = ensure_saved(tr, fn);
    if (st == DEL_OK && tr->set.total_steps == 0) {
        st = del_supervised_make_optimizer(tr->model, &tr->set, steps, &fresh);
        opt = fresh;
    } else if (st == DEL_OK && tr->opt) {
        if (del_model_num_params(tr->model) != tr->opt_params)
            st = del_error(DEL_ESTATE, "%s: the model has %lld parameters, the kept optimizer was made for %lld "
                           "(call del_trainer_set_total_steps to start a new run)", fn,
                           (long long)del_model_num_params(tr->model), (long long)tr->opt_params);
        opt = tr->opt;
    } else if (st == DEL_OK) {
        st = del_supervised_make_optimizer(tr->model, &tr->set, tr->set.total_steps, &tr->opt);
        tr->opt_params = del_model_num_params(tr->model);
        opt = tr->opt;
    }
    if (st != DEL_OK)
        goto cleanup;
    tr->fitting = 1;
    st = del_model_set_training(tr->model, 1);
    if (st != DEL_OK)
        goto cleanup;

    tr->draw = tr->order;
    del_prefetch_start(&pf, tr->prefetch, tr->steps_done, steps, fill_batch, tr);
    prefetching = 1;
    double loss_sum = 0.0;
    int64_t loss_count = 0;
    for (int64_t step = 1; step <= steps; step++) {
        float loss = 0.0f;
        int slot = 0, fatal = 0;
        st = del_prefetch_acquire(&pf, &slot);
        if (st == DEL_OK)
            st = train_step(tr, opt, &tr->slots[slot], tr->steps_done + 1, &loss, &fatal, fn);
        const int skip = st == DEL_ENUMERIC && !fatal && tr->set.nonfinite == DEL_NONFINITE_SKIP;
        if (st == DEL_ESTATE && opt == tr->opt)
            st = del_error(DEL_ESTATE, "%s: the model's layers or heads were replaced or removed since the kept "
                           "optimizer was made, so its state belongs to other parameters (call "
                           "del_trainer_set_total_steps to start a new run with a new optimizer)", fn);
        if (st != DEL_OK && !skip)
            goto cleanup;
        st = DEL_OK;
        /* Read before the slot goes back to the producer. */
        tr->order = tr->slots[slot].after;
        tr->steps_done++;
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
                st = del_error(DEL_ECANCELED, "%s: the progress callback stopped training after step %lld of %lld", fn,
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
    return st;
}

/* Index of the largest of k scores, the first on ties; -1 if a score is
 * not finite (the caller reports it). */
static int argmax(const float *v, int k)
{
    int best = 0;
    for (int j = 0; j < k; j++) {
        if (!isfinite(v[j]))
            return -1;
        if (v[j] > v[best])
            best = j;
    }
    return best;
}

DEL_API del_status del_trainer_evaluate(del_trainer *trainer, const del_dataset *test, double *accuracy)
{
    static const char fn[] = "del_trainer_evaluate";
    if (!trainer)
        return del_error_null(fn, "trainer");
    if (!test)
        return del_error_null(fn, "test");
    if (!accuracy)
        return del_error_null(fn, "accuracy");
    del_trainer *tr = trainer;
    if (del_dataset_channels(test) != tr->channels || del_dataset_height(test) != tr->height ||
        del_dataset_width(test) != tr->width)
        return del_error(DEL_EINVAL, "%s: the images of 'test' must be %d x %d x %d (HxWxC) as the training images, got "
                         "%d x %d x %d", fn, tr->height, tr->width, tr->channels, del_dataset_height(test),
                         del_dataset_width(test), del_dataset_channels(test));
    const int64_t n = del_dataset_size(test);
    const int32_t *labels = del_dataset_labels(test);
    int64_t n_labeled = 0;
    int32_t max_label = -1;
    for (int64_t i = 0; i < n; i++) {
        n_labeled += labels[i] >= 0;
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    if (n_labeled == 0)
        return del_error(DEL_EINVAL, "%s: 'test' has no labeled image", fn);
    int out_ndim = 0;
    int64_t out_shape[3];
    del_status st = del_model_output_shape(tr->model, &out_ndim, out_shape);
    if (st != DEL_OK)
        return st;
    if (out_ndim != 1 || max_label >= out_shape[0])
        return del_error(DEL_EINVAL, "%s: 'test' has label %d but the model has only %lld outputs", fn,
                         (int)max_label, (long long)(out_ndim == 1 ? out_shape[0] : 0));

    const size_t image_floats = (size_t)tr->channels * (size_t)tr->height * (size_t)tr->width;
    const int was_training = del_model_is_training(tr->model);
    int64_t idx[EVAL_BATCH];
    int64_t correct = 0;
    del_tensor *x = NULL;
    float *xbuf = malloc(EVAL_BATCH * image_floats * sizeof *xbuf);
    if (!xbuf)
        return del_error(DEL_ENOMEM, "%s: out of memory for a batch of %d images", fn, EVAL_BATCH);
    st = del_model_set_training(tr->model, 0);
    if (st != DEL_OK)
        goto cleanup;
    for (int64_t i = 0; i < n;) {
        int m = 0;
        for (; i < n && m < EVAL_BATCH; i++)
            if (labels[i] >= 0)
                idx[m++] = i;
        if (m == 0)
            break;
        const int64_t shape[4] = {m, tr->channels, tr->height, tr->width};
        st = del_tensor_wrap(&x, DEL_DTYPE_F32, 4, shape, xbuf);
        if (st == DEL_OK)
            st = del_dataset_batch(test, idx, m, tr->set.mean, tr->set.std, x, NULL);
        if (st == DEL_OK)
            st = del_model_forward(tr->model, x);
        if (st != DEL_OK)
            goto cleanup;
        del_tensor_free(x);
        x = NULL;
        del_tensor *logits = del_model_output(tr->model);
        const int k = (int)del_tensor_dim(logits, 1);
        const float *scores = del_tensor_data(logits);
        for (int r = 0; r < m; r++) {
            const int best = argmax(scores + (size_t)r * (size_t)k, k);
            if (best < 0) {
                st = del_error(DEL_ENUMERIC, "%s: the model's outputs for test image %lld are not finite: the model "
                               "has diverged (NaN or infinite weights or inputs)", fn, (long long)idx[r]);
                goto cleanup;
            }
            correct += best == labels[idx[r]];
        }
    }
    *accuracy = (double)correct / (double)n_labeled;

cleanup:
    del_tensor_free(x);
    free(xbuf);
    del_model_set_training(tr->model, was_training);
    return st;
}
