/* Internal: plumbing shared by the single-image augmentation ops, the warp
 * kernels, and the op table a pipeline dispatches through. */
#ifndef DEL_AUGMENT_OPS_IMAGE_H
#define DEL_AUGMENT_OPS_IMAGE_H

#include <string.h> /* also defines __GLIBC__ where glibc is the libc */

#include "core/tensor_internal.h"
#include "del/augment.h"

/* The vectorised kernels (pixel.c, warp.c) have one version per ISA
 * level (core/isa.h). Those levels have FMA, which is why they are built
 * only in ISO C mode: GCC's -ffp-contract=off there forbids fusing a
 * float multiply and add (Pillow's blend rounds both). */
#include "core/isa.h"

/* A checked view of a u8 [h, w, c] tensor; rows are w*c bytes apart. */
typedef struct del_img {
    uint8_t *px;
    int h, w, c;
} del_img;

/* Checks that src is u8 [H, W, 1|3] and describes it in *view. */
del_status del_img_src(del_img *view, const char *fn, const del_tensor *src);

/* Checks that dst is u8 [h, w, c] (the message names the expected shape)
 * and describes it in *view. */
del_status del_img_dst(del_img *view, const char *fn, del_tensor *dst, int h, int w, int c);

/* Checks src, then dst with src's shape; may_alias 0 rejects shared memory. */
del_status del_img_same(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src,
                        int may_alias);

/* Checks src, then dst as u8 [h, w, src's c] with h and w its own (the
 * window or output size); dst may not share memory with src. */
del_status del_img_window(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src);

/* 1 if the two tensors' data ranges overlap. */
int del_img_overlap(const del_tensor *a, const del_tensor *b);

/* Range checks with the standard messages. */
del_status del_img_check_fill(const char *fn, int fill);
del_status del_img_check_interp(const char *fn, del_interp interp);
del_status del_img_check_factor(const char *fn, float factor);

/* d = lut[s]; with per_channel, channel k uses lut + 256 k. d may be s.
 * (pixel.c) */
void del_img_apply_lut(const del_img *d, const del_img *s, const uint8_t *lut, int per_channel);

/* PIL's luma: (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
static inline uint8_t del_img_luma(const uint8_t *rgb)
{
    return (uint8_t)(((uint32_t)rgb[0] * 19595u + (uint32_t)rgb[1] * 38470u + (uint32_t)rgb[2] * 7471u +
                      0x8000u) >> 16);
}

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would round differently from Pillow */
#endif

/* Pillow's ImagingBlend of two samples: in1 + alpha (in2 - in1) in float
 * (one multiply, one add, never fused), truncated and clipped to [0, 255].
 * alpha must be del_blend_alpha's. */
static inline uint8_t del_pil_blend(int in1, int in2, float alpha)
{
    const float p = alpha * (float)(in2 - in1);
    int t = (int)((float)in1 + p);
    t = t < 0 ? 0 : t;
    t = t > 255 ? 255 : t;
    return (uint8_t)t;
}

/* Beyond |alpha| = 512 every blend with in1 != in2 saturates, so capping
 * alpha there changes no result and keeps the float sum well inside int. */
static inline float del_blend_alpha(float alpha)
{
    return alpha > 512.0f ? 512.0f : alpha < -512.0f ? -512.0f : alpha;
}

/* ---- row kernels (pixel.c), vectorised; out may equal an input ---- */

/* out[i] = del_pil_blend(in1[i], in2[i], alpha). */
void del_blend_row(uint8_t *out, const uint8_t *in1, const uint8_t *in2, size_t n, float alpha);

/* out[i] = del_pil_blend(in1, in2[i], alpha) (a table lookup per sample
 * where the vector code would be slower: without AVX2). */
void del_blend_const_row(uint8_t *out, int in1, const uint8_t *in2, size_t n, float alpha);

/* ImageEnhance.Color on npix RGB pixels: each sample blended from the
 * pixel's luma towards itself. */
void del_color_row(uint8_t *out, const uint8_t *rgb, size_t npix, float alpha);

/* The sum of del_img_luma over npix RGB pixels. */
uint64_t del_luma_sum(const uint8_t *rgb, size_t npix);

/* One row of ImageEnhance.Sharpness: out[i] for i in [c, n - c) is the
 * blend of Pillow's 3x3 SMOOTH filter at mid[i] (rows up, mid, down; c
 * bytes per pixel) towards mid[i]. out must not overlap the inputs. */
void del_sharpen_row(uint8_t *out, const uint8_t *up, const uint8_t *mid, const uint8_t *down, size_t n, int c,
                     float alpha);

/* out[i] = in[i] & mask. */
void del_and_row(uint8_t *out, const uint8_t *in, size_t n, uint8_t mask);

/* out[i] = in[i] >= from ? 255 - in[i] : in[i]. */
void del_invert_from_row(uint8_t *out, const uint8_t *in, size_t n, int from);

/* out[i] = in[i] + delta clamped to [0, 255] (by table without AVX2). */
void del_add_clamp_row(uint8_t *out, const uint8_t *in, size_t n, int delta);

/* out[i] = ((in[i] - lo[k]) mul[k]) >> 16 in 32-bit unsigned arithmetic,
 * k the channel of sample i (c is 1 or 3). */
void del_stretch_row(uint8_t *out, const uint8_t *in, size_t n, int c, const uint8_t lo[3], const uint32_t mul[3]);

/* lo[k], hi[k]: the smallest and largest sample of channel k (k < c) of
 * n samples of c-channel pixels (c is 1 or 3); 255 and 0 when n is 0. */
void del_channel_range(const uint8_t *px, size_t n, int c, uint8_t lo[3], uint8_t hi[3]);

/* ---- warp kernels (warp.c); d and s never overlap ---- */

/* PIL Image.transform(AFFINE): `a` maps output to input with pixel centres
 * at +0.5; nearest uses Pillow's 16.16 fixed point, bilinear clamps the
 * taps to the image and truncates. */
void del_warp_pil_affine(const del_img *d, const del_img *s, const double a[6], del_interp interp, uint8_t fill);

/* cv2.warpAffine with an already inverted map (dst -> src, integer pixel
 * centres), BORDER_CONSTANT fill. */
void del_warp_cv_affine(const del_img *d, const del_img *s, const double minv[6], del_interp interp, uint8_t fill);

/* cv2.warpPerspective with an already inverted 3x3 map. */
void del_warp_cv_perspective(const del_img *d, const del_img *s, const double minv[9], del_interp interp,
                             uint8_t fill);

/* ---- the op table (table.c): one uniform call per RandAugment-style op ---- */

/* value is the op's own parameter (factor, degrees, shear, pixels, bits,
 * threshold; ignored by parameterless ops); interp and fill are used by
 * the geometric ones. */
typedef del_status (*del_aug_op_fn)(del_tensor *dst, const del_tensor *src, float value, del_interp interp,
                                    int fill);

typedef struct del_aug_op {
    const char *name; /* "shear_x", "brightness", ... */
    del_aug_op_fn fn;
    int in_place; /* 1 if dst may alias src */
} del_aug_op;

/* The op called name, or NULL. */
const del_aug_op *del_aug_op_find(const char *name);

/* The whole table (*count entries): RandAugment's 14 ops in torchvision's
 * order, then extras. */
const del_aug_op *del_aug_op_table(int *count);

#endif
