/* The model: a sequence of layers with every parameter in one contiguous
 * buffer (and every gradient in another), so optimizers, snapshots and
 * teacher copies are a loop or a memcpy. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/model_internal.h"

DEL_API del_status del_model_new(del_model **out, int channels, int height, int width)
{
    if (!out)
        return del_error_null("del_model_new", "out");
    *out = NULL;
    if (channels < 1 || height < 1 || width < 1)
        return del_error(DEL_EINVAL,
                         "del_model_new: 'channels', 'height' and 'width' must be >= 1, got %d, %d, %d",
                         channels, height, width);
    del_model *m = calloc(1, sizeof *m);
    if (!m)
        return del_error(DEL_ENOMEM, "del_model_new: out of memory");
    m->input = del_tensor_empty();
    m->input_grad = del_tensor_empty();
    if (!m->input || !m->input_grad) {
        del_model_free(m);
        return del_error(DEL_ENOMEM, "del_model_new: out of memory");
    }
    m->in_c = channels;
    m->in_h = height;
    m->in_w = width;
    m->training = 1;
    m->fwd_mode = -1;
    m->seed = 0;
    del_rng_seed_stream(&m->rng, 0, DEL_MODEL_STREAM_DROPOUT, 0);
    *out = m;
    return DEL_OK;
}

static void layer_release(del_layer *l)
{
    del_tensor_free(l->out);
    del_tensor_free(l->dx);
    del_tensor_free(l->aux);
}

DEL_API void del_model_free(del_model *model)
{
    if (!model)
        return;
    for (int i = 0; i < model->n_layers; i++)
        layer_release(&model->layers[i]);
    free(model->layers);
    free(model->groups);
    free(model->scratch_grads);
    free(model->params);
    free(model->grads);
    free(model->state);
    del_tensor_free(model->input);
    del_tensor_free(model->input_grad);
    free(model->ws);
    free(model);
}

/* The per-image shape the next layer receives. */
static void current_shape(const del_model *m, int *ndim, int64_t *shape)
{
    if (m->n_layers == 0) {
        *ndim = 3;
        shape[0] = m->in_c;
        shape[1] = m->in_h;
        shape[2] = m->in_w;
        return;
    }
    const del_layer *last = &m->layers[m->n_layers - 1];
    *ndim = last->out_ndim;
    for (int i = 0; i < 3; i++)
        shape[i] = last->out_shape[i];
}

static void layer_init(const del_model *m, int i)
{
    const del_layer *l = &m->layers[i];
    if (!l->ops->init)
        return;
    del_rng r;
    del_rng_seed_stream(&r, m->seed, DEL_MODEL_STREAM_INIT, (uint64_t)i);
    /* Layers without parameters or state get NULL, never NULL + offset. */
    l->ops->init(l, m->params ? m->params + l->param_off : NULL,
                 m->state ? m->state + l->state_off : NULL, &r);
}

/* Grows *buf to n floats; on failure *buf keeps its old block. */
static int grow_floats(float **buf, int64_t n)
{
    if (n == 0)
        return 1;
    float *p = realloc(*buf, (size_t)n * sizeof(float));
    if (!p)
        return 0;
    *buf = p;
    return 1;
}

