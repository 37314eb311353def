/* A persistent thread pool for del_parallel_for.
 *
 * Workers sleep on a condition variable between jobs. A job is [0, n) cut
 * into a few contiguous chunks per participant; participants (the workers and
 * the calling thread) claim chunks through an atomic counter, so a slow or
 * missing worker never blocks progress: the caller finishes whatever is
 * left. Which thread runs a chunk never changes the results, because
 * callers write disjoint outputs per index. */
#include "core/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"
#include "del/common.h"

#define DEL_MAX_THREADS 256
#define DEL_CHUNKS_PER_THREAD 4

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait here for a new generation */
    pthread_cond_t done_cv; /* the caller waits here for the last chunk */
    pthread_t *workers;
    int nworkers;
    int nthreads; /* configured count, >= 1, = nworkers + 1 unless creation failed */
    int stop;
    uint64_t generation;
    /* the current job */
    del_range_fn fn;
    void *ctx;
    int64_t n;
    int64_t nchunks;
    /* (generation << 32) | next chunk index: a worker that wakes late
     * cannot claim a chunk of a later job by mistake */
    _Atomic uint64_t next_chunk;
    int64_t chunks_done; /* under mu */
} pool;

static pool g_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
};

/* Held by the one external thread that owns the pool for a job; others
 * that find it busy run their loop serially (same results). */
static pthread_mutex_t g_submit = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_in_parallel;

static void chunk_bounds(int64_t n, int64_t nchunks, int64_t i, int64_t *b, int64_t *e)
{
    /* Balanced: the first n % nchunks chunks get one extra index. */
    int64_t q = n / nchunks, r = n % nchunks;
    *b = i * q + (i < r ? i : r);
    *e = *b + q + (i < r ? 1 : 0);
}

typedef struct job {
    uint32_t gen;
    del_range_fn fn;
    void *ctx;
    int64_t n, nchunks;
} job;

/* Copies the current job; called with p->mu held. */
static job job_snapshot(const pool *p)
{
    job j = {(uint32_t)p->generation, p->fn, p->ctx, p->n, p->nchunks};
    return j;
}

/* Runs chunks of job j until none is left; returns how many this thread ran. */
static int64_t run_chunks(pool *p, const job *j)
{
    int64_t ran = 0;
    uint64_t v = atomic_load(&p->next_chunk);
    for (;;) {
        if ((uint32_t)(v >> 32) != j->gen || (int64_t)(v & 0xffffffffu) >= j->nchunks)
            break;
        if (!atomic_compare_exchange_weak(&p->next_chunk, &v, v + 1))
            continue;
        int64_t b, e;
        chunk_bounds(j->n, j->nchunks, (int64_t)(v & 0xffffffffu), &b, &e);
        j->fn(j->ctx, b, e);
        ran++;
        v = atomic_load(&p->next_chunk);
    }
    return ran;
}

static void *worker_main(void *arg)
{
    pool *p = arg;
    t_in_parallel = 1;
    pthread_mutex_lock(&p->mu);
    uint64_t seen = p->generation;
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        job j = job_snapshot(p);
        pthread_mutex_unlock(&p->mu);
        int64_t ran = run_chunks(p, &j);
        pthread_mutex_lock(&p->mu);
        p->chunks_done += ran;
        if (p->chunks_done == p->nchunks)
            pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_workers(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
    p->workers = NULL;
    p->nworkers = 0;
    p->stop = 0;
}

/* Starts up to n - 1 workers; on failure keeps the ones that started. */
static void start_workers(pool *p, int n)
{
    p->nthreads = n;
    if (n <= 1)
        return;
    p->workers = malloc((size_t)(n - 1) * sizeof *p->workers);
    if (!p->workers)
        return;
    for (int i = 0; i < n - 1; i++) {
        if (pthread_create(&p->workers[p->nworkers], NULL, worker_main, p) != 0)
            break;
        p->nworkers++;
    }
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > DEL_MAX_THREADS)
        n = DEL_MAX_THREADS;
    return (int)n;
}

static void pool_init(void)
{
    start_workers(&g_pool, default_threads());
}

/* Workers must be gone before the process tears down, or leak checkers
 * report their stacks. */
__attribute__((destructor)) static void pool_shutdown(void)
{
    pthread_mutex_lock(&g_submit);
    stop_workers(&g_pool);
    pthread_mutex_unlock(&g_submit);
}

void del_parallel_for(int64_t n, del_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    pthread_once(&g_once, pool_init);
    pool *p = &g_pool;
    if (n == 1 || t_in_parallel || pthread_mutex_trylock(&g_submit) != 0) {
        fn(ctx, 0, n);
        return;
    }
    if (p->nworkers == 0) {
        pthread_mutex_unlock(&g_submit);
        fn(ctx, 0, n);
        return;
    }
    /* A few chunks per participant, claimed dynamically: when a core is
     * shared with other processes, a worker that is descheduled (or wakes
     * late) holds back at most one small chunk, and the others take the
     * rest. Results do not depend on the split (see threads.h). */
    int64_t nchunks = (int64_t)(p->nworkers + 1) * DEL_CHUNKS_PER_THREAD;
    if (nchunks > n)
        nchunks = n;

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->nchunks = nchunks;
    p->chunks_done = 0;
    p->generation++;
    atomic_store(&p->next_chunk, (uint64_t)(uint32_t)p->generation << 32);
    job j = job_snapshot(p);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    t_in_parallel = 1;
    int64_t ran = run_chunks(p, &j);
    t_in_parallel = 0;

    pthread_mutex_lock(&p->mu);
    p->chunks_done += ran;
    while (p->chunks_done < p->nchunks)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&g_submit);
}

int del_threads_count(void)
{
    pthread_once(&g_once, pool_init);
    return g_pool.nthreads;
}

DEL_API del_status del_set_num_threads(int n)
{
    if (n < 1 || n > DEL_MAX_THREADS)
        return del_error(DEL_EINVAL, "del_set_num_threads: 'n' must be in 1..%d, got %d",
                         DEL_MAX_THREADS, n);
    pthread_once(&g_once, pool_init);
    pthread_mutex_lock(&g_submit);
    if (n != g_pool.nthreads) {
        stop_workers(&g_pool);
        start_workers(&g_pool, n);
    }
    pthread_mutex_unlock(&g_submit);
    del_backend_get()->set_num_threads(n);
    return DEL_OK;
}

DEL_API int del_get_num_threads(void)
{
    return del_threads_count();
}
