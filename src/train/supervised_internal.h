/* Internal: the supervised trainer's record, shared by supervised.c (the
 * training loop and settings) and supervised_checkpoint.c (its
 * checkpoints). */
#ifndef DEL_TRAIN_SUPERVISED_INTERNAL_H
#define DEL_TRAIN_SUPERVISED_INTERNAL_H

#include "del.h"
#include "train/prefetch.h"

#define MAX_CHANNELS 3 /* of the images a trainer normalises */

/* A place in the batch order: the epoch and the next position in its
 * permutation (pool_n: the epoch is used up). */
typedef struct order_cursor {
    int64_t epoch;
    int64_t pos;
} order_cursor;

/* One prepared batch. */
typedef struct batch_slot {
    del_tensor *x;
    del_tensor *y;      /* i32 [batch] labels, without a pipeline */
    del_tensor *soft;   /* f32 [batch, outputs] soft labels, with one */
    int64_t *idx;
    int64_t *epochs;    /* the epoch each image was drawn in */
    order_cursor after; /* the order once this batch is drawn */
} batch_slot;

struct del_trainer {
    del_model *model;
    const del_dataset *data;
    int channels, height, width;
    int num_outputs;

    int64_t *pool;   /* dataset indices of the labeled images */
    int64_t pool_n;
    int64_t *perm;   /* permutation of epoch perm_epoch, as positions in pool */
    int64_t perm_epoch; /* -1: none yet */
    order_cursor order; /* after the last finished step */
    order_cursor draw;  /* the producer's, during a fit */
    int64_t steps_done; /* since creation or set_seed: the next batch number */

    int batch;
    del_tensor *grad;
    batch_slot slots[DEL_PREFETCH_MAX_SLOTS];
    int nslots;      /* allocated, for slot_batch images with slot_soft labels */
    int slot_batch, slot_soft;
    int prefetch;

    del_augment *aug, *aug_unlabeled;

    int use_adamw; /* else SGD; the adam_* fields are set with it */
    float lr, momentum, weight_decay;
    int nesterov;
    float adam_lr, beta1, beta2, adam_eps, adam_weight_decay;
    del_schedule schedule;
    int64_t step_size;
    float gamma;
    int64_t warmup;
    float clip_norm;
    float smoothing;
    float mean[MAX_CHANNELS], std[MAX_CHANNELS];
    uint64_t seed;
    int64_t total_steps; /* 0: a fresh optimizer per fit */
    del_optimizer *opt;  /* kept across fits when total_steps > 0; NULL before the first */
    int64_t opt_params;  /* the model's parameter count when opt was made */

    del_progress_fn progress;
    int64_t every;
    void *user;

    int fitting; /* setters refuse to change a running fit */
};

/* A new optimizer for `steps` steps (a fit's, or the run's total), from
 * the trainer's settings. */
del_status del_supervised_make_optimizer(const del_trainer *tr, int64_t steps, del_optimizer **out);

#endif
