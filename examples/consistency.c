/* Consistency-training tutorial (docs/tutorials/consistency.md): SPEC §5
 * R8, FixMatch (Sohn et al. 2020) on Fashion-MNIST.
 *
 * fmnist-cnn learns from FMNIST-1k's 1,000 labeled images L and the other
 * 59,000 training images U: each step 64 images of L (std aug: a pad-2 crop
 * and a flip) and 7 x 64 = 448 of U, each seen twice, weakly (std aug) and
 * strongly (std aug + RandAugment(2, 10) + cutout 14). The model's
 * prediction on the weak view, kept when its top probability is >= 0.95,
 * is the label the strong view learns. The trainer keeps a moving average
 * of the weights (EMA, decay 0.999), which is the model scored. Prints the
 * test accuracy of the EMA and of the trained model itself, and the
 * fraction of pseudo-labels kept. --flexmatch uses FlexMatch's per-class
 * thresholds (Zhang et al. 2021) instead of 0.95 for every class.
 *
 *   consistency [--steps N] [--threads N] [--data DIR] [--flexmatch] [--save FILE] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <del.h>

#define PER_CLASS 100          /* FMNIST-1k */
#define MU 7                   /* unlabeled images per labeled one */
#define THRESHOLD 0.95f        /* tau */
#define EMA_DECAY 0.999f
#define WEAK_SEED 1000003      /* the benchmark's pipeline seeds, so this is R8's seed-0 run */
#define STRONG_SEED 2000003
#define REPORT_EVERY 500

