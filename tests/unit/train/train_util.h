/* Helpers of the trainer tests. The Fashion-MNIST fixture, fm_labeled and
 * fm_test, is loaded once per test case (before the fork) with
 * tcase_add_unchecked_fixture(tc, fm_setup, fm_teardown). */
#ifndef DEL_TEST_TRAIN_TRAIN_UTIL_H
#define DEL_TEST_TRAIN_TRAIN_UTIL_H

#include <unistd.h>

#include "testutil.h"

static del_dataset *fm_labeled, *fm_test;
static del_status fm_status;
static char fm_message[512];

/* The first 50 images per class (500) and the first 2,000 test images. */
static inline void fm_setup(void)
{
    del_dataset *train = NULL, *test = NULL;
    fm_status = del_dataset_load_fashion_mnist(&train, test_fmnist_dir(), DEL_SPLIT_TRAIN);
    if (fm_status == DEL_OK)
        fm_status = del_dataset_split_per_class(&fm_labeled, NULL, train, 50);
    if (fm_status == DEL_OK)
        fm_status = del_dataset_load_fashion_mnist(&test, test_fmnist_dir(), DEL_SPLIT_TEST);
    if (fm_status == DEL_OK) {
        static int64_t first[2000];
        for (int i = 0; i < 2000; i++)
            first[i] = i;
        fm_status = del_dataset_subset(&fm_test, test, first, 2000);
    }
    if (fm_status != DEL_OK)
        snprintf(fm_message, sizeof fm_message, "%s", del_last_error());
    del_dataset_free(train);
    del_dataset_free(test);
}

static inline void fm_teardown(void)
{
    del_dataset_free(fm_labeled);
    del_dataset_free(fm_test);
    fm_labeled = fm_test = NULL;
}

static inline void require_fmnist(void)
{
    test_require_fmnist(fm_status, fm_message);
}

/* A malloc'd copy of m's parameters (the caller frees it); their count
 * goes to *n_params. */
static inline float *copy_params(del_model *m, int64_t *n_params)
{
    *n_params = del_model_num_params(m);
    float *p = malloc((size_t)*n_params * sizeof *p);
    ck_assert_ptr_nonnull(p);
    memcpy(p, del_model_params(m), (size_t)*n_params * sizeof *p);
    return p;
}

/* test_run_suite_in_tmpdir, run from inside tmpdir, so that the files a
 * test names by a bare name ("run.delc") are written there and removed
 * with it, never in the directory make runs from. */
static inline int test_run_suite_inside_tmpdir(Suite *(*make_suite)(void), char *tmpdir)
{
    char here[4096];
    if (!getcwd(here, sizeof here) || !mkdtemp(tmpdir) || chdir(tmpdir) != 0) {
        perror("test_run_suite_inside_tmpdir");
        return EXIT_FAILURE;
    }
    int rc = test_run_suite(make_suite());
    if (chdir(here) != 0)
        perror("chdir");
    test_remove_tree(tmpdir);
    return rc;
}

#endif
