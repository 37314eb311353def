/* Tests of src/data: the IDX reader, Fashion-MNIST, splits, subsets and
 * batch normalisation. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

static char tmpdir[] = "/tmp/del_test_data_XXXXXX";

/* tmpdir/name in a static buffer (one path at a time per slot). */
static const char *tmp_path(int slot, const char *name)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
    return paths[slot];
}

static void write_file(const char *path, const uint8_t *bytes, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        ck_assert_int_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

/* Writes an IDX file: magic 00 00 type ndim, big-endian dims, then `data`
 * (data_len bytes, which may differ from what the dims announce). */
static const char *write_idx(int slot, const char *name, int gz, uint8_t type, int ndim, const uint32_t *dims,
                             const uint8_t *data, size_t data_len)
{
    uint8_t buf[4096];
    size_t n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = type;
    buf[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        buf[n++] = (uint8_t)(dims[d] >> 24);
        buf[n++] = (uint8_t)(dims[d] >> 16);
        buf[n++] = (uint8_t)(dims[d] >> 8);
        buf[n++] = (uint8_t)dims[d];
    }
    ck_assert_uint_le(n + data_len, sizeof buf);
    memcpy(buf + n, data, data_len);
    const char *path = tmp_path(slot, name);
    write_file(path, buf, n + data_len, gz);
    return path;
}

/* Two 2x3 grey images and their labels 3, 7. */
static const uint8_t pix6x2[12] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
static const uint32_t img_dims[3] = {2, 2, 3};
static const uint8_t lab2[2] = {3, 7};
static const uint32_t lab_dims[1] = {2};

static void check_two_images(const del_dataset *ds)
{
    ck_assert_int_eq(del_dataset_size(ds), 2);
    ck_assert_int_eq(del_dataset_height(ds), 2);
    ck_assert_int_eq(del_dataset_width(ds), 3);
    ck_assert_int_eq(del_dataset_channels(ds), 1);
    ck_assert_mem_eq(del_dataset_images(ds), pix6x2, 12);
    ck_assert_int_eq(del_dataset_labels(ds)[0], 3);
    ck_assert_int_eq(del_dataset_labels(ds)[1], 7);
    ck_assert_int_eq(del_dataset_num_classes(ds), 8);
}

START_TEST(test_load_idx_reads_plain_files)
{
    const char *ip = write_idx(0, "plain-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    const char *lp = write_idx(1, "plain-labels", 0, 0x08, 1, lab_dims, lab2, 2);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_idx(&ds, ip, lp));
    check_two_images(ds);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_load_idx_reads_gzip_files)
{
    const char *ip = write_idx(0, "gz-images.gz", 1, 0x08, 3, img_dims, pix6x2, 12);
    const char *lp = write_idx(1, "gz-labels.gz", 1, 0x08, 1, lab_dims, lab2, 2);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_idx(&ds, ip, lp));
    check_two_images(ds);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_load_idx_reads_rank4_colour_images_in_hwc_order)
{
    const uint32_t dims[4] = {2, 1, 2, 3};
    const char *ip = write_idx(0, "rgb-images", 1, 0x08, 4, dims, pix6x2, 12);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_idx(&ds, ip, NULL));
    ck_assert_int_eq(del_dataset_size(ds), 2);
    ck_assert_int_eq(del_dataset_height(ds), 1);
    ck_assert_int_eq(del_dataset_width(ds), 2);
    ck_assert_int_eq(del_dataset_channels(ds), 3);
    ck_assert_mem_eq(del_dataset_images(ds), pix6x2, 12);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_load_idx_without_labels_marks_all_unlabeled)
{
    const char *ip = write_idx(0, "nolab-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_idx(&ds, ip, NULL));
    ck_assert_int_eq(del_dataset_labels(ds)[0], -1);
    ck_assert_int_eq(del_dataset_labels(ds)[1], -1);
    ck_assert_int_eq(del_dataset_num_classes(ds), 0);
    del_dataset_free(ds);
}
END_TEST

/* Loads (images, labels), expects `status` and a message naming `needle`,
 * and that *out was left NULL. */
static void expect_load_error(const char *ip, const char *lp, del_status status, const char *needle)
{
    del_dataset *ds = (del_dataset *)&ds; /* not NULL: the call must reset it */
    ck_assert_del_err(del_dataset_load_idx(&ds, ip, lp), status, needle);
    ck_assert_ptr_null(ds);
}

START_TEST(test_load_idx_rejects_bad_magic)
{
    uint8_t bytes[16] = {0x1f, 0x00, 0x08, 0x03, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    const char *ip = tmp_path(0, "magic-images");
    write_file(ip, bytes, sizeof bytes, _i);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
    expect_load_error(ip, NULL, DEL_EFORMAT, "magic");
}
END_TEST

START_TEST(test_load_idx_rejects_wrong_type_byte)
{
    const char *ip = write_idx(0, "type-images", 0, 0x0C, 3, img_dims, pix6x2, 12);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
    expect_load_error(ip, NULL, DEL_EFORMAT, "0x0c");
}
END_TEST

START_TEST(test_load_idx_rejects_wrong_rank)
{
    const uint32_t dims2[2] = {2, 6};
    const char *ip = write_idx(0, "rank2-images", 0, 0x08, 2, dims2, pix6x2, 12);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
    expect_load_error(ip, NULL, DEL_EFORMAT, "2 dimensions");

    const char *good = write_idx(1, "rank-ok-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    const uint32_t lab2d[2] = {2, 1};
    const char *lp = write_idx(2, "rank2-labels", 0, 0x08, 2, lab2d, lab2, 2);
    expect_load_error(good, lp, DEL_EFORMAT, lp);
}
END_TEST

START_TEST(test_load_idx_rejects_truncated_data)
{
    /* _i: 0 plain, 1 gzip */
    const char *ip = write_idx(0, _i ? "trunc-images.gz" : "trunc-images", _i, 0x08, 3, img_dims, pix6x2, 11);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
    expect_load_error(ip, NULL, DEL_EFORMAT, "truncated");

    const char *lp = write_idx(1, _i ? "trunc-labels.gz" : "trunc-labels", _i, 0x08, 1, lab_dims, lab2, 1);
    const char *good = write_idx(2, "trunc-ok-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    expect_load_error(good, lp, DEL_EFORMAT, lp);

    /* Cut inside the header: magic only, then half a dimension. */
    const uint8_t head[6] = {0, 0, 8, 3, 0, 0};
    const char *hp = tmp_path(3, "trunc-header");
    write_file(hp, head, sizeof head, _i);
    expect_load_error(hp, NULL, DEL_EFORMAT, hp);
    write_file(hp, head, 2, _i);
    expect_load_error(hp, NULL, DEL_EFORMAT, "truncated");
}
END_TEST

START_TEST(test_load_idx_rejects_trailing_bytes)
{
    uint8_t more[13];
    memcpy(more, pix6x2, 12);
    more[12] = 9;
    const char *ip = write_idx(0, "long-images", 0, 0x08, 3, img_dims, more, 13);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
}
END_TEST

START_TEST(test_load_idx_rejects_label_count_mismatch)
{
    const uint32_t three[1] = {3};
    const uint8_t labs[3] = {1, 2, 3};
    const char *ip = write_idx(0, "count-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    const char *lp = write_idx(1, "count-labels", 0, 0x08, 1, three, labs, 3);
    expect_load_error(ip, lp, DEL_EFORMAT, lp);
    expect_load_error(ip, lp, DEL_EFORMAT, "3 labels");
}
END_TEST

START_TEST(test_load_idx_rejects_zero_size_and_bad_channels)
{
    const uint32_t zero[3] = {0, 2, 3};
    const char *zp = write_idx(0, "zero-images", 0, 0x08, 3, zero, pix6x2, 0);
    expect_load_error(zp, NULL, DEL_EFORMAT, zp);

    const uint32_t two_ch[4] = {2, 1, 3, 2};
    const char *cp = write_idx(1, "twoch-images", 0, 0x08, 4, two_ch, pix6x2, 12);
    expect_load_error(cp, NULL, DEL_EFORMAT, "2 channels");
}
END_TEST

START_TEST(test_load_idx_rejects_corrupt_gzip)
{
    uint8_t big[2048];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7919u >> 3);
    const uint32_t dims[3] = {2, 32, 32};
    const char *ip = write_idx(0, "corrupt-images.gz", 1, 0x08, 3, dims, big, sizeof big);
    FILE *f = fopen(ip, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 30, SEEK_SET), 0);
    uint8_t junk[40];
    memset(junk, 0xA5, sizeof junk);
    ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    ck_assert_int_eq(fclose(f), 0);
    expect_load_error(ip, NULL, DEL_EFORMAT, ip);
}
END_TEST

START_TEST(test_load_idx_reports_missing_file)
{
    const char *missing = tmp_path(0, "no-such-file.gz");
    expect_load_error(missing, NULL, DEL_EIO, missing);
    expect_load_error(missing, NULL, DEL_EIO, "No such file");

    const char *ip = write_idx(1, "missing-ok-images", 0, 0x08, 3, img_dims, pix6x2, 12);
    expect_load_error(ip, missing, DEL_EIO, missing);
}
END_TEST

START_TEST(test_load_idx_rejects_bad_arguments)
{
    del_dataset *ds = NULL;
    ck_assert_del_err(del_dataset_load_idx(NULL, "x", NULL), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_dataset_load_idx(&ds, NULL, NULL), DEL_EINVAL, "'images_path'");
    ck_assert_del_err(del_dataset_load_idx(&ds, "", NULL), DEL_EINVAL, "'images_path'");
    ck_assert_del_err(del_dataset_load_idx(&ds, "x", ""), DEL_EINVAL, "'labels_path'");
    ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(test_fashion_mnist_loader_falls_back_to_plain_names)
{
    const uint32_t one[3] = {1, 2, 3};
    const uint32_t one_lab[1] = {1};
    const uint8_t lab[1] = {4};
    write_idx(0, "t10k-images-idx3-ubyte", 0, 0x08, 3, one, pix6x2, 6);
    write_idx(1, "t10k-labels-idx1-ubyte.gz", 1, 0x08, 1, one_lab, lab, 1);
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_load_fashion_mnist(&ds, tmpdir, DEL_SPLIT_TEST));
    ck_assert_int_eq(del_dataset_size(ds), 1);
    ck_assert_mem_eq(del_dataset_images(ds), pix6x2, 6);
    ck_assert_int_eq(del_dataset_labels(ds)[0], 4);
    del_dataset_free(ds);

    ck_assert_del_err(del_dataset_load_fashion_mnist(&ds, tmpdir, DEL_SPLIT_TRAIN), DEL_EIO,
                      "train-images-idx3-ubyte.gz");
    ck_assert_del_err(del_dataset_load_fashion_mnist(&ds, tmpdir, (del_split)2), DEL_EINVAL, "'split'");
    ck_assert_del_err(del_dataset_load_fashion_mnist(NULL, tmpdir, DEL_SPLIT_TEST), DEL_EINVAL, "'out'");
    ck_assert_ptr_null(ds);
}
END_TEST

/* ---- Real Fashion-MNIST, loaded once per test case (before the fork) ---- */

static del_dataset *fm_train, *fm_test;
static del_status fm_status;
static char fm_message[512];

static void fm_setup(void)
{
    fm_status = del_dataset_load_fashion_mnist(&fm_train, test_fmnist_dir(), DEL_SPLIT_TRAIN);
    if (fm_status == DEL_OK)
        fm_status = del_dataset_load_fashion_mnist(&fm_test, test_fmnist_dir(), DEL_SPLIT_TEST);
    if (fm_status != DEL_OK)
        snprintf(fm_message, sizeof fm_message, "%s", del_last_error());
}

static void fm_teardown(void)
{
    del_dataset_free(fm_train);
    del_dataset_free(fm_test);
    fm_train = fm_test = NULL;
}

static void require_fmnist(void)
{
    test_require_fmnist(fm_status, fm_message);
}

START_TEST(test_fashion_mnist_train_matches_published_facts)
{
    require_fmnist();
    ck_assert_int_eq(del_dataset_size(fm_train), 60000);
    ck_assert_int_eq(del_dataset_height(fm_train), 28);
    ck_assert_int_eq(del_dataset_width(fm_train), 28);
    ck_assert_int_eq(del_dataset_channels(fm_train), 1);
    ck_assert_int_eq(del_dataset_num_classes(fm_train), 10);
    static const int32_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    ck_assert_mem_eq(del_dataset_labels(fm_train), first, sizeof first);
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < 60000; i++)
        counts[del_dataset_labels(fm_train)[i]]++;
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(counts[c], 6000);
    /* The first image (an ankle boot): pixel sum and row 10, column 13. */
    int64_t sum = 0;
    for (int p = 0; p < 784; p++)
        sum += del_dataset_images(fm_train)[p];
    ck_assert_int_eq(sum, 76247);
    ck_assert_int_eq(del_dataset_images(fm_train)[10 * 28 + 13], 193);
}
END_TEST

START_TEST(test_fashion_mnist_test_split_has_10000_images)
{
    require_fmnist();
    ck_assert_int_eq(del_dataset_size(fm_test), 10000);
    ck_assert_int_eq(del_dataset_height(fm_test), 28);
    static const int32_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    ck_assert_mem_eq(del_dataset_labels(fm_test), first, sizeof first);
}
END_TEST

START_TEST(test_split_takes_first_k_per_class)
{
    require_fmnist();
    del_dataset *lab = NULL, *unl = NULL;
    ck_assert_del_ok(del_dataset_split_per_class(&lab, &unl, fm_train, 100));
    ck_assert_int_eq(del_dataset_size(lab), 1000);
    ck_assert_int_eq(del_dataset_size(unl), 59000);
    ck_assert_int_eq(del_dataset_num_classes(lab), 10);
    ck_assert_int_eq(del_dataset_height(unl), 28);

    /* Published: the first image of each class 0..9 in the train file. */
    static const int64_t first_of_class[10] = {1, 16, 5, 3, 19, 8, 18, 6, 23, 0};
    const int32_t *src_labels = del_dataset_labels(fm_train);
    const uint8_t *src_images = del_dataset_images(fm_train);
    int taken[10] = {0};
    int64_t li = 0, ui = 0;
    int seen_first[10] = {0};
    for (int64_t i = 0; i < 60000; i++) {
        int c = src_labels[i];
        if (taken[c] < 100) {
            if (taken[c] == 0) {
                ck_assert_int_eq(i, first_of_class[c]);
                seen_first[c] = 1;
            }
            taken[c]++;
            ck_assert_int_eq(del_dataset_labels(lab)[li], c);
            ck_assert_mem_eq(del_dataset_images(lab) + li * 784, src_images + i * 784, 784);
            li++;
        } else {
            ck_assert_int_eq(del_dataset_labels(unl)[ui], -1);
            ck_assert_mem_eq(del_dataset_images(unl) + ui * 784, src_images + i * 784, 784);
            ui++;
        }
    }
    ck_assert_int_eq(li, 1000);
    ck_assert_int_eq(ui, 59000);
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(taken[c], 100);
        ck_assert_int_eq(seen_first[c], 1);
    }
    del_dataset_free(lab);
    del_dataset_free(unl);
}
END_TEST

START_TEST(test_split_fails_when_a_class_is_short)
{
    require_fmnist();
    del_dataset *lab = NULL;
    ck_assert_del_err(del_dataset_split_per_class(&lab, NULL, fm_train, 6001), DEL_EINVAL, "class 0");
    ck_assert_ptr_null(lab);
}
END_TEST

/* ---- Small hand-made datasets ---- */

START_TEST(test_split_small_hand_example)
{
    /* labels 1 0 1 -1 0 1, one per class: images 0 and 1 labeled. */
    const uint8_t px[6] = {10, 11, 12, 13, 14, 15};
    const int32_t labels[6] = {1, 0, 1, -1, 0, 1};
    del_dataset *src = NULL, *lab = NULL, *unl = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&src, px, labels, 6, 1, 1, 1));
    ck_assert_del_ok(del_dataset_split_per_class(&lab, &unl, src, 1));
    ck_assert_int_eq(del_dataset_size(lab), 2);
    ck_assert_int_eq(del_dataset_images(lab)[0], 10);
    ck_assert_int_eq(del_dataset_images(lab)[1], 11);
    ck_assert_int_eq(del_dataset_labels(lab)[0], 1);
    ck_assert_int_eq(del_dataset_labels(lab)[1], 0);
    ck_assert_int_eq(del_dataset_size(unl), 4);
    const uint8_t rest[4] = {12, 13, 14, 15};
    ck_assert_mem_eq(del_dataset_images(unl), rest, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(del_dataset_labels(unl)[i], -1);
    ck_assert_int_eq(del_dataset_num_classes(unl), 0);
    del_dataset_free(lab);
    del_dataset_free(unl);

    /* Only the unlabeled part, per_class 2. */
    ck_assert_del_ok(del_dataset_split_per_class(NULL, &unl, src, 2));
    ck_assert_int_eq(del_dataset_size(unl), 2);
    ck_assert_int_eq(del_dataset_images(unl)[0], 13);
    ck_assert_int_eq(del_dataset_images(unl)[1], 15);
    del_dataset_free(unl);
    del_dataset_free(src);
}
END_TEST

