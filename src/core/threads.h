/* Internal: the process-wide thread pool.
 *
 * del_parallel_for splits [0, n) into contiguous chunks and runs
 * fn(ctx, begin, end) on the pool's threads (the caller's thread takes part)
 * and returns when all are done. Chunking must not change results: callers
 * write disjoint outputs per index, and reductions across indices are done
 * by the caller in a fixed order, never per thread. Nested calls run
 * serially on the calling thread. */
#ifndef DEL_CORE_THREADS_H
#define DEL_CORE_THREADS_H

#include <stdint.h>

typedef void (*del_range_fn)(void *ctx, int64_t begin, int64_t end);

void del_parallel_for(int64_t n, del_range_fn fn, void *ctx);

/* The configured thread count (>= 1). */
int del_threads_count(void);

#endif