del_status del_model_add_layer(del_model *m, const del_layer_ops *ops, const del_layer_cfg *cfg,
                               const char *func)
{
    if (!m)
        return del_error_null(func, "model");
    del_layer l;
    memset(&l, 0, sizeof l);
    l.ops = ops;
    l.cfg = *cfg;
    current_shape(m, &l.in_ndim, l.in_shape);
    del_status st = ops->setup(&l, func);
    if (st != DEL_OK)
        return st;
    /* Keeps every float index and byte size far from overflow. */
    const int64_t max_floats = (int64_t)(PTRDIFF_MAX / (ptrdiff_t)sizeof(float)) / 2;
    if (m->n_layers == INT_MAX || l.n_params > max_floats - m->n_params ||
        l.n_state > max_floats - m->n_state)
        return del_error(DEL_EINVAL, "%s: the model would be too large", func);

    del_layer *layers = realloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *layers);
    if (!layers)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    m->layers = layers;
    del_layer_group *groups = realloc(m->groups, (size_t)(m->n_layers + 1) * sizeof *groups);
    if (!groups)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    m->groups = groups;
    l.out = del_tensor_empty();
    l.dx = del_tensor_empty();
    l.aux = del_tensor_empty();
    int64_t np = m->n_params + l.n_params, ns = m->n_state + l.n_state;
    if (!l.out || !l.dx || !l.aux || !grow_floats(&m->params, np) || !grow_floats(&m->grads, np) ||
        !grow_floats(&m->state, ns)) {
        layer_release(&l);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    if (ops == &del_layer_relu && m->n_layers > 0 && m->layers[m->n_layers - 1].ops == &del_layer_batchnorm) {
        m->layers[m->n_layers - 1].fused_relu = 1;
        l.folded = 1;
    }
    l.param_off = m->n_params;
    l.state_off = m->n_state;
    m->n_params = np;
    m->n_state = ns;
    m->groups[m->n_layers] = (del_layer_group){.frozen = 0, .lr_mult = 1.0f};
    m->layers[m->n_layers++] = l;
    m->groups_version++;
    if (l.n_params > 0)
        memset(m->grads + l.param_off, 0, (size_t)l.n_params * sizeof(float));
    layer_init(m, m->n_layers - 1);
    /* The last forward no longer describes this model. */
    m->fwd_mode = -1;
    m->have_grad = 0;
    return DEL_OK;
}

DEL_API del_status del_model_add_conv2d(del_model *model, int out_channels, int kernel, int stride,
                                        int pad, int bias)
{
    del_layer_cfg c = {.out = out_channels, .kernel = kernel, .stride = stride, .pad = pad, .bias = bias};
    return del_model_add_layer(model, &del_layer_conv2d, &c, "del_model_add_conv2d");
}

DEL_API del_status del_model_add_linear(del_model *model, int out_features, int bias)
{
    del_layer_cfg c = {.out = out_features, .bias = bias};
    return del_model_add_layer(model, &del_layer_linear, &c, "del_model_add_linear");
}

DEL_API del_status del_model_add_batchnorm(del_model *model, float eps, float momentum)
{
    del_layer_cfg c = {.eps = eps, .momentum = momentum};
    return del_model_add_layer(model, &del_layer_batchnorm, &c, "del_model_add_batchnorm");
}

DEL_API del_status del_model_add_relu(del_model *model)
{
    del_layer_cfg c = {0};
    return del_model_add_layer(model, &del_layer_relu, &c, "del_model_add_relu");
}

DEL_API del_status del_model_add_maxpool(del_model *model, int kernel, int stride)
{
    del_layer_cfg c = {.kernel = kernel, .stride = stride};
    return del_model_add_layer(model, &del_layer_maxpool, &c, "del_model_add_maxpool");
}

DEL_API del_status del_model_add_flatten(del_model *model)
{
    del_layer_cfg c = {0};
    return del_model_add_layer(model, &del_layer_flatten, &c, "del_model_add_flatten");
}

DEL_API del_status del_model_add_dropout(del_model *model, float p)
{
    del_layer_cfg c = {.p = p};
    return del_model_add_layer(model, &del_layer_dropout, &c, "del_model_add_dropout");
}

DEL_API del_status del_model_init(del_model *model, uint64_t seed)
{
    if (!model)
        return del_error_null("del_model_init", "model");
    model->seed = seed;
    for (int i = 0; i < model->n_layers; i++)
        layer_init(model, i);
    if (model->n_params > 0)
        memset(model->grads, 0, (size_t)model->n_params * sizeof(float));
    del_rng_seed_stream(&model->rng, seed, DEL_MODEL_STREAM_DROPOUT, 0);
    return DEL_OK;
}

DEL_API del_status del_model_set_training(del_model *model, int training)
{
    if (!model)
        return del_error_null("del_model_set_training", "model");
    model->training = training != 0;
    return DEL_OK;
}

DEL_API int del_model_is_training(const del_model *model)
{
    return model ? model->training : 0;
}

DEL_API int del_model_num_layers(const del_model *model)
{
    return model ? model->n_layers : 0;
}

DEL_API const char *del_model_layer_type(const del_model *model, int i)
{
    if (!model || i < 0 || i >= model->n_layers)
        return NULL;
    return model->layers[i].ops->name;
}

DEL_API int64_t del_model_num_params(const del_model *model)
{
    return model ? model->n_params : 0;
}

DEL_API float *del_model_params(del_model *model)
{
    return model && model->n_params > 0 ? model->params : NULL;
}

