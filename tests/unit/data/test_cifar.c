/* Tests of src/data/cifar.c: the CIFAR-10 binary reader on small files
 * written here in the CIFAR-10 format (CIFAR-10 itself is not installed),
 * plain and gzip, and every malformed case. */
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define PLANE 1024
#define RECORD 3073

static char tmpdir[] = "/tmp/del_test_cifar_XXXXXX";

/* tmpdir/name in a static buffer (one path at a time per slot). */
static const char *tmp_path(int slot, const char *name)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
    return paths[slot];
}

static const char *write_file(int slot, const char *name, const uint8_t *bytes, size_t n, int gz)
{
    const char *path = tmp_path(slot, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        if (n > 0)
            ck_assert_int_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        if (n > 0)
            ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
    return path;
}

/* Record 0: label 6, planes R = 10, G = 20, B = 30 everywhere except pixel
 * (y 1, x 2), plane index 34, which is (200, 201, 202), and the last pixel
 * (31, 31), index 1023, which is (1, 2, 3).
 * Record 1: label 9, R[i] = i mod 256, G[i] = i / 4, B[i] = 255 - i mod 256. */
static void make_two_records(uint8_t *buf)
{
    uint8_t *r0 = buf, *r1 = buf + RECORD;
    r0[0] = 6;
    memset(r0 + 1, 10, PLANE);
    memset(r0 + 1 + PLANE, 20, PLANE);
    memset(r0 + 1 + 2 * PLANE, 30, PLANE);
    r0[1 + 34] = 200;
    r0[1 + PLANE + 34] = 201;
    r0[1 + 2 * PLANE + 34] = 202;
    r0[1 + 1023] = 1;
    r0[1 + PLANE + 1023] = 2;
    r0[1 + 2 * PLANE + 1023] = 3;
    r1[0] = 9;
    for (int i = 0; i < PLANE; i++) {
        r1[1 + i] = (uint8_t)(i % 256);
        r1[1 + PLANE + i] = (uint8_t)(i / 4);
        r1[1 + 2 * PLANE + i] = (uint8_t)(255 - i % 256);
    }
}

static void check_two_records(const del_dataset *ds)
{
    ck_assert_int_eq(del_dataset_size(ds), 2);
    ck_assert_int_eq(del_dataset_height(ds), 32);
    ck_assert_int_eq(del_dataset_width(ds), 32);
    ck_assert_int_eq(del_dataset_channels(ds), 3);
    ck_assert_int_eq(del_dataset_labels(ds)[0], 6);
    ck_assert_int_eq(del_dataset_labels(ds)[1], 9);
    ck_assert_int_eq(del_dataset_num_classes(ds), 10);
    const uint8_t *img = del_dataset_images(ds);
    /* image 0, HWC: pixel (y, x) starts at byte (32 y + x) * 3 */
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            const uint8_t *px = img + (32 * y + x) * 3;
            uint8_t want[3] = {10, 20, 30};
            if (y == 1 && x == 2) {
                want[0] = 200, want[1] = 201, want[2] = 202;
            } else if (y == 31 && x == 31) {
                want[0] = 1, want[1] = 2, want[2] = 3;
            }
            ck_assert_msg(memcmp(px, want, 3) == 0, "image 0 pixel (%d, %d) = (%d, %d, %d)", y, x, px[0], px[1],
                          px[2]);
        }
    ck_assert_int_eq(img[102], 200); /* (1, 2): (32 + 2) * 3 = 102 */
    ck_assert_int_eq(img[3071], 3);
    /* image 1 starts at byte 3072; pixel (y 4, x 5) is plane index 133 */
    const uint8_t *px = img + 3072 + (32 * 4 + 5) * 3;
    ck_assert_int_eq(px[0], 133);
    ck_assert_int_eq(px[1], 33);
    ck_assert_int_eq(px[2], 122);
    /* pixel (31, 31), index 1023 */
    px = img + 3072 + 1023 * 3;
    ck_assert_int_eq(px[0], 255);
    ck_assert_int_eq(px[1], 255);
    ck_assert_int_eq(px[2], 0);
}

