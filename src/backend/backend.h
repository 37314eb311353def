/* Internal: the compute backend, one table of functions.
 *
 * Every heavy computation of the library (gemm, convolution, pooling,
 * batch normalisation, elementwise ops) goes through this table; nothing
 * outside src/backend/ includes cblas.h. All tensors are f32, dense, NCHW
 * (or [rows, cols] row-major). "accumulate" outputs are added to (+=);
 * all others are overwritten.
 *
 * Determinism contract: every entry gives bit-identical results whatever
 * the thread count (reductions use a fixed order independent of threads).
 *
 * To add a backend: a folder src/backend/<name>/ defining a del_backend
 * with every entry set, and a case in del_backend_get. */
#ifndef DEL_BACKEND_H
#define DEL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct del_conv2d_shape {
    int n;                   /* batch */
    int c_in, h_in, w_in;    /* input */
    int c_out, h_out, w_out; /* output: h_out = (h_in + 2*pad - kernel)/stride + 1 */
    int kernel, stride, pad; /* square kernel, zero padding */
} del_conv2d_shape;

typedef struct del_pool_shape {
    int n, c;
    int h_in, w_in;
    int h_out, w_out; /* floor((h_in - kernel)/stride) + 1 */
    int kernel, stride;
} del_pool_shape;

