/* The checkpoint record (include/del/checkpoint.h): building, reading and
 * inspecting it, and the calls written on it — del_checkpoint_save /
 * load (train.h) and, until the trainers use the record directly, the
 * del_ckpt_* wrappers of io/checkpoint.h. The bytes are in
 * checkpoint_file.c, checking and restoring models in
 * checkpoint_restore.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/checkpoint_internal.h"
#include "io/format.h"
#include "nn/model_internal.h"

/* ---- the record ---- */

int ckpt_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        const char c = s[n];
        if (n >= DEL_CHECKPOINT_MAX_NAME || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return n > 0;
}

int ckpt_v1_key_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= 32 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return 0;
    return n > 0;
}

int ckpt_reserve(void **items, int *cap, int n, size_t size)
{
    if (n < *cap)
        return 1;
    int grown = *cap ? 2 * *cap : 4;
    void *p = realloc(*items, (size_t)grown * size);
    if (!p)
        return 0;
    *items = p;
    *cap = grown;
    return 1;
}

ckpt_model *ckpt_find_model(const del_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n_models; i++)
        if (strcmp(ck->models[i].name, name) == 0)
            return &ck->models[i];
    return NULL;
}

ckpt_tensor *ckpt_find_tensor(const del_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i].name, name) == 0)
            return &ck->tensors[i];
    return NULL;
}

del_ckpt_field *ckpt_find_field(const del_checkpoint *ck, const char *key)
{
    for (int i = 0; i < ck->n_fields; i++)
        if (strcmp(ck->fields[i].key, key) == 0)
            return &ck->fields[i];
    return NULL;
}

void ckpt_model_clear(ckpt_model *e)
{
    del_model_free(e->model);
    free(e->frozen);
    free(e->lr_mult);
    free(e->opt.state1);
    free(e->opt.state2);
}

static del_status new_record(del_checkpoint **out, const char *source, const char *fn)
{
    del_checkpoint *ck = calloc(1, sizeof *ck);
    if (ck)
        ck->source = malloc(strlen(source) + 1);
    if (!ck || !ck->source) {
        free(ck);
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    }
    strcpy(ck->source, source);
    *out = ck;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_new(del_checkpoint **out)
{
    static const char fn[] = "del_checkpoint_new";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    return new_record(out, "<new>", fn);
}

DEL_API void del_checkpoint_free(del_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n_models; i++)
        ckpt_model_clear(&ck->models[i]);
    for (int i = 0; i < ck->n_tensors; i++)
        del_tensor_free(ck->tensors[i].t);
    free(ck->models);
    free(ck->tensors);
    free(ck->fields);
    free(ck->source);
    free(ck);
}

static del_status check_name(const char *name, const char *arg, const char *fn)
{
    if (!ckpt_name_ok(name))
        return del_error(DEL_EINVAL, "%s: '%s' must be 1 to %d characters of [A-Za-z0-9_.-], got \"%.80s\"", fn, arg,
                         DEL_CHECKPOINT_MAX_NAME, name);
    return DEL_OK;
}

/* ---- building ---- */

