/* Soft labels of a dataset: one probability vector per image (a teacher's
 * predictions kept for distillation), held as an f32 [N, K] tensor beside
 * the hard labels and carried by subsets and splits. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "data/dataset.h"

/* The rows must be probability vectors, with the tolerance of
 * del_loss_soft_cross_entropy (a float softmax's rounding), so that stored
 * soft labels can be its targets as they are. */
#define SOFT_ROW_TOLERANCE 1e-3

/* The most soft classes, as for hard labels (DEL_DATASET_MAX_LABEL). */
#define MAX_SOFT_CLASSES (DEL_DATASET_MAX_LABEL + 1)

static const char *dtype_name(del_dtype dtype)
{
    switch (dtype) {
    case DEL_DTYPE_F32: return "f32";
    case DEL_DTYPE_U8: return "u8";
    case DEL_DTYPE_I32: return "i32";
    }
    return "?";
}

/* DEL_OK if soft is f32 [ds->n, K] with 1 <= K <= MAX_SOFT_CLASSES and
 * each row a probability vector; else DEL_EINVAL naming 'soft'. */
static del_status check_soft(const del_dataset *ds, const del_tensor *soft, const char *fn)
{
    char got[64];
    if (soft->dtype != DEL_DTYPE_F32 || soft->ndim != 2 || soft->shape[0] != ds->n)
        return del_error(DEL_EINVAL, "%s: 'soft' must be f32 [%lld, K] (a row per image of the dataset), got %s %s",
                         fn, (long long)ds->n, dtype_name(soft->dtype), del_tensor_shape_str(soft, got, sizeof got));
    const int64_t n = soft->shape[0], k = soft->shape[1];
    if (k > MAX_SOFT_CLASSES)
        return del_error(DEL_EINVAL, "%s: 'soft' has %lld classes, at most %d are allowed", fn, (long long)k,
                         MAX_SOFT_CLASSES);
    const float *p = soft->data;
    for (int64_t r = 0; r < n; r++) {
        const float *row = p + r * k;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            if (!(row[j] >= 0.0f) || !isfinite(row[j]))
                return del_error(DEL_EINVAL,
                                 "%s: 'soft' row %lld must be a probability vector (finite, >= 0), got %g at "
                                 "column %lld",
                                 fn, (long long)r, (double)row[j], (long long)j);
            sum += row[j];
        }
        if (fabs(sum - 1.0) > SOFT_ROW_TOLERANCE)
            return del_error(DEL_EINVAL, "%s: 'soft' row %lld must sum to 1 (within %g), got %.6g", fn, (long long)r,
                             SOFT_ROW_TOLERANCE, sum);
    }
    return DEL_OK;
}

DEL_API del_status del_dataset_set_soft_labels(del_dataset *ds, const del_tensor *soft)
{
    static const char fn[] = "del_dataset_set_soft_labels";
    if (!ds)
        return del_error_null(fn, "ds");
    del_tensor *copy = NULL;
    if (soft) {
        del_status st = check_soft(ds, soft, fn);
        if (st != DEL_OK)
            return st;
        if (del_tensor_copy(&copy, soft) != DEL_OK)
            return del_error(DEL_ENOMEM, "%s: out of memory for %lld x %lld soft labels", fn,
                             (long long)soft->shape[0], (long long)soft->shape[1]);
    }
    del_tensor_free(ds->soft);
    ds->soft = copy;
    return DEL_OK;
}

DEL_API const del_tensor *del_dataset_soft_labels(const del_dataset *ds)
{
    return ds ? ds->soft : NULL;
}

DEL_API int del_dataset_num_soft_classes(const del_dataset *ds)
{
    return ds && ds->soft ? (int)ds->soft->shape[1] : 0;
}

DEL_API del_status del_dataset_soft_batch(const del_dataset *ds, const int64_t *indices, int64_t n, del_tensor *out)
{
    static const char fn[] = "del_dataset_soft_batch";
    char got[64];
    if (!ds)
        return del_error_null(fn, "ds");
    if (!indices)
        return del_error_null(fn, "indices");
    if (!out)
        return del_error_null(fn, "out");
    if (!ds->soft)
        return del_error(DEL_ESTATE, "%s: 'ds' has no soft labels (set them with del_dataset_set_soft_labels)", fn);
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'n' must be >= 1, got %lld", fn, (long long)n);
    const int64_t k = ds->soft->shape[1];
    const int64_t shape[2] = {n, k};
    if (!del_tensor_has_shape(out, DEL_DTYPE_F32, 2, shape))
        return del_error(DEL_EINVAL, "%s: 'out' must be f32 [%lld, %lld], got %s %s", fn, (long long)n, (long long)k,
                         dtype_name(out->dtype), del_tensor_shape_str(out, got, sizeof got));
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return del_error(DEL_EINVAL, "%s: 'indices[%lld]' must be in 0..%lld, got %lld", fn, (long long)i,
                             (long long)ds->n - 1, (long long)indices[i]);
    const float *src = ds->soft->data;
    float *dst = out->data;
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + i * k, src + indices[i] * k, (size_t)k * sizeof *dst);
    return DEL_OK;
}

del_status del_dataset_alloc_soft(del_dataset *dst, const del_dataset *src, const char *func)
{
    if (!src->soft || dst->n == 0)
        return DEL_OK;
    const int64_t shape[2] = {dst->n, src->soft->shape[1]};
    if (del_tensor_new(&dst->soft, DEL_DTYPE_F32, 2, shape) != DEL_OK)
        return del_error(DEL_ENOMEM, "%s: out of memory for %lld x %lld soft labels", func, (long long)shape[0],
                         (long long)shape[1]);
    return DEL_OK;
}

void del_dataset_copy_soft_row(del_dataset *dst, int64_t di, const del_dataset *src, int64_t si)
{
    if (!dst->soft || !src->soft)
        return;
    const int64_t k = src->soft->shape[1];
    memcpy((float *)dst->soft->data + di * k, (const float *)src->soft->data + si * k, (size_t)k * sizeof(float));
}
