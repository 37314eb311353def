/* fmnist1k — the FMNIST-1k reference benchmark (SPEC section 5) with libdel.
 *
 *   fmnist1k [-t THREADS] [--seeds "0 1 2"] [--steps N] [--dir DIR] RECIPE...
 *   fmnist1k --list
 *
 * Labeled set: the first 100 Fashion-MNIST training images of each class in
 * file order (1,000); test: the 10,000 t10k images. For each recipe and
 * seed, stdout gets one JSON line
 *   {"recipe": "R0", "seed": 0, "libdel_acc": 0.xx, "libdel_s": ..., "steps": N}
 * where libdel_s is the wall time of training plus test evaluation (data
 * loading excluded). bench/fmnist1k.sh pairs these lines with the PyTorch
 * ones. --steps overrides the recipe's step count (for smoke runs only).
 *
 * Adding a recipe is one entry in RECIPES (its augmentation, if any, is a
 * function adding pipeline steps) plus, if it needs new machinery, its run
 * function. Public API only, as any user program. */
#include <del.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SEEDS 64

typedef struct fmnist_data {
    del_dataset *train, *labeled, *test;
} fmnist_data;

typedef struct recipe {
    const char *name;
    const char *about;
    int64_t steps;
    /* Trains from scratch with seed and stores the test accuracy; 0 on success. */
    int (*run)(const struct recipe *r, const fmnist_data *d, int64_t steps, uint64_t seed, double *accuracy);
    /* Adds the recipe's augmentation steps to an empty pipeline; NULL: none. */
    del_status (*augment)(del_augment *aug);
} recipe;

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "fmnist1k: %s failed: %s (%s)\n", #expr,              \
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

static int log_progress(int64_t step, int64_t total, float loss, void *user)
{
    fprintf(stderr, "  %s step %lld/%lld  loss %.4f\n", (const char *)user, (long long)step,
            (long long)total, loss);
    return 0;
}

/* SPEC section 5 "std aug": a random 28x28 crop of the image zero-padded by
 * 2, then a horizontal flip with p = 0.5. */
static del_status add_std_aug(del_augment *aug)
{
    del_status st = del_augment_add_random_crop(aug, 28, 28, 2, 0);
    return st != DEL_OK ? st : del_augment_add_flip_h(aug, 0.5f);
}

/* RandAugment(2, 9) after crop and flip, the order of torchvision's
 * classification reference (crop, flip, then the auto-augment policy);
 * fmnist1k_torch.py composes the same three transforms in the same order. */
static del_status add_std_aug_randaugment(del_augment *aug)
{
    del_status st = add_std_aug(aug);
    return st != DEL_OK ? st : del_augment_add_randaugment(aug, 2, 9);
}

/* CutMix with p = 0.5, alpha = 1 on the normalised std-aug batch. */
static del_status add_std_aug_cutmix(del_augment *aug)
{
    del_status st = add_std_aug(aug);
    return st != DEL_OK ? st : del_augment_add_cutmix(aug, 0.5f, 1.0f);
}

/* SPEC section 5 baseline: fmnist-cnn, SGD 0.05 momentum 0.9 Nesterov wd 5e-4,
 * cosine to 0, batch 64, normalised 0.2860/0.3530; R1-R3 add the recipe's
 * pipeline (seeded with the run's seed), trained on its soft labels. The
 * settings are spelled out rather than left to the trainer's defaults so the
 * recipe does not change if those ever do. */
static int run_supervised(const recipe *r, const fmnist_data *d, int64_t steps, uint64_t seed, double *accuracy)
{
    const float mean[1] = {0.2860f}, std[1] = {0.3530f};
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    del_augment *aug = NULL;
    int rc = 1;

    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, seed));
    TRY(del_trainer_new_supervised(&trainer, model, d->labeled));
    if (r->augment) {
        TRY(del_augment_new(&aug));
        TRY(del_augment_set_seed(aug, seed));
        TRY(r->augment(aug));
        TRY(del_trainer_set_augment(trainer, aug));
    }
    TRY(del_trainer_set_batch_size(trainer, 64));
    TRY(del_trainer_set_sgd(trainer, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_trainer_set_schedule(trainer, DEL_SCHEDULE_COSINE));
    TRY(del_trainer_set_normalize(trainer, mean, std, 1));
    TRY(del_trainer_set_seed(trainer, seed));
    TRY(del_trainer_set_progress(trainer, log_progress, steps >= 1000 ? 500 : 100, (void *)r->name));
    TRY(del_trainer_fit(trainer, steps));
    TRY(del_trainer_evaluate(trainer, d->test, accuracy));
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_augment_free(aug);
    del_model_free(model);
    return rc;
}

static const recipe RECIPES[] = {
    {"R0", "supervised on L, no augmentation, 3000 steps", 3000, run_supervised, NULL},
    {"R1", "R0 + std aug (pad-2 random crop 28x28, flip p=0.5)", 3000, run_supervised, add_std_aug},
    {"R2", "R1 + RandAugment(2, 9) after crop and flip", 3000, run_supervised, add_std_aug_randaugment},
    {"R3", "R1 + CutMix (p=0.5, alpha=1), soft-target CE", 3000, run_supervised, add_std_aug_cutmix},
};

