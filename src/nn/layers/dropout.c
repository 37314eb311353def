/* dropout (inverted): in training y = x * m with m = 0 (probability p) or
 * 1/(1-p), the mask drawn from the model's stream on the calling thread so
 * results do not depend on the thread count; identity in evaluation.
 * aux keeps m for backward: dx = dy * m. */
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static del_status dropout_setup(del_layer *l, const char *func)
{
    if (!(l->cfg.p >= 0.0f && l->cfg.p < 1.0f))
        return del_error(DEL_EINVAL, "%s: 'p' must be in [0, 1), got %g", func, (double)l->cfg.p);
    l->out_ndim = l->in_ndim;
    for (int i = 0; i < 3; i++)
        l->out_shape[i] = l->in_shape[i];
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}

static del_status dropout_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    if (!ctx->training) {
        /* identity: a view of x (layer.h), no copy */
        del_layer_view(l->out, x, (int)x->shape[0], l->out_ndim, l->out_shape);
        return DEL_OK;
    }
    del_status st = del_layer_ensure_out(l, (int)x->shape[0]);
    if (st != DEL_OK)
        return st;
    st = del_tensor_ensure(l->aux, DEL_DTYPE_F32, x->ndim, x->shape);
    if (st != DEL_OK)
        return st;
    int64_t count = del_tensor_numel(x);
    float p = l->cfg.p, scale = 1.0f / (1.0f - p);
    float *m = l->aux->data, *y = l->out->data;
    const float *xs = x->data;
    for (int64_t i = 0; i < count; i++) {
        m[i] = p > 0.0f && del_rng_uniform(ctx->rng) < p ? 0.0f : scale;
        y[i] = xs[i] * m[i];
    }
    return DEL_OK;
}

static del_status dropout_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                   const del_tensor *dy)
{
    (void)ctx;
    del_status st = del_layer_ensure_dx(l, (int)x->shape[0]);
    if (st != DEL_OK)
        return st;
    int64_t count = del_tensor_numel(x);
    const float *m = l->aux->data, *g = dy->data;
    float *dx = l->dx->data;
    for (int64_t i = 0; i < count; i++)
        dx[i] = g[i] * m[i];
    return DEL_OK;
}

const del_layer_ops del_layer_dropout = {
    /* .name      = */ "dropout",
    /* .setup     = */ dropout_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ dropout_forward,
    /* .backward  = */ dropout_backward,
};
