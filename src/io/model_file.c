/* Model files: the architecture as self-describing layer records (a type
 * name and named, typed settings), then the parameters and the batchnorm
 * running statistics, in the container of io/format.h. docs/file-format.md
 * has the byte layout.
 *
 * A file describes the model through its public layer list and is rebuilt
 * with the public del_model_add_* calls, so it does not depend on how the
 * nn module lays out or fuses layers internally. Loading trusts nothing:
 * every count, size and setting is checked before it is used, and each
 * layer is first dry-run through its type's setup so that a hostile record
 * can never make the builders allocate more than the file could fill. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/format.h"
#include "io/model_file.h"
#include "nn/model_internal.h"

/* Version 2 added the avgpool, global_avgpool and residual records,
 * version 3 the heads section after the layer records. A file is written
 * with the oldest version that holds it, so models without those stay
 * readable by older readers. */
static const del_format model_format = {{'D', 'E', 'L', 'M'}, 3, "model"};
#define HEADS_SINCE 3

/* Sanity limits of the reader, far above any real model; they keep every
 * product of sizes inside int64 before the layer code sees it. */
#define MAX_LAYERS 4096
#define MAX_NAME 32
#define MAX_FIELDS 16
#define MAX_INPUT_SIDE (1 << 24)
#define MAX_ACTIVATION ((int64_t)1 << 31) /* floats per image after any layer */
#define MAX_SETTING (1 << 24)
#define MAX_KERNEL 4096

enum { FIELD_I32 = 1, FIELD_F32 = 2 };

/* One setting of a layer type: its key in the file, its type, where it
 * lives in del_layer_cfg, and the largest absolute value the reader
 * accepts for an integer. */
typedef struct field_def {
    const char *key;
    uint8_t kind;
    size_t off;
    int32_t max;
} field_def;

typedef struct layer_def {
    const char *name;
    const field_def *fields;
    int n_fields;
    /* Appends the layer through the public API. */
    del_status (*build)(del_model *m, const del_layer_cfg *c);
    /* The format version that introduced the type. */
    uint32_t since;
} layer_def;

static del_status build_conv2d(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_conv2d(m, c->out, c->kernel, c->stride, c->pad, c->bias);
}

static del_status build_linear(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_linear(m, c->out, c->bias);
}

static del_status build_batchnorm(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_batchnorm(m, c->eps, c->momentum);
}

static del_status build_relu(del_model *m, const del_layer_cfg *c)
{
    (void)c;
    return del_model_add_relu(m);
}

static del_status build_maxpool(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_maxpool(m, c->kernel, c->stride);
}

static del_status build_flatten(del_model *m, const del_layer_cfg *c)
{
    (void)c;
    return del_model_add_flatten(m);
}

static del_status build_dropout(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_dropout(m, c->p);
}

static del_status build_avgpool(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_avgpool(m, c->kernel, c->stride);
}

static del_status build_global_avgpool(del_model *m, const del_layer_cfg *c)
{
    (void)c;
    return del_model_add_global_avgpool(m);
}

static del_status build_residual(del_model *m, const del_layer_cfg *c)
{
    return del_model_add_residual(m, c->out, c->stride, c->survival);
}

#define INT_FIELD(key, member, max) {key, FIELD_I32, offsetof(del_layer_cfg, member), max}
#define F32_FIELD(key, member) {key, FIELD_F32, offsetof(del_layer_cfg, member), 0}

