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

static void free_slots(del_trainer *tr)
{
    for (int i = 0; i < tr->nslots; i++) {
        batch_slot *b = &tr->slots[i];
        del_tensor_free(b->x);
        del_tensor_free(b->y);
        del_tensor_free(b->soft);
        free(b->idx);
        free(b->epochs);
        memset(b, 0, sizeof *b);
    }
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
        b->idx = malloc((size_t)tr->batch * sizeof *b->idx);
        b->epochs = malloc((size_t)tr->batch * sizeof *b->epochs);
        if (st == DEL_OK && (!b->idx || !b->epochs))
            st = del_error(DEL_ENOMEM, "%s: out of memory for a batch of %d", func, tr->batch);
        /* counted first, so that free_slots releases a half-made slot */
        tr->nslots++;
        if (st != DEL_OK)
            return st;
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
    tr->lr = 0.05f;
    tr->momentum = 0.9f;
    tr->weight_decay = 5e-4f;
    tr->nesterov = 1;
    /* torch's AdamW defaults, unused until set_adamw; kept valid so that a
     * checkpoint's settings always pass the setters' checks */
    tr->adam_lr = 1e-3f;
    tr->beta1 = 0.9f;
    tr->beta2 = 0.999f;
    tr->adam_eps = 1e-8f;
    tr->adam_weight_decay = 1e-2f;
    tr->schedule = DEL_SCHEDULE_COSINE;
    tr->step_size = DEFAULT_STEP_SIZE;
    tr->gamma = DEFAULT_STEP_GAMMA;
    for (int c = 0; c < MAX_CHANNELS; c++) {
        tr->mean[c] = 0.2860f;
        tr->std[c] = 0.3530f;
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

static del_status check_settable(const del_trainer *tr, const char *func)
{
    if (!tr)
        return del_error_null(func, "trainer");
    if (tr->fitting)
        return del_error(DEL_ESTATE, "%s: cannot change settings while del_trainer_fit runs", func);
    return DEL_OK;
}

/* An optimizer setting changed: the next fit starts a new optimizer. */
static void drop_optimizer(del_trainer *tr)
{
    del_optimizer_free(tr->opt);
    tr->opt = NULL;
}

DEL_API del_status del_trainer_set_batch_size(del_trainer *trainer, int batch_size)
{
    static const char fn[] = "del_trainer_set_batch_size";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (batch_size < 1 || batch_size > trainer->pool_n)
        return del_error(DEL_EINVAL, "%s: 'batch_size' must be in 1..%lld (the labeled images), got %d", fn,
                         (long long)trainer->pool_n, batch_size);
    if (batch_size == trainer->batch)
        return DEL_OK;
    return alloc_batch(trainer, batch_size);
}

DEL_API del_status del_trainer_set_sgd(del_trainer *trainer, float lr, float momentum, float weight_decay,
                                       int nesterov)
{
    static const char fn[] = "del_trainer_set_sgd";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!(lr > 0.0f) || !isfinite(lr))
        return del_error(DEL_EINVAL, "%s: 'lr' must be a finite value > 0, got %g", fn, (double)lr);
    if (!(momentum >= 0.0f && momentum < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'momentum' must be in [0, 1), got %g", fn, (double)momentum);
    if (!(weight_decay >= 0.0f) || !isfinite(weight_decay))
        return del_error(DEL_EINVAL, "%s: 'weight_decay' must be a finite value >= 0, got %g", fn,
                         (double)weight_decay);
    if (nesterov != 0 && nesterov != 1)
        return del_error(DEL_EINVAL, "%s: 'nesterov' must be 0 or 1, got %d", fn, nesterov);
    if (nesterov && momentum == 0.0f)
        return del_error(DEL_EINVAL, "%s: 'nesterov' needs 'momentum' > 0", fn);
    trainer->use_adamw = 0;
    trainer->lr = lr;
    trainer->momentum = momentum;
    trainer->weight_decay = weight_decay;
    trainer->nesterov = nesterov;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_adamw(del_trainer *trainer, float lr, float beta1, float beta2, float eps,
                                         float weight_decay)
{
    static const char fn[] = "del_trainer_set_adamw";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!(lr > 0.0f) || !isfinite(lr))
        return del_error(DEL_EINVAL, "%s: 'lr' must be a finite value > 0, got %g", fn, (double)lr);
    if (!(beta1 >= 0.0f && beta1 < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'beta1' must be in [0, 1), got %g", fn, (double)beta1);
    if (!(beta2 >= 0.0f && beta2 < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'beta2' must be in [0, 1), got %g", fn, (double)beta2);
    if (!(eps > 0.0f) || !isfinite(eps))
        return del_error(DEL_EINVAL, "%s: 'eps' must be a finite value > 0, got %g", fn, (double)eps);
    if (!(weight_decay >= 0.0f) || !isfinite(weight_decay))
        return del_error(DEL_EINVAL, "%s: 'weight_decay' must be a finite value >= 0, got %g", fn,
                         (double)weight_decay);
    trainer->use_adamw = 1;
    trainer->adam_lr = lr;
    trainer->beta1 = beta1;
    trainer->beta2 = beta2;
    trainer->adam_eps = eps;
    trainer->adam_weight_decay = weight_decay;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_schedule(del_trainer *trainer, del_schedule kind)
{
    static const char fn[] = "del_trainer_set_schedule";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (kind != DEL_SCHEDULE_CONSTANT && kind != DEL_SCHEDULE_COSINE && kind != DEL_SCHEDULE_STEP)
        return del_error(DEL_EINVAL, "%s: 'kind' must be DEL_SCHEDULE_CONSTANT (0), DEL_SCHEDULE_COSINE (1) or "
                         "DEL_SCHEDULE_STEP (2), got %d", fn, (int)kind);
    trainer->schedule = kind;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_step_schedule(del_trainer *trainer, int64_t step_size, float gamma)
{
    static const char fn[] = "del_trainer_set_step_schedule";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (step_size < 1)
        return del_error(DEL_EINVAL, "%s: 'step_size' must be >= 1, got %lld", fn, (long long)step_size);
    if (!(gamma > 0.0f) || !isfinite(gamma))
        return del_error(DEL_EINVAL, "%s: 'gamma' must be a finite value > 0, got %g", fn, (double)gamma);
    trainer->schedule = DEL_SCHEDULE_STEP;
    trainer->step_size = step_size;
    trainer->gamma = gamma;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_warmup(del_trainer *trainer, int64_t warmup_steps)
{
    static const char fn[] = "del_trainer_set_warmup";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (warmup_steps < 0)
        return del_error(DEL_EINVAL, "%s: 'warmup_steps' must be >= 0 (0 = off), got %lld", fn,
                         (long long)warmup_steps);
    trainer->warmup = warmup_steps;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_clip_norm(del_trainer *trainer, float max_norm)
{
    static const char fn[] = "del_trainer_set_clip_norm";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!(max_norm >= 0.0f) || !isfinite(max_norm))
        return del_error(DEL_EINVAL, "%s: 'max_norm' must be a finite value >= 0 (0 = off), got %g", fn,
                         (double)max_norm);
    trainer->clip_norm = max_norm;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_label_smoothing(del_trainer *trainer, float smoothing)
{
    static const char fn[] = "del_trainer_set_label_smoothing";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'smoothing' must be in [0, 1), got %g", fn, (double)smoothing);
    trainer->smoothing = smoothing;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_total_steps(del_trainer *trainer, int64_t total_steps)
{
    static const char fn[] = "del_trainer_set_total_steps";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (total_steps < 0)
        return del_error(DEL_EINVAL, "%s: 'total_steps' must be >= 0 (0: a fresh optimizer per fit), got %lld", fn,
                         (long long)total_steps);
    trainer->total_steps = total_steps;
    drop_optimizer(trainer);
    return DEL_OK;
}

DEL_API del_status del_trainer_set_normalize(del_trainer *trainer, const float *mean, const float *std, int channels)
{
    static const char fn[] = "del_trainer_set_normalize";
    del_status st = check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (!mean)
        return del_error_null(fn, "mean");
    if (!std)
        return del_error_null(fn, "std");
    if (channels != trainer->channels)
        return del_error(DEL_EINVAL, "%s: 'channels' must be %d (the dataset's), got %d", fn, trainer->channels,
                         channels);
    for (int c = 0; c < channels; c++) {
        if (!isfinite(mean[c]))
            return del_error(DEL_EINVAL, "%s: 'mean[%d]' must be finite, got %g", fn, c, (double)mean[c]);
        if (!(std[c] > 0.0f) || !isfinite(std[c]))
            return del_error(DEL_EINVAL, "%s: 'std[%d]' must be a finite value > 0, got %g", fn, c, (double)std[c]);
    }
    for (int c = 0; c < channels; c++) {
        trainer->mean[c] = mean[c];
        trainer->std[c] = std[c];
    }
    return DEL_OK;
}

DEL_API del_status del_trainer_set_seed(del_trainer *trainer, uint64_t seed)
{
    del_status st = check_settable(trainer, "del_trainer_set_seed");
    if (st != DEL_OK)
        return st;
    trainer->seed = seed;
    /* A new seed starts a new sequence of epochs and batch numbers. */
    trainer->order.epoch = 0;
    trainer->order.pos = 0;
    trainer->perm_epoch = -1;
    trainer->steps_done = 0;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_progress(del_trainer *trainer, del_progress_fn fn, int64_t every, void *user)
{
    static const char name[] = "del_trainer_set_progress";
    del_status st = check_settable(trainer, name);
    if (st != DEL_OK)
        return st;
    if (fn && every < 1)
        return del_error(DEL_EINVAL, "%s: 'every' must be >= 1, got %lld", name, (long long)every);
    trainer->progress = fn;
    trainer->every = fn ? every : 0;
    trainer->user = fn ? user : NULL;
    return DEL_OK;
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
    del_status st = check_settable(tr, func);
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
    del_status st = check_settable(trainer, fn);
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
                                        (uint64_t)step, tr->mean, tr->std, b->x, b->soft, tr->num_outputs);
    return del_dataset_batch(tr->data, b->idx, tr->batch, tr->mean, tr->std, b->x, b->y);
}

/* Smooths the soft labels of a batch in place: t' = (1 - s) t + s / K. The
 * slot belongs to the fitting thread until it is released, and the
 * producer rewrites its labels before using it again. */
static void smooth_soft_labels(const del_trainer *tr, del_tensor *soft)
{
    float *t = del_tensor_data(soft);
    const int64_t count = del_tensor_numel(soft);
    const float keep = 1.0f - tr->smoothing, spread = tr->smoothing / (float)tr->num_outputs;
    for (int64_t i = 0; i < count; i++)
        t[i] = keep * t[i] + spread;
}

/* One optimizer step on a prepared batch. */
static del_status train_step(del_trainer *tr, del_optimizer *opt, const batch_slot *b, float *loss)
{
    del_status st = del_model_forward(tr->model, b->x);
    if (st == DEL_OK && b->soft && tr->smoothing != 0.0f)
        smooth_soft_labels(tr, b->soft);
    if (st == DEL_OK)
        st = b->soft ? del_loss_soft_cross_entropy(del_model_output(tr->model), b->soft, loss, tr->grad)
                     : del_loss_cross_entropy_smooth(del_model_output(tr->model), b->y, tr->smoothing, loss,
                                                     tr->grad);
    if (st == DEL_OK)
        st = del_model_zero_grad(tr->model);
    if (st == DEL_OK)
        st = del_model_backward(tr->model, tr->grad);
    if (st == DEL_OK)
        st = del_optimizer_step(opt);
    return st;
}

/* A new optimizer for `steps` steps (a fit's, or the run's total), from
 * the trainer's settings. */
del_status del_supervised_make_optimizer(const del_trainer *tr, int64_t steps, del_optimizer **out)
{
    del_optimizer *opt = NULL;
    del_status st = tr->use_adamw ? del_optimizer_new_adamw(&opt, tr->model, tr->adam_lr, tr->beta1, tr->beta2,
                                                            tr->adam_eps, tr->adam_weight_decay)
                                  : del_optimizer_new_sgd(&opt, tr->model, tr->lr, tr->momentum, tr->weight_decay,
                                                          tr->nesterov);
    if (st == DEL_OK)
        st = tr->schedule == DEL_SCHEDULE_STEP ? del_optimizer_set_step_schedule(opt, tr->step_size, tr->gamma)
                                               : del_optimizer_set_schedule(opt, tr->schedule, steps, 0.0f);
    if (st == DEL_OK)
        st = del_optimizer_set_warmup(opt, tr->warmup);
    if (st == DEL_OK)
        st = del_optimizer_set_clip_norm(opt, tr->clip_norm);
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
    if (st == DEL_OK && tr->total_steps == 0) {
        st = del_supervised_make_optimizer(tr, steps, &fresh);
        opt = fresh;
    } else if (st == DEL_OK && tr->opt) {
        if (del_model_num_params(tr->model) != tr->opt_params)
            st = del_error(DEL_ESTATE, "%s: the model has %lld parameters, the kept optimizer was made for %lld "
                           "(call del_trainer_set_total_steps to start a new run)", fn,
                           (long long)del_model_num_params(tr->model), (long long)tr->opt_params);
        opt = tr->opt;
    } else if (st == DEL_OK) {
        st = del_supervised_make_optimizer(tr, tr->total_steps, &tr->opt);
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
        int slot = 0;
        st = del_prefetch_acquire(&pf, &slot);
        if (st == DEL_OK)
            st = train_step(tr, opt, &tr->slots[slot], &loss);
        if (st != DEL_OK)
            goto cleanup;
        /* Read before the slot goes back to the producer. */
        tr->order = tr->slots[slot].after;
        tr->steps_done++;
        del_prefetch_release(&pf);
        loss_sum += loss;
        loss_count++;
        if (tr->progress && (step % tr->every == 0 || step == steps)) {
            float mean_loss = (float)(loss_sum / (double)loss_count);
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
 * NaN, so that a diverged model never scores by luck. */
static int argmax(const float *v, int k)
{
    int best = 0;
    for (int j = 0; j < k; j++) {
        if (isnan(v[j]))
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
    for (int64_t i = 0; i < n; i++)
        n_labeled += labels[i] >= 0;
    if (n_labeled == 0)
        return del_error(DEL_EINVAL, "%s: 'test' has no labeled image", fn);

    del_status st = DEL_OK;
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
            st = del_dataset_batch(test, idx, m, tr->mean, tr->std, x, NULL);
        if (st == DEL_OK)
            st = del_model_forward(tr->model, x);
        if (st != DEL_OK)
            goto cleanup;
        del_tensor_free(x);
        x = NULL;
        del_tensor *logits = del_model_output(tr->model);
        const int k = (int)del_tensor_dim(logits, 1);
        const float *scores = del_tensor_data(logits);
        for (int r = 0; r < m; r++)
            correct += argmax(scores + (size_t)r * (size_t)k, k) == labels[idx[r]];
    }
    *accuracy = (double)correct / (double)n_labeled;

cleanup:
    del_tensor_free(x);
    free(xbuf);
    del_model_set_training(tr->model, was_training);
    return st;
}
