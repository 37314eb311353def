/* Shared helpers for the Check test programs. */
#ifndef DEL_TESTUTIL_H
#define DEL_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "del.h"

/* Fashion-MNIST location for tests: $DEL_FMNIST_DIR or the Debian path. */
static inline const char *test_fmnist_dir(void)
{
    const char *d = getenv("DEL_FMNIST_DIR");
    return d ? d : DEL_FASHION_MNIST_DIR;
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