static const field_def conv2d_fields[] = {
    INT_FIELD("out", out, MAX_SETTING),       INT_FIELD("kernel", kernel, MAX_KERNEL),
    INT_FIELD("stride", stride, MAX_SETTING), INT_FIELD("pad", pad, MAX_KERNEL),
    INT_FIELD("bias", bias, 1),
};
static const field_def linear_fields[] = {
    INT_FIELD("out", out, MAX_SETTING),
    INT_FIELD("bias", bias, 1),
};
static const field_def batchnorm_fields[] = {
    F32_FIELD("eps", eps),
    F32_FIELD("momentum", momentum),
};
static const field_def maxpool_fields[] = {
    INT_FIELD("kernel", kernel, MAX_KERNEL),
    INT_FIELD("stride", stride, MAX_SETTING),
};
static const field_def dropout_fields[] = {
    F32_FIELD("p", p),
};
static const field_def avgpool_fields[] = {
    INT_FIELD("kernel", kernel, MAX_KERNEL),
    INT_FIELD("stride", stride, MAX_SETTING),
};
static const field_def residual_fields[] = {
    INT_FIELD("out", out, MAX_SETTING),
    INT_FIELD("stride", stride, MAX_SETTING),
    F32_FIELD("survival", survival),
};

#define LAYER_DEF(name, fields, build, since) {name, fields, (int)(sizeof fields / sizeof fields[0]), build, since}

/* Every layer type the format holds. A new type adds a row here and bumps
 * the format version (an older reader must refuse what it cannot build). */
static const layer_def layer_defs[] = {
    LAYER_DEF("conv2d", conv2d_fields, build_conv2d, 1),
    LAYER_DEF("linear", linear_fields, build_linear, 1),
    LAYER_DEF("batchnorm", batchnorm_fields, build_batchnorm, 1),
    {"relu", NULL, 0, build_relu, 1},
    LAYER_DEF("maxpool", maxpool_fields, build_maxpool, 1),
    {"flatten", NULL, 0, build_flatten, 1},
    LAYER_DEF("dropout", dropout_fields, build_dropout, 1),
    LAYER_DEF("avgpool", avgpool_fields, build_avgpool, 2),
    {"global_avgpool", NULL, 0, build_global_avgpool, 2},
    LAYER_DEF("residual", residual_fields, build_residual, 2),
};

static const layer_def *find_layer_def(const char *name)
{
    for (size_t i = 0; i < sizeof layer_defs / sizeof layer_defs[0]; i++)
        if (strcmp(layer_defs[i].name, name) == 0)
            return &layer_defs[i];
    return NULL;
}

/* ---- saving ---- */

static del_status write_layer(del_writer *w, const del_model *m, int i, const char *func)
{
    const char *name = del_model_layer_type(m, i);
    const layer_def *def = find_layer_def(name);
    if (!def)
        return del_error(DEL_EINVAL, "%s: layer %d ('%s') cannot be saved: the model file format "
                                     "does not know this layer type", func, i, name);
    /* The settings are read from the internal record of the same index; if
     * the nn module ever stops keeping one record per public layer, refuse
     * rather than write a file that rebuilds a different model. */
    const del_layer *l = &m->layers[i];
    if (strcmp(l->ops->name, name) != 0)
        return del_error(DEL_ESTATE, "%s: layer %d: internal record '%s' does not match '%s'", func, i,
                         l->ops->name, name);
    del_writer_str8(w, name);
    del_writer_u8(w, (uint8_t)def->n_fields);
    for (int k = 0; k < def->n_fields; k++) {
        const field_def *f = &def->fields[k];
        const char *src = (const char *)&l->cfg + f->off;
        del_writer_str8(w, f->key);
        del_writer_u8(w, f->kind);
        if (f->kind == FIELD_I32) {
            int v;
            memcpy(&v, src, sizeof v);
            del_writer_i32(w, v);
        } else {
            float v;
            memcpy(&v, src, sizeof v);
            del_writer_f32(w, v);
        }
    }
    return DEL_OK;
}

