/* Core: status/error messages, tensors, rng, thread pool, version. */
#include <pthread.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor_internal.h"
#include "core/threads.h"
#include "testutil.h"

/* ---- errors ---- */

START_TEST(test_status_str_names_every_status)
{
    ck_assert_str_eq(del_status_str(DEL_OK), "success");
    ck_assert_str_eq(del_status_str(DEL_EINVAL), "invalid argument");
    ck_assert_str_eq(del_status_str(DEL_ENOMEM), "out of memory");
    ck_assert_str_eq(del_status_str(DEL_EIO), "input/output error");
    ck_assert_str_eq(del_status_str(DEL_EFORMAT), "malformed data");
    ck_assert_str_eq(del_status_str(DEL_ECANCELED), "canceled");
    ck_assert_str_eq(del_status_str(DEL_ESTATE), "invalid state");
    ck_assert_int_eq(DEL_ENUMERIC, -7);
    ck_assert_str_eq(del_status_str(DEL_ENUMERIC), "non-finite value");
    ck_assert_str_eq(del_status_str((del_status)-99), "unknown status");
    ck_assert_str_eq(del_status_str((del_status)7), "unknown status");
}
END_TEST

START_TEST(test_error_formats_message_and_returns_status)
{
    ck_assert_int_eq(del_error(DEL_EIO, "f: '%s' failed with %d", "x.bin", 42), DEL_EIO);
    ck_assert_str_eq(del_last_error(), "f: 'x.bin' failed with 42");
    ck_assert_int_eq(del_error_null("del_foo", "bar"), DEL_EINVAL);
    ck_assert_str_eq(del_last_error(), "del_foo: 'bar' must not be NULL");
}
END_TEST

START_TEST(test_error_keeps_a_path_of_path_max_and_the_reason)
{
    char path[4096];
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    path[0] = '/';
    del_error(DEL_EIO, "del_foo: cannot create '%s.tmp.123.abcdef' (for the link '%s'): %s", path, path,
              "No such file or directory");
    const char *msg = del_last_error();
    ck_assert_uint_eq(strlen(msg), 2 * (sizeof path - 1) + strlen("del_foo: cannot create '.tmp.123.abcdef' "
                                                                  "(for the link ''): No such file or directory"));
    ck_assert_ptr_null(strstr(msg, "..."));
}
END_TEST

/* Longer than the buffer: the start (the function) and the end (the
 * system's reason) stay, the middle gives way to "...". */
START_TEST(test_error_cuts_the_middle_of_a_too_long_message)
{
    size_t n = 3 * DEL_ERROR_MSG_SIZE;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', n);
    big[n] = '\0';
    ck_assert_int_eq(del_error(DEL_EIO, "del_foo: cannot write '%s': Permission denied", big), DEL_EIO);
    const char *msg = del_last_error();
    size_t len = strlen(msg);
    ck_assert_uint_eq(len, DEL_ERROR_MSG_SIZE - 1);
    ck_assert(strncmp(msg, "del_foo: cannot write 'aaa", 26) == 0);
    ck_assert_str_eq(msg + len - 21, "a': Permission denied");
    const char *dots = strstr(msg, "...");
    ck_assert_ptr_nonnull(dots);
    ck_assert_uint_gt((size_t)(dots - msg), 1000);
    ck_assert_uint_gt((size_t)(msg + len - dots), 1000);
    /* a multi-byte character across a cut is dropped whole, not split */
    for (size_t k = 0; k + 1 < n; k += 2) {
        big[k] = (char)0xC3;
        big[k + 1] = (char)0xA9; /* U+00E9 */
    }
    del_error(DEL_EIO, "x%sy", big); /* both cuts fall inside a character */
    msg = del_last_error();
    dots = strstr(msg, "...");
    ck_assert_ptr_nonnull(dots);
    ck_assert_int_eq((unsigned char)dots[-1], 0xA9);
    ck_assert_int_eq((unsigned char)dots[3], 0xC3);
    ck_assert_int_eq((size_t)(dots - msg) % 2, 1);
    ck_assert_int_eq(msg[strlen(msg) - 1], 'y');
    ck_assert_uint_lt(strlen(msg), DEL_ERROR_MSG_SIZE - 1);
    free(big);
}
END_TEST

