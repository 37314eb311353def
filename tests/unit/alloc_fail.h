/* Allocation-failure injection for the Check test programs, so that every
 * DEL_ENOMEM path can be run.
 *
 * How it works: a test program whose source includes this header is linked
 * by the Makefile with tests/unit/alloc_fail.c and
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,
 *   --wrap=posix_memalign,--wrap=strdup,--wrap=strndup,--wrap=free
 * so that every call of those functions from lib/libdel.a (and from the test
 * program and the static Check library) goes through the wrappers in
 * alloc_fail.c, which call the real functions unless a failure is armed.
 * Allocations made inside shared libraries (zlib, OpenBLAS, libc itself) are
 * not seen. It works under `make sanitize` (ASan's allocator stands behind
 * the real functions) and under valgrind.
 *
 * Use:
 *   del_test_fail_alloc_after(k);   the k-th allocation from now fails
 *   st = call(...);                 (once; later ones succeed again)
 *   int fired = del_test_alloc_fired();
 *   del_test_fail_alloc_after(-1);  off
 * Arm only around the call under test: Check's own assertions allocate, so
 * assert after disarming. alloc_fail_run() below is the usual loop. */
#ifndef DEL_TEST_ALLOC_FAIL_H
#define DEL_TEST_ALLOC_FAIL_H

#include "testutil.h"

/* Arms the hook: the n-th allocation from now (n >= 1; 1 = the next one)
 * returns NULL, once. n <= 0 disarms it. Also resets the counts below.
 * Thread-safe (the counters are atomic): allocations of every thread count. */
void del_test_fail_alloc_after(long n);

/* 1 if the armed failure happened since the last del_test_fail_alloc_after. */
int del_test_alloc_fired(void);

/* The allocations attempted since the last del_test_fail_alloc_after. */
long del_test_alloc_count(void);

/* Blocks allocated through the wrappers and not yet freed (a running
 * total): the difference across a call is what the call left allocated. */
long del_test_alloc_live(void);

/* One public call run under allocation failure by alloc_fail_run. */
typedef struct {
    /* The public function called (for the messages of this check). */
    const char *func;
    /* NULL, or a known defect of the messages (text for the record): the
     * check that they start with "func: " is skipped until it is fixed. */
    const char *known_defect;
    /* Builds the inputs (not armed) and returns them as ctx. */
    void *(*setup)(void);
    /* The call under test, the only code run while armed; no Check
     * assertions in it. */
    del_status (*call)(void *ctx);
    /* After a failed call (not armed): asserts the inputs and out-params are
     * as setup left them. NULL: nothing to check. */
    void (*check_unchanged)(void *ctx);
    /* Frees ctx and whatever call made (not armed). */
    void (*teardown)(void *ctx);
} alloc_fail_case;

/* Runs c->call with its k-th allocation failing, for k = 1, 2, ... until a
 * run makes no failing allocation (then the call must return DEL_OK). Each
 * run that saw its allocation fail must return DEL_ENOMEM (or DEL_OK where
 * the call does without that allocation) with a message starting with
 * "func: " (unless known_defect) and mentioning memory, and must pass check_unchanged; every run,
 * from setup to teardown, must leave no block allocated (what the call
 * keeps in its inputs, e.g. a model's buffers, teardown frees). Returns the
 * number of allocations of the successful run. */
static inline long alloc_fail_run(const alloc_fail_case *c)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: ", c->func);
    for (long k = 1; k < 1000000; k++) {
        long live = del_test_alloc_live();
        void *ctx = c->setup();
        del_test_fail_alloc_after(k);
        del_status st = c->call(ctx);
        int fired = del_test_alloc_fired();
        long made = del_test_alloc_count();
        del_test_fail_alloc_after(-1);
        if (!fired)
            ck_assert_msg(st == DEL_OK, "%s without a failing allocation -> %d: %s", c->func, (int)st,
                          del_last_error());
        if (fired && st != DEL_OK) {
            ck_assert_msg(st == DEL_ENOMEM, "%s with allocation %ld failing -> %d, wanted DEL_ENOMEM: %s", c->func,
                          k, (int)st, del_last_error());
            ck_assert_msg(c->known_defect || strncmp(del_last_error(), prefix, strlen(prefix)) == 0,
                          "%s with allocation %ld failing: message '%s' does not start with '%s'", c->func, k,
                          del_last_error(), prefix);
            ck_assert_msg(strstr(del_last_error(), "memory") != NULL,
                          "%s with allocation %ld failing: message '%s' does not say out of memory", c->func, k,
                          del_last_error());
            if (c->check_unchanged)
                c->check_unchanged(ctx);
        }
        c->teardown(ctx);
        long left = del_test_alloc_live() - live;
        ck_assert_msg(left == 0, "%s with allocation %ld failing: %ld blocks left allocated after teardown",
                      c->func, k, left);
        if (!fired)
            return made;
    }
    ck_abort_msg("%s: still failing after 1000000 allocations", c->func);
    return -1;
}

#endif
