/* flatten: [N, C, H, W] -> [N, C*H*W] in C order, so the data are unchanged:
 * out is a view of x and dx a view of dy (layer.h), nothing is copied. */
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static del_status flatten_setup(del_layer *l, const char *func)
{
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: flatten needs a 4-d input [N, C, H, W], got [N, %lld]", func,
                         (long long)l->in_shape[0]);
    l->out_ndim = 1;
    l->out_shape[0] = del_layer_shape_numel(3, l->in_shape);
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}

static del_status flatten_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    (void)ctx;
    del_layer_view(l->out, x, (int)x->shape[0], l->out_ndim, l->out_shape);
    return DEL_OK;
}

static del_status flatten_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                   const del_tensor *dy)
{
    (void)ctx;
    del_layer_view(l->dx, dy, (int)x->shape[0], l->in_ndim, l->in_shape);
    return DEL_OK;
}

const del_layer_ops del_layer_flatten = {
    /* .name      = */ "flatten",
    /* .setup     = */ flatten_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ flatten_forward,
    /* .backward  = */ flatten_backward,
};
