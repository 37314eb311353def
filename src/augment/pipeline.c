/* The augmentation pipeline: building it step by step, and running its
 * image steps on one image or, in parallel, on a batch. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/augment_internal.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/dataset.h"

/* Magnitude ranges accepted by del_augment_add_op, by op name. */
typedef struct op_range {
    const char *name;
    float lo, hi;
    int integer;   /* magnitudes are whole numbers */
    int magnitude; /* 0: the op takes none */
} op_range;

static const op_range ranges[] = {
    {"identity", 0, 0, 0, 0},       {"shear_x", -1, 1, 0, 1},          {"shear_y", -1, 1, 0, 1},
    {"translate_x", -4096, 4096, 1, 1}, {"translate_y", -4096, 4096, 1, 1}, {"rotate", -180, 180, 0, 1},
    {"brightness", 0, 10, 0, 1},    {"color", 0, 10, 0, 1},            {"contrast", 0, 10, 0, 1},
    {"sharpness", 0, 10, 0, 1},     {"posterize", 0, 8, 1, 1},         {"solarize", 0, 256, 0, 1},
    {"autocontrast", 0, 0, 0, 0},   {"equalize", 0, 0, 0, 0},          {"flip_h", 0, 0, 0, 0},
    {"flip_v", 0, 0, 0, 0},         {"brightness_add", -255, 255, 1, 1},
};

DEL_API del_status del_augment_new(del_augment **out)
{
    if (!out)
        return del_error_null("del_augment_new", "out");
    *out = NULL;
    del_augment *a = calloc(1, sizeof *a);
    if (!a)
        return del_error(DEL_ENOMEM, "del_augment_new: out of memory");
    a->interp = DEL_INTERP_NEAREST;
    *out = a;
    return DEL_OK;
}

DEL_API void del_augment_free(del_augment *aug)
{
    if (!aug)
        return;
    free(aug->steps);
    free(aug->scratch);
    free(aug);
}

DEL_API del_status del_augment_set_seed(del_augment *aug, uint64_t seed)
{
    if (!aug)
        return del_error_null("del_augment_set_seed", "aug");
    aug->seed = seed;
    return DEL_OK;
}

DEL_API del_status del_augment_set_interp(del_augment *aug, del_interp interp, int fill)
{
    static const char fn[] = "del_augment_set_interp";
    if (!aug)
        return del_error_null(fn, "aug");
    del_status st = del_img_check_interp(fn, interp);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    aug->interp = interp;
    aug->fill = fill;
    return DEL_OK;
}

DEL_API int del_augment_num_steps(const del_augment *aug)
{
    return aug ? aug->nsteps : 0;
}

/* Appends a step initialised from *s (with the pipeline's interpolation). */
static del_status push(del_augment *aug, const aug_step *s, const char *fn)
{
    if (aug->nsteps == aug->cap) {
        int cap = aug->cap ? 2 * aug->cap : 8;
        aug_step *grown = realloc(aug->steps, (size_t)cap * sizeof *grown);
        if (!grown)
            return del_error(DEL_ENOMEM, "%s: out of memory", fn);
        aug->steps = grown;
        aug->cap = cap;
    }
    aug_step *d = &aug->steps[aug->nsteps++];
    *d = *s;
    d->interp = aug->interp;
    d->geo_fill = aug->fill;
    return DEL_OK;
}

static del_status check_p(const char *fn, float p)
{
    if (!(p >= 0.0f && p <= 1.0f))
        return del_error(DEL_EINVAL, "%s: 'p' must be a probability in [0, 1], got %g", fn, (double)p);
    return DEL_OK;
}

