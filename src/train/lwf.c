/* Learning without Forgetting (SPEC §1.4, Li & Hoiem 2018): a new head
 * learns the new task on a shared backbone while the old head's outputs
 * on the new task's images are held to what the original model gave
 * (Y_o, recorded before the first step):
 *   loss = CE(labels, new head) + λ_o · T² · KL(softmax_T(Y_o) ‖ softmax_T(old head))
 * with T = 2 and λ_o = 1 by default. Avalanche and FACIL omit the T²;
 * the seed's loss keeps it (as Hinton's distillation does), and so do we.
 * An optional warm-up trains the new head alone (backbone and old head
 * frozen) for its first steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64
#define DEFAULT_TEMPERATURE 2.0f
#define DEFAULT_LAMBDA 1.0f
#define RECORD_BATCH 256

typedef struct lwf_state {
    char old_head[32], new_head[32];
    int old_classes;
    float temperature, lambda;
    int no_t2;           /* 1: without the T^2 factor (Avalanche's and FACIL's LwF) */
    int64_t warmup;
    int frozen;          /* backbone and old head frozen, as last set; -1 none yet */
    int live;            /* 1: Y_o from a frozen copy of the original model on each batch */
    del_model *original; /* that copy, made before the first step */
    float *recorded;     /* Y_o: [dataset rows, old_classes], once recorded */
    int64_t recorded_rows;
    del_tensor *yo, *g_old, *g_new; /* a batch's Y_o rows and the heads' gradients */
} lwf_state;

static void lwf_release(void *state)
{
    lwf_state *s = state;
    del_model_free(s->original);
    free(s->recorded);
    del_tensor_free(s->yo);
    del_tensor_free(s->g_old);
    del_tensor_free(s->g_new);
}

static del_status lwf_init(void *state, del_trainer *tr, const char *fn)
{
    lwf_state *s = state;
    const del_dataset *labeled = tr->streams[DEL_STREAM_L].data;
    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= tr->num_outputs)
            return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but the new head has %d classes", fn,
                               (int)labels[i], tr->num_outputs);
    s->temperature = DEFAULT_TEMPERATURE;
    s->lambda = DEFAULT_LAMBDA;
    s->frozen = -1;
    return DEL_OK;
}

/* The backbone and the old head frozen (warm-up) or trainable. */
static del_status set_frozen(lwf_state *s, del_model *m, int frozen)
{
    int first = 0, count = 0;
    del_status st = del_model_head_layers(m, s->old_head, &first, &count);
    const int backbone = del_model_backbone_layers(m);
    if (st == DEL_OK && backbone > 0)
        st = frozen ? del_model_freeze(m, 0, backbone - 1) : del_model_unfreeze(m, 0, backbone - 1);
    if (st == DEL_OK)
        st = frozen ? del_model_freeze(m, first, first + count - 1) : del_model_unfreeze(m, first, first + count - 1);
    if (st == DEL_OK)
        s->frozen = frozen;
    return st;
}

/* Y_o: the old head's logits on every row of the labeled dataset, from the
 * model as it is before the first step, in evaluation mode, normalised as
 * for training, without augmentation. */
static del_status record(lwf_state *s, del_trainer *tr, const char *fn)
{
    const del_dataset *ds = tr->streams[DEL_STREAM_L].data;
    const int64_t n = del_dataset_size(ds);
    s->recorded = malloc((size_t)n * (size_t)s->old_classes * sizeof *s->recorded);
    if (!s->recorded)
        return train_error(DEL_ENOMEM, "%s: out of memory for the old head's outputs on %lld images", fn,
                           (long long)n);
    const size_t image = (size_t)tr->channels * (size_t)tr->height * (size_t)tr->width;
    float *xbuf = malloc(RECORD_BATCH * image * sizeof *xbuf);
    if (!xbuf) {
        free(s->recorded);
        s->recorded = NULL;
        return train_error(DEL_ENOMEM, "%s: out of memory for a batch of %d images", fn, RECORD_BATCH);
    }
    del_tensor *x = NULL;
    del_status st = DEL_OK;
    int64_t idx[RECORD_BATCH];
    const int was_training = del_model_is_training(tr->model);
    st = del_model_set_training(tr->model, 0);
    for (int64_t i = 0; i < n && st == DEL_OK; i += RECORD_BATCH) {
        const int64_t m = n - i < RECORD_BATCH ? n - i : RECORD_BATCH;
        for (int64_t k = 0; k < m; k++)
            idx[k] = i + k;
        const int64_t shape[4] = {m, tr->channels, tr->height, tr->width};
        del_tensor_free(x);
        x = NULL;
        st = del_tensor_wrap(&x, DEL_DTYPE_F32, 4, shape, xbuf);
        if (st == DEL_OK)
            st = del_dataset_batch(ds, idx, m, tr->set.mean, tr->set.std, x, NULL);
        if (st == DEL_OK)
            st = del_model_forward(tr->model, x);
        if (st == DEL_OK) {
            const del_tensor *y = del_model_head_output(tr->model, s->old_head);
            const float *v = del_tensor_data((del_tensor *)y);
            for (int64_t k = 0; k < m * s->old_classes && st == DEL_OK; k++)
                if (!isfinite(v[k]))
                    st = train_error(DEL_ENUMERIC, "%s: the original model's old head gives non-finite outputs "
                                     "for image %lld", fn, (long long)(i + k / s->old_classes));
            if (st == DEL_OK)
                memcpy(s->recorded + i * s->old_classes, v, (size_t)(m * s->old_classes) * sizeof(float));
        }
    }
    free(xbuf);
    del_tensor_free(x);
    del_model_set_training(tr->model, was_training);
    if (st != DEL_OK) {
        free(s->recorded);
        s->recorded = NULL;
        return st;
    }
    s->recorded_rows = n;
    return DEL_OK;
}

