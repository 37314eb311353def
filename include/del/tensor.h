/* libdel — tensors: n-d arrays (up to 4 dims) of f32, u8 or i32.
 *
 * A tensor either owns its memory (del_tensor_new, del_tensor_copy) or wraps
 * a caller buffer that must outlive it (del_tensor_wrap). Data are dense and
 * row-major (C order); image batches are NCHW.
 * Threading: a tensor is used by one thread at a time. */
#ifndef DEL_TENSOR_H
#define DEL_TENSOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DEL_TENSOR_MAX_DIMS 4

typedef enum del_dtype {
    DEL_DTYPE_F32 = 0,
    DEL_DTYPE_U8 = 1,
    DEL_DTYPE_I32 = 2
} del_dtype;

typedef struct del_tensor del_tensor;

/* Creates a zero-filled tensor that owns its memory. shape holds ndim
 * positive sizes. The caller frees *out with del_tensor_free.
 * Errors: DEL_EINVAL (out or shape NULL, ndim not in 1..4, a size < 1,
 * unknown dtype), DEL_ENOMEM. */
DEL_API del_status del_tensor_new(del_tensor **out, del_dtype dtype, int ndim, const int64_t *shape);

/* Creates a tensor over the caller's buffer `data` (no copy). The buffer
 * must hold numel elements of dtype and outlive the tensor; freeing the
 * tensor does not free it. Errors: as del_tensor_new, and DEL_EINVAL if
 * data is NULL. */
DEL_API del_status del_tensor_wrap(del_tensor **out, del_dtype dtype, int ndim, const int64_t *shape, void *data);

/* Creates an owning deep copy of src. Errors: DEL_EINVAL, DEL_ENOMEM. */
DEL_API del_status del_tensor_copy(del_tensor **out, const del_tensor *src);

/* Changes the shape of t to one with the same number of elements, without
 * moving data. Errors: DEL_EINVAL (t or shape NULL, bad ndim or size,
 * element count differs). */
DEL_API del_status del_tensor_reshape(del_tensor *t, int ndim, const int64_t *shape);

/* Frees t (and its memory if it owns it). del_tensor_free(NULL) is a no-op. */
DEL_API void del_tensor_free(del_tensor *t);

/* The element type; DEL_DTYPE_F32 if t is NULL. */
DEL_API del_dtype del_tensor_dtype(const del_tensor *t);

/* The number of dimensions; 0 if t is NULL. */
DEL_API int del_tensor_ndim(const del_tensor *t);

/* The size of dimension axis (negative axes count from the end);
 * 0 if t is NULL or axis is out of range. */
DEL_API int64_t del_tensor_dim(const del_tensor *t, int axis);

/* The number of elements; 0 if t is NULL. */
DEL_API int64_t del_tensor_numel(const del_tensor *t);

/* The size of the data in bytes; 0 if t is NULL. */
DEL_API size_t del_tensor_nbytes(const del_tensor *t);

/* The size in bytes of one element of dtype (4, 1 or 4); 0 if unknown. */
DEL_API size_t del_dtype_size(del_dtype dtype);

/* The data pointer (borrowed; valid while t lives and is not resized by
 * its owner). NULL if t is NULL. */
DEL_API void *del_tensor_data(del_tensor *t);

/* Copies nbytes from src into t's data. Errors: DEL_EINVAL if t or src is
 * NULL or nbytes differs from del_tensor_nbytes(t). */
DEL_API del_status del_tensor_copy_from(del_tensor *t, const void *src, size_t nbytes);

/* Copies t's data into dst (nbytes must equal del_tensor_nbytes(t)).
 * Errors: DEL_EINVAL. */
DEL_API del_status del_tensor_copy_to(const del_tensor *t, void *dst, size_t nbytes);

#ifdef __cplusplus
}
#endif
#endif
