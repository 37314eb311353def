/* linear: y = x W^T + b, x [N, in], W [out, in], b [out].
 * dW += dy^T x;  db += sum_rows(dy);  dx = dy W. */
#include <math.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static del_status linear_setup(del_layer *l, const char *func)
{
    if (l->cfg.out < 1)
        return del_error(DEL_EINVAL, "%s: 'out_features' must be >= 1, got %d", func, l->cfg.out);
    if (l->cfg.bias != 0 && l->cfg.bias != 1)
        return del_error(DEL_EINVAL, "%s: 'bias' must be 0 or 1, got %d", func, l->cfg.bias);
    if (l->in_ndim != 1)
        return del_error(DEL_EINVAL,
                         "%s: linear needs a 2-d input [N, F], got [N, %lld, %lld, %lld] "
                         "(add flatten first)",
                         func, (long long)l->in_shape[0], (long long)l->in_shape[1],
                         (long long)l->in_shape[2]);
    int64_t in = l->in_shape[0];
    if (in > INT32_MAX / l->cfg.out)
        return del_error(DEL_EINVAL, "%s: linear %lld -> %d is too large", func, (long long)in,
                         l->cfg.out);
    l->out_ndim = 1;
    l->out_shape[0] = l->cfg.out;
    l->n_params = in * l->cfg.out + (l->cfg.bias ? l->cfg.out : 0);
    l->n_state = 0;
    return DEL_OK;
}

static void linear_init(const del_layer *l, float *params, float *state, del_rng *r)
{
    (void)state;
    float bound = 1.0f / sqrtf((float)l->in_shape[0]);
    del_layer_init_uniform(params, l->n_params, bound, r);
}

static del_status linear_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    const del_backend *be = del_backend_get();
    int n = (int)x->shape[0], in = (int)l->in_shape[0], out = l->cfg.out;
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    float *y = l->out->data;
    const float *w = ctx->params;
    be->gemm(0, 1, n, out, in, 1.0f, x->data, in, w, in, 0.0f, y, out);
    if (l->cfg.bias)
        be->add_bias_rows(n, out, w + (int64_t)in * out, y);
    return DEL_OK;
}

static del_status linear_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                  const del_tensor *dy)
{
    const del_backend *be = del_backend_get();
    int n = (int)x->shape[0], in = (int)l->in_shape[0], out = l->cfg.out;
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    const float *g = dy->data;
    be->gemm(1, 0, out, in, n, 1.0f, g, out, x->data, in, 1.0f, ctx->grads, in);
    if (l->cfg.bias)
        be->sum_rows(n, out, g, ctx->grads + (int64_t)in * out);
    be->gemm(0, 0, n, in, out, 1.0f, g, out, ctx->params, in, 0.0f, l->dx->data, in);
    return DEL_OK;
}

const del_layer_ops del_layer_linear = {
    /* .name      = */ "linear",
    /* .setup     = */ linear_setup,
    /* .init      = */ linear_init,
    /* .workspace = */ NULL,
    /* .forward   = */ linear_forward,
    /* .backward  = */ linear_backward,
};
