/* The bytes of checkpoint files, formats 1 and 2, in the container of
 * io/format.h; docs/file-format.md has the layouts.
 *
 * Format 1 holds one model, its optimizer and a trainer record of at most
 * 64 fields; format 2 holds named models (each with its optimizer),
 * named tensors and a trainer record of up to DEL_CHECKPOINT_MAX_FIELDS.
 * Both travel a model as a whole model file (del_model_save_buffer), so
 * its architecture is described, checked and rebuilt by the model
 * format's own code. A record that fits format 1 is written as format 1,
 * as model files are written with the oldest version that can hold them,
 * so that older libdel releases read what they can.
 *
 * The parser checks every size before it takes or allocates anything and
 * keeps everything in the del_checkpoint; nothing outside it changes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/checkpoint_internal.h"
#include "io/format.h"
#include "io/model_file.h"
#include "nn/model_internal.h"

static const del_format ckpt_v1 = {{'D', 'E', 'L', 'C'}, 1, "checkpoint"};
/* Also the newest version read. */
static const del_format ckpt_v2 = {{'D', 'E', 'L', 'C'}, 2, "checkpoint"};

/* Format 1: MODL, MSTA, then optionally OPTM and TRNR, in this order.
 * Format 2: MODL (name, model file, state) for each model, then OPTM
 * (model name, record) for each optimizer, TNSR for each tensor, then
 * optionally one TRNR. */
static const char TAG_MODEL[4] = {'M', 'O', 'D', 'L'};
static const char TAG_MODEL_STATE[4] = {'M', 'S', 'T', 'A'};
static const char TAG_OPTIMIZER[4] = {'O', 'P', 'T', 'M'};
static const char TAG_TENSOR[4] = {'T', 'N', 'S', 'R'};
static const char TAG_TRAINER[4] = {'T', 'R', 'N', 'R'};

#define V1_MAX_FIELDS 64
#define V1_MAX_KEY 32

/* Counters and sizes beyond this are corrupt (far above any real run, far
 * below int64 overflow in the schedule's arithmetic). */
#define MAX_COUNT ((uint64_t)1 << 62)

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

static void write_model_state(del_writer *w, const ckpt_model *e)
{
    del_writer_u64(w, e->seed);
    for (int i = 0; i < 4; i++)
        del_writer_u64(w, e->rng.s[i]);
    del_writer_u32(w, (uint32_t)e->model->n_layers);
    for (int i = 0; i < e->model->n_layers; i++) {
        del_writer_u8(w, e->frozen[i]);
        del_writer_f32(w, e->lr_mult[i]);
    }
}

static void write_optimizer(del_writer *w, const struct del_optimizer *o)
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

static void write_trainer(del_writer *w, const del_checkpoint *ck)
{
    del_writer_str8(w, ck->trainer);
    del_writer_u32(w, (uint32_t)ck->n_fields);
    for (int i = 0; i < ck->n_fields; i++) {
        const del_ckpt_field *f = &ck->fields[i];
        del_writer_str8(w, f->key);
        del_writer_u8(w, (uint8_t)f->kind);
        if (f->kind == DEL_CKPT_F32) {
            uint32_t bits;
            memcpy(&bits, &f->f, sizeof bits);
            del_writer_u64(w, bits);
        } else {
            del_writer_u64(w, (uint64_t)f->i);
        }
    }
}

static void write_tensor(del_writer *w, const ckpt_tensor *t)
{
    del_writer_str8(w, t->name);
    const del_dtype dt = del_tensor_dtype(t->t);
    const int ndim = del_tensor_ndim(t->t);
    del_writer_u8(w, (uint8_t)dt);
    del_writer_u8(w, (uint8_t)ndim);
    for (int d = 0; d < ndim; d++)
        del_writer_u64(w, (uint64_t)del_tensor_dim(t->t, d));
    const size_t n = (size_t)del_tensor_numel(t->t);
    const void *data = del_tensor_data(t->t);
    if (dt == DEL_DTYPE_F32) {
        del_writer_f32_array(w, data, n);
    } else if (dt == DEL_DTYPE_I32) {
        const int32_t *v = data;
        for (size_t i = 0; i < n; i++)
            del_writer_i32(w, v[i]);
    } else {
        del_writer_bytes(w, data, n);
    }
}

