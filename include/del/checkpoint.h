/* libdel — checkpoint records: several named models (each with its random
 * stream, parameter groups and, optionally, an optimizer's whole state),
 * named tensors and a trainer's record of named fields, written to and
 * read from one checkpoint file (docs/file-format.md, "Checkpoint files").
 * del_checkpoint_save / del_checkpoint_load (train.h) and the trainers'
 * del_trainer_save_checkpoint / del_trainer_load_checkpoint are written
 * on these calls.
 *
 * A del_checkpoint is one record in memory. Built by a writer (new, add,
 * set, then write) or read from a file or buffer; either kind can be
 * added to, written, inspected and restored from. Everything added is
 * copied at once: a model, optimizer or tensor may change or be freed
 * after it was added.
 *
 * Names (of models, tensors, fields and the trainer) are 1 to
 * DEL_CHECKPOINT_MAX_NAME characters from [A-Za-z0-9_.-] (every head name
 * fits, with room for a prefix); models, tensors and fields each have
 * their own names, so a model and a tensor may share one.
 *
 * Absent things: asking for a model, tensor or field the checkpoint does
 * not hold gives DEL_ESTATE (the message names it) and leaves the outputs
 * untouched, so an optional field reads as
 *   int64_t skipped = 0;  (a default)
 *   if (del_checkpoint_field_kind(ck, "skipped") != DEL_CHECKPOINT_KIND_NONE)
 *       st = del_checkpoint_get_i64(ck, "skipped", &skipped);
 *
 * Threading: a checkpoint is used by one thread at a time, except that
 * calls taking a const del_checkpoint * may run on several threads at
 * once; the models, optimizers and tensors a call reads or restores must
 * not be used by another thread during that call. */
#ifndef DEL_CHECKPOINT_H
#define DEL_CHECKPOINT_H

#include "common.h"
#include "tensor.h"
#include "model.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest name, in bytes. */
#define DEL_CHECKPOINT_MAX_NAME 64
/* The most models, tensors and trainer fields one checkpoint holds. */
#define DEL_CHECKPOINT_MAX_MODELS 64
#define DEL_CHECKPOINT_MAX_TENSORS 1024
#define DEL_CHECKPOINT_MAX_FIELDS 1024
/* The name of the model del_checkpoint_save and the trainers store, and of
 * the one model of a format-1 file. */
#define DEL_CHECKPOINT_MODEL "model"

/* The type of a trainer field (del_checkpoint_field_kind). */
typedef enum del_checkpoint_kind {
    DEL_CHECKPOINT_KIND_NONE = 0, /* no such field */
    DEL_CHECKPOINT_KIND_I64 = 1,
    DEL_CHECKPOINT_KIND_F32 = 2
} del_checkpoint_kind;

typedef struct del_checkpoint del_checkpoint;

/* ---- building and writing ---- */

/* Creates an empty checkpoint: no model, tensor, trainer or field. The
 * caller frees *out with del_checkpoint_free.
 * Errors: DEL_EINVAL (NULL out), DEL_ENOMEM. */
DEL_API del_status del_checkpoint_new(del_checkpoint **out);

/* Frees ck and everything it holds. del_checkpoint_free(NULL) is a no-op. */
DEL_API void del_checkpoint_free(del_checkpoint *ck);

/* Adds a copy of model under name: its architecture, parameters,
 * batchnorm statistics, random stream (dropout, stochastic depth) and
 * parameter groups (frozen layers, lr multipliers), as they are now.
 * Values that are not finite are kept here but refused by
 * del_checkpoint_write (a checkpoint is for resuming training).
 * Errors: DEL_EINVAL (NULL argument; a malformed name; a model of that
 * name already added; DEL_CHECKPOINT_MAX_MODELS models already), DEL_ENOMEM;
 * on error ck is unchanged. */
DEL_API del_status del_checkpoint_add_model(del_checkpoint *ck, const char *name, const del_model *model);

/* Adds a copy of opt's whole state (kind, hyper-parameters, schedule,
 * warm-up, clipping, step count, momentum or Adam buffers) to the model
 * added as model_name, which opt must have been made over. At most one
 * optimizer per model.
 * Errors: DEL_EINVAL (NULL argument; opt made over another model than
 * the one added as model_name, or, for a model read from a file, over a
 * model of another parameter or layer count; that model already has an
 * optimizer),
 * DEL_ESTATE (no model model_name; the model's parameter count changed
 * since opt was made, or since the model was added), DEL_ENOMEM; on error
 * ck is unchanged. */