static del_status lwf_begin_fit(void *state, del_trainer *tr, int64_t steps, const char *fn)
{
    (void)steps;
    lwf_state *s = state;
    if (s->live ? s->original != NULL : s->recorded != NULL)
        return DEL_OK;
    if (tr->steps_done > 0)
        return train_error(DEL_ESTATE, "%s: the old head's targets are not in this trainer (it was resumed from a "
                           "checkpoint saved before the first step): start the run again", fn);
    if (!s->live)
        return record(s, tr, fn);
    del_status st = del_model_clone(&s->original, tr->model);
    if (st == DEL_OK)
        st = del_model_set_training(s->original, 0);
    return st;
}

static del_status lwf_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    (void)fn;
    lwf_state *s = state;
    const batch_slot *b = in->in[DEL_STREAM_L];
    const int64_t n = del_tensor_dim(b->x, 0);
    const int frozen = in->step <= s->warmup;
    del_status st = frozen != s->frozen ? set_frozen(s, in->model, frozen) : DEL_OK;
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->yo, n, s->old_classes);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g_old, n, s->old_classes);
    if (st == DEL_OK)
        st = del_trainer_ensure_matrix(&s->g_new, n, tr->num_outputs);
    if (st == DEL_OK)
        st = del_model_forward(in->model, b->x);
    if (st != DEL_OK)
        return st;
    float *yo = del_tensor_data(s->yo);
    if (s->live) {
        /* The original on the very batch the model sees (augmented). */
        st = del_model_forward(s->original, b->x);
        if (st != DEL_OK)
            return st;
        memcpy(yo, del_tensor_data(del_model_head_output(s->original, s->old_head)),
               (size_t)(n * s->old_classes) * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++)
            memcpy(yo + i * s->old_classes, s->recorded + b->idx[i] * s->old_classes,
                   (size_t)s->old_classes * sizeof(float));
    }
    float ce = 0.0f, kd = 0.0f;
    const del_tensor *zn = del_model_head_output(in->model, s->new_head);
    const del_tensor *zo = del_model_head_output(in->model, s->old_head);
    st = del_task_loss(tr, b, zn, &ce, s->g_new);
    const char *names[2] = {s->new_head, s->old_head};
    const del_tensor *grads[2] = {s->g_new, s->g_old};
    int heads = 1;
    if (st == DEL_OK && !frozen && s->lambda > 0.0f) {
        st = del_loss_distill(zo, s->yo, s->temperature, &kd, s->g_old);
        const float w = s->no_t2 ? s->lambda / (s->temperature * s->temperature) : s->lambda;
        float *g = del_tensor_data(s->g_old);
        for (int64_t i = 0; st == DEL_OK && i < n * s->old_classes; i++)
            g[i] *= w;
        kd *= w; /* the term as it enters the loss */
        heads = 2;
    }
    if (st == DEL_OK)
        st = del_model_backward_heads(in->model, heads, names, grads);
    *loss = ce + kd;
    return st;
}

/* The settings and the old head's targets: Y_o recorded (a tensor) or
 * the frozen original (a model). */
