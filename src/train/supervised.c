/* The supervised objective: softmax cross-entropy (optionally
 * label-smoothed) on the labeled stream's batch, or soft cross-entropy on
 * the mixed labels a pipeline gives (CutMix, MixUp); with a teacher added
 * (del_trainer_add_teacher), blended with its distillation term. Its constructor, and
 * the setters of the labeled stream (batch size, pipelines, prefetch). */
#include <stdlib.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define DEFAULT_BATCH 64

static del_status supervised_init(void *state, del_trainer *tr, const char *fn)
{
    (void)state;
    const del_dataset *labeled = tr->streams[DEL_STREAM_L].data;
    const int64_t n = del_dataset_size(labeled);
    const int32_t *labels = del_dataset_labels(labeled);
    int32_t max_label = -1;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] > max_label)
            max_label = labels[i];
    if (max_label >= tr->num_outputs)
        return train_error(DEL_EINVAL, "%s: 'labeled' has label %d but 'model' has only %d outputs", fn, (int)max_label,
                         tr->num_outputs);
    return DEL_OK;
}

static void supervised_release(void *state)
{
    supervised_state *s = state;
    del_tensor_free(s->grad);
}

static del_status supervised_step(void *state, del_trainer *tr, const train_step_in *in, float *loss, const char *fn)
{
    (void)fn;
    supervised_state *s = state;
    const batch_slot *b = in->in[DEL_STREAM_L];
    del_status st = del_trainer_ensure_matrix(&s->grad, del_tensor_dim(b->x, 0), tr->num_outputs);
    if (st == DEL_OK)
        st = del_model_forward(in->model, b->x);
    if (st == DEL_OK)
        st = del_task_loss(tr, b, del_model_output(in->model), loss, s->grad);
    if (st == DEL_OK)
        st = del_model_backward(in->model, s->grad);
    return st;
}

const del_objective del_objective_supervised = {
    /* .name       = */ "supervised",
    /* .streams    = */ 1u << DEL_STREAM_L,
    /* .state_size = */ sizeof(supervised_state),
    /* .init       = */ supervised_init,
    /* .release    = */ supervised_release,
    /* .begin_fit  = */ NULL,
    /* .step       = */ supervised_step,
    /* .save       = */ NULL,
    /* .load       = */ NULL,
};

DEL_API del_status del_trainer_new_supervised(del_trainer **out, del_model *model, const del_dataset *labeled)
{
    static const char fn[] = "del_trainer_new_supervised";
    if (!out)
        return train_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return train_error_null(fn, "model");
    if (!labeled)
        return train_error_null(fn, "labeled");
    if (del_dataset_channels(labeled) > MAX_CHANNELS)
        return train_error(DEL_EINVAL, "%s: 'labeled' has %d channels, at most %d supported", fn,
                         del_dataset_channels(labeled), MAX_CHANNELS);
    del_trainer *tr = NULL;
    del_status st = del_trainer_create(&tr, &del_objective_supervised, model, fn);
    if (st == DEL_OK)
        st = del_stream_init(tr, DEL_STREAM_L, labeled, 1, DEFAULT_BATCH, "labeled", fn);
    return del_trainer_finish(out, tr, st, fn);
}

DEL_API del_status del_trainer_set_batch_size(del_trainer *trainer, int batch_size)
{
    static const char fn[] = "del_trainer_set_batch_size";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    train_stream *l = &trainer->streams[DEL_STREAM_L];
    if (!l->data)
        return train_error(DEL_EINVAL, "%s: the %s trainer has no labeled stream (see "
                           "del_trainer_set_unlabeled_batch_size)", fn, trainer->obj->name);
    if (batch_size < 1 || batch_size > l->pool_n)
        return train_error(DEL_EINVAL, "%s: 'batch_size' must be in 1..%lld (the labeled images), got %d", fn,
                         (long long)l->pool_n, batch_size);
    l->batch = batch_size;
    return DEL_OK;
}

DEL_API del_status del_trainer_set_unlabeled_batch_size(del_trainer *trainer, int batch_size)
{
    static const char fn[] = "del_trainer_set_unlabeled_batch_size";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    train_stream *u = &trainer->streams[DEL_STREAM_U];
    if (!u->data)
        return train_error(DEL_EINVAL, "%s: the %s trainer has no unlabeled stream", fn, trainer->obj->name);
    if (batch_size < 1 || batch_size > u->pool_n)
        return train_error(DEL_EINVAL, "%s: 'batch_size' must be in 1..%lld (the unlabeled images), got %d", fn,
                           (long long)u->pool_n, batch_size);
    u->batch = batch_size;
    return DEL_OK;
}

static del_status set_pipeline(del_trainer *tr, del_augment **field, del_augment *aug, const char *func)
{
    del_status st = del_trainer_check_settable(tr, func);
    if (st == DEL_OK && aug)
        st = del_stream_check_pipeline(tr, aug, func, "aug");
    if (st == DEL_OK)
        *field = aug;
    return st;
}

DEL_API del_status del_trainer_set_augment(del_trainer *trainer, del_augment *aug)
{
    return set_pipeline(trainer, trainer ? &trainer->streams[DEL_STREAM_L].aug : NULL, aug,
                        "del_trainer_set_augment");
}

DEL_API del_status del_trainer_set_augment_unlabeled(del_trainer *trainer, del_augment *aug)
{
    static const char fn[] = "del_trainer_set_augment_unlabeled";
    del_status st = set_pipeline(trainer, trainer ? &trainer->aug_unlabeled : NULL, aug, fn);
    if (st == DEL_OK && trainer->streams[DEL_STREAM_U].data)
        trainer->streams[DEL_STREAM_U].aug = aug;
    return st;
}

DEL_API del_status del_trainer_set_prefetch(del_trainer *trainer, int depth)
{
    static const char fn[] = "del_trainer_set_prefetch";
    del_status st = del_trainer_check_settable(trainer, fn);
    if (st != DEL_OK)
        return st;
    if (depth < 0 || depth > DEL_PREFETCH_MAX_DEPTH)
        return train_error(DEL_EINVAL, "%s: 'depth' must be in 0..%d (0: no prefetching), got %d", fn,
                         DEL_PREFETCH_MAX_DEPTH, depth);
    trainer->prefetch = depth;
    return DEL_OK;
}
