/* Input buffers shared by the backend tests. Both allocate one spare
 * byte so that n = 0 still returns a pointer; the caller frees them. */
#ifndef DEL_TEST_BACKEND_BUFS_H
#define DEL_TEST_BACKEND_BUFS_H

#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"

/* n floats uniform in [-1, 1) from seed. */
static inline float *rand_buf(size_t n, uint64_t seed)
{
    del_rng r;
    del_rng_seed(&r, seed);
    float *p = malloc(n * sizeof *p + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * del_rng_uniform(&r) - 1.0f;
    return p;
}

/* n copies of v. */
static inline float *fill_buf(size_t n, float v)
{
    float *p = malloc(n * sizeof *p + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

#endif
