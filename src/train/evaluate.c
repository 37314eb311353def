/* Evaluation: top-1 accuracy of a trainer's model on a labeled dataset,
 * in batches, in evaluation mode. */
#include <math.h>
#include <stdlib.h>

#include "del.h"
#include "train_error.h"
#include "trainer_internal.h"

#define EVAL_BATCH 500

/* Index of the largest of k scores, the first on ties; -1 if a score is
 * not finite (the caller reports it). */
static int argmax(const float *v, int k)
{
    int best = 0;
    for (int j = 0; j < k; j++) {
        if (!isfinite(v[j]))
            return -1;
        if (v[j] > v[best])
            best = j;
    }
    return best;
}

/* Accuracy of head (NULL: the model's first) on the labeled images of
 * test; fn names the public call. */
static del_status evaluate_head(del_trainer *trainer, const del_dataset *test, const char *head, double *accuracy,
                                const char *fn)
{
    if (!trainer)
        return train_error_null(fn, "trainer");
    if (!test)
        return train_error_null(fn, "test");
    if (!accuracy)
        return train_error_null(fn, "accuracy");
    del_trainer *tr = trainer;
    if (del_dataset_channels(test) != tr->channels || del_dataset_height(test) != tr->height ||
        del_dataset_width(test) != tr->width)
        return train_error(DEL_EINVAL, "%s: the images of 'test' must be %d x %d x %d (HxWxC) as the training images, got "
                         "%d x %d x %d", fn, tr->height, tr->width, tr->channels, del_dataset_height(test),
                         del_dataset_width(test), del_dataset_channels(test));
    const int64_t n = del_dataset_size(test);
    const int32_t *labels = del_dataset_labels(test);
    int64_t n_labeled = 0;
    int32_t max_label = -1;
    for (int64_t i = 0; i < n; i++) {
        n_labeled += labels[i] >= 0;
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    if (n_labeled == 0)
        return train_error(DEL_EINVAL, "%s: 'test' has no labeled image", fn);
    /* The moving average when the trainer keeps one (del_trainer_set_ema). */
    del_model *model = tr->ema ? tr->ema : tr->model;
    if (head && del_model_head_index(model, head) < 0)
        return train_error(DEL_EINVAL, "%s: the model has no head called '%s'", fn, head);
    del_status st = DEL_OK;
    if (!head) {
        int out_ndim = 0;
        int64_t out_shape[3];
        st = del_model_output_shape(model, &out_ndim, out_shape);
        if (st != DEL_OK)
            return st;
        if (out_ndim != 1 || max_label >= out_shape[0])
            return train_error(DEL_EINVAL, "%s: 'test' has label %d but the model has only %lld outputs", fn,
                               (int)max_label, (long long)(out_ndim == 1 ? out_shape[0] : 0));
    }

    const size_t image_floats = (size_t)tr->channels * (size_t)tr->height * (size_t)tr->width;
    const int was_training = del_model_is_training(model);
    int64_t idx[EVAL_BATCH];
    int64_t correct = 0;
    del_tensor *x = NULL;
    float *xbuf = malloc(EVAL_BATCH * image_floats * sizeof *xbuf);
    if (!xbuf)
        return train_error(DEL_ENOMEM, "%s: out of memory for a batch of %d images", fn, EVAL_BATCH);
    st = del_model_set_training(model, 0);
    if (st != DEL_OK)
        goto cleanup;
    for (int64_t i = 0; i < n;) {
        int m = 0;
        for (; i < n && m < EVAL_BATCH; i++)
            if (labels[i] >= 0)
                idx[m++] = i;
        if (m == 0)
            break;
        const int64_t shape[4] = {m, tr->channels, tr->height, tr->width};
        st = del_tensor_wrap(&x, DEL_DTYPE_F32, 4, shape, xbuf);
        if (st == DEL_OK)
            st = del_dataset_batch(test, idx, m, tr->set.mean, tr->set.std, x, NULL);
        if (st == DEL_OK)
            st = del_model_forward(model, x);
        if (st != DEL_OK)
            goto cleanup;
        del_tensor_free(x);
        x = NULL;
        del_tensor *logits = head ? del_model_head_output(model, head) : del_model_output(model);
        const int k = (int)del_tensor_dim(logits, 1);
        if (head && (del_tensor_ndim(logits) != 2 || max_label >= k)) {
            st = train_error(DEL_EINVAL, "%s: 'test' has label %d but head '%s' has only %d outputs", fn,
                             (int)max_label, head, del_tensor_ndim(logits) == 2 ? k : 0);
            goto cleanup;
        }
        const float *scores = del_tensor_data(logits);
        for (int r = 0; r < m; r++) {
            const int best = argmax(scores + (size_t)r * (size_t)k, k);
            if (best < 0) {
                st = train_error(DEL_ENUMERIC, "%s: the model's outputs for test image %lld are not finite: the model "
                               "has diverged (NaN or infinite weights or inputs)", fn, (long long)idx[r]);
                goto cleanup;
            }
            correct += best == labels[idx[r]];
        }
    }
    *accuracy = (double)correct / (double)n_labeled;

cleanup:
    del_tensor_free(x);
    free(xbuf);
    del_model_set_training(model, was_training);
    return st;
}

DEL_API del_status del_trainer_evaluate(del_trainer *trainer, const del_dataset *test, double *accuracy)
{
    return evaluate_head(trainer, test, trainer && trainer->task_head[0] ? trainer->task_head : NULL, accuracy,
                         "del_trainer_evaluate");
}

DEL_API del_status del_trainer_evaluate_head(del_trainer *trainer, const del_dataset *test, const char *head,
                                             double *accuracy)
{
    static const char fn[] = "del_trainer_evaluate_head";
    if (!head)
        return train_error_null(fn, "head");
    return evaluate_head(trainer, test, head, accuracy, fn);
}
