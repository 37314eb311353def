/* Building a model: appending layers (del_model_add_layer and the public
 * builders), its heads (adding, replacing, removing, splitting one off,
 * looking them up) and its parameter groups. model.c runs the model. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "nn/model_internal.h"

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
    if (m->n_heads > 0 && !m->building_head)
        return del_error(DEL_ESTATE, "%s: the model has heads, and layers are added to the backbone only "
                                     "before the first head (a head's layers come from its spec: "
                                     "del_model_add_head, del_model_replace_head)", func);
    del_layer l;
    memset(&l, 0, sizeof l);
    l.ops = ops;
    l.cfg = *cfg;
    del_model_next_shape(m, &l.in_ndim, l.in_shape);
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
        del_model_layer_release(&l);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    /* The fusion stays inside a segment: a head's first relu must not
     * change what the backbone outputs to the other heads. */
    del_head *head = m->building_head ? &m->heads[m->n_heads - 1] : NULL;
    int segment_start = head ? head->first : 0;
    if (ops == &del_layer_relu && m->n_layers > segment_start &&
        m->layers[m->n_layers - 1].ops == &del_layer_batchnorm) {
        m->layers[m->n_layers - 1].fused_relu = 1;
        l.folded = 1;
    }
    l.param_off = m->n_params;
    l.state_off = m->n_state;
    m->n_params = np;
    m->n_state = ns;
    m->groups[m->n_layers] = (del_layer_group){.frozen = 0, .lr_mult = 1.0f};
    m->layers[m->n_layers++] = l;
    if (head)
        head->count++;
    m->groups_version++;
    if (l.n_params > 0)
        memset(m->grads + l.param_off, 0, (size_t)l.n_params * sizeof(float));
    del_model_layer_init(m, m->n_layers - 1);
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

DEL_API del_status del_model_add_avgpool(del_model *model, int kernel, int stride)
{
    del_layer_cfg c = {.kernel = kernel, .stride = stride};
    return del_model_add_layer(model, &del_layer_avgpool, &c, "del_model_add_avgpool");
}

DEL_API del_status del_model_add_global_avgpool(del_model *model)
{
    del_layer_cfg c = {0};
    return del_model_add_layer(model, &del_layer_global_avgpool, &c, "del_model_add_global_avgpool");
}

DEL_API del_status del_model_add_residual(del_model *model, int out_channels, int stride, float survival_prob)
{
    del_layer_cfg c = {.out = out_channels, .stride = stride, .survival = survival_prob};
    return del_model_add_layer(model, &del_layer_residual, &c, "del_model_add_residual");
}

/* ---- heads ----
 * A head's layers are appended after the last layer (building_head makes
 * del_model_add_layer put them in the head), so adding one only appends;
 * replacing or removing one rebuilds the layer and buffer arrays in the
 * new order (relayout), keeping every other layer's parameters, state,
 * gradients and group. */

int del_model_head_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > DEL_HEAD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static del_status check_name(const char *name, const char *func)
{
    if (!name)
        return del_error_null(func, "name");
    if (!del_model_head_name_valid(name))
        return del_error(DEL_EINVAL, "%s: 'name' must be 1..%d characters of A-Z a-z 0-9 _ . -, got '%.40s%s'",
                         func, DEL_HEAD_NAME_MAX, name, strlen(name) > 40 ? "..." : "");
    return DEL_OK;
}

/* The index of the head called name, or an error naming func. */
static del_status find_head(const del_model *m, const char *name, const char *func, int *out)
{
    if (!name)
        return del_error_null(func, "name");
    *out = del_model_head_index(m, name);
    if (*out < 0)
        return del_error(DEL_EINVAL, "%s: 'name' must name a head of the model, got '%.40s%s'%s", func, name,
                         strlen(name) > 40 ? "..." : "", m->n_heads == 0 ? " (the model has no heads)" : "");
    return DEL_OK;
}

del_status del_model_begin_head(del_model *m, const char *name, const char *func)
{
    /* A copy first: name may be a head's own (del_model_head_name), which
     * the realloc below frees. */
    char copy[DEL_HEAD_NAME_MAX + 1];
    snprintf(copy, sizeof copy, "%s", name);
    del_head *heads = realloc(m->heads, (size_t)(m->n_heads + 1) * sizeof *heads);
    if (!heads)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    m->heads = heads;
    del_head *h = &heads[m->n_heads++];
    memset(h, 0, sizeof *h);
    memcpy(h->name, copy, sizeof h->name);
    h->first = m->n_layers;
    m->building_head = 1;
    return DEL_OK;
}

void del_model_end_head(del_model *m)
{
    m->building_head = 0;
}

/* The last forward and backward no longer describe the model. */
static void layout_changed(del_model *m)
{
    m->groups_version++;
    m->fwd_mode = -1;
    m->have_grad = 0;
}

