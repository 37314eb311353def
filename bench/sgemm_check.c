/* sgemm_check — is OpenBLAS's cblas_sgemm right on this machine, and how fast?
 *
 * libdel's convolutions and linear layers are im2col + cblas_sgemm, so a
 * wrong kernel (e.g. a core type picked by OPENBLAS_CORETYPE that does not
 * match the CPU) would silently corrupt every result, and a slow one caps
 * every benchmark. This program first compares sgemm against a plain
 * double-precision triple loop on several shapes (all four transpose
 * combinations, odd sizes, leading dimensions larger than the matrix,
 * alpha/beta), then times a large square and the GEMM shapes of fmnist-cnn.
 *
 *   sgemm_check [-t THREADS] [-n SIZE] [--check-only]
 *
 * stdout: one JSON line {"bench": "sgemm_peak", ...}; details on stderr.
 * Exit status 1 if any result is outside the error bound. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct gemm_shape {
    const char *what;
    int trans_a, trans_b;
    int m, n, k;
} gemm_shape;

/* Shapes for correctness: each transpose pair, sizes that are not multiples
 * of any kernel's register block, and degenerate-ish k. */
static const gemm_shape CHECK_SHAPES[] = {
    {"NN odd", 0, 0, 37, 53, 29},
    {"NT odd", 0, 1, 41, 17, 66},
    {"TN odd", 1, 0, 19, 70, 33},
    {"TT odd", 1, 1, 23, 31, 45},
    {"NN k=1", 0, 0, 64, 48, 1},
    {"NN conv1-like", 0, 0, 32, 784, 9},
    {"NT fc-like", 0, 1, 128, 128, 300},
    {"TN col-grad-like", 1, 0, 288, 196, 64},
};

/* The GEMMs of one fmnist-cnn training step at batch 128 if convolutions are
 * lowered per image (weights [Cout, Cin*9] x columns [Cin*9, H*W]); the
 * batch-wide lowering has the same m and k with n 128x larger. */
