/* Writes a PNG grid: one Fashion-MNIST image followed by n augmented
 * versions of it (each from another epoch's random stream).
 *
 *   build/examples/augment_grid [--op randaugment|trivialaugment|std|<op name>]
 *       [--n 15] [--index 0] [--cols 8] [--scale 3] [--seed 0] [--out grid.png] [--dir DIR]
 *
 * <op name> is any del_augment_add_op name (rotate, shear_x, ...), applied
 * always at a random magnitude over a moderate range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"
#include "del/io.h"

static int fail(const char *what)
{
    fprintf(stderr, "augment_grid: %s: %s\n", what, del_last_error());
    return 1;
}

static del_status add_steps(del_augment *aug, const char *op)
{
    if (strcmp(op, "randaugment") == 0)
        return del_augment_add_randaugment(aug, 2, 9);
    if (strcmp(op, "trivialaugment") == 0)
        return del_augment_add_trivialaugment(aug);
    if (strcmp(op, "std") == 0) {
        del_status st = del_augment_add_random_crop(aug, 28, 28, 2, 0);
        return st ? st : del_augment_add_flip_h(aug, 0.5f);
    }
    static const struct {
        const char *name;
        float lo, hi;
    } ranges[] = {{"rotate", -30, 30},       {"shear_x", -0.3f, 0.3f},   {"shear_y", -0.3f, 0.3f},
                  {"translate_x", -8, 8},    {"translate_y", -8, 8},     {"brightness", 0.3f, 1.9f},
                  {"color", 0.1f, 1.9f},     {"contrast", 0.1f, 1.9f},   {"sharpness", 0.1f, 1.9f},
                  {"posterize", 2, 6},       {"solarize", 64, 192},      {"brightness_add", -80, 80}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (strcmp(op, ranges[i].name) == 0)
            return del_augment_add_op(aug, op, 1.0f, ranges[i].lo, ranges[i].hi);
    return del_augment_add_op(aug, op, 1.0f, 0.0f, 0.0f);
}

int main(int argc, char **argv)
{
    const char *op = "randaugment", *out = "grid.png", *dir = NULL;
    int n = 15, cols = 8, scale = 3;
    long long index = 0, seed = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--op") == 0)
            op = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--index") == 0)
            index = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--cols") == 0)
            cols = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--scale") == 0)
            scale = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else {
            fprintf(stderr, "augment_grid: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n < 1 || n > 255 || cols < 1 || scale < 1 || scale > 16 || index < 0) {
        fprintf(stderr, "augment_grid: need 1 <= n <= 255, cols >= 1, 1 <= scale <= 16, index >= 0\n");
        return 2;
    }
    int rc = 1;
    del_dataset *ds = NULL;
    del_augment *aug = NULL;
    del_tensor *src = NULL, *dst = NULL, *tiles = NULL, *grid = NULL;
    if (del_dataset_load_fashion_mnist(&ds, dir, DEL_SPLIT_TRAIN) != DEL_OK) {
        rc = fail("loading Fashion-MNIST");
        goto cleanup;
    }
    if (index >= del_dataset_size(ds)) {
        fprintf(stderr, "augment_grid: --index must be below %lld\n", (long long)del_dataset_size(ds));
        goto cleanup;
    }
    const int h = del_dataset_height(ds), w = del_dataset_width(ds), c = del_dataset_channels(ds);
    const size_t img_bytes = (size_t)h * (size_t)w * (size_t)c;
    int oh, ow;
    if (del_augment_new(&aug) || del_augment_set_seed(aug, (uint64_t)seed) || add_steps(aug, op) ||
        del_augment_output_size(aug, h, w, &oh, &ow)) {
        rc = fail("building the pipeline");
        goto cleanup;
    }
    if (oh != h || ow != w) {
        fprintf(stderr, "augment_grid: the pipeline must keep the image size\n");
        goto cleanup;
    }
    /* Tiles are the images enlarged scale times (nearest) for visibility. */
    const int64_t ishape[3] = {h, w, c}, tshape[4] = {n + 1, (int64_t)h * scale, (int64_t)w * scale, c};
    if (del_tensor_new(&src, DEL_DTYPE_U8, 3, ishape) || del_tensor_new(&dst, DEL_DTYPE_U8, 3, ishape) ||
        del_tensor_new(&tiles, DEL_DTYPE_U8, 4, tshape) ||
        del_tensor_copy_from(src, del_dataset_images(ds) + (size_t)index * img_bytes, img_bytes)) {
        rc = fail("allocating");
        goto cleanup;
    }
    uint8_t *t = del_tensor_data(tiles);
    for (int k = 0; k <= n; k++) {
        const uint8_t *px = del_tensor_data(src);
        if (k > 0) {
            if (del_augment_image(aug, dst, src, (uint64_t)k, index) != DEL_OK) {
                rc = fail("augmenting");
                goto cleanup;
            }
            px = del_tensor_data(dst);
        }
        uint8_t *tile = t + (size_t)k * img_bytes * (size_t)(scale * scale);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++)
                memcpy(tile + ((size_t)y * (size_t)(w * scale) + (size_t)x) * (size_t)c,
                       px + ((size_t)(y / scale) * (size_t)w + (size_t)(x / scale)) * (size_t)c, (size_t)c);
    }
    int gh, gw;
    if (del_image_grid_size(n + 1, h * scale, w * scale, cols, 2, &gh, &gw)) {
        rc = fail("sizing the grid");
        goto cleanup;
    }
    const int64_t gshape[3] = {gh, gw, c};
    if (del_tensor_new(&grid, DEL_DTYPE_U8, 3, gshape) || del_image_grid(grid, tiles, cols, 2, 255) ||
        del_image_write_png(grid, out)) {
        rc = fail("writing the grid");
        goto cleanup;
    }
    printf("augment_grid: wrote %s (%d x %d): image %lld and %d versions with '%s'\n", out, gw, gh, index, n, op);
    rc = 0;
cleanup:
    del_tensor_free(grid);
    del_tensor_free(tiles);
    del_tensor_free(dst);
    del_tensor_free(src);
    del_augment_free(aug);
    del_dataset_free(ds);
    return rc;
}
