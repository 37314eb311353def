/* Soft labels of datasets (src/data/soft_labels.c): set, read, gathered
 * for a batch and removed; a bad shape or value is refused naming 'soft'
 * and leaves the dataset as it was; subsets and per-class splits carry the
 * rows of the images they take. */
#include <math.h>

#include "testutil.h"

/* Six 1x1 grey images: pixel i*10, labels 0 1 2 0 1 2. */
static del_dataset *six_images(void)
{
    const uint8_t px[6] = {0, 10, 20, 30, 40, 50};
    const int32_t labels[6] = {0, 1, 2, 0, 1, 2};
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, 6, 1, 1, 1));
    return ds;
}

/* Row r of the soft labels used below (K = 4): r/16 on column 0, the rest
 * spread so that each row sums to exactly 1 in binary. */
static void row_of(int r, float *row)
{
    row[0] = (float)r / 16.0f;
    row[1] = 0.5f - (float)r / 32.0f;
    row[2] = 0.25f;
    row[3] = 1.0f - row[0] - row[1] - row[2];
}

static del_tensor *soft_rows(int64_t n, int64_t k)
{
    const int64_t shape[2] = {n, k};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    if (k == 4)
        for (int r = 0; r < n; r++)
            row_of(r, (float *)del_tensor_data(t) + 4 * r);
    return t;
}

/* ds's soft labels are the rows want[0..n-1] of row_of. */
static void assert_rows(const del_dataset *ds, const int *want, int n)
{
    const del_tensor *s = del_dataset_soft_labels(ds);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(del_tensor_ndim(s), 2);
    ck_assert_int_eq(del_tensor_dim(s, 0), n);
    ck_assert_int_eq(del_tensor_dim(s, 1), 4);
    ck_assert_int_eq(del_dataset_num_soft_classes(ds), 4);
    float got[4 * 16];
    ck_assert_del_ok(del_tensor_copy_to(s, got, (size_t)n * 4 * sizeof(float)));
    for (int i = 0; i < n; i++) {
        float row[4];
        row_of(want[i], row);
        ck_assert_msg(memcmp(got + 4 * i, row, sizeof row) == 0, "row %d is not source row %d", i, want[i]);
    }
}

