/* Internal: deterministic random numbers.
 *
 * Streams are derived, never shared between threads: a stream for
 * (seed, a, b) — e.g. (seed, epoch, image index) — is the same whatever the
 * thread that draws it, which is what makes results independent of the
 * thread count. */
#ifndef DEL_CORE_RNG_H
#define DEL_CORE_RNG_H

#include <stdint.h>

typedef struct del_rng {
    uint64_t s[4]; /* xoshiro256** state */
} del_rng;

/* Seeds r from seed (through splitmix64, so any seed is fine). */
void del_rng_seed(del_rng *r, uint64_t seed);

/* Seeds r from a seed and two stream coordinates (hashed together). */
void del_rng_seed_stream(del_rng *r, uint64_t seed, uint64_t a, uint64_t b);

uint64_t del_rng_u64(del_rng *r);

/* Uniform in [0, 1) with 24 random bits. */
float del_rng_uniform(del_rng *r);

/* Uniform in [0, 1) with 53 random bits. */
double del_rng_uniform_double(del_rng *r);

/* Uniform integer in [0, n), unbiased; n >= 1. */
uint64_t del_rng_below(del_rng *r, uint64_t n);

/* Standard normal (Box-Muller, double precision internally). */
float del_rng_normal(del_rng *r);

/* Fisher-Yates shuffle of idx[0..n). */
void del_rng_shuffle_i64(del_rng *r, int64_t *idx, int64_t n);

#endif