START_TEST(test_split_rejects_bad_arguments)
{
    const uint8_t px[3] = {1, 2, 3};
    const int32_t labels[3] = {0, 2, 2};
    del_dataset *src = NULL, *unlab_src = NULL, *lab = NULL, *unl = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&src, px, labels, 3, 1, 1, 1));
    ck_assert_del_ok(del_dataset_from_arrays(&unlab_src, px, NULL, 3, 1, 1, 1));
    ck_assert_del_err(del_dataset_split_per_class(NULL, NULL, src, 1), DEL_EINVAL, "'unlabeled'");
    ck_assert_del_err(del_dataset_split_per_class(&lab, &unl, NULL, 1), DEL_EINVAL, "'src'");
    ck_assert_del_err(del_dataset_split_per_class(&lab, &unl, src, 0), DEL_EINVAL, "'per_class'");
    /* class 1 has no image at all */
    ck_assert_del_err(del_dataset_split_per_class(&lab, &unl, src, 1), DEL_EINVAL, "class 1");
    ck_assert_del_err(del_dataset_split_per_class(&lab, &unl, unlab_src, 1), DEL_EINVAL, "no labeled");
    ck_assert_ptr_null(lab);
    ck_assert_ptr_null(unl);
    del_dataset_free(src);
    del_dataset_free(unlab_src);
}
END_TEST