START_TEST(test_load_cifar10_converts_chw_records_to_hwc)
{
    static uint8_t buf[2 * RECORD];
    make_two_records(buf);
    const char *path = write_file(0, "two.bin", buf, sizeof buf, 0);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_cifar10(&ds, path));
    check_two_records(ds);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_load_cifar10_reads_gzip_files)
{
    static uint8_t buf[2 * RECORD];
    make_two_records(buf);
    const char *path = write_file(0, "two.bin.gz", buf, sizeof buf, 1);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_cifar10(&ds, path));
    check_two_records(ds);
    del_dataset_free(ds);
}
END_TEST

/* More records than the reader's first allocation (1024), so that it
 * grows; each image is filled with its index mod 251. */
START_TEST(test_load_cifar10_reads_many_records_in_order)
{
    enum { COUNT = 2500 };
    uint8_t *buf = malloc((size_t)COUNT * RECORD);
    ck_assert_ptr_nonnull(buf);
    for (int k = 0; k < COUNT; k++) {
        buf[(size_t)k * RECORD] = (uint8_t)(k % 10);
        memset(buf + (size_t)k * RECORD + 1, k % 251, RECORD - 1);
    }
    const char *path = write_file(0, "many.bin.gz", buf, (size_t)COUNT * RECORD, 1);
    free(buf);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_cifar10(&ds, path));
    ck_assert_int_eq(del_dataset_size(ds), COUNT);
    for (int k = 0; k < COUNT; k += 37) {
        ck_assert_int_eq(del_dataset_labels(ds)[k], k % 10);
        const uint8_t *img = del_dataset_images(ds) + (size_t)k * 3072;
        ck_assert_int_eq(img[0], k % 251);
        ck_assert_int_eq(img[3071], k % 251);
    }
    ck_assert_int_eq(del_dataset_labels(ds)[COUNT - 1], (COUNT - 1) % 10);
    del_dataset_free(ds);
}
END_TEST

/* One record per file, label = the file's number - 1 for the train files and
 * 7 for the test file; the pixel bytes are the label + 100. */
static void write_one_record_file(const char *name, int label, int gz)
{
    static uint8_t rec[RECORD];
    rec[0] = (uint8_t)label;
    memset(rec + 1, label + 100, RECORD - 1);
    write_file(0, name, rec, RECORD, gz);
}