typedef struct del_backend {
    /* name of the backend, e.g. "cpu-openblas" */
    const char *name;

    /* number of threads for the backend's own libraries (OpenBLAS) */
    void (*set_num_threads)(int n);

    /* c = alpha * op(a) * op(b) + beta * c, row-major; op(a) is m x k,
     * op(b) is k x n; trans_* non-zero means the stored matrix is transposed */
    void (*gemm)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta,
                 float *c, int ldc);

    /* bytes of scratch that conv2d_forward/backward need for shape s */
    size_t (*conv2d_workspace)(const del_conv2d_shape *s);

    /* y[n, co, oh, ow] = sum_{ci,kh,kw} w[co, ci, kh, kw] * x[n, ci, oh*s-p+kh, ow*s-p+kw] + bias[co];
     * w is [c_out, c_in, k, k]; bias may be NULL; ws has conv2d_workspace bytes */
    void (*conv2d_forward)(const del_conv2d_shape *s, const float *x, const float *w,
                           const float *bias, float *y, void *ws);

    /* conv2d_forward followed by a per-channel affine map, an optional relu
     * and an optional 2x2 / stride 2 max pooling in the same pass (an
     * eval-mode batchnorm, relu and maxpool folded into the conv):
     * y = (conv + bias[co]) * scale[co] + shift[co], then max(y, 0) if relu,
     * then if pool the max over each 2x2 window (floor mode), compared as
     * maxpool2d_forward does, so y is [n, c_out, h_out/2, w_out/2]; scale
     * and shift are both NULL (no affine map) or both [c_out] */
    void (*conv2d_forward_affine)(const del_conv2d_shape *s, const float *x, const float *w,
                                  const float *bias, const float *scale, const float *shift, int relu,
                                  int pool, float *y, void *ws);

    /* from dy [n, c_out, h_out, w_out]: dx (overwritten; may be NULL = not needed),
     * dw (accumulate, [c_out, c_in, k, k]), dbias (accumulate, may be NULL) */
    void (*conv2d_backward)(const del_conv2d_shape *s, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *dbias, void *ws);

    /* non-zero if the two calls below take shape s: a convolution whose
     * input is a training-mode batchnorm's output with a fused relu,
     * h = max(x * in_scale[ci] + in_shift[ci], 0) (in float, as
     * batchnorm_forward_train forms it; see its y NULL), read from the
     * batchnorm's input x so that h is never written out */
    int (*conv2d_fuses_input_bn)(const del_conv2d_shape *s);

    /* conv2d_forward of h, without bias */
    void (*conv2d_forward_input_bn)(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                    const float *in_shift, const float *w, float *y, void *ws);

    /* conv2d_backward of h, without bias: dx (overwritten, may be NULL) is
     * the gradient of h, dw accumulates */
    void (*conv2d_backward_input_bn)(const del_conv2d_shape *s, const float *x, const float *in_scale,
                                     const float *in_shift, const float *w, const float *dy, float *dx,
                                     float *dw, void *ws);

    /* y = max over each window, NaN if it holds a NaN (PyTorch); argmax
     * receives the flat index (within the input plane h_in*w_in) of the
     * max, first one on ties, last NaN if any */
    void (*maxpool2d_forward)(const del_pool_shape *s, const float *x, float *y, int32_t *argmax);

    /* dx (overwritten, zero where not a max) from dy and argmax */
    void (*maxpool2d_backward)(const del_pool_shape *s, const float *dy, const int32_t *argmax, float *dx);

    /* training-mode batchnorm over x [n, c, hw]: batch mean and biased
     * variance per channel; y = gamma * (x - mean) * invstd + beta with
     * invstd = 1/sqrt(var + eps), then y = max(y, 0) if relu is non-zero (a
     * fused relu; y NULL: the statistics only, for a consumer that applies
     * y = x * scale + shift itself with scale = gamma * save_invstd and
     * shift = beta - save_mean * scale, in float); running_mean/var updated with momentum using the unbiased
     * variance (PyTorch); save_mean/save_invstd [c] kept for backward;
     * y must not overlap x. ws: batchnorm_workspace(n, c) bytes, or NULL
     * (slower on several threads; the same bits either way) */
    void (*batchnorm_forward_train)(int n, int c, int hw, const float *x, const float *gamma,
                                    const float *beta, float eps, float momentum,
                                    float *running_mean, float *running_var, int relu, float *y,
                                    float *save_mean, float *save_invstd, void *ws);

    /* bytes of scratch for the training-mode batchnorm of n images of c
     * channels (forward and backward), 8-byte aligned */
    size_t (*batchnorm_workspace)(int n, int c);

    /* eval-mode batchnorm with running statistics, then max(y, 0) if relu
     * is non-zero; y must not overlap x */
    void (*batchnorm_forward_eval)(int n, int c, int hw, const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, float eps, int relu, float *y);

    /* training-mode batchnorm backward: dx overwritten (may be NULL),
     * dgamma and dbeta accumulate. relu non-zero means the forward had a
     * fused relu: the incoming gradient is dy where the forward output was
     * > 0 and 0 elsewhere, the sign recomputed from x, gamma, beta and the
     * saved statistics with the forward's float expressions (bit-exact, and
     * one stream less to read than the output); beta is only read then
     * (may be NULL otherwise). dx must not overlap any input; ws as in
     * batchnorm_forward_train */
    void (*batchnorm_backward)(int n, int c, int hw, const float *x, const float *dy, const float *gamma,
                               const float *beta, int relu, const float *save_mean,
                               const float *save_invstd, float *dx, float *dgamma, float *dbeta, void *ws);

    /* y = max(x, 0) elementwise (x == y allowed). Here and in every fused
     * relu NaN stays NaN (PyTorch), -0.0 gives +0.0 */
    void (*relu_forward)(int64_t count, const float *x, float *y);

    /* dx = y > 0 ? dy : 0, from the forward output y (dx == dy allowed) */
    void (*relu_backward)(int64_t count, const float *y, const float *dy, float *dx);

    /* y[r, j] += bias[j] for a rows x cols matrix */
    void (*add_bias_rows)(int rows, int cols, const float *bias, float *y);

    /* out[j] += sum_r x[r, j] (fixed summation order) */
    void (*sum_rows)(int rows, int cols, const float *x, float *out);

    /* average pooling over square windows, floor mode, no padding (torch's
     * AvgPool2d): y = sum of each kernel x kernel window / (kernel*kernel) */
    void (*avgpool2d_forward)(const del_pool_shape *s, const float *x, float *y);

    /* dx (overwritten) = sum over the windows holding each input of
     * dy / (kernel*kernel), windows taken in output order */
    void (*avgpool2d_backward)(const del_pool_shape *s, const float *dy, float *dx);

    /* y[p] = sum_i x[p, i] / hw for planes p < planes (global average
     * pooling: [n, c, h, w] -> [n, c] with planes = n*c) */
    void (*global_avgpool_forward)(int64_t planes, int hw, const float *x, float *y);

    /* dx[p, i] = dy[p] / hw (overwritten) */
    void (*global_avgpool_backward)(int64_t planes, int hw, const float *dy, float *dx);

    /* the join of a residual block, per row (image) r < rows of cols values:
     * y[r, i] = max(scale[r] * a[r, i] + b[r, i], 0); scale NULL means 1
     * (no stochastic depth); y may be a (not b) */
    void (*residual_join_forward)(int rows, int64_t cols, const float *a, const float *scale, const float *b,
                                  float *y);

    /* the join after the branch's batchnorm (and the projection's), over
     * [n, c, hw]: y = max(scale[i] * (a * a_scale[ch] + a_shift[ch]) + b', 0)
     * with b' = b * b_scale[ch] + b_shift[ch] if b_scale, else b. Each step
     * is rounded to float as batchnorm_forward_train's output and
     * residual_join_forward round it, so the result has the bits of the
     * two run one after the other; y may be a (not b) */
    void (*residual_join_forward_bn)(int n, int c, int hw, const float *a, const float *a_scale,
                                     const float *a_shift, const float *scale, const float *b,
                                     const float *b_scale, const float *b_shift, float *y);

    /* its gradient from the forward output y: db = y > 0 ? dy : 0 (the
     * shortcut's), da = scale[r] * db (the branch's; with scale NULL, da
     * may be NULL, since it would equal db); outputs overwritten, no overlap */
    void (*residual_join_backward)(int rows, int64_t cols, const float *y, const float *dy, const float *scale,
                                   float *db, float *da);

    /* y[i] += x[i] (no overlap) */
    void (*add)(int64_t count, const float *x, float *y);
} del_backend;

/* The active backend (the CPU one). Never NULL. */
const del_backend *del_backend_get(void);

#endif
