/* libdel — common definitions: export macro, status codes, error reporting.
 *
 * Every fallible call returns a del_status. DEL_OK is zero; errors are
 * negative with fixed values that are never reused. After a failure,
 * del_last_error() returns a one-line message naming the function, the
 * argument and what was expected. */
#ifndef DEL_COMMON_H
#define DEL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(DEL_BUILDING_LIBRARY)
#define DEL_API __attribute__((visibility("default")))
#else
#define DEL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum del_status {
    DEL_OK = 0,
    DEL_EINVAL = -1,    /* an argument is invalid (NULL, out of range, wrong shape) */
    DEL_ENOMEM = -2,    /* memory allocation failed; nothing was leaked */
    DEL_EIO = -3,       /* a file could not be opened, read or written */
    DEL_EFORMAT = -4,   /* a file or string is malformed (bad magic, truncated, parse error) */
    DEL_ECANCELED = -5, /* a callback asked the work to stop */
    DEL_ESTATE = -6,    /* the call is not valid in the handle's current state */
    DEL_ENUMERIC = -7   /* a computation or a value is not finite (NaN or infinity) */
} del_status;

/* The message of the last failure on the calling thread. Owned by the
 * library and valid until the next failing call on this thread; never
 * NULL (an empty string when nothing failed yet). Thread-safe. */
DEL_API const char *del_last_error(void);

/* A short constant description of a status code ("invalid argument", ...);
 * "unknown status" for values that are not a del_status. Never NULL. */
DEL_API const char *del_status_str(del_status status);

/* Sets the calling thread's last-error message (del_last_error) to
 * message, cut to the library's message size, and returns status: for
 * code built on libdel (a technique written on the public API, a
 * callback) that reports its failures the way libdel does, as
 * `return del_set_error(DEL_EINVAL, "my_trainer: 'k' must be >= 1");`.
 * A NULL message sets the status's description (del_status_str).
 * Thread-safe; never fails. */
DEL_API del_status del_set_error(del_status status, const char *message);

/* Sets the number of compute threads used by every libdel call in this
 * process (the library's own pool and OpenBLAS). n >= 1; the default is
 * the number of online CPUs. Results do not depend on n: the same seed
 * gives bit-identical results whatever the thread count.
 * Not to be called while another thread is inside a libdel call.
 * Errors: DEL_EINVAL if n < 1 or n > 256. */
DEL_API del_status del_set_num_threads(int n);

/* The current number of compute threads. */
DEL_API int del_get_num_threads(void);

/* The name of the instruction set libdel's own SIMD kernels use in this
 * process (convolution, pooling and augmentation loops; not OpenBLAS,
 * which picks its own, see its OPENBLAS_CORETYPE): "avx512" (x86-64-v4),
 * "avx2" (x86-64-v3: AVX2 and FMA) or "generic" (the build's baseline).
 * It is the best the CPU supports, capped by the environment variable
 * DEL_CPU_ISA: "avx512", "avx2" or "generic" (any case), read once, at
 * the first call that needs it; a value above what the CPU supports
 * gives the CPU's best and any other value is ignored. Builds other than
 * GCC on x86-64 in ISO C mode have "generic" only. The kernels of every
 * level round alike, so on one machine results do not depend on it.
 * The string is static; never NULL. Thread-safe; never fails. */
DEL_API const char *del_cpu_isa(void);

#ifdef __cplusplus
}
#endif
#endif
