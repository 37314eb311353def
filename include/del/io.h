/* libdel — image files: writing PNGs and tiling images into a grid, e.g.
 * to look at what an augmentation pipeline does.
 * Threading: the calls are reentrant. */
#ifndef DEL_IO_H
#define DEL_IO_H

#include "common.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

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
