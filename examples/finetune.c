/* Fine-tuning tutorial (docs/tutorials/finetune.md): the transfer task of
 * SPEC §5 R7 on Fashion-MNIST.
 *
 * A fmnist-cnn is pre-trained on classes 0-4 (all 30,000 of their training
 * images), or loaded with --pretrained, then transferred to classes 5-9
 * with FMNIST-1k's 100 labels per class: once as a linear probe (only a new
 * head trains) and once fully fine-tuned (the backbone at 0.1x the head's
 * learning rate, after 200 steps of the head alone). Prints the pre-trained
 * model's accuracy on the old task and each transfer's on the new one.
 *
 *   finetune [--steps N] [--pretrain-steps N] [--threads N] [--data DIR]
 *            [--pretrained FILE] [--save FILE] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <del.h>

#define PER_CLASS 100   /* FMNIST-1k */
#define HEAD_WARMUP 200 /* R7: steps of the new head alone in full fine-tuning */
#define BACKBONE_LR_MULT 0.1f
#define REPORT_EVERY 500

typedef struct options {
    int64_t steps, pretrain_steps;
    int threads;
    const char *data_dir, *pretrained, *save;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: finetune [--steps N] [--pretrain-steps N] [--threads N] [--data DIR]\n"
               "                [--pretrained FILE] [--save FILE]\n"
               "  --steps N           steps of each transfer (default 3000)\n"
               "  --pretrain-steps N  steps of the pre-training on classes 0-4 (default: --steps)\n"
               "  --threads N         compute threads (default: all CPUs)\n"
               "  --data DIR          Fashion-MNIST directory (default %s)\n"
               "  --pretrained FILE   load the pre-trained 5-class model instead of training it\n"
               "  --save FILE         save the pre-trained model there (for lwf --pretrained)\n",
            DEL_FASHION_MNIST_DIR);
}