DEL_API del_status del_checkpoint_add_optimizer(del_checkpoint *ck, const char *model_name, const del_optimizer *opt);

/* Adds a copy of t (f32, i32 or u8, any shape) under name; stored as it
 * is, NaN and infinity included.
 * Errors: DEL_EINVAL (NULL argument; a malformed name; a tensor of that
 * name already added; DEL_CHECKPOINT_MAX_TENSORS tensors already),
 * DEL_ENOMEM; on error ck is unchanged. */
DEL_API del_status del_checkpoint_add_tensor(del_checkpoint *ck, const char *name, const del_tensor *t);

/* Names the trainer whose record the fields are (e.g. "supervised");
 * NULL removes the name (the fields stay). A checkpoint with fields must
 * have a trainer name to be written.
 * Errors: DEL_EINVAL (NULL ck, a malformed name), DEL_ENOMEM. */
DEL_API del_status del_checkpoint_set_trainer(del_checkpoint *ck, const char *name);

/* Sets the trainer field key to an i64 (an f32: any bit pattern, NaN and
 * infinity included) value, replacing the field's value, and type, if key
 * is set already.
 * Errors: DEL_EINVAL (NULL argument, a malformed key,
 * DEL_CHECKPOINT_MAX_FIELDS fields already), DEL_ENOMEM; on error ck is
 * unchanged. */
DEL_API del_status del_checkpoint_set_i64(del_checkpoint *ck, const char *key, int64_t value);
DEL_API del_status del_checkpoint_set_f32(del_checkpoint *ck, const char *key, float value);

/* Writes ck to path as a checkpoint file: written to a temporary file
 * beside it and renamed, as del_model_save (symbolic links and temporary
 * files left by killed writers are handled as there). The file is format
 * 1, which libdel releases before this one read too, when ck fits it (one
 * model named DEL_CHECKPOINT_MODEL, no tensor, at most 64 fields, the
 * trainer's name and keys of [a-z0-9_]{1,32}), else format 2.
 * Errors: DEL_EINVAL (NULL argument, empty path), DEL_ESTATE (fields but
 * no trainer name), DEL_ENUMERIC (a model with a NaN or infinite parameter
 * or statistic: the message names the model and the first such layer;
 * del_model_save_flags with DEL_SAVE_ALLOW_NONFINITE keeps such a model for
 * inspection), DEL_EIO (cannot write path: the message names it and ends
 * with the system's reason), DEL_ENOMEM. */
DEL_API del_status del_checkpoint_write(const del_checkpoint *ck, const char *path);

/* The bytes del_checkpoint_write would write, in memory: *out receives
 * them (the caller frees them with del_buffer_free), *size their number.
 * Errors: as del_checkpoint_write without DEL_EIO (NULL out or size is
 * DEL_EINVAL); on error *out is NULL and *size 0. */
DEL_API del_status del_checkpoint_write_buffer(const del_checkpoint *ck, void **out, size_t *size);

/* ---- reading ---- */

/* Reads the checkpoint file at path (format 1 or 2, from any writer of
 * libdel: del_checkpoint_write, del_checkpoint_save,
 * del_trainer_save_checkpoint), checking every byte: sizes, offsets,
 * names, the embedded models, the optimizer states, the tensors. The
 * caller frees *out with del_checkpoint_free; *out is NULL on error.
 * Errors: DEL_EINVAL (NULL argument), DEL_EIO (cannot read path),
 * DEL_EFORMAT (not a checkpoint, a model file, written by a newer libdel,
 * truncated, checksum mismatch, corrupt: the message says which),
 * DEL_ENOMEM. */
DEL_API del_status del_checkpoint_read(del_checkpoint **out, const char *path);

/* del_checkpoint_read of the size bytes at data (data may be NULL only if
 * size is 0); the messages call the source '<buffer>'. The bytes are not
 * kept. Errors: as del_checkpoint_read without DEL_EIO. */
DEL_API del_status del_checkpoint_read_buffer(del_checkpoint **out, const void *data, size_t size);

/* The trainer's name (borrowed from ck, valid until ck changes or is
 * freed), or NULL when ck has none or is NULL. */
DEL_API const char *del_checkpoint_trainer(const del_checkpoint *ck);

/* The number of trainer fields (0 if ck is NULL), and the key of field i
 * (0-based, in the order they were first set or stored; borrowed, valid
 * until ck changes or is freed; NULL if i is out of range or ck NULL). */