DEL_API del_status del_augment_add_op(del_augment *aug, const char *name, float p, float lo, float hi)
{
    static const char fn[] = "del_augment_add_op";
    if (!aug)
        return del_error_null(fn, "aug");
    if (!name)
        return del_error_null(fn, "name");
    const op_range *r = NULL;
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (strcmp(ranges[i].name, name) == 0)
            r = &ranges[i];
    const del_aug_op *op = del_aug_op_find(name);
    if (!r || !op) {
        char list[512] = "";
        size_t len = 0;
        for (size_t i = 0; i < sizeof ranges / sizeof ranges[0] && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", ranges[i].name);
        return del_error(DEL_EINVAL, "%s: unknown op '%s' (valid: %s)", fn, name, list);
    }
    del_status st = check_p(fn, p);
    if (st != DEL_OK)
        return st;
    if (r->magnitude) {
        if (!(lo >= r->lo && lo <= r->hi) || !(hi >= r->lo && hi <= r->hi) || lo > hi)
            return del_error(DEL_EINVAL, "%s: the magnitude of '%s' must satisfy %g <= lo <= hi <= %g, got lo %g, hi %g",
                             fn, name, (double)r->lo, (double)r->hi, (double)lo, (double)hi);
        if (r->integer && (lo != floorf(lo) || hi != floorf(hi)))
            return del_error(DEL_EINVAL, "%s: the magnitude of '%s' must be whole numbers, got lo %g, hi %g", fn,
                             name, (double)lo, (double)hi);
    }
    aug_step s = {.kind = STEP_OP, .p = p, .op = op, .lo = r->magnitude ? lo : 0, .hi = r->magnitude ? hi : 0,
                  .integer = r->integer};
    return push(aug, &s, fn);
}

DEL_API del_status del_augment_add_random_crop(del_augment *aug, int size_h, int size_w, int pad, int fill)
{
    static const char fn[] = "del_augment_add_random_crop";
    if (!aug)
        return del_error_null(fn, "aug");
    if (size_h < 1 || size_w < 1)
        return del_error(DEL_EINVAL, "%s: 'size_h' and 'size_w' must be >= 1, got %d x %d", fn, size_h, size_w);
    if (pad < 0 || pad > 65536)
        return del_error(DEL_EINVAL, "%s: 'pad' must be in 0..65536, got %d", fn, pad);
    del_status st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    aug_step s = {.kind = STEP_RANDOM_CROP, .p = 1.0f, .a = size_h, .b = size_w, .pad = pad, .fill = fill};
    return push(aug, &s, fn);
}

DEL_API del_status del_augment_add_flip_h(del_augment *aug, float p)
{
    static const char fn[] = "del_augment_add_flip_h";
    if (!aug)
        return del_error_null(fn, "aug");
    del_status st = check_p(fn, p);
    if (st != DEL_OK)
        return st;
    aug_step s = {.kind = STEP_OP, .p = p, .op = del_aug_op_find("flip_h")};
    return push(aug, &s, fn);
}

DEL_API del_status del_augment_add_randaugment(del_augment *aug, int n, int m)
{
    static const char fn[] = "del_augment_add_randaugment";
    if (!aug)
        return del_error_null(fn, "aug");
    if (n < 1 || n > 16)
        return del_error(DEL_EINVAL, "%s: 'n' (ops per image) must be in 1..16, got %d", fn, n);
    if (m < 0 || m > 30)
        return del_error(DEL_EINVAL, "%s: 'm' (magnitude bin of 31) must be in 0..30, got %d", fn, m);
    aug_step s = {.kind = STEP_RANDAUGMENT, .p = 1.0f, .a = n, .b = m};
    return push(aug, &s, fn);
}

DEL_API del_status del_augment_add_trivialaugment(del_augment *aug)
{
    if (!aug)
        return del_error_null("del_augment_add_trivialaugment", "aug");
    aug_step s = {.kind = STEP_TRIVIAL, .p = 1.0f};
    return push(aug, &s, "del_augment_add_trivialaugment");
}

DEL_API del_status del_augment_add_cutout(del_augment *aug, float p, int size, int fill)
{
    static const char fn[] = "del_augment_add_cutout";
    if (!aug)
        return del_error_null(fn, "aug");
    del_status st = check_p(fn, p);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    if (size < 1 || size > 65536)
        return del_error(DEL_EINVAL, "%s: 'size' must be in 1..65536, got %d", fn, size);
    aug_step s = {.kind = STEP_CUTOUT, .p = p, .a = size, .fill = fill};
    return push(aug, &s, fn);
}

static del_status add_mix(del_augment *aug, float p, float alpha, step_kind kind, const char *fn)
{
    if (!aug)
        return del_error_null(fn, "aug");
    del_status st = check_p(fn, p);
    if (st != DEL_OK)
        return st;
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return del_error(DEL_EINVAL, "%s: 'alpha' must be finite and > 0, got %g", fn, (double)alpha);
    aug_step s = {.kind = kind, .p = p, .alpha = alpha};
    return push(aug, &s, fn);
}

DEL_API del_status del_augment_add_cutmix(del_augment *aug, float p, float alpha)
{
    return add_mix(aug, p, alpha, STEP_CUTMIX, "del_augment_add_cutmix");
}

DEL_API del_status del_augment_add_mixup(del_augment *aug, float p, float alpha)
{
    return add_mix(aug, p, alpha, STEP_MIXUP, "del_augment_add_mixup");
}

/* ---- running the image steps ---- */

/* Output size and the largest intermediate image (pixels) for h x w input. */
static del_status plan(const del_augment *aug, const char *fn, int h, int w, int *oh, int *ow, size_t *max_px)
{
    size_t big = (size_t)h * (size_t)w;
    for (int i = 0; i < aug->nsteps; i++) {
        const aug_step *s = &aug->steps[i];
        if (s->kind != STEP_RANDOM_CROP)
            continue;
        if ((int64_t)s->a > (int64_t)h + 2 * (int64_t)s->pad || (int64_t)s->b > (int64_t)w + 2 * (int64_t)s->pad)
            return del_error(DEL_EINVAL, "%s: step %d: the crop %d x %d is larger than the padded image %lld x %lld",
                             fn, i, s->a, s->b, (long long)h + 2 * s->pad, (long long)w + 2 * s->pad);
        h = s->a;
        w = s->b;
        if ((size_t)h * (size_t)w > big)
            big = (size_t)h * (size_t)w;
    }
    *oh = h;
    *ow = w;
    if (max_px)
        *max_px = big;
    return DEL_OK;
}

DEL_API del_status del_augment_output_size(const del_augment *aug, int height, int width, int *out_height,
                                           int *out_width)
{
    static const char fn[] = "del_augment_output_size";
    if (!aug)
        return del_error_null(fn, "aug");
    if (!out_height)
        return del_error_null(fn, "out_height");
    if (!out_width)
        return del_error_null(fn, "out_width");
    if (height < 1 || width < 1)
        return del_error(DEL_EINVAL, "%s: 'height' and 'width' must be >= 1, got %d x %d", fn, height, width);
    return plan(aug, fn, height, width, out_height, out_width, NULL);
}

static void wrap_u8(del_tensor *t, uint8_t *px, int h, int w, int c)
{
    memset(t, 0, sizeof *t);
    t->dtype = DEL_DTYPE_U8;
    t->ndim = 3;
    t->shape[0] = h;
    t->shape[1] = w;
    t->shape[2] = c;
    t->data = px;
}

/* Working state of one image: the current pixels (the caller's image or
 * one of buf) and the two buffers steps write into. */
typedef struct run_img {
    const uint8_t *cur;
    uint8_t *buf[2];
    int h, w, c;
} run_img;

/* Where a step writes: into the current pixels when the step may work in
 * place and they are ours to overwrite (no copy), else the other buffer. */
static uint8_t *step_out(const run_img *im, int in_place)
{
    if (im->cur == im->buf[0] || im->cur == im->buf[1])
        return in_place ? (uint8_t *)im->cur : im->buf[im->cur == im->buf[0]];
    return im->buf[0];
}

static del_status apply_op_to(run_img *im, const del_aug_op *op, float value, del_interp interp, int fill,
                              uint8_t *out)
{
    del_tensor src, dst;
    wrap_u8(&src, (uint8_t *)im->cur, im->h, im->w, im->c);
    wrap_u8(&dst, out, im->h, im->w, im->c);
    del_status st = op->fn(&dst, &src, value, interp, fill);
    im->cur = out;
    return st;
}

static del_status apply_op(run_img *im, const del_aug_op *op, float value, del_interp interp, int fill)
{
    return apply_op_to(im, op, value, interp, fill, step_out(im, op->in_place));
}

/* Runs the n ops a RandAugment / TrivialAugmentWide step drew. Identity
 * ops are skipped: their output is their input. When no later step
 * touches the pixels (last), the outputs are planned backwards so that
 * the final op writes buf[0] (dst, for del_augment_image: no final copy);
 * an op that cannot work in place reads the other buffer. */
static del_status apply_choices(run_img *im, const del_ra_choice *ch, int n, del_interp interp, int fill, int last)
{
    const del_aug_op *table = del_aug_op_table(NULL);
    const del_aug_op *ops[16];
    float value[16];
    uint8_t *out[16];
    int m = 0;
    for (int k = 0; k < n; k++)
        if (ch[k].op != 0) { /* table[0] is identity */
            ops[m] = &table[ch[k].op];
            value[m++] = ch[k].value;
        }
    int planned = 0;
    if (last && m > 0) {
        uint8_t *want = im->buf[0];
        for (int k = m - 1; k >= 0; k--) {
            out[k] = want;
            if (!ops[k]->in_place)
                want = im->buf[want == im->buf[0]];
        }
        planned = im->cur != out[0] || ops[0]->in_place;
    }
    del_status st = DEL_OK;
    for (int k = 0; k < m && st == DEL_OK; k++)
        st = apply_op_to(im, ops[k], value[k], interp, fill, planned ? out[k] : step_out(im, ops[k]->in_place));
    return st;
}

static float draw_magnitude(del_rng *r, const aug_step *s)
{
    if (s->lo == s->hi)
        return s->lo;
    if (s->integer)
        return s->lo + (float)del_rng_below(r, (uint64_t)(s->hi - s->lo) + 1);
    return (float)((double)s->lo + ((double)s->hi - (double)s->lo) * del_rng_uniform_double(r));
}

static del_status run_steps(const del_augment *aug, del_rng *r, run_img *im)
{
    del_ra_choice ch[16];
    del_status st = DEL_OK;
    int last_image_step = -1; /* CutMix and MixUp act on batches only */
    for (int i = 0; i < aug->nsteps; i++)
        if (aug->steps[i].kind != STEP_CUTMIX && aug->steps[i].kind != STEP_MIXUP)
            last_image_step = i;
    for (int i = 0; i < aug->nsteps && st == DEL_OK; i++) {
        const aug_step *s = &aug->steps[i];
        switch (s->kind) {
        case STEP_OP:
            if (del_rng_uniform(r) < s->p)
                st = apply_op(im, s->op, draw_magnitude(r, s), s->interp, s->geo_fill);
            break;
        case STEP_RANDOM_CROP: {
            int y = (int)del_rng_below(r, (uint64_t)(im->h + 2 * s->pad - s->a + 1));
            int x = (int)del_rng_below(r, (uint64_t)(im->w + 2 * s->pad - s->b + 1));
            del_tensor src, dst;
            uint8_t *out = step_out(im, 0);
            wrap_u8(&src, (uint8_t *)im->cur, im->h, im->w, im->c);
            wrap_u8(&dst, out, s->a, s->b, im->c);
            st = del_image_pad_crop(&dst, &src, s->pad, y, x, s->fill);
            im->cur = out;
            im->h = s->a;
            im->w = s->b;
            break;
        }
        case STEP_RANDAUGMENT:
            del_randaugment_draw(r, s->a, s->b, im->h, im->w, ch);
            st = apply_choices(im, ch, s->a, s->interp, s->geo_fill, i == last_image_step);
            break;
        case STEP_TRIVIAL:
            del_trivialaugment_draw(r, ch);
            st = apply_choices(im, ch, 1, s->interp, s->geo_fill, i == last_image_step);
            break;
        case STEP_CUTOUT:
            if (del_rng_uniform(r) < s->p) {
                int cy = (int)del_rng_below(r, (uint64_t)im->h), cx = (int)del_rng_below(r, (uint64_t)im->w);
                del_tensor src, dst;
                uint8_t *out = step_out(im, 1);
                wrap_u8(&src, (uint8_t *)im->cur, im->h, im->w, im->c);
                wrap_u8(&dst, out, im->h, im->w, im->c);
                st = del_image_cutout(&dst, &src, cy, cx, s->a, s->fill);
                im->cur = out;
            }
            break;
        case STEP_CUTMIX:
        case STEP_MIXUP:
            break;
        }
    }
    return st;
}

static uint8_t *alloc_scratch(size_t bytes)
{
    return malloc(2 * (bytes ? bytes : 1));
}

DEL_API del_status del_augment_image(del_augment *aug, del_tensor *dst, const del_tensor *src, uint64_t epoch,
                                     int64_t index)
{
    static const char fn[] = "del_augment_image";
    if (!aug)
        return del_error_null(fn, "aug");
    del_img s, d;
    del_status st = del_img_src(&s, fn, src);
    if (st != DEL_OK)
        return st;
    if (index < 0)
        return del_error(DEL_EINVAL, "%s: 'index' must be >= 0, got %lld", fn, (long long)index);
    int oh, ow;
    size_t max_px;
    if ((st = plan(aug, fn, s.h, s.w, &oh, &ow, &max_px)) != DEL_OK)
        return st;
    if ((st = del_img_dst(&d, fn, dst, oh, ow, s.c)) != DEL_OK)
        return st;
    if (del_img_overlap(dst, src))
        return del_error(DEL_EINVAL, "%s: 'dst' must not share memory with 'src'", fn);
    /* Kept in the handle: large buffers come from mmap, and faulting their
     * pages in again on every call would cost more than most ops. */
    size_t bytes = max_px * (size_t)s.c;
    if (aug->scratch_cap < 2 * bytes) {
        uint8_t *grown = alloc_scratch(bytes);
        if (!grown)
            return del_error(DEL_ENOMEM, "%s: out of memory", fn);
        free(aug->scratch);
        aug->scratch = grown;
        aug->scratch_cap = 2 * bytes;
    }
    uint8_t *buf = aug->scratch;
    del_rng r;
    del_rng_seed_stream(&r, aug->seed, epoch, (uint64_t)index);
    /* When every intermediate image fits in dst, dst is the first buffer:
     * a step from src writes there and in-place steps keep it there, which
     * saves the final copy. */
    const size_t out_bytes = (size_t)oh * (size_t)ow * (size_t)s.c;
    run_img im = {.cur = s.px, .buf = {bytes <= out_bytes ? d.px : buf, buf + bytes}, .h = s.h, .w = s.w, .c = s.c};
    st = run_steps(aug, &r, &im);
    if (st == DEL_OK && im.cur != d.px)
        memcpy(d.px, im.cur, out_bytes);
    return st;
}

/* ---- batches ---- */

typedef struct batch_ctx {
    const del_augment *aug;
    const del_dataset *ds;
    const int64_t *indices;
    const int64_t *epochs; /* per image, or NULL: all `epoch` */
    uint64_t epoch;
    int oh, ow;
    size_t scratch_bytes;
    const float (*lut)[256];
    float *x;
    _Atomic int status;
} batch_ctx;

static void batch_range(void *arg, int64_t begin, int64_t end)
{
    batch_ctx *ctx = arg;
    const del_dataset *ds = ctx->ds;
    const int c = ds->channels;
    uint8_t *buf = alloc_scratch(ctx->scratch_bytes);
    if (!buf) {
        atomic_store(&ctx->status, DEL_ENOMEM);
        return;
    }
    const size_t plane = (size_t)ctx->oh * (size_t)ctx->ow;
    for (int64_t i = begin; i < end; i++) {
        del_rng r;
        const uint64_t epoch = ctx->epochs ? (uint64_t)ctx->epochs[i] : ctx->epoch;
        del_rng_seed_stream(&r, ctx->aug->seed, epoch, (uint64_t)ctx->indices[i]);
        run_img im = {.cur = ds->images + (size_t)ctx->indices[i] * ds->image_bytes,
                      .buf = {buf, buf + ctx->scratch_bytes},
                      .h = ds->height,
                      .w = ds->width,
                      .c = c};
        del_status st = run_steps(ctx->aug, &r, &im);
        if (st != DEL_OK) {
            atomic_store(&ctx->status, st);
            break;
        }
        del_hwc_to_chw_normalized(ctx->x + (size_t)i * (size_t)c * plane, im.cur, plane, c, ctx->lut);
    }
    free(buf);
}

static del_status check_batch_args(const del_augment *aug, const del_dataset *ds, const int64_t *indices, int64_t n,
                                   const float *mean, const float *std, const del_tensor *x,
                                   const del_tensor *targets, const del_tensor *soft_labels, int num_classes, int *oh,
                                   int *ow, size_t *max_px, const char *fn)
{
    char got[64];
    if (!aug)
        return del_error_null(fn, "aug");
    if (!ds)
        return del_error_null(fn, "ds");
    if (!indices)
        return del_error_null(fn, "indices");
    if (!mean)
        return del_error_null(fn, "mean");
    if (!std)
        return del_error_null(fn, "std");
    if (!x)
        return del_error_null(fn, "x");
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'n' must be >= 1, got %lld", fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return del_error(DEL_EINVAL, "%s: 'indices[%lld]' must be in 0..%lld, got %lld", fn, (long long)i,
                             (long long)ds->n - 1, (long long)indices[i]);
    for (int c = 0; c < ds->channels; c++)
        if (!(std[c] > 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return del_error(DEL_EINVAL, "%s: 'mean[%d]' must be finite and 'std[%d]' finite and > 0, got %g, %g", fn,
                             c, c, (double)mean[c], (double)std[c]);
    del_status st = plan(aug, fn, ds->height, ds->width, oh, ow, max_px);
    if (st != DEL_OK)
        return st;
    const int64_t xs[4] = {n, ds->channels, *oh, *ow};
    if (!del_tensor_has_shape(x, DEL_DTYPE_F32, 4, xs))
        return del_error(DEL_EINVAL, "%s: 'x' must be f32 [%lld, %d, %d, %d], got %s", fn, (long long)n,
                         ds->channels, *oh, *ow, del_tensor_shape_str(x, got, sizeof got));
    if (targets && !soft_labels)
        return del_error(DEL_EINVAL, "%s: 'targets' needs 'soft_labels' (the mixed labels go there)", fn);
    if (!soft_labels)
        return DEL_OK;
    if (num_classes < 1)
        return del_error(DEL_EINVAL, "%s: 'num_classes' must be >= 1, got %d", fn, num_classes);
    const int64_t ls[2] = {n, num_classes};
    if (!del_tensor_has_shape(soft_labels, DEL_DTYPE_F32, 2, ls))
        return del_error(DEL_EINVAL, "%s: 'soft_labels' must be f32 [%lld, %d], got %s", fn, (long long)n,
                         num_classes, del_tensor_shape_str(soft_labels, got, sizeof got));
    if (targets) {
        if (!del_tensor_has_shape(targets, DEL_DTYPE_F32, 2, ls))
            return del_error(DEL_EINVAL, "%s: 'targets' must be f32 [%lld, %d], got %s", fn, (long long)n,
                             num_classes, del_tensor_shape_str(targets, got, sizeof got));
        const float *t = targets->data;
        for (int64_t i = 0; i < n * num_classes; i++)
            if (!isfinite(t[i]))
                return del_error(DEL_EINVAL, "%s: 'targets' row %lld has a non-finite value (%g)", fn,
                                 (long long)(i / num_classes), (double)t[i]);
        return DEL_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t y = ds->labels[indices[i]];
        if (y < 0 || y >= num_classes)
            return del_error(DEL_EINVAL, "%s: the label of 'indices[%lld]' (image %lld) must be in 0..%d, got %d", fn,
                             (long long)i, (long long)indices[i], num_classes - 1, (int)y);
    }
    return DEL_OK;
}

/* The work of both batch calls; fn names the public one in messages. */
static del_status augment_batch(del_augment *aug, const del_dataset *ds, const int64_t *indices, const int64_t *epochs,
                                int64_t n, uint64_t epoch, uint64_t batch_no, const float *mean, const float *std,
                                del_tensor *x, const del_tensor *targets, del_tensor *soft_labels, int num_classes,
                                const char *fn)
{
    int oh, ow;
    size_t max_px;
    del_status st = check_batch_args(aug, ds, indices, n, mean, std, x, targets, soft_labels, num_classes, &oh, &ow,
                                     &max_px, fn);
    if (st != DEL_OK)
        return st;
    const int c = ds->channels;
    float lut[3][256];
    del_normalize_lut(lut, c, mean, std);
    batch_ctx ctx = {.aug = aug, .ds = ds, .indices = indices, .epochs = epochs, .epoch = epoch, .oh = oh,
                     .ow = ow, .scratch_bytes = max_px * (size_t)c, .lut = (const float(*)[256])lut,
                     .x = x->data};
    atomic_init(&ctx.status, DEL_OK);
    del_parallel_for(n, batch_range, &ctx);
    st = (del_status)atomic_load(&ctx.status);
    if (st == DEL_ENOMEM)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    if (st != DEL_OK) /* the worker's own message is on its thread */
        return del_error(st, "%s: an image step failed (status %d)", fn, (int)st);
    float *soft = NULL;
    if (soft_labels) {
        soft = soft_labels->data;
        const size_t bytes = (size_t)n * (size_t)num_classes * sizeof *soft;
        if (targets) {
            memmove(soft, targets->data, bytes);
        } else {
            memset(soft, 0, bytes);
            for (int64_t i = 0; i < n; i++)
                soft[i * num_classes + ds->labels[indices[i]]] = 1.0f;
        }
    }
    del_augment_run_batch_steps(aug, x->data, soft, n, c, oh, ow, num_classes, epoch, batch_no);
    return DEL_OK;
}

DEL_API del_status del_augment_batch_epochs(del_augment *aug, const del_dataset *ds, const int64_t *indices,
                                            const int64_t *epochs, int64_t n, uint64_t epoch, uint64_t batch_no,
                                            const float *mean, const float *std, del_tensor *x,
                                            const del_tensor *targets, del_tensor *soft_labels, int num_classes)
{
    return augment_batch(aug, ds, indices, epochs, n, epoch, batch_no, mean, std, x, targets, soft_labels,
                         num_classes, "del_augment_batch_epochs");
}

DEL_API del_status del_augment_batch(del_augment *aug, const del_dataset *ds, const int64_t *indices, int64_t n,
                                     uint64_t epoch, uint64_t batch_no, const float *mean, const float *std,
                                     del_tensor *x, del_tensor *soft_labels, int num_classes)
{
    return augment_batch(aug, ds, indices, NULL, n, epoch, batch_no, mean, std, x, NULL, soft_labels, num_classes,
                         "del_augment_batch");
}