static const recipe *find_recipe(const char *name)
{
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++)
        if (!strcmp(RECIPES[i].name, name)) return &RECIPES[i];
    return NULL;
}

static void list_recipes(FILE *f)
{
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++)
        fprintf(f, "%s\t%s\n", RECIPES[i].name, RECIPES[i].about);
}

static int load_data(fmnist_data *d, const char *dir)
{
    memset(d, 0, sizeof *d);
    TRY(del_dataset_load_fashion_mnist(&d->train, dir, DEL_SPLIT_TRAIN));
    TRY(del_dataset_load_fashion_mnist(&d->test, dir, DEL_SPLIT_TEST));
    TRY(del_dataset_split_per_class(&d->labeled, NULL, d->train, 100));
    return 0;
cleanup:
    return 1;
}

static void free_data(fmnist_data *d)
{
    del_dataset_free(d->labeled);
    del_dataset_free(d->test);
    del_dataset_free(d->train);
}

/* Parses a space- or comma-separated list of non-negative integers. */
static int parse_seeds(const char *text, uint64_t *seeds, int *n)
{
    *n = 0;
    while (*text) {
        char *end;
        if (*text == ' ' || *text == ',') {
            text++;
            continue;
        }
        if (*text < '0' || *text > '9' || *n == MAX_SEEDS) return 1;
        seeds[(*n)++] = strtoull(text, &end, 10);
        text = end;
        if (*text && *text != ' ' && *text != ',') return 1;
    }
    return *n == 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fmnist1k [-t THREADS] [--seeds \"0 1 2\"] [--steps N] [--dir DIR] RECIPE...\n"
                    "       fmnist1k --list\nrecipes:\n");
    list_recipes(stderr);
}

int main(int argc, char **argv)
{
    uint64_t seeds[MAX_SEEDS] = {0};
    int n_seeds = 1, threads = 0, n_recipes = 0, rc = 1;
    int64_t steps_override = 0;
    const char *dir = NULL;
    const recipe *todo[32];
    fmnist_data data;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--list")) {
            list_recipes(stdout);
            return 0;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || t < 1 || t > 256) {
                fprintf(stderr, "fmnist1k: -t must be an integer in 1..256, got '%s'\n", v);
                return 2;
            }
            threads = (int)t;
            i++;
        } else if (!strcmp(a, "--seeds") && v) {
            if (parse_seeds(v, seeds, &n_seeds)) {
                fprintf(stderr, "fmnist1k: --seeds must be 1..%d non-negative integers, got '%s'\n", MAX_SEEDS, v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--steps") && v) {
            steps_override = atoll(v);
            if (steps_override < 1) {
                fprintf(stderr, "fmnist1k: --steps must be >= 1, got '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--dir") && v) {
            dir = v;
            i++;
        } else if (a[0] == '-') {
            usage();
            return 2;
        } else if (!find_recipe(a)) {
            fprintf(stderr, "fmnist1k: unknown recipe '%s'; known recipes:\n", a);
            list_recipes(stderr);
            return 2;
        } else if (n_recipes == (int)(sizeof todo / sizeof todo[0])) {
            fprintf(stderr, "fmnist1k: too many recipes\n");
            return 2;
        } else {
            todo[n_recipes++] = find_recipe(a);
        }
    }
    if (n_recipes == 0) {
        usage();
        return 2;
    }
    if (threads && del_set_num_threads(threads) != DEL_OK) {
        fprintf(stderr, "fmnist1k: %s\n", del_last_error());
        return 2;
    }
    if (load_data(&data, dir)) goto done;
    fprintf(stderr, "fmnist1k: libdel %s, %d thread(s), %lld labeled / %lld test images\n",
            del_version_string(), del_get_num_threads(), (long long)del_dataset_size(data.labeled),
            (long long)del_dataset_size(data.test));

    for (int r = 0; r < n_recipes; r++) {
        int64_t steps = steps_override ? steps_override : todo[r]->steps;
        for (int s = 0; s < n_seeds; s++) {
            double acc = 0.0, t0 = now_s();
            fprintf(stderr, "fmnist1k: libdel %s seed %llu, %lld steps\n", todo[r]->name,
                    (unsigned long long)seeds[s], (long long)steps);
            if (todo[r]->run(todo[r], &data, steps, seeds[s], &acc)) goto done;
            printf("{\"recipe\": \"%s\", \"seed\": %llu, \"libdel_acc\": %.4f, \"libdel_s\": %.1f, \"steps\": %lld}\n",
                   todo[r]->name, (unsigned long long)seeds[s], acc, now_s() - t0, (long long)steps);
            fflush(stdout);
        }
    }
    rc = 0;
done:
    free_data(&data);
    return rc;
}
