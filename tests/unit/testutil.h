/* Shared helpers for the Check test programs. */
#ifndef DEL_TESTUTIL_H
#define DEL_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "del.h"

/* Fashion-MNIST location for tests: $DEL_FMNIST_DIR or the Debian path. */
static inline const char *test_fmnist_dir(void)
{
    const char *d = getenv("DEL_FMNIST_DIR");
    return d ? d : DEL_FASHION_MNIST_DIR;
}

/* Fails the test with a hint on where to get Fashion-MNIST unless the
 * fixture that loaded it (status, message) succeeded. */
static inline void test_require_fmnist(del_status status, const char *message)
{
    ck_assert_msg(status == DEL_OK,
                  "Fashion-MNIST is required: install Debian's dataset-fashion-mnist or set DEL_FMNIST_DIR "
                  "(tried %s): %s", test_fmnist_dir(), message);
}

/* Runs one suite; returns the process exit code. */
static inline int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Removes path: a file, or a folder with everything below it. */
static inline void test_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[512];
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub)
                test_remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Creates tmpdir from its mkdtemp template ("...XXXXXX"), runs the suite
 * make_suite builds, and removes tmpdir; returns the process exit code. */
static inline int test_run_suite_in_tmpdir(Suite *(*make_suite)(void), char *tmpdir)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    int rc = test_run_suite(make_suite());
    test_remove_tree(tmpdir);
    return rc;
}

/* Asserts that a call returned DEL_OK, showing the library's message. */
#define ck_assert_del_ok(expr)                                                   \
    do {                                                                         \
        del_status st_ = (expr);                                                 \
        ck_assert_msg(st_ == DEL_OK, "%s -> %d: %s", #expr, (int)st_, del_last_error()); \
    } while (0)

/* Asserts a failing status and that the message mentions `needle`. */
#define ck_assert_del_err(expr, status, needle)                                  \
    do {                                                                         \
        del_status st_ = (expr);                                                 \
        ck_assert_msg(st_ == (status), "%s -> %d, wanted %d (%s)", #expr, (int)st_, \
                      (int)(status), del_last_error());                          \
        ck_assert_msg(strstr(del_last_error(), (needle)) != NULL,                \
                      "message '%s' lacks '%s'", del_last_error(), (needle));    \
    } while (0)

#endif