static const gemm_shape CONV_SHAPES[] = {
    {"conv1 fwd    W[32,9] x col[9,784]", 0, 0, 32, 784, 9},
    {"conv2 fwd    W[32,288] x col[288,784]", 0, 0, 32, 784, 288},
    {"conv3 fwd    W[64,288] x col[288,196]", 0, 0, 64, 196, 288},
    {"conv4 fwd    W[64,576] x col[576,196]", 0, 0, 64, 196, 576},
    {"conv2 dW     dY[32,784] x col^T", 0, 1, 32, 288, 784},
    {"conv4 dW     dY[64,196] x col^T", 0, 1, 64, 576, 196},
    {"conv2 dcol   W^T x dY[32,784]", 1, 0, 288, 784, 32},
    {"conv4 dcol   W^T x dY[64,196]", 1, 0, 576, 196, 64},
    {"conv2 fwd batched (n = 128*784)", 0, 0, 32, 100352, 288},
    {"fc1 fwd      x[128,3136] x W^T", 0, 1, 128, 128, 3136},
    {"fc1 dW       dY^T x x", 1, 0, 128, 3136, 128},
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static float uniform_pm1(void)
{
    /* splitmix64: tiny, seeded, good enough for test matrices. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Element (i, j) of op(X) where X is stored row-major with leading dim ld. */
static double op_at(const float *x, int ld, int trans, int i, int j)
{
    return trans ? x[(size_t)j * ld + i] : x[(size_t)i * ld + j];
}

/* Checks C = alpha op(A) op(B) + beta C0 against a double triple loop.
 * The bound is the classical worst case for any summation order,
 * |err| <= (k + 2) * eps * (|alpha| sum |a||b| + |beta c0|), so it holds
 * for blocked/vectorised kernels, while a wrong kernel or a wrong
 * transpose/stride gives errors of the order of the values themselves. */
static int check_one(const gemm_shape *s, float alpha, float beta, int pad)
{
    int rows_a = s->trans_a ? s->k : s->m, cols_a = s->trans_a ? s->m : s->k;
    int rows_b = s->trans_b ? s->n : s->k, cols_b = s->trans_b ? s->k : s->n;
    int lda = cols_a + pad, ldb = cols_b + pad, ldc = s->n + pad;
    float *a = malloc(sizeof(float) * (size_t)rows_a * lda);
    float *b = malloc(sizeof(float) * (size_t)rows_b * ldb);
    float *c = malloc(sizeof(float) * (size_t)s->m * ldc);
    float *c0 = malloc(sizeof(float) * (size_t)s->m * ldc);
    int bad = 0;
    double worst = 0.0;

    if (!a || !b || !c || !c0) {
        fprintf(stderr, "sgemm_check: out of memory\n");
        bad = 1;
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)rows_a * lda; i++) a[i] = uniform_pm1();
    for (size_t i = 0; i < (size_t)rows_b * ldb; i++) b[i] = uniform_pm1();
    for (size_t i = 0; i < (size_t)s->m * ldc; i++) c[i] = c0[i] = uniform_pm1();

    cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
                s->trans_b ? CblasTrans : CblasNoTrans, s->m, s->n, s->k,
                alpha, a, lda, b, ldb, beta, c, ldc);

    for (int i = 0; i < s->m && !bad; i++) {
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= s->n) {
                /* Padding columns must not be written. */
                if (memcmp(&c[at], &c0[at], sizeof(float)) != 0) {
                    fprintf(stderr, "sgemm_check: %s wrote outside C at (%d,%d)\n", s->what, i, j);
                    bad = 1;
                    break;
                }
                continue;
            }
            double dot = 0.0, mag = 0.0;
            for (int p = 0; p < s->k; p++) {
                double t = op_at(a, lda, s->trans_a, i, p) * op_at(b, ldb, s->trans_b, p, j);
                dot += t;
                mag += fabs(t);
            }
            double ref = alpha * dot + beta * (double)c0[at];
            double bound = (s->k + 2) * (double)FLT_EPSILON *
                           (fabs(alpha) * mag + fabs(beta * (double)c0[at])) + 1e-30;
            double err = fabs((double)c[at] - ref);
            if (err / bound > worst) worst = err / bound;
            if (!(err <= bound)) {
                fprintf(stderr, "sgemm_check: %s (m=%d n=%d k=%d alpha=%g beta=%g): C[%d,%d] = %.9g, "
                        "expected %.9g (error %.3g > bound %.3g)\n", s->what, s->m, s->n, s->k,
                        alpha, beta, i, j, c[at], ref, err, bound);
                bad = 1;
                break;
            }
        }
    }
    if (!bad)
        fprintf(stderr, "  ok  %-18s m=%-4d n=%-4d k=%-4d alpha=%-4g beta=%-3g pad=%d  worst err/bound %.2e\n",
                s->what, s->m, s->n, s->k, alpha, beta, pad, worst);
cleanup:
    free(a);
    free(b);
    free(c);
    free(c0);
    return bad;
}

/* Median GFLOP/s of `reps` timed calls (after one untimed call), with the
 * repetition count scaled so that each shape takes a fraction of a second. */
