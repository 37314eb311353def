/* pl_step — libdel pseudo-label training speed on real data, in img/s.
 *
 *   pl_step [-t THREADS] [--data DIR] [--warmup W] [--blocks B]
 *           [--block-steps S] [--max-seconds S]
 *
 * train_pseudo_label_fmnist_cnn: steps of R4's trainer (SPEC 1.5) past its
 * ramp: fmnist-cnn, each step 64 images of FMNIST-1k's L and 256 of U
 * (the other 59,000), both through std aug (pad-2 crop + flip) on the
 * trainer's prefetch thread, one joint forward of the 320 images, CE(L) +
 * 3 * CE(argmax pseudo-labels), backward, SGD step (the R0 optimizer).
 * The same run is timed again with the images given as they are (no
 * pipeline: "pre-augmented" batches, the augmentation's cost taken out):
 * augmented / pre-augmented is the share of the step's speed that
 * augmentation on the prefetch thread leaves (1.0: fully hidden).
 * Each block is del_trainer_fit of S steps (total steps set, so the
 * optimizer and batch order carry on); W untimed steps first; the rate is
 * the median over blocks, stopping after 3 once S seconds have passed.
 *
 * stdout: one JSON line (bench/report.py throughput merges it with
 * bench/pl_step_torch.py's); details on stderr. Public API only. */
#include <del.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BLOCKS 256
#define LABELED 64
#define UNLABELED 256

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "pl_step: %s failed: %s (%s)\n", #expr,               \
                    del_last_error(), del_status_str(st_));                       \
            goto cleanup;                                                         \
        }                                                                         \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse_int(const char *flag, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || *text == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "pl_step: %s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, text ? text : "");
        return 1;
    }
    *out = (int)v;
    return 0;
}

typedef struct timing {
    int warmup, blocks, block_steps, max_seconds;
} timing;

static del_status add_std_aug(del_augment *aug)
{
    del_status st = del_augment_add_random_crop(aug, 28, 28, 2, 0);
    return st != DEL_OK ? st : del_augment_add_flip_h(aug, 0.5f);
}

/* The median rate of R4's trainer on L and U, with std aug or without. */
static int measure(const del_dataset *l, const del_dataset *u, int augmented, const timing *tm, double *median,
                   double *rates, int *nblocks)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    del_model *model = NULL;
    del_trainer *tr = NULL;
    del_augment *aug_l = NULL, *aug_u = NULL;
    int rc = 1, n = 0;
    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, 0));
    TRY(del_trainer_new_pseudo_label(&tr, model, l, u));
    if (augmented) {
        TRY(del_augment_new(&aug_l));
        TRY(del_augment_set_seed(aug_l, 0));
        TRY(add_std_aug(aug_l));
        TRY(del_augment_new(&aug_u));
        TRY(del_augment_set_seed(aug_u, 1000003));
        TRY(add_std_aug(aug_u));
        TRY(del_trainer_set_augment(tr, aug_l));
        TRY(del_trainer_set_augment_unlabeled(tr, aug_u));
    }
    TRY(del_trainer_set_batch_size(tr, LABELED));
    TRY(del_trainer_set_unlabeled_batch_size(tr, UNLABELED));
    TRY(del_trainer_set_sgd(tr, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_trainer_set_normalize(tr, mean, std, 1));
    /* alpha = 3 from the second step on: every timed step is a joint one. */
    TRY(del_trainer_set_pseudo_label_ramp(tr, 0, 1, 3.0f));
    TRY(del_trainer_set_total_steps(tr, 1000000));
    if (tm->warmup > 0)
        TRY(del_trainer_fit(tr, tm->warmup));
    const double start = now_s();
    while (n < tm->blocks && (n < 3 || now_s() - start < tm->max_seconds)) {
        const double t0 = now_s();
        TRY(del_trainer_fit(tr, tm->block_steps));
        rates[n++] = (double)(LABELED + UNLABELED) * tm->block_steps / (now_s() - t0);
    }
    double sorted[MAX_BLOCKS];
    memcpy(sorted, rates, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    *median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    *nblocks = n;
    rc = 0;
cleanup:
    del_trainer_free(tr);
    del_augment_free(aug_l);
    del_augment_free(aug_u);
    del_model_free(model);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 1;
    timing tm = {3, 5, 4, 15};
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) bad = parse_int(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--warmup")) bad = parse_int(a, v, 0, 1000000, &tm.warmup);
        else if (!strcmp(a, "--blocks")) bad = parse_int(a, v, 1, MAX_BLOCKS, &tm.blocks);
        else if (!strcmp(a, "--block-steps")) bad = parse_int(a, v, 1, 1000000, &tm.block_steps);
        else if (!strcmp(a, "--max-seconds")) bad = parse_int(a, v, 1, 100000, &tm.max_seconds);
        else if (!strcmp(a, "--data") && v) dir = v;
        else {
            fprintf(stderr, "usage: pl_step [-t THREADS] [--data DIR] [--warmup W] [--blocks B] [--block-steps S] "
                            "[--max-seconds S]\n");
            return 2;
        }
        if (bad) return 2;
        i++;
    }
    del_dataset *train = NULL, *l = NULL, *u = NULL;
    del_model *probe = NULL;
    double rates_aug[MAX_BLOCKS], rates_pre[MAX_BLOCKS], med_aug = 0.0, med_pre = 0.0;
    int n_aug = 0, n_pre = 0, rc = 1;
    TRY(del_set_num_threads(threads));
    TRY(del_model_preset(&probe, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_dataset_load_fashion_mnist(&train, dir, DEL_SPLIT_TRAIN));
    TRY(del_dataset_split_per_class(&l, &u, train, 100));
    if (measure(l, u, 1, &tm, &med_aug, rates_aug, &n_aug) || measure(l, u, 0, &tm, &med_pre, rates_pre, &n_pre))
        goto cleanup;
    fprintf(stderr, "libdel train_pseudo_label_fmnist_cnn threads=%d: median %.1f img/s augmented, %.1f pre-augmented "
                    "(%.2f); blocks",
            threads, med_aug, med_pre, med_aug / med_pre);
    for (int b = 0; b < n_aug; b++) fprintf(stderr, " %.1f", rates_aug[b]);
    fprintf(stderr, " /");
    for (int b = 0; b < n_pre; b++) fprintf(stderr, " %.1f", rates_pre[b]);
    fprintf(stderr, "\n");
    printf("{\"bench\": \"train_pseudo_label_fmnist_cnn\", \"threads\": %d, \"unit\": \"img/s\", \"libdel\": %.1f, "
           "\"libdel_pre_augmented\": %.1f, \"augmented_share\": %.3f, \"batch\": %d, \"params\": %lld}\n",
           threads, med_aug, med_pre, med_aug / med_pre, LABELED + UNLABELED, (long long)del_model_num_params(probe));
    fflush(stdout);
    rc = 0;
cleanup:
    del_model_free(probe);
    del_dataset_free(l);
    del_dataset_free(u);
    del_dataset_free(train);
    return rc;
}