/* The whole file for model, in *out (malloc'd). */
static del_status serialize(const del_model *m, const char *func, uint8_t **out, size_t *len)
{
    del_writer w;
    del_writer_init(&w);
    del_status st = DEL_OK;
    del_writer_u32(&w, (uint32_t)m->in_c);
    del_writer_u32(&w, (uint32_t)m->in_h);
    del_writer_u32(&w, (uint32_t)m->in_w);
    int n = del_model_num_layers(m);
    del_writer_u32(&w, (uint32_t)n);
    del_format fmt = model_format;
    fmt.version = 1;
    for (int i = 0; i < n; i++) {
        st = write_layer(&w, m, i, func);
        if (st != DEL_OK)
            goto cleanup;
        uint32_t since = find_layer_def(del_model_layer_type(m, i))->since;
        if (since > fmt.version)
            fmt.version = since;
    }
    if (m->n_heads > 0) {
        fmt.version = HEADS_SINCE > fmt.version ? HEADS_SINCE : fmt.version;
        del_writer_u32(&w, (uint32_t)m->n_heads);
        for (int h = 0; h < m->n_heads; h++) {
            del_writer_str8(&w, m->heads[h].name);
            del_writer_u32(&w, (uint32_t)m->heads[h].count);
        }
    }
    del_writer_u64(&w, (uint64_t)m->n_params);
    del_writer_f32_array(&w, m->params, (size_t)m->n_params);
    del_writer_u64(&w, (uint64_t)m->n_state);
    del_writer_f32_array(&w, m->state, (size_t)m->n_state);
    if (w.oom) {
        st = del_error(DEL_ENOMEM, "%s: out of memory", func);
        goto cleanup;
    }
    st = del_format_pack(&fmt, w.data, w.len, func, out, len);
cleanup:
    del_writer_free(&w);
    return st;
}

/* The index of the first value of base[off..off+n) that is not finite,
 * or -1 (base may be NULL when n is 0: a model without state). */
static int64_t first_nonfinite(const float *base, int64_t off, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(base[off + k]))
            return k;
    return -1;
}

del_status del_model_check_finite(const del_model *m, const char *func, const char *advice)
{
    for (int i = 0; i < m->n_layers; i++) {
        const del_layer *l = &m->layers[i];
        const char *where = "parameters";
        int64_t k = first_nonfinite(m->params, l->param_off, l->n_params);
        float v = k >= 0 ? m->params[l->param_off + k] : 0.0f;
        if (k < 0) {
            where = "running statistics";
            k = first_nonfinite(m->state, l->state_off, l->n_state);
            v = k >= 0 ? m->state[l->state_off + k] : 0.0f;
        }
        if (k >= 0)
            return del_error(DEL_ENUMERIC, "%s: layer %d (%s) has %s in its %s%s", func, i,
                             del_model_layer_type(m, i), isnan(v) ? "NaN" : "infinity", where, advice);
    }
    return DEL_OK;
}

/* Checks flags and, unless they allow it, that the model is finite. */
static del_status check_save_flags(const del_model *m, int flags, const char *func, const char *flags_func)
{
    if (flags & ~DEL_SAVE_ALLOW_NONFINITE)
        return del_error(DEL_EINVAL, "%s: 'flags' must be DEL_SAVE_DEFAULT or DEL_SAVE_ALLOW_NONFINITE, got %d",
                         func, flags);
    if (flags & DEL_SAVE_ALLOW_NONFINITE)
        return DEL_OK;
    char advice[128];
    snprintf(advice, sizeof advice, " (to save it anyway, e.g. to inspect a diverged run, call %s with "
             "DEL_SAVE_ALLOW_NONFINITE)", flags_func);
    return del_model_check_finite(m, func, advice);
}

static del_status save_file(const del_model *model, const char *path, int flags, const char *fn)
{
    if (!model)
        return del_error_null(fn, "model");
    del_status st = del_path_check(path, "path", fn);
    if (st == DEL_OK)
        st = check_save_flags(model, flags, fn, "del_model_save_flags");
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = serialize(model, fn, &file, &len);
    if (st == DEL_OK)
        st = del_file_write_atomic(path, file, len, fn);
    free(file);
    return st;
}

