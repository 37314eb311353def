/* Elementwise kernels: relu and the linear layer's bias helpers.
 * Every output element is computed by exactly one task from the same
 * inputs, so any split over threads gives the same bits. */
/* The build's -O2 leaves loops with a run-time trip count scalar (gcc's
 * "very cheap" vectoriser cost model); these kernels need the vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend/cpu/cpu.h"
#include "core/threads.h"

/* Elements per task: large enough to amortise a wake-up. */
#define ELT_BLOCK 16384

typedef struct relu_job {
    const float *x, *y, *dy;
    float *out;
    int64_t count;
} relu_job;

/* The loads are unconditional and the select is a blend: a branch on the
 * sign of dy-sized data mispredicts half the time and keeps the loop
 * scalar. x == y (and dx == dy) is allowed, so no restrict: gcc versions
 * the loop on overlap, and an exact alias runs the scalar copy. */
static void relu_fwd_blocks(void *ctx, int64_t begin, int64_t end)
{
    const relu_job *j = ctx;
    int64_t lo = begin * ELT_BLOCK, hi = end * ELT_BLOCK < j->count ? end * ELT_BLOCK : j->count;
    const float *x = j->x;
    float *y = j->out;
    for (int64_t i = lo; i < hi; i++) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

static void relu_bwd_blocks(void *ctx, int64_t begin, int64_t end)
{
    const relu_job *j = ctx;
    int64_t lo = begin * ELT_BLOCK, hi = end * ELT_BLOCK < j->count ? end * ELT_BLOCK : j->count;
    const float *y = j->y, *dy = j->dy;
    float *dx = j->out;
    for (int64_t i = lo; i < hi; i++) {
        float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void del_cpu_relu_forward(int64_t count, const float *x, float *y)
{
    relu_job j = {.x = x, .out = y, .count = count};
    del_parallel_for((count + ELT_BLOCK - 1) / ELT_BLOCK, relu_fwd_blocks, &j);
}

void del_cpu_relu_backward(int64_t count, const float *y, const float *dy, float *dx)
{
    relu_job j = {.y = y, .dy = dy, .out = dx, .count = count};
    del_parallel_for((count + ELT_BLOCK - 1) / ELT_BLOCK, relu_bwd_blocks, &j);
}

void del_cpu_add_bias_rows(int rows, int cols, const float *bias, float *y)
{
    for (int r = 0; r < rows; r++) {
        float *row = y + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            row[j] += bias[j];
    }
}

/* Row by row, so the summation order per column is fixed (r ascending)
 * and the inner loop vectorises across columns. */
void del_cpu_sum_rows(int rows, int cols, const float *x, float *out)
{
    if (rows <= 0)
        return;
    for (int j = 0; j < cols; j++) {
        float acc = 0.0f;
        for (int r = 0; r < rows; r++)
            acc += x[(size_t)r * cols + j];
        out[j] += acc;
    }
}
