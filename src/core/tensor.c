/* Tensors: dense n-d arrays, owned (64-byte aligned) or wrapping a buffer. */
#include "core/tensor_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Enough for AVX-512 loads and a cache line. */
#define DEL_TENSOR_ALIGN 64

DEL_API size_t del_dtype_size(del_dtype dtype)
{
    switch (dtype) {
    case DEL_DTYPE_F32: return 4;
    case DEL_DTYPE_U8: return 1;
    case DEL_DTYPE_I32: return 4;
    }
    return 0;
}

/* Validates dtype/ndim/shape and computes the byte size with overflow
 * checks; sets the message (naming func) and returns DEL_EINVAL on error. */
static del_status check_shape(const char *func, del_dtype dtype, int ndim, const int64_t *shape,
                              size_t *nbytes)
{
    size_t esize = del_dtype_size(dtype);
    if (esize == 0)
        return del_error(DEL_EINVAL, "%s: 'dtype' must be a del_dtype (0..2), got %d", func, (int)dtype);
    if (ndim < 1 || ndim > DEL_TENSOR_MAX_DIMS)
        return del_error(DEL_EINVAL, "%s: 'ndim' must be in 1..%d, got %d", func, DEL_TENSOR_MAX_DIMS,
                         ndim);
    if (!shape)
        return del_error_null(func, "shape");
    size_t total = esize;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return del_error(DEL_EINVAL, "%s: 'shape[%d]' must be >= 1, got %lld", func, i,
                             (long long)shape[i]);
        /* PTRDIFF_MAX bounds every size so that pointer differences and
         * int64 element counts stay valid. */
        if ((uint64_t)shape[i] > (uint64_t)PTRDIFF_MAX / total)
            return del_error(DEL_EINVAL, "%s: 'shape' is too large (byte size overflows)", func);
        total *= (size_t)shape[i];
    }
    *nbytes = total;
    return DEL_OK;
}

