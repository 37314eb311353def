/* residual: the basic block of the CIFAR ResNets (He et al. 2016), post-activation:
 *   y = relu(m * bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
 * conv1 3x3 / stride s / pad 1 and conv2 3x3 / stride 1 / pad 1, without
 * bias. The shortcut is x itself when the block keeps the shape, else a
 * projection bnp(convp(x)) with convp 1x1 / stride s without bias (He et
 * al.'s option B). The batchnorms have eps 1e-5 and momentum 0.1.
 *
 * Stochastic depth (Huang et al. 2016) per image, as torchvision's
 * stochastic_depth(mode="row"): in training m = 1/survival with
 * probability survival and 0 otherwise, one draw per image from the
 * model's stream on the calling thread (none when survival is 1); in
 * evaluation m = 1, the expected value. A dropped image still enters the
 * batch statistics of bn1/bn2, as in torchvision, where the branch is
 * computed for the whole batch and then masked.
 *
 * Parameters: w1 [C, Cin, 3, 3], gamma1, beta1, w2 [C, C, 3, 3], gamma2,
 * beta2, then with a projection wp [C, Cin], gammap, betap.
 * State: running mean and variance of bn1, bn2 (and bnp).
 * aux (training): the batch statistics, the per-image mask and the
 * activations backward needs (conv1 out, relu(bn1) out, conv2 out, and
 * the projection's conv output). The output holds y: bn2's (and bnp's)
 * affine maps are applied inside the join, so their outputs are never
 * written out.
 * The shared workspace holds the convolutions' scratch and, after it, the
 * buffers of a single backward (or the eval-mode temporaries), so they are
 * shared by every block of the model. A backward after an evaluation-mode
 * forward (a frozen block) gives the input gradient only. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/layer.h"

#define RES_BN_EPS 1e-5f
#define RES_BN_MOMENTUM 0.1f

/* Where everything of one block lives, for a batch of n. */
typedef struct block {
    int n, cin, c, proj;
    int hw;                  /* output plane ho*wo */
    int64_t in_img, out_img; /* floats per image of x and y */
    int64_t act;             /* floats of one activation [n, C, ho, wo] */
    del_conv2d_shape conv1, conv2, convp;
    /* offsets into the parameters */
    int64_t w1, bn1, w2, bn2, wp, bnp;
} block;

static int has_projection(const del_layer *l)
{
    return l->cfg.stride != 1 || l->cfg.out != l->in_shape[0];
}

static void set_conv(del_conv2d_shape *s, const del_layer *l, int n, int c_in, int h_in, int w_in, int kernel,
                     int stride, int pad)
{
    s->n = n;
    s->c_in = c_in;
    s->h_in = h_in;
    s->w_in = w_in;
    s->c_out = (int)l->out_shape[0];
    s->h_out = (int)l->out_shape[1];
    s->w_out = (int)l->out_shape[2];
    s->kernel = kernel;
    s->stride = stride;
    s->pad = pad;
}

static void block_of(const del_layer *l, int n, block *b)
{
    int h = (int)l->in_shape[1], w = (int)l->in_shape[2];
    b->n = n;
    b->cin = (int)l->in_shape[0];
    b->c = l->cfg.out;
    b->proj = has_projection(l);
    b->hw = (int)(l->out_shape[1] * l->out_shape[2]);
    b->in_img = del_layer_shape_numel(3, l->in_shape);
    b->out_img = del_layer_shape_numel(3, l->out_shape);
    b->act = (int64_t)n * b->out_img;
    set_conv(&b->conv1, l, n, b->cin, h, w, 3, l->cfg.stride, 1);
    set_conv(&b->conv2, l, n, b->c, (int)l->out_shape[1], (int)l->out_shape[2], 3, 1, 1);
    set_conv(&b->convp, l, n, b->cin, h, w, 1, l->cfg.stride, 0);
    b->w1 = 0;
    b->bn1 = b->w1 + (int64_t)b->c * b->cin * 9;
    b->w2 = b->bn1 + 2 * (int64_t)b->c;
    b->bn2 = b->w2 + (int64_t)b->c * b->c * 9;
    b->wp = b->bn2 + 2 * (int64_t)b->c;
    b->bnp = b->wp + (int64_t)b->c * b->cin;
}