/* Drops the layers from keep on, which were appended last (their
 * parameters and state end the buffers): the rollback of a failed head
 * change. The layers before keep keep their parameters where they were,
 * so layout_version stays: an optimizer made before the failed call still
 * fits the model. */
static void truncate_layers(del_model *m, int keep)
{
    if (keep >= m->n_layers)
        return;
    m->n_params = m->layers[keep].param_off;
    m->n_state = m->layers[keep].state_off;
    for (int i = keep; i < m->n_layers; i++)
        del_model_layer_release(&m->layers[i]);
    m->n_layers = keep;
    layout_changed(m);
}

/* Appends a head called name (checked by the caller) built from spec. On
 * failure the model is as before. */
static del_status append_head(del_model *m, const char *name, const char *spec, const char *func)
{
    int first = m->n_layers;
    del_status st = del_model_begin_head(m, name, func);
    if (st != DEL_OK)
        return st;
    st = del_model_parse_layers(m, spec, func);
    del_model_end_head(m);
    if (st != DEL_OK) {
        truncate_layers(m, first);
        m->n_heads--;
    }
    return st;
}

/* Rebuilds the layer, group, parameter, gradient and state arrays with the
 * current layers order[0..n) (each at most once) in that order; the layers
 * left out are freed. The caller fixes the heads. On DEL_ENOMEM nothing
 * changed. */