DEL_API del_status del_model_save(const del_model *model, const char *path)
{
    return save_file(model, path, DEL_SAVE_DEFAULT, "del_model_save");
}

DEL_API del_status del_model_save_flags(const del_model *model, const char *path, int flags)
{
    return save_file(model, path, flags, "del_model_save_flags");
}

static del_status save_buffer(const del_model *model, void **out, size_t *size, int flags, const char *fn)
{
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
    del_status st = check_save_flags(model, flags, fn, "del_model_save_buffer_flags");
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = serialize(model, fn, &file, &len);
    if (st != DEL_OK)
        return st;
    *out = file;
    *size = len;
    return DEL_OK;
}

DEL_API del_status del_model_save_buffer(const del_model *model, void **out, size_t *size)
{
    return save_buffer(model, out, size, DEL_SAVE_DEFAULT, "del_model_save_buffer");
}

DEL_API del_status del_model_save_buffer_flags(const del_model *model, void **out, size_t *size, int flags)
{
    return save_buffer(model, out, size, flags, "del_model_save_buffer_flags");
}

DEL_API void del_buffer_free(void *buf)
{
    free(buf);
}

/* ---- loading ---- */

/* Turns the message of a failed layer check or builder ("func: 'kernel'
 * must be ...") into a corrupt-record error for the file. */
static del_status corrupt_record(const del_source *src, int i, const char *type)
{
    char why[DEL_ERROR_MSG_SIZE];
    const char *msg = del_last_error();
    size_t flen = strlen(src->func);
    if (strncmp(msg, src->func, flen) == 0 && strncmp(msg + flen, ": ", 2) == 0)
        msg += flen + 2;
    snprintf(why, sizeof why, "%s", msg);
    return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': %s", src->func, i, type,
                     src->name, why);
}

static int valid_name(const uint8_t *s, size_t n)
{
    if (n == 0 || n > MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static int64_t shape_numel_capped(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || (shape[k] > 0 && n > MAX_ACTIVATION / shape[k]))
            return -1;
        n *= shape[k];
    }
    return n;
}

/* Reads the settings of one record into cfg, checking keys, types and ranges. */
static del_status read_fields(del_reader *r, const del_source *src, int i, const layer_def *def,
                              del_layer_cfg *cfg)
{
    const char *fn = src->func, *name = src->name, *type = def->name;
    unsigned nf = del_reader_u8(r);
    if (nf > MAX_FIELDS)
        return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': %u settings (at most %d)",
                         fn, i, type, name, nf, MAX_FIELDS);
    uint32_t seen = 0;
    for (unsigned j = 0; j < nf; j++) {
        size_t klen = del_reader_u8(r);
        const uint8_t *key = del_reader_take(r, klen);
        uint8_t kind = del_reader_u8(r);
        uint32_t bits = del_reader_u32(r);
        if (r->overrun)
            return del_error(DEL_EFORMAT, "%s: '%s' is truncated in layer record %d", fn, name, i);
        int k = 0;
        while (k < def->n_fields &&
               !(strlen(def->fields[k].key) == klen && memcmp(def->fields[k].key, key, klen) == 0))
            k++;
        if (k == def->n_fields) {
            if (valid_name(key, klen))
                return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': unknown setting '%.*s'",
                                 fn, i, type, name, (int)klen, (const char *)key);
            return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': malformed setting name",
                             fn, i, type, name);
        }
        const field_def *f = &def->fields[k];
        if (seen & (1u << k))
            return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': '%s' given twice", fn,
                             i, type, name, f->key);
        seen |= 1u << k;
        if (kind != f->kind)
            return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': '%s' has type %u, expected %u",
                             fn, i, type, name, f->key, (unsigned)kind, (unsigned)f->kind);
        char *dst = (char *)cfg + f->off;
        if (f->kind == FIELD_I32) {
            int32_t v;
            memcpy(&v, &bits, sizeof v);
            if (v > f->max || v < -f->max)
                return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': '%s' = %d is "
                                              "outside -%d..%d", fn, i, type, name, f->key, (int)v,
                                 (int)f->max, (int)f->max);
            int iv = v;
            memcpy(dst, &iv, sizeof iv);
        } else {
            float v;
            memcpy(&v, &bits, sizeof v);
            if (!isfinite(v))
                return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': '%s' is not finite",
                                 fn, i, type, name, f->key);
            memcpy(dst, &v, sizeof v);
        }
    }
    for (int k = 0; k < def->n_fields; k++)
        if (!(seen & (1u << k)))
            return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': missing setting '%s'",
                             fn, i, type, name, def->fields[k].key);
    return DEL_OK;
}