static void *set_error_in_thread(void *arg)
{
    (void)arg;
    del_error(DEL_EIO, "other thread");
    return NULL;
}

START_TEST(test_error_message_is_thread_local)
{
    del_error(DEL_EINVAL, "main thread");
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, set_error_in_thread, NULL), 0);
    pthread_join(th, NULL);
    ck_assert_str_eq(del_last_error(), "main thread");
}
END_TEST

/* ---- version ---- */

START_TEST(test_version_matches_macros)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", DEL_VERSION_MAJOR, DEL_VERSION_MINOR, DEL_VERSION_PATCH);
    ck_assert_str_eq(del_version_string(), want);
    ck_assert_int_eq(del_version_number(),
                     DEL_VERSION_MAJOR * 10000 + DEL_VERSION_MINOR * 100 + DEL_VERSION_PATCH);
}
END_TEST

/* ---- tensors ---- */

START_TEST(test_tensor_new_is_zeroed_aligned_and_shaped)
{
    int64_t shape[4] = {2, 3, 4, 5};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 4, shape));
    ck_assert_int_eq(del_tensor_ndim(t), 4);
    ck_assert_int_eq(del_tensor_dim(t, 0), 2);
    ck_assert_int_eq(del_tensor_dim(t, 3), 5);
    ck_assert_int_eq(del_tensor_dim(t, -1), 5);
    ck_assert_int_eq(del_tensor_dim(t, -4), 2);
    ck_assert_int_eq(del_tensor_dim(t, 4), 0);
    ck_assert_int_eq(del_tensor_dim(t, -5), 0);
    ck_assert_int_eq(del_tensor_numel(t), 120);
    ck_assert_uint_eq(del_tensor_nbytes(t), 480);
    ck_assert_int_eq(del_tensor_dtype(t), DEL_DTYPE_F32);
    float *d = del_tensor_data(t);
    ck_assert_uint_eq((uintptr_t)d % 64, 0);
    for (int i = 0; i < 120; i++)
        ck_assert(d[i] == 0.0f);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_dtype_sizes)
{
    ck_assert_uint_eq(del_dtype_size(DEL_DTYPE_F32), 4);
    ck_assert_uint_eq(del_dtype_size(DEL_DTYPE_U8), 1);
    ck_assert_uint_eq(del_dtype_size(DEL_DTYPE_I32), 4);
    ck_assert_uint_eq(del_dtype_size((del_dtype)9), 0);
}
END_TEST

START_TEST(test_tensor_queries_on_null)
{
    ck_assert_int_eq(del_tensor_dtype(NULL), DEL_DTYPE_F32);
    ck_assert_int_eq(del_tensor_ndim(NULL), 0);
    ck_assert_int_eq(del_tensor_dim(NULL, 0), 0);
    ck_assert_int_eq(del_tensor_numel(NULL), 0);
    ck_assert_uint_eq(del_tensor_nbytes(NULL), 0);
    ck_assert_ptr_null(del_tensor_data(NULL));
    del_tensor_free(NULL);
}
END_TEST

START_TEST(test_tensor_new_rejects_bad_arguments)
{
    int64_t shape[5] = {2, 3, 4, 5, 6};
    int64_t zero[2] = {3, 0}, neg[2] = {-1, 2};
    int64_t huge[4] = {INT64_MAX / 2, 4, 1, 1}, big2[3] = {(int64_t)1 << 31, (int64_t)1 << 31, 4};
    del_tensor *t = (del_tensor *)(uintptr_t)1;
    ck_assert_del_err(del_tensor_new(NULL, DEL_DTYPE_F32, 1, shape), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 1, NULL), DEL_EINVAL, "'shape'");
    ck_assert_ptr_null(t);
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 0, shape), DEL_EINVAL, "'ndim'");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 5, shape), DEL_EINVAL, "'ndim'");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, -1, shape), DEL_EINVAL, "got -1");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 2, zero), DEL_EINVAL, "'shape[1]'");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 2, neg), DEL_EINVAL, "'shape[0]'");
    ck_assert_del_err(del_tensor_new(&t, (del_dtype)3, 2, shape), DEL_EINVAL, "'dtype'");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_F32, 4, huge), DEL_EINVAL, "overflow");
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_U8, 3, big2), DEL_EINVAL, "overflow");
    ck_assert_ptr_null(t);
    ck_assert(strstr(del_last_error(), "del_tensor_new") != NULL);
}
END_TEST

