/* Datasets: creation from arrays, accessors, per-class splits, subsets and
 * the u8 HWC -> normalised f32 NCHW batch conversion. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "data/dataset.h"

del_status del_dataset_alloc(del_dataset **out, int64_t n, int height, int width, int channels, const char *func)
{
    *out = NULL;
    del_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return del_error(DEL_ENOMEM, "%s: out of memory for the dataset", func);
    ds->n = n;
    ds->height = height;
    ds->width = width;
    ds->channels = channels;
    ds->image_bytes = (size_t)height * (size_t)width * (size_t)channels;
    if (n > 0) {
        ds->images = malloc((size_t)n * ds->image_bytes);
        ds->labels = malloc((size_t)n * sizeof *ds->labels);
        if (!ds->images || !ds->labels) {
            del_dataset_free(ds);
            return del_error(DEL_ENOMEM, "%s: out of memory for %lld images of %dx%dx%d", func,
                             (long long)n, height, width, channels);
        }
    }
    *out = ds;
    return DEL_OK;
}

void del_dataset_update_classes(del_dataset *ds)
{
    int32_t max_label = -1;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] > max_label)
            max_label = ds->labels[i];
    ds->num_classes = (int)max_label + 1;
}

/* 1 if n images of h x w x c bytes fit in memory sizes, so callers can
 * multiply freely afterwards. */
static int sizes_fit(int64_t n, int height, int width, int channels)
{
    uint64_t limit = (uint64_t)(SIZE_MAX < (uint64_t)INT64_MAX ? SIZE_MAX : (uint64_t)INT64_MAX);
    uint64_t image = (uint64_t)height * (uint64_t)width; /* both < 2^31: no overflow */
    if (image > limit / (uint64_t)channels)
        return 0;
    image *= (uint64_t)channels;
    return (uint64_t)n <= limit / image;
}

DEL_API del_status del_dataset_from_arrays(del_dataset **out, const uint8_t *images, const int32_t *labels, int64_t n,
                                           int height, int width, int channels)
{
    static const char fn[] = "del_dataset_from_arrays";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!images)
        return del_error_null(fn, "images");
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'n' must be >= 1, got %lld", fn, (long long)n);
    if (height < 1 || width < 1)
        return del_error(DEL_EINVAL, "%s: 'height' and 'width' must be >= 1, got %d and %d", fn, height, width);
    if (channels != 1 && channels != 3)
        return del_error(DEL_EINVAL, "%s: 'channels' must be 1 or 3, got %d", fn, channels);
    if (!sizes_fit(n, height, width, channels))
        return del_error(DEL_EINVAL, "%s: %lld images of %dx%dx%d bytes overflow the address space", fn,
                         (long long)n, height, width, channels);
    if (labels) {
        for (int64_t i = 0; i < n; i++)
            if (labels[i] < -1 || labels[i] > DEL_DATASET_MAX_LABEL)
                return del_error(DEL_EINVAL, "%s: 'labels[%lld]' must be -1 or in 0..%d, got %d", fn, (long long)i,
                                 DEL_DATASET_MAX_LABEL, (int)labels[i]);
    }
    del_dataset *ds;
    del_status st = del_dataset_alloc(&ds, n, height, width, channels, fn);
    if (st != DEL_OK)
        return st;
    memcpy(ds->images, images, (size_t)n * ds->image_bytes);
    for (int64_t i = 0; i < n; i++)
        ds->labels[i] = labels ? labels[i] : -1;
    del_dataset_update_classes(ds);
    *out = ds;
    return DEL_OK;
}

DEL_API void del_dataset_free(del_dataset *ds)
{
    if (!ds)
        return;
    free(ds->images);
    free(ds->labels);
    del_tensor_free(ds->soft);
    free(ds);
}

DEL_API int64_t del_dataset_size(const del_dataset *ds) { return ds ? ds->n : 0; }
DEL_API int del_dataset_height(const del_dataset *ds) { return ds ? ds->height : 0; }
DEL_API int del_dataset_width(const del_dataset *ds) { return ds ? ds->width : 0; }
DEL_API int del_dataset_channels(const del_dataset *ds) { return ds ? ds->channels : 0; }
DEL_API int del_dataset_num_classes(const del_dataset *ds) { return ds ? ds->num_classes : 0; }
DEL_API const uint8_t *del_dataset_images(const del_dataset *ds) { return ds ? ds->images : NULL; }
DEL_API const int32_t *del_dataset_labels(const del_dataset *ds) { return ds ? ds->labels : NULL; }