START_TEST(test_set_copies_get_borrows_and_null_removes)
{
    del_dataset *ds = six_images();
    ck_assert_ptr_null(del_dataset_soft_labels(ds));
    ck_assert_int_eq(del_dataset_num_soft_classes(ds), 0);
    del_tensor *t = soft_rows(6, 4);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    float *d = del_tensor_data(t);
    d[0] = 0.75f; /* the dataset holds a copy */
    del_tensor_free(t);
    const int all[6] = {0, 1, 2, 3, 4, 5};
    assert_rows(ds, all, 6);
    ck_assert_int_eq(del_dataset_num_classes(ds), 3); /* the hard labels are unchanged */
    /* Setting the dataset's own tensor again is allowed. */
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, del_dataset_soft_labels(ds)));
    assert_rows(ds, all, 6);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, NULL));
    ck_assert_ptr_null(del_dataset_soft_labels(ds));
    ck_assert_int_eq(del_dataset_num_soft_classes(ds), 0);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, NULL)); /* removing none is fine */
    ck_assert_ptr_null(del_dataset_soft_labels(NULL));
    ck_assert_int_eq(del_dataset_num_soft_classes(NULL), 0);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_bad_shapes_and_values_are_refused_naming_soft_and_change_nothing)
{
    del_dataset *ds = six_images();
    del_tensor *good = soft_rows(6, 4);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, good));
    static const char fn[] = "del_dataset_set_soft_labels: ";
    char want[160];
    /* Shapes and dtypes. */
    del_tensor *t = soft_rows(5, 4);
    snprintf(want, sizeof want, "%s'soft' must be f32 [6, K] (a row per image of the dataset), got f32 [5, 4]", fn);
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, want);
    del_tensor_free(t);
    const int64_t flat[1] = {24}, cube[3] = {6, 2, 2};
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 1, flat));
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "got f32 [24]");
    del_tensor_free(t);
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 3, cube));
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "got f32 [6, 2, 2]");
    del_tensor_free(t);
    const int64_t i32shape[2] = {6, 4};
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_I32, 2, i32shape));
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "got i32 [6, 4]");
    del_tensor_free(t);
    t = soft_rows(6, 10001);
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "'soft' has 10001 classes, at most 10000");
    del_tensor_free(t);
    /* Values: negative, NaN, infinite, rows not summing to 1. */
    t = soft_rows(6, 4);
    float *d = del_tensor_data(t);
    d[4 * 2 + 1] = -0.125f;
    d[4 * 2 + 2] += 0.125f + 0.125f; /* still sums to 1 */
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL,
                      "'soft' row 2 must be a probability vector (finite, >= 0), got -0.125 at column 1");
    row_of(2, d + 8);
    d[4 * 3 + 0] = NAN;
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "'soft' row 3 must be a probability vector");
    d[4 * 3 + 0] = INFINITY;
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "got inf at column 0");
    row_of(3, d + 12);
    d[4 * 5 + 2] += 0.0015f;
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "'soft' row 5 must sum to 1 (within 0.001), got 1.0015");
    d[4 * 5 + 2] -= 0.0015f - 0.0009f; /* inside the tolerance */
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    row_of(5, d + 20);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    /* A refused call leaves what was there. */
    d[0] = -1.0f;
    ck_assert_del_err(del_dataset_set_soft_labels(ds, t), DEL_EINVAL, "row 0");
    const int all[6] = {0, 1, 2, 3, 4, 5};
    assert_rows(ds, all, 6);
    ck_assert_del_err(del_dataset_set_soft_labels(NULL, good), DEL_EINVAL, "'ds'");
    del_tensor_free(t);
    del_tensor_free(good);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_subset_carries_the_rows_it_takes)
{
    del_dataset *ds = six_images(), *sub = NULL;
    del_tensor *t = soft_rows(6, 4);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    const int64_t idx[4] = {5, 0, 5, 3};
    ck_assert_del_ok(del_dataset_subset(&sub, ds, idx, 4));
    const int want[4] = {5, 0, 5, 3};
    assert_rows(sub, want, 4);
    ck_assert_int_eq(del_dataset_images(sub)[0], 50);
    del_dataset_free(sub);
    /* Without soft labels a subset has none. */
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, NULL));
    ck_assert_del_ok(del_dataset_subset(&sub, ds, idx, 4));
    ck_assert_ptr_null(del_dataset_soft_labels(sub));
    del_dataset_free(sub);
    del_tensor_free(t);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_split_per_class_carries_the_rows_to_both_parts)
{
    del_dataset *ds = six_images(), *lab = NULL, *unl = NULL;
    del_tensor *t = soft_rows(6, 4);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    ck_assert_del_ok(del_dataset_split_per_class(&lab, &unl, ds, 1));
    const int want_lab[3] = {0, 1, 2}, want_unl[3] = {3, 4, 5};
    assert_rows(lab, want_lab, 3);
    assert_rows(unl, want_unl, 3);
    del_dataset_free(lab);
    del_dataset_free(unl);
    /* Only one part asked for; and an empty part has none. */
    ck_assert_del_ok(del_dataset_split_per_class(NULL, &unl, ds, 1));
    assert_rows(unl, want_unl, 3);
    del_dataset_free(unl);
    ck_assert_del_ok(del_dataset_split_per_class(&lab, &unl, ds, 2));
    const int all_lab[6] = {0, 1, 2, 3, 4, 5};
    assert_rows(lab, all_lab, 6);
    ck_assert_int_eq(del_dataset_size(unl), 0);
    ck_assert_ptr_null(del_dataset_soft_labels(unl));
    del_dataset_free(lab);
    del_dataset_free(unl);
    del_tensor_free(t);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_soft_batch_gathers_rows_like_the_label_batch)
{
    del_dataset *ds = six_images();
    const int64_t idx[3] = {4, 4, 1};
    const int64_t shape[2] = {3, 4}, wrong[2] = {3, 3};
    del_tensor *out = NULL, *bad = NULL;
    ck_assert_del_ok(del_tensor_new(&out, DEL_DTYPE_F32, 2, shape));
    ck_assert_del_ok(del_tensor_new(&bad, DEL_DTYPE_F32, 2, wrong));
    ck_assert_del_err(del_dataset_soft_batch(ds, idx, 3, out), DEL_ESTATE, "'ds' has no soft labels");
    del_tensor *t = soft_rows(6, 4);
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, t));
    ck_assert_del_ok(del_dataset_soft_batch(ds, idx, 3, out));
    const float *o = del_tensor_data(out);
    for (int i = 0; i < 3; i++) {
        float row[4];
        row_of((int)idx[i], row);
        ck_assert(memcmp(o + 4 * i, row, sizeof row) == 0);
    }
    ck_assert_del_err(del_dataset_soft_batch(ds, idx, 3, bad), DEL_EINVAL, "'out' must be f32 [3, 4], got f32 [3, 3]");
    const int64_t far[3] = {0, 6, 1};
    ck_assert_del_err(del_dataset_soft_batch(ds, far, 3, out), DEL_EINVAL, "'indices[1]' must be in 0..5, got 6");
    ck_assert_del_err(del_dataset_soft_batch(ds, idx, 0, out), DEL_EINVAL, "'n'");
    ck_assert_del_err(del_dataset_soft_batch(NULL, idx, 3, out), DEL_EINVAL, "'ds'");
    ck_assert_del_err(del_dataset_soft_batch(ds, NULL, 3, out), DEL_EINVAL, "'indices'");
    ck_assert_del_err(del_dataset_soft_batch(ds, idx, 3, NULL), DEL_EINVAL, "'out'");
    del_tensor_free(t);
    del_tensor_free(bad);
    del_tensor_free(out);
    del_dataset_free(ds);
}
END_TEST

START_TEST(test_soft_labels_from_a_tensor_file_set_on_a_dataset)
{
    /* Stored once, set later: the tensor file's round trip is exact. */
    del_dataset *ds = six_images();
    del_tensor *t = soft_rows(6, 4), *back = NULL;
    void *buf = NULL;
    size_t size = 0;
    ck_assert_del_ok(del_tensor_save_buffer(t, &buf, &size));
    ck_assert_del_ok(del_tensor_load_buffer(&back, buf, size));
    ck_assert_del_ok(del_dataset_set_soft_labels(ds, back));
    const int all[6] = {0, 1, 2, 3, 4, 5};
    assert_rows(ds, all, 6);
    del_buffer_free(buf);
    del_tensor_free(back);
    del_tensor_free(t);
    del_dataset_free(ds);
}
END_TEST

static Suite *soft_labels_suite(void)
{
    Suite *s = suite_create("soft_labels");
    TCase *tc = tcase_create("soft_labels");
    tcase_add_test(tc, test_set_copies_get_borrows_and_null_removes);
    tcase_add_test(tc, test_bad_shapes_and_values_are_refused_naming_soft_and_change_nothing);
    tcase_add_test(tc, test_subset_carries_the_rows_it_takes);
    tcase_add_test(tc, test_split_per_class_carries_the_rows_to_both_parts);
    tcase_add_test(tc, test_soft_batch_gathers_rows_like_the_label_batch);
    tcase_add_test(tc, test_soft_labels_from_a_tensor_file_set_on_a_dataset);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(soft_labels_suite());
}