static double time_gemm(const gemm_shape *s, double budget_s)
{
    int rows_a = s->trans_a ? s->k : s->m, cols_a = s->trans_a ? s->m : s->k;
    int rows_b = s->trans_b ? s->n : s->k, cols_b = s->trans_b ? s->k : s->n;
    float *a = malloc(sizeof(float) * (size_t)rows_a * cols_a);
    float *b = malloc(sizeof(float) * (size_t)rows_b * cols_b);
    float *c = malloc(sizeof(float) * (size_t)s->m * s->n);
    double flops = 2.0 * s->m * s->n * s->k, rates[64], result = -1.0;
    int reps = 0;

    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_check: out of memory\n");
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)rows_a * cols_a; i++) a[i] = uniform_pm1();
    for (size_t i = 0; i < (size_t)rows_b * cols_b; i++) b[i] = uniform_pm1();

    double t0 = now_s(), t1;
    int inner = 0;
    /* One untimed call warms caches and OpenBLAS's thread pool; then pick
     * an inner repeat so one sample lasts >= ~10 ms. */
    do {
        cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
                    s->trans_b ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f,
                    a, s->trans_a ? s->m : s->k, b, s->trans_b ? s->k : s->n, 0.0f, c, s->n);
        inner++;
        t1 = now_s();
    } while (t1 - t0 < 0.01);

    double start = now_s();
    while (reps < 64 && (reps < 5 || now_s() - start < budget_s)) {
        t0 = now_s();
        for (int r = 0; r < inner; r++)
            cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
                        s->trans_b ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f,
                        a, s->trans_a ? s->m : s->k, b, s->trans_b ? s->k : s->n, 0.0f, c, s->n);
        t1 = now_s();
        rates[reps++] = flops * inner / (t1 - t0) / 1e9;
    }
    /* Insertion sort: at most 64 samples. */
    for (int i = 1; i < reps; i++) {
        double v = rates[i];
        int j = i - 1;
        for (; j >= 0 && rates[j] > v; j--) rates[j + 1] = rates[j];
        rates[j + 1] = v;
    }
    result = reps % 2 ? rates[reps / 2] : 0.5 * (rates[reps / 2 - 1] + rates[reps / 2]);
cleanup:
    free(a);
    free(b);
    free(c);
    return result;
}

static void usage(void)
{
    fprintf(stderr, "usage: sgemm_check [-t THREADS] [-n SIZE] [--check-only]\n");
}

int main(int argc, char **argv)
{
    int threads = 1, size = 1024, check_only = 0, bad = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            size = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--check-only")) {
            check_only = 1;
        } else {
            usage();
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || size < 16 || size > 8192) {
        fprintf(stderr, "sgemm_check: -t must be in 1..256 and -n in 16..8192, got %d and %d\n", threads, size);
        return 2;
    }
    openblas_set_num_threads(threads);
    fprintf(stderr, "sgemm_check: OpenBLAS %s, core %s, %d thread(s)\n",
            openblas_get_config(), openblas_get_corename(), threads);

    size_t n_checks = sizeof CHECK_SHAPES / sizeof CHECK_SHAPES[0];
    for (size_t i = 0; i < n_checks; i++) {
        bad |= check_one(&CHECK_SHAPES[i], 1.0f, 0.0f, 0);
        bad |= check_one(&CHECK_SHAPES[i], -0.5f, 2.0f, 3);
    }
    if (bad) {
        fprintf(stderr, "sgemm_check: FAILED: cblas_sgemm gives wrong results on this machine\n");
        return 1;
    }
    fprintf(stderr, "sgemm_check: all %zu results within bounds\n", 2 * n_checks);
    if (check_only) return 0;

    gemm_shape square = {"square", 0, 0, size, size, size};
    double peak = time_gemm(&square, 1.0);
    fprintf(stderr, "  %7.1f GFLOP/s  square %dx%dx%d\n", peak, size, size, size);
    size_t n_conv = sizeof CONV_SHAPES / sizeof CONV_SHAPES[0];
    for (size_t i = 0; i < n_conv; i++) {
        const gemm_shape *s = &CONV_SHAPES[i];
        double rate = time_gemm(s, 0.3);
        fprintf(stderr, "  %7.1f GFLOP/s  %-40s m=%d n=%d k=%d\n", rate, s->what, s->m, s->n, s->k);
    }
    if (peak <= 0.0) return 1;
    printf("{\"bench\": \"sgemm_peak\", \"threads\": %d, \"unit\": \"GFLOP/s\", \"libdel\": %.1f, "
           "\"size\": %d, \"openblas_core\": \"%s\"}\n", threads, peak, size, openblas_get_corename());
    return 0;
}
