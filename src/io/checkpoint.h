/* Internal, on its way out: the calls src/train/trainer_checkpoint.c
 * makes today, kept as thin wrappers over the public checkpoint record
 * (include/del/checkpoint.h) until the trainers are ported to it. New
 * code uses the public calls.
 *
 * A del_ckpt is a del_checkpoint; these calls address its model
 * DEL_CHECKPOINT_MODEL ("model") and its trainer record. */
#ifndef DEL_IO_CHECKPOINT_H
#define DEL_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "del/checkpoint.h"

#define DEL_CKPT_MAX_KEY DEL_CHECKPOINT_MAX_NAME
#define DEL_CKPT_MAX_FIELDS 64 /* of one del_ckpt_save call */

enum { DEL_CKPT_I64 = DEL_CHECKPOINT_KIND_I64, DEL_CKPT_F32 = DEL_CHECKPOINT_KIND_F32 };

/* One trainer field: a key (a checkpoint name), an i64 or an f32 (kind). */
typedef struct del_ckpt_field {
    char key[DEL_CKPT_MAX_KEY + 1];
    int kind;
    int64_t i;
    float f;
} del_ckpt_field;

typedef struct del_checkpoint del_ckpt;

/* Writes model as "model", opt (NULL: none; else made over model) and a
 * trainer record (trainer NULL: none) to path, as del_checkpoint_write;
 * messages start with func. Errors: as del_checkpoint_save, and DEL_EINVAL
 * (n_fields out of 0..DEL_CKPT_MAX_FIELDS, a malformed or repeated key). */
del_status del_ckpt_save(const char *path, const del_model *model, const del_optimizer *opt, const char *trainer,
                         const del_ckpt_field *fields, int n_fields, const char *func);

/* del_checkpoint_read with messages of func. */
del_status del_ckpt_read(del_ckpt **out, const char *path, const char *func);

void del_ckpt_free(del_ckpt *c);

/* 1 if c's model "model" has optimizer state; *adamw (if not NULL)
 * receives whether it is AdamW's. */
int del_ckpt_has_optimizer(const del_ckpt *c, int *adamw);

/* The trainer's name, or NULL when c holds no trainer record. */
const char *del_ckpt_trainer(const del_ckpt *c);

/* The trainer field key of kind, or NULL if c has none (wrong kind
 * included). */
const del_ckpt_field *del_ckpt_field_get(const del_ckpt *c, const char *key, int kind);

/* del_checkpoint_check_model of "model" with messages of func about the
 * source name. Errors: DEL_EINVAL (also: no model "model"), DEL_ENOMEM. */
del_status del_ckpt_check(const del_ckpt *c, const del_model *model, const del_optimizer *opt, const char *func,
                          const char *name);

/* Applies a checked c to model and opt: cannot fail; at most once per c
 * (opt's buffers are taken from c's). */
void del_ckpt_apply(del_ckpt *c, del_model *model, del_optimizer *opt);

#endif
