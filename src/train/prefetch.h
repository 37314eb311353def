/* Internal to the trainers: a producer thread that prepares training
 * batches ahead of the step that uses them.
 *
 * The trainer owns a ring of del_prefetch_slots(depth) batch buffers; the
 * producer calls fill(ctx, slot, step) for steps first, first + 1, ... in
 * order, on its own thread, while the fitting thread computes on an earlier
 * slot. Because steps are filled strictly in order, by one thread at a time,
 * and a batch depends only on its step and what was drawn before it, the
 * batches are the same whether they are prefetched or filled inline.
 *
 * Protocol on the fitting thread:
 *   del_prefetch_start; then per step del_prefetch_acquire (waits for the
 *   step's slot), use the slot, del_prefetch_release; finally
 *   del_prefetch_stop, always (also after an error or a cancel: it wakes
 *   and joins the producer, which finishes at most the batch it is
 *   filling). */
#ifndef DEL_TRAIN_PREFETCH_H
#define DEL_TRAIN_PREFETCH_H

#include <pthread.h>
#include <stdint.h>

#include "del/common.h"
#include "train_error.h"

/* Most batches prepared ahead (del_trainer_set_prefetch's bound). */
#define DEL_PREFETCH_MAX_DEPTH 4
#define DEL_PREFETCH_MAX_SLOTS (DEL_PREFETCH_MAX_DEPTH + 1)

/* Fills slot `slot` with the batch of global step `step`. Runs on the
 * producer thread (or inline on the fitting thread when depth is 0); its
 * error message, set with del_error on that thread, is carried over. */
typedef del_status (*del_prefetch_fill_fn)(void *ctx, int slot, int64_t step);

typedef struct del_prefetch {
    del_prefetch_fill_fn fill;
    void *ctx;
    int nslots;
    int threaded; /* 0: inline fills, no thread */
    int64_t first, end;
    /* Below: shared with the producer, under mu. */
    int64_t next_fill; /* next step the producer fills */
    int64_t filled;    /* steps < filled are ready (or failed) */
    int64_t next_use;  /* the step the fitting thread holds or waits for */
    int stop;
    del_status status[DEL_PREFETCH_MAX_SLOTS];
    char message[TRAIN_ERROR_SIZE]; /* of the failed fill: the producer stops after it */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t ready_cv; /* a step became ready */
    pthread_cond_t free_cv;  /* a slot was released, or stop */
} del_prefetch;

/* Slots the trainer must provide for a depth (0..DEL_PREFETCH_MAX_DEPTH):
 * the one in use plus `depth` ahead; 1 when depth is 0 (inline). */
int del_prefetch_slots(int depth);

/* Starts filling steps first .. first + count - 1. depth 0, or a thread
 * that cannot be created, means inline fills in del_prefetch_acquire (same
 * batches, no overlap). Never fails. */
void del_prefetch_start(del_prefetch *pf, int depth, int64_t first, int64_t count, del_prefetch_fill_fn fill,
                        void *ctx);

/* Waits for the next step's batch and gives its slot. Returns the fill's
 * status, with its message re-raised on this thread. */
del_status del_prefetch_acquire(del_prefetch *pf, int *slot);

/* Gives the acquired slot back to the producer. */
void del_prefetch_release(del_prefetch *pf);

/* Stops the producer and joins it; safe after any number of steps. */
void del_prefetch_stop(del_prefetch *pf);

#endif
