/* PNG writer and image grids: the file is decoded here by hand (chunk
 * walk, CRC-32, zlib inflate, filter 0 rows) and must give back the pixels. */
#include <unistd.h>
#include <zlib.h>

#include "del/io.h"
#include "testutil.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *read_all(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)*len);
    ck_assert(fread(buf, 1, (size_t)*len, f) == (size_t)*len);
    fclose(f);
    return buf;
}

/* Decodes an 8-bit, non-interlaced PNG written with filter 0 rows. */
static uint8_t *decode(const char *path, int *h, int *w, int *c)
{
    long len;
    uint8_t *buf = read_all(path, &len);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert(len > 8 && memcmp(buf, sig, 8) == 0);
    uint8_t *idat = NULL;
    size_t idat_len = 0;
    int seen_iend = 0;
    for (long pos = 8; pos < len;) {
        ck_assert(pos + 12 <= len);
        uint32_t n = be32(buf + pos);
        const uint8_t *type = buf + pos + 4, *data = buf + pos + 8;
        ck_assert(pos + 12 + (long)n <= len);
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + n);
        ck_assert_msg(crc == be32(data + n), "bad CRC in chunk %.4s", (const char *)type);
        if (memcmp(type, "IHDR", 4) == 0) {
            ck_assert_int_eq(n, 13);
            *w = (int)be32(data);
            *h = (int)be32(data + 4);
            ck_assert_int_eq(data[8], 8);
            ck_assert(data[9] == 0 || data[9] == 2);
            *c = data[9] == 2 ? 3 : 1;
            ck_assert(data[10] == 0 && data[11] == 0 && data[12] == 0);
        } else if (memcmp(type, "IDAT", 4) == 0) {
            idat = realloc(idat, idat_len + n);
            memcpy(idat + idat_len, data, n);
            idat_len += n;
        } else if (memcmp(type, "IEND", 4) == 0) {
            seen_iend = 1;
            ck_assert(pos + 12 == len);
        }
        pos += 12 + (long)n;
    }
    ck_assert(seen_iend && idat);
    size_t row = (size_t)*w * (size_t)*c;
    uLongf raw_len = (uLongf)(*h * (row + 1));
    uint8_t *raw = malloc(raw_len);
    ck_assert_int_eq(uncompress(raw, &raw_len, idat, (uLong)idat_len), Z_OK);
    ck_assert_int_eq(raw_len, *h * (row + 1));
    uint8_t *px = malloc((size_t)*h * row);
    for (int y = 0; y < *h; y++) {
        ck_assert_int_eq(raw[(size_t)y * (row + 1)], 0);
        memcpy(px + (size_t)y * row, raw + (size_t)y * (row + 1) + 1, row);
    }
    free(raw);
    free(idat);
    free(buf);
    return px;
}

static void roundtrip(int h, int w, int c)
{
    const int64_t shape[3] = {h, w, c};
    del_tensor *img = NULL;
    ck_assert_del_ok(del_tensor_new(&img, DEL_DTYPE_U8, 3, shape));
    uint8_t *p = del_tensor_data(img);
    for (int i = 0; i < h * w * c; i++)
        p[i] = (uint8_t)(i * 37 + 11);
    char path[] = "/tmp/del_png_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_del_ok(del_image_write_png(img, path));
    int dh, dw, dc;
    uint8_t *back = decode(path, &dh, &dw, &dc);
    ck_assert_int_eq(dh, h);
    ck_assert_int_eq(dw, w);
    ck_assert_int_eq(dc, c);
    ck_assert(memcmp(back, p, (size_t)h * (size_t)w * (size_t)c) == 0);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(access(tmp, F_OK) != 0, "the temporary file was left behind");
    free(back);
    remove(path);
    del_tensor_free(img);
}

START_TEST(test_png_rgb_and_grey_decode_to_the_same_pixels)
{
    roundtrip(5, 7, 3);
    roundtrip(3, 4, 1);
    roundtrip(1, 1, 1);
    roundtrip(64, 48, 3);
}
END_TEST

START_TEST(test_png_errors_name_the_argument_or_path)
{
    const int64_t ok_shape[3] = {2, 2, 3}, bad_shape[3] = {2, 2, 2};
    del_tensor *img = NULL, *bad = NULL;
    ck_assert_del_ok(del_tensor_new(&img, DEL_DTYPE_U8, 3, ok_shape));
    ck_assert_del_ok(del_tensor_new(&bad, DEL_DTYPE_U8, 3, bad_shape));
    ck_assert_del_err(del_image_write_png(NULL, "/tmp/x.png"), DEL_EINVAL, "img");
    ck_assert_del_err(del_image_write_png(img, NULL), DEL_EINVAL, "path");
    ck_assert_del_err(del_image_write_png(bad, "/tmp/x.png"), DEL_EINVAL, "'img'");
    ck_assert_del_err(del_image_write_png(img, "/nonexistent-dir/a.png"), DEL_EIO, "/nonexistent-dir/a.png");
    del_tensor_free(img);
    del_tensor_free(bad);
}
END_TEST

