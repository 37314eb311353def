/* augment — libdel augmentation speed on single images, in img/s.
 *
 *   augment [-t THREADS] [--images N] [--blocks B] [--block-seconds S]
 *           [--max-seconds S] [--seed SEED] [BENCH...]
 *   augment --list
 *
 * Benches (RGB uint8 images, H = W = size):
 *   randaugment_32, randaugment_224   RandAugment(2, 9), nearest, fill 0
 *   cropflip_32, cropflip_224         random crop back to size from the image
 *                                     zero-padded by size/8 (4 and 28 pixels),
 *                                     then horizontal flip with p = 0.5
 * Each bench runs del_augment_image over N (default 256) distinct seeded
 * random images into one output tensor; a pass over the N images uses the
 * pass number as the epoch, so every pass draws fresh ops. After one
 * untimed pass, a block is as many passes as fill S seconds (default 0.25);
 * the reported rate is the median over B (default 7) blocks, stopping after
 * 3 blocks once a bench has taken --max-seconds (default 10).
 * bench/augment_torch.py times torchvision on the same images.
 *
 * One thread by default (del_set_num_threads(1)): the single-image call is
 * what a data-loading worker runs. stdout: one JSON line per bench; details
 * on stderr; exit 1 on any libdel error. Public API only. */
#include <del.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BLOCKS 256

typedef struct options {
    int threads, images, blocks;
    double block_seconds, max_seconds;
    uint64_t seed;
} options;

typedef struct bench {
    const char *name;
    int size;
    /* Adds the bench's steps to an empty pipeline. */
    del_status (*build)(del_augment *aug, int size);
} bench;

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "augment: %s failed: %s (%s)\n", #expr,               \
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

/* Byte i of the image set is the top byte of splitmix64's output for
 * counter i: a counter-based stream that augment_torch.py reproduces with
 * numpy, so both sides time the very same pixels. */
static uint8_t pixel_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint8_t)((z ^ (z >> 31)) >> 56);
}

static del_status build_randaugment(del_augment *aug, int size)
{
    (void)size;
    return del_augment_add_randaugment(aug, 2, 9);
}

static del_status build_cropflip(del_augment *aug, int size)
{
    del_status st = del_augment_add_random_crop(aug, size, size, size / 8, 0);
    return st != DEL_OK ? st : del_augment_add_flip_h(aug, 0.5f);
}

static const bench BENCHES[] = {
    {"randaugment_32", 32, build_randaugment},
    {"randaugment_224", 224, build_randaugment},
    {"cropflip_32", 32, build_cropflip},
    {"cropflip_224", 224, build_cropflip},
};
#define N_BENCHES (int)(sizeof BENCHES / sizeof BENCHES[0])

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One pass: every image once, with the stream of (seed, epoch, index). */
static int run_pass(del_augment *aug, del_tensor *dst, del_tensor *const *src, int n, uint64_t epoch)
{
    for (int i = 0; i < n; i++) TRY(del_augment_image(aug, dst, src[i], epoch, i));
    return 0;
cleanup:
    return 1;
}