START_TEST(test_tensor_new_huge_but_valid_reports_enomem)
{
    /* 2^60 bytes cannot be allocated anywhere; must fail cleanly. */
    int64_t shape[2] = {(int64_t)1 << 30, (int64_t)1 << 30};
    del_tensor *t = NULL;
    ck_assert_del_err(del_tensor_new(&t, DEL_DTYPE_U8, 2, shape), DEL_ENOMEM, "del_tensor_new");
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_tensor_wrap_uses_caller_buffer)
{
    int32_t buf[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_wrap(&t, DEL_DTYPE_I32, 2, shape, buf));
    ck_assert_ptr_eq(del_tensor_data(t), buf);
    ck_assert_uint_eq(del_tensor_nbytes(t), sizeof buf);
    ((int32_t *)del_tensor_data(t))[5] = 60;
    del_tensor_free(t); /* must not free buf */
    ck_assert_int_eq(buf[5], 60);
    ck_assert_del_err(del_tensor_wrap(&t, DEL_DTYPE_I32, 2, shape, NULL), DEL_EINVAL, "'data'");
    ck_assert_del_err(del_tensor_wrap(NULL, DEL_DTYPE_I32, 2, shape, buf), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_wrap(&t, DEL_DTYPE_I32, 5, shape, buf), DEL_EINVAL, "del_tensor_wrap: 'ndim'");
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_tensor_copy_is_deep)
{
    uint8_t buf[4] = {9, 8, 7, 6};
    int64_t shape[1] = {4};
    del_tensor *w = NULL, *c = NULL;
    ck_assert_del_ok(del_tensor_wrap(&w, DEL_DTYPE_U8, 1, shape, buf));
    ck_assert_del_ok(del_tensor_copy(&c, w));
    ck_assert_ptr_ne(del_tensor_data(c), buf);
    ck_assert_int_eq(del_tensor_dtype(c), DEL_DTYPE_U8);
    ck_assert_int_eq(del_tensor_dim(c, 0), 4);
    buf[0] = 0;
    ck_assert_int_eq(((uint8_t *)del_tensor_data(c))[0], 9);
    ck_assert_int_eq(((uint8_t *)del_tensor_data(c))[3], 6);
    del_tensor_free(c);
    ck_assert_del_err(del_tensor_copy(NULL, w), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_tensor_copy(&c, NULL), DEL_EINVAL, "'src'");
    ck_assert_ptr_null(c);
    del_tensor_free(w);
}
END_TEST

START_TEST(test_tensor_reshape_keeps_data_and_checks_count)
{
    int64_t shape[2] = {4, 6}, flat[1] = {24}, bad[2] = {5, 5}, three[3] = {2, 3, 4};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape));
    float *d = del_tensor_data(t);
    d[23] = 7.0f;
    ck_assert_del_ok(del_tensor_reshape(t, 3, three));
    ck_assert_int_eq(del_tensor_ndim(t), 3);
    ck_assert_int_eq(del_tensor_dim(t, 2), 4);
    ck_assert_ptr_eq(del_tensor_data(t), d);
    ck_assert_del_ok(del_tensor_reshape(t, 1, flat));
    ck_assert(((float *)del_tensor_data(t))[23] == 7.0f);
    ck_assert_del_err(del_tensor_reshape(t, 2, bad), DEL_EINVAL, "24 elements");
    ck_assert_int_eq(del_tensor_ndim(t), 1);
    ck_assert_del_err(del_tensor_reshape(t, 0, bad), DEL_EINVAL, "'ndim'");
    ck_assert_del_err(del_tensor_reshape(t, 1, NULL), DEL_EINVAL, "'shape'");
    ck_assert_del_err(del_tensor_reshape(NULL, 1, flat), DEL_EINVAL, "'t'");
    del_tensor_free(t);
}
END_TEST