typedef struct options {
    int64_t steps;
    int threads, flexmatch;
    const char *data_dir, *save;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: consistency [--steps N] [--threads N] [--data DIR] [--flexmatch] [--save FILE]\n"
               "  --steps N      training steps (default 4000, as R8)\n"
               "  --threads N    compute threads (default: all CPUs)\n"
               "  --data DIR     Fashion-MNIST directory (default %s)\n"
               "  --flexmatch    FlexMatch's per-class thresholds instead of FixMatch's fixed one\n"
               "  --save FILE    save the EMA model there\n",
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
    *opt = (options){4000, 0, 0, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--flexmatch") == 0) {
            opt->flexmatch = 1;
            continue;
        } else if (strcmp(arg, "--steps") == 0 && parse_count(val, 100000000, &v) == 0) {
            opt->steps = v;
        } else if (strcmp(arg, "--threads") == 0 && parse_count(val, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else if (strcmp(arg, "--save") == 0 && val && val[0]) {
            opt->save = val;
        } else {
            fprintf(stderr, "consistency: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
        i++; /* the option's value */
    }
    return 0;
}

/* The loss and the fraction of pseudo-labels kept so far in the fit. */
static int print_progress(int64_t step, int64_t total, float loss, void *user)
{
    double kept = 0.0;
    if (del_trainer_consistency_stats(user, &kept) != DEL_OK)
        return 1;
    printf("  step %lld/%lld  loss %.3f  kept %.1f%%\n", (long long)step, (long long)total, (double)loss,
           100.0 * kept);
    fflush(stdout);
    return 0;
}

/* *out = SPEC §5's "std aug": a random 28x28 crop of the image zero-padded
 * by 2, then a horizontal flip with p = 0.5. */
static del_status std_aug(del_augment **out, uint64_t seed)
{
    del_status st = del_augment_new(out);
    if (st == DEL_OK)
        st = del_augment_set_seed(*out, seed);
    if (st == DEL_OK)
        st = del_augment_add_random_crop(*out, 28, 28, 2, 0);
    if (st == DEL_OK)
        st = del_augment_add_flip_h(*out, 0.5f);
    return st;
}

/* R8: FixMatch (or FlexMatch) on L and U. *ema_acc scores the moving
 * average, *model_acc the trained model; *kept is the fraction of
 * pseudo-labels kept over the run. Saves the average to save if not NULL. */
static del_status train_consistency(const del_dataset *labeled, const del_dataset *unlabeled,
                                    const del_dataset *test, int64_t steps, int flexmatch, const char *save,
                                    double *ema_acc, double *model_acc, double *kept)
{
    del_model *model = NULL;
    del_trainer *trainer = NULL, *scorer = NULL;
    del_augment *aug_l = NULL, *weak = NULL, *strong = NULL;
    del_status st = del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10);
    if (st == DEL_OK)
        st = std_aug(&aug_l, 0);
    if (st == DEL_OK)
        st = std_aug(&weak, WEAK_SEED);
    if (st == DEL_OK)
        st = std_aug(&strong, STRONG_SEED);
    if (st == DEL_OK)
        st = del_augment_add_randaugment(strong, 2, 10);
    if (st == DEL_OK)
        st = del_augment_add_cutout(strong, 1.0f, 14, 0); /* a 14x14 square of 0, always */
    if (st == DEL_OK)
        st = del_trainer_new_consistency(&trainer, model, labeled, unlabeled, weak, strong);
    if (st == DEL_OK)
        st = del_trainer_set_augment(trainer, aug_l);
    if (st == DEL_OK)
        st = del_trainer_set_unlabeled_ratio(trainer, MU);
    if (st == DEL_OK)
        st = del_trainer_set_consistency_threshold(trainer, THRESHOLD);
    if (st == DEL_OK)
        st = del_trainer_set_flexmatch(trainer, flexmatch);
    if (st == DEL_OK)
        st = del_trainer_set_ema(trainer, EMA_DECAY);
    if (st == DEL_OK)
        st = del_trainer_set_progress(trainer, print_progress, REPORT_EVERY, trainer);
    if (st == DEL_OK)
        st = del_trainer_fit(trainer, steps);
    if (st == DEL_OK)
        st = del_trainer_consistency_stats(trainer, kept);
    if (st == DEL_OK)
        st = del_trainer_evaluate(trainer, test, ema_acc); /* the EMA's weights */
    if (st == DEL_OK && save)
        st = del_model_save(del_trainer_ema_model(trainer), save);
    /* Any trainer scores a model; this one, without an EMA, scores the model itself. */
    if (st == DEL_OK)
        st = del_trainer_new_supervised(&scorer, model, test);
    if (st == DEL_OK)
        st = del_trainer_evaluate(scorer, test, model_acc);
    del_trainer_free(scorer);
    del_trainer_free(trainer);
    del_augment_free(strong);
    del_augment_free(weak);
    del_augment_free(aug_l);
    del_model_free(model);
    return st;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;

    del_dataset *train = NULL, *test = NULL, *labeled = NULL, *unlabeled = NULL;
    const char *name = opt.flexmatch ? "FlexMatch" : "FixMatch";
    double ema_acc = 0.0, model_acc = 0.0, kept = 0.0;
    int rc = 1;

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    /* L: the first 100 training images of each class; U: the other 59,000,
     * their labels set to -1. */
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, opt.data_dir, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, &unlabeled, train, PER_CLASS) != DEL_OK)
        goto fail;
    printf("FMNIST-1k: L %lld labeled images, U %lld unlabeled\n", (long long)del_dataset_size(labeled),
           (long long)del_dataset_size(unlabeled));
    printf("%s on L + U (R8), %lld steps of 64 labeled + %d unlabeled images, tau %.2f\n", name,
           (long long)opt.steps, 64 * MU, (double)THRESHOLD);
    if (train_consistency(labeled, unlabeled, test, opt.steps, opt.flexmatch, opt.save, &ema_acc, &model_acc,
                          &kept) != DEL_OK)
        goto fail;
    printf("%s, EMA of the weights (decay %.3f): %.2f%%\n", name, (double)EMA_DECAY, 100.0 * ema_acc);
    printf("%s, the trained model itself: %.2f%%\n", name, 100.0 * model_acc);
    printf("pseudo-labels kept: %.1f%%\n", 100.0 * kept);
    if (opt.save)
        printf("EMA model saved to %s\n", opt.save);
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "consistency: %s\n", del_last_error());
done:
    del_dataset_free(unlabeled);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