START_TEST(test_load_cifar10_dir_concatenates_train_batches_in_order)
{
    char name[64];
    for (int i = 1; i <= 5; i++) {
        /* the odd ones gzip-compressed, named "<name>.gz" */
        snprintf(name, sizeof name, i % 2 ? "data_batch_%d.bin.gz" : "data_batch_%d.bin", i);
        write_one_record_file(name, i - 1, i % 2);
    }
    write_one_record_file("test_batch.bin", 7, 0);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_cifar10_dir(&ds, tmpdir, DEL_SPLIT_TRAIN));
    ck_assert_int_eq(del_dataset_size(ds), 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(del_dataset_labels(ds)[i], i);
        ck_assert_int_eq(del_dataset_images(ds)[i * 3072 + 1500], i + 100);
    }
    ck_assert_int_eq(del_dataset_num_classes(ds), 5);
    del_dataset_free(ds);

    ck_assert_del_ok(del_dataset_load_cifar10_dir(&ds, tmpdir, DEL_SPLIT_TEST));
    ck_assert_int_eq(del_dataset_size(ds), 1);
    ck_assert_int_eq(del_dataset_labels(ds)[0], 7);
    del_dataset_free(ds);

    /* a missing batch fails the whole split and names the file */
    unlink(tmp_path(1, "data_batch_4.bin"));
    ds = (del_dataset *)&ds;
    ck_assert_del_err(del_dataset_load_cifar10_dir(&ds, tmpdir, DEL_SPLIT_TRAIN), DEL_EIO, "data_batch_4.bin");
    ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(test_load_cifar10_rejects_bad_arguments)
{
    del_dataset *ds = NULL;
    ck_assert_del_err(del_dataset_load_cifar10(NULL, "x.bin"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_dataset_load_cifar10(&ds, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_dataset_load_cifar10(&ds, ""), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_dataset_load_cifar10_dir(NULL, tmpdir, DEL_SPLIT_TEST), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_dataset_load_cifar10_dir(&ds, NULL, DEL_SPLIT_TEST), DEL_EINVAL, "'dir'");
    ck_assert_del_err(del_dataset_load_cifar10_dir(&ds, "", DEL_SPLIT_TEST), DEL_EINVAL, "'dir'");
    ck_assert_del_err(del_dataset_load_cifar10_dir(&ds, tmpdir, (del_split)2), DEL_EINVAL, "'split'");
    ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(test_load_cifar10_reports_missing_file)
{
    del_dataset *ds = NULL;
    const char *path = tmp_path(0, "absent.bin");
    ck_assert_del_err(del_dataset_load_cifar10(&ds, path), DEL_EIO, path);
    ck_assert_ptr_null(ds);
}
END_TEST

/* Writes bytes to a file (plain or gzip) and expects DEL_EFORMAT with a
 * message naming the file and containing needle. */
static void expect_format_error(const uint8_t *bytes, size_t n, int gz, const char *needle)
{
    const char *path = write_file(0, gz ? "bad.bin.gz" : "bad.bin", bytes, n, gz);
    del_dataset *ds = (del_dataset *)&ds;
    ck_assert_del_err(del_dataset_load_cifar10(&ds, path), DEL_EFORMAT, needle);
    ck_assert_msg(strstr(del_last_error(), path) != NULL, "message '%s' does not name the file", del_last_error());
    ck_assert_ptr_null(ds);
}

START_TEST(test_load_cifar10_rejects_empty_file)
{
    expect_format_error(NULL, 0, 0, "empty");
    expect_format_error(NULL, 0, 1, "empty");
}
END_TEST

START_TEST(test_load_cifar10_rejects_partial_record)
{
    static uint8_t buf[2 * RECORD + 5];
    make_two_records(buf);
    expect_format_error(buf, RECORD - 1, 0, "3072 bytes, not a multiple of the 3073-byte record");
    expect_format_error(buf, 2 * RECORD + 5, 0, "6151 bytes");
    expect_format_error(buf, RECORD + 1, 1, "3074 bytes");
}
END_TEST

START_TEST(test_load_cifar10_rejects_label_above_9)
{
    static uint8_t buf[2 * RECORD];
    make_two_records(buf);
    buf[RECORD] = 10;
    expect_format_error(buf, sizeof buf, 0, "label 10 in record 1, expected 0..9");
    buf[RECORD] = 9;
    buf[0] = 255;
    expect_format_error(buf, sizeof buf, 1, "label 255 in record 0");
}
END_TEST

/* A gzip header followed by bytes that are no deflate stream, and a valid
 * gzip file cut short. */
START_TEST(test_load_cifar10_rejects_broken_gzip)
{
    uint8_t junk[64] = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
    for (int i = 10; i < 64; i++)
        junk[i] = 0xff;
    expect_format_error(junk, sizeof junk, 0, "gzip");

    static uint8_t buf[2 * RECORD];
    make_two_records(buf);
    const char *full = write_file(1, "full.bin.gz", buf, sizeof buf, 1);
    FILE *f = fopen(full, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t gz[2 * RECORD + 1024];
    size_t len = fread(gz, 1, sizeof gz, f);
    fclose(f);
    ck_assert_uint_gt(len, 40);
    /* cut inside the records, and cut in the 8-byte trailer (all records
     * intact, but the CRC cannot be checked) */
    expect_format_error(gz, len / 2, 0, "truncated gzip stream");
    expect_format_error(gz, len - 3, 0, "truncated gzip stream");
}
END_TEST

static Suite *cifar_suite(void)
{
    Suite *s = suite_create("data_cifar");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_load_cifar10_converts_chw_records_to_hwc);
    tcase_add_test(tc, test_load_cifar10_reads_gzip_files);
    tcase_add_test(tc, test_load_cifar10_reads_many_records_in_order);
    tcase_add_test(tc, test_load_cifar10_dir_concatenates_train_batches_in_order);
    tcase_add_test(tc, test_load_cifar10_rejects_bad_arguments);
    tcase_add_test(tc, test_load_cifar10_reports_missing_file);
    tcase_add_test(tc, test_load_cifar10_rejects_empty_file);
    tcase_add_test(tc, test_load_cifar10_rejects_partial_record);
    tcase_add_test(tc, test_load_cifar10_rejects_label_above_9);
    tcase_add_test(tc, test_load_cifar10_rejects_broken_gzip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite_in_tmpdir(cifar_suite, tmpdir);
}
