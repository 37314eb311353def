/* libdel — single-image augmentation ops on uint8 HWC images.
 *
 * Every call reads an image `src` and writes `dst`, both u8 tensors of
 * shape [H, W, C] with C = 1 or 3 and any H, W >= 1. dst must already have
 * the shape the op produces (stated per call; usually src's shape) — the
 * calls never allocate or resize. The ops are deterministic and take their
 * parameters explicitly; random variants and pipelines build on them.
 *
 * Reference semantics (checked against golden files in the test suite):
 *   - colour ops, rotate, shear_*, translate_*: torchvision 0.14 on PIL
 *     images (Pillow's ImageEnhance, ImageOps and Image.transform), so
 *     RandAugment matches torchvision's;
 *   - flips and 90-degree rotations: numpy / cv2.rotate;
 *   - affine and perspective warps: cv2.warpAffine / cv2.warpPerspective
 *     with a constant border, and the point helpers follow
 *     cv2.getAffineTransform / cv2.getPerspectiveTransform.
 *
 * Aliasing: "in place" calls accept dst == src (the same tensor, or two
 * tensors over the same buffer); the others fail with DEL_EINVAL when the
 * two images share memory.
 * Errors common to every image call: DEL_EINVAL when dst or src is NULL,
 * src is not u8 [H, W, 1 or 3], dst is not u8 with the expected shape (the
 * message names the argument and the expected shape), an aliasing rule is
 * broken, or a parameter is out of its stated range.
 * Threading: calls are reentrant; distinct dst tensors may be written
 * from different threads at once. */
#ifndef DEL_AUGMENT_H
#define DEL_AUGMENT_H

#include "common.h"
#include "data.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum del_interp {
    DEL_INTERP_NEAREST = 0,
    DEL_INTERP_BILINEAR = 1
} del_interp;

/* ---- point ops: dst has src's shape; in place allowed unless noted ---- */

/* Adds delta (-255..255) to every sample, saturating to [0, 255]. */
DEL_API del_status del_image_brightness_add(del_tensor *dst, const del_tensor *src, int delta);

/* Scales every sample by factor (finite, >= 0) and truncates to [0, 255]
 * (PIL ImageEnhance.Brightness: a blend with black). */
DEL_API del_status del_image_brightness(del_tensor *dst, const del_tensor *src, float factor);

/* Blends with the mean grey level (finite factor >= 0): mean + f*(x - mean),
 * truncated to [0, 255]. As PIL ImageEnhance.Contrast, the mean is taken
 * over PIL's luma L = (19595 R + 38470 G + 7471 B + 32768) >> 16 and
 * rounded half up (torchvision's PIL path). */
DEL_API del_status del_image_contrast(del_tensor *dst, const del_tensor *src, float factor);

/* Blends each pixel with its own luma L (as above), factor finite >= 0
 * (PIL ImageEnhance.Color). 1-channel images are copied unchanged. */
DEL_API del_status del_image_color(del_tensor *dst, const del_tensor *src, float factor);

/* Blends with PIL's SMOOTH blur ([[1,1,1],[1,5,1],[1,1,1]]/13) on interior
 * pixels; the one-pixel border is unchanged (PIL ImageEnhance.Sharpness).
 * factor finite >= 0. Not in place. */
DEL_API del_status del_image_sharpness(del_tensor *dst, const del_tensor *src, float factor);

/* Keeps the top `bits` (0..8) bits of every sample. */
DEL_API del_status del_image_posterize(del_tensor *dst, const del_tensor *src, int bits);

/* Inverts samples x >= threshold (255 - x); threshold is any non-NaN
 * value (> 255: no change, <= 0: every sample inverted). */
DEL_API del_status del_image_solarize(del_tensor *dst, const del_tensor *src, float threshold);

/* Per channel, stretches [min, max] to [0, 255] (PIL ImageOps.autocontrast,
 * cutoff 0); a constant channel is unchanged. */
DEL_API del_status del_image_autocontrast(del_tensor *dst, const del_tensor *src);

/* Per-channel histogram equalization (PIL ImageOps.equalize). */
DEL_API del_status del_image_equalize(del_tensor *dst, const del_tensor *src);

/* Fills the square of side `size` (>= 0) centred at row cy, column cx with
 * fill (0..255), clipped to the image: rows cy - size/2 .. cy - size/2 +
 * size - 1, columns likewise (for even sizes the Cutout paper's box). The
 * centre may lie anywhere, even outside the image. */
DEL_API del_status del_image_cutout(del_tensor *dst, const del_tensor *src, int cy, int cx, int size, int fill);