START_TEST(test_grid_places_images_row_by_row_with_padding)
{
    /* Three 2 x 2 grey images, 2 per row, pad 1: 7 x 7 grid. */
    const int64_t ishape[4] = {3, 2, 2, 1};
    del_tensor *imgs = NULL, *grid = NULL;
    ck_assert_del_ok(del_tensor_new(&imgs, DEL_DTYPE_U8, 4, ishape));
    uint8_t *p = del_tensor_data(imgs);
    for (int i = 0; i < 12; i++)
        p[i] = (uint8_t)(i + 1);
    int gh, gw;
    ck_assert_del_ok(del_image_grid_size(3, 2, 2, 2, 1, &gh, &gw));
    ck_assert_int_eq(gh, 7);
    ck_assert_int_eq(gw, 7);
    const int64_t gshape[3] = {7, 7, 1};
    ck_assert_del_ok(del_tensor_new(&grid, DEL_DTYPE_U8, 3, gshape));
    ck_assert_del_ok(del_image_grid(grid, imgs, 2, 1, 200));
    static const uint8_t want[49] = {
        200, 200, 200, 200, 200, 200, 200, /* */
        200, 1,   2,   200, 5,   6,   200, /* */
        200, 3,   4,   200, 7,   8,   200, /* */
        200, 200, 200, 200, 200, 200, 200, /* */
        200, 9,   10,  200, 200, 200, 200, /* */
        200, 11,  12,  200, 200, 200, 200, /* */
        200, 200, 200, 200, 200, 200, 200,
    };
    ck_assert(memcmp(del_tensor_data(grid), want, 49) == 0);
    ck_assert_del_err(del_image_grid(grid, imgs, 3, 1, 200), DEL_EINVAL, "'dst'");
    ck_assert_del_err(del_image_grid(grid, imgs, 2, 1, 256), DEL_EINVAL, "'fill'");
    ck_assert_del_err(del_image_grid_size(3, 2, 2, 0, 1, &gh, &gw), DEL_EINVAL, "'cols'");
    del_tensor_free(imgs);
    del_tensor_free(grid);
}
END_TEST

/* del_image_grid computes the grid size itself; a bad cols or pad, or a
 * grid too large, is reported as del_image_grid's error, not as the
 * error of del_image_grid_size (which the caller did not call). */
#define ck_assert_error_of(fn_name, expr, needle)                                            \
    do {                                                                                     \
        ck_assert_del_err(expr, DEL_EINVAL, needle);                                         \
        ck_assert_msg(strncmp(del_last_error(), fn_name ": ", strlen(fn_name ": ")) == 0, \
                      "%s: message '%s' does not start with '%s: '", #expr, del_last_error(), fn_name); \
    } while (0)

START_TEST(test_grid_errors_name_del_image_grid)
{
    const int64_t ishape[4] = {3, 2, 2, 1}, tall_shape[4] = {2, 40000, 1, 1};
    del_tensor *imgs = NULL, *tall = NULL, *grid = NULL;
    ck_assert_del_ok(del_tensor_new(&imgs, DEL_DTYPE_U8, 4, ishape));
    ck_assert_del_ok(del_tensor_new(&tall, DEL_DTYPE_U8, 4, tall_shape));
    ck_assert_del_ok(del_tensor_new(&grid, DEL_DTYPE_U8, 3, (const int64_t[]){7, 7, 1}));
    int gh = -1, gw = -1;
    ck_assert_error_of("del_image_grid", del_image_grid(grid, imgs, 0, 1, 200), "'cols'");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, imgs, -3, 1, 200), "'cols'");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, imgs, 2, -1, 200), "'pad'");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, tall, 1, 0, 0), "at most 65535");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, imgs, 3, 1, 200), "'dst'");
    ck_assert_error_of("del_image_grid", del_image_grid(NULL, imgs, 2, 1, 200), "'dst'");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, NULL, 2, 1, 200), "'images'");
    ck_assert_error_of("del_image_grid", del_image_grid(grid, imgs, 2, 1, -1), "'fill'");
    /* The size query keeps its own name. */
    ck_assert_error_of("del_image_grid_size", del_image_grid_size(3, 2, 2, 0, 1, &gh, &gw), "'cols'");
    ck_assert_error_of("del_image_grid_size", del_image_grid_size(2, 40000, 1, 1, 0, &gh, &gw), "at most 65535");
    ck_assert_error_of("del_image_grid_size", del_image_grid_size(3, 2, 2, 2, 1, NULL, &gw), "'out_height'");
    ck_assert_int_eq(gh, -1);
    ck_assert_int_eq(gw, -1);
    del_tensor_free(imgs);
    del_tensor_free(tall);
    del_tensor_free(grid);
}
END_TEST

static Suite *png_suite(void)
{
    Suite *s = suite_create("png");
    TCase *tc = tcase_create("png");
    tcase_add_test(tc, test_png_rgb_and_grey_decode_to_the_same_pixels);
    tcase_add_test(tc, test_png_errors_name_the_argument_or_path);
    tcase_add_test(tc, test_grid_places_images_row_by_row_with_padding);
    tcase_add_test(tc, test_grid_errors_name_del_image_grid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(png_suite());
}