/* Whether format 1 can hold ck (see del_checkpoint_write). */
static int fits_v1(const del_checkpoint *ck)
{
    if (ck->n_models != 1 || strcmp(ck->models[0].name, DEL_CHECKPOINT_MODEL) != 0 || ck->n_tensors != 0 ||
        ck->n_fields > V1_MAX_FIELDS || (ck->has_trainer && !ckpt_v1_key_ok(ck->trainer)))
        return 0;
    for (int i = 0; i < ck->n_fields; i++)
        if (!ckpt_v1_key_ok(ck->fields[i].key))
            return 0;
    return 1;
}

/* The model file of e (a model not finite was refused before). */
static del_status model_file(const ckpt_model *e, const char *func, void **out, size_t *len)
{
    del_status st = del_model_save_buffer_flags(e->model, out, len, DEL_SAVE_ALLOW_NONFINITE);
    if (st != DEL_OK) {
        char why[DEL_ERROR_MSG_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: cannot save the model (%s)", func, why);
    }
    return DEL_OK;
}

static del_status write_v1(del_writer *w, const del_checkpoint *ck, const char *func)
{
    const ckpt_model *e = &ck->models[0];
    void *mfile = NULL;
    size_t mlen = 0;
    del_status st = model_file(e, func, &mfile, &mlen);
    if (st != DEL_OK)
        return st;
    size_t at = 0;
    del_writer_u32(w, 2u + (e->has_opt != 0) + (ck->has_trainer != 0));
    begin_section(w, TAG_MODEL, &at);
    del_writer_bytes(w, mfile, mlen);
    end_section(w, at);
    del_buffer_free(mfile);
    begin_section(w, TAG_MODEL_STATE, &at);
    write_model_state(w, e);
    end_section(w, at);
    if (e->has_opt) {
        begin_section(w, TAG_OPTIMIZER, &at);
        write_optimizer(w, &e->opt);
        end_section(w, at);
    }
    if (ck->has_trainer) {
        begin_section(w, TAG_TRAINER, &at);
        write_trainer(w, ck);
        end_section(w, at);
    }
    return DEL_OK;
}

static del_status write_v2(del_writer *w, const del_checkpoint *ck, const char *func)
{
    uint32_t count = (uint32_t)ck->n_models + (uint32_t)ck->n_tensors + (ck->has_trainer != 0);
    for (int i = 0; i < ck->n_models; i++)
        count += ck->models[i].has_opt != 0;
    del_writer_u32(w, count);
    size_t at = 0;
    for (int i = 0; i < ck->n_models; i++) {
        const ckpt_model *e = &ck->models[i];
        void *mfile = NULL;
        size_t mlen = 0;
        del_status st = model_file(e, func, &mfile, &mlen);
        if (st != DEL_OK)
            return st;
        begin_section(w, TAG_MODEL, &at);
        del_writer_str8(w, e->name);
        del_writer_u64(w, (uint64_t)mlen);
        del_writer_bytes(w, mfile, mlen);
        write_model_state(w, e);
        end_section(w, at);
        del_buffer_free(mfile);
    }
    for (int i = 0; i < ck->n_models; i++) {
        const ckpt_model *e = &ck->models[i];
        if (!e->has_opt)
            continue;
        begin_section(w, TAG_OPTIMIZER, &at);
        del_writer_str8(w, e->name);
        write_optimizer(w, &e->opt);
        end_section(w, at);
    }
    for (int i = 0; i < ck->n_tensors; i++) {
        begin_section(w, TAG_TENSOR, &at);
        write_tensor(w, &ck->tensors[i]);
        end_section(w, at);
    }
    if (ck->has_trainer) {
        begin_section(w, TAG_TRAINER, &at);
        write_trainer(w, ck);
        end_section(w, at);
    }
    return DEL_OK;
}

del_status ckpt_serialize(const del_checkpoint *ck, const char *func, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (ck->n_fields > 0 && !ck->has_trainer)
        return del_error(DEL_ESTATE, "%s: the checkpoint has trainer fields but no trainer name (set one with "
                         "del_checkpoint_set_trainer)", func);
    /* Training cannot resume from NaN or infinite values: refused, with
     * the way to keep such a model anyway. */
    for (int i = 0; i < ck->n_models; i++) {
        char who[DEL_CHECKPOINT_MAX_NAME + 96];
        if (ck->n_models == 1)
            snprintf(who, sizeof who, "%s", func);
        else
            snprintf(who, sizeof who, "%s: model '%s'", func, ck->models[i].name);
        del_status st = del_model_check_finite(ck->models[i].model, who, "; a checkpoint could not resume training "
                                               "from it (to keep the model for inspection, save it with "
                                               "del_model_save_flags and DEL_SAVE_ALLOW_NONFINITE)");
        if (st != DEL_OK)
            return st;
    }
    const int v1 = fits_v1(ck);
    del_writer w;
    del_writer_init(&w);
    del_status st = v1 ? write_v1(&w, ck, func) : write_v2(&w, ck, func);
    if (st == DEL_OK && w.oom)
        st = del_error(DEL_ENOMEM, "%s: out of memory", func);
    if (st == DEL_OK)
        st = del_format_pack(v1 ? &ckpt_v1 : &ckpt_v2, w.data, w.len, func, out, len);
    del_writer_free(&w);
    return st;
}

/* ---- reading ---- */

static del_status corrupt(const del_source *src, const char *what)
{
    return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (%s)", src->func, src->name, what);
}

static del_status truncated(const del_source *src, const char *section)
{
    return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (the %s section is cut short)", src->func, src->name,
                     section);
}

