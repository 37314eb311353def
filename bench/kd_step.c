/* kd_step — libdel knowledge-distillation step speed, in img/s.
 *
 *   kd_step [-t THREADS] [--batch N] [--warmup W] [--blocks B]
 *           [--block-steps S] [--max-seconds S]
 *
 * train_kd_fmnist_cnn: one step of R6's distillation (SPEC 1.3) with a live
 * teacher: the fmnist-cnn teacher's evaluation-mode forward on the batch,
 * then the "mlp" student's zero_grad, training-mode forward, loss
 * 0.9 * T^2 KL(softmax_T(teacher) || softmax_T(student)) + 0.1 * CE
 * (T = 4, every image labeled), backward and SGD step (lr 0.05, momentum
 * 0.9, Nesterov, weight decay 5e-4), batch 128 — the work of a
 * del_trainer_new_distill step, written with the public blocks as
 * bench/throughput.c writes its training step. Input is seeded random
 * N(0,1) with random labels. W untimed steps, then B timed blocks of S
 * steps; the reported rate is the median over blocks, stopping after 3
 * blocks once S seconds (default 10) have passed.
 *
 * stdout: one JSON line (bench/report.py throughput merges it with
 * bench/kd_step_torch.py's); details on stderr; exit 1 on any libdel error.
 * Public API only, as any user program. */
#include <del.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BLOCKS 256
#define TEMPERATURE 4.0f
#define ALPHA 0.9f

#define TRY(expr)                                                                 \
    do {                                                                          \
        del_status st_ = (expr);                                                  \
        if (st_ != DEL_OK) {                                                      \
            fprintf(stderr, "kd_step: %s failed: %s (%s)\n", #expr,               \
                    del_last_error(), del_status_str(st_));                       \
            goto cleanup;                                                         \
        }                                                                         \
    } while (0)

typedef struct kd_state {
    del_model *teacher, *student;
    del_optimizer *opt;
    del_tensor *x, *y, *grad;
} kd_state;

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

static void state_free(kd_state *s)
{
    del_tensor_free(s->grad);
    del_tensor_free(s->y);
    del_tensor_free(s->x);
    del_optimizer_free(s->opt);
    del_model_free(s->student);
    del_model_free(s->teacher);
    memset(s, 0, sizeof *s);
}

static int state_new(kd_state *s, int batch, uint64_t seed)
{
    int64_t xshape[4] = {batch, 1, 28, 28}, yshape[1] = {batch}, gshape[2] = {batch, 10};
    uint64_t rng = seed;

    memset(s, 0, sizeof *s);
    TRY(del_model_preset(&s->teacher, "fmnist-cnn", 1, 28, 28, 10));
    TRY(del_model_init(s->teacher, seed));
    TRY(del_model_set_training(s->teacher, 0));
    TRY(del_model_preset(&s->student, "mlp", 1, 28, 28, 10));
    TRY(del_model_init(s->student, seed + 1));
    TRY(del_model_set_training(s->student, 1));
    TRY(del_optimizer_new_sgd(&s->opt, s->student, 0.05f, 0.9f, 5e-4f, 1));
    TRY(del_tensor_new(&s->x, DEL_DTYPE_F32, 4, xshape));
    fill_normal(del_tensor_data(s->x), del_tensor_numel(s->x), &rng);
    TRY(del_tensor_new(&s->y, DEL_DTYPE_I32, 1, yshape));
    TRY(del_tensor_new(&s->grad, DEL_DTYPE_F32, 2, gshape));
    int32_t *labels = del_tensor_data(s->y);
    for (int i = 0; i < batch; i++) labels[i] = (int32_t)(splitmix64(&rng) % 10);
    return 0;
cleanup:
    state_free(s);
    return 1;
}

static int kd_step(kd_state *s)
{
    float kd = 0.0f, ce = 0.0f;
    TRY(del_model_forward(s->teacher, s->x));
    TRY(del_model_zero_grad(s->student));
    TRY(del_model_forward(s->student, s->x));
    memset(del_tensor_data(s->grad), 0, (size_t)del_tensor_numel(s->grad) * sizeof(float));
    TRY(del_loss_distill_acc(del_model_output(s->student), del_model_output(s->teacher), NULL, TEMPERATURE,
                             DEL_DISTILL_DEFAULT, ALPHA, &kd, s->grad));
    TRY(del_loss_cross_entropy_acc(del_model_output(s->student), s->y, NULL, 0.0f, 1.0f - ALPHA, &ce, s->grad));
    TRY(del_model_backward(s->student, s->grad));
    TRY(del_optimizer_step(s->opt));
    if (!isfinite(kd + ce)) {
        fprintf(stderr, "kd_step: loss is %g\n", (double)(kd + ce));
        return 1;
    }
    return 0;
cleanup:
    return 1;
}

static int parse_int(const char *flag, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || *text == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "kd_step: %s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, text ? text : "");
        return 1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 1, batch = 128, warmup = 3, blocks = 5, block_steps = 4, max_seconds = 10;
    double rates[MAX_BLOCKS], sorted[MAX_BLOCKS];
    kd_state s;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad;
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) bad = parse_int(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--batch")) bad = parse_int(a, v, 1, 65536, &batch);
        else if (!strcmp(a, "--warmup")) bad = parse_int(a, v, 0, 1000000, &warmup);
        else if (!strcmp(a, "--blocks")) bad = parse_int(a, v, 1, MAX_BLOCKS, &blocks);
        else if (!strcmp(a, "--block-steps")) bad = parse_int(a, v, 1, 1000000, &block_steps);
        else if (!strcmp(a, "--max-seconds")) bad = parse_int(a, v, 1, 100000, &max_seconds);
        else {
            fprintf(stderr, "usage: kd_step [-t THREADS] [--batch N] [--warmup W] [--blocks B] [--block-steps S] "
                            "[--max-seconds S]\n");
            return 2;
        }
        if (bad) return 2;
        i++;
    }
    if (del_set_num_threads(threads) != DEL_OK) {
        fprintf(stderr, "kd_step: %s\n", del_last_error());
        return 2;
    }
    if (state_new(&s, batch, 0)) return 1;
    int rc = 1, n = 0;
    for (int i = 0; i < warmup; i++)
        if (kd_step(&s)) goto done;
    double start = now_s();
    while (n < blocks && (n < 3 || now_s() - start < max_seconds)) {
        double t0 = now_s();
        for (int i = 0; i < block_steps; i++)
            if (kd_step(&s)) goto done;
        rates[n++] = (double)batch * block_steps / (now_s() - t0);
    }
    memcpy(sorted, rates, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    double med = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    fprintf(stderr, "libdel train_kd_fmnist_cnn threads=%d batch=%d: median %.1f img/s, blocks", threads, batch, med);
    for (int b = 0; b < n; b++) fprintf(stderr, " %.1f", rates[b]);
    fprintf(stderr, "\n");
    printf("{\"bench\": \"train_kd_fmnist_cnn\", \"threads\": %d, \"unit\": \"img/s\", \"libdel\": %.1f, "
           "\"batch\": %d, \"params\": %lld}\n",
           threads, med, batch, (long long)(del_model_num_params(s.teacher) + del_model_num_params(s.student)));
    fflush(stdout);
    rc = 0;
done:
    state_free(&s);
    return rc;
}
