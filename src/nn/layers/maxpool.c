/* maxpool: y = max over each kernel x kernel window (floor mode, no padding);
 * backward routes dy to the (first) max through the saved argmax. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static void pool_shape(const del_layer *l, int n, del_pool_shape *s)
{
    s->n = n;
    s->c = (int)l->in_shape[0];
    s->h_in = (int)l->in_shape[1];
    s->w_in = (int)l->in_shape[2];
    s->h_out = (int)l->out_shape[1];
    s->w_out = (int)l->out_shape[2];
    s->kernel = l->cfg.kernel;
    s->stride = l->cfg.stride;
}

static del_status maxpool_setup(del_layer *l, const char *func)
{
    const del_layer_cfg *c = &l->cfg;
    if (c->kernel < 1)
        return del_error(DEL_EINVAL, "%s: 'kernel' must be >= 1, got %d", func, c->kernel);
    if (c->stride < 1)
        return del_error(DEL_EINVAL, "%s: 'stride' must be >= 1, got %d", func, c->stride);
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: maxpool needs a 4-d input [N, C, H, W], got [N, %lld]", func,
                         (long long)l->in_shape[0]);
    if (l->in_shape[1] < c->kernel || l->in_shape[2] < c->kernel)
        return del_error(DEL_EINVAL, "%s: 'kernel' %d is larger than the input %lldx%lld", func,
                         c->kernel, (long long)l->in_shape[1], (long long)l->in_shape[2]);
    l->out_ndim = 3;
    l->out_shape[0] = l->in_shape[0];
    l->out_shape[1] = (l->in_shape[1] - c->kernel) / c->stride + 1;
    l->out_shape[2] = (l->in_shape[2] - c->kernel) / c->stride + 1;
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}

static del_status maxpool_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    st = del_tensor_ensure(l->aux, DEL_DTYPE_I32, l->out->ndim, l->out->shape);
    if (st != DEL_OK)
        return st;
    del_pool_shape s;
    pool_shape(l, n, &s);
    del_backend_get()->maxpool2d_forward(&s, x->data, l->out->data, l->aux->data);
    return DEL_OK;
}

static del_status maxpool_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                   const del_tensor *dy)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    del_pool_shape s;
    pool_shape(l, n, &s);
    del_backend_get()->maxpool2d_backward(&s, dy->data, l->aux->data, l->dx->data);
    return DEL_OK;
}

const del_layer_ops del_layer_maxpool = {
    /* .name      = */ "maxpool",
    /* .setup     = */ maxpool_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ maxpool_forward,
    /* .backward  = */ maxpool_backward,
};