DEL_API del_status del_dataset_split_per_class(del_dataset **labeled, del_dataset **unlabeled, const del_dataset *src,
                                               int per_class)
{
    static const char fn[] = "del_dataset_split_per_class";
    if (labeled)
        *labeled = NULL;
    if (unlabeled)
        *unlabeled = NULL;
    if (!labeled && !unlabeled)
        return del_error(DEL_EINVAL, "%s: 'labeled' and 'unlabeled' must not both be NULL", fn);
    if (!src)
        return del_error_null(fn, "src");
    if (per_class < 1)
        return del_error(DEL_EINVAL, "%s: 'per_class' must be >= 1, got %d", fn, per_class);
    if (src->num_classes < 1)
        return del_error(DEL_EINVAL, "%s: 'src' has no labeled image", fn);

    del_status st = DEL_OK;
    del_dataset *lab = NULL, *unl = NULL;
    int64_t *taken = calloc((size_t)src->num_classes, sizeof *taken);
    if (!taken)
        return del_error(DEL_ENOMEM, "%s: out of memory", fn);
    for (int64_t i = 0; i < src->n; i++)
        if (src->labels[i] >= 0)
            taken[src->labels[i]]++;
    for (int c = 0; c < src->num_classes; c++) {
        if (taken[c] < per_class) {
            st = del_error(DEL_EINVAL, "%s: class %d has %lld images, fewer than 'per_class' = %d", fn, c,
                           (long long)taken[c], per_class);
            goto cleanup;
        }
    }
    int64_t n_lab = (int64_t)per_class * src->num_classes;
    if (labeled) {
        st = del_dataset_alloc(&lab, n_lab, src->height, src->width, src->channels, fn);
        if (st == DEL_OK)
            st = del_dataset_alloc_soft(lab, src, fn);
        if (st != DEL_OK)
            goto cleanup;
    }
    if (unlabeled) {
        st = del_dataset_alloc(&unl, src->n - n_lab, src->height, src->width, src->channels, fn);
        if (st == DEL_OK)
            st = del_dataset_alloc_soft(unl, src, fn);
        if (st != DEL_OK)
            goto cleanup;
    }
    memset(taken, 0, (size_t)src->num_classes * sizeof *taken);
    int64_t li = 0, ui = 0;
    for (int64_t i = 0; i < src->n; i++) {
        int32_t c = src->labels[i];
        const uint8_t *img = src->images + (size_t)i * src->image_bytes;
        if (c >= 0 && taken[c] < per_class) {
            taken[c]++;
            if (lab) {
                memcpy(lab->images + (size_t)li * lab->image_bytes, img, lab->image_bytes);
                lab->labels[li] = c;
                del_dataset_copy_soft_row(lab, li, src, i);
            }
            li++;
        } else {
            if (unl) {
                memcpy(unl->images + (size_t)ui * unl->image_bytes, img, unl->image_bytes);
                unl->labels[ui] = -1;
                del_dataset_copy_soft_row(unl, ui, src, i);
            }
            ui++;
        }
    }
    assert(li == n_lab && ui == src->n - n_lab);
    if (lab)
        del_dataset_update_classes(lab);
    if (unl)
        unl->num_classes = 0;
    if (labeled)
        *labeled = lab;
    if (unlabeled)
        *unlabeled = unl;
    lab = unl = NULL;

cleanup:
    free(taken);
    del_dataset_free(lab);
    del_dataset_free(unl);
    return st;
}