static del_status lwf_save(const void *state, const del_trainer *tr, del_checkpoint *ck, const char *fn)
{
    (void)fn;
    const lwf_state *s = state;
    del_status st = del_checkpoint_set_f32(ck, "lwf_temperature", s->temperature);
    if (st == DEL_OK)
        st = del_checkpoint_set_f32(ck, "lwf_lambda", s->lambda);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "lwf_no_t2", s->no_t2);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "lwf_warmup", s->warmup);
    if (st == DEL_OK)
        st = del_checkpoint_set_i64(ck, "lwf_live", s->live);
    if (st == DEL_OK && s->recorded) {
        const int64_t shape[2] = {s->recorded_rows, s->old_classes};
        del_tensor *t = NULL;
        st = del_tensor_wrap(&t, DEL_DTYPE_F32, 2, shape, s->recorded);
        if (st == DEL_OK)
            st = del_checkpoint_add_tensor(ck, "lwf_recorded", t);
        del_tensor_free(t);
    }
    if (st == DEL_OK && s->original)
        st = del_checkpoint_add_model(ck, "lwf_original", s->original);
    (void)tr;
    return st;
}

static del_status lwf_load(void *state, del_trainer *tr, const del_checkpoint *ck, const char *fn)
{
    lwf_state *s = state;
    float temperature = 0.0f, lambda = 0.0f;
    int64_t no_t2 = 0, warmup = 0, live = 0;
    del_status st = del_trainer_read_f32(ck, "lwf_temperature", &temperature, fn);
    if (st == DEL_OK)
        st = del_trainer_read_f32(ck, "lwf_lambda", &lambda, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "lwf_no_t2", &no_t2, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "lwf_warmup", &warmup, fn);
    if (st == DEL_OK)
        st = del_trainer_read_i64(ck, "lwf_live", &live, fn);
    if (st != DEL_OK)
        return st;
    if (!(temperature > 0.0f) || !isfinite(temperature) || !(lambda >= 0.0f) || !isfinite(lambda) ||
        (no_t2 != 0 && no_t2 != 1) || warmup < 0 || (live != 0 && live != 1))
        return train_error(DEL_EFORMAT, "%s: the checkpoint is corrupt (LwF settings out of range)", fn);
    float *recorded = NULL;
    int64_t rows = 0;
    del_model *original = NULL;
    if (del_checkpoint_num_tensors(ck) > 0 && !live) {
        del_tensor *t = NULL;
        st = train_error_as(del_checkpoint_get_tensor(&t, ck, "lwf_recorded"), fn);
        rows = del_dataset_size(tr->streams[DEL_STREAM_L].data);
        if (st == DEL_OK && (del_tensor_dtype(t) != DEL_DTYPE_F32 || del_tensor_ndim(t) != 2 ||
                             del_tensor_dim(t, 0) != rows || del_tensor_dim(t, 1) != s->old_classes))
            st = train_error(DEL_EINVAL, "%s: the checkpoint's recorded old-head outputs do not fit this trainer "
                             "(%lld images of %d classes)", fn, (long long)rows, s->old_classes);
        if (st == DEL_OK) {
            recorded = malloc((size_t)rows * (size_t)s->old_classes * sizeof *recorded);
            if (!recorded)
                st = train_error(DEL_ENOMEM, "%s: out of memory for the recorded outputs", fn);
            else
                memcpy(recorded, del_tensor_data(t), (size_t)rows * (size_t)s->old_classes * sizeof *recorded);
        }
        del_tensor_free(t);
    }
    if (st == DEL_OK && live && del_checkpoint_has_model(ck, "lwf_original")) {
        st = train_error_as(del_checkpoint_check_model(ck, "lwf_original", tr->model, NULL), fn);
        if (st == DEL_OK)
            st = train_error_as(del_checkpoint_get_model(&original, ck, "lwf_original"), fn);
        if (st == DEL_OK)
            st = del_model_set_training(original, 0);
    }
    if (st != DEL_OK) {
        free(recorded);
        del_model_free(original);
        return st;
    }
    free(s->recorded);
    s->recorded = recorded;
    s->recorded_rows = recorded ? rows : 0;
    del_model_free(s->original);
    s->original = original;
    s->temperature = temperature;
    s->lambda = lambda;
    s->no_t2 = (int)no_t2;
    s->warmup = warmup;
    s->live = (int)live;
    s->frozen = -1;
    return DEL_OK;
}

const del_objective del_objective_lwf = {
    /* .name       = */ "lwf",
    /* .streams    = */ 1u << DEL_STREAM_L,
    /* .state_size = */ sizeof(lwf_state),
    /* .init       = */ lwf_init,
    /* .release    = */ lwf_release,
    /* .begin_fit  = */ lwf_begin_fit,
    /* .step       = */ lwf_step,
    /* .save       = */ lwf_save,
    /* .load       = */ lwf_load,
};

