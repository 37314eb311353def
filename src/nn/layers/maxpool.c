/* maxpool: y = max over each kernel x kernel window (floor mode, no padding),
 * NaN if the window holds one (PyTorch); backward routes dy to the first
 * max (the last NaN) through the saved argmax. */
#include "core/tensor_internal.h"
#include "nn/layers/pool.h"

static del_status maxpool_setup(del_layer *l, const char *func)
{
    return del_pool_setup(l, "maxpool", func);
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
    del_pool_shape_of(l, n, &s);
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
    del_pool_shape_of(l, n, &s);
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