DEL_API float *del_model_grads(del_model *model)
{
    return model && model->n_params > 0 ? model->grads : NULL;
}

DEL_API del_status del_model_input_shape(const del_model *model, int *channels, int *height, int *width)
{
    static const char fn[] = "del_model_input_shape";
    if (!model)
        return del_error_null(fn, "model");
    if (!channels)
        return del_error_null(fn, "channels");
    if (!height)
        return del_error_null(fn, "height");
    if (!width)
        return del_error_null(fn, "width");
    *channels = model->in_c;
    *height = model->in_h;
    *width = model->in_w;
    return DEL_OK;
}

DEL_API del_status del_model_output_shape(const del_model *model, int *ndim, int64_t *shape)
{
    if (!model)
        return del_error_null("del_model_output_shape", "model");
    if (!ndim)
        return del_error_null("del_model_output_shape", "ndim");
    if (!shape)
        return del_error_null("del_model_output_shape", "shape");
    current_shape(model, ndim, shape);
    return DEL_OK;
}

/* Appends printf output at *len, counting what did not fit. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t size, size_t *len,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = *len < size ? vsnprintf(buf + *len, size - *len, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

static void shape_text(int ndim, const int64_t *shape, char *out, size_t size)
{
    if (ndim == 1)
        snprintf(out, size, "[%lld]", (long long)shape[0]);
    else
        snprintf(out, size, "[%lld, %lld, %lld]", (long long)shape[0], (long long)shape[1],
                 (long long)shape[2]);
}

DEL_API del_status del_model_summary(const del_model *model, char *buf, size_t size, size_t *needed)
{
    if (!model)
        return del_error_null("del_model_summary", "model");
    if (!buf && size > 0)
        return del_error_null("del_model_summary", "buf");
    if (buf && size > 0)
        buf[0] = '\0';
    size_t len = 0;
    char sh[64];
    int64_t in_shape[3] = {model->in_c, model->in_h, model->in_w};
    shape_text(3, in_shape, sh, sizeof sh);
    append(buf, size, &len, "%-3s %-10s %-18s %10s\n", "#", "layer", "output", "params");
    append(buf, size, &len, "%-3s %-10s %-18s %10d\n", "-", "input", sh, 0);
    for (int i = 0; i < model->n_layers; i++) {
        const del_layer *l = &model->layers[i];
        shape_text(l->out_ndim, l->out_shape, sh, sizeof sh);
        append(buf, size, &len, "%-3d %-10s %-18s %10lld\n", i, l->ops->name, sh,
               (long long)l->n_params);
    }
    append(buf, size, &len, "total params: %lld\n", (long long)model->n_params);
    if (needed)
        *needed = len + 1;
    if (len + 1 > size)
        return del_error(DEL_EINVAL, "del_model_summary: 'size' must be at least %zu, got %zu", len + 1,
                         size);
    return DEL_OK;
}

/* Grows the shared conv scratch to what a batch of n needs. */
static del_status ensure_workspace(del_model *m, int n)
{
    size_t need = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const del_layer *l = &m->layers[i];
        if (l->ops->workspace) {
            size_t s = l->ops->workspace(l, n);
            if (s > need)
                need = s;
        }
    }
    if (need <= m->ws_size)
        return DEL_OK;
    void *ws = malloc(need);
    if (!ws)
        return del_error(DEL_ENOMEM, "del_model_forward: out of memory (%zu bytes of workspace)", need);
    free(m->ws);
    m->ws = ws;
    m->ws_size = need;
    return DEL_OK;
}

static del_layer_ctx layer_ctx(del_model *m, const del_layer *l, int training)
{
    del_layer_ctx c;
    c.params = m->params ? m->params + l->param_off : NULL;
    c.grads = m->grads ? m->grads + l->param_off : NULL;
    c.state = m->state ? m->state + l->state_off : NULL;
    c.training = training;
    c.need_dx = 1;
    c.rng = &m->rng;
    c.ws = m->ws;
    c.ws_size = m->ws_size;
    return c;
}

/* A frozen layer with batchnorm statistics (a batchnorm, a residual
 * block) normalises with its running statistics even in training mode and
 * leaves them alone (SPEC 1.2: a linear probe's backbone computes what it
 * computes in evaluation mode), so it runs as in evaluation mode, and its
 * backward is that of the evaluation-mode layer, which computes no
 * parameter gradients. A frozen residual block thus also drops no
 * branch; frozen dropout stays active. */
