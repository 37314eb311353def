/* Internal: Winograd F(4x4, 3x3) convolution (cpu_winograd.c), used by
 * cpu_conv.c for the 3x3, stride 1, pad 1 layers with enough channels. */
#ifndef DEL_BACKEND_CPU_WINOGRAD_H
#define DEL_BACKEND_CPU_WINOGRAD_H

#include <stddef.h>

#include "backend/backend.h"

/* Images per interleaved group (one vector lane each). */
#define WG_LANES 16
/* Fewer input or output channels than this keep the direct method: the
 * 36 gemms (K = c_in, M = c_out) get too thin to pay for the transforms. */
#define WG_MIN_CHANNELS 16

/* Non-zero if s is a 3x3 / stride 1 / pad 1 convolution (same size out)
 * with at least WG_MIN_CHANNELS input and output channels. */
int del_cpu_wg_applies(const del_conv2d_shape *s);

/* Bytes of workspace for both directions (0 if it does not apply). */
size_t del_cpu_wg_workspace(const del_conv2d_shape *s);

/* The convolution's input is x, or with in_scale (and in_shift) not NULL
 * max(x * in_scale[c] + in_shift[c], 0) per input channel c, formed in
 * float as each row is read (a batchnorm and relu that never write their
 * output). */
typedef struct wg_input {
    const float *x, *scale, *shift;
} wg_input;

/* The forward of conv2d_forward_affine (same arguments and result
 * semantics) for a shape where del_cpu_wg_applies. */
void del_cpu_wg_forward(const del_conv2d_shape *s, wg_input in, const float *w, const float *bias,
                        const float *scale, const float *shift, int relu, int pool, float *y, void *ws);

/* The gradients of the convolution s from its input and dy: dx (if not
 * NULL) overwritten with the gradient of the input (after the input's
 * affine map and relu, if any), dw (if not NULL) added to with the weight
 * gradient. */
void del_cpu_wg_backward(const del_conv2d_shape *s, wg_input in, const float *w, const float *dy, float *dx,
                         float *dw, void *ws);

#endif