/* ---- exact geometry: not in place ---- */

/* Mirrors left-right (np.flip axis 1); dst [H, W, C]. */
DEL_API del_status del_image_flip_h(del_tensor *dst, const del_tensor *src);

/* Mirrors top-bottom (np.flip axis 0); dst [H, W, C]. */
DEL_API del_status del_image_flip_v(del_tensor *dst, const del_tensor *src);

/* Rotates 90 degrees counter-clockwise, like del_image_rotate(90), np.rot90
 * and cv2.ROTATE_90_COUNTERCLOCKWISE; dst [W, H, C]. */
DEL_API del_status del_image_rotate90(del_tensor *dst, const del_tensor *src);

/* Rotates 180 degrees (cv2.ROTATE_180); dst [H, W, C]. */
DEL_API del_status del_image_rotate180(del_tensor *dst, const del_tensor *src);

/* Rotates 270 degrees counter-clockwise = 90 degrees clockwise
 * (cv2.ROTATE_90_CLOCKWISE); dst [W, H, C]. */
DEL_API del_status del_image_rotate270(del_tensor *dst, const del_tensor *src);

/* Copies the window src[y : y+h, x : x+w] where dst is [h, w, C]; the
 * window must lie inside src. */
DEL_API del_status del_image_crop(del_tensor *dst, const del_tensor *src, int y, int x);

/* Pads src by pad (>= 0) pixels of value fill (0..255) on every side, then
 * copies the window at (y, x) of the padded image into dst [h, w, C]; the
 * window must lie inside the padded image (0 <= y <= H + 2 pad - h, same
 * for x). "Random crop with padding" draws y, x in those ranges. */
DEL_API del_status del_image_pad_crop(del_tensor *dst, const del_tensor *src, int pad, int y, int x, int fill);

/* ---- resampling warps: not in place; uncovered pixels get fill (0..255) ---- */

/* Rotates by degrees (finite; positive = counter-clockwise) about the image
 * centre, output the same size [H, W, C] (torchvision F.rotate on a PIL
 * image, expand=False). */
DEL_API del_status del_image_rotate(del_tensor *dst, const del_tensor *src, float degrees, del_interp interp, int fill);

/* torchvision RandAugment's ShearX with magnitude m (finite, |m| <= 100):
 * F.affine with shear atan(m) about the top-left corner, so output pixel
 * (x, y) samples src at (x + m y, y). dst [H, W, C]. */
DEL_API del_status del_image_shear_x(del_tensor *dst, const del_tensor *src, float m, del_interp interp, int fill);

/* RandAugment's ShearY: output (x, y) samples src at (x, y + m x). */
DEL_API del_status del_image_shear_y(del_tensor *dst, const del_tensor *src, float m, del_interp interp, int fill);

/* RandAugment's TranslateX / TranslateY: shifts the content right (down)
 * by `pixels` (negative: left / up), an exact integer shift. dst [H, W, C]. */
DEL_API del_status del_image_translate_x(del_tensor *dst, const del_tensor *src, int pixels, int fill);
DEL_API del_status del_image_translate_y(del_tensor *dst, const del_tensor *src, int pixels, int fill);

/* Warps src by the forward affine map m (6 finite values, row-major 2x3,
 * taking src (x, y) to dst (m0 x + m1 y + m2, m3 x + m4 y + m5), pixel
 * centres at integer coordinates) as cv2.warpAffine(src, m, (w, h),
 * flags=interp, borderValue=fill) does, including its 1/32-pixel fixed-point
 * bilinear weights. dst [h, w, C] may differ in size from src.
 * Errors: also DEL_EINVAL if m is NULL, not finite or not invertible. */
DEL_API del_status del_image_affine(del_tensor *dst, const del_tensor *src, const float *m, del_interp interp, int fill);

/* Warps src by the forward homography m (9 finite values, row-major 3x3)
 * as cv2.warpPerspective does. dst [h, w, C].
 * Errors: also DEL_EINVAL if m is NULL, not finite or singular. */
DEL_API del_status del_image_perspective(del_tensor *dst, const del_tensor *src, const float *m, del_interp interp, int fill);

/* The affine map taking three source points to three destination points
 * (x0, y0, x1, y1, x2, y2 each), as cv2.getAffineTransform; writes 6 values
 * to m_out. Errors: DEL_EINVAL (NULL argument, a non-finite coordinate,
 * collinear source points). */
DEL_API del_status del_affine_from_points(float *m_out, const float *src_pts, const float *dst_pts);

