/* Golden files written by tests/data/nn/gen_*_golden.py: a sequence of
 * "<name> <count>" headers each followed by count numbers, read as
 * doubles. */
#ifndef DEL_TEST_NN_GOLDEN_H
#define DEL_TEST_NN_GOLDEN_H

#include "testutil.h"

#define GOLDEN_MAX_ARRAYS 256

typedef struct golden {
    char names[GOLDEN_MAX_ARRAYS][32];
    double *values[GOLDEN_MAX_ARRAYS];
    int counts[GOLDEN_MAX_ARRAYS];
    int n;
} golden;

/* Reads $DEL_TEST_DATA/nn/<file> (tests/data by default). */
static inline void golden_load(golden *gd, const char *file)
{
    const char *dir = getenv("DEL_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/nn/%s", dir ? dir : "tests/data", file);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s (set DEL_TEST_DATA to tests/data)", path);
    memset(gd, 0, sizeof *gd);
    while (gd->n < GOLDEN_MAX_ARRAYS && fscanf(f, "%31s %d", gd->names[gd->n], &gd->counts[gd->n]) == 2) {
        int c = gd->counts[gd->n];
        ck_assert_int_gt(c, 0);
        gd->values[gd->n] = malloc((size_t)c * sizeof(double));
        ck_assert_ptr_nonnull(gd->values[gd->n]);
        for (int i = 0; i < c; i++)
            ck_assert_int_eq(fscanf(f, "%lf", &gd->values[gd->n][i]), 1);
        gd->n++;
    }
    char extra[32];
    ck_assert_msg(fscanf(f, "%31s", extra) != 1, "%s: more than %d arrays (raise GOLDEN_MAX_ARRAYS)", path,
                  GOLDEN_MAX_ARRAYS);
    fclose(f);
}

static inline void golden_free(golden *gd)
{
    for (int i = 0; i < gd->n; i++)
        free(gd->values[i]);
}

#endif
