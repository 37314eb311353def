/* batchnorm over the channels of [N, C, H, W] (or the features of [N, F]):
 * y = gamma (x - mean) / sqrt(var + eps) + beta, with batch statistics in
 * training mode (running ones updated with momentum, PyTorch's unbiased
 * variance) and the running statistics in evaluation mode.
 * Parameters: gamma[C], beta[C]; state: running_mean[C], running_var[C];
 * aux: the batch mean and 1/sqrt(var + eps) of the last training forward.
 * With fused_relu (layer.h) y = max(y, 0) in the same pass, and backward
 * masks dy by y > 0 before the batchnorm gradient.
 * A frozen batchnorm (model.c) runs its training-mode forward as the
 * evaluation-mode layer (ctx->training 0) and its backward is then that
 * layer's: dx = dy gamma / sqrt(running_var + eps), no parameter
 * gradients. */
#include <math.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

static int bn_channels(const del_layer *l)
{
    return (int)l->in_shape[0];
}

static int bn_plane(const del_layer *l)
{
    return l->in_ndim == 3 ? (int)(l->in_shape[1] * l->in_shape[2]) : 1;
}

static del_status batchnorm_setup(del_layer *l, const char *func)
{
    if (!(l->cfg.eps > 0.0f) || !isfinite(l->cfg.eps))
        return del_error(DEL_EINVAL, "%s: 'eps' must be a finite value > 0, got %g", func, (double)l->cfg.eps);
    if (!(l->cfg.momentum > 0.0f && l->cfg.momentum <= 1.0f))
        return del_error(DEL_EINVAL, "%s: 'momentum' must be in (0, 1], got %g", func,
                         (double)l->cfg.momentum);
    l->out_ndim = l->in_ndim;
    for (int i = 0; i < 3; i++)
        l->out_shape[i] = l->in_shape[i];
    l->n_params = 2 * l->in_shape[0];
    l->n_state = 2 * l->in_shape[0];
    return DEL_OK;
}

static void batchnorm_init(const del_layer *l, float *params, float *state, del_rng *r)
{
    (void)r;
    int c = bn_channels(l);
    for (int i = 0; i < c; i++) {
        params[i] = 1.0f;
        params[c + i] = 0.0f;
        state[i] = 0.0f;
        state[c + i] = 1.0f;
    }
}

/* The backend's scratch for the training passes (the model's shared
 * workspace). */
static size_t batchnorm_workspace(const del_layer *l, int n)
{
    return del_backend_get()->batchnorm_workspace(n, bn_channels(l));
}

static del_status batchnorm_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    const del_backend *be = del_backend_get();
    int n = (int)x->shape[0], c = bn_channels(l), hw = bn_plane(l);
    const float *gamma = ctx->params, *beta = ctx->params + c;
    float *rmean = ctx->state, *rvar = ctx->state + c;
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    if (!ctx->training) {
        be->batchnorm_forward_eval(n, c, hw, x->data, gamma, beta, rmean, rvar, l->cfg.eps, l->fused_relu,
                                   l->out->data);
        return DEL_OK;
    }
    /* The unbiased variance of a single value is undefined (PyTorch refuses too). */
    if ((int64_t)n * hw < 2)
        return del_error(DEL_EINVAL,
                         "del_model_forward: batchnorm in training mode needs more than 1 value "
                         "per channel, got a batch of %d x %d",
                         n, hw);
    int64_t aux_shape[1] = {2 * (int64_t)c};
    st = del_tensor_ensure(l->aux, DEL_DTYPE_F32, 1, aux_shape);
    if (st != DEL_OK)
        return st;
    float *save = l->aux->data;
    be->batchnorm_forward_train(n, c, hw, x->data, gamma, beta, l->cfg.eps, l->cfg.momentum, rmean,
                                rvar, l->fused_relu, l->out->data, save, save + c, ctx->ws);
    return DEL_OK;
}

del_status del_batchnorm_eval_affine(del_layer *l, const del_layer_ctx *ctx, const float **scale,
                                     const float **shift)
{
    int c = bn_channels(l);
    int64_t aux_shape[1] = {2 * (int64_t)c};
    del_status st = del_tensor_ensure(l->aux, DEL_DTYPE_F32, 1, aux_shape);
    if (st != DEL_OK)
        return st;
    const float *gamma = ctx->params, *beta = ctx->params + c, *rmean = ctx->state, *rvar = ctx->state + c;
    float *sc = l->aux->data, *sh = sc + c;
    /* the same float expressions as the backend's eval kernel */
    for (int ch = 0; ch < c; ch++) {
        sc[ch] = gamma[ch] / sqrtf(rvar[ch] + l->cfg.eps);
        sh[ch] = beta[ch] - rmean[ch] * sc[ch];
    }
    *scale = sc;
    *shift = sh;
    return DEL_OK;
}

/* The backward of the evaluation-mode forward, an affine map per channel:
 * dx = dy * scale with the forward's scale = gamma / sqrt(var + eps). Only
 * frozen layers get here, whose parameter gradients nobody wants, and a
 * linear probe never does (model.c stops below the head), so plain loops
 * suffice. */
static void batchnorm_backward_eval(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                    const del_tensor *dy)
{
    int n = (int)x->shape[0], c = bn_channels(l), hw = bn_plane(l);
    const float *gamma = ctx->params, *rvar = ctx->state + c;
    const float *y = l->out->data, *g = dy->data;
    float *dx = l->dx->data;
    for (int ch = 0; ch < c; ch++) {
        float scale = gamma[ch] / sqrtf(rvar[ch] + l->cfg.eps);
        for (int i = 0; i < n; i++) {
            int64_t base = ((int64_t)i * c + ch) * hw;
            for (int k = 0; k < hw; k++) {
                int64_t j = base + k;
                dx[j] = l->fused_relu && !(y[j] > 0.0f) ? 0.0f : g[j] * scale;
            }
        }
    }
}

static del_status batchnorm_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                     const del_tensor *dy)
{
    int n = (int)x->shape[0], c = bn_channels(l), hw = bn_plane(l);
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    if (!ctx->training) {
        batchnorm_backward_eval(l, ctx, x, dy);
        return DEL_OK;
    }
    const float *save = l->aux->data;
    del_backend_get()->batchnorm_backward(n, c, hw, x->data, dy->data, ctx->params, ctx->params + c,
                                          l->fused_relu, save, save + c, l->dx->data, ctx->grads,
                                          ctx->grads + c, ctx->ws);
    return DEL_OK;
}

const del_layer_ops del_layer_batchnorm = {
    /* .name      = */ "batchnorm",
    /* .setup     = */ batchnorm_setup,
    /* .init      = */ batchnorm_init,
    /* .workspace = */ batchnorm_workspace,
    /* .forward   = */ batchnorm_forward,
    /* .backward  = */ batchnorm_backward,
};
