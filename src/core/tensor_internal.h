/* Internal: the tensor struct and helpers for code inside the library. */
#ifndef DEL_CORE_TENSOR_INTERNAL_H
#define DEL_CORE_TENSOR_INTERNAL_H

#include "del/tensor.h"

struct del_tensor {
    del_dtype dtype;
    int ndim;
    int64_t shape[DEL_TENSOR_MAX_DIMS];
    void *data;
    size_t capacity; /* bytes allocated when owned, else 0 */
    int owned;
};

/* Makes t (owned) hold dtype with the given shape, reusing its memory when
 * it is large enough, so steady-state training allocates nothing.
 * Contents are unspecified afterwards. Returns DEL_ENOMEM (message set) or
 * DEL_OK; DEL_EINVAL if t wraps a caller buffer that is too small. */
del_status del_tensor_ensure(del_tensor *t, del_dtype dtype, int ndim, const int64_t *shape);

/* An empty owned tensor object (ndim 0, no data) to be sized by
 * del_tensor_ensure; NULL on allocation failure (message set). */
del_tensor *del_tensor_empty(void);

/* 1 if t is f32/... with exactly these dims. */
int del_tensor_has_shape(const del_tensor *t, del_dtype dtype, int ndim, const int64_t *shape);

/* Writes "[a, b, c]" into buf (for error messages); returns buf. */
const char *del_tensor_shape_str(const del_tensor *t, char *buf, size_t size);

#endif