static int measure(const bench *b, const options *o)
{
    const int64_t shape[3] = {b->size, b->size, 3};
    const int64_t image_bytes = (int64_t)b->size * b->size * 3;
    del_tensor **src = calloc((size_t)o->images, sizeof *src);
    del_tensor *dst = NULL;
    del_augment *aug = NULL;
    double rates[MAX_BLOCKS], sorted[MAX_BLOCKS];
    uint64_t epoch = 0;
    int n = 0, rc = 1;

    if (!src) {
        fprintf(stderr, "augment: out of memory\n");
        return 1;
    }
    for (int i = 0; i < o->images; i++) {
        TRY(del_tensor_new(&src[i], DEL_DTYPE_U8, 3, shape));
        uint8_t *p = del_tensor_data(src[i]);
        for (int64_t k = 0; k < image_bytes; k++) p[k] = pixel_at(o->seed, (uint64_t)(i * image_bytes + k));
    }
    TRY(del_tensor_new(&dst, DEL_DTYPE_U8, 3, shape));
    TRY(del_augment_new(&aug));
    TRY(del_augment_set_seed(aug, o->seed));
    TRY(b->build(aug, b->size));

    /* The untimed pass also sizes a block, so that a block of the fast
     * 32x32 benches is not a few milliseconds of timer noise. */
    double t0 = now_s();
    if (run_pass(aug, dst, src, o->images, epoch++)) goto cleanup;
    double pass_s = now_s() - t0;
    int passes = pass_s >= o->block_seconds ? 1 : (int)(o->block_seconds / (pass_s > 1e-6 ? pass_s : 1e-6)) + 1;

    double start = now_s();
    while (n < o->blocks && (n < 3 || now_s() - start < o->max_seconds)) {
        t0 = now_s();
        for (int p = 0; p < passes; p++)
            if (run_pass(aug, dst, src, o->images, epoch++)) goto cleanup;
        rates[n++] = (double)o->images * passes / (now_s() - t0);
    }
    memcpy(sorted, rates, sizeof(double) * (size_t)n);
    double med = median(sorted, n);
    fprintf(stderr, "libdel %s threads=%d images=%d passes/block=%d: median %.1f img/s, blocks", b->name,
            o->threads, o->images, passes, med);
    for (int k = 0; k < n; k++) fprintf(stderr, " %.1f", rates[k]);
    fprintf(stderr, "\n");
    printf("{\"bench\": \"%s\", \"threads\": %d, \"unit\": \"img/s\", \"libdel\": %.1f, \"size\": %d, "
           "\"images\": %d}\n",
           b->name, o->threads, med, b->size, o->images);
    fflush(stdout);
    rc = 0;
cleanup:
    del_augment_free(aug);
    del_tensor_free(dst);
    for (int i = 0; i < o->images; i++) del_tensor_free(src[i]);
    free(src);
    return rc;
}

static int parse_int(const char *flag, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "augment: %s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, text);
        return 1;
    }
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *flag, const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(v > 0.0 && v <= 3600.0)) {
        fprintf(stderr, "augment: %s must be a number of seconds in (0, 3600], got '%s'\n", flag, text);
        return 1;
    }
    *out = v;
    return 0;
}

static const bench *find_bench(const char *name)
{
    for (int i = 0; i < N_BENCHES; i++)
        if (!strcmp(BENCHES[i].name, name)) return &BENCHES[i];
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: augment [-t THREADS] [--images N] [--blocks B] [--block-seconds S]\n"
                    "               [--max-seconds S] [--seed SEED] [BENCH...]\n"
                    "       augment --list\nbenches:");
    for (int i = 0; i < N_BENCHES; i++) fprintf(stderr, " %s", BENCHES[i].name);
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    options o = {1, 256, 7, 0.25, 10.0, 0};
    const bench *todo[64];
    int n_todo = 0, seed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--list")) {
            for (int k = 0; k < N_BENCHES; k++) printf("%s\n", BENCHES[k].name);
            return 0;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v) {
            bad = parse_int(a, v, 1, 256, &o.threads);
        } else if (!strcmp(a, "--images") && v) {
            bad = parse_int(a, v, 1, 100000, &o.images);
        } else if (!strcmp(a, "--blocks") && v) {
            bad = parse_int(a, v, 1, MAX_BLOCKS, &o.blocks);
        } else if (!strcmp(a, "--block-seconds") && v) {
            bad = parse_seconds(a, v, &o.block_seconds);
        } else if (!strcmp(a, "--max-seconds") && v) {
            bad = parse_seconds(a, v, &o.max_seconds);
        } else if (!strcmp(a, "--seed") && v) {
            bad = parse_int(a, v, 0, 1000000000, &seed);
            o.seed = (uint64_t)seed;
        } else if (a[0] != '-' && find_bench(a) && n_todo < (int)(sizeof todo / sizeof todo[0])) {
            todo[n_todo++] = find_bench(a);
            continue;
        } else {
            if (a[0] != '-' && !find_bench(a)) fprintf(stderr, "augment: unknown bench '%s'\n", a);
            usage();
            return 2;
        }
        if (bad) return 2;
        i++;
    }
    if (n_todo == 0)
        for (int k = 0; k < N_BENCHES; k++) todo[n_todo++] = &BENCHES[k];
    if (del_set_num_threads(o.threads) != DEL_OK) {
        fprintf(stderr, "augment: %s\n", del_last_error());
        return 2;
    }
    fprintf(stderr, "augment: libdel %s, %d thread(s)\n", del_version_string(), del_get_num_threads());
    for (int k = 0; k < n_todo; k++)
        if (measure(todo[k], &o)) return 1;
    return 0;
}
