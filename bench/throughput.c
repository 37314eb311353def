/* throughput — libdel training and inference speed, in img/s.
 *
 *   throughput [-t THREADS] [--model fmnist-cnn|resnet20]
 *              [--mode train|infer|both|steps|predict] [--steps N] [--warmup W]
 *              [--blocks B] [--block-steps S] [--train-batch N] [--infer-batch N]
 *              [--max-seconds S] [--fmnist-dir DIR]
 *
 * Models: fmnist-cnn on 1x28x28 (default) or resnet20 on 3x32x32, 10
 * classes; the benchmark names end in the model (train_fmnist_cnn,
 * infer_resnet20, ...). Training: one step = zero_grad, forward (training mode), softmax
 * cross-entropy, backward, SGD step (lr 0.05, momentum 0.9, Nesterov, weight
 * decay 5e-4), batch 128. Inference: evaluation-mode forward, batch 512.
 * Input is seeded random N(0,1) with random labels, so the numbers do not
 * depend on the dataset. W untimed steps, then B timed blocks of S steps;
 * the reported rate is the median over blocks (robust to a neighbour's
 * compile job stealing a core for a moment). Timing stops early, after at
 * least 3 blocks, once a measurement has taken S seconds (default 10).
 *
 * stdout: one JSON line per measurement; details on stderr; exit 1 on any
 * libdel error. Public API only, as any user program.
 *
 * --mode steps runs N training steps (--steps, default 20) untimed and
 * prints nothing on stdout: a process for bench/peak_rss.py to measure.
 *
 * --mode predict (fmnist-cnn only): predict_fmnist_cnn, del_model_predict
 * over the 60,000 Fashion-MNIST training images (uint8, normalised with
 * mean 0.2860, std 0.3530 by the call) to softmax probabilities, in
 * img/s. One untimed call on the first 1,024 images, then up to B blocks
 * (default 3 in this mode) of one call over the whole set each, stopping
 * after the block that passes S seconds; the median block is reported. */
#include <del.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BLOCKS 256

/* A preset and the input it is benchmarked on; suffix names the JSON benches. */
typedef struct model_choice {
    const char *preset, *suffix;
    int channels, height, width;
} model_choice;

static const model_choice MODELS[] = {
    {"fmnist-cnn", "fmnist_cnn", 1, 28, 28},
    {"resnet20", "resnet20", 3, 32, 32},
};
#define N_MODELS ((int)(sizeof MODELS / sizeof MODELS[0]))

typedef struct options {
    const model_choice *model;
    int steps, do_steps;
    int threads, warmup, blocks, block_steps, train_batch, infer_batch, max_seconds;
    int do_train, do_infer, do_predict;
    const char *fmnist_dir;
    uint64_t seed;
} options;

typedef struct bench_state {
    del_model *model;
    del_optimizer *opt;
    del_tensor *x, *y, *grad;
} bench_state;

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "throughput: %s failed: %s (%s)\n", #expr,            \
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

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
    return ((double)(splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
}

/* Box-Muller: the benchmark only needs roughly normal, seeded input. */
static void fill_normal(float *x, int64_t n, uint64_t *state)
{
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(state))), t = 6.283185307179586 * uniform01(state);
        x[i] = (float)(r * cos(t));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(t));
    }
}

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

static void state_free(bench_state *s)
{
    del_tensor_free(s->grad);
    del_tensor_free(s->y);
    del_tensor_free(s->x);
    del_optimizer_free(s->opt);
    del_model_free(s->model);
    memset(s, 0, sizeof *s);
}

/* A fresh model with a seeded batch; with_training adds labels, a
 * gradient buffer and the optimizer. Returns 0 on success. */
static int state_new(bench_state *s, const model_choice *mc, int batch, int with_training, uint64_t seed)
{
    int64_t xshape[4] = {batch, mc->channels, mc->height, mc->width}, yshape[1] = {batch},
            gshape[2] = {batch, 10};
    uint64_t rng = seed;

    memset(s, 0, sizeof *s);
    TRY(del_model_preset(&s->model, mc->preset, mc->channels, mc->height, mc->width, 10));
    TRY(del_model_init(s->model, seed));
    TRY(del_tensor_new(&s->x, DEL_DTYPE_F32, 4, xshape));
    fill_normal(del_tensor_data(s->x), del_tensor_numel(s->x), &rng);
    if (with_training) {
        TRY(del_tensor_new(&s->y, DEL_DTYPE_I32, 1, yshape));
        TRY(del_tensor_new(&s->grad, DEL_DTYPE_F32, 2, gshape));
        int32_t *labels = del_tensor_data(s->y);
        for (int i = 0; i < batch; i++) labels[i] = (int32_t)(splitmix64(&rng) % 10);
        TRY(del_optimizer_new_sgd(&s->opt, s->model, 0.05f, 0.9f, 5e-4f, 1));
        TRY(del_model_set_training(s->model, 1));
    } else {
        TRY(del_model_set_training(s->model, 0));
    }
    return 0;
cleanup:
    state_free(s);
    return 1;
}