START_TEST(test_tensor_copy_from_and_to_check_nbytes)
{
    int64_t shape[1] = {3};
    float src[3] = {1.5f, -2.0f, 3.25f}, dst[3] = {0};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 1, shape));
    ck_assert_del_ok(del_tensor_copy_from(t, src, sizeof src));
    ck_assert_del_ok(del_tensor_copy_to(t, dst, sizeof dst));
    ck_assert(dst[0] == 1.5f && dst[1] == -2.0f && dst[2] == 3.25f);
    ck_assert_del_err(del_tensor_copy_from(t, src, 8), DEL_EINVAL, "'nbytes' must be 12");
    ck_assert_del_err(del_tensor_copy_to(t, dst, 16), DEL_EINVAL, "'nbytes' must be 12");
    ck_assert_del_err(del_tensor_copy_from(NULL, src, 12), DEL_EINVAL, "'t'");
    ck_assert_del_err(del_tensor_copy_from(t, NULL, 12), DEL_EINVAL, "'src'");
    ck_assert_del_err(del_tensor_copy_to(NULL, dst, 12), DEL_EINVAL, "'t'");
    ck_assert_del_err(del_tensor_copy_to(t, NULL, 12), DEL_EINVAL, "'dst'");
    del_tensor_free(t);
}
END_TEST

START_TEST(test_tensor_ensure_reuses_memory_when_large_enough)
{
    del_tensor *t = del_tensor_empty();
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(del_tensor_ndim(t), 0);
    ck_assert_uint_eq(del_tensor_nbytes(t), 0);
    int64_t big[2] = {8, 8}, small[3] = {2, 2, 2}, bigger[1] = {100};
    ck_assert_del_ok(del_tensor_ensure(t, DEL_DTYPE_F32, 2, big));
    void *p = del_tensor_data(t);
    ck_assert_ptr_nonnull(p);
    ck_assert_del_ok(del_tensor_ensure(t, DEL_DTYPE_I32, 3, small));
    ck_assert_ptr_eq(del_tensor_data(t), p);
    ck_assert(del_tensor_has_shape(t, DEL_DTYPE_I32, 3, small));
    ck_assert(!del_tensor_has_shape(t, DEL_DTYPE_F32, 3, small));
    ck_assert(!del_tensor_has_shape(t, DEL_DTYPE_I32, 2, big));
    ck_assert_del_ok(del_tensor_ensure(t, DEL_DTYPE_U8, 1, bigger));
    ck_assert_del_ok(del_tensor_ensure(t, DEL_DTYPE_F32, 1, bigger));
    ck_assert_uint_eq(del_tensor_nbytes(t), 400);
    ck_assert_uint_eq((uintptr_t)del_tensor_data(t) % 64, 0);
    memset(del_tensor_data(t), 0, 400); /* the whole size is usable (ASan) */
    ck_assert_del_err(del_tensor_ensure(t, DEL_DTYPE_F32, 0, bigger), DEL_EINVAL, "'ndim'");
    char buf[64];
    ck_assert_str_eq(del_tensor_shape_str(t, buf, sizeof buf), "[100]");
    del_tensor_free(t);
}
END_TEST

START_TEST(test_tensor_ensure_refuses_to_grow_wrapped_buffer)
{
    float buf[4];
    int64_t shape[1] = {4}, more[1] = {5}, fewer[2] = {1, 2};
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_wrap(&t, DEL_DTYPE_F32, 1, shape, buf));
    ck_assert_del_err(del_tensor_ensure(t, DEL_DTYPE_F32, 1, more), DEL_EINVAL, "wrapped");
    ck_assert_del_ok(del_tensor_ensure(t, DEL_DTYPE_F32, 2, fewer));
    ck_assert_ptr_eq(del_tensor_data(t), buf);
    del_tensor_free(t);
}
END_TEST

