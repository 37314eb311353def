/* Optimizers over the model's contiguous parameter buffer, with PyTorch's
 * update rules:
 *   SGD (torch.optim.SGD, dampening 0):
 *     g = grad + wd * p;  v = momentum * v + g  (v = g at the first step);
 *     p -= lr * (nesterov ? g + momentum * v : v).
 *   AdamW (torch.optim.AdamW, amsgrad off), t = 1, 2, ...:
 *     p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Schedules follow PyTorch's closed forms, with t the number of steps taken
 * after an optional linear warm-up. Gradient clipping scales the gradients
 * the update reads, as clip_grad_norm_ would before optimizer.step().
 * Parameter groups (model.h) become ranges of the parameter buffer: frozen
 * layers are left out of every range, so neither they nor their state
 * change (requires_grad=False); each range has its layers' lr multiplier.
 * The ranges are rebuilt whenever the model's groups changed (every
 * freeze, multiplier or layer-list change bumps its groups_version), so
 * they follow them at no per-step cost; a layer unfrozen mid-run starts
 * from zero state: for SGD that is torch's
 * behaviour (its momentum buffer starts at the gradient), for AdamW the
 * bias correction counts the optimizer's steps, not the layer's. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "del/train.h"
#include "nn/model_internal.h"
#include "nn/optim_internal.h"

static int is_finite_ge0(float x)
{
    return x >= 0.0f && isfinite(x);
}

/* One range per run of trainable layers with the same multiplier, in
 * parameter order. The room grows when the model has more layers with
 * parameters than when the ranges were last built (layers were replaced,
 * e.g. a new head); the old ranges are kept if that allocation fails. */
static del_status build_ranges(del_optimizer *o, const char *func)
{
    const del_model *m = o->model;
    int with_params = 0;
    for (int i = 0; i < m->n_layers; i++)
        with_params += m->layers[i].n_params > 0;
    if (with_params > o->ranges_cap) {
        del_optim_range *r = realloc(o->ranges, (size_t)with_params * sizeof *r);
        if (!r)
            return del_error(DEL_ENOMEM, "%s: out of memory for %d parameter ranges", func, with_params);
        o->ranges = r;
        o->ranges_cap = with_params;
    }
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const del_layer *l = &m->layers[i];
        if (l->n_params == 0 || m->groups[i].frozen)
            continue;
        float mult = m->groups[i].lr_mult;
        del_optim_range *prev = k > 0 ? &o->ranges[k - 1] : NULL;
        if (prev && prev->lr_scale == mult && prev->begin + prev->count == l->param_off)
            prev->count += l->n_params;
        else
            o->ranges[k++] = (del_optim_range){.begin = l->param_off, .count = l->n_params, .lr_scale = mult};
    }
    o->num_ranges = k;
    o->groups_version = m->groups_version;
    return DEL_OK;
}

/* The part of both constructors that does not depend on the rule. */
static del_status optim_new(del_optimizer **out, del_model *model, del_optim_kind kind, float lr, float weight_decay,
                            int num_states, const char *func)
{
    int64_t n = del_model_num_params(model);
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'model' has no parameters", func);
    if (!(lr > 0.0f) || !isfinite(lr))
        return del_error(DEL_EINVAL, "%s: 'lr' must be a finite value > 0, got %g", func, (double)lr);
    if (!is_finite_ge0(weight_decay))
        return del_error(DEL_EINVAL, "%s: 'weight_decay' must be a finite value >= 0, got %g", func, (double)weight_decay);
    del_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    if (num_states >= 1 && !(o->state1 = calloc((size_t)n, sizeof(float))))
        goto nomem;
    if (num_states >= 2 && !(o->state2 = calloc((size_t)n, sizeof(float))))
        goto nomem;
    o->model = model;
    if (build_ranges(o, func) != DEL_OK)
        goto nomem;
    o->n = n;
    o->layout_version = model->layout_version;
    o->kind = kind;
    o->base_lr = lr;
    o->weight_decay = weight_decay;
    o->schedule = DEL_SCHEDULE_CONSTANT;
    o->total_steps = 1;
    o->final_lr = lr;
    o->step_size = 1;
    o->gamma = 1.0f;
    *out = o;
    return DEL_OK;

nomem:
    del_optimizer_free(o);
    return del_error(DEL_ENOMEM, "%s: out of memory (%d state buffers of %lld floats)", func, num_states,
                     (long long)n);
}

