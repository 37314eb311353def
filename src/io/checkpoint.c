/* Checkpoint files: a model file, the model's random stream and groups,
 * an optimizer's whole state and a trainer's record, in the container of
 * io/format.h, so that training resumed from one continues bit for bit.
 * docs/file-format.md has the byte layout.
 *
 * The model travels as a whole model file (del_model_save_buffer), so the
 * architecture is described, checked and rebuilt by the model format's own
 * code; the loader compares the rebuilt model with the one it loads into.
 * Loading is two-phase: del_ckpt_parse checks every byte and keeps
 * everything in the del_ckpt, del_ckpt_check compares it with the target,
 * and only then del_ckpt_apply, which cannot fail, changes anything. */
#include "io/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/format.h"
#include "io/model_file.h"
#include "nn/model_internal.h"
#include "nn/optim_internal.h"

static const del_format ckpt_format = {{'D', 'E', 'L', 'C'}, 1, "checkpoint"};

/* Sections, in this order; the optimizer and trainer ones are optional. */
static const char TAG_MODEL[4] = {'M', 'O', 'D', 'L'};
static const char TAG_MODEL_STATE[4] = {'M', 'S', 'T', 'A'};
static const char TAG_OPTIMIZER[4] = {'O', 'P', 'T', 'M'};
static const char TAG_TRAINER[4] = {'T', 'R', 'N', 'R'};

/* Counters and sizes beyond this are corrupt (far above any real run, far
 * below int64 overflow in the schedule's arithmetic). */
#define MAX_COUNT ((uint64_t)1 << 62)

struct del_ckpt {
    del_model *model; /* rebuilt from the embedded model file */
    uint64_t seed;
    del_rng rng;
    uint8_t *frozen; /* one per layer */
    float *lr_mult;
    int has_opt;
    struct del_optimizer opt; /* model and ranges unused; owns state1/2 */
    char trainer[DEL_CKPT_MAX_KEY + 1];
    int has_trainer;
    del_ckpt_field fields[DEL_CKPT_MAX_FIELDS];
    int n_fields;
};

/* ---- writing ---- */

static void begin_section(del_writer *w, const char tag[4], size_t *size_at)
{
    del_writer_bytes(w, tag, 4);
    *size_at = w->len;
    del_writer_u64(w, 0);
}

/* Patches the section's size once its content is written. */
static void end_section(del_writer *w, size_t size_at)
{
    if (w->oom)
        return;
    uint64_t size = (uint64_t)(w->len - size_at - 8);
    for (int i = 0; i < 8; i++)
        w->data[size_at + (size_t)i] = (uint8_t)(size >> (8 * i));
}

static void write_model_state(del_writer *w, const del_model *m)
{
    del_writer_u64(w, m->seed);
    for (int i = 0; i < 4; i++)
        del_writer_u64(w, m->rng.s[i]);
    del_writer_u32(w, (uint32_t)m->n_layers);
    for (int i = 0; i < m->n_layers; i++) {
        del_writer_u8(w, (uint8_t)(m->groups[i].frozen != 0));
        del_writer_f32(w, m->groups[i].lr_mult);
    }
}

static void write_optimizer(del_writer *w, const del_optimizer *o)
{
    del_writer_u8(w, (uint8_t)o->kind);
    del_writer_u64(w, (uint64_t)o->n);
    del_writer_f32(w, o->base_lr);
    del_writer_f32(w, o->weight_decay);
    del_writer_f32(w, o->momentum);
    del_writer_u8(w, (uint8_t)(o->nesterov != 0));
    del_writer_f32(w, o->beta1);
    del_writer_f32(w, o->beta2);
    del_writer_f32(w, o->eps);
    del_writer_u8(w, (uint8_t)o->schedule);
    del_writer_u64(w, (uint64_t)o->total_steps);
    del_writer_f32(w, o->final_lr);
    del_writer_u64(w, (uint64_t)o->step_size);
    del_writer_f32(w, o->gamma);
    del_writer_u64(w, (uint64_t)o->warmup);
    del_writer_f32(w, o->clip_norm);
    uint64_t bits;
    memcpy(&bits, &o->grad_norm, sizeof bits);
    del_writer_u64(w, bits);
    del_writer_u64(w, (uint64_t)o->step);
    uint8_t buffers = (uint8_t)((o->state1 != NULL) + (o->state2 != NULL));
    del_writer_u8(w, buffers);
    if (o->state1)
        del_writer_f32_array(w, o->state1, (size_t)o->n);
    if (o->state2)
        del_writer_f32_array(w, o->state2, (size_t)o->n);
}