static del_status residual_setup(del_layer *l, const char *func)
{
    const del_layer_cfg *c = &l->cfg;
    if (c->out < 1)
        return del_error(DEL_EINVAL, "%s: 'out_channels' must be >= 1, got %d", func, c->out);
    if (c->stride < 1)
        return del_error(DEL_EINVAL, "%s: 'stride' must be >= 1, got %d", func, c->stride);
    if (!(c->survival > 0.0f && c->survival <= 1.0f))
        return del_error(DEL_EINVAL, "%s: 'survival_prob' must be in (0, 1], got %g", func, (double)c->survival);
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: residual needs a 4-d input [N, C, H, W], got [N, %lld]", func,
                         (long long)l->in_shape[0]);
    /* Keeps every weight count (9 * C * max(Cin, C)) inside int32, as conv2d. */
    int64_t widest = l->in_shape[0] > c->out ? l->in_shape[0] : c->out;
    if (9 * (int64_t)c->out > INT32_MAX || widest > INT32_MAX / (9 * (int64_t)c->out))
        return del_error(DEL_EINVAL, "%s: a residual block of %lld -> %d channels is too large", func,
                         (long long)l->in_shape[0], c->out);
    l->out_ndim = 3;
    l->out_shape[0] = c->out;
    /* 3x3 pad 1 and 1x1 pad 0 at the same stride give the same size */
    l->out_shape[1] = (l->in_shape[1] - 1) / c->stride + 1;
    l->out_shape[2] = (l->in_shape[2] - 1) / c->stride + 1;
    int64_t ch = c->out, cin = l->in_shape[0];
    l->n_params = 9 * ch * cin + 9 * ch * ch + 4 * ch;
    l->n_state = 4 * ch;
    if (has_projection(l)) {
        l->n_params += ch * cin + 2 * ch;
        l->n_state += 2 * ch;
    }
    return DEL_OK;
}

/* PyTorch's defaults: conv weights uniform in +-1/sqrt(fan_in), gamma 1,
 * beta 0, running mean 0 and variance 1; drawn conv1, conv2, projection. */
static void residual_init(const del_layer *l, float *params, float *state, del_rng *r)
{
    block b;
    block_of(l, 1, &b);
    int64_t c = b.c;
    del_layer_init_uniform(params + b.w1, c * b.cin * 9, 1.0f / sqrtf((float)(b.cin * 9)), r);
    del_layer_init_uniform(params + b.w2, c * c * 9, 1.0f / sqrtf((float)(c * 9)), r);
    if (b.proj)
        del_layer_init_uniform(params + b.wp, c * b.cin, 1.0f / sqrtf((float)b.cin), r);
    int n_bn = b.proj ? 3 : 2;
    int64_t bn_off[3] = {b.bn1, b.bn2, b.bnp};
    for (int k = 0; k < n_bn; k++)
        for (int64_t i = 0; i < c; i++) {
            params[bn_off[k] + i] = 1.0f;
            params[bn_off[k] + c + i] = 0.0f;
            state[2 * c * k + i] = 0.0f;
            state[2 * c * k + c + i] = 1.0f;
        }
}

/* Bytes of the convolutions' scratch, which the batchnorms use too
 * (never at the same time), rounded up to a cache line. */
static size_t conv_scratch(const block *b)
{
    const del_backend *be = del_backend_get();
    size_t s = be->conv2d_workspace(&b->conv1), s2 = be->conv2d_workspace(&b->conv2);
    size_t sb = be->batchnorm_workspace(b->n, b->c);
    if (sb > s)
        s = sb;
    if (s2 > s)
        s = s2;
    if (b->proj) {
        s2 = be->conv2d_workspace(&b->convp);
        if (s2 > s)
            s = s2;
    }
    return (s + 63) / 64 * 64;
}

/* After the conv scratch: four activation-sized buffers (three for a
 * training backward), the projection's input gradient, and bn1's affine
 * map (2 c). */
static size_t residual_workspace(const del_layer *l, int n)
{
    block b;
    block_of(l, n, &b);
    size_t floats = 4 * (size_t)b.act + (b.proj ? (size_t)n * (size_t)b.in_img : 0) + 2 * (size_t)b.c;
    return conv_scratch(&b) + floats * sizeof(float);
}

static float *scratch(const block *b, const del_layer_ctx *ctx)
{
    return (float *)((char *)ctx->ws + conv_scratch(b));
}

/* Where bn1's affine map goes: past everything else in the workspace. */
static float *bn1_map(const block *b, const del_layer_ctx *ctx)
{
    return scratch(b, ctx) + 4 * b->act + (b->proj ? (int64_t)b->n * b->in_img : 0);
}