/* A parsed layer record, built once the heads section is read. */
typedef struct layer_record {
    const layer_def *def;
    const del_layer_ops *ops;
    del_layer_cfg cfg;
} layer_record;

/* Parses layer record i into rec. */
static del_status read_layer(del_reader *r, const del_source *src, int i, layer_record *rec)
{
    const char *fn = src->func, *name = src->name;
    size_t nlen = del_reader_u8(r);
    const uint8_t *tname = del_reader_take(r, nlen);
    if (r->overrun)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated in layer record %d", fn, name, i);
    if (!valid_name(tname, nlen))
        return del_error(DEL_EFORMAT, "%s: corrupt layer record %d in '%s': malformed layer type name",
                         fn, i, name);
    char type[MAX_NAME + 1];
    memcpy(type, tname, nlen);
    type[nlen] = '\0';
    const layer_def *def = find_layer_def(type);
    const del_layer_ops *ops = def ? del_layer_find(type) : NULL;
    if (!ops)
        return del_error(DEL_EFORMAT, "%s: corrupt layer record %d in '%s': unknown layer type '%s'", fn,
                         i, name, type);
    memset(rec, 0, sizeof *rec);
    rec->def = def;
    rec->ops = ops;
    return read_fields(r, src, i, def, &rec->cfg);
}

/* Appends the layer of record i to m; room is the number of floats the
 * rest of the payload can hold. */
static del_status build_layer(const layer_record *rec, const del_source *src, int i, int64_t room, del_model *m)
{
    const char *fn = src->func, *name = src->name, *type = rec->def->name;
    const del_layer_ops *ops = rec->ops;
    del_layer_cfg cfg = rec->cfg;
    /* Dry run: the layer's own shape and size checks, without allocating. */
    del_layer probe;
    memset(&probe, 0, sizeof probe);
    probe.ops = ops;
    probe.cfg = cfg;
    del_model_next_shape(m, &probe.in_ndim, probe.in_shape);
    if (ops->setup(&probe, fn) != DEL_OK)
        return corrupt_record(src, i, type);
    if (shape_numel_capped(probe.out_ndim, probe.out_shape) < 0)
        return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': output of more than "
                                      "%lld values per image", fn, i, type, name, (long long)MAX_ACTIVATION);
    /* Every float of the model is stored after the records (plus two u64
     * counts), so a model that needs more than the bytes left is corrupt. */
    if (probe.n_params + probe.n_state > room - m->n_params - m->n_state)
        return del_error(DEL_EFORMAT, "%s: corrupt layer record %d (%s) in '%s': %lld values do not fit "
                                      "in the rest of the file", fn, i, type, name,
                         (long long)(probe.n_params + probe.n_state));
    del_status st = rec->def->build(m, &cfg);
    if (st == DEL_ENOMEM)
        return st;
    if (st != DEL_OK)
        return corrupt_record(src, i, type);
    return DEL_OK;
}

