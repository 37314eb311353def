/* A persistent thread pool for del_parallel_for.
 *
 * A job is [0, n) cut into a few contiguous chunks per participant (the
 * workers and the calling thread). Each participant owns one contiguous
 * block of chunks, the same block of every job of the same n, and runs it
 * first: consecutive passes over the same images then find their data in
 * the cache of the core that wrote it (here a core reads another core's
 * freshly written 8 MiB at half the speed of its own). A participant that
 * runs out takes the chunks nobody has claimed from the other blocks, so a
 * slow or descheduled worker never blocks progress: the caller finishes
 * whatever is left. Which thread runs a chunk never changes the results,
 * because callers write disjoint outputs per index.
 *
 * Between jobs the workers spin for a short while before they sleep on a
 * condition variable: waking a sleeping thread takes 30-100 us in a VM,
 * and a training step runs a few hundred jobs. */
#include "core/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"
#include "del/common.h"

#define DEL_MAX_THREADS 256
#define DEL_CHUNKS_PER_THREAD 4
/* How long a worker (and the caller, waiting for the last chunk) spins
 * before it sleeps. */
#define DEL_SPIN_NS 100000

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait here for a new generation */
    pthread_cond_t done_cv; /* the caller waits here for the last chunk */
    pthread_t *workers;
    int nworkers;
    int nthreads; /* configured count, >= 1, = nworkers + 1 unless creation failed */
    int stop;
    _Atomic uint64_t generation; /* written under mu, read by spinning workers */
    /* the current job */
    del_range_fn fn;
    void *ctx;
    int64_t n;
    int64_t nchunks;
    int parts; /* participants: nworkers + 1 */
    /* per participant: (generation << 32) | its next chunk index; a
     * worker that wakes late cannot claim a chunk of a later job by
     * mistake. Own cache lines: they are hit from several cores. */
    struct {
        _Atomic uint64_t next;
        char pad[64 - sizeof(uint64_t)];
    } *next;
    _Atomic int64_t chunks_done;
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

/* Balanced: the first n % parts pieces get one extra. */
static int64_t piece_start(int64_t n, int64_t parts, int64_t i)
{
    int64_t q = n / parts, r = n % parts;
    return i * q + (i < r ? i : r);
}

typedef struct job {
    uint32_t gen;
    del_range_fn fn;
    void *ctx;
    int64_t n, nchunks;
    int parts;
} job;

/* Copies the current job; called with p->mu held. */
static job job_snapshot(const pool *p)
{
    job j = {(uint32_t)atomic_load(&p->generation), p->fn, p->ctx, p->n, p->nchunks, p->parts};
    return j;
}

/* Runs the unclaimed chunks of participant q's block; returns how many. */
static int64_t run_block(pool *p, const job *j, int q)
{
    int64_t ran = 0, end = piece_start(j->nchunks, j->parts, q + 1);
    _Atomic uint64_t *next = &p->next[q].next;
    uint64_t v = atomic_load(next);
    for (;;) {
        if ((uint32_t)(v >> 32) != j->gen || (int64_t)(v & 0xffffffffu) >= end)
            break;
        if (!atomic_compare_exchange_weak(next, &v, v + 1))
            continue;
        int64_t c = (int64_t)(v & 0xffffffffu);
        j->fn(j->ctx, piece_start(j->n, j->nchunks, c), piece_start(j->n, j->nchunks, c + 1));
        ran++;
        v = atomic_load(next);
    }
    return ran;
}

/* Participant `me` runs its own block, then what is left of the others'. */
static int64_t run_chunks(pool *p, const job *j, int me)
{
    int64_t ran = 0;
    for (int k = 0; k < j->parts; k++)
        ran += run_block(p, j, (me + k) % j->parts);
    return ran;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* What a spinning thread waits for. */
static int new_job(const pool *p, uint64_t seen)
{
    return atomic_load_explicit(&p->generation, memory_order_acquire) != seen;
}

static int all_done(const pool *p, uint64_t nchunks)
{
    return (uint64_t)atomic_load(&p->chunks_done) == nchunks;
}

/* Spins until ready(p, arg) or DEL_SPIN_NS pass; the caller then sleeps
 * on its condition variable if it must. */
static void spin_until(int (*ready)(const pool *, uint64_t), const pool *p, uint64_t arg)
{
    double t0 = now_ns();
    for (int k = 0; !ready(p, arg); k++) {
        if ((k & 63) == 63 && now_ns() - t0 > DEL_SPIN_NS)
            return;
        cpu_relax();
    }
}

typedef struct worker_arg {
    pool *p;
    int me;
} worker_arg;

static void finish_chunks(pool *p, int64_t ran, int64_t nchunks)
{
    if (atomic_fetch_add(&p->chunks_done, ran) + ran == nchunks) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    pool *p = wa->p;
    const int me = wa->me;
    free(wa);
    t_in_parallel = 1;
    pthread_mutex_lock(&p->mu);
    uint64_t seen = atomic_load(&p->generation);
    for (;;) {
        if (!p->stop && !new_job(p, seen)) {
            pthread_mutex_unlock(&p->mu);
            spin_until(new_job, p, seen);
            pthread_mutex_lock(&p->mu);
        }
        while (!p->stop && !new_job(p, seen))
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop)
            break;
        seen = atomic_load(&p->generation);
        job j = job_snapshot(p);
        pthread_mutex_unlock(&p->mu);
        finish_chunks(p, run_chunks(p, &j, me), j.nchunks);
        pthread_mutex_lock(&p->mu);
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
    free(p->next);
    p->workers = NULL;
    p->next = NULL;
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
    p->next = aligned_alloc(64, (size_t)n * sizeof *p->next);
    if (!p->workers || !p->next) {
        free(p->workers);
        free(p->next);
        p->workers = NULL;
        p->next = NULL;
        return;
    }
    for (int i = 0; i < n; i++)
        atomic_init(&p->next[i].next, 0);
    for (int i = 0; i < n - 1; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            break;
        *wa = (worker_arg){p, i + 1};
        if (pthread_create(&p->workers[p->nworkers], NULL, worker_main, wa) != 0) {
            free(wa);
            break;
        }
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
    /* A few chunks per participant, so that the others can take over
     * when one is slow; results do not depend on the split (see threads.h). */
    const int parts = p->nworkers + 1;
    int64_t nchunks = (int64_t)parts * DEL_CHUNKS_PER_THREAD;
    if (nchunks > n)
        nchunks = n;

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->nchunks = nchunks;
    p->parts = parts;
    atomic_store(&p->chunks_done, 0);
    uint64_t gen = atomic_load(&p->generation) + 1;
    for (int q = 0; q < parts; q++)
        atomic_store(&p->next[q].next, (uint64_t)(uint32_t)gen << 32 | (uint64_t)piece_start(nchunks, parts, q));
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    job j = job_snapshot(p);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    t_in_parallel = 1;
    int64_t ran = run_chunks(p, &j, 0);
    t_in_parallel = 0;

    if (atomic_fetch_add(&p->chunks_done, ran) + ran != nchunks) {
        spin_until(all_done, p, (uint64_t)nchunks);
        pthread_mutex_lock(&p->mu);
        while (!all_done(p, (uint64_t)nchunks))
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
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