static int train_step(bench_state *s)
{
    float loss;
    TRY(del_model_zero_grad(s->model));
    TRY(del_model_forward(s->model, s->x));
    TRY(del_loss_cross_entropy(del_model_output(s->model), s->y, &loss, s->grad));
    TRY(del_model_backward(s->model, s->grad));
    TRY(del_optimizer_step(s->opt));
    if (!isfinite(loss)) {
        fprintf(stderr, "throughput: training loss is %g\n", loss);
        return 1;
    }
    return 0;
cleanup:
    return 1;
}

static int infer_step(bench_state *s)
{
    TRY(del_model_forward(s->model, s->x));
    return 0;
cleanup:
    return 1;
}

static int measure(const char *kind, int training, int batch, const options *o)
{
    bench_state s;
    double rates[MAX_BLOCKS], sorted[MAX_BLOCKS];
    int (*step)(bench_state *) = training ? train_step : infer_step;
    char name[64];
    int rc = 1;

    snprintf(name, sizeof name, "%s_%s", kind, o->model->suffix);
    if (state_new(&s, o->model, batch, training, o->seed)) return 1;
    for (int i = 0; i < o->warmup; i++)
        if (step(&s)) goto done;
    int n = 0;
    double start = now_s();
    /* A slow build stops early (after 3 blocks) so that make bench stays short. */
    while (n < o->blocks && (n < 3 || now_s() - start < o->max_seconds)) {
        double t0 = now_s();
        for (int i = 0; i < o->block_steps; i++)
            if (step(&s)) goto done;
        rates[n++] = (double)batch * o->block_steps / (now_s() - t0);
    }
    memcpy(sorted, rates, sizeof(double) * (size_t)n);
    double med = median(sorted, n);
    fprintf(stderr, "libdel %s threads=%d batch=%d: median %.1f img/s, blocks", name, o->threads, batch, med);
    for (int b = 0; b < n; b++) fprintf(stderr, " %.1f", rates[b]);
    fprintf(stderr, "\n");
    printf("{\"bench\": \"%s\", \"threads\": %d, \"unit\": \"img/s\", \"libdel\": %.1f, \"batch\": %d, "
           "\"params\": %lld}\n",
           name, o->threads, med, batch, (long long)del_model_num_params(s.model));
    fflush(stdout);
    rc = 0;
done:
    state_free(&s);
    return rc;
}

/* del_model_predict over the Fashion-MNIST training set: img/s of the
 * whole call, dataset to soft labels. */
static int measure_predict(const options *o)
{
    static const float mean[1] = {0.2860f}, std_[1] = {0.3530f};
    double rates[MAX_BLOCKS];
    del_dataset *ds = NULL, *head = NULL;
    del_model *model = NULL;
    del_tensor *y = NULL;
    int64_t first[1024];
    int rc = 1;

    TRY(del_dataset_load_fashion_mnist(&ds, o->fmnist_dir, DEL_SPLIT_TRAIN));
    TRY(del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(model, o->seed));
    for (int i = 0; i < 1024; i++) first[i] = i;
    TRY(del_dataset_subset(&head, ds, first, 1024));
    TRY(del_model_predict(&y, model, NULL, head, mean, std_, 1.0f, 1));
    del_tensor_free(y);
    y = NULL;
    const int64_t n = del_dataset_size(ds);
    int blocks = 0;
    double start = now_s();
    while (blocks < o->blocks && (blocks < 1 || now_s() - start < o->max_seconds)) {
        double t0 = now_s();
        TRY(del_model_predict(&y, model, NULL, ds, mean, std_, 1.0f, 1));
        rates[blocks++] = (double)n / (now_s() - t0);
        del_tensor_free(y);
        y = NULL;
    }
    fprintf(stderr, "libdel predict_fmnist_cnn threads=%d batch=%d images=%lld: blocks", o->threads,
            del_model_predict_batch(model), (long long)n);
    for (int b = 0; b < blocks; b++) fprintf(stderr, " %.1f", rates[b]);
    fprintf(stderr, "\n");
    printf("{\"bench\": \"predict_fmnist_cnn\", \"threads\": %d, \"unit\": \"img/s\", \"libdel\": %.1f, "
           "\"batch\": %d, \"images\": %lld, \"params\": %lld}\n",
           o->threads, median(rates, blocks), del_model_predict_batch(model), (long long)n,
           (long long)del_model_num_params(model));
    fflush(stdout);
    rc = 0;
cleanup:
    del_tensor_free(y);
    del_model_free(model);
    del_dataset_free(head);
    del_dataset_free(ds);
    return rc;
}