/* A training-mode batchnorm's output map y = x * sc + sh from its saved
 * statistics, with the float expressions of the backend's kernel. */
static void bn_map(const float *gamma, const float *beta, const float *mean, const float *invstd, int c, float *sc,
                   float *sh)
{
    for (int ch = 0; ch < c; ch++) {
        float scale = gamma[ch] * invstd[ch];
        sc[ch] = scale;
        sh[ch] = beta[ch] - mean[ch] * scale;
    }
}

/* Whether conv2 reads relu(bn1(a1)) straight from a1 (h1 never written). */
static int fuses_bn1(const block *b)
{
    return del_backend_get()->conv2d_fuses_input_bn(&b->conv2);
}

/* aux in training: stats (mean, invstd per batchnorm), mask [n], then the
 * activations a1, h1 (unless conv2 fuses bn1), a2 (and ap). */
typedef struct saved {
    float *mean[3], *invstd[3], *mask, *a1, *h1, *a2, *ap;
} saved;

static saved saved_of(const del_layer *l, const block *b)
{
    saved s;
    float *p = l->aux->data;
    for (int k = 0; k < 3; k++) {
        s.mean[k] = p + 2 * (int64_t)b->c * k;
        s.invstd[k] = s.mean[k] + b->c;
    }
    s.mask = p + 6 * (int64_t)b->c;
    s.a1 = s.mask + b->n;
    s.h1 = fuses_bn1(b) ? NULL : s.a1 + b->act;
    s.a2 = s.a1 + (s.h1 ? 2 : 1) * b->act;
    s.ap = b->proj ? s.a2 + b->act : NULL;
    return s;
}

/* Eval: each batchnorm as a per-channel affine map folded into its conv,
 * with the float expressions of del_batchnorm_eval_affine. */
static del_status forward_eval(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, const block *b)
{
    int64_t aux_len = 6 * (int64_t)b->c;
    del_status st = del_tensor_ensure(l->aux, DEL_DTYPE_F32, 1, &aux_len);
    if (st != DEL_OK)
        return st;
    float *scale = l->aux->data, *shift = scale + 3 * (int64_t)b->c;
    int64_t bn_off[3] = {b->bn1, b->bn2, b->bnp};
    for (int k = 0; k < (b->proj ? 3 : 2); k++) {
        const float *gamma = ctx->params + bn_off[k], *beta = gamma + b->c;
        const float *rmean = ctx->state + 2 * (int64_t)b->c * k, *rvar = rmean + b->c;
        for (int ch = 0; ch < b->c; ch++) {
            float sc = gamma[ch] / sqrtf(rvar[ch] + RES_BN_EPS);
            scale[k * b->c + ch] = sc;
            shift[k * b->c + ch] = beta[ch] - rmean[ch] * sc;
        }
    }
    const del_backend *be = del_backend_get();
    float *h1 = scratch(b, ctx), *sc_out = h1 + b->act, *y = l->out->data;
    be->conv2d_forward_affine(&b->conv1, x->data, ctx->params + b->w1, NULL, scale, shift, 1, 0, h1, ctx->ws);
    be->conv2d_forward_affine(&b->conv2, h1, ctx->params + b->w2, NULL, scale + b->c, shift + b->c, 0, 0, y,
                              ctx->ws);
    const float *shortcut = x->data;
    if (b->proj) {
        be->conv2d_forward_affine(&b->convp, x->data, ctx->params + b->wp, NULL, scale + 2 * b->c,
                                  shift + 2 * b->c, 0, 0, sc_out, ctx->ws);
        shortcut = sc_out;
    }
    be->residual_join_forward(b->n, b->out_img, y, NULL, shortcut, y);
    return DEL_OK;
}