static int runs_as_eval(const del_model *m, int i)
{
    return m->groups[i].frozen && m->layers[i].n_state > 0;
}

/* Points c->grads at where the backward of layer i may write parameter
 * gradients nobody wants (a frozen layer, or one whose gradients were
 * already taken): NULL for conv2d, which then skips its weight-gradient
 * gemm, and for evaluation-mode backwards, which write none; else zeroed
 * scratch that is thrown away (linear.c always computes its weight
 * gradient). */
static del_status discard_grads(del_model *m, int i, del_layer_ctx *c)
{
    const del_layer *l = &m->layers[i];
    c->grads = NULL;
    if (l->n_params == 0 || l->ops == &del_layer_conv2d || runs_as_eval(m, i))
        return DEL_OK;
    if (l->n_params > m->scratch_size) {
        float *p = malloc((size_t)l->n_params * sizeof(float));
        if (!p)
            return del_error(DEL_ENOMEM, "del_model_backward: out of memory");
        free(m->scratch_grads);
        m->scratch_grads = p;
        m->scratch_size = l->n_params;
    }
    memset(m->scratch_grads, 0, (size_t)l->n_params * sizeof(float));
    c->grads = m->scratch_grads;
    return DEL_OK;
}

/* In evaluation mode a conv2d followed by a batchnorm (its relu folded
 * in or not) and possibly a 2x2 / stride 2 maxpool runs as one pass
 * (layer.h); the outputs of the layers in between are then not computed,
 * which nothing reads: backward needs a training-mode forward. */
static int folds_next_batchnorm(const del_model *m, int i)
{
    return !m->training && i + 1 < m->n_layers && m->layers[i].ops == &del_layer_conv2d &&
           m->layers[i + 1].ops == &del_layer_batchnorm;
}

/* The index of the maxpool folded into the conv2d at i, or -1. */
static int folded_pool_index(const del_model *m, int i)
{
    int p = i + 2 + (m->layers[i + 1].fused_relu ? 1 : 0);
    if (p >= m->n_layers || m->layers[p].ops != &del_layer_maxpool)
        return -1;
    const del_layer *l = &m->layers[p];
    return l->cfg.kernel == 2 && l->cfg.stride == 2 ? p : -1;
}

DEL_API del_status del_model_forward(del_model *model, const del_tensor *x)
{
    if (!model)
        return del_error_null("del_model_forward", "model");
    if (!x)
        return del_error_null("del_model_forward", "x");
    if (x->dtype != DEL_DTYPE_F32 || x->ndim != 4 || x->shape[1] != model->in_c ||
        x->shape[2] != model->in_h || x->shape[3] != model->in_w) {
        char got[96];
        del_tensor_shape_str(x, got, sizeof got);
        return del_error(DEL_EINVAL, "del_model_forward: 'x' must be f32 [N, %d, %d, %d], got %s %s",
                         model->in_c, model->in_h, model->in_w,
                         x->dtype == DEL_DTYPE_F32 ? "f32" : x->dtype == DEL_DTYPE_U8 ? "u8" : "i32",
                         got);
    }
    if (x->shape[0] > INT_MAX)
        return del_error(DEL_EINVAL, "del_model_forward: batch size %lld is too large",
                         (long long)x->shape[0]);
    int n = (int)x->shape[0];
    model->fwd_mode = -1;
    model->have_grad = 0;
    model->bn_groups_changed = 0;
    del_status st = del_tensor_ensure(model->input, DEL_DTYPE_F32, 4, x->shape);
    if (st != DEL_OK)
        return st;
    if (model->input->data != x->data) /* x may be this model's own output */
        memcpy(model->input->data, x->data, del_tensor_nbytes(x));
    st = ensure_workspace(model, n);
    if (st != DEL_OK)
        return st;
    const del_tensor *cur = model->input;
    for (int i = 0; i < model->n_layers; i++) {
        del_layer *l = &model->layers[i];
        del_layer_ctx c = layer_ctx(model, l, model->training && !runs_as_eval(model, i));
        if (folds_next_batchnorm(model, i)) {
            del_layer *bn = &model->layers[i + 1];
            del_layer_ctx bc = layer_ctx(model, bn, 0);
            int last = folded_pool_index(model, i);
            del_layer *pool = last > i + 1 ? &model->layers[last] : NULL;
            if (!pool)
                last = i + 1;
            st = del_conv2d_forward_folded(l, &c, cur, bn, &bc, pool);
            if (st != DEL_OK)
                return st;
            cur = model->layers[last].out;
            i = last;
            continue;
        }
        st = l->ops->forward(l, &c, cur);
        if (st != DEL_OK)
            return st;
        cur = l->out;
    }
    model->fwd_mode = model->training;
    return DEL_OK;
}