START_TEST(test_tensor_shape_str_formats_and_truncates)
{
    int64_t shape[3] = {128, 1, 28};
    del_tensor *t = NULL;
    char buf[64], tiny[6];
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 3, shape));
    ck_assert_str_eq(del_tensor_shape_str(t, buf, sizeof buf), "[128, 1, 28]");
    del_tensor_shape_str(t, tiny, sizeof tiny);
    ck_assert_uint_lt(strlen(tiny), sizeof tiny);
    ck_assert(strncmp(tiny, "[128", 4) == 0);
    del_tensor_free(t);
}
END_TEST

/* ---- rng ---- */

START_TEST(test_rng_same_seed_same_stream)
{
    del_rng a, b;
    del_rng_seed(&a, 12345);
    del_rng_seed(&b, 12345);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(del_rng_u64(&a), del_rng_u64(&b));
    del_rng_seed_stream(&a, 7, 3, 9);
    del_rng_seed_stream(&b, 7, 3, 9);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(del_rng_u64(&a), del_rng_u64(&b));
}
END_TEST

START_TEST(test_rng_xoshiro_matches_reference_recurrence)
{
    /* Independent transcription of xoshiro256** from a hand-set state. */
    del_rng r = {{1, 2, 3, 4}};
    uint64_t s0 = 1, s1 = 2, s2 = 3, s3 = 4;
    for (int i = 0; i < 10; i++) {
        uint64_t x = s1 * 5;
        uint64_t want = ((x << 7) | (x >> 57)) * 9;
        uint64_t t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 45) | (s3 >> 19);
        ck_assert_uint_eq(del_rng_u64(&r), want);
    }
    /* the first output from state {1,2,3,4} is rotl(10, 7) * 9 = 11520 */
    del_rng r2 = {{1, 2, 3, 4}};
    ck_assert_uint_eq(del_rng_u64(&r2), 11520);
}
END_TEST

START_TEST(test_rng_seed_uses_splitmix64)
{
    /* splitmix64 from 0: first output 0xe220a8397b1dcdaf (Vigna's reference). */
    del_rng r;
    del_rng_seed(&r, 0);
    ck_assert_uint_eq(r.s[0], 0xe220a8397b1dcdafULL);
}
END_TEST

START_TEST(test_rng_different_streams_differ)
{
    del_rng a, b, c, d;
    del_rng_seed_stream(&a, 1, 0, 0);
    del_rng_seed_stream(&b, 1, 0, 1);
    del_rng_seed_stream(&c, 1, 1, 0);
    del_rng_seed_stream(&d, 2, 0, 0);
    uint64_t va = del_rng_u64(&a), vb = del_rng_u64(&b), vc = del_rng_u64(&c), vd = del_rng_u64(&d);
    ck_assert_uint_ne(va, vb);
    ck_assert_uint_ne(va, vc);
    ck_assert_uint_ne(vb, vc);
    ck_assert_uint_ne(va, vd);
}
END_TEST

START_TEST(test_rng_uniform_in_unit_interval_with_mean_half)
{
    del_rng r;
    del_rng_seed(&r, 99);
    double sum = 0.0, sumd = 0.0;
    int outside = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        float u = del_rng_uniform(&r);
        double ud = del_rng_uniform_double(&r);
        outside += !(u >= 0.0f && u < 1.0f) + !(ud >= 0.0 && ud < 1.0);
        sum += u;
        sumd += ud;
    }
    ck_assert_int_eq(outside, 0);
    /* std of the mean is 1/sqrt(12 n) ~ 0.002 */
    ck_assert_double_eq_tol(sum / n, 0.5, 0.01);
    ck_assert_double_eq_tol(sumd / n, 0.5, 0.01);
}
END_TEST