static del_status residual_forward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x)
{
    int n = (int)x->shape[0];
    block b;
    block_of(l, n, &b);
    del_status st = del_layer_ensure_out(l, n);
    if (st != DEL_OK)
        return st;
    if (!ctx->training)
        return forward_eval(l, ctx, x, &b);
    if ((int64_t)n * b.hw < 2)
        return del_error(DEL_EINVAL,
                         "del_model_forward: a residual block's batchnorm in training mode needs more than 1 "
                         "value per channel, got a batch of %d x %d",
                         n, b.hw);
    int64_t aux_len = 6 * (int64_t)b.c + n + (2 + (fuses_bn1(&b) ? 0 : 1) + (b.proj ? 1 : 0)) * b.act;
    st = del_tensor_ensure(l->aux, DEL_DTYPE_F32, 1, &aux_len);
    if (st != DEL_OK)
        return st;
    saved s = saved_of(l, &b);
    const del_backend *be = del_backend_get();
    const float *p = ctx->params;
    float *rs = ctx->state, *y = l->out->data;
    int64_t c2 = 2 * (int64_t)b.c;
    be->conv2d_forward(&b.conv1, x->data, p + b.w1, NULL, s.a1, ctx->ws);
    be->batchnorm_forward_train(n, b.c, b.hw, s.a1, p + b.bn1, p + b.bn1 + b.c, RES_BN_EPS, RES_BN_MOMENTUM, rs,
                                rs + b.c, 1, s.h1, s.mean[0], s.invstd[0], ctx->ws);
    if (s.h1) {
        be->conv2d_forward(&b.conv2, s.h1, p + b.w2, NULL, s.a2, ctx->ws);
    } else {
        float *sc1 = bn1_map(&b, ctx);
        bn_map(p + b.bn1, p + b.bn1 + b.c, s.mean[0], s.invstd[0], b.c, sc1, sc1 + b.c);
        be->conv2d_forward_input_bn(&b.conv2, s.a1, sc1, sc1 + b.c, p + b.w2, s.a2, ctx->ws);
    }
    /* bn2 and bnp: statistics only; the join applies them */
    be->batchnorm_forward_train(n, b.c, b.hw, s.a2, p + b.bn2, p + b.bn2 + b.c, RES_BN_EPS, RES_BN_MOMENTUM,
                                rs + c2, rs + c2 + b.c, 0, NULL, s.mean[1], s.invstd[1], ctx->ws);
    const float *shortcut = x->data;
    if (b.proj) {
        be->conv2d_forward(&b.convp, x->data, p + b.wp, NULL, s.ap, ctx->ws);
        be->batchnorm_forward_train(n, b.c, b.hw, s.ap, p + b.bnp, p + b.bnp + b.c, RES_BN_EPS,
                                    RES_BN_MOMENTUM, rs + 2 * c2, rs + 2 * c2 + b.c, 0, NULL, s.mean[2],
                                    s.invstd[2], ctx->ws);
        shortcut = s.ap;
    }
    /* the affine maps y = x * sc + sh of bn2 (and bnp), as the backend
     * forms them from the saved statistics */
    float *sc = scratch(&b, ctx), *sh = sc + b.c;
    bn_map(p + b.bn2, p + b.bn2 + b.c, s.mean[1], s.invstd[1], b.c, sc, sh);
    if (b.proj)
        bn_map(p + b.bnp, p + b.bnp + b.c, s.mean[2], s.invstd[2], b.c, sc + 2 * b.c, sh + 2 * b.c);
    float survival = l->cfg.survival;
    const float *mask = NULL;
    if (survival < 1.0f) {
        for (int i = 0; i < n; i++)
            s.mask[i] = del_rng_uniform(ctx->rng) < survival ? 1.0f / survival : 0.0f;
        mask = s.mask;
    }
    be->residual_join_forward_bn(n, b.c, b.hw, s.a2, sc, sh, mask, shortcut, b.proj ? sc + 2 * b.c : NULL,
                                 b.proj ? sh + 2 * b.c : NULL, y);
    return DEL_OK;
}

/* v[i, ch, :] *= scale[ch], and zero where mask_src <= 0 if mask_src. */
static void scale_channels(const block *b, float *v, const float *scale, const float *mask_src)
{
    for (int i = 0; i < b->n; i++)
        for (int ch = 0; ch < b->c; ch++) {
            int64_t base = ((int64_t)i * b->c + ch) * b->hw;
            for (int k = 0; k < b->hw; k++)
                v[base + k] = mask_src && !(mask_src[base + k] > 0.0f) ? 0.0f : v[base + k] * scale[ch];
        }
}

/* The backward of an evaluation-mode forward (a frozen block: model.c
 * decides), where each batchnorm is the affine map of forward_eval: the
 * input gradient only, parameter gradients are left alone (their layer is
 * frozen). relu(bn1(conv1 x)) is recomputed rather than kept by every
 * inference forward; plain loops for the per-channel scaling, as this
 * path never runs in plain training. */