DEL_API del_status del_optimizer_new_sgd(del_optimizer **out, del_model *model, float lr, float momentum,
                                         float weight_decay, int nesterov)
{
    static const char *func = "del_optimizer_new_sgd";
    if (!out)
        return del_error_null(func, "out");
    *out = NULL;
    if (!model)
        return del_error_null(func, "model");
    if (!(momentum >= 0.0f && momentum < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'momentum' must be in [0, 1), got %g", func, (double)momentum);
    if (nesterov && momentum == 0.0f)
        return del_error(DEL_EINVAL, "%s: 'nesterov' needs momentum > 0", func);
    del_status st = optim_new(out, model, DEL_OPTIM_SGD, lr, weight_decay, momentum > 0.0f ? 1 : 0, func);
    if (st != DEL_OK)
        return st;
    (*out)->momentum = momentum;
    (*out)->nesterov = nesterov != 0;
    return DEL_OK;
}

DEL_API del_status del_optimizer_new_adamw(del_optimizer **out, del_model *model, float lr, float beta1, float beta2,
                                           float eps, float weight_decay)
{
    static const char *func = "del_optimizer_new_adamw";
    if (!out)
        return del_error_null(func, "out");
    *out = NULL;
    if (!model)
        return del_error_null(func, "model");
    if (!(beta1 >= 0.0f && beta1 < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'beta1' must be in [0, 1), got %g", func, (double)beta1);
    if (!(beta2 >= 0.0f && beta2 < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'beta2' must be in [0, 1), got %g", func, (double)beta2);
    /* torch accepts eps = 0, but then a parameter whose gradient has always
     * been 0 divides 0 by 0. */
    if (!(eps > 0.0f) || !isfinite(eps))
        return del_error(DEL_EINVAL, "%s: 'eps' must be a finite value > 0, got %g", func, (double)eps);
    del_status st = optim_new(out, model, DEL_OPTIM_ADAMW, lr, weight_decay, 2, func);
    if (st != DEL_OK)
        return st;
    (*out)->beta1 = beta1;
    (*out)->beta2 = beta2;
    (*out)->eps = eps;
    return DEL_OK;
}

DEL_API void del_optimizer_free(del_optimizer *opt)
{
    if (!opt)
        return;
    free(opt->state1);
    free(opt->state2);
    free(opt->ranges);
    free(opt);
}

DEL_API del_status del_optimizer_set_schedule(del_optimizer *opt, del_schedule kind, int64_t total_steps,
                                              float final_lr)
{
    static const char *func = "del_optimizer_set_schedule";
    if (!opt)
        return del_error_null(func, "opt");
    if (kind == DEL_SCHEDULE_STEP)
        return del_error(DEL_EINVAL, "%s: 'kind' DEL_SCHEDULE_STEP takes its settings from "
                         "del_optimizer_set_step_schedule", func);
    if (kind != DEL_SCHEDULE_CONSTANT && kind != DEL_SCHEDULE_COSINE)
        return del_error(DEL_EINVAL, "%s: 'kind' must be DEL_SCHEDULE_CONSTANT (0) or DEL_SCHEDULE_COSINE (1), "
                         "got %d", func, (int)kind);
    if (total_steps < 1)
        return del_error(DEL_EINVAL, "%s: 'total_steps' must be >= 1, got %lld", func,
                         (long long)total_steps);
    if (kind == DEL_SCHEDULE_COSINE && !is_finite_ge0(final_lr))
        return del_error(DEL_EINVAL, "%s: 'final_lr' must be a finite value >= 0, got %g", func, (double)final_lr);
    opt->schedule = kind;
    opt->total_steps = total_steps;
    opt->final_lr = kind == DEL_SCHEDULE_CONSTANT ? opt->base_lr : final_lr;
    return DEL_OK;
}

DEL_API del_status del_optimizer_set_step_schedule(del_optimizer *opt, int64_t step_size, float gamma)
{
    static const char *func = "del_optimizer_set_step_schedule";
    if (!opt)
        return del_error_null(func, "opt");
    if (step_size < 1)
        return del_error(DEL_EINVAL, "%s: 'step_size' must be >= 1, got %lld", func, (long long)step_size);
    if (!(gamma > 0.0f) || !isfinite(gamma))
        return del_error(DEL_EINVAL, "%s: 'gamma' must be a finite value > 0, got %g", func, (double)gamma);
    opt->schedule = DEL_SCHEDULE_STEP;
    opt->step_size = step_size;
    opt->gamma = gamma;
    return DEL_OK;
}

DEL_API del_status del_optimizer_set_warmup(del_optimizer *opt, int64_t warmup_steps)
{
    static const char *func = "del_optimizer_set_warmup";
    if (!opt)
        return del_error_null(func, "opt");
    if (warmup_steps < 0)
        return del_error(DEL_EINVAL, "%s: 'warmup_steps' must be >= 0, got %lld", func, (long long)warmup_steps);
    opt->warmup = warmup_steps;
    return DEL_OK;
}

DEL_API del_status del_optimizer_set_clip_norm(del_optimizer *opt, float max_norm)
{
    static const char *func = "del_optimizer_set_clip_norm";
    if (!opt)
        return del_error_null(func, "opt");
    if (!is_finite_ge0(max_norm))
        return del_error(DEL_EINVAL, "%s: 'max_norm' must be a finite value >= 0 (0 = off), got %g", func, (double)max_norm);
    opt->clip_norm = max_norm;
    return DEL_OK;
}

DEL_API double del_optimizer_grad_norm(const del_optimizer *opt)
{
    return opt ? opt->grad_norm : 0.0;
}

DEL_API float del_optimizer_lr(const del_optimizer *opt)
{
    if (!opt)
        return 0.0f;
    int64_t t = opt->step;
    if (t < opt->warmup)
        return (float)((double)opt->base_lr * (double)(t + 1) / (double)opt->warmup);
    t -= opt->warmup;
    switch (opt->schedule) {
    case DEL_SCHEDULE_COSINE: {
        int64_t span = opt->total_steps - opt->warmup;
        if (t >= span)
            return opt->final_lr;
        const double pi = 3.14159265358979323846;
        double frac = (double)t / (double)span;
        return (float)(opt->final_lr + ((double)opt->base_lr - opt->final_lr) * (1.0 + cos(pi * frac)) / 2.0);
    }
    case DEL_SCHEDULE_STEP:
        return (float)((double)opt->base_lr * pow((double)opt->gamma, (double)(t / opt->step_size)));
    case DEL_SCHEDULE_CONSTANT:
    default:
        return opt->base_lr;
    }
}

DEL_API int64_t del_optimizer_steps(const del_optimizer *opt)
{
    return opt ? opt->step : 0;
}

/* The factor clip_grad_norm_ would scale the gradients by (1 when clipping
 * is off or the norm is within bounds); records the norm of the trainable
 * parameters' gradients (torch skips those of frozen parameters, which
 * have none). The sum runs in parameter order in double, so it does not
 * depend on threads. */
static float clip_factor(del_optimizer *opt, const float *grad)
{
    if (opt->clip_norm == 0.0f) {
        opt->grad_norm = 0.0;
        return 1.0f;
    }
    double sum = 0.0;
    for (int k = 0; k < opt->num_ranges; k++) {
        const del_optim_range *r = &opt->ranges[k];
        for (int64_t i = r->begin; i < r->begin + r->count; i++)
            sum += (double)grad[i] * (double)grad[i];
    }
    opt->grad_norm = sqrt(sum);
    double coef = (double)opt->clip_norm / (opt->grad_norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

static void sgd_update(del_optimizer *opt, const del_optim_range *r, float lr, float gscale)
{
    float *p = del_model_params(opt->model) + r->begin;
    const float *grad = del_model_grads(opt->model) + r->begin;
    float *v = opt->state1 ? opt->state1 + r->begin : NULL;
    float wd = opt->weight_decay, mu = opt->momentum;
    int first = opt->step == 0;
    for (int64_t i = 0; i < r->count; i++) {
        float g = grad[i] * gscale;
        if (wd != 0.0f)
            g = g + wd * p[i];
        float d = g;
        if (v) {
            v[i] = first ? g : mu * v[i] + g;
            d = opt->nesterov ? g + mu * v[i] : v[i];
        }
        p[i] = p[i] - lr * d;
    }
}

static void adamw_update(del_optimizer *opt, const del_optim_range *r, float lr, float gscale)
{
    float *p = del_model_params(opt->model) + r->begin;
    const float *grad = del_model_grads(opt->model) + r->begin;
    float *m = opt->state1 + r->begin, *v = opt->state2 + r->begin;
    /* The scalars are formed in double and rounded once, as torch does in
     * Python before handing them to its float kernels. */
    double t = (double)(opt->step + 1);
    double bc1 = 1.0 - pow((double)opt->beta1, t), bc2 = 1.0 - pow((double)opt->beta2, t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - (double)lr * (double)opt->weight_decay);
    float b1 = opt->beta1, b2 = opt->beta2, eps = opt->eps;
    float one_b1 = (float)(1.0 - (double)b1), one_b2 = (float)(1.0 - (double)b2);
    int decays = opt->weight_decay != 0.0f;
    for (int64_t i = 0; i < r->count; i++) {
        float g = grad[i] * gscale;
        if (decays)
            p[i] = p[i] * decay;
        m[i] = b1 * m[i] + one_b1 * g;
        v[i] = b2 * v[i] + one_b2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * m[i] / denom;
    }
}

DEL_API del_status del_optimizer_step(del_optimizer *opt)
{
    if (!opt)
        return del_error_null("del_optimizer_step", "opt");
    /* Two causes, each with its own message: layers removed or replaced
     * (a head; layout_version, whatever the parameter count now is), or
     * layers with parameters appended (the count grew, the layout did not
     * change). Either way the state belongs to other parameters. */
    int64_t n = del_model_num_params(opt->model);
    if (opt->model->layout_version != opt->layout_version)
        return del_error(DEL_ESTATE,
                         "del_optimizer_step: the model's layers were removed or replaced since the optimizer was "
                         "made (e.g. del_model_remove_head, del_model_replace_head; the model has %lld parameters, "
                         "the optimizer was made for %lld): the optimizer's state belongs to other parameters; "
                         "make a new optimizer",
                         (long long)n, (long long)opt->n);
    if (n != opt->n)
        return del_error(DEL_ESTATE,
                         "del_optimizer_step: layers with parameters were added to the model since the optimizer "
                         "was made (the model has %lld parameters, the optimizer was made for %lld): make a "
                         "new optimizer",
                         (long long)n, (long long)opt->n);
    if (opt->groups_version != opt->model->groups_version) {
        del_status st = build_ranges(opt, "del_optimizer_step");
        if (st != DEL_OK)
            return st;
    }
    float gscale = clip_factor(opt, del_model_grads(opt->model));
    float lr = del_optimizer_lr(opt);
    for (int k = 0; k < opt->num_ranges; k++) {
        const del_optim_range *r = &opt->ranges[k];
        float range_lr = lr * r->lr_scale;
        if (opt->kind == DEL_OPTIM_ADAMW)
            adamw_update(opt, r, range_lr, gscale);
        else
            sgd_update(opt, r, range_lr, gscale);
    }
    opt->step++;
    return DEL_OK;
}
