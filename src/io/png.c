/* PNG writing (8-bit greyscale or RGB, no filtering, one IDAT chunk) and
 * image grids. PNG layout: the 8-byte signature, then chunks of
 * big-endian length, 4-byte type, data, CRC-32 over type and data. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "del/io.h"
#include "io/format.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends one chunk: big-endian length, type, data, CRC-32 of type + data
 * (contiguous in the buffer, so one del_crc32 call covers both). */
static void put_chunk(del_writer *w, const char type[4], const uint8_t *data, uint32_t len)
{
    uint8_t be[4];
    put_be32(be, len);
    del_writer_bytes(w, be, 4);
    size_t start = w->len;
    del_writer_bytes(w, type, 4);
    if (len)
        del_writer_bytes(w, data, len);
    if (w->oom)
        return;
    put_be32(be, del_crc32(w->data + start, 4 + (size_t)len));
    del_writer_bytes(w, be, 4);
}

DEL_API del_status del_image_write_png(const del_tensor *img, const char *path)
{
    static const char fn[] = "del_image_write_png";
    if (!img)
        return del_error_null(fn, "img");
    del_status st = del_path_check(path, "path", fn);
    if (st != DEL_OK)
        return st;
    char got[64];
    if (img->dtype != DEL_DTYPE_U8 || img->ndim != 3 || (img->shape[2] != 1 && img->shape[2] != 3) ||
        img->shape[0] > 65535 || img->shape[1] > 65535)
        return del_error(DEL_EINVAL, "%s: 'img' must be u8 [H, W, 1 or 3] with H, W <= 65535, got %s", fn,
                         del_tensor_shape_str(img, got, sizeof got));
    const uint32_t h = (uint32_t)img->shape[0], w = (uint32_t)img->shape[1], c = (uint32_t)img->shape[2];
    const size_t row = (size_t)w * c, raw_len = (size_t)h * (row + 1);
    del_writer out;
    del_writer_init(&out);
    uint8_t *raw = malloc(raw_len);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen);
    if (!raw || !z) {
        st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    /* Filter type 0 (none) before every row. */
    for (uint32_t y = 0; y < h; y++) {
        raw[(size_t)y * (row + 1)] = 0;
        memcpy(raw + (size_t)y * (row + 1) + 1, (const uint8_t *)img->data + (size_t)y * row, row);
    }
    if (compress2(z, &zlen, raw, (uLong)raw_len, 6) != Z_OK || zlen > 0x7fffffffu) {
        st = del_error(DEL_ENOMEM, "%s: zlib could not compress the image", fn);
        goto cleanup;
    }
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;                /* bit depth */
    ihdr[9] = c == 3 ? 2 : 0;   /* colour type: RGB or greyscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    del_writer_bytes(&out, sig, sizeof sig);
    put_chunk(&out, "IHDR", ihdr, 13);
    put_chunk(&out, "IDAT", z, (uint32_t)zlen);
    put_chunk(&out, "IEND", NULL, 0);
    if (out.oom) {
        st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    /* The shared temp-file + rename writer: a crash never leaves a
     * half-written PNG, and an existing file is only replaced whole. */
    st = del_file_write_atomic(path, out.data, out.len, fn);
cleanup:
    free(raw);
    free(z);
    del_writer_free(&out);
    return st;
}

/* The grid size for both public calls; the messages name fn, the
 * function the caller called. */
static del_status grid_size(const char *fn, int n, int h, int w, int cols, int pad, int *out_height,
                            int *out_width)
{
    /* One check per argument, so that del_image_grid (whose n, h, w come
     * from a tensor and are >= 1) reports only its own. */
    const struct {
        const char *name;
        int value, min;
    } args[] = {{"n", n, 1}, {"h", h, 1}, {"w", w, 1}, {"cols", cols, 1}, {"pad", pad, 0}};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        if (args[i].value < args[i].min)
            return del_error(DEL_EINVAL, "%s: '%s' must be >= %d, got %d", fn, args[i].name, args[i].min,
                             args[i].value);
    if (cols > n)
        cols = n;
    int64_t rows = (n + (int64_t)cols - 1) / cols;
    int64_t gh = rows * h + (rows + 1) * (int64_t)pad, gw = (int64_t)cols * w + ((int64_t)cols + 1) * pad;
    if (gh > 65535 || gw > 65535)
        return del_error(DEL_EINVAL, "%s: the grid (%lld x %lld) must be at most 65535 on a side", fn,
                         (long long)gh, (long long)gw);
    *out_height = (int)gh;
    *out_width = (int)gw;
    return DEL_OK;
}

DEL_API del_status del_image_grid_size(int n, int h, int w, int cols, int pad, int *out_height, int *out_width)
{
    static const char fn[] = "del_image_grid_size";
    if (!out_height)
        return del_error_null(fn, "out_height");
    if (!out_width)
        return del_error_null(fn, "out_width");
    return grid_size(fn, n, h, w, cols, pad, out_height, out_width);
}

DEL_API del_status del_image_grid(del_tensor *dst, const del_tensor *images, int cols, int pad, int fill)
{
    static const char fn[] = "del_image_grid";
    char got[64];
    if (!dst)
        return del_error_null(fn, "dst");
    if (!images)
        return del_error_null(fn, "images");
    if (images->dtype != DEL_DTYPE_U8 || images->ndim != 4 || (images->shape[3] != 1 && images->shape[3] != 3) ||
        images->shape[0] > 65535 || images->shape[1] > 65535 || images->shape[2] > 65535)
        return del_error(DEL_EINVAL, "%s: 'images' must be u8 [N, H, W, 1 or 3], got %s", fn,
                         del_tensor_shape_str(images, got, sizeof got));
    if (fill < 0 || fill > 255)
        return del_error(DEL_EINVAL, "%s: 'fill' must be in 0..255, got %d", fn, fill);
    const int n = (int)images->shape[0], h = (int)images->shape[1], w = (int)images->shape[2];
    const int c = (int)images->shape[3];
    int gh, gw;
    del_status st = grid_size(fn, n, h, w, cols, pad, &gh, &gw);
    if (st != DEL_OK)
        return st;
    const int64_t want[3] = {gh, gw, c};
    if (!del_tensor_has_shape(dst, DEL_DTYPE_U8, 3, want))
        return del_error(DEL_EINVAL, "%s: 'dst' must be u8 [%d, %d, %d], got %s", fn, gh, gw, c,
                         del_tensor_shape_str(dst, got, sizeof got));
    if (cols > n)
        cols = n;
    uint8_t *out = dst->data;
    const uint8_t *in = images->data;
    memset(out, fill, (size_t)gh * (size_t)gw * (size_t)c);
    const size_t row = (size_t)w * (size_t)c, grow = (size_t)gw * (size_t)c;
    for (int i = 0; i < n; i++) {
        size_t top = (size_t)(i / cols) * (size_t)(h + pad) + (size_t)pad;
        size_t left = ((size_t)(i % cols) * (size_t)(w + pad) + (size_t)pad) * (size_t)c;
        for (int y = 0; y < h; y++)
            memcpy(out + (top + (size_t)y) * grow + left, in + ((size_t)i * (size_t)h + (size_t)y) * row, row);
    }
    return DEL_OK;
}