START_TEST(test_from_arrays_copies_the_caller_data)
{
    uint8_t px[2 * 2 * 3];
    for (int i = 0; i < 12; i++)
        px[i] = (uint8_t)(20 * i);
    int32_t labels[2] = {5, -1};
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 2, 1, 2, 3));
    px[0] = 99;
    labels[0] = 1;
    ck_assert_int_eq(del_dataset_images(ds)[0], 0);
    ck_assert_int_eq(del_dataset_images(ds)[11], 220);
    ck_assert_int_eq(del_dataset_labels(ds)[0], 5);
    ck_assert_int_eq(del_dataset_labels(ds)[1], -1);
    ck_assert_int_eq(del_dataset_num_classes(ds), 6);
    ck_assert_int_eq(del_dataset_channels(ds), 3);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_from_arrays_rejects_bad_arguments)
{
    const uint8_t px[4] = {0};
    const int32_t bad_low[1] = {-2}, bad_high[1] = {10000};
    del_dataset *ds = NULL;
    ck_assert_del_err(del_dataset_from_arrays(NULL, px, NULL, 1, 2, 2, 1), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, NULL, NULL, 1, 2, 2, 1), DEL_EINVAL, "'images'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, NULL, 0, 2, 2, 1), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, NULL, 1, 0, 2, 1), DEL_EINVAL, "'height'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, NULL, 1, 2, -1, 1), DEL_EINVAL, "'width'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, NULL, 1, 1, 2, 2), DEL_EINVAL, "'channels'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, bad_low, 1, 2, 2, 1), DEL_EINVAL, "'labels[0]'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, bad_high, 1, 2, 2, 1), DEL_EINVAL, "'labels[0]'");
    ck_assert_del_err(del_dataset_from_arrays(&ds, px, NULL, INT64_MAX / 2, 65536, 65536, 3), DEL_EINVAL,
                      "overflow");
    ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(test_accessors_of_null_dataset)
{
    ck_assert_int_eq(del_dataset_size(NULL), 0);
    ck_assert_int_eq(del_dataset_height(NULL), 0);
    ck_assert_int_eq(del_dataset_width(NULL), 0);
    ck_assert_int_eq(del_dataset_channels(NULL), 0);
    ck_assert_int_eq(del_dataset_num_classes(NULL), 0);
    ck_assert_ptr_null(del_dataset_images(NULL));
    ck_assert_ptr_null(del_dataset_labels(NULL));
    del_dataset_free(NULL);
}
END_TEST

