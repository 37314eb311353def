/* The trainer's data streams: which dataset rows each draws from, its
 * batch order (a fresh permutation per epoch from (seed, epoch, the
 * stream's key)), its prefetched slots, and the fill that draws and
 * prepares one step's batches on the prefetch thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

static void free_slot(batch_slot *b)
{
    del_tensor_free(b->x);
    del_tensor_free(b->y);
    del_tensor_free(b->soft);
    del_tensor_free(b->x2);
    free(b->idx);
    free(b->epochs);
    memset(b, 0, sizeof *b);
}

static void free_slots(train_stream *st)
{
    for (int i = 0; i < st->nslots; i++)
        free_slot(&st->slots[i]);
    st->nslots = 0;
}

void del_stream_release(train_stream *st)
{
    free_slots(st);
    free(st->pool);
    free(st->perm);
    memset(st, 0, sizeof *st);
}

/* Third coordinates of the batch-order streams: they keep the orders apart
 * from each other and from the streams keyed by (seed, epoch, image index),
 * e.g. augmentation. The labeled stream's is the one the supervised trainer
 * always used. */
static const uint64_t order_keys[DEL_NSTREAMS] = {
    UINT64_C(0x6261746368),  /* "batch" */
    UINT64_C(0x756e6c6162),  /* "unlab" */
};

del_status del_stream_init(del_trainer *tr, int s, const del_dataset *data, int labeled, int batch, const char *arg,
                           const char *fn)
{
    train_stream *st = &tr->streams[s];
    if (del_dataset_channels(data) != tr->channels || del_dataset_height(data) != tr->height ||
        del_dataset_width(data) != tr->width)
        return train_error(DEL_EINVAL, "%s: the images of '%s' (%d x %d x %d) do not fit 'model' (input %d x %d x %d)",
                         fn, arg, del_dataset_channels(data), del_dataset_height(data), del_dataset_width(data),
                         tr->channels, tr->height, tr->width);
    const int64_t n = del_dataset_size(data);
    const int32_t *labels = del_dataset_labels(data);
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++)
        rows += !labeled || labels[i] >= 0;
    if (rows == 0)
        return train_error(DEL_EINVAL, "%s: '%s' has no %s image", fn, arg, labeled ? "labeled" : "");
    int64_t *pool = malloc((size_t)rows * sizeof *pool);
    int64_t *perm = malloc((size_t)rows * sizeof *perm);
    if (!pool || !perm) {
        free(pool);
        free(perm);
        return train_error(DEL_ENOMEM, "%s: out of memory for %lld indices", fn, (long long)rows);
    }
    for (int64_t i = 0, k = 0; i < n; i++)
        if (!labeled || labels[i] >= 0)
            pool[k++] = i;
    del_stream_release(st);
    st->data = data;
    st->labeled = labeled;
    st->order_key = order_keys[s];
    st->pool = pool;
    st->perm = perm;
    st->pool_n = rows;
    st->perm_epoch = -1;
    st->batch = rows < batch ? (int)rows : batch;
    return DEL_OK;
}

void del_streams_rewind(del_trainer *tr)
{
    for (int s = 0; s < DEL_NSTREAMS; s++) {
        train_stream *st = &tr->streams[s];
        st->order.epoch = 0;
        st->order.pos = 0;
        st->perm_epoch = -1;
    }
}

/* Makes n slots of st for its batch size, with soft or hard labels (or
 * none: soft < 0). */
static del_status ensure_slots(train_stream *st, int n, int soft, const del_trainer *tr, const char *func)
{
    const int view2 = st->aug2 != NULL;
    if (st->slot_batch != st->batch || st->slot_soft != soft || st->slot_view2 != view2)
        free_slots(st);
    st->slot_batch = st->batch;
    st->slot_soft = soft;
    st->slot_view2 = view2;
    const int64_t xshape[4] = {st->batch, tr->channels, tr->height, tr->width};
    const int64_t yshape[1] = {st->batch};
    const int64_t sshape[2] = {st->batch, tr->num_outputs};
    while (st->nslots < n) {
        batch_slot *b = &st->slots[st->nslots];
        del_status status = del_tensor_new(&b->x, DEL_DTYPE_F32, 4, xshape);
        if (status == DEL_OK && view2)
            status = del_tensor_new(&b->x2, DEL_DTYPE_F32, 4, xshape);
        if (status == DEL_OK && soft >= 0)
            status = soft ? del_tensor_new(&b->soft, DEL_DTYPE_F32, 2, sshape)
                          : del_tensor_new(&b->y, DEL_DTYPE_I32, 1, yshape);
        if (status == DEL_OK) {
            b->idx = malloc((size_t)st->batch * sizeof *b->idx);
            b->epochs = malloc((size_t)st->batch * sizeof *b->epochs);
            if (!b->idx || !b->epochs)
                status = train_error(DEL_ENOMEM, "%s: out of memory for a batch of %d", func, st->batch);
        }
        if (status != DEL_OK) {
            /* A slot is counted only once whole: a later call rebuilds it. */
            free_slot(b);
            return train_error(status, "%s: out of memory for a batch of %d", func, st->batch);
        }
        st->nslots++;
    }
    return DEL_OK;
}