START_TEST(test_rng_below_stays_in_bounds_and_hits_every_value)
{
    del_rng r;
    del_rng_seed(&r, 5);
    int hits[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = del_rng_below(&r, 7);
        ck_assert_uint_lt(v, 7);
        hits[v]++;
    }
    for (int i = 0; i < 7; i++)
        ck_assert_int_gt(hits[i], 800);
    ck_assert_uint_eq(del_rng_below(&r, 1), 0);
    uint64_t big = ((uint64_t)1 << 63) + 12345;
    for (int i = 0; i < 100; i++)
        ck_assert_uint_lt(del_rng_below(&r, big), big);
}
END_TEST

START_TEST(test_rng_normal_has_unit_moments)
{
    del_rng r;
    del_rng_seed(&r, 11);
    double s = 0.0, s2 = 0.0;
    int nans = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double v = del_rng_normal(&r);
        nans += v != v;
        s += v;
        s2 += v * v;
    }
    ck_assert_int_eq(nans, 0);
    /* std of the mean ~ 0.007, of the second moment ~ 0.01 */
    ck_assert_double_eq_tol(s / n, 0.0, 0.035);
    ck_assert_double_eq_tol(s2 / n, 1.0, 0.05);
}
END_TEST

START_TEST(test_rng_shuffle_is_a_permutation)
{
    del_rng r;
    del_rng_seed(&r, 3);
    int64_t idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    del_rng_shuffle_i64(&r, idx, 100);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert(idx[i] >= 0 && idx[i] < 100);
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 50);
    del_rng_shuffle_i64(&r, idx, 0); /* no-op, no crash */
    del_rng_shuffle_i64(&r, idx, 1);
}
END_TEST

/* ---- threads ---- */

typedef struct cover_ctx {
    int *hits;
    int64_t n;
} cover_ctx;

static void count_hits(void *ctx, int64_t b, int64_t e)
{
    cover_ctx *c = ctx;
    for (int64_t i = b; i < e; i++)
        __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
}

START_TEST(test_parallel_for_covers_every_index_once)
{
    static const int counts[] = {1, 2, 4};
    static const int64_t sizes[] = {0, 1, 7, 1000};
    int *hits = malloc(1000 * sizeof *hits);
    for (size_t t = 0; t < 3; t++) {
        ck_assert_del_ok(del_set_num_threads(counts[t]));
        ck_assert_int_eq(del_get_num_threads(), counts[t]);
        ck_assert_int_eq(del_threads_count(), counts[t]);
        for (size_t s = 0; s < 4; s++)
            for (int rep = 0; rep < 20; rep++) {
                memset(hits, 0, 1000 * sizeof *hits);
                cover_ctx c = {hits, sizes[s]};
                del_parallel_for(sizes[s], count_hits, &c);
                for (int64_t i = 0; i < 1000; i++)
                    ck_assert_int_eq(hits[i], i < sizes[s] ? 1 : 0);
            }
    }
    free(hits);
}
END_TEST

typedef struct nested_ctx {
    int *hits; /* 16 x 16 */
} nested_ctx;

typedef struct inner_ctx {
    int *row;
} inner_ctx;

static void inner_body(void *ctx, int64_t b, int64_t e)
{
    inner_ctx *c = ctx;
    for (int64_t i = b; i < e; i++)
        c->row[i]++;
}

static void outer_body(void *ctx, int64_t b, int64_t e)
{
    nested_ctx *c = ctx;
    for (int64_t i = b; i < e; i++) {
        inner_ctx ic = {c->hits + i * 16};
        del_parallel_for(16, inner_body, &ic);
    }
}

START_TEST(test_parallel_for_nested_calls_run_serially)
{
    ck_assert_del_ok(del_set_num_threads(4));
    int hits[256] = {0};
    nested_ctx c = {hits};
    del_parallel_for(16, outer_body, &c);
    for (int i = 0; i < 256; i++)
        ck_assert_int_eq(hits[i], 1);
}
END_TEST

