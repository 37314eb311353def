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

/* The trainer's settings, each checked by its setter. A checkpoint's
 * settings are checked on a copy (del_trainer_load_checkpoint) and applied
 * only when every one of them passed. */
typedef struct train_settings {
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
    int64_t total_steps;  /* 0: a fresh optimizer per fit */
    del_nonfinite nonfinite;
} train_settings;

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

    train_settings set;
    uint64_t seed;
    del_optimizer *opt;  /* kept across fits when total_steps > 0; NULL before the first */
    int64_t opt_params;  /* the model's parameter count when opt was made */

    del_progress_fn progress;
    int64_t every;
    void *user;

    int fitting; /* setters refuse to change a running fit */

    /* Non-finite steps: the model's buffers and parameters as they were
     * before the current step, restored when it goes non-finite. */
    int64_t skipped;     /* steps skipped since creation or set_seed */
    float *saved_buffers, *saved_params;
    int64_t saved_nbuf, saved_nparams;
};

/* DEL_ESTATE while a fit runs (the setters' first check), DEL_EINVAL for
 * a NULL trainer. */
del_status del_trainer_check_settable(const del_trainer *tr, const char *func);

/* The settings checks (trainer_settings.c): each checks its values and
 * writes them into s, or leaves s as it was and returns DEL_EINVAL with a
 * message starting with fn. */
del_status del_settings_sgd(train_settings *s, float lr, float momentum, float weight_decay, int nesterov,
                            const char *fn);
del_status del_settings_adamw(train_settings *s, float lr, float beta1, float beta2, float eps, float weight_decay,
                              const char *fn);
del_status del_settings_schedule(train_settings *s, del_schedule kind, const char *fn);
del_status del_settings_step_schedule(train_settings *s, int64_t step_size, float gamma, const char *fn);
del_status del_settings_warmup(train_settings *s, int64_t warmup_steps, const char *fn);
del_status del_settings_clip_norm(train_settings *s, float max_norm, const char *fn);
del_status del_settings_label_smoothing(train_settings *s, float smoothing, const char *fn);
del_status del_settings_total_steps(train_settings *s, int64_t total_steps, const char *fn);
del_status del_settings_normalize(train_settings *s, const float *mean, const float *std, int channels,
                                  const char *fn);
del_status del_settings_nonfinite(train_settings *s, del_nonfinite policy, const char *fn);

/* A new optimizer for `steps` steps (a fit's, or the run's total) of
 * model, from the settings s. */
del_status del_supervised_make_optimizer(del_model *model, const train_settings *s, int64_t steps,
                                         del_optimizer **out);

#endif