static void write_trainer(del_writer *w, const char *trainer, const del_ckpt_field *fields, int n_fields)
{
    del_writer_str8(w, trainer);
    del_writer_u32(w, (uint32_t)n_fields);
    for (int i = 0; i < n_fields; i++) {
        del_writer_str8(w, fields[i].key);
        del_writer_u8(w, (uint8_t)fields[i].kind);
        if (fields[i].kind == DEL_CKPT_F32) {
            uint32_t bits;
            memcpy(&bits, &fields[i].f, sizeof bits);
            del_writer_u64(w, bits);
        } else {
            del_writer_u64(w, (uint64_t)fields[i].i);
        }
    }
}

del_status del_ckpt_serialize(const del_model *model, const del_optimizer *opt, const char *trainer,
                              const del_ckpt_field *fields, int n_fields, const char *func, uint8_t **out,
                              size_t *len)
{
    *out = NULL;
    *len = 0;
    if (opt && opt->model != model)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for another model than 'model'", func);
    if (opt && opt->n != model->n_params)
        return del_error(DEL_ESTATE, "%s: the model has %lld parameters, 'opt' was made for %lld (layers were "
                         "added or replaced since)", func, (long long)model->n_params, (long long)opt->n);
    /* Internal callers only: the trainers' records are fixed lists. */
    if (n_fields < 0 || n_fields > DEL_CKPT_MAX_FIELDS)
        return del_error(DEL_EINVAL, "%s: %d trainer fields, at most %d", func, n_fields, DEL_CKPT_MAX_FIELDS);

    /* Training cannot resume from NaN or infinite values: refused, with
     * the way to keep such a model anyway. */
    del_status st = del_model_check_finite(model, func, "; a checkpoint could not resume training from it (to keep "
                                           "the model for inspection, save it with del_model_save_flags and "
                                           "DEL_SAVE_ALLOW_NONFINITE)");
    if (st != DEL_OK)
        return st;
    void *mfile = NULL;
    size_t mlen = 0;
    st = del_model_save_buffer_flags(model, &mfile, &mlen, DEL_SAVE_ALLOW_NONFINITE);
    if (st != DEL_OK) {
        char why[DEL_ERROR_MSG_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: cannot save the model (%s)", func, why);
    }
    del_writer w;
    del_writer_init(&w);
    size_t at = 0;
    del_writer_u32(&w, 2u + (opt != NULL) + (trainer != NULL));
    begin_section(&w, TAG_MODEL, &at);
    del_writer_bytes(&w, mfile, mlen);
    end_section(&w, at);
    del_buffer_free(mfile);
    begin_section(&w, TAG_MODEL_STATE, &at);
    write_model_state(&w, model);
    end_section(&w, at);
    if (opt) {
        begin_section(&w, TAG_OPTIMIZER, &at);
        write_optimizer(&w, opt);
        end_section(&w, at);
    }
    if (trainer) {
        begin_section(&w, TAG_TRAINER, &at);
        write_trainer(&w, trainer, fields, n_fields);
        end_section(&w, at);
    }
    if (w.oom) {
        del_writer_free(&w);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    st = del_format_pack(&ckpt_format, w.data, w.len, func, out, len);
    del_writer_free(&w);
    return st;
}

del_status del_ckpt_save(const char *path, const del_model *model, const del_optimizer *opt, const char *trainer,
                         const del_ckpt_field *fields, int n_fields, const char *func)
{
    del_status st = del_path_check(path, "path", func);
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = del_ckpt_serialize(model, opt, trainer, fields, n_fields, func, &file, &len);
    if (st == DEL_OK)
        st = del_file_write_atomic(path, file, len, func);
    free(file);
    return st;
}

/* ---- reading ---- */

void del_ckpt_free(del_ckpt *c)
{
    if (!c)
        return;
    del_model_free(c->model);
    free(c->frozen);
    free(c->lr_mult);
    free(c->opt.state1);
    free(c->opt.state2);
    free(c);
}

static del_status corrupt(const del_source *src, const char *what)
{
    return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (%s)", src->func, src->name, what);
}

static del_status truncated(const del_source *src, const char *section)
{
    return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (the %s section is cut short)", src->func, src->name,
                     section);
}

static int finite_ge0(float x)
{
    return x >= 0.0f && isfinite(x);
}

static int finite_gt0(float x)
{
    return x > 0.0f && isfinite(x);
}

static del_status parse_model_state(del_ckpt *c, del_reader *r, const del_source *src)
{
    c->seed = del_reader_u64(r);
    uint64_t any = 0;
    for (int i = 0; i < 4; i++)
        any |= c->rng.s[i] = del_reader_u64(r);
    uint32_t layers = del_reader_u32(r);
    if (r->overrun)
        return truncated(src, "model state");
    if (any == 0)
        return corrupt(src, "the model's random stream is all zeros");
    if (layers != (uint32_t)c->model->n_layers)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (model state for %u layers, the model has %d)", src->func,
                         src->name, (unsigned)layers, c->model->n_layers);
    if (del_reader_left(r) != (size_t)layers * 5)
        return del_reader_left(r) < (size_t)layers * 5 ? truncated(src, "model state")
                                                       : corrupt(src, "bytes after the model state");
    c->frozen = malloc(layers ? layers : 1);
    c->lr_mult = malloc((layers ? layers : 1) * sizeof *c->lr_mult);
    if (!c->frozen || !c->lr_mult)
        return del_error(DEL_ENOMEM, "%s: out of memory", src->func);
    for (uint32_t i = 0; i < layers; i++) {
        c->frozen[i] = del_reader_u8(r);
        c->lr_mult[i] = del_reader_f32(r);
        if (c->frozen[i] > 1 || !finite_gt0(c->lr_mult[i]))
            return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (parameter group of layer %u)", src->func, src->name,
                             (unsigned)i);
    }
    return DEL_OK;
}

