/* relu: y = max(x, 0), NaN for NaN (PyTorch);  dx = y > 0 ? dy : 0.
 * A relu folded into the batchnorm before it (layer.h) only passes views
 * through: the batchnorm already wrote max(., 0) and masks the gradient. */
#include "backend/backend.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static del_status relu_setup(del_layer *l, const char *func)
{
    (void)func;
    l->out_ndim = l->in_ndim;
    for (int i = 0; i < 3; i++)
        l->out_shape[i] = l->in_shape[i];
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}

static del_status relu_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    (void)ctx;
    int n = (int)x->shape[0];
    if (l->folded) {
        del_layer_view(l->out, x, n, l->out_ndim, l->out_shape);
        return DEL_OK;
    }
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    del_backend_get()->relu_forward(del_tensor_numel(x), x->data, l->out->data);
    return DEL_OK;
}

static del_status relu_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                const del_tensor *dy)
{
    (void)ctx;
    int n = (int)x->shape[0];
    if (l->folded) {
        del_layer_view(l->dx, dy, n, l->in_ndim, l->in_shape);
        return DEL_OK;
    }
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    del_backend_get()->relu_backward(del_tensor_numel(x), l->out->data, dy->data, l->dx->data);
    return DEL_OK;
}

const del_layer_ops del_layer_relu = {
    /* .name      = */ "relu",
    /* .setup     = */ relu_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ relu_forward,
    /* .backward  = */ relu_backward,
};
