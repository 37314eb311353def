/* Internal: plumbing shared by the single-image augmentation ops, the warp
 * kernels, and the op table a pipeline dispatches through. */
#ifndef DEL_AUGMENT_OPS_IMAGE_H
#define DEL_AUGMENT_OPS_IMAGE_H

#include "core/tensor_internal.h"
#include "del/augment.h"

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

/* d = lut[s]; with per_channel, channel k uses lut + 256 k. d may be s. */
void del_img_apply_lut(const del_img *d, const del_img *s, const uint8_t *lut, int per_channel);

/* PIL's luma: (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
static inline uint8_t del_img_luma(const uint8_t *rgb)
{
    return (uint8_t)(((uint32_t)rgb[0] * 19595u + (uint32_t)rgb[1] * 38470u + (uint32_t)rgb[2] * 7471u +
                      0x8000u) >> 16);
}

/* Pillow's ImagingBlend of two samples, trunc(in1 + alpha (in2 - in1)) in
 * float clipped to [0, 255], by table: for d = in2 - in1 the float sum
 * in1 + fl(alpha d) truncates to in1 + floor(fl(alpha d)) unless the
 * fraction of fl(alpha d) lies within float rounding (below 2^-15 for
 * sums under 512) of 1; those few d are marked and computed in float. */
typedef struct del_blend {
    float alpha;
    int16_t floor_t[511]; /* floor(fl(alpha d)) clamped to [-512, 512] at d + 255,
                             DEL_BLEND_IN_FLOAT where the float path is needed */
    uint8_t clip[1280];   /* clip[v + 512] = v clamped to [0, 255] */
} del_blend;

#define DEL_BLEND_IN_FLOAT INT16_MIN

void del_blend_init(del_blend *b, float alpha);

static inline uint8_t del_blend_px(const del_blend *b, int in1, int in2)
{
    const int t = b->floor_t[in2 - in1 + 255];
    if (__builtin_expect(t == DEL_BLEND_IN_FLOAT, 0)) {
        float f = (float)in1 + b->alpha * (float)(in2 - in1);
        return f <= 0.0f ? 0 : f >= 255.0f ? 255 : (uint8_t)f;
    }
    return b->clip[in1 + t + 512];
}

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
