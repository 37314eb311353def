/* Internal: what the windowed pooling layers (avgpool, maxpool) share. */
#ifndef DEL_NN_LAYERS_POOL_H
#define DEL_NN_LAYERS_POOL_H

#include "backend/backend.h"
#include "nn/layer.h"

/* Checks kernel, stride and a [C, H, W] input, then sets the output to
 * floor-mode windows without padding; `name` ("avgpool") goes into the
 * messages, which name func. */
del_status del_pool_setup(del_layer *l, const char *name, const char *func);

/* The backend's description of l over a batch of n. */
void del_pool_shape_of(const del_layer *l, int n, del_pool_shape *s);

#endif
