/* SGD as torch.optim.SGD (dampening 0), over the model's contiguous
 * parameter buffer:
 *   g = grad + wd * p;  v = momentum * v + g  (v = g at the first step);
 *   p -= lr * (nesterov ? g + momentum * v : v).
 * Schedules follow PyTorch's closed forms, with t the number of steps taken. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "del/train.h"

struct del_optimizer {
    del_model *model;
    int64_t n;        /* parameter count when created */
    float *velocity;  /* momentum buffers, NULL without momentum */
    float base_lr, momentum, weight_decay;
    int nesterov;
    del_schedule schedule;
    int64_t total_steps;
    float final_lr;
    int64_t step;
};

DEL_API del_status del_optimizer_new_sgd(del_optimizer **out, del_model *model, float lr, float momentum,
                                         float weight_decay, int nesterov)
{
    static const char *func = "del_optimizer_new_sgd";
    if (!out)
        return del_error_null(func, "out");
    *out = NULL;
    if (!model)
        return del_error_null(func, "model");
    int64_t n = del_model_num_params(model);
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'model' has no parameters", func);
    if (!(lr > 0.0f) || !isfinite(lr))
        return del_error(DEL_EINVAL, "%s: 'lr' must be > 0, got %g", func, (double)lr);
    if (!(momentum >= 0.0f && momentum < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'momentum' must be in [0, 1), got %g", func, (double)momentum);
    if (!(weight_decay >= 0.0f) || !isfinite(weight_decay))
        return del_error(DEL_EINVAL, "%s: 'weight_decay' must be >= 0, got %g", func,
                         (double)weight_decay);
    if (nesterov && momentum == 0.0f)
        return del_error(DEL_EINVAL, "%s: 'nesterov' needs momentum > 0", func);
    del_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    if (momentum > 0.0f) {
        o->velocity = calloc((size_t)n, sizeof(float));
        if (!o->velocity) {
            free(o);
            return del_error(DEL_ENOMEM, "%s: out of memory (%lld momentum buffers)", func, (long long)n);
        }
    }
    o->model = model;
    o->n = n;
    o->base_lr = lr;
    o->momentum = momentum;
    o->weight_decay = weight_decay;
    o->nesterov = nesterov != 0;
    o->schedule = DEL_SCHEDULE_CONSTANT;
    o->total_steps = 1;
    o->final_lr = lr;
    *out = o;
    return DEL_OK;
}

DEL_API void del_optimizer_free(del_optimizer *opt)
{
    if (!opt)
        return;
    free(opt->velocity);
    free(opt);
}

DEL_API del_status del_optimizer_set_schedule(del_optimizer *opt, del_schedule kind, int64_t total_steps,
                                              float final_lr)
{
    static const char *func = "del_optimizer_set_schedule";
    if (!opt)
        return del_error_null(func, "opt");
    if (kind != DEL_SCHEDULE_CONSTANT && kind != DEL_SCHEDULE_COSINE)
        return del_error(DEL_EINVAL, "%s: 'kind' must be a del_schedule (0..1), got %d", func, (int)kind);
    if (total_steps < 1)
        return del_error(DEL_EINVAL, "%s: 'total_steps' must be >= 1, got %lld", func,
                         (long long)total_steps);
    if (kind == DEL_SCHEDULE_COSINE && (!(final_lr >= 0.0f) || !isfinite(final_lr)))
        return del_error(DEL_EINVAL, "%s: 'final_lr' must be >= 0, got %g", func, (double)final_lr);
    opt->schedule = kind;
    opt->total_steps = total_steps;
    opt->final_lr = kind == DEL_SCHEDULE_CONSTANT ? opt->base_lr : final_lr;
    return DEL_OK;
}

DEL_API float del_optimizer_lr(const del_optimizer *opt)
{
    if (!opt)
        return 0.0f;
    if (opt->schedule == DEL_SCHEDULE_CONSTANT)
        return opt->base_lr;
    if (opt->step >= opt->total_steps)
        return opt->final_lr;
    const double pi = 3.14159265358979323846;
    double frac = (double)opt->step / (double)opt->total_steps;
    double lr = opt->final_lr + ((double)opt->base_lr - opt->final_lr) * (1.0 + cos(pi * frac)) / 2.0;
    return (float)lr;
}

DEL_API int64_t del_optimizer_steps(const del_optimizer *opt)
{
    return opt ? opt->step : 0;
}

DEL_API del_status del_optimizer_step(del_optimizer *opt)
{
    if (!opt)
        return del_error_null("del_optimizer_step", "opt");
    int64_t n = del_model_num_params(opt->model);
    if (n != opt->n)
        return del_error(DEL_ESTATE,
                         "del_optimizer_step: the model has %lld parameters, the optimizer was made for %lld "
                         "(layers were added; make a new optimizer)",
                         (long long)n, (long long)opt->n);
    float *p = del_model_params(opt->model);
    const float *grad = del_model_grads(opt->model);
    float lr = del_optimizer_lr(opt), wd = opt->weight_decay, mu = opt->momentum;
    float *v = opt->velocity;
    int first = opt->step == 0;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g = g + wd * p[i];
        float d = g;
        if (v) {
            v[i] = first ? g : mu * v[i] + g;
            d = opt->nesterov ? g + mu * v[i] : v[i];
        }
        p[i] = p[i] - lr * d;
    }
    opt->step++;
    return DEL_OK;
}