static void backward_eval(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, const del_tensor *dy,
                          const block *b)
{
    const del_backend *be = del_backend_get();
    const float *p = ctx->params, *scale = l->aux->data, *shift = scale + 3 * (int64_t)b->c;
    float *dz = scratch(b, ctx), *h1 = dz + b->act, *g2 = h1 + b->act, *g3 = g2 + b->act, *dxp = g3 + b->act;
    float *dx = l->dx->data;
    be->residual_join_backward(b->n, b->out_img, l->out->data, dy->data, NULL, dz, NULL);
    be->conv2d_forward_affine(&b->conv1, x->data, p + b->w1, NULL, scale, shift, 1, 0, h1, ctx->ws);
    memcpy(g2, dz, (size_t)b->act * sizeof(float));
    scale_channels(b, g2, scale + b->c, NULL);
    be->conv2d_backward(&b->conv2, h1, p + b->w2, g2, g3, NULL, NULL, ctx->ws);
    scale_channels(b, g3, scale, h1);
    be->conv2d_backward(&b->conv1, x->data, p + b->w1, g3, dx, NULL, NULL, ctx->ws);
    if (b->proj) {
        memcpy(g2, dz, (size_t)b->act * sizeof(float));
        scale_channels(b, g2, scale + 2 * b->c, NULL);
        be->conv2d_backward(&b->convp, x->data, p + b->wp, g2, dxp, NULL, NULL, ctx->ws);
        be->add((int64_t)b->n * b->in_img, dxp, dx);
    } else {
        be->add(b->act, dz, dx);
    }
}

static del_status residual_backward(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x,
                                    const del_tensor *dy)
{
    int n = (int)x->shape[0];
    block b;
    block_of(l, n, &b);
    del_status st = del_layer_ensure_dx(l, n);
    if (st != DEL_OK)
        return st;
    if (!ctx->training) {
        backward_eval(l, ctx, x, dy, &b);
        return DEL_OK;
    }
    saved s = saved_of(l, &b);
    const del_backend *be = del_backend_get();
    const float *p = ctx->params, *mask = l->cfg.survival < 1.0f ? s.mask : NULL;
    float *g = ctx->grads, *dx = ctx->need_dx ? l->dx->data : NULL;
    /* dz: the gradient at the join (the shortcut's); g1, g2 alternate
     * along the branch; dxp: the projection's input gradient */
    float *dz = scratch(&b, ctx), *g1 = dz + b.act, *g2 = g1 + b.act, *dxp = g2 + b.act;
    be->residual_join_backward(n, b.out_img, l->out->data, dy->data, mask, dz, mask ? g1 : NULL);
    const float *dbranch = mask ? g1 : dz;
    be->batchnorm_backward(n, b.c, b.hw, s.a2, dbranch, p + b.bn2, NULL, 0, s.mean[1], s.invstd[1], g2,
                           g + b.bn2, g + b.bn2 + b.c, ctx->ws);
    if (s.h1) {
        be->conv2d_backward(&b.conv2, s.h1, p + b.w2, g2, g1, g + b.w2, NULL, ctx->ws);
    } else {
        float *sc1 = bn1_map(&b, ctx);
        bn_map(p + b.bn1, p + b.bn1 + b.c, s.mean[0], s.invstd[0], b.c, sc1, sc1 + b.c);
        be->conv2d_backward_input_bn(&b.conv2, s.a1, sc1, sc1 + b.c, p + b.w2, g2, g1, g + b.w2, ctx->ws);
    }
    be->batchnorm_backward(n, b.c, b.hw, s.a1, g1, p + b.bn1, p + b.bn1 + b.c, 1, s.mean[0], s.invstd[0], g2,
                           g + b.bn1, g + b.bn1 + b.c, ctx->ws);
    be->conv2d_backward(&b.conv1, x->data, p + b.w1, g2, dx, g + b.w1, NULL, ctx->ws);
    if (b.proj) {
        be->batchnorm_backward(n, b.c, b.hw, s.ap, dz, p + b.bnp, NULL, 0, s.mean[2], s.invstd[2], g1, g + b.bnp,
                               g + b.bnp + b.c, ctx->ws);
        be->conv2d_backward(&b.convp, x->data, p + b.wp, g1, dx ? dxp : NULL, g + b.wp, NULL, ctx->ws);
        if (dx)
            be->add((int64_t)n * b.in_img, dxp, dx);
    } else if (dx) {
        be->add(b.act, dz, dx);
    }
    return DEL_OK;
}

const del_layer_ops del_layer_residual = {
    /* .name      = */ "residual",
    /* .setup     = */ residual_setup,
    /* .init      = */ residual_init,
    /* .workspace = */ residual_workspace,
    /* .forward   = */ residual_forward,
    /* .backward  = */ residual_backward,
};