/* The homography taking four source points to four destination points
 * (8 values each), as cv2.getPerspectiveTransform; writes 9 values to m_out
 * with m_out[8] = 1. Errors: DEL_EINVAL (NULL argument, a non-finite
 * coordinate, a degenerate configuration such as three collinear points). */
DEL_API del_status del_perspective_from_points(float *m_out, const float *src_pts, const float *dst_pts);

/* ---- pipelines ----
 *
 * A del_augment is an ordered list of steps. Image steps (ops, random
 * crop, flips, RandAugment, TrivialAugmentWide, cutout) run on each image
 * with its own random stream, derived from (seed, epoch, index of the image
 * in its dataset); batch steps (CutMix, MixUp) run after them on the whole
 * normalised batch with a stream derived from (seed, epoch, batch number).
 * The output is therefore the same whatever the number of threads.
 * Threading: a pipeline is used by one thread at a time (the batch call
 * uses the library's thread pool internally); distinct pipelines are
 * independent. */
typedef struct del_augment del_augment;

/* Creates an empty pipeline (seed 0, nearest interpolation, fill 0). The
 * caller frees *out with del_augment_free. Errors: DEL_EINVAL (out NULL),
 * DEL_ENOMEM. */
DEL_API del_status del_augment_new(del_augment **out);

/* Frees aug; del_augment_free(NULL) is a no-op. */
DEL_API void del_augment_free(del_augment *aug);

/* Sets the seed of every random stream. Errors: DEL_EINVAL (aug NULL). */
DEL_API del_status del_augment_set_seed(del_augment *aug, uint64_t seed);

/* Interpolation and fill (0..255) used by the geometric steps added
 * after this call (ops, RandAugment, TrivialAugmentWide). torchvision's
 * RandAugment defaults are nearest and 0. Errors: DEL_EINVAL (aug NULL,
 * unknown interp, fill out of range). */
DEL_API del_status del_augment_set_interp(del_augment *aug, del_interp interp, int fill);

/* Adds the op `name` applied with probability p (0..1) at a magnitude drawn
 * uniformly in [lo, hi] (lo == hi: fixed). Ops and their magnitudes:
 *   identity, autocontrast, equalize, flip_h, flip_v: none (lo, hi ignored);
 *   shear_x, shear_y: shear m, -1..1;   rotate: degrees, -180..180;
 *   translate_x, translate_y: pixels, integers, -4096..4096;
 *   brightness, color, contrast, sharpness: factor, 0..10;
 *   posterize: bits, integers, 0..8;   solarize: threshold, 0..256;
 *   brightness_add: delta, integers, -255..255.
 * Integer magnitudes are drawn uniformly among the integers lo..hi.
 * Errors: DEL_EINVAL (aug or name NULL, unknown name: the message lists
 * the valid ones, p outside [0, 1], lo > hi, a magnitude outside the op's
 * range or not an integer where one is needed), DEL_ENOMEM. */
DEL_API del_status del_augment_add_op(del_augment *aug, const char *name, float p, float lo, float hi);

/* Adds a random crop: pad the image by pad (>= 0) pixels of fill (0..255)
 * on every side, then take a size_h x size_w window at a uniform position
 * (torchvision RandomCrop(size, padding=pad)). The crop must fit in the
 * padded image; that is checked when the pipeline meets an image (and by
 * del_augment_output_size). Errors: DEL_EINVAL (aug NULL, size < 1,
 * pad < 0, fill out of range), DEL_ENOMEM. */
DEL_API del_status del_augment_add_random_crop(del_augment *aug, int size_h, int size_w, int pad, int fill);

/* Adds a horizontal flip with probability p (0..1).
 * Errors: DEL_EINVAL (aug NULL, p out of range), DEL_ENOMEM. */
DEL_API del_status del_augment_add_flip_h(del_augment *aug, float p);

/* Adds RandAugment as torchvision 0.14 defines it: n ops (1..16) drawn
 * uniformly with replacement from its 14 (identity, shear_x, shear_y,
 * translate_x, translate_y, rotate, brightness, color, contrast,
 * sharpness, posterize, solarize, autocontrast, equalize), each at
 * magnitude bin m (0..30) of 31, signed ops negated with probability 1/2.
 * Errors: DEL_EINVAL (aug NULL, n or m out of range), DEL_ENOMEM. */
DEL_API del_status del_augment_add_randaugment(del_augment *aug, int n, int m);

/* Adds TrivialAugmentWide (torchvision 0.14): one op of the 14, a uniform
 * magnitude bin of 31 over the wider ranges, random sign.
 * Errors: DEL_EINVAL (aug NULL), DEL_ENOMEM. */
