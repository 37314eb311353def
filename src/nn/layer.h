/* Internal: the layer table of the nn module.
 *
 * A layer is a record (shapes, hyper-parameters, offsets into the model's
 * buffers, its activation tensors) plus a table of functions shared by all
 * layers of its type, one file per type in src/nn/layers/. Shapes are per
 * image: ndim 1 ([F]) or 3 ([C, H, W]); tensors add the batch dimension.
 * Parameters and gradients live in the model's contiguous buffers; a layer
 * only keeps offsets because those buffers move when layers are added. */
#ifndef DEL_NN_LAYER_H
#define DEL_NN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "del/model.h"
#include "del/tensor.h"

/* Hyper-parameters, the union of what every layer type needs; each type
 * reads only its own fields. */
typedef struct del_layer_cfg {
    int out;      /* conv2d, residual: out channels; linear: out features */
    int kernel;   /* conv2d, maxpool, avgpool */
    int stride;   /* conv2d, maxpool, avgpool, residual */
    int pad;      /* conv2d */
    int bias;     /* conv2d, linear: 0/1 */
    float eps;    /* batchnorm */
    float momentum; /* batchnorm */
    float p;      /* dropout: drop probability */
    float survival; /* residual: stochastic-depth survival probability */
} del_layer_cfg;

typedef struct del_layer del_layer;
typedef struct del_layer_ops del_layer_ops;

struct del_layer {
    const del_layer_ops *ops;
    del_layer_cfg cfg;
    int in_ndim, out_ndim;
    int64_t in_shape[3], out_shape[3];
    int64_t param_off, n_params; /* into the model's parameter/gradient buffers */
    int64_t state_off, n_state;  /* into the model's non-trainable state buffer */
    del_tensor *out;             /* last forward's output [N, out_shape...] */
    del_tensor *dx;              /* last backward's input gradient [N, in_shape...] */
    del_tensor *aux;             /* what backward needs besides x: mask, argmax, batch stats */
    /* Set by del_model_add_layer when a relu follows a batchnorm: the
     * batchnorm applies the relu in its own pass (fused_relu) and the relu
     * layer computes nothing (folded): its out is a view of the
     * batchnorm's out and its dx a view of its dy. Saves a pass and an
     * activation-sized buffer each way. */
    int fused_relu;
    int folded;
};

/* What a layer's forward/backward sees of its model. */
typedef struct del_layer_ctx {
    float *params; /* this layer's parameters (n_params floats) */
    float *grads;  /* their gradients (accumulated into by backward); NULL: only
                    * l->dx is wanted (conv2d only, see model.c) */
    float *state;  /* this layer's non-trainable state (n_state floats) */
    int training;
    int need_dx;   /* 0: backward may skip l->dx (conv2d does; others ignore it) */
    del_rng *rng;  /* the model's dropout stream, drawn on the calling thread */
    void *ws;      /* shared scratch of at least the largest workspace() */
    size_t ws_size;
} del_layer_ctx;

struct del_layer_ops {
    const char *name;
    /* Checks cfg against in_shape, fills out_shape, n_params and n_state.
     * func names the public entry for the error message (DEL_EINVAL). */
    del_status (*setup)(del_layer *l, const char *func);
    /* Initialises parameters and state (PyTorch defaults); NULL if none. */
    void (*init)(const del_layer *l, float *params, float *state, del_rng *r);
    /* Bytes of shared scratch for a batch of n; NULL if none. */
    size_t (*workspace)(const del_layer *l, int n);
    /* l->out = f(x); x is [n, in_shape...]. */
    del_status (*forward)(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x);
    /* From dy (the shape of l->out) and the forward input x: l->dx, and
     * parameter gradients added into ctx->grads. Training-mode forward only. */
    del_status (*backward)(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, const del_tensor *dy);
};

extern const del_layer_ops del_layer_linear;
extern const del_layer_ops del_layer_conv2d;
extern const del_layer_ops del_layer_batchnorm;
extern const del_layer_ops del_layer_relu;
extern const del_layer_ops del_layer_maxpool;
extern const del_layer_ops del_layer_flatten;
extern const del_layer_ops del_layer_dropout;
extern const del_layer_ops del_layer_avgpool;
extern const del_layer_ops del_layer_global_avgpool;
extern const del_layer_ops del_layer_residual;

/* The registry: every layer type, NULL-terminated, in a fixed order. */
extern const del_layer_ops *const del_layer_types[];

/* The type called name, or NULL. */
const del_layer_ops *del_layer_find(const char *name);

/* Makes l->out hold f32 [n, out_shape...] (reusing its memory). */
del_status del_layer_ensure_out(del_layer *l, int n);

/* Makes l->dx hold f32 [n, in_shape...] (reusing its memory). */
del_status del_layer_ensure_dx(del_layer *l, int n);

/* Makes t a view (not owning) of src's data with shape [n, shape...]; t's
 * own memory, if any, is released. The view lives as long as src's data:
 * layers set it again on every forward/backward. */
void del_layer_view(del_tensor *t, const del_tensor *src, int n, int ndim, const int64_t *shape);

/* Elements per image of a per-image shape. */
int64_t del_layer_shape_numel(int ndim, const int64_t *shape);

/* Appends a layer of type ops with cfg to model (model.c); used by the
 * del_model_add_* entries and the spec parser. */
del_status del_model_add_layer(del_model *model, const del_layer_ops *ops, const del_layer_cfg *cfg, const char *func);

/* Evaluation mode only: the conv2d layer l followed by the batchnorm bn
 * (and bn's fused relu) and, if pool is not NULL, a 2x2 / stride 2
 * maxpool, in one pass written to pool->out (else bn->out); the skipped
 * layers' outputs are left alone. Saves the batchnorm and pooling passes
 * and their activation memory. */
del_status del_conv2d_forward_folded(del_layer *l, const del_layer_ctx *ctx, const del_tensor *x, del_layer *bn,
                                     const del_layer_ctx *bn_ctx, del_layer *pool);

/* The eval-mode batchnorm bn as y = x * scale[c] + shift[c]; both point
 * into bn->aux (reused: aux only matters after a training forward). */
del_status del_batchnorm_eval_affine(del_layer *l, const del_layer_ctx *ctx, const float **scale,
                                     const float **shift);

/* Uniform in [-bound, bound) for n floats (PyTorch's default init). */
void del_layer_init_uniform(float *p, int64_t n, float bound, del_rng *r);

#endif
