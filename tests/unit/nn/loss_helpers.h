/* Tensors and golden-file look-ups shared by the loss tests. */
#ifndef DEL_TEST_NN_LOSS_HELPERS_H
#define DEL_TEST_NN_LOSS_HELPERS_H

#include <math.h>

#include "golden.h"
#include "testutil.h"

static inline del_tensor *f32_2d(int64_t n, int64_t k, const float *values)
{
    int64_t shape[2] = {n, k};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    if (values)
        ck_assert_del_ok(del_tensor_copy_from(t, values, (size_t)(n * k) * sizeof(float)));
    return t;
}

static inline del_tensor *i32_1d(int64_t n, const int32_t *values)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_I32, 1, &n));
    ck_assert_del_ok(del_tensor_copy_from(t, values, (size_t)n * sizeof(int32_t)));
    return t;
}

/* Array `<prefix><index>_<field>`, which must have count values (any if
 * count is 0); NULL if absent. */
static inline const double *golden_find(const golden *gd, const char *prefix, int index, const char *field,
                                        int count)
{
    char name[64];
    snprintf(name, sizeof name, "%s%d_%s", prefix, index, field);
    for (int i = 0; i < gd->n; i++)
        if (strcmp(gd->names[i], name) == 0) {
            if (count)
                ck_assert_int_eq(gd->counts[i], count);
            return gd->values[i];
        }
    return NULL;
}

/* An f32 [n, k] tensor of golden values (written from float32, so exact). */
static inline del_tensor *f32_from_doubles(int64_t n, int64_t k, const double *v)
{
    del_tensor *t = f32_2d(n, k, NULL);
    float *d = del_tensor_data(t);
    for (int64_t i = 0; i < n * k; i++)
        d[i] = (float)v[i];
    return t;
}

/* The library computes in double and rounds the result to float once:
 * agreement with torch's double to a few float ulps. */
static inline void check_close(const char *what, int index, int i, double got, double want)
{
    ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want) + 1e-8, "%s case %d [%d]: %.9g, torch %.9g", what, index, i,
                  got, want);
}

#endif