START_TEST(test_subset_copies_in_given_order_with_repeats)
{
    const uint8_t px[3 * 2] = {1, 2, 3, 4, 5, 6};
    const int32_t labels[3] = {0, -1, 4};
    const int64_t idx[3] = {2, 0, 2};
    del_dataset *src = NULL, *sub = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&src, px, labels, 3, 1, 2, 1));
    ck_assert_del_ok(del_dataset_subset(&sub, src, idx, 3));
    const uint8_t want[6] = {5, 6, 1, 2, 5, 6};
    ck_assert_int_eq(del_dataset_size(sub), 3);
    ck_assert_mem_eq(del_dataset_images(sub), want, 6);
    ck_assert_int_eq(del_dataset_labels(sub)[0], 4);
    ck_assert_int_eq(del_dataset_labels(sub)[1], 0);
    ck_assert_int_eq(del_dataset_labels(sub)[2], 4);
    ck_assert_int_eq(del_dataset_num_classes(sub), 5);
    del_dataset_free(sub);

    const int64_t bad[2] = {1, 3};
    ck_assert_del_err(del_dataset_subset(&sub, src, bad, 2), DEL_EINVAL, "'indices[1]'");
    ck_assert_del_err(del_dataset_subset(&sub, src, idx, 0), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_dataset_subset(&sub, NULL, idx, 1), DEL_EINVAL, "'src'");
    ck_assert_del_err(del_dataset_subset(&sub, src, NULL, 1), DEL_EINVAL, "'indices'");
    ck_assert_del_err(del_dataset_subset(NULL, src, idx, 1), DEL_EINVAL, "'out'");
    ck_assert_ptr_null(sub);
    del_dataset_free(src);
}
END_TEST