/* An optimizer's fields and buffers, checked as its constructors and
 * setters check them, so a restored optimizer is one they could make. */
static del_status parse_optimizer(del_ckpt *c, del_reader *r, const del_source *src)
{
    struct del_optimizer *o = &c->opt;
    uint8_t kind = del_reader_u8(r);
    uint64_t n = del_reader_u64(r);
    o->base_lr = del_reader_f32(r);
    o->weight_decay = del_reader_f32(r);
    o->momentum = del_reader_f32(r);
    uint8_t nesterov = del_reader_u8(r);
    o->beta1 = del_reader_f32(r);
    o->beta2 = del_reader_f32(r);
    o->eps = del_reader_f32(r);
    uint8_t schedule = del_reader_u8(r);
    uint64_t total = del_reader_u64(r);
    o->final_lr = del_reader_f32(r);
    uint64_t step_size = del_reader_u64(r);
    o->gamma = del_reader_f32(r);
    uint64_t warmup = del_reader_u64(r);
    o->clip_norm = del_reader_f32(r);
    uint64_t norm_bits = del_reader_u64(r);
    uint64_t step = del_reader_u64(r);
    uint8_t buffers = del_reader_u8(r);
    if (r->overrun)
        return truncated(src, "optimizer");
    if (kind > DEL_OPTIM_ADAMW)
        return corrupt(src, "unknown optimizer kind");
    o->kind = (del_optim_kind)kind;
    if (n != (uint64_t)c->model->n_params)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (optimizer state for %llu parameters, the model has %lld)",
                         src->func, src->name, (unsigned long long)n, (long long)c->model->n_params);
    o->n = (int64_t)n;
    memcpy(&o->grad_norm, &norm_bits, sizeof o->grad_norm);
    int ok = finite_gt0(o->base_lr) && finite_ge0(o->weight_decay) && schedule <= DEL_SCHEDULE_STEP &&
             total >= 1 && total <= MAX_COUNT && finite_ge0(o->final_lr) && step_size >= 1 &&
             step_size <= MAX_COUNT && finite_gt0(o->gamma) && warmup <= MAX_COUNT && finite_ge0(o->clip_norm) &&
             isfinite(o->grad_norm) && o->grad_norm >= 0.0 && step <= MAX_COUNT;
    int want_buffers;
    if (o->kind == DEL_OPTIM_SGD) {
        ok = ok && o->momentum >= 0.0f && o->momentum < 1.0f && nesterov <= 1 && !(nesterov && o->momentum == 0.0f);
        want_buffers = o->momentum > 0.0f;
    } else {
        ok = ok && o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f && finite_gt0(o->eps) &&
             nesterov == 0;
        want_buffers = 2;
    }
    if (!ok)
        return corrupt(src, "optimizer settings out of range");
    if (buffers != want_buffers)
        return corrupt(src, "wrong number of optimizer buffers");
    o->nesterov = nesterov;
    o->schedule = (del_schedule)schedule;
    o->total_steps = (int64_t)total;
    o->step_size = (int64_t)step_size;
    o->warmup = (int64_t)warmup;
    o->step = (int64_t)step;
    /* The parameters were read already, so n floats are known to fit in
     * memory; the buffers must fill the rest of the section exactly. */
    if (del_reader_left(r) / 4 != n * buffers || del_reader_left(r) % 4 != 0)
        return del_reader_left(r) / 4 < n * buffers ? truncated(src, "optimizer")
                                                    : corrupt(src, "bytes after the optimizer buffers");
    for (int b = 0; b < buffers; b++) {
        float *buf = malloc((size_t)n * sizeof *buf);
        if (!buf)
            return del_error(DEL_ENOMEM, "%s: out of memory for optimizer buffers of %llu floats", src->func,
                             (unsigned long long)n);
        *(b == 0 ? &o->state1 : &o->state2) = buf;
        del_reader_f32_array(r, buf, (size_t)n);
    }
    c->has_opt = 1;
    return DEL_OK;
}

