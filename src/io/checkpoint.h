/* Internal: checkpoint files (src/io/checkpoint.c), for the public
 * del_checkpoint_* calls and the trainers' del_trainer_*_checkpoint.
 *
 * A checkpoint holds a model file, the model's random stream and parameter
 * groups, optionally an optimizer's whole state and optionally a trainer
 * record: the trainer's name and named, typed fields that the trainer
 * writes and reads itself (checkpoint.c only checks their syntax).
 * docs/file-format.md has the layout.
 *
 * Trainers use only the public API and, for this one job, this header:
 * the container and the model and optimizer internals stay in io/ and nn/. */
#ifndef DEL_IO_CHECKPOINT_H
#define DEL_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "del/train.h"

#define DEL_CKPT_MAX_KEY 32
#define DEL_CKPT_MAX_FIELDS 64

enum { DEL_CKPT_I64 = 1, DEL_CKPT_F32 = 2 };

/* One trainer field: key [a-z0-9_]{1,32}, an i64 or an f32 (kind). */
typedef struct del_ckpt_field {
    char key[DEL_CKPT_MAX_KEY + 1];
    int kind;
    int64_t i;
    float f;
} del_ckpt_field;

/* A parsed checkpoint, not yet applied to anything. */
typedef struct del_ckpt del_ckpt;

/* The bytes of a checkpoint of model, opt (NULL: none; else made over
 * model) and a trainer record (trainer NULL: none) into *out (malloc'd, the
 * caller frees it). Errors: DEL_EINVAL (opt over another model), DEL_ESTATE
 * (the model's parameter count changed since opt was made), DEL_ENUMERIC
 * (a non-finite parameter or statistic: the message says how to keep the
 * model anyway), DEL_ENOMEM, and del_model_save_buffer's. */
del_status del_ckpt_serialize(const del_model *model, const del_optimizer *opt, const char *trainer,
                              const del_ckpt_field *fields, int n_fields, const char *func, uint8_t **out,
                              size_t *len);

/* del_ckpt_serialize written to path with del_file_write_atomic; an
 * empty path is refused first (DEL_EINVAL). */
del_status del_ckpt_save(const char *path, const del_model *model, const del_optimizer *opt, const char *trainer,
                         const del_ckpt_field *fields, int n_fields, const char *func);

/* Validates and parses a whole checkpoint file (len bytes; name is the
 * source for messages), including its embedded model. *out is NULL on
 * failure. Errors: DEL_EFORMAT (the message says what is wrong),
 * DEL_ENOMEM. */
del_status del_ckpt_parse(del_ckpt **out, const uint8_t *file, size_t len, const char *func, const char *name);

/* del_ckpt_parse of the file at path. Errors: also DEL_EIO. */
del_status del_ckpt_read(del_ckpt **out, const char *path, const char *func);

void del_ckpt_free(del_ckpt *c);

/* The model stored in c (borrowed from c). */
const del_model *del_ckpt_model(const del_ckpt *c);

/* 1 if c holds optimizer state; *adamw (if not NULL) receives its kind. */
int del_ckpt_has_optimizer(const del_ckpt *c, int *adamw);

/* The trainer's name, or NULL when c holds no trainer record. */
const char *del_ckpt_trainer(const del_ckpt *c);

/* The trainer field key of kind, or NULL if c has none (wrong kind
 * included). */
const del_ckpt_field *del_ckpt_field_get(const del_ckpt *c, const char *key, int kind);

/* Checks that c can be applied to model and opt (NULL: the optimizer
 * record, if any, is ignored): the same architecture (input, layer types,
 * settings and sizes, heads: del_model_check_same), opt made over model,
 * of the kind c holds. The message starts with func, names what differs
 * and ends with the checkpoint's name. Errors: DEL_EINVAL. */
del_status del_ckpt_check(const del_ckpt *c, const del_model *model, const del_optimizer *opt, const char *func,
                          const char *name);

/* Applies a checked c: the model's parameters, batchnorm state, random
 * stream and groups, and opt's (if not NULL) whole state. Cannot fail;
 * at most once per c (opt's buffers are exchanged with c's). */
void del_ckpt_apply(del_ckpt *c, del_model *model, del_optimizer *opt);

#endif