static del_status relayout(del_model *m, const int *order, int n, const char *func)
{
    int64_t np = 0, ns = 0;
    for (int k = 0; k < n; k++) {
        np += m->layers[order[k]].n_params;
        ns += m->layers[order[k]].n_state;
    }
    size_t slots = (size_t)(n > 0 ? n : 1);
    del_layer *layers = malloc(slots * sizeof *layers);
    del_layer_group *groups = malloc(slots * sizeof *groups);
    float *params = np > 0 ? malloc((size_t)np * sizeof(float)) : NULL;
    float *grads = np > 0 ? malloc((size_t)np * sizeof(float)) : NULL;
    float *state = ns > 0 ? malloc((size_t)ns * sizeof(float)) : NULL;
    unsigned char *kept = calloc((size_t)m->n_layers + 1, 1);
    if (!layers || !groups || (np > 0 && (!params || !grads)) || (ns > 0 && !state) || !kept) {
        free(layers);
        free(groups);
        free(params);
        free(grads);
        free(state);
        free(kept);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    int64_t po = 0, so = 0;
    for (int k = 0; k < n; k++) {
        const del_layer *src = &m->layers[order[k]];
        layers[k] = *src;
        groups[k] = m->groups[order[k]];
        if (src->n_params > 0) {
            memcpy(params + po, m->params + src->param_off, (size_t)src->n_params * sizeof(float));
            memcpy(grads + po, m->grads + src->param_off, (size_t)src->n_params * sizeof(float));
        }
        if (src->n_state > 0)
            memcpy(state + so, m->state + src->state_off, (size_t)src->n_state * sizeof(float));
        layers[k].param_off = po;
        layers[k].state_off = so;
        po += src->n_params;
        so += src->n_state;
        kept[order[k]] = 1;
    }
    for (int i = 0; i < m->n_layers; i++)
        if (!kept[i])
            del_model_layer_release(&m->layers[i]);
    free(kept);
    free(m->layers);
    free(m->groups);
    free(m->params);
    free(m->grads);
    free(m->state);
    m->layers = layers;
    m->groups = groups;
    m->params = params;
    m->grads = grads;
    m->state = state;
    m->n_layers = n;
    m->n_params = np;
    m->n_state = ns;
    m->layout_version++;
    layout_changed(m);
    return DEL_OK;
}

DEL_API del_status del_model_add_head(del_model *model, const char *name, const char *spec)
{
    static const char fn[] = "del_model_add_head";
    if (!model)
        return del_error_null(fn, "model");
    del_status st = check_name(name, fn);
    if (st != DEL_OK)
        return st;
    if (!spec)
        return del_error_null(fn, "spec");
    if (del_model_head_index(model, name) >= 0)
        return del_error(DEL_EINVAL, "%s: 'name' '%s' is already a head of the model", fn, name);
    return append_head(model, name, spec, fn);
}

DEL_API del_status del_model_replace_head(del_model *model, const char *name, const char *spec)
{
    static const char fn[] = "del_model_replace_head";
    if (!model)
        return del_error_null(fn, "model");
    int h;
    del_status st = find_head(model, name, fn, &h);
    if (st != DEL_OK)
        return st;
    if (!spec)
        return del_error_null(fn, "spec");
    /* The new layers are built as a last head, then moved into place. */
    int old_n = model->n_layers;
    st = append_head(model, name, spec, fn);
    if (st != DEL_OK)
        return st;
    del_head *hd = &model->heads[h];
    int new_count = model->n_layers - old_n, total = old_n - hd->count + new_count, k = 0;
    int *order = malloc((size_t)total * sizeof *order);
    if (order) {
        for (int i = 0; i < hd->first; i++)
            order[k++] = i;
        for (int i = old_n; i < model->n_layers; i++)
            order[k++] = i;
        for (int i = hd->first + hd->count; i < old_n; i++)
            order[k++] = i;
        st = relayout(model, order, total, fn);
        free(order);
    } else {
        st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
    }
    if (st != DEL_OK) {
        truncate_layers(model, old_n);
        model->n_heads--;
        return st;
    }
    model->n_heads--;
    int delta = new_count - hd->count;
    hd->count = new_count;
    for (int g = h + 1; g < model->n_heads; g++)
        model->heads[g].first += delta;
    /* Initialised as layers at these indices are by del_model_init. */
    for (int i = hd->first; i < hd->first + hd->count; i++)
        del_model_layer_init(model, i);
    return DEL_OK;
}

DEL_API del_status del_model_remove_head(del_model *model, const char *name)
{
    static const char fn[] = "del_model_remove_head";
    if (!model)
        return del_error_null(fn, "model");
    int h;
    del_status st = find_head(model, name, fn, &h);
    if (st != DEL_OK)
        return st;
    del_head *hd = &model->heads[h];
    int total = model->n_layers - hd->count, k = 0;
    int *order = malloc((size_t)(total > 0 ? total : 1) * sizeof *order);
    if (!order)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    for (int i = 0; i < model->n_layers; i++)
        if (i < hd->first || i >= hd->first + hd->count)
            order[k++] = i;
    st = relayout(model, order, total, fn);
    free(order);
    if (st != DEL_OK)
        return st;
    int count = hd->count;
    memmove(hd, hd + 1, (size_t)(model->n_heads - h - 1) * sizeof *hd);
    model->n_heads--;
    for (int g = h; g < model->n_heads; g++)
        model->heads[g].first -= count;
    return DEL_OK;
}

DEL_API del_status del_model_split_head(del_model *model, const char *name, int first_layer)
{
    static const char fn[] = "del_model_split_head";
    if (!model)
        return del_error_null(fn, "model");
    del_status st = check_name(name, fn);
    if (st != DEL_OK)
        return st;
    if (model->n_heads > 0)
        return del_error(DEL_ESTATE, "%s: 'model' already has heads (only a model without heads can be split)",
                         fn);
    int n = model->n_layers;
    if (n == 0)
        return del_error(DEL_EINVAL, "%s: 'model' has no layers", fn);
    int f = first_layer < 0 ? first_layer + n : first_layer;
    if (f < 0 || f >= n)
        return del_error(DEL_EINVAL, "%s: 'first_layer' must be a layer index in 0..%d (or %d..-1 from the end), "
                                     "got %d", fn, n - 1, -n, first_layer);
    st = del_model_begin_head(model, name, fn);
    if (st != DEL_OK)
        return st;
    del_model_end_head(model);
    model->heads[0].first = f;
    model->heads[0].count = n - f;
    /* A relu fused into the batchnorm below it would cross the cut. */
    if (f > 0 && model->layers[f - 1].fused_relu) {
        model->layers[f - 1].fused_relu = 0;
        model->layers[f].folded = 0;
    }
    layout_changed(model);
    return DEL_OK;
}

DEL_API int del_model_num_heads(const del_model *model)
{
    return model ? model->n_heads : 0;
}

DEL_API const char *del_model_head_name(const del_model *model, int i)
{
    if (!model || i < 0 || i >= model->n_heads)
        return NULL;
    return model->heads[i].name;
}

DEL_API int del_model_head_index(const del_model *model, const char *name)
{
    if (!model || !name)
        return -1;
    for (int h = 0; h < model->n_heads; h++)
        if (strcmp(model->heads[h].name, name) == 0)
            return h;
    return -1;
}

DEL_API del_status del_model_head_layers(const del_model *model, const char *name, int *first, int *count)
{
    static const char fn[] = "del_model_head_layers";
    if (!model)
        return del_error_null(fn, "model");
    if (!first)
        return del_error_null(fn, "first");
    if (!count)
        return del_error_null(fn, "count");
    int h;
    del_status st = find_head(model, name, fn, &h);
    if (st != DEL_OK)
        return st;
    *first = model->heads[h].first;
    *count = model->heads[h].count;
    return DEL_OK;
}

DEL_API int del_model_backbone_layers(const del_model *model)
{
    return model ? del_model_backbone_end(model) : 0;
}

/* ---- parameter groups ---- */

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
