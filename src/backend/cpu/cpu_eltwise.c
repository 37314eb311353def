/* Elementwise kernels: relu, the linear layer's bias helpers, the residual join.
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
    /* + 0.0f changes nothing relu passes through (-0.0 gives +0.0
     * either way) but keeps the value in a register: on the bare load
     * gcc read x[i] twice for the SSE2 compare, 1.5x slower here */
    for (int64_t i = lo; i < hi; i++)
        y[i] = del_cpu_relu(x[i] + 0.0f);
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

/* ---- the residual join: tasks are (row, block of ELT_BLOCK columns) ---- */

typedef struct join_job {
    int64_t cols, blocks_per_row;
    const float *a, *b, *y, *dy, *scale;
    float *out, *out2;
} join_job;

static void join_range(const join_job *j, int64_t task, int64_t *row, int64_t *lo, int64_t *hi)
{
    *row = task / j->blocks_per_row;
    int64_t blk = task % j->blocks_per_row;
    *lo = *row * j->cols + blk * ELT_BLOCK;
    int64_t end = *row * j->cols + j->cols;
    *hi = *lo + ELT_BLOCK < end ? *lo + ELT_BLOCK : end;
}

static void join_fwd_tasks(void *ctx, int64_t begin, int64_t end)
{
    const join_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t r, lo, hi;
        join_range(j, t, &r, &lo, &hi);
        float m = j->scale ? j->scale[r] : 1.0f;
        const float *a = j->a, *b = j->b;
        float *y = j->out;
        for (int64_t i = lo; i < hi; i++) {
            y[i] = del_cpu_relu(m * a[i] + b[i]);
        }
    }
}

static void join_bwd_tasks(void *ctx, int64_t begin, int64_t end)
{
    const join_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t r, lo, hi;
        join_range(j, t, &r, &lo, &hi);
        const float *y = j->y, *dy = j->dy;
        float *db = j->out, *da = j->out2;
        for (int64_t i = lo; i < hi; i++) {
            float g = dy[i];
            db[i] = y[i] > 0.0f ? g : 0.0f;
        }
        if (da) {
            float m = j->scale ? j->scale[r] : 1.0f;
            for (int64_t i = lo; i < hi; i++)
                da[i] = m * db[i];
        }
    }
}

static int64_t join_tasks(int rows, int64_t cols, join_job *j)
{
    j->cols = cols;
    j->blocks_per_row = cols > 0 ? (cols + ELT_BLOCK - 1) / ELT_BLOCK : 1;
    return cols > 0 ? (int64_t)rows * j->blocks_per_row : 0;
}

void del_cpu_residual_join_forward(int rows, int64_t cols, const float *a, const float *scale, const float *b,
                                   float *y)
{
    join_job j = {.a = a, .b = b, .scale = scale, .out = y};
    del_parallel_for(join_tasks(rows, cols, &j), join_fwd_tasks, &j);
}

void del_cpu_residual_join_backward(int rows, int64_t cols, const float *y, const float *dy, const float *scale,
                                    float *db, float *da)
{
    join_job j = {.y = y, .dy = dy, .scale = scale, .out = db, .out2 = da};
    del_parallel_for(join_tasks(rows, cols, &j), join_bwd_tasks, &j);
}

/* Parallel over images, one plane at a time: the pool gives a thread the
 * images it wrote in the passes before. */
typedef struct join_bn_job {
    int c, hw;
    const float *a, *as, *ash, *scale, *b, *bs, *bsh;
    float *y;
} join_bn_job;

static void join_bn_images(void *ctx, int64_t begin, int64_t end)
{
    const join_bn_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float m = j->scale ? j->scale[i] : 1.0f;
        for (int ch = 0; ch < j->c; ch++) {
            size_t off = ((size_t)i * j->c + ch) * j->hw;
            const float *a = j->a + off, *b = j->b + off;
            float *y = j->y + off;
            float as = j->as[ch], ash = j->ash[ch];
            if (j->bs) {
                float bs = j->bs[ch], bsh = j->bsh[ch];
                for (int k = 0; k < j->hw; k++) {
                    float t = a[k] * as + ash, u = b[k] * bs + bsh;
                    float v = m * t + u;
                    y[k] = del_cpu_relu(v);
                }
            } else {
                for (int k = 0; k < j->hw; k++) {
                    float t = a[k] * as + ash;
                    float v = m * t + b[k];
                    y[k] = del_cpu_relu(v);
                }
            }
        }
    }
}

void del_cpu_residual_join_forward_bn(int n, int c, int hw, const float *a, const float *a_scale,
                                      const float *a_shift, const float *scale, const float *b,
                                      const float *b_scale, const float *b_shift, float *y)
{
    join_bn_job j = {.c = c, .hw = hw, .a = a, .as = a_scale, .ash = a_shift, .scale = scale, .b = b,
                     .bs = b_scale, .bsh = b_shift, .y = y};
    del_parallel_for(n, join_bn_images, &j);
}

static void add_blocks(void *ctx, int64_t begin, int64_t end)
{
    const relu_job *j = ctx;
    int64_t lo = begin * ELT_BLOCK, hi = end * ELT_BLOCK < j->count ? end * ELT_BLOCK : j->count;
    const float *restrict x = j->x;
    float *restrict y = j->out;
    for (int64_t i = lo; i < hi; i++)
        y[i] += x[i];
}

void del_cpu_add(int64_t count, const float *x, float *y)
{
    relu_job j = {.x = x, .out = y, .count = count};
    del_parallel_for((count + ELT_BLOCK - 1) / ELT_BLOCK, add_blocks, &j);
}