DEL_API del_status del_dataset_subset(del_dataset **out, const del_dataset *src, const int64_t *indices, int64_t n)
{
    static const char fn[] = "del_dataset_subset";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!src)
        return del_error_null(fn, "src");
    if (!indices)
        return del_error_null(fn, "indices");
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'n' must be >= 1, got %lld", fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= src->n)
            return del_error(DEL_EINVAL, "%s: 'indices[%lld]' must be in 0..%lld, got %lld", fn, (long long)i,
                             (long long)src->n - 1, (long long)indices[i]);
    del_dataset *ds;
    del_status st = del_dataset_alloc(&ds, n, src->height, src->width, src->channels, fn);
    if (st != DEL_OK)
        return st;
    st = del_dataset_alloc_soft(ds, src, fn);
    if (st != DEL_OK) {
        del_dataset_free(ds);
        return st;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(ds->images + (size_t)i * ds->image_bytes, src->images + (size_t)indices[i] * src->image_bytes,
               ds->image_bytes);
        ds->labels[i] = src->labels[indices[i]];
        del_dataset_copy_soft_row(ds, i, src, indices[i]);
    }
    del_dataset_update_classes(ds);
    *out = ds;
    return DEL_OK;
}

void del_normalize_lut(float lut[3][256], int channels, const float *mean, const float *std)
{
    assert(channels <= 3);
    for (int c = 0; c < channels; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
}

void del_hwc_to_chw_normalized(float *dst, const uint8_t *src, size_t plane, int channels, const float (*lut)[256])
{
    for (int c = 0; c < channels; c++) {
        const float *lc = lut[c];
        float *dc = dst + (size_t)c * plane;
        for (size_t p = 0; p < plane; p++)
            dc[p] = lc[src[p * (size_t)channels + (size_t)c]];
    }
}

static const char *dtype_name(del_dtype dtype)
{
    switch (dtype) {
    case DEL_DTYPE_F32: return "f32";
    case DEL_DTYPE_U8: return "u8";
    case DEL_DTYPE_I32: return "i32";
    }
    return "?";
}

DEL_API del_status del_dataset_batch(const del_dataset *ds, const int64_t *indices, int64_t n, const float *mean,
                                     const float *std, del_tensor *x, del_tensor *y)
{
    static const char fn[] = "del_dataset_batch";
    char got[64];
    if (!ds)
        return del_error_null(fn, "ds");
    if (!indices)
        return del_error_null(fn, "indices");
    if (!mean)
        return del_error_null(fn, "mean");
    if (!std)
        return del_error_null(fn, "std");
    if (!x)
        return del_error_null(fn, "x");
    if (n < 1)
        return del_error(DEL_EINVAL, "%s: 'n' must be >= 1, got %lld", fn, (long long)n);
    const int channels = ds->channels;
    const int64_t xshape[4] = {n, channels, ds->height, ds->width};
    if (!del_tensor_has_shape(x, DEL_DTYPE_F32, 4, xshape))
        return del_error(DEL_EINVAL, "%s: 'x' must be f32 [%lld, %d, %d, %d], got %s %s", fn, (long long)n, channels,
                         ds->height, ds->width, dtype_name(x->dtype), del_tensor_shape_str(x, got, sizeof got));
    if (y && !del_tensor_has_shape(y, DEL_DTYPE_I32, 1, &n))
        return del_error(DEL_EINVAL, "%s: 'y' must be i32 [%lld], got %s %s", fn, (long long)n, dtype_name(y->dtype),
                         del_tensor_shape_str(y, got, sizeof got));
    for (int c = 0; c < channels; c++) {
        if (!isfinite(mean[c]))
            return del_error(DEL_EINVAL, "%s: 'mean[%d]' must be finite, got %g", fn, c, (double)mean[c]);
        if (!(std[c] > 0.0f) || !isfinite(std[c]))
            return del_error(DEL_EINVAL, "%s: 'std[%d]' must be a finite value > 0, got %g", fn, c, (double)std[c]);
    }
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return del_error(DEL_EINVAL, "%s: 'indices[%lld]' must be in 0..%lld, got %lld", fn, (long long)i,
                             (long long)ds->n - 1, (long long)indices[i]);

    float lut[3][256];
    del_normalize_lut(lut, channels, mean, std);
    const size_t plane = (size_t)ds->height * (size_t)ds->width;
    float *xd = x->data;
    for (int64_t i = 0; i < n; i++)
        del_hwc_to_chw_normalized(xd + (size_t)i * (size_t)channels * plane,
                                  ds->images + (size_t)indices[i] * ds->image_bytes, plane, channels,
                                  (const float(*)[256])lut);
    if (y) {
        int32_t *yd = y->data;
        for (int64_t i = 0; i < n; i++)
            yd[i] = ds->labels[indices[i]];
    }
    return DEL_OK;
}
