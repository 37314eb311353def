/* Internal: the optimizer record, for the nn module and the checkpoint
 * format (src/io/checkpoint.c), which saves and restores it whole. */
#ifndef DEL_NN_OPTIM_INTERNAL_H
#define DEL_NN_OPTIM_INTERNAL_H

#include <stdint.h>

#include "del/train.h"

typedef enum del_optim_kind { DEL_OPTIM_SGD = 0, DEL_OPTIM_ADAMW = 1 } del_optim_kind;

/* A run of trainable parameters updated with lr * lr_scale. */
typedef struct del_optim_range {
    int64_t begin, count;
    float lr_scale;
} del_optim_range;

struct del_optimizer {
    del_model *model;
    int64_t n; /* parameter count when created */
    uint64_t layout_version; /* the model's, when created */
    del_optim_kind kind;
    /* SGD: momentum buffers (NULL without momentum), AdamW: first moments */
    float *state1;
    float *state2; /* AdamW: second moments; NULL for SGD */
    float base_lr, weight_decay;
    float momentum; /* SGD */
    int nesterov;   /* SGD */
    float beta1, beta2, eps; /* AdamW */
    /* Rebuilt from the model's groups when they changed (groups_version);
     * room for ranges_cap, grown when the model gained layers with
     * parameters. */
    del_optim_range *ranges;
    int num_ranges, ranges_cap;
    uint64_t groups_version; /* the model's, when the ranges were built */

    del_schedule schedule;
    int64_t total_steps; /* cosine: warm-up included */
    float final_lr;
    int64_t step_size; /* step schedule */
    float gamma;       /* step schedule */
    int64_t warmup;
    float clip_norm; /* 0 = off */
    double grad_norm; /* measured by the last step when clipping */
    int64_t step;
};

#endif