static del_status add_model(del_checkpoint *ck, const char *name, const del_model *model, const char *fn)
{
    del_status st = check_name(name, "name", fn);
    if (st != DEL_OK)
        return st;
    if (ckpt_find_model(ck, name))
        return del_error(DEL_EINVAL, "%s: the checkpoint has a model '%s' already", fn, name);
    if (ck->n_models >= DEL_CHECKPOINT_MAX_MODELS)
        return del_error(DEL_EINVAL, "%s: the checkpoint has %d models already, the most it holds", fn,
                         DEL_CHECKPOINT_MAX_MODELS);
    if (!ckpt_reserve((void **)&ck->models, &ck->cap_models, ck->n_models, sizeof *ck->models))
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    ckpt_model e = {0};
    /* A copy through the model file: what the checkpoint will hold. */
    void *file = NULL;
    size_t len = 0;
    st = del_model_save_buffer_flags(model, &file, &len, DEL_SAVE_ALLOW_NONFINITE);
    if (st == DEL_OK)
        st = del_model_load_buffer(&e.model, file, len);
    del_buffer_free(file);
    if (st != DEL_OK) {
        char why[DEL_ERROR_MSG_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: cannot copy the model (%s)", fn, why);
    }
    const size_t layers = (size_t)model->n_layers;
    e.frozen = malloc(layers ? layers : 1);
    e.lr_mult = malloc((layers ? layers : 1) * sizeof *e.lr_mult);
    if (!e.frozen || !e.lr_mult) {
        ckpt_model_clear(&e);
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    }
    for (size_t i = 0; i < layers; i++) {
        e.frozen[i] = (uint8_t)(model->groups[i].frozen != 0);
        e.lr_mult[i] = model->groups[i].lr_mult;
    }
    strcpy(e.name, name);
    e.origin = model;
    e.seed = model->seed;
    e.rng = model->rng;
    ck->models[ck->n_models++] = e;
    return DEL_OK;
}

static del_status add_optimizer(del_checkpoint *ck, const char *model_name, const del_optimizer *opt, const char *fn)
{
    ckpt_model *e = ckpt_find_model(ck, model_name);
    if (!e)
        return del_error(DEL_ESTATE, "%s: the checkpoint has no model \"%.80s\" (add it first with "
                         "del_checkpoint_add_model)", fn, model_name);
    if (e->has_opt)
        return del_error(DEL_EINVAL, "%s: model '%s' has an optimizer already", fn, model_name);
    if (e->origin && opt->model != e->origin)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for another model than the one added as '%s'", fn,
                         model_name);
    if (!e->origin && (opt->model->n_params != e->model->n_params || opt->model->n_layers != e->model->n_layers))
        return del_error(DEL_EINVAL, "%s: 'opt' was made for a model of another architecture than '%s'", fn,
                         model_name);
    if (opt->n != opt->model->n_params)
        return del_error(DEL_ESTATE, "%s: the model has %lld parameters, 'opt' was made for %lld (layers were "
                         "added or replaced since)", fn, (long long)opt->model->n_params, (long long)opt->n);
    if (opt->n != e->model->n_params)
        return del_error(DEL_ESTATE, "%s: model '%s' had %lld parameters when it was added, 'opt' was made for %lld",
                         fn, model_name, (long long)e->model->n_params, (long long)opt->n);
    struct del_optimizer o = *opt;
    o.model = NULL;
    o.ranges = NULL;
    o.num_ranges = o.ranges_cap = 0;
    o.state1 = o.state2 = NULL;
    const size_t bytes = (size_t)opt->n * sizeof(float);
    if ((opt->state1 && !(o.state1 = malloc(bytes))) || (opt->state2 && !(o.state2 = malloc(bytes)))) {
        free(o.state1);
        return del_error(DEL_ENOMEM, "%s: out of memory for optimizer buffers", fn);
    }
    if (opt->state1)
        memcpy(o.state1, opt->state1, bytes);
    if (opt->state2)
        memcpy(o.state2, opt->state2, bytes);
    e->opt = o;
    e->has_opt = 1;
    return DEL_OK;
}

static del_status set_trainer(del_checkpoint *ck, const char *name, const char *fn)
{
    if (!name) {
        ck->has_trainer = 0;
        return DEL_OK;
    }
    del_status st = check_name(name, "name", fn);
    if (st != DEL_OK)
        return st;
    strcpy(ck->trainer, name);
    ck->has_trainer = 1;
    return DEL_OK;
}