/* Checks everything before the model changes. */
static del_status check_lwf_args(const del_model *model, const del_dataset *labeled, const char *old_head,
                                 const char *new_head, int num_classes, const char *fn)
{
    if (strlen(old_head) >= 32 || strlen(new_head) >= 32 || strcmp(old_head, new_head) == 0)
        return train_error(DEL_EINVAL, "%s: 'old_head' ('%s') and 'new_head' ('%s') must be two head names of at "
                           "most 31 characters", fn, old_head, new_head);
    if (del_model_num_heads(model) > 0 && del_model_head_index(model, old_head) != 0)
        return train_error(DEL_EINVAL, "%s: 'model' has no first head called '%s' (the old task's)", fn, old_head);
    if (del_model_head_index(model, new_head) >= 0)
        return train_error(DEL_EINVAL, "%s: 'model' already has a head called '%s'", fn, new_head);
    const int layers = del_model_num_layers(model);
    if (del_model_num_heads(model) == 0 && (layers < 2 || strcmp(del_model_layer_type(model, layers - 1), "linear")))
        return train_error(DEL_EINVAL, "%s: 'model' has no heads, so its last layer (the old task's classifier) must "
                           "be a linear layer after at least one other", fn);
    return del_check_new_task(model, labeled, num_classes, fn);
}

DEL_API del_status del_trainer_new_lwf(del_trainer **out, del_model *model, const del_dataset *labeled,
                                       const char *old_head, const char *new_head, int num_classes)
{
    static const char fn[] = "del_trainer_new_lwf";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    if (!old_head)
        return train_error_null(fn, "old_head");
    if (!new_head)
        return train_error_null(fn, "new_head");
    del_status st = check_lwf_args(model, labeled, old_head, new_head, num_classes, fn);
    if (st != DEL_OK)
        return st;
    if (del_model_num_heads(model) == 0)
        st = del_model_split_head(model, old_head, -1);
    char spec[32];
    snprintf(spec, sizeof spec, "linear %d", num_classes);
    if (st == DEL_OK)
        st = del_model_add_head(model, new_head, spec);
    del_trainer *tr = NULL;
    if (st == DEL_OK)
        st = del_trainer_create(&tr, &del_objective_lwf, model, fn);
    if (st == DEL_OK) {
        lwf_state *s = tr->state;
        snprintf(s->old_head, sizeof s->old_head, "%s", old_head);
        snprintf(s->new_head, sizeof s->new_head, "%s", new_head);
        snprintf(tr->task_head, sizeof tr->task_head, "%s", new_head);
        /* del_trainer_create read the first head's output: the old one. */
        s->old_classes = tr->num_outputs;
        tr->num_outputs = num_classes;
    }
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    return del_trainer_finish(out, tr, st, fn);
}

DEL_API del_status del_trainer_set_lwf_lambda(del_trainer *trainer, float lambda)
{
    static const char fn[] = "del_trainer_set_lwf_lambda";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_lwf, NULL, &state, "lambda", fn);
    if (st != DEL_OK)
        return st;
    lwf_state *s = state;
    if (!(lambda >= 0.0f) || !isfinite(lambda))
        return train_error(DEL_EINVAL, "%s: 'lambda' must be a finite value >= 0, got %g", fn, (double)lambda);
    s->lambda = lambda;
    return DEL_OK;
}

del_status del_lwf_set_temperature(del_trainer *tr, float temperature)
{
    lwf_state *s = tr->state;
    s->temperature = temperature;
    return DEL_OK;
}

del_status del_lwf_set_warmup(del_trainer *tr, int64_t steps)
{
    lwf_state *s = tr->state;
    s->warmup = steps;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_lwf_live_original(del_trainer *trainer, int live)
{
    static const char fn[] = "del_trainer_set_lwf_live_original";
    void *state = NULL;
    del_status st = del_trainer_state_of(trainer, &del_objective_lwf, NULL, &state, "live_original", fn);
    if (st != DEL_OK)
        return st;
    lwf_state *s = state;
    if (live != 0 && live != 1)
        return train_error(DEL_EINVAL, "%s: 'live' must be 0 or 1, got %d", fn, live);
    if (s->recorded || s->original || trainer->steps_done > 0)
        return train_error(DEL_ESTATE, "%s: the old head's targets are chosen before the first step", fn);
    s->live = live;
    return DEL_OK;
}

del_status del_lwf_set_t2(del_trainer *tr, int on)
{
    lwf_state *s = tr->state;
    s->no_t2 = !on;
    return DEL_OK;
}