static del_status out_of_memory(const del_source *src)
{
    return del_error(DEL_ENOMEM, "%s: out of memory", src->func);
}

static int finite_ge0(float x)
{
    return x >= 0.0f && isfinite(x);
}

static int finite_gt0(float x)
{
    return x > 0.0f && isfinite(x);
}

/* A name into dst (NUL-terminated): a format-1 key (v1) or a checkpoint
 * name; 0 if malformed or cut short. */
static int read_name(del_reader *r, char dst[DEL_CHECKPOINT_MAX_NAME + 1], int v1)
{
    size_t n = del_reader_u8(r);
    const uint8_t *s = del_reader_take(r, n);
    if (!s || n < 1 || n > (v1 ? V1_MAX_KEY : DEL_CHECKPOINT_MAX_NAME))
        return 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return v1 ? ckpt_v1_key_ok(dst) : ckpt_name_ok(dst);
}

/* The model file of mfile into e, with messages about its source. */
static del_status parse_model_file(ckpt_model *e, const uint8_t *mfile, size_t mlen, const del_source *src)
{
    del_status st = del_model_load_buffer(&e->model, mfile, mlen);
    if (st != DEL_OK) {
        char why[DEL_ERROR_MSG_SIZE];
        snprintf(why, sizeof why, "%s", del_last_error());
        return del_error(st, "%s: '%s' holds a damaged model (%s)", src->func, src->name, why);
    }
    return DEL_OK;
}

/* The model state record (format 1's MSTA), which must fill r. */
static del_status parse_model_state(ckpt_model *e, del_reader *r, const del_source *src)
{
    e->seed = del_reader_u64(r);
    uint64_t any = 0;
    for (int i = 0; i < 4; i++)
        any |= e->rng.s[i] = del_reader_u64(r);
    uint32_t layers = del_reader_u32(r);
    if (r->overrun)
        return truncated(src, "model state");
    if (any == 0)
        return corrupt(src, "the model's random stream is all zeros");
    if (layers != (uint32_t)e->model->n_layers)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (model state for %u layers, the model has %d)", src->func,
                         src->name, (unsigned)layers, e->model->n_layers);
    if (del_reader_left(r) != (size_t)layers * 5)
        return del_reader_left(r) < (size_t)layers * 5 ? truncated(src, "model state")
                                                       : corrupt(src, "bytes after the model state");
    e->frozen = malloc(layers ? layers : 1);
    e->lr_mult = malloc((layers ? layers : 1) * sizeof *e->lr_mult);
    if (!e->frozen || !e->lr_mult)
        return out_of_memory(src);
    for (uint32_t i = 0; i < layers; i++) {
        e->frozen[i] = del_reader_u8(r);
        e->lr_mult[i] = del_reader_f32(r);
        if (e->frozen[i] > 1 || !finite_gt0(e->lr_mult[i]))
            return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (parameter group of layer %u)", src->func, src->name,
                             (unsigned)i);
    }
    return DEL_OK;
}

/* An optimizer's fields and buffers for the model of e, checked as its
 * constructors and setters check them, so a restored optimizer is one
 * they could make. */