/* Training steps only, no timing: the process bench/peak_rss.py measures. */
static int run_steps(const options *o)
{
    bench_state s;
    int rc = 1;

    if (state_new(&s, o->model, o->train_batch, 1, o->seed)) return 1;
    for (int i = 0; i < o->steps; i++)
        if (train_step(&s)) goto done;
    fprintf(stderr, "libdel %s: %d training steps at batch %d, %lld parameters\n", o->model->preset,
            o->steps, o->train_batch, (long long)del_model_num_params(s.model));
    rc = 0;
done:
    state_free(&s);
    return rc;
}

static int parse_int(const char *flag, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "throughput: %s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, text);
        return 1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.model = &MODELS[0], .steps = 20, .threads = 1, .warmup = 3, .blocks = 5, .block_steps = 4,
                   .train_batch = 128, .infer_batch = 512, .max_seconds = 10,
                   .do_train = 1, .do_infer = 1, .seed = 42};
    int blocks_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!v) bad = 1;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) bad = parse_int(a, v, 1, 256, &o->threads);
        else if (!strcmp(a, "--warmup")) bad = parse_int(a, v, 0, 1000, &o->warmup);
        else if (!strcmp(a, "--blocks")) bad = parse_int(a, v, 1, MAX_BLOCKS, &o->blocks), blocks_given = 1;
        else if (!strcmp(a, "--fmnist-dir")) o->fmnist_dir = v;
        else if (!strcmp(a, "--block-steps")) bad = parse_int(a, v, 1, 10000, &o->block_steps);
        else if (!strcmp(a, "--train-batch")) bad = parse_int(a, v, 1, 65536, &o->train_batch);
        else if (!strcmp(a, "--infer-batch")) bad = parse_int(a, v, 1, 65536, &o->infer_batch);
        else if (!strcmp(a, "--max-seconds")) bad = parse_int(a, v, 1, 3600, &o->max_seconds);
        else if (!strcmp(a, "--steps")) bad = parse_int(a, v, 1, 1000000, &o->steps);
        else if (!strcmp(a, "--mode")) {
            o->do_steps = !strcmp(v, "steps");
            o->do_predict = !strcmp(v, "predict");
            o->do_train = !strcmp(v, "train") || !strcmp(v, "both");
            o->do_infer = !strcmp(v, "infer") || !strcmp(v, "both");
            if (!o->do_train && !o->do_infer && !o->do_steps && !o->do_predict) {
                fprintf(stderr, "throughput: --mode must be train, infer, both, steps or predict, got '%s'\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--model")) {
            o->model = NULL;
            for (int m = 0; m < N_MODELS; m++)
                if (!strcmp(v, MODELS[m].preset)) o->model = &MODELS[m];
            if (!o->model) {
                fprintf(stderr, "throughput: --model must be fmnist-cnn or resnet20, got '%s'\n", v);
                bad = 1;
            }
        } else bad = 1;
        if (bad) {
            fprintf(stderr, "usage: throughput [-t THREADS] [--model fmnist-cnn|resnet20] "
                            "[--mode train|infer|both|steps|predict] [--steps N] [--warmup W] "
                            "[--blocks B] [--block-steps S] [--train-batch N] [--infer-batch N] "
                            "[--max-seconds S] [--fmnist-dir DIR]\n");
            return 1;
        }
        i++;
    }
    if (o->do_predict && o->model != &MODELS[0]) {
        fprintf(stderr, "throughput: --mode predict runs fmnist-cnn only\n");
        return 1;
    }
    if (o->do_predict && !blocks_given) o->blocks = 3;
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o)) return 2;
    if (del_set_num_threads(o.threads) != DEL_OK) {
        fprintf(stderr, "throughput: %s\n", del_last_error());
        return 1;
    }
    fprintf(stderr, "libdel %s, %d thread(s)\n", del_version_string(), del_get_num_threads());
    if (o.do_steps) return run_steps(&o);
    if (o.do_predict) return measure_predict(&o);
    if (o.do_train && measure("train", 1, o.train_batch, &o)) return 1;
    if (o.do_infer && measure("infer", 0, o.infer_batch, &o)) return 1;
    return 0;
}