/* [a-z0-9_]{1,32} into dst (NUL-terminated); 0 if malformed or cut short. */
static int read_key(del_reader *r, char dst[DEL_CKPT_MAX_KEY + 1])
{
    size_t n = del_reader_u8(r);
    const uint8_t *s = del_reader_take(r, n);
    if (!s || n < 1 || n > DEL_CKPT_MAX_KEY)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 1;
}

static del_status parse_trainer(del_ckpt *c, del_reader *r, const del_source *src)
{
    if (!read_key(r, c->trainer))
        return r->overrun ? truncated(src, "trainer") : corrupt(src, "malformed trainer name");
    uint32_t count = del_reader_u32(r);
    if (r->overrun)
        return truncated(src, "trainer");
    if (count > DEL_CKPT_MAX_FIELDS)
        return corrupt(src, "too many trainer fields");
    for (uint32_t i = 0; i < count; i++) {
        del_ckpt_field *f = &c->fields[i];
        if (!read_key(r, f->key))
            return r->overrun ? truncated(src, "trainer") : corrupt(src, "malformed trainer field name");
        f->kind = del_reader_u8(r);
        uint64_t v = del_reader_u64(r);
        if (r->overrun)
            return truncated(src, "trainer");
        if (f->kind == DEL_CKPT_I64) {
            f->i = (int64_t)v;
        } else if (f->kind == DEL_CKPT_F32 && v <= UINT32_MAX) {
            uint32_t bits = (uint32_t)v;
            memcpy(&f->f, &bits, sizeof f->f);
        } else {
            return corrupt(src, "malformed trainer field");
        }
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(c->fields[k].key, f->key) == 0)
                return corrupt(src, "repeated trainer field");
    }
    if (del_reader_left(r) != 0)
        return corrupt(src, "bytes after the trainer record");
    c->n_fields = (int)count;
    c->has_trainer = 1;
    return DEL_OK;
}

/* The next section's content as a reader of its own; 0 (with the error
 * set) if the tag is not `tag` or the size overruns the payload. */
static del_status next_section(del_reader *payload, const char tag[4], const char *what, const del_source *src,
                               del_reader *out)
{
    const uint8_t *t = del_reader_take(payload, 4);
    uint64_t size = del_reader_u64(payload);
    if (payload->overrun)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (the %s section is missing or cut short)", src->func,
                         src->name, what);
    if (memcmp(t, tag, 4) != 0)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (expected the %s section)", src->func, src->name, what);
    if (size > del_reader_left(payload))
        return truncated(src, what);
    del_reader_init(out, del_reader_take(payload, (size_t)size), (size_t)size);
    return DEL_OK;
}

