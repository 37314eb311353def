/* avgpool: y = mean over each kernel x kernel window (floor mode, no
 * padding, divisor kernel*kernel: torch's AvgPool2d(kernel, stride));
 * global_avgpool: [N, C, H, W] -> [N, C], y[n, c] = mean of the plane
 * (torch's AdaptiveAvgPool2d(1) then flatten). Both are linear, so
 * backward needs neither x nor the output. */
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layers/pool.h"

static del_status avgpool_setup(del_layer *l, const char *func)
{
    return del_pool_setup(l, "avgpool", func);
}

static del_status avgpool_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    del_pool_shape s;
    del_pool_shape_of(l, n, &s);
    del_backend_get()->avgpool2d_forward(&s, x->data, l->out->data);
    return DEL_OK;
}

static del_status avgpool_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                   const del_tensor *dy)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    del_pool_shape s;
    del_pool_shape_of(l, n, &s);
    del_backend_get()->avgpool2d_backward(&s, dy->data, l->dx->data);
    return DEL_OK;
}

const del_layer_ops del_layer_avgpool = {
    /* .name      = */ "avgpool",
    /* .setup     = */ avgpool_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ avgpool_forward,
    /* .backward  = */ avgpool_backward,
};

static del_status gap_setup(del_layer *l, const char *func)
{
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: global_avgpool needs a 4-d input [N, C, H, W], got [N, %lld]", func,
                         (long long)l->in_shape[0]);
    if (l->in_shape[1] * l->in_shape[2] > INT32_MAX)
        return del_error(DEL_EINVAL, "%s: global_avgpool over %lldx%lld planes is too large", func,
                         (long long)l->in_shape[1], (long long)l->in_shape[2]);
    l->out_ndim = 1;
    l->out_shape[0] = l->in_shape[0];
    l->out_shape[1] = 0;
    l->out_shape[2] = 0;
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}

static int gap_plane(const del_layer *l)
{
    return (int)(l->in_shape[1] * l->in_shape[2]);
}

static del_status gap_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    del_backend_get()->global_avgpool_forward((int64_t)n * l->in_shape[0], gap_plane(l), x->data, l->out->data);
    return DEL_OK;
}

static del_status gap_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, const del_tensor *dy)
{
    (void)ctx;
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    del_backend_get()->global_avgpool_backward((int64_t)n * l->in_shape[0], gap_plane(l), dy->data, l->dx->data);
    return DEL_OK;
}

const del_layer_ops del_layer_global_avgpool = {
    /* .name      = */ "global_avgpool",
    /* .setup     = */ gap_setup,
    /* .init      = */ NULL,
    /* .workspace = */ NULL,
    /* .forward   = */ gap_forward,
    /* .backward  = */ gap_backward,
};
