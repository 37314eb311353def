/* RandAugment policy search on FMNIST-1k (`make randaugment-search`):
 * the paper's grid search over (N, M) with fmnist-cnn, each cell trained
 * on the 1,000 labeled images minus a validation split of 20 per class
 * (std aug + RandAugment(N, M)) and scored on that split. Prints progress
 * with an ETA, the table and the best policy.
 *
 *   randaugment_search [--n 1,2,3] [--m 5,9,13] [--steps N] [--val N]
 *                      [--threads N] [--data DIR] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <del.h>

#define PER_CLASS 100 /* FMNIST-1k */
#define MAX_VALUES 64

typedef struct options {
    int n[MAX_VALUES], m[MAX_VALUES], n_count, m_count;
    long long steps, val;
    int threads;
    const char *data_dir;
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: randaugment_search [--n 1,2,3] [--m 5,9,13] [--steps N] [--val N]\n"
               "                          [--threads N] [--data DIR]\n"
               "  --n LIST       values of N, 0..14 (default 1,2,3)\n"
               "  --m LIST       values of M, 0..30 (default 5,9,13)\n"
               "  --steps N      training steps per cell (default 1000)\n"
               "  --val N        validation images per class (default 20)\n"
               "  --threads N    compute threads (default: all CPUs)\n"
               "  --data DIR     Fashion-MNIST directory (default %s)\n",
            DEL_FASHION_MNIST_DIR);
}

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

/* A comma-separated list of integers (range checked by the library). */
static int parse_list(const char *text, int *out, int *count)
{
    if (!text || !*text)
        return -1;
    int k = 0;
    for (const char *p = text; *p;) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < -1000 || v > 1000 || k == MAX_VALUES || (*end && *end != ','))
            return -1;
        out[k++] = (int)v;
        p = *end ? end + 1 : end;
    }
    *count = k;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){{1, 2, 3}, {5, 9, 13}, 3, 3, 1000, 20, 0, NULL};
    long long v = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--n") == 0 && parse_list(val, opt->n, &opt->n_count) == 0) {
        } else if (strcmp(arg, "--m") == 0 && parse_list(val, opt->m, &opt->m_count) == 0) {
        } else if (strcmp(arg, "--steps") == 0 && parse_count(val, 100000000, &opt->steps) == 0) {
        } else if (strcmp(arg, "--val") == 0 && parse_count(val, PER_CLASS - 1, &opt->val) == 0) {
        } else if (strcmp(arg, "--threads") == 0 && parse_count(val, 256, &v) == 0) {
            opt->threads = (int)v;
        } else if (strcmp(arg, "--data") == 0 && val && val[0]) {
            opt->data_dir = val;
        } else {
            fprintf(stderr, "randaugment_search: bad option or value: %s%s%s\n", arg, val ? " " : "", val ? val : "");
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int print_progress(int64_t step, int64_t total, float loss, void *user)
{
    const double t0 = *(const double *)user, elapsed = now_s() - t0;
    const double eta = step > 0 ? elapsed * (double)(total - step) / (double)step : 0.0;
    printf("  step %lld/%lld  loss %.3f  elapsed %.0f s  ETA %.0f s\n", (long long)step, (long long)total,
           (double)loss, elapsed, eta);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;
    del_dataset *train = NULL, *labeled = NULL;
    del_model *model = NULL;
    del_policy_search *s = NULL;
    int rc = 1;
    double t0 = now_s();

    if (opt.threads > 0 && del_set_num_threads(opt.threads) != DEL_OK)
        goto fail;
    if (del_dataset_load_fashion_mnist(&train, opt.data_dir, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_split_per_class(&labeled, NULL, train, PER_CLASS) != DEL_OK ||
        del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10) != DEL_OK)
        goto fail;
    if (del_policy_search_new(&s, model, labeled) != DEL_OK ||
        del_policy_search_set_grid(s, opt.n, opt.n_count, opt.m, opt.m_count) != DEL_OK ||
        del_policy_search_set_validation(s, (int)opt.val) != DEL_OK ||
        del_policy_search_set_steps(s, opt.steps) != DEL_OK ||
        del_policy_search_set_progress(s, print_progress, opt.steps >= 500 ? 250 : 50, &t0) != DEL_OK)
        goto fail;
    printf("RandAugment search: %d cells of %lld steps, fmnist-cnn on %lld labels minus %lld per class for "
           "validation\n",
           del_policy_search_num_cells(s), opt.steps, (long long)del_dataset_size(labeled), opt.val);
    t0 = now_s();
    if (del_policy_search_run(s) != DEL_OK)
        goto fail;
    printf("\n|  N |  M | validation accuracy |\n|---:|---:|---:|\n");
    for (int i = 0; i < del_policy_search_num_cells(s); i++) {
        int n = 0, m = 0;
        double acc = 0.0;
        if (del_policy_search_cell(s, i, &n, &m, &acc) != DEL_OK)
            goto fail;
        printf("| %2d | %2d | %6.2f%% |\n", n, m, 100.0 * acc);
    }
    int bn = 0, bm = 0;
    double bacc = 0.0;
    if (del_policy_search_best(s, &bn, &bm, &bacc) != DEL_OK)
        goto fail;
    if (bn == 0)
        printf("\nbest: no RandAugment (N 0), %.2f%% on the validation split (%.0f s)\n", 100.0 * bacc, now_s() - t0);
    else
        printf("\nbest: RandAugment(%d, %d), %.2f%% on the validation split (%.0f s)\n", bn, bm, 100.0 * bacc,
               now_s() - t0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "randaugment_search: %s\n", del_last_error());
done:
    del_policy_search_free(s);
    del_model_free(model);
    del_dataset_free(labeled);
    del_dataset_free(train);
    return rc;
}
