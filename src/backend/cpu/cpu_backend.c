/* The CPU backend's table: OpenBLAS sgemm plus the kernels of cpu_*.c. */
#include <cblas.h>

#include "backend/cpu/cpu.h"
#include "core/threads.h"

/* Pins the table's size: a new entry in del_backend must be added here too
 * (and in every other backend). */
_Static_assert(sizeof(del_backend) == 28 * sizeof(void *), "del_backend changed: update del_cpu_backend");

/* OpenBLAS always runs single-threaded: the library's pool parallelises
 * around it over a decomposition fixed by the shapes, which keeps results
 * independent of the thread count (OpenBLAS's own split depends on it, and
 * so do its rounding paths). */
void del_cpu_set_num_threads(int n)
{
    (void)n;
    openblas_set_num_threads(1);
}

void del_cpu_init(void)
{
    openblas_set_num_threads(1);
}

void del_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Below this many multiply-adds a split costs more than it gains. */
#define GEMM_SPLIT_MIN_FMA (1 << 20)
#define GEMM_MAX_BLOCKS 16

typedef struct gemm_job {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, block, split_rows;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

static void gemm_blocks(void *ctx, int64_t begin, int64_t end)
{
    const gemm_job *g = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int lo = (int)blk * g->block, dim = g->split_rows ? g->m : g->n;
        int len = dim - lo < g->block ? dim - lo : g->block;
        if (g->split_rows) {
            const float *a = g->trans_a ? g->a + lo : g->a + (size_t)lo * g->lda;
            del_cpu_sgemm(g->trans_a, g->trans_b, len, g->n, g->k, g->alpha, a, g->lda, g->b, g->ldb, g->beta,
                  g->c + (size_t)lo * g->ldc, g->ldc);
        } else {
            const float *b = g->trans_b ? g->b + (size_t)lo * g->ldb : g->b + lo;
            del_cpu_sgemm(g->trans_a, g->trans_b, g->m, len, g->k, g->alpha, g->a, g->lda, b, g->ldb, g->beta,
                  g->c + lo, g->ldc);
        }
    }
}

/* Large products are cut into blocks of rows (or columns) of c whose
 * layout depends only on m, n, k, never on the thread count. */
void del_cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    if ((double)m * n * k < GEMM_SPLIT_MIN_FMA || (m < 32 && n < 32)) {
        del_cpu_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job g = {trans_a, trans_b, m, n, k, lda, ldb, ldc, 0, m >= n, alpha, beta, a, b, c};
    int dim = g.split_rows ? m : n;
    /* blocks of a multiple of 16 (the kernels' tile), at least 32 */
    int block = (dim + GEMM_MAX_BLOCKS - 1) / GEMM_MAX_BLOCKS;
    block = (block + 15) / 16 * 16;
    g.block = block < 32 ? 32 : block;
    del_parallel_for((dim + g.block - 1) / g.block, gemm_blocks, &g);
}

const del_backend del_cpu_backend = {
    .name = "cpu-openblas",                                           /* shown in logs and benches */
    .set_num_threads = del_cpu_set_num_threads,                       /* OpenBLAS's own pool */
    .gemm = del_cpu_gemm,                                             /* cblas_sgemm, row-major */
    .conv2d_workspace = del_cpu_conv2d_workspace,                     /* im2col buffers */
    .conv2d_forward = del_cpu_conv2d_forward,                         /* per-tap sgemm or im2col + sgemm */
    .conv2d_forward_affine = del_cpu_conv2d_forward_affine,           /* same, epilogue on the copy-out */
    .conv2d_backward = del_cpu_conv2d_backward,                       /* per-tap sgemm or sgemm + col2im */
    .conv2d_fuses_input_bn = del_cpu_conv2d_fuses_input_bn,           /* the Winograd shapes */
    .conv2d_forward_input_bn = del_cpu_conv2d_forward_input_bn,       /* bn + relu in the row gather */
    .conv2d_backward_input_bn = del_cpu_conv2d_backward_input_bn,     /* the same for both gradients */
    .maxpool2d_forward = del_cpu_maxpool2d_forward,                   /* cpu_pool.c */
    .maxpool2d_backward = del_cpu_maxpool2d_backward,                 /* scatter through argmax */
    .batchnorm_forward_train = del_cpu_batchnorm_forward_train,       /* cpu_norm.c */
    .batchnorm_workspace = del_cpu_batchnorm_workspace,               /* per-image plane sums */
    .batchnorm_forward_eval = del_cpu_batchnorm_forward_eval,         /* running statistics */
    .batchnorm_backward = del_cpu_batchnorm_backward,                 /* batch-statistics gradient */
    .relu_forward = del_cpu_relu_forward,                             /* cpu_eltwise.c */
    .relu_backward = del_cpu_relu_backward,                           /* mask from the output */
    .add_bias_rows = del_cpu_add_bias_rows,                           /* linear layer bias */
    .sum_rows = del_cpu_sum_rows,                                     /* linear layer bias gradient */
    .avgpool2d_forward = del_cpu_avgpool2d_forward,                   /* cpu_pool.c */
    .avgpool2d_backward = del_cpu_avgpool2d_backward,                 /* spread over each window */
    .global_avgpool_forward = del_cpu_global_avgpool_forward,         /* plane means */
    .global_avgpool_backward = del_cpu_global_avgpool_backward,       /* broadcast dy / hw */
    .residual_join_forward = del_cpu_residual_join_forward,           /* cpu_eltwise.c */
    .residual_join_forward_bn = del_cpu_residual_join_forward_bn,     /* with the batchnorms' affine maps */
    .residual_join_backward = del_cpu_residual_join_backward,         /* relu mask, branch scale */
    .add = del_cpu_add,                                               /* shortcut input gradient */
};