static del_status read_floats(del_reader *r, const del_source *src, const char *what, float *dst,
                              int64_t want)
{
    uint64_t n = del_reader_u64(r);
    if (r->overrun)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated before the %s", src->func, src->name, what);
    if (n != (uint64_t)want)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt: it holds %llu %s, its layers need %lld",
                         src->func, src->name, (unsigned long long)n, what, (long long)want);
    if (!del_reader_f32_array(r, dst, (size_t)n))
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated in the %s", src->func, src->name, what);
    return DEL_OK;
}

/* An entry of the heads section. */
typedef struct head_record {
    char name[DEL_HEAD_NAME_MAX + 1];
    uint32_t count;
} head_record;

/* Reads the heads section (version 3) into *out (*n_out entries; NULL if
 * none), checking every name and count against the n_layers records. */
static del_status read_heads(del_reader *r, const del_source *src, uint32_t n_layers, head_record **out,
                             uint32_t *n_out)
{
    const char *fn = src->func, *name = src->name;
    *out = NULL;
    *n_out = 0;
    uint32_t n = del_reader_u32(r);
    if (r->overrun)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated in the heads section", fn, name);
    if (n > n_layers)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt: %u heads for %u layers", fn, name, (unsigned)n,
                         (unsigned)n_layers);
    if (n == 0)
        return DEL_OK;
    head_record *heads = calloc(n, sizeof *heads);
    if (!heads)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    uint64_t total = 0;
    for (uint32_t h = 0; h < n; h++) {
        size_t nlen = del_reader_u8(r);
        const uint8_t *s = del_reader_take(r, nlen);
        uint32_t count = del_reader_u32(r);
        del_status st = DEL_OK;
        if (r->overrun) {
            st = del_error(DEL_EFORMAT, "%s: '%s' is truncated in head %u", fn, name, (unsigned)h);
        } else if (nlen < 1 || nlen > DEL_HEAD_NAME_MAX || memchr(s, '\0', nlen)) {
            st = del_error(DEL_EFORMAT, "%s: corrupt head %u in '%s': malformed name", fn, (unsigned)h, name);
        } else {
            memcpy(heads[h].name, s, nlen);
            heads[h].count = count;
            if (!del_model_head_name_valid(heads[h].name))
                st = del_error(DEL_EFORMAT, "%s: corrupt head %u in '%s': malformed name", fn, (unsigned)h, name);
            for (uint32_t g = 0; g < h && st == DEL_OK; g++)
                if (strcmp(heads[g].name, heads[h].name) == 0)
                    st = del_error(DEL_EFORMAT, "%s: corrupt head %u in '%s': the name '%s' is used twice", fn,
                                   (unsigned)h, name, heads[h].name);
            if (st == DEL_OK && count < 1)
                st = del_error(DEL_EFORMAT, "%s: corrupt head %u ('%s') in '%s': it has no layers", fn,
                               (unsigned)h, heads[h].name, name);
            total += count;
            if (st == DEL_OK && total > n_layers)
                st = del_error(DEL_EFORMAT, "%s: '%s' is corrupt: its heads have more layers than its %u "
                                            "layer records", fn, name, (unsigned)n_layers);
        }
        if (st != DEL_OK) {
            free(heads);
            return st;
        }
    }
    *out = heads;
    *n_out = n;
    return DEL_OK;
}

