/* Checking a stored model against the one it is restored into, and
 * restoring it: two phases, so that a caller restoring several models can
 * check them all before changing any. The stored model was rebuilt from
 * its model file by the model format's own code; it is compared with the
 * target by del_model_check_same (the one architecture check, shared with
 * del_model_copy_weights and the EMA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/checkpoint_internal.h"
#include "nn/model_internal.h"

void ckpt_describe(const del_checkpoint *ck, const ckpt_model *e, char *buf, size_t size)
{
    if (ck->n_models == 1)
        snprintf(buf, size, "the checkpoint '%s'", ck->source);
    else
        snprintf(buf, size, "model '%s' of the checkpoint '%s'", e->name, ck->source);
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
    del_status st = del_model_check_same(e->model, what, model, "'model'", func);
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