static del_status set_field(del_checkpoint *ck, const char *key, int kind, int64_t i, float f, const char *fn)
{
    del_status st = check_name(key, "key", fn);
    if (st != DEL_OK)
        return st;
    del_ckpt_field *slot = ckpt_find_field(ck, key);
    if (!slot) {
        if (ck->n_fields >= DEL_CHECKPOINT_MAX_FIELDS)
            return del_error(DEL_EINVAL, "%s: the checkpoint has %d fields already, the most it holds", fn,
                             DEL_CHECKPOINT_MAX_FIELDS);
        if (!ckpt_reserve((void **)&ck->fields, &ck->cap_fields, ck->n_fields, sizeof *ck->fields))
            return del_error(DEL_ENOMEM, "%s: out of memory", fn);
        slot = &ck->fields[ck->n_fields++];
        memset(slot, 0, sizeof *slot);
        strcpy(slot->key, key);
    }
    slot->kind = kind;
    slot->i = kind == DEL_CKPT_I64 ? i : 0;
    slot->f = kind == DEL_CKPT_F32 ? f : 0.0f;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_add_model(del_checkpoint *ck, const char *name, const del_model *model)
{
    static const char fn[] = "del_checkpoint_add_model";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    if (!model)
        return del_error_null(fn, "model");
    return add_model(ck, name, model, fn);
}

DEL_API del_status del_checkpoint_add_optimizer(del_checkpoint *ck, const char *model_name, const del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_add_optimizer";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!model_name)
        return del_error_null(fn, "model_name");
    if (!opt)
        return del_error_null(fn, "opt");
    return add_optimizer(ck, model_name, opt, fn);
}

DEL_API del_status del_checkpoint_add_tensor(del_checkpoint *ck, const char *name, const del_tensor *t)
{
    static const char fn[] = "del_checkpoint_add_tensor";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    if (!t)
        return del_error_null(fn, "t");
    del_status st = check_name(name, "name", fn);
    if (st != DEL_OK)
        return st;
    if (ckpt_find_tensor(ck, name))
        return del_error(DEL_EINVAL, "%s: the checkpoint has a tensor '%s' already", fn, name);
    if (ck->n_tensors >= DEL_CHECKPOINT_MAX_TENSORS)
        return del_error(DEL_EINVAL, "%s: the checkpoint has %d tensors already, the most it holds", fn,
                         DEL_CHECKPOINT_MAX_TENSORS);
    if (!ckpt_reserve((void **)&ck->tensors, &ck->cap_tensors, ck->n_tensors, sizeof *ck->tensors))
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    del_tensor *copy = NULL;
    st = del_tensor_copy(&copy, t);
    if (st != DEL_OK)
        return del_error(st, "%s: out of memory for a copy of 't'", fn);
    ckpt_tensor *slot = &ck->tensors[ck->n_tensors++];
    strcpy(slot->name, name);
    slot->t = copy;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_set_trainer(del_checkpoint *ck, const char *name)
{
    static const char fn[] = "del_checkpoint_set_trainer";
    if (!ck)
        return del_error_null(fn, "ck");
    return set_trainer(ck, name, fn);
}

DEL_API del_status del_checkpoint_set_i64(del_checkpoint *ck, const char *key, int64_t value)
{
    static const char fn[] = "del_checkpoint_set_i64";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!key)
        return del_error_null(fn, "key");
    return set_field(ck, key, DEL_CKPT_I64, value, 0.0f, fn);
}

DEL_API del_status del_checkpoint_set_f32(del_checkpoint *ck, const char *key, float value)
{
    static const char fn[] = "del_checkpoint_set_f32";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!key)
        return del_error_null(fn, "key");
    return set_field(ck, key, DEL_CKPT_F32, 0, value, fn);
}

/* ---- writing and reading ---- */

static del_status write_file(const del_checkpoint *ck, const char *path, const char *fn)
{
    del_status st = del_path_check(path, "path", fn);
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = ckpt_serialize(ck, fn, &file, &len);
    if (st == DEL_OK)
        st = del_file_write_atomic(path, file, len, fn);
    free(file);
    return st;
}