static void *hammer_pool(void *arg)
{
    int *hits = arg;
    for (int rep = 0; rep < 200; rep++) {
        cover_ctx c = {hits, 64};
        del_parallel_for(64, count_hits, &c);
    }
    return NULL;
}

START_TEST(test_parallel_for_from_several_threads_at_once)
{
    ck_assert_del_ok(del_set_num_threads(2));
    int a[64] = {0}, b[64] = {0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hammer_pool, a), 0);
    hammer_pool(b);
    pthread_join(th, NULL);
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(a[i], 200);
        ck_assert_int_eq(b[i], 200);
    }
}
END_TEST

START_TEST(test_set_num_threads_rejects_bad_values)
{
    ck_assert_del_ok(del_set_num_threads(3));
    ck_assert_del_err(del_set_num_threads(0), DEL_EINVAL, "del_set_num_threads: 'n' must be in 1..256, got 0");
    ck_assert_del_err(del_set_num_threads(-4), DEL_EINVAL, "got -4");
    ck_assert_del_err(del_set_num_threads(257), DEL_EINVAL, "got 257");
    ck_assert_int_eq(del_get_num_threads(), 3);
    ck_assert_del_ok(del_set_num_threads(256));
    ck_assert_int_ge(del_get_num_threads(), 1);
    ck_assert_del_ok(del_set_num_threads(1));
    ck_assert_int_eq(del_get_num_threads(), 1);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *e = tcase_create("error");
    tcase_add_test(e, test_status_str_names_every_status);
    tcase_add_test(e, test_error_formats_message_and_returns_status);
    tcase_add_test(e, test_error_keeps_a_path_of_path_max_and_the_reason);
    tcase_add_test(e, test_error_cuts_the_middle_of_a_too_long_message);
    tcase_add_test(e, test_error_message_is_thread_local);
    tcase_add_test(e, test_version_matches_macros);
    suite_add_tcase(s, e);

    TCase *t = tcase_create("tensor");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_tensor_new_is_zeroed_aligned_and_shaped);
    tcase_add_test(t, test_dtype_sizes);
    tcase_add_test(t, test_tensor_queries_on_null);
    tcase_add_test(t, test_tensor_new_rejects_bad_arguments);
    tcase_add_test(t, test_tensor_new_huge_but_valid_reports_enomem);
    tcase_add_test(t, test_tensor_wrap_uses_caller_buffer);
    tcase_add_test(t, test_tensor_copy_is_deep);
    tcase_add_test(t, test_tensor_reshape_keeps_data_and_checks_count);
    tcase_add_test(t, test_tensor_copy_from_and_to_check_nbytes);
    tcase_add_test(t, test_tensor_ensure_reuses_memory_when_large_enough);
    tcase_add_test(t, test_tensor_ensure_refuses_to_grow_wrapped_buffer);
    tcase_add_test(t, test_tensor_shape_str_formats_and_truncates);
    suite_add_tcase(s, t);

    TCase *r = tcase_create("rng");
    tcase_set_timeout(r, 60);
    tcase_add_test(r, test_rng_same_seed_same_stream);
    tcase_add_test(r, test_rng_xoshiro_matches_reference_recurrence);
    tcase_add_test(r, test_rng_seed_uses_splitmix64);
    tcase_add_test(r, test_rng_different_streams_differ);
    tcase_add_test(r, test_rng_uniform_in_unit_interval_with_mean_half);
    tcase_add_test(r, test_rng_below_stays_in_bounds_and_hits_every_value);
    tcase_add_test(r, test_rng_normal_has_unit_moments);
    tcase_add_test(r, test_rng_shuffle_is_a_permutation);
    suite_add_tcase(s, r);

    TCase *th = tcase_create("threads");
    tcase_set_timeout(th, 60);
    tcase_add_test(th, test_parallel_for_covers_every_index_once);
    tcase_add_test(th, test_parallel_for_nested_calls_run_serially);
    tcase_add_test(th, test_parallel_for_from_several_threads_at_once);
    tcase_add_test(th, test_set_num_threads_rejects_bad_values);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    return test_run_suite(core_suite());
}