static del_status parse_model(const uint8_t *payload, size_t len, uint32_t version, const del_source *src,
                              del_model **out)
{
    const char *fn = src->func, *name = src->name;
    del_model *m = NULL;
    layer_record *records = NULL;
    head_record *heads = NULL;
    uint32_t n_heads = 0;
    del_status st = DEL_OK;
    del_reader r;
    del_reader_init(&r, payload, len);
    uint32_t dims[3];
    for (int k = 0; k < 3; k++)
        dims[k] = del_reader_u32(&r);
    uint32_t n_layers = del_reader_u32(&r);
    if (r.overrun)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated in the input shape", fn, name);
    int64_t in_shape[3];
    for (int k = 0; k < 3; k++) {
        if (dims[k] < 1 || dims[k] > MAX_INPUT_SIDE)
            return del_error(DEL_EFORMAT, "%s: '%s' is corrupt: input size %u is outside 1..%d", fn, name,
                             (unsigned)dims[k], MAX_INPUT_SIDE);
        in_shape[k] = dims[k];
    }
    if (shape_numel_capped(3, in_shape) < 0)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt: input %ux%ux%u has more than %lld values",
                         fn, name, (unsigned)dims[0], (unsigned)dims[1], (unsigned)dims[2],
                         (long long)MAX_ACTIVATION);
    if (n_layers > MAX_LAYERS)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt: %u layers (at most %d)", fn, name,
                         (unsigned)n_layers, MAX_LAYERS);
    st = del_model_new(&m, (int)dims[0], (int)dims[1], (int)dims[2]);
    if (st != DEL_OK)
        goto cleanup;
    /* The records first: where the heads start is only known after them. */
    records = malloc((n_layers > 0 ? n_layers : 1) * sizeof *records);
    if (!records) {
        st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    for (int i = 0; i < (int)n_layers; i++) {
        st = read_layer(&r, src, i, &records[i]);
        if (st != DEL_OK)
            goto cleanup;
    }
    if (version >= HEADS_SINCE) {
        st = read_heads(&r, src, n_layers, &heads, &n_heads);
        if (st != DEL_OK)
            goto cleanup;
    }
    size_t left = del_reader_left(&r);
    int64_t room = left >= 16 ? (int64_t)((left - 16) / 4) : 0;
    uint32_t next_head = 0, head_start = n_layers;
    for (uint32_t h = 0; h < n_heads; h++)
        head_start -= heads[h].count;
    for (int i = 0; i < (int)n_layers; i++) {
        if (next_head < n_heads && (uint32_t)i == head_start) {
            st = del_model_begin_head(m, heads[next_head].name, fn);
            if (st != DEL_OK)
                goto cleanup;
            head_start += heads[next_head++].count;
        }
        st = build_layer(&records[i], src, i, room, m);
        if (st != DEL_OK)
            goto cleanup;
    }
    del_model_end_head(m);
    st = read_floats(&r, src, "parameters", m->params, m->n_params);
    if (st != DEL_OK)
        goto cleanup;
    st = read_floats(&r, src, "state values", m->state, m->n_state);
    if (st != DEL_OK)
        goto cleanup;
    if (del_reader_left(&r) != 0) {
        st = del_error(DEL_EFORMAT, "%s: '%s' is corrupt: %zu unexpected bytes after the state", fn,
                       name, del_reader_left(&r));
        goto cleanup;
    }
    *out = m;
    m = NULL;
cleanup:
    del_model_free(m);
    free(records);
    free(heads);
    return st;
}

static del_status load_bytes(del_model **out, const uint8_t *file, size_t len, const del_source *src)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    uint32_t version = 0;
    del_status st = del_format_unpack(&model_format, src, file, len, &version, &payload, &plen);
    if (st == DEL_OK)
        st = parse_model(payload, plen, version, src, out);
    free(payload);
    return st;
}

DEL_API del_status del_model_load(del_model **out, const char *path)
{
    static const char fn[] = "del_model_load";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!path)
        return del_error_null(fn, "path");
    uint8_t *file = NULL;
    size_t len = 0;
    del_status st = del_file_read(path, DEL_FORMAT_HEADER_SIZE + DEL_FORMAT_MAX_PAYLOAD, fn, &file, &len);
    if (st == DEL_OK) {
        del_source src = {fn, path};
        st = load_bytes(out, file, len, &src);
    }
    free(file);
    return st;
}

DEL_API del_status del_model_load_buffer(del_model **out, const void *data, size_t size)
{
    static const char fn[] = "del_model_load_buffer";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!data && size > 0)
        return del_error_null(fn, "data");
    del_source src = {fn, "<buffer>"};
    return load_bytes(out, data ? data : "", size, &src);
}