DEL_API del_status del_checkpoint_write(const del_checkpoint *ck, const char *path)
{
    static const char fn[] = "del_checkpoint_write";
    if (!ck)
        return del_error_null(fn, "ck");
    return write_file(ck, path, fn);
}

static del_status write_buffer(const del_checkpoint *ck, void **out, size_t *size, const char *fn)
{
    uint8_t *file = NULL;
    size_t len = 0;
    del_status st = ckpt_serialize(ck, fn, &file, &len);
    if (st != DEL_OK)
        return st;
    *out = file;
    *size = len;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_write_buffer(const del_checkpoint *ck, void **out, size_t *size)
{
    static const char fn[] = "del_checkpoint_write_buffer";
    if (out)
        *out = NULL;
    if (size)
        *size = 0;
    if (!ck)
        return del_error_null(fn, "ck");
    if (!out)
        return del_error_null(fn, "out");
    if (!size)
        return del_error_null(fn, "size");
    return write_buffer(ck, out, size, fn);
}

static del_status read_bytes(del_checkpoint **out, const uint8_t *data, size_t size, const char *source,
                             const char *fn)
{
    del_checkpoint *ck = NULL;
    del_status st = new_record(&ck, source, fn);
    if (st == DEL_OK)
        st = ckpt_parse(ck, data, size, fn);
    if (st != DEL_OK) {
        del_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return DEL_OK;
}

static del_status read_file(del_checkpoint **out, const char *path, const char *fn)
{
    uint8_t *file = NULL;
    size_t len = 0;
    del_status st = del_file_read(path, DEL_FORMAT_HEADER_SIZE + DEL_FORMAT_MAX_PAYLOAD, fn, &file, &len);
    if (st == DEL_OK)
        st = read_bytes(out, file, len, path, fn);
    free(file);
    return st;
}

DEL_API del_status del_checkpoint_read(del_checkpoint **out, const char *path)
{
    static const char fn[] = "del_checkpoint_read";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!path)
        return del_error_null(fn, "path");
    return read_file(out, path, fn);
}

DEL_API del_status del_checkpoint_read_buffer(del_checkpoint **out, const void *data, size_t size)
{
    static const char fn[] = "del_checkpoint_read_buffer";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!data && size > 0)
        return del_error_null(fn, "data");
    return read_bytes(out, data ? data : (const void *)"", size, "<buffer>", fn);
}

/* ---- inspecting ---- */

DEL_API const char *del_checkpoint_trainer(const del_checkpoint *ck)
{
    return ck && ck->has_trainer ? ck->trainer : NULL;
}

DEL_API int del_checkpoint_num_fields(const del_checkpoint *ck)
{
    return ck ? ck->n_fields : 0;
}

DEL_API const char *del_checkpoint_field_name(const del_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n_fields ? ck->fields[i].key : NULL;
}

DEL_API del_checkpoint_kind del_checkpoint_field_kind(const del_checkpoint *ck, const char *key)
{
    const del_ckpt_field *f = ck && key ? ckpt_find_field(ck, key) : NULL;
    return f ? (del_checkpoint_kind)f->kind : DEL_CHECKPOINT_KIND_NONE;
}

/* The field key of kind, or DEL_ESTATE naming what is there instead. */
static del_status get_field(const del_checkpoint *ck, const char *key, int kind, const del_ckpt_field **out,
                            const char *fn)
{
    static const char *const kinds[] = {"", "i64", "f32"};
    const del_ckpt_field *f = ckpt_find_field(ck, key);
    if (!f)
        return del_error(DEL_ESTATE, "%s: '%s' has no field \"%.80s\"", fn, ck->source, key);
    if (f->kind != kind)
        return del_error(DEL_ESTATE, "%s: field '%s' of '%s' is an %s, not an %s", fn, key, ck->source,
                         kinds[f->kind], kinds[kind]);
    *out = f;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_get_i64(const del_checkpoint *ck, const char *key, int64_t *value)
{
    static const char fn[] = "del_checkpoint_get_i64";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!key)
        return del_error_null(fn, "key");
    if (!value)
        return del_error_null(fn, "value");
    const del_ckpt_field *f = NULL;
    del_status st = get_field(ck, key, DEL_CKPT_I64, &f, fn);
    if (st == DEL_OK)
        *value = f->i;
    return st;
}