del_status del_streams_ensure_slots(del_trainer *tr, int n, const char *fn)
{
    for (int s = 0; s < DEL_NSTREAMS; s++) {
        train_stream *st = &tr->streams[s];
        if (!st->data || !(tr->obj->streams & (1u << s)))
            continue;
        del_status status = ensure_slots(st, n, st->labeled ? st->aug != NULL : -1, tr, fn);
        if (status != DEL_OK)
            return status;
    }
    return DEL_OK;
}

/* Draws the next batch's dataset rows at *cur, and the epoch each one
 * belongs to: positions continue through the current epoch's permutation,
 * and a batch that reaches its end carries on into the next epoch's. Each
 * permutation depends only on (seed, epoch, the stream's key). */
static void draw_batch(train_stream *st, uint64_t seed, order_cursor *cur, int64_t *idx, int64_t *epochs)
{
    for (int i = 0; i < st->batch; i++) {
        if (cur->pos == st->pool_n) {
            cur->epoch++;
            cur->pos = 0;
        }
        if (st->perm_epoch != cur->epoch) {
            /* Cannot fail: perm holds pool_n >= 1 indices. */
            del_permutation(st->perm, st->pool_n, seed, (uint64_t)cur->epoch, st->order_key);
            st->perm_epoch = cur->epoch;
        }
        epochs[i] = cur->epoch;
        idx[i] = st->pool[st->perm[cur->pos++]];
    }
}

/* Runs on the producer thread during a fit, and is the only code then
 * touching the streams' draw cursors, permutations and the slot it is
 * given. */
del_status del_streams_fill(void *ctx, int slot, int64_t step)
{
    del_trainer *tr = ctx;
    for (int s = 0; s < DEL_NSTREAMS; s++) {
        train_stream *st = &tr->streams[s];
        if (!st->data || !(tr->obj->streams & (1u << s)))
            continue;
        batch_slot *b = &st->slots[slot];
        draw_batch(st, tr->seed, &st->draw, b->idx, b->epochs);
        b->after = st->draw;
        del_status status =
            st->aug ? del_augment_batch_epochs(st->aug, st->data, b->idx, b->epochs, st->batch,
                                               (uint64_t)b->epochs[0], (uint64_t)step, tr->set.mean, tr->set.std,
                                               b->x, NULL, b->soft, tr->num_outputs)
                    : del_dataset_batch(st->data, b->idx, st->batch, tr->set.mean, tr->set.std, b->x, b->y);
        if (status == DEL_OK && st->aug2)
            status = del_augment_batch_epochs(st->aug2, st->data, b->idx, b->epochs, st->batch,
                                              (uint64_t)b->epochs[0], (uint64_t)step, tr->set.mean, tr->set.std,
                                              b->x2, NULL, NULL, tr->num_outputs);
        if (status != DEL_OK)
            return status;
    }
    return DEL_OK;
}

del_status del_stream_check_pipeline(const del_trainer *tr, const del_augment *aug, const char *func,
                                     const char *arg)
{
    int oh = 0, ow = 0;
    del_status st = del_augment_output_size(aug, tr->height, tr->width, &oh, &ow);
    if (st != DEL_OK) {
        char why[TRAIN_ERROR_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return train_error(st, "%s: '%s' cannot run on the %d x %d images of the dataset (%s)", func, arg, tr->height,
                         tr->width, why);
    }
    if (oh != tr->height || ow != tr->width)
        return train_error(DEL_EINVAL, "%s: '%s' turns %d x %d images into %d x %d, but 'model' takes %d x %d x %d "
                         "(C x H x W) images", func, arg, tr->height, tr->width, oh, ow, tr->channels, tr->height,
                         tr->width);
    return DEL_OK;
}
