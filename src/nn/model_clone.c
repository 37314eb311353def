/* Copies of a model: del_model_clone (a new, independent model),
 * del_model_copy_weights (parameters and statistics into a model of the same
 * architecture) and the exponential moving average of the weights
 * (del_model_ema_update[_step]); and the architecture comparison they share
 * with checkpoint loading (del_model_check_same).
 *
 * All parameters live in one buffer and all batchnorm statistics in
 * another, so once the layers exist every copy is a memcpy or one loop. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "nn/model_internal.h"

/* ---- the architecture comparison ---- */

/* The first setting that differs between two layers of one type, written
 * into why; 0 if none. */
static int cfg_differs(const del_layer_cfg *a, const char *a_name, const del_layer_cfg *b, const char *b_name,
                       char *why, size_t size)
{
#define INT_SETTING(f)                                                                         \
    if (a->f != b->f) {                                                                        \
        snprintf(why, size, "%s %d in %s, %d in %s", #f, a->f, a_name, b->f, b_name);          \
        return 1;                                                                              \
    }
#define F32_SETTING(f)                                                                         \
    if (memcmp(&a->f, &b->f, sizeof a->f) != 0) {                                              \
        snprintf(why, size, "%s %g in %s, %g in %s", #f, (double)a->f, a_name, (double)b->f, b_name); \
        return 1;                                                                              \
    }
    INT_SETTING(out)
    INT_SETTING(kernel)
    INT_SETTING(stride)
    INT_SETTING(pad)
    INT_SETTING(bias)
    F32_SETTING(eps)
    F32_SETTING(momentum)
    F32_SETTING(p)
    F32_SETTING(survival)
#undef INT_SETTING
#undef F32_SETTING
    return 0;
}

/* The input shape, the layers (type, settings, sizes) and the heads (names
 * and layer ranges) determine everything else: output shapes, offsets into
 * the buffers, which relu folds into which batchnorm. */
del_status del_model_check_same(const del_model *a, const char *a_name, const del_model *b, const char *b_name,
                                const char *func)
{
    if (a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w)
        return del_error(DEL_EINVAL, "%s: %s takes input %d x %d x %d, %s takes %d x %d x %d", func, a_name, a->in_c,
                         a->in_h, a->in_w, b_name, b->in_c, b->in_h, b->in_w);
    if (a->n_layers != b->n_layers)
        return del_error(DEL_EINVAL, "%s: %s has %d layers, %s has %d", func, a_name, a->n_layers, b_name,
                         b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        const del_layer *la = &a->layers[i], *lb = &b->layers[i];
        char why[256];
        if (strcmp(la->ops->name, lb->ops->name) != 0)
            return del_error(DEL_EINVAL, "%s: layer %d is %s in %s, %s in %s", func, i, la->ops->name, a_name,
                             lb->ops->name, b_name);
        if (cfg_differs(&la->cfg, a_name, &lb->cfg, b_name, why, sizeof why))
            return del_error(DEL_EINVAL, "%s: layer %d (%s) differs: %s", func, i, la->ops->name, why);
        if (la->n_params != lb->n_params || la->param_off != lb->param_off)
            return del_error(DEL_EINVAL, "%s: layer %d (%s) has %lld parameters in %s, %lld in %s", func, i,
                             la->ops->name, (long long)la->n_params, a_name, (long long)lb->n_params, b_name);
        if (la->n_state != lb->n_state || la->state_off != lb->state_off)
            return del_error(DEL_EINVAL, "%s: layer %d (%s) has %lld running statistics in %s, %lld in %s", func, i,
                             la->ops->name, (long long)la->n_state, a_name, (long long)lb->n_state, b_name);
    }
    if (a->n_heads != b->n_heads)
        return del_error(DEL_EINVAL, "%s: the number of heads differs: %d in %s, %d in %s", func, a->n_heads,
                         a_name, b->n_heads, b_name);
    for (int h = 0; h < a->n_heads; h++) {
        const del_head *ha = &a->heads[h], *hb = &b->heads[h];
        if (strcmp(ha->name, hb->name) != 0)
            return del_error(DEL_EINVAL, "%s: head %d is '%s' in %s, '%s' in %s", func, h, ha->name, a_name,
                             hb->name, b_name);
        if (ha->first != hb->first || ha->count != hb->count)
            return del_error(DEL_EINVAL, "%s: head '%s' is layers %d..%d in %s, %d..%d in %s", func, ha->name,
                             ha->first, ha->first + ha->count - 1, a_name, hb->first, hb->first + hb->count - 1,
                             b_name);
    }
    if (a->n_params != b->n_params || a->n_state != b->n_state)
        return del_error(DEL_EINVAL, "%s: %s holds %lld parameters and %lld state values, %s %lld and %lld", func,
                         a_name, (long long)a->n_params, (long long)a->n_state, b_name, (long long)b->n_params,
                         (long long)b->n_state);
    return DEL_OK;
}

/* ---- copies ---- */

static void copy_floats(float *dst, const float *src, int64_t n)
{
    if (n > 0)
        memcpy(dst, src, (size_t)n * sizeof *dst);
}

DEL_API del_status del_model_clone(del_model **out, const del_model *model)
{
    static const char fn[] = "del_model_clone";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!model)
        return del_error_null(fn, "model");
    del_model *m = NULL;
    if (del_model_new(&m, model->in_c, model->in_h, model->in_w) != DEL_OK)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    /* The layers are rebuilt as the model file loader rebuilds them: the
     * same builder, type and settings, each head opened before its first
     * layer; the builders fuse and lay out exactly as they did for model. */
    del_status st = DEL_OK;
    int next_head = 0;
    for (int i = 0; i < model->n_layers && st == DEL_OK; i++) {
        if (next_head < model->n_heads && i == model->heads[next_head].first)
            st = del_model_begin_head(m, model->heads[next_head++].name, fn);
        if (st == DEL_OK)
            st = del_model_add_layer(m, model->layers[i].ops, &model->layers[i].cfg, fn);
    }
    del_model_end_head(m);
    if (st != DEL_OK) {
        del_model_free(m);
        return st;
    }
    copy_floats(m->params, model->params, model->n_params);
    copy_floats(m->state, model->state, model->n_state);
    if (model->n_layers > 0)
        memcpy(m->groups, model->groups, (size_t)model->n_layers * sizeof *m->groups);
    m->groups_version++;
    m->seed = model->seed;
    m->rng = model->rng;
    m->training = model->training;
    *out = m;
    return DEL_OK;
}

DEL_API del_status del_model_copy_weights(del_model *dst, const del_model *src)
{
    static const char fn[] = "del_model_copy_weights";
    if (!dst)
        return del_error_null(fn, "dst");
    if (!src)
        return del_error_null(fn, "src");
    if (dst == src)
        return DEL_OK;
    del_status st = del_model_check_same(src, "'src'", dst, "'dst'", fn);
    if (st != DEL_OK)
        return st;
    copy_floats(dst->params, src->params, src->n_params);
    copy_floats(dst->state, src->state, src->n_state);
    return DEL_OK;
}

/* ---- exponential moving average ---- */

static void ema_update(del_model *ema, const del_model *model, float decay)
{
    /* p_ema = decay p_ema + (1 - decay) p in double: both products are
     * exact for decay >= 0.5, so a parameter that did not move (a frozen
     * layer's) stays bit for bit. Each element on its own, in one loop:
     * the result does not depend on the thread count. decay 0 and 1 are
     * exact copies, whatever the values (0 * inf would be NaN). */
    if (decay == 0.0f) {
        copy_floats(ema->params, model->params, model->n_params);
    } else if (decay < 1.0f) {
        float *e = ema->params;
        const float *p = model->params;
        const double d = decay, rest = 1.0 - d;
        for (int64_t k = 0; k < model->n_params; k++)
            e[k] = (float)(d * e[k] + rest * p[k]);
    }
    /* The running statistics are copied, as FixMatch's EMA does: they are
     * themselves a moving average (momentum 0.1) of the live model's batch
     * statistics, and averaging them again at decay would make them lag far
     * behind the weights they normalise. */
    copy_floats(ema->state, model->state, model->n_state);
}

static del_status ema_check(const del_model *ema, const del_model *model, float decay, const char *fn)
{
    if (!ema)
        return del_error_null(fn, "ema");
    if (!model)
        return del_error_null(fn, "model");
    if (!(decay >= 0.0f && decay <= 1.0f))
        return del_error(DEL_EINVAL, "%s: 'decay' must be in [0, 1], got %g", fn, (double)decay);
    if (ema == model)
        return del_error(DEL_EINVAL, "%s: 'ema' and 'model' must be two models (make the average with "
                         "del_model_clone(&ema, model))", fn);
    return del_model_check_same(model, "'model'", ema, "'ema'", fn);
}

DEL_API del_status del_model_ema_update(del_model *ema, const del_model *model, float decay)
{
    static const char fn[] = "del_model_ema_update";
    del_status st = ema_check(ema, model, decay, fn);
    if (st == DEL_OK)
        ema_update(ema, model, decay);
    return st;
}

/* TensorFlow's ExponentialMovingAverage with num_updates: min(decay,
 * (1 + step) / (10 + step)), the ratio rounded to float. */
static float warmup_decay(float decay, int64_t step)
{
    float warm = (float)((1.0 + (double)step) / (10.0 + (double)step));
    return warm < decay ? warm : decay;
}

DEL_API del_status del_model_ema_update_step(del_model *ema, const del_model *model, float decay, int64_t step)
{
    static const char fn[] = "del_model_ema_update_step";
    del_status st = ema_check(ema, model, decay, fn);
    if (st != DEL_OK)
        return st;
    if (step < 0)
        return del_error(DEL_EINVAL, "%s: 'step' must be >= 0, got %lld", fn, (long long)step);
    ema_update(ema, model, warmup_decay(decay, step));
    return DEL_OK;
}