static del_status parse_optimizer(ckpt_model *e, del_reader *r, const del_source *src)
{
    struct del_optimizer *o = &e->opt;
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
    if (n != (uint64_t)e->model->n_params)
        return corrupt(src, "optimizer made for another parameter count than the model's");
    if (n == 0)
        return corrupt(src, "optimizer of a model without parameters");
    o->n = (int64_t)n;
    if (!finite_gt0(o->base_lr) || !finite_ge0(o->weight_decay))
        return corrupt(src, "optimizer learning rate or weight decay out of range");
    if (kind == DEL_OPTIM_SGD && (!(o->momentum >= 0.0f && o->momentum < 1.0f) || nesterov > 1 ||
                                  (nesterov && o->momentum == 0.0f)))
        return corrupt(src, "SGD momentum or nesterov out of range");
    if (kind == DEL_OPTIM_ADAMW && (!(o->beta1 >= 0.0f && o->beta1 < 1.0f) || !(o->beta2 >= 0.0f && o->beta2 < 1.0f) ||
                                    !finite_gt0(o->eps)))
        return corrupt(src, "AdamW betas or eps out of range");
    if (schedule > DEL_SCHEDULE_STEP)
        return corrupt(src, "unknown schedule");
    if (total > MAX_COUNT || step_size < 1 || step_size > MAX_COUNT || warmup > MAX_COUNT || step > MAX_COUNT)
        return corrupt(src, "optimizer step counts out of range");
    if (schedule == DEL_SCHEDULE_COSINE && total < 1)
        return corrupt(src, "cosine schedule without total steps");
    if (!finite_ge0(o->final_lr) || !finite_gt0(o->gamma) || o->gamma > 1.0f || !finite_ge0(o->clip_norm))
        return corrupt(src, "optimizer schedule or clipping out of range");
    memcpy(&o->grad_norm, &norm_bits, sizeof o->grad_norm);
    if (!(o->grad_norm >= 0.0) || isinf(o->grad_norm))
        return corrupt(src, "optimizer gradient norm out of range");
    int expected = kind == DEL_OPTIM_ADAMW ? 2 : o->momentum > 0.0f;
    if (buffers != expected)
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
    e->has_opt = 1;
    return DEL_OK;
}

static del_status parse_trainer(del_checkpoint *ck, del_reader *r, int v1, const del_source *src)
{
    if (!read_name(r, ck->trainer, v1))
        return r->overrun ? truncated(src, "trainer") : corrupt(src, "malformed trainer name");
    uint32_t count = del_reader_u32(r);
    if (r->overrun)
        return truncated(src, "trainer");
    if (count > (v1 ? V1_MAX_FIELDS : DEL_CHECKPOINT_MAX_FIELDS))
        return corrupt(src, "too many trainer fields");
    /* Each field takes at least 11 bytes: no allocation beyond the data. */
    if (count > del_reader_left(r) / 11)
        return truncated(src, "trainer");
    ck->fields = calloc(count ? count : 1, sizeof *ck->fields);
    if (!ck->fields)
        return out_of_memory(src);
    ck->cap_fields = (int)(count ? count : 1);
    for (uint32_t i = 0; i < count; i++) {
        del_ckpt_field *f = &ck->fields[i];
        if (!read_name(r, f->key, v1))
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
        if (ckpt_find_field(ck, f->key) != NULL)
            return corrupt(src, "repeated trainer field");
        ck->n_fields = (int)i + 1;
    }
    if (del_reader_left(r) != 0)
        return corrupt(src, "bytes after the trainer record");
    ck->has_trainer = 1;
    return DEL_OK;
}

/* A new empty model entry at the end of ck->models. */
static del_status new_model(del_checkpoint *ck, ckpt_model **out, const del_source *src)
{
    if (ck->n_models >= DEL_CHECKPOINT_MAX_MODELS)
        return corrupt(src, "too many models");
    if (!ckpt_reserve((void **)&ck->models, &ck->cap_models, ck->n_models, sizeof *ck->models))
        return out_of_memory(src);
    *out = &ck->models[ck->n_models++];
    memset(*out, 0, sizeof **out);
    return DEL_OK;
}

/* The next section's content as a reader of its own; an error if the tag
 * is not `tag` or the size overruns the payload. */
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

