/* conv2d: y[n,co,oh,ow] = sum_{ci,kh,kw} w[co,ci,kh,kw] x[n,ci,oh*s-p+kh,ow*s-p+kw] + b[co],
 * square kernel, zero padding; the arithmetic lives in the backend. */
#include <math.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static void conv_shape(const del_layer *l, int n, del_conv2d_shape *s)
{
    s->n = n;
    s->c_in = (int)l->in_shape[0];
    s->h_in = (int)l->in_shape[1];
    s->w_in = (int)l->in_shape[2];
    s->c_out = (int)l->out_shape[0];
    s->h_out = (int)l->out_shape[1];
    s->w_out = (int)l->out_shape[2];
    s->kernel = l->cfg.kernel;
    s->stride = l->cfg.stride;
    s->pad = l->cfg.pad;
}

static del_status conv2d_setup(del_layer *l, const char *func)
{
    const del_layer_cfg *c = &l->cfg;
    if (c->out < 1)
        return del_error(DEL_EINVAL, "%s: 'out_channels' must be >= 1, got %d", func, c->out);
    if (c->kernel < 1)
        return del_error(DEL_EINVAL, "%s: 'kernel' must be >= 1, got %d", func, c->kernel);
    if (c->stride < 1)
        return del_error(DEL_EINVAL, "%s: 'stride' must be >= 1, got %d", func, c->stride);
    if (c->pad < 0 || c->pad >= c->kernel)
        return del_error(DEL_EINVAL, "%s: 'pad' must be in 0..kernel-1 (%d), got %d", func,
                         c->kernel - 1, c->pad);
    if (c->bias != 0 && c->bias != 1)
        return del_error(DEL_EINVAL, "%s: 'bias' must be 0 or 1, got %d", func, c->bias);
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: conv2d needs a 4-d input [N, C, H, W], got [N, %lld]", func,
                         (long long)l->in_shape[0]);
    int64_t h = l->in_shape[1] + 2 * c->pad, w = l->in_shape[2] + 2 * c->pad;
    if (h < c->kernel || w < c->kernel)
        return del_error(DEL_EINVAL,
                         "%s: 'kernel' %d is larger than the padded input %lldx%lld", func,
                         c->kernel, (long long)h, (long long)w);
    /* kernel*kernel fits int64 (kernel < 2^31); compare before multiplying
     * by the channel count so absurd arguments cannot overflow. */
    int64_t taps = (int64_t)c->kernel * c->kernel;
    if (taps > INT32_MAX / l->in_shape[0] || taps * l->in_shape[0] > INT32_MAX / c->out)
        return del_error(DEL_EINVAL, "%s: conv2d with kernel %d on %lld channels is too large", func,
                         c->kernel, (long long)l->in_shape[0]);
    int64_t per_out = l->in_shape[0] * taps;
    if (per_out > INT32_MAX / c->out)
        return del_error(DEL_EINVAL, "%s: conv2d with %d output channels is too large", func, c->out);
    l->out_ndim = 3;
    l->out_shape[0] = c->out;
    l->out_shape[1] = (h - c->kernel) / c->stride + 1;
    l->out_shape[2] = (w - c->kernel) / c->stride + 1;
    l->n_params = per_out * c->out + (c->bias ? c->out : 0);
    l->n_state = 0;
    return DEL_OK;
}

static void conv2d_init(const del_layer *l, float *params, float *state, del_rng *r)
{
    (void)state;
    int64_t fan_in = l->in_shape[0] * l->cfg.kernel * l->cfg.kernel;
    del_layer_init_uniform(params, l->n_params, 1.0f / sqrtf((float)fan_in), r);
}

static size_t conv2d_workspace(const del_layer *l, int n)
{
    del_conv2d_shape s;
    conv_shape(l, n, &s);
    return del_backend_get()->conv2d_workspace(&s);
}

/* The bias follows the weights in the layer's slice of the buffers. */
static int64_t conv_weight_count(const del_layer *l)
{
    return l->in_shape[0] * l->cfg.kernel * l->cfg.kernel * l->cfg.out;
}

static del_status conv2d_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    del_conv2d_shape s;
    conv_shape(l, n, &s);
    const float *bias = l->cfg.bias ? ctx->params + conv_weight_count(l) : NULL;
    del_backend_get()->conv2d_forward(&s, x->data, ctx->params, bias, l->out->data, ctx->ws);
    return DEL_OK;
}

del_status del_conv2d_forward_folded(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, del_layer *bn,
                                     const del_layer_ctx *bn_ctx, del_layer *pool)
{
    int n = (int)x->shape[0];
    const float *scale, *shift;
    del_layer *dst = pool ? pool : bn;
    del_status st = del_layer_ensure_out(dst, n);
    if (st == DEL_OK)
        st = del_batchnorm_eval_affine(bn, bn_ctx, &scale, &shift);
    if (st != DEL_OK)
        return st;
    del_conv2d_shape s;
    conv_shape(l, n, &s);
    const float *bias = l->cfg.bias ? ctx->params + conv_weight_count(l) : NULL;
    del_backend_get()->conv2d_forward_affine(&s, x->data, ctx->params, bias, scale, shift, bn->fused_relu,
                                             pool != NULL, dst->out->data, ctx->ws);
    return DEL_OK;
}

static del_status conv2d_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                  const del_tensor *dy)
{
    int n = (int)x->shape[0];
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    del_conv2d_shape s;
    conv_shape(l, n, &s);
    float *dw = ctx->grads, *dbias = l->cfg.bias && dw ? dw + conv_weight_count(l) : NULL;
    del_backend_get()->conv2d_backward(&s, x->data, ctx->params, dy->data, ctx->need_dx ? l->dx->data : NULL,
                                       dw, dbias, ctx->ws);
    return DEL_OK;
}

const del_layer_ops del_layer_conv2d = {
    /* .name      = */ "conv2d",
    /* .setup     = */ conv2d_setup,
    /* .init      = */ conv2d_init,
    /* .workspace = */ conv2d_workspace,
    /* .forward   = */ conv2d_forward,
    /* .backward  = */ conv2d_backward,
};