DEL_API del_status del_augment_add_trivialaugment(del_augment *aug);

/* Adds Cutout: with probability p (0..1) a size x size square (size >= 1)
 * of value fill (0..255) at a uniform centre, clipped to the image
 * (DeVries & Taylor 2017). Errors: DEL_EINVAL, DEL_ENOMEM. */
DEL_API del_status del_augment_add_cutout(del_augment *aug, float p, int size, int fill);

/* Batch steps, applied with probability p (0..1) to the whole batch with
 * one lambda ~ Beta(alpha, alpha) (alpha finite > 0), the partner of image
 * i being image n-1-i (timm's batch flip). CutMix pastes a box of sides
 * sqrt(1 - lambda) H x sqrt(1 - lambda) W (truncated) at a uniform centre,
 * clipped, from the partner and sets lambda = 1 - box area / image area;
 * MixUp sets x = lambda x + (1 - lambda) x_partner. Soft labels become
 * lambda y + (1 - lambda) y_partner. Errors: DEL_EINVAL, DEL_ENOMEM. */
DEL_API del_status del_augment_add_cutmix(del_augment *aug, float p, float alpha);
DEL_API del_status del_augment_add_mixup(del_augment *aug, float p, float alpha);

/* The number of steps added so far; 0 if aug is NULL. */
DEL_API int del_augment_num_steps(const del_augment *aug);

/* The size of the images the pipeline produces from height x width inputs
 * (random crops change it). Errors: DEL_EINVAL (NULL argument, a size < 1,
 * a crop that does not fit: the message names the step). */
DEL_API del_status del_augment_output_size(const del_augment *aug, int height, int width, int *out_height, int *out_width);

/* Runs the image steps on src (u8 [H, W, 1 or 3]) into dst (u8, the
 * output size, src's channels; not sharing memory with src) with the
 * stream of (seed, epoch, index). Batch steps are skipped.
 * Errors: DEL_EINVAL (NULL argument, bad shapes, index < 0, a crop that
 * does not fit), DEL_ENOMEM. */
DEL_API del_status del_augment_image(del_augment *aug, del_tensor *dst, const del_tensor *src, uint64_t epoch, int64_t index);

/* Builds a training batch: image i is ds's image indices[i] run through
 * the image steps (in parallel over images, stream (seed, epoch,
 * indices[i])), written to x (f32 [n, C, H', W'], the output size) as
 * (v / 255 - mean[c]) / std[c]; then the batch steps run with the stream
 * (seed, epoch, batch_no). soft_labels, if not NULL, receives f32
 * [n, num_classes] mixed one-hot labels (every selected image must have a
 * label in 0..num_classes-1); with soft_labels NULL, labels are not read
 * and num_classes is ignored. Errors: DEL_EINVAL (NULL argument,
 * n < 1, an index out of range, std <= 0, x or soft_labels of the wrong
 * dtype or shape, num_classes < 1, an unlabeled or out-of-range label,
 * a crop that does not fit: each message names the argument), DEL_ENOMEM. */
DEL_API del_status del_augment_batch(del_augment *aug, const del_dataset *ds, const int64_t *indices, int64_t n, uint64_t epoch, uint64_t batch_no, const float *mean, const float *std, del_tensor *x, del_tensor *soft_labels, int num_classes);

/* del_augment_batch with each image's own epoch and, optionally, the
 * labels to mix given by the caller (pseudo-labels, a teacher's soft
 * labels). Image i's stream is (seed, epochs[i], indices[i]); epochs NULL
 * gives every image `epoch`, as del_augment_batch. The batch steps
 * (CutMix, MixUp) use (seed, epoch, batch_no). targets, if not NULL, is an
 * f32 [n, num_classes] tensor of finite label rows that the batch steps
 * mix instead of the one-hot labels of ds (whose labels are then not read,
 * so unlabeled images may be in the batch); it may be soft_labels itself
 * (mixed in place). The trainers build their batches with this call: an
 * image drawn in a batch that runs into the next epoch gets that epoch's
 * stream.
 * Errors: as del_augment_batch, the messages naming
 * del_augment_batch_epochs; also DEL_EINVAL for targets without
 * soft_labels, of the wrong shape, or with a non-finite value. */
DEL_API del_status del_augment_batch_epochs(del_augment *aug, const del_dataset *ds, const int64_t *indices, const int64_t *epochs, int64_t n, uint64_t epoch, uint64_t batch_no, const float *mean, const float *std, del_tensor *x, const del_tensor *targets, del_tensor *soft_labels, int num_classes);

#ifdef __cplusplus
}
#endif
#endif