static size_t tensor_nbytes(const del_tensor *t)
{
    if (t->ndim == 0)
        return 0;
    size_t n = del_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

/* Requests above 1 TiB are refused without asking the allocator: no
 * target machine has that much memory, and sanitizers abort on such
 * requests instead of returning NULL. */
#define DEL_TENSOR_MAX_BYTES ((size_t)1 << 40)

static void *alloc_aligned(size_t nbytes)
{
    if (nbytes > DEL_TENSOR_MAX_BYTES)
        return NULL;
    /* aligned_alloc wants a multiple of the alignment. */
    size_t rounded = (nbytes + DEL_TENSOR_ALIGN - 1) / DEL_TENSOR_ALIGN * DEL_TENSOR_ALIGN;
    if (rounded < nbytes)
        return NULL;
    return aligned_alloc(DEL_TENSOR_ALIGN, rounded);
}

static void set_shape(del_tensor *t, int ndim, const int64_t *shape)
{
    t->ndim = ndim;
    for (int i = 0; i < DEL_TENSOR_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 0;
}

del_tensor *del_tensor_empty(void)
{
    del_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        del_error(DEL_ENOMEM, "del_tensor_empty: out of memory");
        return NULL;
    }
    t->dtype = DEL_DTYPE_F32;
    t->owned = 1;
    return t;
}

/* del_tensor_new for func (del_tensor_new, del_tensor_copy): the messages
 * name func. */
static del_status tensor_new(const char *func, del_tensor **out, del_dtype dtype, int ndim, const int64_t *shape)
{
    size_t nbytes;
    del_status st = check_shape(func, dtype, ndim, shape, &nbytes);
    if (st != DEL_OK)
        return st;
    del_tensor *t = calloc(1, sizeof *t);
    void *data = alloc_aligned(nbytes);
    if (!t || !data) {
        free(t);
        free(data);
        return del_error(DEL_ENOMEM, "%s: out of memory allocating %zu bytes", func, nbytes);
    }
    memset(data, 0, nbytes);
    t->dtype = dtype;
    set_shape(t, ndim, shape);
    t->data = data;
    t->capacity = nbytes;
    t->owned = 1;
    *out = t;
    return DEL_OK;
}

DEL_API del_status del_tensor_new(del_tensor **out, del_dtype dtype, int ndim, const int64_t *shape)
{
    if (!out)
        return del_error_null("del_tensor_new", "out");
    *out = NULL;
    return tensor_new("del_tensor_new", out, dtype, ndim, shape);
}

DEL_API del_status del_tensor_wrap(del_tensor **out, del_dtype dtype, int ndim, const int64_t *shape,
                                   void *data)
{
    if (!out)
        return del_error_null("del_tensor_wrap", "out");
    *out = NULL;
    size_t nbytes;
    del_status st = check_shape("del_tensor_wrap", dtype, ndim, shape, &nbytes);
    if (st != DEL_OK)
        return st;
    if (!data)
        return del_error_null("del_tensor_wrap", "data");
    del_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return del_error(DEL_ENOMEM, "del_tensor_wrap: out of memory");
    t->dtype = dtype;
    set_shape(t, ndim, shape);
    t->data = data;
    t->capacity = 0;
    t->owned = 0;
    *out = t;
    return DEL_OK;
}

DEL_API del_status del_tensor_copy(del_tensor **out, const del_tensor *src)
{
    if (!out)
        return del_error_null("del_tensor_copy", "out");
    *out = NULL;
    if (!src)
        return del_error_null("del_tensor_copy", "src");
    if (src->ndim == 0) {
        del_tensor *t = del_tensor_empty();
        if (!t)
            return del_error(DEL_ENOMEM, "del_tensor_copy: out of memory");
        t->dtype = src->dtype;
        *out = t;
        return DEL_OK;
    }
    del_tensor *t = NULL;
    del_status st = tensor_new("del_tensor_copy", &t, src->dtype, src->ndim, src->shape);
    if (st != DEL_OK)
        return st;
    memcpy(t->data, src->data, tensor_nbytes(src));
    *out = t;
    return DEL_OK;
}

DEL_API del_status del_tensor_reshape(del_tensor *t, int ndim, const int64_t *shape)
{
    if (!t)
        return del_error_null("del_tensor_reshape", "t");
    size_t nbytes;
    del_status st = check_shape("del_tensor_reshape", t->dtype, ndim, shape, &nbytes);
    if (st != DEL_OK)
        return st;
    size_t have = tensor_nbytes(t);
    if (nbytes != have) {
        size_t es = del_dtype_size(t->dtype);
        return del_error(DEL_EINVAL,
                         "del_tensor_reshape: 'shape' must have %zu elements like the tensor, got %zu",
                         es ? have / es : 0, es ? nbytes / es : 0);
    }
    set_shape(t, ndim, shape);
    return DEL_OK;
}

DEL_API void del_tensor_free(del_tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        free(t->data);
    free(t);
}

DEL_API del_dtype del_tensor_dtype(const del_tensor *t)
{
    return t ? t->dtype : DEL_DTYPE_F32;
}

DEL_API int del_tensor_ndim(const del_tensor *t)
{
    return t ? t->ndim : 0;
}

DEL_API int64_t del_tensor_dim(const del_tensor *t, int axis)
{
    if (!t)
        return 0;
    if (axis < 0)
        axis += t->ndim;
    if (axis < 0 || axis >= t->ndim)
        return 0;
    return t->shape[axis];
}

DEL_API int64_t del_tensor_numel(const del_tensor *t)
{
    if (!t || t->ndim == 0)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

DEL_API size_t del_tensor_nbytes(const del_tensor *t)
{
    return t ? tensor_nbytes(t) : 0;
}

DEL_API void *del_tensor_data(del_tensor *t)
{
    return t ? t->data : NULL;
}

DEL_API del_status del_tensor_copy_from(del_tensor *t, const void *src, size_t nbytes)
{
    if (!t)
        return del_error_null("del_tensor_copy_from", "t");
    if (!src)
        return del_error_null("del_tensor_copy_from", "src");
    size_t have = tensor_nbytes(t);
    if (nbytes != have)
        return del_error(DEL_EINVAL, "del_tensor_copy_from: 'nbytes' must be %zu (the tensor's size), got %zu",
                         have, nbytes);
    if (nbytes)
        memmove(t->data, src, nbytes);
    return DEL_OK;
}

DEL_API del_status del_tensor_copy_to(const del_tensor *t, void *dst, size_t nbytes)
{
    if (!t)
        return del_error_null("del_tensor_copy_to", "t");
    if (!dst)
        return del_error_null("del_tensor_copy_to", "dst");
    size_t have = tensor_nbytes(t);
    if (nbytes != have)
        return del_error(DEL_EINVAL, "del_tensor_copy_to: 'nbytes' must be %zu (the tensor's size), got %zu",
                         have, nbytes);
    if (nbytes)
        memmove(dst, t->data, nbytes);
    return DEL_OK;
}

del_status del_tensor_ensure(del_tensor *t, del_dtype dtype, int ndim, const int64_t *shape)
{
    if (!t)
        return del_error_null("del_tensor_ensure", "t");
    size_t nbytes;
    del_status st = check_shape("del_tensor_ensure", dtype, ndim, shape, &nbytes);
    if (st != DEL_OK)
        return st;
    if (!t->owned) {
        if (nbytes > tensor_nbytes(t))
            return del_error(DEL_EINVAL,
                             "del_tensor_ensure: a wrapped buffer of %zu bytes cannot hold %zu bytes",
                             tensor_nbytes(t), nbytes);
    } else if (nbytes > t->capacity || !t->data) {
        void *data = alloc_aligned(nbytes);
        if (!data)
            return del_error(DEL_ENOMEM, "del_tensor_ensure: out of memory allocating %zu bytes", nbytes);
        free(t->data);
        t->data = data;
        t->capacity = nbytes;
    }
    t->dtype = dtype;
    set_shape(t, ndim, shape);
    return DEL_OK;
}

int del_tensor_has_shape(const del_tensor *t, del_dtype dtype, int ndim, const int64_t *shape)
{
    if (!t || t->dtype != dtype || t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

const char *del_tensor_shape_str(const del_tensor *t, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    buf[0] = '\0';
    if (!t)
        return buf;
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    for (int i = 0; n >= 0 && i < t->ndim; i++) {
        used += (size_t)n;
        if (used >= size)
            return buf;
        n = snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    }
    if (n >= 0) {
        used += (size_t)n;
        if (used < size)
            snprintf(buf + used, size - used, "]");
    }
    return buf;
}