static del_status parse_v1(del_checkpoint *ck, del_reader *r, const del_source *src)
{
    uint32_t count = del_reader_u32(r);
    if (r->overrun)
        return corrupt(src, "empty payload");
    if (count < 2 || count > 4)
        return corrupt(src, "section count");
    del_reader sec;
    del_status st = next_section(r, TAG_MODEL, "model", src, &sec);
    ckpt_model *e = NULL;
    if (st == DEL_OK)
        st = new_model(ck, &e, src);
    if (st != DEL_OK)
        return st;
    strcpy(e->name, DEL_CHECKPOINT_MODEL);
    st = parse_model_file(e, sec.data, sec.len, src);
    if (st == DEL_OK)
        st = next_section(r, TAG_MODEL_STATE, "model state", src, &sec);
    if (st == DEL_OK)
        st = parse_model_state(e, &sec, src);
    /* The optional sections, in order: peek at the tag. */
    for (uint32_t i = 2; st == DEL_OK && i < count; i++) {
        const uint8_t *t = del_reader_left(r) >= 4 ? r->data + r->pos : NULL;
        if (t && !e->has_opt && !ck->has_trainer && memcmp(t, TAG_OPTIMIZER, 4) == 0) {
            st = next_section(r, TAG_OPTIMIZER, "optimizer", src, &sec);
            if (st == DEL_OK)
                st = parse_optimizer(e, &sec, src);
        } else {
            st = next_section(r, TAG_TRAINER, "trainer", src, &sec);
            if (st == DEL_OK && ck->has_trainer)
                st = corrupt(src, "two trainer sections");
            if (st == DEL_OK)
                st = parse_trainer(ck, &sec, 1, src);
        }
    }
    return st;
}

/* A format-2 MODL section: name, u64 size, model file, model state. */
static del_status parse_v2_model(del_checkpoint *ck, del_reader *r, const del_source *src)
{
    char name[DEL_CHECKPOINT_MAX_NAME + 1];
    if (!read_name(r, name, 0))
        return r->overrun ? truncated(src, "model") : corrupt(src, "malformed model name");
    if (ckpt_find_model(ck, name))
        return corrupt(src, "two models of one name");
    uint64_t size = del_reader_u64(r);
    if (r->overrun || size > del_reader_left(r))
        return truncated(src, "model");
    ckpt_model *e = NULL;
    del_status st = new_model(ck, &e, src);
    if (st != DEL_OK)
        return st;
    strcpy(e->name, name);
    st = parse_model_file(e, del_reader_take(r, (size_t)size), (size_t)size, src);
    if (st == DEL_OK)
        st = parse_model_state(e, r, src);
    return st;
}

/* A format-2 OPTM section: the name of a model read before, its record. */
static del_status parse_v2_optimizer(del_checkpoint *ck, del_reader *r, const del_source *src)
{
    char name[DEL_CHECKPOINT_MAX_NAME + 1];
    if (!read_name(r, name, 0))
        return r->overrun ? truncated(src, "optimizer") : corrupt(src, "malformed optimizer's model name");
    ckpt_model *e = ckpt_find_model(ck, name);
    if (!e)
        return corrupt(src, "optimizer of a model the file does not hold");
    if (e->has_opt)
        return corrupt(src, "two optimizers of one model");
    return parse_optimizer(e, r, src);
}

/* A format-2 TNSR section: name, u8 dtype, u8 ndim, u64 x ndim sizes,
 * the elements, which fill the rest exactly. */