DEL_API int del_checkpoint_num_fields(const del_checkpoint *ck);
DEL_API const char *del_checkpoint_field_name(const del_checkpoint *ck, int i);

/* The type of the field key: DEL_CHECKPOINT_KIND_NONE if ck holds no such
 * field (or ck or key is NULL). */
DEL_API del_checkpoint_kind del_checkpoint_field_kind(const del_checkpoint *ck, const char *key);

/* The value of the i64 (f32) field key into *value.
 * Errors: DEL_EINVAL (NULL argument), DEL_ESTATE (no field key, or a field
 * of the other type: the message says which); on error *value is
 * untouched. */
DEL_API del_status del_checkpoint_get_i64(const del_checkpoint *ck, const char *key, int64_t *value);
DEL_API del_status del_checkpoint_get_f32(const del_checkpoint *ck, const char *key, float *value);

/* The number of models (0 if ck is NULL) and the name of model i (in the
 * order they were added or stored; borrowed as del_checkpoint_field_name;
 * NULL if out of range). */
DEL_API int del_checkpoint_num_models(const del_checkpoint *ck);
DEL_API const char *del_checkpoint_model_name(const del_checkpoint *ck, int i);

/* 1 if ck holds a model called name, else 0 (also for NULL arguments). */
DEL_API int del_checkpoint_has_model(const del_checkpoint *ck, const char *name);

/* The kind of the optimizer state stored with model name: "sgd" or
 * "adamw" (static strings), or NULL when there is none (no such model, no
 * optimizer, a NULL argument). */
DEL_API const char *del_checkpoint_optimizer_type(const del_checkpoint *ck, const char *name);

/* Checks that the model stored as name can be restored into model and
 * opt (NULL: the stored optimizer state, if any, is ignored): the same
 * architecture (input shape, layer types, every setting, parameter and
 * state sizes, heads), opt made over model and of the kind stored. Changes
 * nothing. Restoring several models all or nothing: check each, then
 * restore each (see del_checkpoint_restore_model).
 * Errors: DEL_EINVAL (NULL ck, name or model; another architecture: the
 * message names the first difference; opt over another model, of another
 * kind, or given for a model stored without optimizer state), DEL_ESTATE
 * (no model name), DEL_ENOMEM. */
DEL_API del_status del_checkpoint_check_model(const del_checkpoint *ck, const char *name, const del_model *model,
                                              const del_optimizer *opt);

/* Restores the model stored as name into model: its parameters,
 * batchnorm statistics, random stream and parameter groups; and into opt
 * (NULL: the stored optimizer state is ignored) the whole stored state,
 * its settings included. All or nothing: it checks as
 * del_checkpoint_check_model first, and on any error model and opt are
 * unchanged. It fails after a successful check with the same arguments
 * only with DEL_ENOMEM when opt lacks a buffer the stored state has (an
 * SGD optimizer made without momentum restored from one with momentum):
 * an optimizer made with the stored kind and settings never does. ck is
 * not changed; it may restore into several models.
 * Errors: as del_checkpoint_check_model, and DEL_ENOMEM. */
DEL_API del_status del_checkpoint_restore_model(const del_checkpoint *ck, const char *name, del_model *model,
                                                del_optimizer *opt);

/* A new model rebuilt from the one stored as name, with its parameters,
 * batchnorm statistics, random stream and parameter groups, in training
 * mode (e.g. a teacher or a frozen copy the trainer keeps). The caller
 * frees *out with del_model_free; *out is NULL on error.
 * Errors: DEL_EINVAL (NULL argument), DEL_ESTATE (no model name),
 * DEL_ENOMEM. */
DEL_API del_status del_checkpoint_get_model(del_model **out, const del_checkpoint *ck, const char *name);

/* The number of tensors (0 if ck is NULL) and the name of tensor i (as
 * del_checkpoint_model_name). */
DEL_API int del_checkpoint_num_tensors(const del_checkpoint *ck);
DEL_API const char *del_checkpoint_tensor_name(const del_checkpoint *ck, int i);

/* A copy of the tensor stored as name (same type, shape and values) that
 * the caller frees with del_tensor_free; *out is NULL on error.
 * Errors: DEL_EINVAL (NULL argument), DEL_ESTATE (no tensor name),
 * DEL_ENOMEM. */
DEL_API del_status del_checkpoint_get_tensor(del_tensor **out, const del_checkpoint *ck, const char *name);

#ifdef __cplusplus
}
#endif
#endif
