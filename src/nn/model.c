/* The model: a sequence of layers with every parameter in one contiguous
 * buffer (and every gradient in another), so optimizers, snapshots and
 * teacher copies are a loop or a memcpy. With heads the sequence is cut
 * into segments: the backbone, then each head, whose first layer reads the
 * backbone's output; forward runs the backbone once and every head,
 * backward runs the heads asked for and the backbone on the sum of what
 * they pass down. model_add.c appends layers and manages the heads. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
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
    m->head_grad = del_tensor_empty();
    if (!m->input || !m->input_grad || !m->head_grad) {
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

void del_model_layer_release(del_layer *l)
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
        del_model_layer_release(&model->layers[i]);
    free(model->layers);
    free(model->groups);
    free(model->heads);
    del_tensor_free(model->head_grad);
    free(model->scratch_grads);
    free(model->params);
    free(model->grads);
    free(model->state);
    del_tensor_free(model->input);
    del_tensor_free(model->input_grad);
    free(model->ws);
    free(model);
}

/* The per-image output shape of the layers before `end` (the input's if
 * end is 0). */
static void shape_before(const del_model *m, int end, int *ndim, int64_t *shape)
{
    if (end == 0) {
        *ndim = 3;
        shape[0] = m->in_c;
        shape[1] = m->in_h;
        shape[2] = m->in_w;
        return;
    }
    const del_layer *last = &m->layers[end - 1];
    *ndim = last->out_ndim;
    for (int i = 0; i < 3; i++)
        shape[i] = last->out_shape[i];
}

void del_model_next_shape(const del_model *m, int *ndim, int64_t *shape)
{
    int starts_head = m->building_head && m->heads[m->n_heads - 1].count == 0;
    shape_before(m, starts_head ? del_model_backbone_end(m) : m->n_layers, ndim, shape);
}

void del_model_layer_init(const del_model *m, int i)
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