DEL_API del_status del_checkpoint_get_f32(const del_checkpoint *ck, const char *key, float *value)
{
    static const char fn[] = "del_checkpoint_get_f32";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!key)
        return del_error_null(fn, "key");
    if (!value)
        return del_error_null(fn, "value");
    const del_ckpt_field *f = NULL;
    del_status st = get_field(ck, key, DEL_CKPT_F32, &f, fn);
    if (st == DEL_OK)
        *value = f->f;
    return st;
}

DEL_API int del_checkpoint_num_models(const del_checkpoint *ck)
{
    return ck ? ck->n_models : 0;
}

DEL_API const char *del_checkpoint_model_name(const del_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n_models ? ck->models[i].name : NULL;
}

DEL_API int del_checkpoint_has_model(const del_checkpoint *ck, const char *name)
{
    return ck && name && ckpt_find_model(ck, name) != NULL;
}

DEL_API const char *del_checkpoint_optimizer_type(const del_checkpoint *ck, const char *name)
{
    const ckpt_model *e = ck && name ? ckpt_find_model(ck, name) : NULL;
    if (!e || !e->has_opt)
        return NULL;
    return e->opt.kind == DEL_OPTIM_ADAMW ? "adamw" : "sgd";
}

DEL_API int del_checkpoint_num_tensors(const del_checkpoint *ck)
{
    return ck ? ck->n_tensors : 0;
}

DEL_API const char *del_checkpoint_tensor_name(const del_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n_tensors ? ck->tensors[i].name : NULL;
}

DEL_API del_status del_checkpoint_get_tensor(del_tensor **out, const del_checkpoint *ck, const char *name)
{
    static const char fn[] = "del_checkpoint_get_tensor";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    const ckpt_tensor *t = ckpt_find_tensor(ck, name);
    if (!t)
        return del_error(DEL_ESTATE, "%s: '%s' has no tensor \"%.80s\"", fn, ck->source, name);
    del_status st = del_tensor_copy(out, t->t);
    return st == DEL_OK ? DEL_OK : del_error(st, "%s: out of memory for a copy of tensor '%s'", fn, name);
}

/* ---- restoring models ---- */

static del_status find_model(const del_checkpoint *ck, const char *name, ckpt_model **out, const char *fn)
{
    *out = ckpt_find_model(ck, name);
    if (!*out)
        return del_error(DEL_ESTATE, "%s: '%s' has no model \"%.80s\"", fn, ck->source, name);
    return DEL_OK;
}

DEL_API del_status del_checkpoint_check_model(const del_checkpoint *ck, const char *name, const del_model *model,
                                              const del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_check_model";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    if (!model)
        return del_error_null(fn, "model");
    ckpt_model *e = NULL;
    del_status st = find_model(ck, name, &e, fn);
    return st == DEL_OK ? ckpt_check(ck, e, model, opt, fn) : st;
}

DEL_API del_status del_checkpoint_restore_model(const del_checkpoint *ck, const char *name, del_model *model,
                                                del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_restore_model";
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    if (!model)
        return del_error_null(fn, "model");
    ckpt_model *e = NULL;
    del_status st = find_model(ck, name, &e, fn);
    if (st == DEL_OK)
        st = ckpt_check(ck, e, model, opt, fn);
    /* Copying (steal 0) leaves e as it is. */
    return st == DEL_OK ? ckpt_apply(e, model, opt, 0, fn) : st;
}

