/* xoshiro256** (Blackman & Vigna) seeded through splitmix64. */
#include "core/rng.h"

#include <math.h>

#include "core/error.h"
#include "del/data.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void del_rng_seed(del_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    /* splitmix64 never yields four zero words in a row, but be safe: the
     * all-zero state is a fixed point of xoshiro. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
}

void del_rng_seed_stream(del_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    /* Each coordinate goes through a full splitmix64 round so that nearby
     * (a, b) pairs give unrelated streams. */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ a;
    h = splitmix64(&x);
    x = h ^ b;
    h = splitmix64(&x);
    del_rng_seed(r, h);
}

uint64_t del_rng_u64(del_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float del_rng_uniform(del_rng *r)
{
    return (float)(del_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

double del_rng_uniform_double(del_rng *r)
{
    return (double)(del_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t del_rng_below(del_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Rejection of the incomplete top block keeps it unbiased. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = del_rng_u64(r);
    } while (v >= limit);
    return v % n;
}

float del_rng_normal(del_rng *r)
{
    /* 1 - u lies in (0, 1], so the log is finite. */
    double u1 = 1.0 - del_rng_uniform_double(r);
    double u2 = del_rng_uniform_double(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void del_rng_shuffle_i64(del_rng *r, int64_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)del_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

DEL_API del_status del_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch, uint64_t stream)
{
    if (n < 0)
        return del_error(DEL_EINVAL, "del_permutation: 'n' must be >= 0, got %lld", (long long)n);
    if (!perm && n > 0)
        return del_error_null("del_permutation", "perm");
    del_rng r;
    del_rng_seed_stream(&r, seed, epoch, stream);
    for (int64_t k = 0; k < n; k++)
        perm[k] = k;
    del_rng_shuffle_i64(&r, perm, n);
    return DEL_OK;
}