DEL_API del_status del_model_init(del_model *model, uint64_t seed)
{
    if (!model)
        return del_error_null("del_model_init", "model");
    model->seed = seed;
    for (int i = 0; i < model->n_layers; i++)
        del_model_layer_init(model, i);
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

DEL_API int64_t del_model_num_buffers(const del_model *model)
{
    return model ? model->n_state : 0;
}

DEL_API float *del_model_buffers(del_model *model)
{
    return model && model->n_state > 0 ? model->state : NULL;
}

DEL_API del_status del_model_layer_params(const del_model *model, int i, int64_t *offset, int64_t *count)
{
    static const char fn[] = "del_model_layer_params";
    if (!model)
        return del_error_null(fn, "model");
    if (!offset)
        return del_error_null(fn, "offset");
    if (!count)
        return del_error_null(fn, "count");
    if (i < 0 || i >= model->n_layers)
        return del_error(DEL_EINVAL, "%s: 'i' must be in 0..%d (the model's layers), got %d", fn, model->n_layers - 1,
                         i);
    *offset = model->layers[i].param_off;
    *count = model->layers[i].n_params;
    return DEL_OK;
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
    /* with heads, the first head's (del_model_output) */
    shape_before(model, model->n_heads > 0 ? model->heads[0].first + model->heads[0].count : model->n_layers,
                 ndim, shape);
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
    if (size == 0 && !needed)
        return del_error(DEL_EINVAL, "del_model_summary: 'needed' must not be NULL in a size query (size 0)");
    if (size > 0)
        buf[0] = '\0';
    size_t len = 0;
    char sh[64];
    int64_t in_shape[3] = {model->in_c, model->in_h, model->in_w};
    shape_text(3, in_shape, sh, sizeof sh);
    append(buf, size, &len, "%-3s %-10s %-18s %10s\n", "#", "layer", "output", "params");
    append(buf, size, &len, "%-3s %-10s %-18s %10d\n", "-", "input", sh, 0);
    for (int i = 0, h = 0; i < model->n_layers; i++) {
        const del_layer *l = &model->layers[i];
        if (h < model->n_heads && model->heads[h].first == i) {
            append(buf, size, &len, "head '%s' (layers %d..%d, input: the backbone's output)\n",
                   model->heads[h].name, i, i + model->heads[h].count - 1);
            h++;
        }
        shape_text(l->out_ndim, l->out_shape, sh, sizeof sh);
        append(buf, size, &len, "%-3d %-10s %-18s %10lld\n", i, l->ops->name, sh,
               (long long)l->n_params);
    }
    append(buf, size, &len, "total params: %lld\n", (long long)model->n_params);
    if (needed)
        *needed = len + 1;
    /* A size query is not an error; a buffer too small for the whole text
     * is, so that a caller checking only the status never takes a
     * truncated summary for the whole. */
    if (size > 0 && len + 1 > size)
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
 * which nothing reads: backward needs a training-mode forward. A fold
 * never reaches past end, the end of the layer's segment (the backbone or
 * a head), whose last output the heads or the caller read. */
static int folds_next_batchnorm(const del_model *m, int i, int end)
{
    return !m->training && i + 1 < end && m->layers[i].ops == &del_layer_conv2d &&
           m->layers[i + 1].ops == &del_layer_batchnorm;
}

/* The index of the maxpool folded into the conv2d at i, or -1. */
static int folded_pool_index(const del_model *m, int i, int end)
{
    int p = i + 2 + (m->layers[i + 1].fused_relu ? 1 : 0);
    if (p >= end || m->layers[p].ops != &del_layer_maxpool)
        return -1;
    const del_layer *l = &m->layers[p];
    return l->cfg.kernel == 2 && l->cfg.stride == 2 ? p : -1;
}

/* 1 if layer i is the first layer of a head. */
static int starts_head(const del_model *m, int i)
{
    for (int h = 0; h < m->n_heads; h++)
        if (m->heads[h].first == i)
            return 1;
    return 0;
}

/* The backbone's output in the last forward (the input for an empty
 * backbone): what every head reads. */
static const del_tensor *backbone_output(const del_model *m)
{
    int bb = del_model_backbone_end(m);
    return bb > 0 ? m->layers[bb - 1].out : m->input;
}

/* The input of layer i in the last forward. */
static const del_tensor *layer_input(const del_model *m, int i)
{
    if (m->n_heads > 0 && starts_head(m, i))
        return backbone_output(m);
    return i > 0 ? m->layers[i - 1].out : m->input;
}

/* Runs layers first..end-1 (one segment) on cur. */
static del_status forward_segment(del_model *m, int first, int end, const del_tensor *cur)
{
    for (int i = first; i < end; i++) {
        del_layer *l = &m->layers[i];
        del_layer_ctx c = layer_ctx(m, l, m->training && !runs_as_eval(m, i));
        if (folds_next_batchnorm(m, i, end)) {
            del_layer *bn = &m->layers[i + 1];
            del_layer_ctx bc = layer_ctx(m, bn, 0);
            int last = folded_pool_index(m, i, end);
            del_layer *pool = last > i + 1 ? &m->layers[last] : NULL;
            if (!pool)
                last = i + 1;
            del_status st = del_conv2d_forward_folded(l, &c, cur, bn, &bc, pool);
            if (st != DEL_OK)
                return st;
            cur = m->layers[last].out;
            i = last;
            continue;
        }
        del_status st = l->ops->forward(l, &c, cur);
        if (st != DEL_OK)
            return st;
        cur = l->out;
    }
    return DEL_OK;
}

/* An out-of-memory error met inside fn's work, reported as fn's: the
 * tensor and layer helpers that allocate name themselves. */
static del_status nomem_of(del_status st, const char *fn)
{
    const char *msg = del_last_error();
    size_t len = strlen(fn);
    if (st != DEL_ENOMEM || (strncmp(msg, fn, len) == 0 && msg[len] == ':'))
        return st;
    char inner[512];
    snprintf(inner, sizeof inner, "%s", msg);
    const char *colon = strstr(inner, ": ");
    return del_error(st, "%s: %s", fn, colon ? colon + 2 : inner);
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
        return nomem_of(st, "del_model_forward");
    if (model->input->data != x->data) /* x may be this model's own output */
        memcpy(model->input->data, x->data, del_tensor_nbytes(x));
    st = ensure_workspace(model, n);
    if (st != DEL_OK)
        return st;
    /* The backbone once, then every head on its output. */
    st = forward_segment(model, 0, del_model_backbone_end(model), model->input);
    for (int h = 0; h < model->n_heads && st == DEL_OK; h++) {
        const del_head *hd = &model->heads[h];
        st = forward_segment(model, hd->first, hd->first + hd->count, backbone_output(model));
    }
    if (st != DEL_OK)
        return nomem_of(st, "del_model_forward");
    model->fwd_mode = model->training;
    return DEL_OK;
}

/* The last layer's output of head h. */
static del_tensor *head_out(del_model *m, int h)
{
    return m->layers[m->heads[h].first + m->heads[h].count - 1].out;
}

DEL_API del_tensor *del_model_output(del_model *model)
{
    if (!model || model->fwd_mode < 0)
        return NULL;
    if (model->n_heads > 0)
        return head_out(model, 0);
    return model->n_layers ? model->layers[model->n_layers - 1].out : model->input;
}

DEL_API del_tensor *del_model_head_output(del_model *model, const char *name)
{
    int h = del_model_head_index(model, name);
    if (h < 0 || model->fwd_mode < 0)
        return NULL;
    return head_out(model, h);
}

/* The tensor the model holds d loss / d (output of layer i) in after a
 * backward went through layer i + 1 (end: the end of i's segment), or NULL
 * where that gradient is only the caller's (the top of a head or of a model
 * without heads) or a view of it: the dx of the layer above, or for the
 * backbone's last layer the sum the heads passed down. */
static const del_tensor *held_dy(const del_model *m, int i, int end)
{
    if (i + 1 < end)
        return m->layers[i + 1].dx->owned ? m->layers[i + 1].dx : NULL;
    return m->n_heads > 0 && end == del_model_backbone_end(m) ? m->head_grad : NULL;
}

/* d loss / d (output of layer i) once a backward or its continuation went
 * through layer i + 1: as held_dy, but a view is fine (it views a tensor
 * held further up). */
static const del_tensor *dy_above(const del_model *m, int i, int end)
{
    if (i + 1 < end)
        return m->layers[i + 1].dx;
    return held_dy(m, i, end);
}

/* Skipping the input gradient of a layer that reads the model's input
 * saves a gemm and a col2im per image for a first conv2d (nobody needs the
 * gradient of the images in plain training). It needs the layer's dy to be
 * held by the model (not the caller's grad_output, which may be gone by the
 * time del_model_input_grad asks). */
static int skips_input_grad(const del_model *m, int i, int end)
{
    int reads_input = i == 0 || (del_model_backbone_end(m) == 0 && starts_head(m, i));
    return !m->want_input_grad && reads_input && m->layers[i].ops == &del_layer_conv2d && held_dy(m, i, end);
}

/* The lowest layer of first..end-1 with parameters to train (end if none):
 * nothing below it needs a gradient unless someone asked for the input
 * gradient, which makes a linear probe's backward one layer deep. */
static int lowest_trainable(const del_model *m, int first, int end)
{
    for (int i = first; i < end; i++)
        if (m->layers[i].n_params > 0 && !m->groups[i].frozen)
            return i;
    return end;
}

/* The backward of layer i from dy, with or without its parameter gradients. */
static del_status layer_backward(del_model *m, int i, const del_tensor *dy, int param_grads, int need_dx)
{
    del_layer *l = &m->layers[i];
    del_layer_ctx c = layer_ctx(m, l, !runs_as_eval(m, i));
    c.need_dx = need_dx;
    if (!param_grads) {
        del_status st = discard_grads(m, i, &c);
        if (st != DEL_OK)
            return st;
    }
    return l->ops->backward(l, &c, layer_input(m, i), dy);
}

/* Back-propagates dy through the segment first..end-1, from the top down
 * to lowest; below it, it stops where del_model_input_grad can take over
 * later (a held dy). *valid_from receives the lowest layer whose dx it
 * computed. */
static del_status backward_segment(del_model *m, int first, int end, const del_tensor *dy, int lowest,
                                   int *valid_from)
{
    int i;
    for (i = end - 1; i >= first; i--) {
        if (i < lowest && held_dy(m, i, end))
            break;
        int need_dx = !skips_input_grad(m, i, end);
        del_status st = layer_backward(m, i, dy, !m->groups[i].frozen, need_dx);
        if (st != DEL_OK)
            return st;
        if (!need_dx)
            break;
        dy = m->layers[i].dx;
    }
    *valid_from = i + 1;
    return DEL_OK;
}

/* Computes the dx of layers *valid_from-1 down to first of a segment that
 * a backward left off, without parameter gradients. */
static del_status continue_segment(del_model *m, int first, int end, int *valid_from)
{
    for (int i = *valid_from - 1; i >= first; i--) {
        const del_tensor *dy = dy_above(m, i, end);
        if (!dy)
            return del_error(DEL_ESTATE, "del_model_input_grad: no gradient kept above layer %d", i);
        del_status st = layer_backward(m, i, dy, 0, 1);
        if (st != DEL_OK)
            return st;
        *valid_from = i;
    }
    return DEL_OK;
}

/* head_grad = the sum, in head order, of the input gradients of the heads
 * the last backward went through (their first layers' dx). */
static del_status sum_head_grads(del_model *m)
{
    int started = 0;
    for (int h = 0; h < m->n_heads; h++) {
        if (!m->heads[h].in_grad)
            continue;
        const del_tensor *dx = m->layers[m->heads[h].first].dx;
        if (started) {
            del_backend_get()->add(del_tensor_numel(dx), dx->data, m->head_grad->data);
            continue;
        }
        del_status st = del_tensor_ensure(m->head_grad, DEL_DTYPE_F32, dx->ndim, dx->shape);
        if (st != DEL_OK)
            return st;
        memcpy(m->head_grad->data, dx->data, del_tensor_nbytes(dx));
        started = 1;
    }
    m->head_grad_valid = 1;
    return DEL_OK;
}

/* The backward of a model whose arguments were checked: without heads,
 * grad through every layer; with heads, through each head whose grad_in
 * is set, then (if a trainable backbone layer or the input gradient needs
 * it) through the backbone from the sum of what the heads pass down. */
static del_status backward_run(del_model *m, const del_tensor *grad)
{
    m->have_grad = 0;
    m->head_grad_valid = 0;
    int bb = del_model_backbone_end(m);
    int bb_lowest = m->want_input_grad ? 0 : lowest_trainable(m, 0, bb);
    del_status st = DEL_OK;
    if (m->n_heads == 0) {
        st = backward_segment(m, 0, bb, grad, bb_lowest, &m->dx_valid_from);
        m->have_grad = st == DEL_OK;
        return st;
    }
    int need_bb = m->want_input_grad || bb_lowest < bb;
    for (int h = 0; h < m->n_heads; h++) {
        del_head *hd = &m->heads[h];
        hd->in_grad = hd->grad_in != NULL;
        hd->dx_valid_from = hd->first + hd->count;
    }
    m->dx_valid_from = bb;
    for (int h = 0; h < m->n_heads && st == DEL_OK; h++) {
        del_head *hd = &m->heads[h];
        int end = hd->first + hd->count;
        /* the backbone needs the head's input gradient: no early stop */
        int lowest = need_bb ? hd->first : lowest_trainable(m, hd->first, end);
        if (hd->in_grad)
            st = backward_segment(m, hd->first, end, hd->grad_in, lowest, &hd->dx_valid_from);
    }
    if (st == DEL_OK && need_bb) {
        st = sum_head_grads(m);
        if (st == DEL_OK && bb > 0)
            st = backward_segment(m, 0, bb, m->head_grad, bb_lowest, &m->dx_valid_from);
    }
    for (int h = 0; h < m->n_heads; h++)
        m->heads[h].grad_in = NULL;
    m->have_grad = st == DEL_OK;
    return st;
}

/* The checks every backward makes on the last forward. */
static del_status check_forward_done(const del_model *m, const char *func)
{
    if (m->fwd_mode < 0)
        return del_error(DEL_ESTATE, "%s: no forward to back-propagate through (call del_model_forward first)",
                         func);
    if (m->fwd_mode == 0)
        return del_error(DEL_ESTATE, "%s: the last forward was in evaluation mode "
                                     "(call del_model_set_training(model, 1) and forward again)", func);
    if (m->bn_groups_changed)
        return del_error(DEL_ESTATE, "%s: a layer with batchnorm statistics was frozen or "
                                     "unfrozen since the last forward (forward again)", func);
    return DEL_OK;
}

DEL_API del_status del_model_backward(del_model *model, const del_tensor *grad_output)
{
    if (!model)
        return del_error_null("del_model_backward", "model");
    if (!grad_output)
        return del_error_null("del_model_backward", "grad_output");
    del_status st = check_forward_done(model, "del_model_backward");
    if (st != DEL_OK)
        return st;
    const del_tensor *y = del_model_output(model);
    if (!del_tensor_has_shape(grad_output, DEL_DTYPE_F32, y->ndim, y->shape)) {
        char want[96], got[96];
        del_tensor_shape_str(y, want, sizeof want);
        del_tensor_shape_str(grad_output, got, sizeof got);
        return del_error(DEL_EINVAL, "del_model_backward: 'grad_output' must be f32 %s like the output, got %s%s",
                         want, got, grad_output->dtype == DEL_DTYPE_F32 ? "" : " (not f32)");
    }
    if (model->n_layers == 0) {
        model->have_grad = 0;
        st = del_tensor_ensure(model->input_grad, DEL_DTYPE_F32, y->ndim, y->shape);
        if (st != DEL_OK)
            return nomem_of(st, "del_model_backward");
        if (model->input_grad->data != grad_output->data)
            memcpy(model->input_grad->data, grad_output->data, del_tensor_nbytes(grad_output));
        model->have_grad = 1;
        return DEL_OK;
    }
    if (model->n_heads > 0)
        model->heads[0].grad_in = grad_output;
    return nomem_of(backward_run(model, grad_output), "del_model_backward");
}

DEL_API del_status del_model_backward_heads(del_model *model, int count, const char *const *names,
                                            const del_tensor *const *grads)
{
    static const char fn[] = "del_model_backward_heads";
    if (!model)
        return del_error_null(fn, "model");
    if (count < 1)
        return del_error(DEL_EINVAL, "%s: 'count' must be >= 1, got %d", fn, count);
    if (!names)
        return del_error_null(fn, "names");
    if (!grads)
        return del_error_null(fn, "grads");
    if (model->n_heads == 0)
        return del_error(DEL_EINVAL, "%s: 'model' has no heads (del_model_backward back-propagates it)", fn);
    del_status st = check_forward_done(model, fn);
    if (st != DEL_OK)
        return st;
    for (int k = 0; k < count && st == DEL_OK; k++) {
        int h = names[k] ? del_model_head_index(model, names[k]) : -1;
        if (!names[k])
            st = del_error(DEL_EINVAL, "%s: 'names[%d]' must be a head name, got NULL", fn, k);
        else if (h < 0)
            st = del_error(DEL_EINVAL, "%s: 'names[%d]' must name a head of the model, got '%.64s'", fn, k,
                           names[k]);
        else if (model->heads[h].grad_in)
            st = del_error(DEL_EINVAL, "%s: 'names[%d]': head '%s' is listed twice", fn, k, names[k]);
        else if (!grads[k])
            st = del_error(DEL_EINVAL, "%s: 'grads[%d]' must be a tensor, got NULL", fn, k);
        if (st != DEL_OK)
            break;
        const del_tensor *y = head_out(model, h);
        if (!del_tensor_has_shape(grads[k], DEL_DTYPE_F32, y->ndim, y->shape)) {
            char want[96], got[96];
            del_tensor_shape_str(y, want, sizeof want);
            del_tensor_shape_str(grads[k], got, sizeof got);
            st = del_error(DEL_EINVAL, "%s: 'grads[%d]' must be f32 %s like the output of head '%s', got %s%s",
                           fn, k, want, model->heads[h].name, got,
                           grads[k]->dtype == DEL_DTYPE_F32 ? "" : " (not f32)");
            break;
        }
        model->heads[h].grad_in = grads[k];
    }
    if (st != DEL_OK) {
        for (int h = 0; h < model->n_heads; h++)
            model->heads[h].grad_in = NULL;
        return st;
    }
    return nomem_of(backward_run(model, NULL), fn);
}

/* The first call after a backward computes the gradients that backward
 * skipped, from the dx of the lowest layer it reached in each segment
 * (still held by the model) and the current weights, without touching
 * parameter gradients: the heads the backward went through first, then the
 * backbone from the sum of theirs. Frozen layers keep their weights, so
 * this matches the backward even after optimizer steps, except for a
 * trainable first conv2d whose weights a step changed. Every later
 * backward computes it eagerly. */
DEL_API del_tensor *del_model_input_grad(del_model *model)
{
    if (!model || !model->have_grad)
        return NULL;
    if (!model->n_layers)
        return model->input_grad;
    model->want_input_grad = 1;
    /* the tensors were sized by the backward, so only scratch can fail */
    int bb = del_model_backbone_end(model);
    if (model->n_heads > 0 && !model->head_grad_valid) {
        for (int h = 0; h < model->n_heads; h++) {
            del_head *hd = &model->heads[h];
            if (hd->in_grad && continue_segment(model, hd->first, hd->first + hd->count, &hd->dx_valid_from) != DEL_OK)
                return NULL;
        }
        if (sum_head_grads(model) != DEL_OK)
            return NULL;
    }
    if (bb == 0)
        return model->head_grad;
    if (continue_segment(model, 0, bb, &model->dx_valid_from) != DEL_OK)
        return NULL;
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