DEL_API del_status del_checkpoint_get_model(del_model **out, const del_checkpoint *ck, const char *name)
{
    static const char fn[] = "del_checkpoint_get_model";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!ck)
        return del_error_null(fn, "ck");
    if (!name)
        return del_error_null(fn, "name");
    ckpt_model *e = NULL;
    del_status st = find_model(ck, name, &e, fn);
    if (st != DEL_OK)
        return st;
    void *file = NULL;
    size_t len = 0;
    del_model *m = NULL;
    st = del_model_save_buffer_flags(e->model, &file, &len, DEL_SAVE_ALLOW_NONFINITE);
    if (st == DEL_OK)
        st = del_model_load_buffer(&m, file, len);
    del_buffer_free(file);
    if (st == DEL_OK)
        st = ckpt_apply(e, m, NULL, 0, fn);
    if (st != DEL_OK) {
        del_model_free(m);
        return del_error(st, "%s: out of memory for a copy of model '%s'", fn, name);
    }
    *out = m;
    return DEL_OK;
}

/* ---- del_checkpoint_save / load (train.h): model DEL_CHECKPOINT_MODEL ---- */

/* A record of model (as "model"), opt and, if trainer is not NULL, a
 * trainer record, for the calls below. */
static del_status record_of(del_checkpoint **out, const del_model *model, const del_optimizer *opt,
                            const char *trainer, const del_ckpt_field *fields, int n_fields, const char *fn)
{
    del_checkpoint *ck = NULL;
    del_status st = new_record(&ck, "<new>", fn);
    if (st == DEL_OK)
        st = add_model(ck, DEL_CHECKPOINT_MODEL, model, fn);
    if (st == DEL_OK && opt)
        st = add_optimizer(ck, DEL_CHECKPOINT_MODEL, opt, fn);
    if (st == DEL_OK && trainer)
        st = set_trainer(ck, trainer, fn);
    for (int i = 0; st == DEL_OK && i < n_fields; i++) {
        if (ckpt_find_field(ck, fields[i].key))
            st = del_error(DEL_EINVAL, "%s: trainer field '%s' given twice", fn, fields[i].key);
        else
            st = set_field(ck, fields[i].key, fields[i].kind, fields[i].i, fields[i].f, fn);
    }
    if (st != DEL_OK) {
        del_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return DEL_OK;
}

DEL_API del_status del_checkpoint_save(const char *path, const del_model *model, const del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_save";
    return del_ckpt_save(path, model, opt, NULL, NULL, 0, fn);
}

DEL_API del_status del_checkpoint_save_buffer(const del_model *model, const del_optimizer *opt, void **out,
                                              size_t *size)
{
    static const char fn[] = "del_checkpoint_save_buffer";
    if (out)
        *out = NULL;
    if (size)
        *size = 0;
    if (!model)
        return del_error_null(fn, "model");
    if (!out)
        return del_error_null(fn, "out");
    if (!size)
        return del_error_null(fn, "size");
    del_checkpoint *ck = NULL;
    del_status st = record_of(&ck, model, opt, NULL, NULL, 0, fn);
    if (st == DEL_OK)
        st = write_buffer(ck, out, size, fn);
    del_checkpoint_free(ck);
    return st;
}

/* The model DEL_CHECKPOINT_MODEL of ck, or DEL_EINVAL. */
static del_status legacy_model(const del_checkpoint *ck, ckpt_model **out, const char *fn)
{
    *out = ckpt_find_model(ck, DEL_CHECKPOINT_MODEL);
    if (!*out)
        return del_error(DEL_EINVAL, "%s: '%s' holds no model '%s' (it holds %d models; read it with "
                         "del_checkpoint_read)", fn, ck->source, DEL_CHECKPOINT_MODEL, ck->n_models);
    return DEL_OK;
}

/* Checks the record read (st: how reading went) against model and opt,
 * restores it and frees it: all or nothing. */
static del_status check_and_apply(del_checkpoint *ck, del_status st, del_model *model, del_optimizer *opt,
                                  const char *fn)
{
    ckpt_model *e = NULL;
    if (st == DEL_OK)
        st = legacy_model(ck, &e, fn);
    if (st == DEL_OK)
        st = ckpt_check(ck, e, model, opt, fn);
    if (st == DEL_OK)
        st = ckpt_apply(e, model, opt, 1, fn);
    del_checkpoint_free(ck);
    return st;
}

DEL_API del_status del_checkpoint_load(const char *path, del_model *model, del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_load";
    if (!path)
        return del_error_null(fn, "path");
    if (!model)
        return del_error_null(fn, "model");
    del_checkpoint *ck = NULL;
    del_status st = read_file(&ck, path, fn);
    return check_and_apply(ck, st, model, opt, fn);
}

DEL_API del_status del_checkpoint_load_buffer(const void *data, size_t size, del_model *model, del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_load_buffer";
    if (!data && size > 0)
        return del_error_null(fn, "data");
    if (!model)
        return del_error_null(fn, "model");
    del_checkpoint *ck = NULL;
    del_status st = read_bytes(&ck, data ? data : (const void *)"", size, "<buffer>", fn);
    return check_and_apply(ck, st, model, opt, fn);
}

/* ---- io/checkpoint.h, until the trainers use the calls above ---- */

del_status del_ckpt_save(const char *path, const del_model *model, const del_optimizer *opt, const char *trainer,
                         const del_ckpt_field *fields, int n_fields, const char *func)
{
    if (!path)
        return del_error_null(func, "path");
    if (!model)
        return del_error_null(func, "model");
    del_status st = del_path_check(path, "path", func);
    if (st != DEL_OK)
        return st;
    if (n_fields < 0 || n_fields > DEL_CKPT_MAX_FIELDS)
        return del_error(DEL_EINVAL, "%s: %d trainer fields, at most %d", func, n_fields, DEL_CKPT_MAX_FIELDS);
    del_checkpoint *ck = NULL;
    st = record_of(&ck, model, opt, trainer, fields, n_fields, func);
    if (st == DEL_OK)
        st = write_file(ck, path, func);
    del_checkpoint_free(ck);
    return st;
}

del_status del_ckpt_read(del_ckpt **out, const char *path, const char *func)
{
    *out = NULL;
    return read_file(out, path, func);
}

void del_ckpt_free(del_ckpt *c)
{
    del_checkpoint_free(c);
}

int del_ckpt_has_optimizer(const del_ckpt *c, int *adamw)
{
    const ckpt_model *e = ckpt_find_model(c, DEL_CHECKPOINT_MODEL);
    const int has = e && e->has_opt;
    if (adamw)
        *adamw = has && e->opt.kind == DEL_OPTIM_ADAMW;
    return has;
}

const char *del_ckpt_trainer(const del_ckpt *c)
{
    return del_checkpoint_trainer(c);
}

const del_ckpt_field *del_ckpt_field_get(const del_ckpt *c, const char *key, int kind)
{
    const del_ckpt_field *f = ckpt_find_field(c, key);
    return f && f->kind == kind ? f : NULL;
}

del_status del_ckpt_check(const del_ckpt *c, const del_model *model, const del_optimizer *opt, const char *func,
                          const char *name)
{
    (void)name; /* the record's own source, which is the same path */
    ckpt_model *e = NULL;
    del_status st = legacy_model(c, &e, func);
    return st == DEL_OK ? ckpt_check(c, e, model, opt, func) : st;
}

void del_ckpt_apply(del_ckpt *c, del_model *model, del_optimizer *opt)
{
    ckpt_model *e = ckpt_find_model(c, DEL_CHECKPOINT_MODEL);
    if (e)
        (void)ckpt_apply(e, model, opt, 1, "del_ckpt_apply"); /* stealing cannot fail */
}
