/* libdel — files of data: tensor files (one tensor of any dtype and shape,
 * e.g. a teacher's soft labels computed once and kept), writing PNGs and
 * tiling images into a grid, e.g. to look at what an augmentation
 * pipeline does.
 * Threading: the calls are reentrant; a tensor being saved must not be
 * changed by another thread meanwhile. */
#ifndef DEL_IO_H
#define DEL_IO_H

#include "common.h"
#include "model.h" /* del_save_flags, del_buffer_free */
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Tensor files (docs/file-format.md, "Tensor files") ----
 * The container of model files with the magic "DELT": the dtype, the shape
 * and the elements (little-endian, zlib-compressed, CRC-32), the same
 * bytes on every host. The conventional extension is ".delt". */

/* Saves t (any dtype, 1..4 dims) to path. The file is written as model
 * files are (del_model_save): to a fresh temporary file beside path,
 * fsynced and renamed over it, so a reader sees the old file or the whole
 * new one; a symbolic link is saved through (its target is replaced, the
 * link kept), and temporary files left by killed writers of the same file
 * are removed. An f32 tensor with a NaN or infinite element is refused:
 * stored soft labels or features are meant to be finite, and a diverged
 * teacher's output would otherwise replace a good file;
 * del_tensor_save_flags with DEL_SAVE_ALLOW_NONFINITE stores such values
 * as they are (their bit patterns). t is only read.
 * Errors: DEL_EINVAL (t or path NULL, path empty: nothing is created, t
 * without a shape), DEL_ENUMERIC (a NaN or infinity in an f32 tensor: the
 * message names the first element), DEL_ENOMEM, DEL_EIO (cannot write or
 * rename: the message names the file and ends with the system's reason;
 * an existing file is left untouched). */
DEL_API del_status del_tensor_save(const del_tensor *t, const char *path);

/* del_tensor_save with flags (del_save_flags, model.h): with
 * DEL_SAVE_ALLOW_NONFINITE, NaN and infinite f32 elements are saved as
 * they are. Errors: those of del_tensor_save (DEL_ENUMERIC only without
 * DEL_SAVE_ALLOW_NONFINITE); DEL_EINVAL also for unknown flags. */
DEL_API del_status del_tensor_save_flags(const del_tensor *t, const char *path, int flags);

/* The bytes del_tensor_save would write, in *out (the caller frees it with
 * del_buffer_free), their number in *size. Errors: DEL_EINVAL (NULL
 * argument, t without a shape), DEL_ENUMERIC (as del_tensor_save),
 * DEL_ENOMEM. *out is NULL and *size 0 on failure. */
DEL_API del_status del_tensor_save_buffer(const del_tensor *t, void **out, size_t *size);

/* del_tensor_save_buffer with flags (as del_tensor_save_flags). Errors:
 * those of del_tensor_save_buffer (DEL_ENUMERIC only without
 * DEL_SAVE_ALLOW_NONFINITE); DEL_EINVAL also for unknown flags. */
DEL_API del_status del_tensor_save_buffer_flags(const del_tensor *t, void **out, size_t *size, int flags);

/* Loads the tensor saved at path into *out, a new owning tensor (the
 * caller frees it with del_tensor_free) of the saved dtype, shape and
 * elements, bit for bit (NaN and infinity included, if saved with
 * DEL_SAVE_ALLOW_NONFINITE). The whole file is checked before the tensor
 * is allocated: container (magic, version, checksums, sizes), dtype, ndim,
 * each dim >= 1, the element bytes = numel x item size, nothing after them.
 * Errors: DEL_EINVAL (out or path NULL, path empty), DEL_EIO (cannot open
 * or read: the message names the file and gives the reason), DEL_EFORMAT
 * (not a tensor file: a model file or checkpoint is named as such, with
 * the call that loads it; written by a newer libdel: the message gives
 * both format versions; truncated or corrupt: the message says what is
 * wrong), DEL_ENOMEM. *out is NULL on failure. */
DEL_API del_status del_tensor_load(del_tensor **out, const char *path);

/* del_tensor_load from the size bytes at data (del_tensor_save_buffer's,
 * or a file's contents); data is only read and may be freed afterwards.
 * Errors: as del_tensor_load (no DEL_EIO; data NULL with size > 0 is
 * DEL_EINVAL). */
DEL_API del_status del_tensor_load_buffer(del_tensor **out, const void *data, size_t size);

/* ---- Images ---- */

/* Writes img (u8 [H, W, 1 or 3]: greyscale or RGB, H and W in
 * 1..65535) to path as an 8-bit PNG. The file is written to a fresh
 * temporary file beside path, fsynced and renamed over it (as model files
 * are, del_model_save: symbolic links are saved through, temporary files
 * left by killed writers are removed), so a crash never leaves a
 * half-written file and an existing file is only ever replaced whole.
 * Errors: DEL_EINVAL (NULL argument, empty path, img not u8 [H, W, 1 or
 * 3], a size out of range), DEL_ENOMEM, DEL_EIO (cannot write or rename:
 * the message names the path and ends with the system's reason). */
DEL_API del_status del_image_write_png(const del_tensor *img, const char *path);

/* The size of the grid del_image_grid makes of n images of h x w pixels,
 * cols per row, with pad pixels between and around them.
 * Errors: DEL_EINVAL (NULL argument, n, h, w or cols < 1, pad < 0, a
 * grid side above 65535). */
DEL_API del_status del_image_grid_size(int n, int h, int w, int cols, int pad, int *out_height, int *out_width);

/* Tiles the N images of images (u8 [N, H, W, C]) row by row into dst (u8
 * [grid height, grid width, C], see del_image_grid_size), cols per row,
 * pad pixels of value fill (0..255) between and around them; cells after
 * the last image are fill. Errors: DEL_EINVAL (NULL argument, bad dtype
 * or shape of either tensor: the message names it, cols < 1, pad < 0,
 * fill out of range, a grid side above 65535); every message names
 * del_image_grid. */
DEL_API del_status del_image_grid(del_tensor *dst, const del_tensor *images, int cols, int pad, int fill);

#ifdef __cplusplus
}
#endif
#endif