START_TEST(test_batch_normalises_hand_worked_values)
{
    /* mean 0.5, std 0.25: 0 -> -2, 255 -> 2, 51 (0.2) -> -1.2,
     * 128 (0.50196...) -> 0.0078431...; images 1 then 0 of the set. */
    const uint8_t px[2 * 2] = {0, 255, 51, 128};
    const int32_t labels[2] = {3, 8};
    const int64_t idx[2] = {1, 0};
    const float mean[1] = {0.5f}, stdv[1] = {0.25f};
    del_dataset *ds = NULL;
    del_tensor *x = NULL, *y = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 2, 1, 2, 1));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, (const int64_t[]){2, 1, 1, 2}));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, (const int64_t[]){2}));
    ck_assert_del_ok(del_dataset_batch(ds, idx, 2, mean, stdv, x, y));
    const float *xd = del_tensor_data(x);
    const double want[4] = {-1.2, (128.0 / 255.0 - 0.5) / 0.25, -2.0, 2.0};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(xd[i], want[i], 1e-6);
    ck_assert_int_eq(((int32_t *)del_tensor_data(y))[0], 8);
    ck_assert_int_eq(((int32_t *)del_tensor_data(y))[1], 3);
    del_tensor_free(x);
    del_tensor_free(y);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_batch_matches_torchvision_bit_for_bit)
{
    /* torchvision ToTensor + Normalize((0.2860,), (0.3530,)) on the pixels
     * 0, 1, 77, 128, 255 (computed with PyTorch 1 x 5 image). */
    const uint8_t px[5] = {0, 1, 77, 128, 255};
    const float want[5] = {-0x1.9ed252p-1f, -0x1.992236p-1f, 0x1.726610p-5f, 0x1.393c26p-1f, 0x1.02e69ep+1f};
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t idx[1] = {0};
    del_dataset *ds = NULL;
    del_tensor *x = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, NULL, 1, 1, 5, 1));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, (const int64_t[]){1, 1, 1, 5}));
    ck_assert_del_ok(del_dataset_batch(ds, idx, 1, mean, stdv, x, NULL));
    const float *xd = del_tensor_data(x);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(xd[i] == want[i], "pixel %d: %a, torchvision %a", i, (double)xd[i], (double)want[i]);
    del_tensor_free(x);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_batch_converts_hwc_to_chw_per_channel)
{
    /* One 1x2 RGB image (10,20,30) (40,50,60); channel c uses mean 0.1c
     * and std 0.5 + c. */
    const uint8_t px[6] = {10, 20, 30, 40, 50, 60};
    const float mean[3] = {0.0f, 0.1f, 0.2f}, stdv[3] = {0.5f, 1.5f, 2.5f};
    const int64_t idx[1] = {0};
    del_dataset *ds = NULL;
    del_tensor *x = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, NULL, 1, 1, 2, 3));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, (const int64_t[]){1, 3, 1, 2}));
    ck_assert_del_ok(del_dataset_batch(ds, idx, 1, mean, stdv, x, NULL));
    const float *xd = del_tensor_data(x);
    const int order[6] = {10, 40, 20, 50, 30, 60}; /* CHW */
    for (int i = 0; i < 6; i++) {
        int c = i / 2;
        double want = (order[i] / 255.0 - 0.1 * c) / (0.5 + c);
        ck_assert_double_eq_tol(xd[i], want, 1e-6);
    }
    del_tensor_free(x);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_batch_rejects_bad_arguments)
{
    const uint8_t px[4] = {1, 2, 3, 4};
    const float mean[1] = {0.5f}, stdv[1] = {0.25f}, zero_std[1] = {0.0f};
    const int64_t idx[2] = {0, 1}, bad_idx[2] = {0, 2};
    del_dataset *ds = NULL;
    del_tensor *x = NULL, *x_wrong = NULL, *x_u8 = NULL, *y_wrong = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, NULL, 2, 1, 2, 1));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, (const int64_t[]){2, 1, 1, 2}));
    ck_assert_del_ok(del_tensor_new(&x_wrong, DEL_DTYPE_F32, 4, (const int64_t[]){2, 1, 2, 1}));
    ck_assert_del_ok(del_tensor_new(&x_u8, DEL_DTYPE_U8, 4, (const int64_t[]){2, 1, 1, 2}));
    ck_assert_del_ok(del_tensor_new(&y_wrong, DEL_DTYPE_F32, 1, (const int64_t[]){2}));
    ck_assert_del_err(del_dataset_batch(NULL, idx, 2, mean, stdv, x, NULL), DEL_EINVAL, "'ds'");
    ck_assert_del_err(del_dataset_batch(ds, NULL, 2, mean, stdv, x, NULL), DEL_EINVAL, "'indices'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, NULL, stdv, x, NULL), DEL_EINVAL, "'mean'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, NULL, x, NULL), DEL_EINVAL, "'std'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, stdv, NULL, NULL), DEL_EINVAL, "'x'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 0, mean, stdv, x, NULL), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 1, mean, stdv, x, NULL), DEL_EINVAL, "'x' must be f32 [1, 1, 1, 2]");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, stdv, x_wrong, NULL), DEL_EINVAL, "'x'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, stdv, x_u8, NULL), DEL_EINVAL, "u8");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, stdv, x, y_wrong), DEL_EINVAL, "'y'");
    ck_assert_del_err(del_dataset_batch(ds, bad_idx, 2, mean, stdv, x, NULL), DEL_EINVAL, "'indices[1]'");
    ck_assert_del_err(del_dataset_batch(ds, idx, 2, mean, zero_std, x, NULL), DEL_EINVAL, "'std[0]'");
    del_tensor_free(x);
    del_tensor_free(x_wrong);
    del_tensor_free(x_u8);
    del_tensor_free(y_wrong);
    del_dataset_free(ds);
}
END_TEST

