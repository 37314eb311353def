/* Internal: the CPU backend's kernels (one file per op family). */
#ifndef DEL_BACKEND_CPU_H
#define DEL_BACKEND_CPU_H

#include "backend/backend.h"

extern const del_backend del_cpu_backend;

/* max(v, 0) as PyTorch's relu for NaN: !(v <= 0) holds for v > 0 and
 * for NaN, so NaN passes and a diverged model's outputs stay NaN (not a
 * quiet 0). -0.0 still gives +0.0, as before. Every fused relu uses it,
 * so all paths give the same bits; one compare and an and-not, as the
 * old v > 0 ? v : 0. */
static inline float del_cpu_relu(float v)
{
    return v <= 0.0f ? 0.0f : v;
}

/* Whether v replaces best in a max pooling window scanned in order:
 * strictly larger (the first maximum wins ties), or NaN (PyTorch's
 * max_pool2d: a NaN in the window is the max, the last NaN its index).
 * gcc vectorises a select on this || (as a compare, an unordered compare
 * and an or), not one on the ints of a bitwise |. */
static inline int del_cpu_pool_takes(float v, float best)
{
    return v > best || v != v;
}

/* One-time setup, run by del_backend_get. */
void del_cpu_init(void);
void del_cpu_set_num_threads(int n);
/* One cblas_sgemm call on the calling thread (row-major). */
void del_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);
void del_cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

size_t del_cpu_conv2d_workspace(const del_conv2d_shape *s);
void del_cpu_conv2d_forward(const del_conv2d_shape *s, const float *x, const float *w, const float *bias,
                            float *y, void *ws);
void del_cpu_conv2d_forward_affine(const del_conv2d_shape *s, const float *x, const float *w, const float *bias,
                                   const float *scale, const float *shift, int relu, int pool, float *y, void *ws);
void del_cpu_conv2d_backward(const del_conv2d_shape *s, const float *x, const float *w, const float *dy,
                             float *dx, float *dw, float *dbias, void *ws);
int del_cpu_conv2d_fuses_input_bn(const del_conv2d_shape *s);
void del_cpu_conv2d_forward_input_bn(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                     const float *in_shift, const float *w, float *y, void *ws);
void del_cpu_conv2d_backward_input_bn(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                      const float *in_shift, const float *w, const float *dy, float *dx, float *dw,
                                      void *ws);

void del_cpu_maxpool2d_forward(const del_pool_shape *s, const float *x, float *y, int32_t *argmax);
void del_cpu_maxpool2d_backward(const del_pool_shape *s, const float *dy, const int32_t *argmax, float *dx);

void del_cpu_batchnorm_forward_train(int n, int c, int hw, const float *x, const float *gamma,
                                     const float *beta, float eps, float momentum, float *running_mean,
                                     float *running_var, int relu, float *y, float *save_mean,
                                     float *save_invstd, void *ws);
size_t del_cpu_batchnorm_workspace(int n, int c);
void del_cpu_batchnorm_forward_eval(int n, int c, int hw, const float *x, const float *gamma,
                                    const float *beta, const float *running_mean, const float *running_var,
                                    float eps, int relu, float *y);
void del_cpu_batchnorm_backward(int n, int c, int hw, const float *x, const float *dy, const float *gamma,
                                const float *beta, int relu, const float *save_mean, const float *save_invstd,
                                float *dx, float *dgamma, float *dbeta, void *ws);

void del_cpu_relu_forward(int64_t count, const float *x, float *y);
void del_cpu_relu_backward(int64_t count, const float *y, const float *dy, float *dx);
void del_cpu_add_bias_rows(int rows, int cols, const float *bias, float *y);
void del_cpu_sum_rows(int rows, int cols, const float *x, float *out);
void del_cpu_residual_join_forward(int rows, int64_t cols, const float *a, const float *scale, const float *b,
                                   float *y);
void del_cpu_residual_join_forward_bn(int n, int c, int hw, const float *a, const float *a_scale,
                                      const float *a_shift, const float *scale, const float *b,
                                      const float *b_scale, const float *b_shift, float *y);
void del_cpu_residual_join_backward(int rows, int64_t cols, const float *y, const float *dy, const float *scale,
                                    float *db, float *da);
void del_cpu_add(int64_t count, const float *x, float *y);

void del_cpu_avgpool2d_forward(const del_pool_shape *s, const float *x, float *y);
void del_cpu_avgpool2d_backward(const del_pool_shape *s, const float *dy, float *dx);
void del_cpu_global_avgpool_forward(int64_t planes, int hw, const float *x, float *y);
void del_cpu_global_avgpool_backward(int64_t planes, int hw, const float *dy, float *dx);

#endif
