/* Internal: the checkpoint record of include/del/checkpoint.h, shared by
 * src/io/checkpoint.c (the public calls), checkpoint_file.c (the bytes
 * of formats 1 and 2) and checkpoint_restore.c (checking and restoring
 * models). */
#ifndef DEL_IO_CHECKPOINT_INTERNAL_H
#define DEL_IO_CHECKPOINT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "del/checkpoint.h"
#include "io/checkpoint.h"
#include "nn/optim_internal.h"

/* One stored model: a copy rebuilt from its model file, and what model
 * files leave out. */
typedef struct ckpt_model {
    char name[DEL_CHECKPOINT_MAX_NAME + 1];
    del_model *model;
    /* The model it was copied from, only compared with an optimizer's
     * model (never dereferenced); NULL for a model read from a file. */
    const del_model *origin;
    uint64_t seed;
    del_rng rng;
    uint8_t *frozen; /* one per layer */
    float *lr_mult;
    int has_opt;
    struct del_optimizer opt; /* model and ranges unused; owns state1/2 */
} ckpt_model;

typedef struct ckpt_tensor {
    char name[DEL_CHECKPOINT_MAX_NAME + 1];
    del_tensor *t;
} ckpt_tensor;

struct del_checkpoint {
    char *source; /* for messages: a path, "<buffer>" or "<new>" */
    ckpt_model *models;
    int n_models, cap_models;
    ckpt_tensor *tensors;
    int n_tensors, cap_tensors;
    char trainer[DEL_CHECKPOINT_MAX_NAME + 1];
    int has_trainer;
    del_ckpt_field *fields;
    int n_fields, cap_fields;
};

/* 1 if s is a name: [A-Za-z0-9_.-]{1,DEL_CHECKPOINT_MAX_NAME}. */
int ckpt_name_ok(const char *s);
/* 1 if s is a format-1 key: [a-z0-9_]{1,32}. */
int ckpt_v1_key_ok(const char *s);

/* Grows *items (of *cap elements of size bytes) to hold n + 1; 0 if out
 * of memory (then *items is unchanged). */
int ckpt_reserve(void **items, int *cap, int n, size_t size);

ckpt_model *ckpt_find_model(const del_checkpoint *ck, const char *name);
ckpt_tensor *ckpt_find_tensor(const del_checkpoint *ck, const char *name);
del_ckpt_field *ckpt_find_field(const del_checkpoint *ck, const char *key);
/* Frees what e holds (not e). */
void ckpt_model_clear(ckpt_model *e);

/* ck's bytes: format 1 when ck fits it, else 2 (docs/file-format.md).
 * Errors: DEL_ESTATE (fields without a trainer name), DEL_ENUMERIC (a
 * model not finite), DEL_ENOMEM, DEL_EINVAL (too large). */
del_status ckpt_serialize(const del_checkpoint *ck, const char *func, uint8_t **out, size_t *len);

/* Parses a whole file into the empty ck (source set); on failure ck
 * holds whatever was parsed (the caller frees it). Errors: DEL_EFORMAT,
 * DEL_ENOMEM. */
del_status ckpt_parse(del_checkpoint *ck, const uint8_t *file, size_t len, const char *func);

/* How messages call model e of ck: "'src'" when ck holds one model, else
 * "model 'name' of 'src'". */
void ckpt_describe(const del_checkpoint *ck, const ckpt_model *e, char *buf, size_t size);

/* Checks that e fits model and opt (NULL: ignored). Errors: DEL_EINVAL,
 * DEL_ENOMEM. */
del_status ckpt_check(const del_checkpoint *ck, const ckpt_model *e, const del_model *model,
                      const del_optimizer *opt, const char *func);

/* Applies a checked e to model and opt. steal: e's optimizer buffers are
 * moved into opt (e is then not restorable again) and nothing can fail;
 * else they are copied, into opt's own buffers or fresh ones allocated
 * first (DEL_ENOMEM, nothing changed). */
del_status ckpt_apply(ckpt_model *e, del_model *model, del_optimizer *opt, int steal, const char *func);

#endif