/* Like del_trainer_set_normalize: a NaN or infinite mean, or an infinite
 * std, would fill the batch with NaN or zeros; each is refused by name,
 * with its value, and x and y keep what they held. */
START_TEST(test_batch_rejects_non_finite_mean_and_std)
{
    const uint8_t px[4] = {1, 2, 3, 4};
    const int32_t labels[2] = {3, 4};
    const float ok_mean[1] = {0.5f}, ok_std[1] = {0.25f};
    const struct {
        float mean, std;
        const char *needle;
    } cases[] = {
        {NAN, 0.25f, "'mean[0]' must be finite, got nan"},
        {INFINITY, 0.25f, "'mean[0]' must be finite, got inf"},
        {-INFINITY, 0.25f, "'mean[0]' must be finite, got -inf"},
        {0.5f, INFINITY, "'std[0]' must be a finite value > 0, got inf"},
        {0.5f, NAN, "'std[0]' must be a finite value > 0, got nan"},
        {0.5f, -1.0f, "'std[0]' must be a finite value > 0, got -1"},
    };
    const int64_t idx[2] = {0, 1};
    del_dataset *ds = NULL;
    del_tensor *x = NULL, *y = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 2, 1, 2, 1));
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, (const int64_t[]){2, 1, 1, 2}));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, (const int64_t[]){2}));
    float *xd = del_tensor_data(x);
    int32_t *yd = del_tensor_data(y);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int i = 0; i < 4; i++)
            xd[i] = 7.0f;
        yd[0] = yd[1] = -5;
        ck_assert_del_err(del_dataset_batch(ds, idx, 2, &cases[k].mean, &cases[k].std, x, y), DEL_EINVAL,
                          cases[k].needle);
        ck_assert_msg(strstr(del_last_error(), "del_dataset_batch: ") == del_last_error(), "%s",
                      del_last_error());
        for (int i = 0; i < 4; i++)
            ck_assert_float_eq(xd[i], 7.0f);
        ck_assert_int_eq(yd[0], -5);
        ck_assert_int_eq(yd[1], -5);
    }
    ck_assert_del_ok(del_dataset_batch(ds, idx, 2, ok_mean, ok_std, x, y));
    ck_assert_int_eq(yd[1], 4);
    del_tensor_free(x);
    del_tensor_free(y);
    del_dataset_free(ds);
}
END_TEST

static Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *idx = tcase_create("idx");
    tcase_add_test(idx, test_load_idx_reads_plain_files);
    tcase_add_test(idx, test_load_idx_reads_gzip_files);
    tcase_add_test(idx, test_load_idx_reads_rank4_colour_images_in_hwc_order);
    tcase_add_test(idx, test_load_idx_without_labels_marks_all_unlabeled);
    tcase_add_loop_test(idx, test_load_idx_rejects_bad_magic, 0, 2);
    tcase_add_test(idx, test_load_idx_rejects_wrong_type_byte);
    tcase_add_test(idx, test_load_idx_rejects_wrong_rank);
    tcase_add_loop_test(idx, test_load_idx_rejects_truncated_data, 0, 2);
    tcase_add_test(idx, test_load_idx_rejects_trailing_bytes);
    tcase_add_test(idx, test_load_idx_rejects_label_count_mismatch);
    tcase_add_test(idx, test_load_idx_rejects_zero_size_and_bad_channels);
    tcase_add_test(idx, test_load_idx_rejects_corrupt_gzip);
    tcase_add_test(idx, test_load_idx_reports_missing_file);
    tcase_add_test(idx, test_load_idx_rejects_bad_arguments);
    tcase_add_test(idx, test_fashion_mnist_loader_falls_back_to_plain_names);
    suite_add_tcase(s, idx);

    TCase *fm = tcase_create("fashion_mnist");
    tcase_add_unchecked_fixture(fm, fm_setup, fm_teardown);
    tcase_set_timeout(fm, 120);
    tcase_add_test(fm, test_fashion_mnist_train_matches_published_facts);
    tcase_add_test(fm, test_fashion_mnist_test_split_has_10000_images);
    tcase_add_test(fm, test_split_takes_first_k_per_class);
    tcase_add_test(fm, test_split_fails_when_a_class_is_short);
    suite_add_tcase(s, fm);

    TCase *mem = tcase_create("in_memory");
    tcase_add_test(mem, test_split_small_hand_example);
    tcase_add_test(mem, test_split_rejects_bad_arguments);
    tcase_add_test(mem, test_from_arrays_copies_the_caller_data);
    tcase_add_test(mem, test_from_arrays_rejects_bad_arguments);
    tcase_add_test(mem, test_accessors_of_null_dataset);
    tcase_add_test(mem, test_subset_copies_in_given_order_with_repeats);
    tcase_add_test(mem, test_batch_normalises_hand_worked_values);
    tcase_add_test(mem, test_batch_matches_torchvision_bit_for_bit);
    tcase_add_test(mem, test_batch_converts_hwc_to_chw_per_channel);
    tcase_add_test(mem, test_batch_rejects_bad_arguments);
    tcase_add_test(mem, test_batch_rejects_non_finite_mean_and_std);
    suite_add_tcase(s, mem);
    return s;
}

int main(void)
{
    return test_run_suite_in_tmpdir(data_suite, tmpdir);
}