static del_status parse_payload(del_ckpt *c, const uint8_t *p, size_t len, const del_source *src)
{
    del_reader r;
    del_reader_init(&r, p, len);
    uint32_t count = del_reader_u32(&r);
    if (r.overrun)
        return corrupt(src, "empty payload");
    if (count < 2 || count > 4)
        return corrupt(src, "section count");
    del_reader sec;
    del_status st = next_section(&r, TAG_MODEL, "model", src, &sec);
    if (st != DEL_OK)
        return st;
    del_model *m = NULL;
    st = del_model_load_buffer(&m, sec.data, sec.len);
    if (st != DEL_OK) {
        char why[DEL_ERROR_MSG_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: '%s' holds a damaged model (%s)", src->func, src->name, why);
    }
    c->model = m;
    st = next_section(&r, TAG_MODEL_STATE, "model state", src, &sec);
    if (st == DEL_OK)
        st = parse_model_state(c, &sec, src);
    /* The optional sections, in order: peek at the tag. */
    for (uint32_t i = 2; st == DEL_OK && i < count; i++) {
        const uint8_t *t = del_reader_left(&r) >= 4 ? r.data + r.pos : NULL;
        if (t && !c->has_opt && !c->has_trainer && memcmp(t, TAG_OPTIMIZER, 4) == 0) {
            st = next_section(&r, TAG_OPTIMIZER, "optimizer", src, &sec);
            if (st == DEL_OK)
                st = parse_optimizer(c, &sec, src);
        } else {
            st = next_section(&r, TAG_TRAINER, "trainer", src, &sec);
            if (st == DEL_OK && c->has_trainer)
                st = corrupt(src, "two trainer sections");
            if (st == DEL_OK)
                st = parse_trainer(c, &sec, src);
        }
    }
    if (st == DEL_OK && del_reader_left(&r) != 0)
        st = corrupt(src, "bytes after the last section");
    return st;
}

del_status del_ckpt_parse(del_ckpt **out, const uint8_t *file, size_t len, const char *func, const char *name)
{
    *out = NULL;
    const del_source src = {func, name};
    uint32_t version = 0;
    uint8_t *payload = NULL;
    size_t plen = 0;
    del_status st = del_format_unpack(&ckpt_format, &src, file, len, &version, &payload, &plen);
    if (st != DEL_OK)
        return st;
    del_ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        free(payload);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    st = parse_payload(c, payload, plen, &src);
    free(payload);
    if (st != DEL_OK) {
        del_ckpt_free(c);
        return st;
    }
    *out = c;
    return DEL_OK;
}

del_status del_ckpt_read(del_ckpt **out, const char *path, const char *func)
{
    *out = NULL;
    uint8_t *file = NULL;
    size_t len = 0;
    del_status st = del_file_read(path, DEL_FORMAT_HEADER_SIZE + DEL_FORMAT_MAX_PAYLOAD, func, &file, &len);
    if (st != DEL_OK)
        return st;
    st = del_ckpt_parse(out, file, len, func, path);
    free(file);
    return st;
}

const del_model *del_ckpt_model(const del_ckpt *c)
{
    return c->model;
}

int del_ckpt_has_optimizer(const del_ckpt *c, int *adamw)
{
    if (adamw)
        *adamw = c->has_opt && c->opt.kind == DEL_OPTIM_ADAMW;
    return c->has_opt;
}

const char *del_ckpt_trainer(const del_ckpt *c)
{
    return c->has_trainer ? c->trainer : NULL;
}

const del_ckpt_field *del_ckpt_field_get(const del_ckpt *c, const char *key, int kind)
{
    for (int i = 0; i < c->n_fields; i++)
        if (strcmp(c->fields[i].key, key) == 0)
            return c->fields[i].kind == kind ? &c->fields[i] : NULL;
    return NULL;
}

/* ---- applying ---- */

/* A failed architecture check, with the checkpoint's source at the end. */
static del_status with_source(del_status st, const char *name)
{
    char msg[DEL_ERROR_MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", del_last_error());
    return del_error(st, "%s ('%s')", msg, name);
}

static const char *kind_name(del_optim_kind k)
{
    return k == DEL_OPTIM_ADAMW ? "AdamW" : "SGD";
}

del_status del_ckpt_check(const del_ckpt *c, const del_model *model, const del_optimizer *opt, const char *func,
                          const char *name)
{
    del_status st = del_model_check_same(c->model, "the checkpoint", model, "'model'", func);
    if (st != DEL_OK)
        return with_source(st, name);
    if (!opt)
        return DEL_OK;
    if (opt->model != model)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for another model than 'model'", func);
    if (opt->n != model->n_params)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for %lld parameters, 'model' has %lld (layers were added "
                         "or replaced since)", func, (long long)opt->n, (long long)model->n_params);
    if (!c->has_opt)
        return del_error(DEL_EINVAL, "%s: '%s' holds no optimizer state (saved without an optimizer); pass NULL "
                         "'opt' to load the model only", func, name);
    if (opt->kind != c->opt.kind)
        return del_error(DEL_EINVAL, "%s: 'opt' is %s but '%s' holds %s state", func, kind_name(opt->kind), name,
                         kind_name(c->opt.kind));
    return DEL_OK;
}

static void swap_buffers(float **a, float **b)
{
    float *t = *a;
    *a = *b;
    *b = t;
}

void del_ckpt_apply(del_ckpt *c, del_model *model, del_optimizer *opt)
{
    const del_model *s = c->model;
    if (s->n_params > 0)
        memcpy(model->params, s->params, (size_t)s->n_params * sizeof *s->params);
    if (s->n_state > 0)
        memcpy(model->state, s->state, (size_t)s->n_state * sizeof *s->state);
    model->seed = c->seed;
    model->rng = c->rng;
    /* Through the public calls, which keep the model's own bookkeeping
     * (optimizers' ranges, batchnorm mode changes); the indices and values
     * were checked, so they cannot fail. */
    for (int i = 0; i < model->n_layers; i++) {
        if (model->groups[i].frozen != c->frozen[i])
            (void)(c->frozen[i] ? del_model_freeze(model, i, i) : del_model_unfreeze(model, i, i));
        if (model->groups[i].lr_mult != c->lr_mult[i])
            (void)del_model_set_lr_mult(model, i, i, c->lr_mult[i]);
    }
    if (!opt || !c->has_opt)
        return;
    const struct del_optimizer *o = &c->opt;
    /* The buffers change hands: c frees the old ones. */
    swap_buffers(&opt->state1, &c->opt.state1);
    swap_buffers(&opt->state2, &c->opt.state2);
    opt->kind = o->kind;
    opt->base_lr = o->base_lr;
    opt->weight_decay = o->weight_decay;
    opt->momentum = o->momentum;
    opt->nesterov = o->nesterov;
    opt->beta1 = o->beta1;
    opt->beta2 = o->beta2;
    opt->eps = o->eps;
    opt->schedule = o->schedule;
    opt->total_steps = o->total_steps;
    opt->final_lr = o->final_lr;
    opt->step_size = o->step_size;
    opt->gamma = o->gamma;
    opt->warmup = o->warmup;
    opt->clip_norm = o->clip_norm;
    opt->grad_norm = o->grad_norm;
    opt->step = o->step;
}

/* ---- the public calls ---- */

DEL_API del_status del_checkpoint_save(const char *path, const del_model *model, const del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_save";
    if (!path)
        return del_error_null(fn, "path");
    if (!model)
        return del_error_null(fn, "model");
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
    uint8_t *file = NULL;
    size_t len = 0;
    del_status st = del_ckpt_serialize(model, opt, NULL, NULL, 0, fn, &file, &len);
    if (st != DEL_OK)
        return st;
    *out = file;
    *size = len;
    return DEL_OK;
}

/* Checks a parsed checkpoint (st: how parsing went) against model and
 * opt, applies it and frees it: all or nothing. */
static del_status check_and_apply(del_ckpt *c, del_status st, del_model *model, del_optimizer *opt,
                                  const char *fn, const char *name)
{
    if (st == DEL_OK)
        st = del_ckpt_check(c, model, opt, fn, name);
    if (st == DEL_OK)
        del_ckpt_apply(c, model, opt);
    del_ckpt_free(c);
    return st;
}

DEL_API del_status del_checkpoint_load(const char *path, del_model *model, del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_load";
    if (!path)
        return del_error_null(fn, "path");
    if (!model)
        return del_error_null(fn, "model");
    del_ckpt *c = NULL;
    del_status st = del_ckpt_read(&c, path, fn);
    return check_and_apply(c, st, model, opt, fn, path);
}

DEL_API del_status del_checkpoint_load_buffer(const void *data, size_t size, del_model *model, del_optimizer *opt)
{
    static const char fn[] = "del_checkpoint_load_buffer";
    if (!data && size > 0)
        return del_error_null(fn, "data");
    if (!model)
        return del_error_null(fn, "model");
    del_ckpt *c = NULL;
    del_status st = del_ckpt_parse(&c, data ? data : (const void *)"", size, fn, "<buffer>");
    return check_and_apply(c, st, model, opt, fn, "<buffer>");
}