/* A decimal number in [1, max]; 0 on success. */
static int parse_count(const char *text, long long max, long long *value)
{
    char *end = NULL;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || errno != 0 || end == text || *end != '\0' || v < 1 || v > max)
        return -1;
    *value = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    long long v = 0;
    *opt = (options){3000, 0, 0, NULL, NULL, NULL};
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->steps = v;
        } else if (strcmp(arg, "--pretrain-steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->pretrain_steps = v;
        } else if (strcmp(arg, "--threads") == 0 && parse_count(val, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else if (strcmp(arg, "--pretrained") == 0 && val && val[0]) {
            opt->pretrained = val;
        } else if (strcmp(arg, "--save") == 0 && val && val[0]) {
            opt->save = val;
        } else {
            fprintf(stderr, "finetune: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
    }
    if (opt->pretrain_steps == 0)
        opt->pretrain_steps = opt->steps;
    return 0;
}

static int print_progress(int64_t step, int64_t total, float loss, void *user)
{
    printf("  %s step %lld/%lld  loss %.3f\n", (const char *)user, (long long)step, (long long)total, (double)loss);
    fflush(stdout);
    return 0;
}

/* *out = the images of src labelled first..first+count-1, relabelled
 * 0..count-1: del_dataset_subset copies the images, del_dataset_from_arrays
 * gives them the new labels. 0 on success; otherwise prints why, -1. */
static int class_range(del_dataset **out, const del_dataset *src, int first, int count)
{
    const int64_t size = del_dataset_size(src);
    const int32_t *labels = del_dataset_labels(src);
    int64_t *indices = malloc((size_t)size * sizeof *indices);
    int32_t *new_labels = malloc((size_t)size * sizeof *new_labels);
    del_dataset *subset = NULL;
    int64_t n = 0;
    int rc = -1;

    if (!indices || !new_labels) {
        fprintf(stderr, "finetune: out of memory\n");
        goto cleanup;
    }
    for (int64_t i = 0; i < size; i++)
        if (labels[i] >= first && labels[i] < first + count) {
            indices[n] = i;
            new_labels[n++] = labels[i] - first;
        }
    if (del_dataset_subset(&subset, src, indices, n) != DEL_OK ||
        del_dataset_from_arrays(out, del_dataset_images(subset), new_labels, n, del_dataset_height(subset),
                                del_dataset_width(subset), del_dataset_channels(subset)) != DEL_OK) {
        fprintf(stderr, "finetune: %s\n", del_last_error());
        goto cleanup;
    }
    rc = 0;
cleanup:
    del_dataset_free(subset);
    free(new_labels);
    free(indices);
    return rc;
}

/* The pre-trained model: fmnist-cnn trained on the old task's images with
 * the supervised trainer's defaults (SPEC §5). */
static del_status pretrain(del_model **out, const del_dataset *old_train, int64_t steps)
{
    del_trainer *trainer = NULL;
    del_status st = del_model_preset(out, "fmnist-cnn", 1, 28, 28, 5);
    if (st == DEL_OK)
        st = del_trainer_new_supervised(&trainer, *out, old_train);
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, "pre-train");
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    del_trainer_free(trainer);
    return st;
}

/* One transfer from the pre-trained model's bytes (a fresh copy each
 * time): a new 5-class head, trained in `mode` on the new task. */
static del_status transfer(const void *pretrained, size_t size, const del_dataset *new_train,
                           const del_dataset *new_test, del_finetune_mode mode, int64_t steps, double *accuracy)
{
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    const char *name = mode == DEL_FINETUNE_FULL ? "full" : "probe";
    del_status st = del_model_load_buffer(&model, pretrained, size);
    if (st == DEL_OK)
        st = del_trainer_new_finetune(&trainer, model, new_train, 5, mode);
    if (st == DEL_OK && mode == DEL_FINETUNE_FULL)
        st = del_trainer_set_backbone_lr_mult(trainer, BACKBONE_LR_MULT);
    if (st == DEL_OK && mode == DEL_FINETUNE_FULL)
        st = del_trainer_set_head_warmup(trainer, HEAD_WARMUP);
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, (void *)name);
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    if (st == DEL_OK)
        st = del_trainer_evaluate(trainer, new_test, accuracy);
    del_trainer_free(trainer);
    del_model_free(model);
    return st;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    del_dataset *train = NULL, *test = NULL, *labeled = NULL;
    del_dataset *old_train = NULL, *old_test = NULL, *new_train = NULL, *new_test = NULL;
    del_model *pretrained = NULL;
    del_trainer *scorer = NULL;
    void *bytes = NULL;
    size_t size = 0;
    double old_acc = 0.0, probe_acc = 0.0, full_acc = 0.0;
    int rc = 1;

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, NULL, train, PER_CLASS) != DEL_OK)
        goto fail;
    /* Old task: classes 0-4, all their images. New task: classes 5-9 as
     * labels 0-4, FMNIST-1k's 100 labeled images of each. */
    if (class_range(&old_train, train, 0, 5) != 0 || class_range(&old_test, test, 0, 5) != 0 ||
        class_range(&new_train, labeled, 5, 5) != 0 || class_range(&new_test, test, 5, 5) != 0)
        goto done;

    if (opt.pretrained) {
        if (del_model_load(&pretrained, opt.pretrained) != DEL_OK)
            goto fail;
        printf("pre-trained model: %s\n", opt.pretrained);
    } else {
        printf("pre-training fmnist-cnn on classes 0-4 (%lld images), %lld steps\n",
               (long long)del_dataset_size(old_train), (long long)opt.pretrain_steps);
        if (pretrain(&pretrained, old_train, opt.pretrain_steps) != DEL_OK)
            goto fail;
    }
    if (opt.save && del_model_save(pretrained, opt.save) != DEL_OK)
        goto fail;
    /* Any trainer scores a model; this one is never fitted. */
    if (del_trainer_new_supervised(&scorer, pretrained, old_test) != DEL_OK ||
        del_trainer_evaluate(scorer, old_test, &old_acc) != DEL_OK)
        goto fail;
    printf("pre-trained, old task (classes 0-4): %.2f%%\n", 100.0 * old_acc);

    /* Each transfer starts from the same pre-trained weights: keep them as
     * the bytes of a model file. */
    if (del_model_save_buffer(pretrained, &bytes, &size) != DEL_OK)
        goto fail;
    printf("transfer to classes 5-9 (%lld labels), %lld steps each\n", (long long)del_dataset_size(new_train),
           (long long)opt.steps);
    if (transfer(bytes, size, new_train, new_test, DEL_FINETUNE_LINEAR_PROBE, opt.steps, &probe_acc) != DEL_OK)
        goto fail;
    printf("linear probe, new task (classes 5-9): %.2f%%\n", 100.0 * probe_acc);
    if (transfer(bytes, size, new_train, new_test, DEL_FINETUNE_FULL, opt.steps, &full_acc) != DEL_OK)
        goto fail;
    printf("full fine-tuning, new task (classes 5-9): %.2f%%\n", 100.0 * full_acc);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "finetune: %s\n", del_last_error());
done:
    del_buffer_free(bytes);
    del_trainer_free(scorer);
    del_model_free(pretrained);
    del_dataset_free(new_test);
    del_dataset_free(new_train);
    del_dataset_free(old_test);
    del_dataset_free(old_train);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
