/* Checking a stored model against the one it is restored into, and
 * restoring it: two phases, so that a caller restoring several models can
 * check them all before changing any. The stored model was rebuilt from
 * its model file by the model format's own code; it is compared with the
 * target layer by layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/checkpoint_internal.h"
#include "nn/model_internal.h"

void ckpt_describe(const del_checkpoint *ck, const ckpt_model *e, char *buf, size_t size)
{
    if (ck->n_models == 1)
        snprintf(buf, size, "'%s'", ck->source);
    else
        snprintf(buf, size, "model '%s' of '%s'", e->name, ck->source);
}

/* The first setting that differs between two layers of one type, written
 * into why; 0 if none. */
static int cfg_differs(const del_layer_cfg *a, const del_layer_cfg *b, char *why, size_t size)
{
#define INT_SETTING(f)                                                                              \
    if (a->f != b->f) {                                                                             \
        snprintf(why, size, "%s %d in the checkpoint, %d in 'model'", #f, a->f, b->f);              \
        return 1;                                                                                   \
    }
#define F32_SETTING(f)                                                                              \
    if (memcmp(&a->f, &b->f, sizeof a->f) != 0) {                                                   \
        snprintf(why, size, "%s %g in the checkpoint, %g in 'model'", #f, (double)a->f, (double)b->f); \
        return 1;                                                                                   \
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

static del_status check_architecture(const del_model *s, const del_model *m, const char *func, const char *what)
{
    if (s->in_c != m->in_c || s->in_h != m->in_h || s->in_w != m->in_w)
        return del_error(DEL_EINVAL, "%s: %s holds a model of input %d x %d x %d, 'model' takes %d x %d x %d", func,
                         what, s->in_c, s->in_h, s->in_w, m->in_c, m->in_h, m->in_w);
    if (s->n_layers != m->n_layers)
        return del_error(DEL_EINVAL, "%s: %s holds a model of %d layers, 'model' has %d", func, what, s->n_layers,
                         m->n_layers);
    for (int i = 0; i < s->n_layers; i++) {
        const del_layer *a = &s->layers[i], *b = &m->layers[i];
        char why[160];
        if (strcmp(a->ops->name, b->ops->name) != 0)
            return del_error(DEL_EINVAL, "%s: layer %d is %s in %s, %s in 'model'", func, i, a->ops->name, what,
                             b->ops->name);
        if (cfg_differs(&a->cfg, &b->cfg, why, sizeof why))
            return del_error(DEL_EINVAL, "%s: layer %d (%s) differs: %s (%s)", func, i, a->ops->name, why, what);
        if (a->n_params != b->n_params || a->n_state != b->n_state || a->param_off != b->param_off ||
            a->state_off != b->state_off)
            return del_error(DEL_EINVAL, "%s: layer %d (%s) has %lld parameters in %s, %lld in 'model'", func, i,
                             a->ops->name, (long long)a->n_params, what, (long long)b->n_params);
    }
    if (s->n_params != m->n_params || s->n_state != m->n_state)
        return del_error(DEL_EINVAL, "%s: %s holds %lld parameters and %lld state values, 'model' has %lld and %lld",
                         func, what, (long long)s->n_params, (long long)s->n_state, (long long)m->n_params,
                         (long long)m->n_state);
    return DEL_OK;
}

/* The layouts the checks above do not see (which layers form which named
 * head) show in the models' summaries. */
static del_status check_summaries(const del_model *s, const del_model *m, const char *func, const char *what)
{
    size_t ns = 0, nm = 0;
    (void)del_model_summary(s, NULL, 0, &ns);
    (void)del_model_summary(m, NULL, 0, &nm);
    char *a = malloc(ns), *b = malloc(nm);
    del_status st = DEL_OK;
    if (!a || !b)
        st = del_error(DEL_ENOMEM, "%s: out of memory", func);
    else if (del_model_summary(s, a, ns, NULL) != DEL_OK || del_model_summary(m, b, nm, NULL) != DEL_OK ||
             strcmp(a, b) != 0)
        st = del_error(DEL_EINVAL, "%s: %s holds a model laid out otherwise than 'model' (compare their "
                       "del_model_summary)", func, what);
    free(a);
    free(b);
    return st;
}

static const char *kind_name(del_optim_kind k)
{
    return k == DEL_OPTIM_ADAMW ? "AdamW" : "SGD";
}

del_status ckpt_check(const del_checkpoint *ck, const ckpt_model *e, const del_model *model,
                      const del_optimizer *opt, const char *func)
{
    char what[DEL_CHECKPOINT_MAX_NAME + 300];
    ckpt_describe(ck, e, what, sizeof what);
    del_status st = check_architecture(e->model, model, func, what);
    if (st == DEL_OK)
        st = check_summaries(e->model, model, func, what);
    if (st != DEL_OK || !opt)
        return st;
    if (opt->model != model)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for another model than 'model'", func);
    if (opt->n != model->n_params)
        return del_error(DEL_EINVAL, "%s: 'opt' was made for %lld parameters, 'model' has %lld (layers were added "
                         "or replaced since)", func, (long long)opt->n, (long long)model->n_params);
    if (!e->has_opt)
        return del_error(DEL_EINVAL, "%s: %s holds no optimizer state (saved without an optimizer); pass NULL "
                         "'opt' to load the model only", func, what);
    if (opt->kind != e->opt.kind)
        return del_error(DEL_EINVAL, "%s: 'opt' is %s but %s holds %s state", func, kind_name(opt->kind), what,
                         kind_name(e->opt.kind));
    return DEL_OK;
}

/* Makes *dst hold n floats of src (NULL: no buffer): into *dst if it has
 * one, else into fresh (which is then *dst's); an unused fresh is freed.
 * With fresh == src (stolen) no copy is needed when *dst has none. */
static void put_buffer(float **dst, const float *src, float *fresh, int64_t n)
{
    if (!src) {
        free(*dst);
        *dst = NULL;
        free(fresh);
        return;
    }
    if (!*dst) {
        *dst = fresh;
        fresh = NULL;
    }
    if (*dst != src)
        memcpy(*dst, src, (size_t)n * sizeof *src);
    free(fresh);
}

del_status ckpt_apply(ckpt_model *e, del_model *model, del_optimizer *opt, int steal, const char *func)
{
    const int with_opt = opt && e->has_opt;
    float *fresh1 = NULL, *fresh2 = NULL;
    if (with_opt && steal) {
        fresh1 = e->opt.state1;
        fresh2 = e->opt.state2;
        e->opt.state1 = e->opt.state2 = NULL;
    } else if (with_opt) {
        /* Allocated before anything changes: the only way to fail. */
        const size_t bytes = (size_t)e->opt.n * sizeof(float);
        if (e->opt.state1 && !opt->state1 && !(fresh1 = malloc(bytes)))
            return del_error(DEL_ENOMEM, "%s: out of memory for optimizer buffers", func);
        if (e->opt.state2 && !opt->state2 && !(fresh2 = malloc(bytes))) {
            free(fresh1);
            return del_error(DEL_ENOMEM, "%s: out of memory for optimizer buffers", func);
        }
    }
    const del_model *s = e->model;
    if (s->n_params > 0)
        memcpy(model->params, s->params, (size_t)s->n_params * sizeof *s->params);
    if (s->n_state > 0)
        memcpy(model->state, s->state, (size_t)s->n_state * sizeof *s->state);
    model->seed = e->seed;
    model->rng = e->rng;
    /* Through the public calls, which keep the model's own bookkeeping
     * (optimizers' ranges, batchnorm mode changes); the indices and values
     * were checked, so they cannot fail. */
    for (int i = 0; i < model->n_layers; i++) {
        if (model->groups[i].frozen != e->frozen[i])
            (void)(e->frozen[i] ? del_model_freeze(model, i, i) : del_model_unfreeze(model, i, i));
        if (model->groups[i].lr_mult != e->lr_mult[i])
            (void)del_model_set_lr_mult(model, i, i, e->lr_mult[i]);
    }
    if (!with_opt)
        return DEL_OK;
    const struct del_optimizer *o = &e->opt;
    put_buffer(&opt->state1, steal ? fresh1 : o->state1, fresh1, o->n);
    put_buffer(&opt->state2, steal ? fresh2 : o->state2, fresh2, o->n);
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
    return DEL_OK;
}
