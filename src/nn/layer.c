/* The layer registry and helpers shared by the layer files. */
#include "nn/layer.h"

#include <stdlib.h>
#include <string.h>

#include "core/tensor_internal.h"

const del_layer_ops *const del_layer_types[] = {
    &del_layer_conv2d, &del_layer_linear,  &del_layer_batchnorm, &del_layer_relu,
    &del_layer_maxpool, &del_layer_flatten, &del_layer_dropout,   &del_layer_avgpool,
    &del_layer_global_avgpool, &del_layer_residual, NULL,
};

const del_layer_ops *del_layer_find(const char *name)
{
    for (int i = 0; del_layer_types[i]; i++)
        if (strcmp(del_layer_types[i]->name, name) == 0)
            return del_layer_types[i];
    return NULL;
}

int64_t del_layer_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

static del_status ensure_batch(del_tensor *t, int n, int ndim, const int64_t *shape)
{
    /* a view left by an earlier pass must not be written through */
    if (!t->owned) {
        t->data = NULL;
        t->capacity = 0;
        t->owned = 1;
    }
    int64_t full[DEL_TENSOR_MAX_DIMS];
    full[0] = n;
    for (int i = 0; i < ndim; i++)
        full[i + 1] = shape[i];
    return del_tensor_ensure(t, DEL_DTYPE_F32, ndim + 1, full);
}

del_status del_layer_ensure_out(del_layer *l, int n)
{
    return ensure_batch(l->out, n, l->out_ndim, l->out_shape);
}

del_status del_layer_ensure_dx(del_layer *l, int n)
{
    return ensure_batch(l->dx, n, l->in_ndim, l->in_shape);
}

void del_layer_view(del_tensor *t, const del_tensor *src, int n, int ndim, const int64_t *shape)
{
    if (t->owned) {
        free(t->data);
        t->owned = 0;
        t->capacity = 0;
    }
    t->data = src->data;
    t->dtype = src->dtype;
    t->ndim = ndim + 1;
    t->shape[0] = n;
    for (int i = 0; i < ndim; i++)
        t->shape[i + 1] = shape[i];
}

void del_layer_init_uniform(float *p, int64_t n, float bound, del_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (2.0f * del_rng_uniform(r) - 1.0f) * bound;
}
