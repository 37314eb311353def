/* Setup shared by avgpool and maxpool: they differ only in the backend
 * kernels, never in which windows they visit. */
#include "core/error.h"
#include "nn/layers/pool.h"

void del_pool_shape_of(const del_layer *l, int n, del_pool_shape *s)
{
    s->n = n;
    s->c = (int)l->in_shape[0];
    s->h_in = (int)l->in_shape[1];
    s->w_in = (int)l->in_shape[2];
    s->h_out = (int)l->out_shape[1];
    s->w_out = (int)l->out_shape[2];
    s->kernel = l->cfg.kernel;
    s->stride = l->cfg.stride;
}

del_status del_pool_setup(del_layer *l, const char *name, const char *func)
{
    const del_layer_cfg *c = &l->cfg;
    if (c->kernel < 1)
        return del_error(DEL_EINVAL, "%s: 'kernel' must be >= 1, got %d", func, c->kernel);
    if (c->stride < 1)
        return del_error(DEL_EINVAL, "%s: 'stride' must be >= 1, got %d", func, c->stride);
    if (l->in_ndim != 3)
        return del_error(DEL_EINVAL, "%s: %s needs a 4-d input [N, C, H, W], got [N, %lld]", func, name,
                         (long long)l->in_shape[0]);
    if (l->in_shape[1] < c->kernel || l->in_shape[2] < c->kernel)
        return del_error(DEL_EINVAL, "%s: 'kernel' %d is larger than the input %lldx%lld", func, c->kernel,
                         (long long)l->in_shape[1], (long long)l->in_shape[2]);
    l->out_ndim = 3;
    l->out_shape[0] = l->in_shape[0];
    l->out_shape[1] = (l->in_shape[1] - c->kernel) / c->stride + 1;
    l->out_shape[2] = (l->in_shape[2] - c->kernel) / c->stride + 1;
    l->n_params = 0;
    l->n_state = 0;
    return DEL_OK;
}
