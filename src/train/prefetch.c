/* The batch prefetcher: one producer thread per fit, a ring of slots, a
 * mutex and two condition variables. See prefetch.h for the protocol. */
#include "prefetch.h"

#include <stdio.h>
#include <string.h>

#include "train_error.h"

int del_prefetch_slots(int depth)
{
    return depth > 0 ? depth + 1 : 1;
}

static int slot_of(const del_prefetch *pf, int64_t step)
{
    return (int)((step - pf->first) % pf->nslots);
}

static void *producer_main(void *arg)
{
    del_prefetch *pf = arg;
    for (;;) {
        pthread_mutex_lock(&pf->mu);
        /* The fitting thread holds next_use's slot; the others may run ahead. */
        while (!pf->stop && pf->next_fill < pf->end && pf->next_fill >= pf->next_use + pf->nslots)
            pthread_cond_wait(&pf->free_cv, &pf->mu);
        if (pf->stop || pf->next_fill >= pf->end) {
            pthread_mutex_unlock(&pf->mu);
            break;
        }
        const int64_t step = pf->next_fill;
        pthread_mutex_unlock(&pf->mu);

        const int slot = slot_of(pf, step);
        del_status st = pf->fill(pf->ctx, slot, step);
        pf->status[slot] = st;
        if (st != DEL_OK) /* the message lives on this thread: carry it over */
            snprintf(pf->message, sizeof pf->message, "%s", del_last_error());

        pthread_mutex_lock(&pf->mu);
        pf->next_fill = step + 1;
        pf->filled = step + 1;
        pthread_cond_signal(&pf->ready_cv);
        pthread_mutex_unlock(&pf->mu);
        if (st != DEL_OK)
            break;
    }
    return NULL;
}

void del_prefetch_start(del_prefetch *pf, int depth, int64_t first, int64_t count, del_prefetch_fill_fn fill,
                        void *ctx)
{
    memset(pf, 0, sizeof *pf);
    pf->fill = fill;
    pf->ctx = ctx;
    pf->first = first;
    pf->end = first + count;
    pf->next_fill = pf->filled = pf->next_use = first;
    pf->nslots = 1;
    if (depth <= 0)
        return;
    if (pthread_mutex_init(&pf->mu, NULL) != 0)
        return;
    if (pthread_cond_init(&pf->ready_cv, NULL) != 0)
        goto no_ready_cv;
    if (pthread_cond_init(&pf->free_cv, NULL) != 0)
        goto no_free_cv;
    pf->nslots = del_prefetch_slots(depth);
    /* Without a thread the batches are the same, only not overlapped, so
     * a failure here is not worth failing the fit for. */
    if (pthread_create(&pf->thread, NULL, producer_main, pf) == 0) {
        pf->threaded = 1;
        return;
    }
    pf->nslots = 1;
    pthread_cond_destroy(&pf->free_cv);
no_free_cv:
    pthread_cond_destroy(&pf->ready_cv);
no_ready_cv:
    pthread_mutex_destroy(&pf->mu);
}

del_status del_prefetch_acquire(del_prefetch *pf, int *slot)
{
    if (!pf->threaded) {
        *slot = 0;
        return pf->fill(pf->ctx, 0, pf->next_use);
    }
    pthread_mutex_lock(&pf->mu);
    while (pf->filled <= pf->next_use)
        pthread_cond_wait(&pf->ready_cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    *slot = slot_of(pf, pf->next_use);
    if (pf->status[*slot] != DEL_OK)
        return train_error(pf->status[*slot], "%s", pf->message);
    return DEL_OK;
}

void del_prefetch_release(del_prefetch *pf)
{
    if (!pf->threaded) {
        pf->next_use++;
        return;
    }
    pthread_mutex_lock(&pf->mu);
    pf->next_use++;
    pthread_cond_signal(&pf->free_cv);
    pthread_mutex_unlock(&pf->mu);
}

void del_prefetch_stop(del_prefetch *pf)
{
    if (!pf->threaded)
        return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = 1;
    pthread_cond_signal(&pf->free_cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->thread, NULL);
    pthread_cond_destroy(&pf->free_cv);
    pthread_cond_destroy(&pf->ready_cv);
    pthread_mutex_destroy(&pf->mu);
    pf->threaded = 0;
}