static del_status parse_v2_tensor(del_checkpoint *ck, del_reader *r, const del_source *src)
{
    char name[DEL_CHECKPOINT_MAX_NAME + 1];
    if (!read_name(r, name, 0))
        return r->overrun ? truncated(src, "tensor") : corrupt(src, "malformed tensor name");
    if (ckpt_find_tensor(ck, name))
        return corrupt(src, "two tensors of one name");
    if (ck->n_tensors >= DEL_CHECKPOINT_MAX_TENSORS)
        return corrupt(src, "too many tensors");
    uint8_t dtype = del_reader_u8(r), ndim = del_reader_u8(r);
    if (r->overrun)
        return truncated(src, "tensor");
    if (dtype > DEL_DTYPE_I32 || ndim < 1 || ndim > DEL_TENSOR_MAX_DIMS)
        return corrupt(src, "tensor type or dimension count");
    const size_t esize = del_dtype_size((del_dtype)dtype);
    int64_t shape[DEL_TENSOR_MAX_DIMS];
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t n = del_reader_u64(r);
        if (r->overrun)
            return truncated(src, "tensor");
        /* Every element takes esize bytes of the section, so a product
         * beyond them is a lie, refused before it can overflow. */
        if (n < 1 || n > del_reader_left(r) || numel > del_reader_left(r) / esize / n)
            return n < 1 ? corrupt(src, "tensor size 0") : truncated(src, "tensor");
        numel *= n;
        shape[d] = (int64_t)n;
    }
    if (del_reader_left(r) != numel * esize)
        return del_reader_left(r) < numel * esize ? truncated(src, "tensor") : corrupt(src, "bytes after the tensor");
    if (!ckpt_reserve((void **)&ck->tensors, &ck->cap_tensors, ck->n_tensors, sizeof *ck->tensors))
        return out_of_memory(src);
    del_tensor *t = NULL;
    del_status st = del_tensor_new(&t, (del_dtype)dtype, ndim, shape);
    if (st != DEL_OK)
        return st == DEL_ENOMEM ? out_of_memory(src) : corrupt(src, "tensor shape");
    void *data = del_tensor_data(t);
    if (dtype == DEL_DTYPE_F32) {
        del_reader_f32_array(r, data, (size_t)numel);
    } else if (dtype == DEL_DTYPE_I32) {
        int32_t *v = data;
        for (uint64_t i = 0; i < numel; i++)
            v[i] = del_reader_i32(r);
    } else {
        memcpy(data, del_reader_take(r, (size_t)numel), (size_t)numel);
    }
    ckpt_tensor *slot = &ck->tensors[ck->n_tensors++];
    strcpy(slot->name, name);
    slot->t = t;
    return DEL_OK;
}

static del_status parse_v2(del_checkpoint *ck, del_reader *r, const del_source *src)
{
    static const struct {
        const char *tag, *what;
    } kinds[] = {{TAG_MODEL, "model"}, {TAG_OPTIMIZER, "optimizer"}, {TAG_TENSOR, "tensor"}, {TAG_TRAINER, "trainer"}};
    enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
    uint32_t count = del_reader_u32(r);
    if (r->overrun)
        return corrupt(src, "empty payload");
    if (count > 2u * DEL_CHECKPOINT_MAX_MODELS + DEL_CHECKPOINT_MAX_TENSORS + 1)
        return corrupt(src, "section count");
    int phase = 0; /* sections come in the order of kinds */
    del_status st = DEL_OK;
    for (uint32_t i = 0; st == DEL_OK && i < count; i++) {
        const uint8_t *t = del_reader_left(r) >= 4 ? r->data + r->pos : NULL;
        int k = 0;
        while (t && k < N_KINDS && memcmp(t, kinds[k].tag, 4) != 0)
            k++;
        if (!t)
            return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (section %u of %u is missing)", src->func, src->name,
                             (unsigned)i + 1, (unsigned)count);
        if (k == N_KINDS)
            return corrupt(src, "unknown section");
        if (k == 3 && ck->has_trainer)
            return corrupt(src, "two trainer sections");
        if (k < phase)
            return corrupt(src, "sections out of order");
        phase = k;
        del_reader sec;
        st = next_section(r, kinds[k].tag, kinds[k].what, src, &sec);
        if (st != DEL_OK)
            return st;
        if (k == 0)
            st = parse_v2_model(ck, &sec, src);
        else if (k == 1)
            st = parse_v2_optimizer(ck, &sec, src);
        else if (k == 2)
            st = parse_v2_tensor(ck, &sec, src);
        else
            st = parse_trainer(ck, &sec, 0, src);
    }
    return st;
}

del_status ckpt_parse(del_checkpoint *ck, const uint8_t *file, size_t len, const char *func)
{
    const del_source src = {func, ck->source};
    uint32_t version = 0;
    uint8_t *payload = NULL;
    size_t plen = 0;
    del_status st = del_format_unpack(&ckpt_v2, &src, file, len, &version, &payload, &plen);
    if (st != DEL_OK)
        return st;
    del_reader r;
    del_reader_init(&r, payload, plen);
    st = version == 1 ? parse_v1(ck, &r, &src) : parse_v2(ck, &r, &src);
    if (st == DEL_OK && del_reader_left(&r) != 0)
        st = corrupt(&src, "bytes after the last section");
    free(payload);
    return st;
}