DEL_API del_tensor *del_model_output(del_model *model)
{
    if (!model || model->fwd_mode < 0)
        return NULL;
    return model->n_layers ? model->layers[model->n_layers - 1].out : model->input;
}

/* Skipping the first layer's input gradient saves a gemm and a col2im per
 * image for a first conv2d (nobody needs the gradient of the images in
 * plain training). It needs a second layer that owns its dx (not a view of
 * the caller's grad_output, which may be gone by the time it is asked). */
static int skips_input_grad(const del_model *m)
{
    return !m->want_input_grad && m->n_layers > 1 && m->layers[0].ops == &del_layer_conv2d;
}

/* The lowest layer with parameters to train (n_layers if none): nothing
 * below it needs a gradient unless someone asked for the input gradient,
 * which makes a linear probe's backward one layer deep. */
static int lowest_trainable(const del_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].n_params > 0 && !m->groups[i].frozen)
            return i;
    return m->n_layers;
}

/* The backward of layer i from dy, with or without its parameter gradients. */
static del_status layer_backward(del_model *m, int i, const del_tensor *dy, int param_grads, int need_dx)
{
    del_layer *l = &m->layers[i];
    const del_tensor *x = i > 0 ? m->layers[i - 1].out : m->input;
    del_layer_ctx c = layer_ctx(m, l, !runs_as_eval(m, i));
    c.need_dx = need_dx;
    if (!param_grads) {
        del_status st = discard_grads(m, i, &c);
        if (st != DEL_OK)
            return st;
    }
    return l->ops->backward(l, &c, x, dy);
}

DEL_API del_status del_model_backward(del_model *model, const del_tensor *grad_output)
{
    if (!model)
        return del_error_null("del_model_backward", "model");
    if (!grad_output)
        return del_error_null("del_model_backward", "grad_output");
    if (model->fwd_mode < 0)
        return del_error(DEL_ESTATE, "del_model_backward: no forward to back-propagate through "
                                     "(call del_model_forward first)");
    if (model->fwd_mode == 0)
        return del_error(DEL_ESTATE, "del_model_backward: the last forward was in evaluation mode "
                                     "(call del_model_set_training(model, 1) and forward again)");
    if (model->bn_groups_changed)
        return del_error(DEL_ESTATE, "del_model_backward: a layer with batchnorm statistics was frozen or "
                                     "unfrozen since the last forward (forward again)");
    const del_tensor *y = del_model_output(model);
    if (!del_tensor_has_shape(grad_output, DEL_DTYPE_F32, y->ndim, y->shape)) {
        char want[96], got[96];
        del_tensor_shape_str(y, want, sizeof want);
        del_tensor_shape_str(grad_output, got, sizeof got);
        return del_error(DEL_EINVAL, "del_model_backward: 'grad_output' must be f32 %s like the output, got %s%s",
                         want, got, grad_output->dtype == DEL_DTYPE_F32 ? "" : " (not f32)");
    }
    model->have_grad = 0;
    if (model->n_layers == 0) {
        del_status st = del_tensor_ensure(model->input_grad, DEL_DTYPE_F32, y->ndim, y->shape);
        if (st != DEL_OK)
            return st;
        if (model->input_grad->data != grad_output->data)
            memcpy(model->input_grad->data, grad_output->data, del_tensor_nbytes(grad_output));
        model->have_grad = 1;
        return DEL_OK;
    }
    int n = model->n_layers;
    int lowest = model->want_input_grad ? 0 : lowest_trainable(model);
    const del_tensor *dy = grad_output;
    int i;
    for (i = n - 1; i >= 0; i--) {
        /* Stops only where del_model_input_grad can take over later. */
        if (i < lowest && i + 1 < n && model->layers[i + 1].dx->owned)
            break;
        int need_dx = !(i == 0 && skips_input_grad(model) && model->layers[1].dx->owned);
        del_status st = layer_backward(model, i, dy, !model->groups[i].frozen, need_dx);
        if (st != DEL_OK)
            return st;
        if (!need_dx)
            break;
        dy = model->layers[i].dx;
    }
    model->dx_valid_from = i + 1;
    model->have_grad = 1;
    return DEL_OK;
}

