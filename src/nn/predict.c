/* Prediction over a whole dataset: a teacher's logits or soft labels,
 * computed once (model.h "Prediction").
 *
 * The images go through the model in batches of a size fixed by the
 * model's layer shapes (predict_batch), the last one padded with copies of
 * the last image, so that every forward has the same shape. An image's
 * outputs never depend on the other images in its batch, but they may
 * depend on its position in the batch: the Winograd convolutions round by
 * the index modulo 16 and the gemms of a linear layer are split by the
 * batch size, so the same image at another position, or in a batch of
 * another size, can differ in the last bits. With one batch size and
 * padding, image i's outputs are a function of its pixels, the model and
 * i mod B only: not of the dataset's size, its other images or the
 * thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "del/data.h"
#include "nn/model_internal.h"

static const char fn[] = "del_model_predict";

#define PREDICT_BATCH_MAX 512
#define PREDICT_BATCH_MIN 16
/* Floats of the largest layer output of one batch: bounds the memory the
 * model's activations take (a few such tensors are alive at once). */
#define PREDICT_LARGEST_OUTPUT_FLOATS ((int64_t)1 << 25)

static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= shape[k];
    return n;
}

DEL_API int del_model_predict_batch(const del_model *model)
{
    if (!model)
        return 0;
    int64_t largest = (int64_t)model->in_c * model->in_h * model->in_w;
    for (int i = 0; i < model->n_layers; i++) {
        const del_layer *l = &model->layers[i];
        int64_t n = shape_numel(l->out_ndim, l->out_shape);
        if (n > largest)
            largest = n;
    }
    int batch = PREDICT_BATCH_MAX;
    while (batch > PREDICT_BATCH_MIN && (int64_t)batch * largest > PREDICT_LARGEST_OUTPUT_FLOATS)
        batch /= 2;
    return batch;
}

/* The layer whose output is the prediction: the last of head h (h >= 0)
 * or of the model. NULL for a model without layers. */
static const del_layer *output_layer(const del_model *m, int h)
{
    if (h >= 0)
        return &m->layers[m->heads[h].first + m->heads[h].count - 1];
    return m->n_layers > 0 ? &m->layers[m->n_layers - 1] : NULL;
}

static del_status check_args(del_model *model, const char *head, const del_dataset *ds, const float *mean,
                             const float *std, float temperature, int softmax, int *head_index)
{
    if (!model)
        return del_error_null(fn, "model");
    if (!ds)
        return del_error_null(fn, "ds");
    if (!mean)
        return del_error_null(fn, "mean");
    if (!std)
        return del_error_null(fn, "std");
    *head_index = model->n_heads > 0 ? 0 : -1;
    if (head) {
        *head_index = del_model_head_index(model, head);
        if (*head_index < 0)
            return del_error(DEL_EINVAL, "%s: 'head' names no head of the model: '%s' (the model has %d heads)", fn,
                             head, model->n_heads);
    }
    const int c = del_dataset_channels(ds), h = del_dataset_height(ds), w = del_dataset_width(ds);
    if (c != model->in_c || h != model->in_h || w != model->in_w)
        return del_error(DEL_EINVAL, "%s: the images of 'ds' must be %d x %d x %d (HxWxC) as the model's input, "
                         "got %d x %d x %d", fn, model->in_h, model->in_w, model->in_c, h, w, c);
    for (int k = 0; k < c; k++) {
        if (!isfinite(mean[k]))
            return del_error(DEL_EINVAL, "%s: 'mean[%d]' must be finite, got %g", fn, k, (double)mean[k]);
        if (!(std[k] > 0.0f) || !isfinite(std[k]))
            return del_error(DEL_EINVAL, "%s: 'std[%d]' must be finite and > 0, got %g", fn, k, (double)std[k]);
    }
    if (softmax != 0 && softmax != 1)
        return del_error(DEL_EINVAL, "%s: 'softmax' must be 0 (logits) or 1 (probabilities), got %d", fn, softmax);
    if (softmax && (!(temperature > 0.0f) || !isfinite(temperature)))
        return del_error(DEL_EINVAL, "%s: 'temperature' must be finite and > 0, got %g", fn, (double)temperature);
    const del_layer *last = output_layer(model, *head_index);
    if (!last || last->out_ndim != 1) {
        char where[64] = "";
        if (*head_index >= 0)
            snprintf(where, sizeof where, " (head '%s')", model->heads[*head_index].name);
        return del_error(DEL_EINVAL, "%s: the model's output%s must be a vector per image ([K], e.g. after "
                         "linear), got %d dimensions", fn, where, last ? last->out_ndim : 3);
    }
    return DEL_OK;
}

/* Restates a failure of a call made for the batch that starts at image
 * first, keeping its status and message. */
static del_status batch_error(del_status st, int64_t first)
{
    char why[DEL_ERROR_MSG_SIZE];
    snprintf(why, sizeof why, "%s", del_last_error());
    return del_error(st, "%s: the batch from image %lld: %s", fn, (long long)first, why);
}

DEL_API del_status del_model_predict(del_tensor **out, del_model *model, const char *head, const del_dataset *ds,
                                     const float *mean, const float *std, float temperature, int softmax)
{
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    int h = -1;
    del_status st = check_args(model, head, ds, mean, std, temperature, softmax, &h);
    if (st != DEL_OK)
        return st;

    const int64_t n = del_dataset_size(ds);
    const int64_t k = output_layer(model, h)->out_shape[0];
    const int batch = del_model_predict_batch(model);
    const int64_t yshape[2] = {n, k};
    const int64_t xshape[4] = {batch, model->in_c, model->in_h, model->in_w};
    const int was_training = del_model_is_training(model);
    del_tensor *y = NULL, *x = NULL;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx || del_tensor_new(&y, DEL_DTYPE_F32, 2, yshape) != DEL_OK ||
        del_tensor_new(&x, DEL_DTYPE_F32, 4, xshape) != DEL_OK) {
        st = del_error(DEL_ENOMEM, "%s: out of memory for the output of %lld x %lld floats and a batch of %d images",
                       fn, (long long)n, (long long)k, batch);
        goto cleanup;
    }
    del_model_set_training(model, 0);
    float *yd = del_tensor_data(y);
    for (int64_t first = 0; first < n; first += batch) {
        const int64_t m = n - first < batch ? n - first : batch;
        for (int j = 0; j < batch; j++)
            idx[j] = first + (j < m ? j : m - 1);
        st = del_dataset_batch(ds, idx, batch, mean, std, x, NULL);
        if (st == DEL_OK)
            st = del_model_forward(model, x);
        if (st != DEL_OK) {
            st = batch_error(st, first);
            goto cleanup;
        }
        del_tensor *logits = h >= 0 ? del_model_head_output(model, model->heads[h].name) : del_model_output(model);
        const float *z = del_tensor_data(logits);
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < k; j++)
                if (!isfinite(z[r * k + j])) {
                    st = del_error(DEL_ENUMERIC, "%s: output %lld of image %lld is %g: the model has diverged (NaN "
                                   "or infinite weights or statistics) or the input overflows it", fn, (long long)j, (long long)(first + r),
                                   (double)z[r * k + j]);
                    goto cleanup;
                }
        memcpy(yd + first * k, z, (size_t)(m * k) * sizeof *yd);
    }
    if (softmax) {
        st = del_softmax(y, temperature, y);
        if (st != DEL_OK)
            goto cleanup;
    }
    *out = y;
    y = NULL;

cleanup:
    del_model_set_training(model, was_training);
    del_tensor_free(x);
    del_tensor_free(y);
    free(idx);
    return st;
}
