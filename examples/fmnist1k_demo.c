/* FMNIST-1k demo (`make demo`): recipe R0 of the reference benchmark.
 *
 * Trains the fmnist-cnn preset on the first 100 Fashion-MNIST training
 * images of each class (1,000 labels), without augmentation: 3,000 steps of
 * batch 64, SGD with Nesterov momentum 0.9, weight decay 5e-4, lr 0.05
 * cosine to 0, inputs x/255 normalised with mean 0.2860 and std 0.3530.
 * Then prints the accuracy on the 10,000 test images and the time taken.
 *
 *   fmnist1k_demo [--steps N] [--threads N] [--seed S] [--data DIR] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "del.h"

#define BATCH 64
#define LR 0.05f
#define MOMENTUM 0.9f
#define WEIGHT_DECAY 5e-4f
#define MEAN 0.2860f
#define STD 0.3530f
#define PER_CLASS 100
#define REPORT_EVERY 100

static const double pi = 3.14159265358979323846;

typedef struct options {
    int64_t steps;
    int threads; /* 0: the library's default */
    uint64_t seed;
    const char *data_dir;
} options;

typedef struct progress {
    int tty;          /* stderr is a terminal: redraw one line */
    double last_time; /* seconds, at the previous report */
    int64_t last_step;
} progress;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fmnist1k_demo [--steps N] [--threads N] [--seed S] [--data DIR]\n"
               "  --steps N    training steps (default 3000)\n"
               "  --threads N  compute threads (default: all CPUs)\n"
               "  --seed S     seed of weights and batch order (default 0)\n"
               "  --data DIR   Fashion-MNIST directory (default %s)\n",
            DEL_FASHION_MNIST_DIR);
}

/* Parses an unsigned decimal number in [min, max]; 0 on success. */
static int parse_number(const char *text, unsigned long long min, unsigned long long max, unsigned long long *value)
{
    char *end = NULL;
    errno = 0;
    if (!text || text[0] == '-' || text[0] == '\0')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *value = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    opt->steps = 3000;
    opt->threads = 0;
    opt->seed = 0;
    opt->data_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long v = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--steps") == 0 && parse_number(val, 1, 100000000, &v) == 0) {
            opt->steps = (int64_t)v;
        } else if (strcmp(arg, "--threads") == 0 && parse_number(val, 1, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--seed") == 0 && parse_number(val, 0, UINT64_MAX, &v) == 0) {
            opt->seed = (uint64_t)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else {
            fprintf(stderr, "fmnist1k_demo: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
        i++;
    }
    return 0;
}

static int on_progress(int64_t step, int64_t total, float loss, void *user)
{
    progress *p = user;
    double t = now_seconds();
    double images_per_s = (double)(step - p->last_step) * BATCH / (t - p->last_time);
    /* The trainer's cosine schedule, at the step just taken. */
    double lr = LR * (1.0 + cos(pi * (double)(step - 1) / (double)total)) / 2.0;
    fprintf(stderr, "%sstep %lld/%lld  loss %.3f  lr %.4f  %.0f img/s%s", p->tty ? "\r" : "", (long long)step,
            (long long)total, (double)loss, lr, images_per_s, p->tty ? "  " : "\n");
    if (p->tty && step == total)
        fputc('\n', stderr);
    fflush(stderr);
    p->last_time = t;
    p->last_step = step;
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    del_dataset *train = NULL, *test = NULL, *labeled = NULL;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    double accuracy = 0.0;
    const float mean[1] = {MEAN}, std[1] = {STD};
    progress prog = {isatty(STDERR_FILENO), 0.0, 0};
    int rc = 1;
    double start = now_seconds();

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, NULL, train, PER_CLASS) != DEL_OK)
        goto fail;
    if (del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10) != DEL_OK || del_model_init(model, opt.seed) != DEL_OK)
        goto fail;
    if (del_trainer_new_supervised(&trainer, model, labeled) != DEL_OK ||
        del_trainer_set_batch_size(trainer, BATCH) != DEL_OK ||
        del_trainer_set_sgd(trainer, LR, MOMENTUM, WEIGHT_DECAY, 1) != DEL_OK ||
        del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE) != DEL_OK ||
        del_trainer_set_normalize(trainer, mean, std, 1) != DEL_OK ||
        del_trainer_set_seed(trainer, opt.seed) != DEL_OK ||
        del_trainer_set_progress(trainer, on_progress, REPORT_EVERY, &prog) != DEL_OK)
        goto fail;

    printf("FMNIST-1k R0: fmnist-cnn (%lld parameters), %lld labeled / %lld test images, %lld steps of %d, "
           "%d threads, seed %llu\n",
           (long long)del_model_num_params(model), (long long)del_dataset_size(labeled),
           (long long)del_dataset_size(test), (long long)opt.steps, BATCH, del_get_num_threads(),
           (unsigned long long)opt.seed);
    fflush(stdout);

    double train_start = now_seconds();
    prog.last_time = train_start;
    if (del_trainer_fit(trainer, opt.steps) != DEL_OK)
        goto fail;
    double train_end = now_seconds();
    if (del_trainer_evaluate(trainer, test, &accuracy) != DEL_OK)
        goto fail;
    double end = now_seconds();

    printf("test accuracy: %.2f%% (%lld images)\n", 100.0 * accuracy, (long long)del_dataset_size(test));
    printf("time: %.1f s training (%.0f img/s), %.1f s evaluation, %.1f s in all\n", train_end - train_start,
           (double)opt.steps * BATCH / (train_end - train_start), end - train_end, end - start);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "fmnist1k_demo: %s\n", del_last_error());
done:
    del_trainer_free(trainer);
    del_model_free(model);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