/* The first call after a backward computes the gradients that backward
 * skipped, from the dx of the lowest layer it reached (still held by the
 * model) and the current weights, without touching parameter gradients.
 * Frozen layers keep their weights, so this matches the backward even
 * after optimizer steps, except for a trainable first conv2d whose weights
 * a step changed. Every later backward computes it eagerly. */
DEL_API del_tensor *del_model_input_grad(del_model *model)
{
    if (!model || !model->have_grad)
        return NULL;
    if (!model->n_layers)
        return model->input_grad;
    model->want_input_grad = 1;
    /* the tensors were sized by the backward, so only scratch can fail */
    for (int i = model->dx_valid_from - 1; i >= 0; i--) {
        if (layer_backward(model, i, model->layers[i + 1].dx, 0, 1) != DEL_OK)
            return NULL;
        model->dx_valid_from = i;
    }
    return model->layers[0].dx;
}

DEL_API del_status del_model_zero_grad(del_model *model)
{
    if (!model)
        return del_error_null("del_model_zero_grad", "model");
    if (model->n_params > 0)
        memset(model->grads, 0, (size_t)model->n_params * sizeof(float));
    return DEL_OK;
}

/* Resolves an inclusive layer range where negative indices count from the
 * end (-1 is the last layer), as Python slices do. */
static del_status layer_range(const del_model *m, int *first, int *last, const char *func)
{
    if (!m)
        return del_error_null(func, "model");
    int n = m->n_layers;
    int f = *first < 0 ? *first + n : *first, l = *last < 0 ? *last + n : *last;
    if (n == 0)
        return del_error(DEL_EINVAL, "%s: 'model' has no layers", func);
    if (f < 0 || f >= n)
        return del_error(DEL_EINVAL, "%s: 'first' must be a layer index in %d..%d (or %d..-1 from the end), got %d",
                         func, 0, n - 1, -n, *first);
    if (l < 0 || l >= n)
        return del_error(DEL_EINVAL, "%s: 'last' must be a layer index in %d..%d (or %d..-1 from the end), got %d",
                         func, 0, n - 1, -n, *last);
    if (f > l)
        return del_error(DEL_EINVAL, "%s: 'first' (layer %d) must not come after 'last' (layer %d)", func, f, l);
    *first = f;
    *last = l;
    return DEL_OK;
}

static del_status set_frozen(del_model *model, int first, int last, int frozen, const char *func)
{
    del_status st = layer_range(model, &first, &last, func);
    if (st != DEL_OK)
        return st;
    for (int i = first; i <= last; i++) {
        if (model->groups[i].frozen == frozen)
            continue;
        model->groups[i].frozen = frozen;
        model->groups_version++;
        if (model->layers[i].n_state > 0) {
            model->bn_groups_changed = 1;
            model->have_grad = 0;
        }
    }
    return DEL_OK;
}

DEL_API del_status del_model_freeze(del_model *model, int first, int last)
{
    return set_frozen(model, first, last, 1, "del_model_freeze");
}

DEL_API del_status del_model_unfreeze(del_model *model, int first, int last)
{
    return set_frozen(model, first, last, 0, "del_model_unfreeze");
}

DEL_API del_status del_model_set_lr_mult(del_model *model, int first, int last, float mult)
{
    static const char *func = "del_model_set_lr_mult";
    del_status st = layer_range(model, &first, &last, func);
    if (st != DEL_OK)
        return st;
    if (!(mult > 0.0f) || !isfinite(mult))
        return del_error(DEL_EINVAL, "%s: 'mult' must be a finite value > 0 (freeze a layer to stop "
                         "training it), got %g", func, (double)mult);
    for (int i = first; i <= last; i++)
        model->groups[i].lr_mult = mult;
    model->groups_version++;
    return DEL_OK;
}

DEL_API int del_model_layer_frozen(const del_model *model, int i)
{
    if (!model || i < 0 || i >= model->n_layers)
        return 0;
    return model->groups[i].frozen;
}

DEL_API float del_model_layer_lr_mult(const del_model *model, int i)
{
    if (!model || i < 0 || i >= model->n_layers)
        return 0.0f;
    return model->groups[i].lr_mult;
}
