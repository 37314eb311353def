/* Tests of src/train/prefetch.c: the trainers' batch prefetcher. */
#include <pthread.h>
#include <time.h>

#include "testutil.h"
#include "core/error.h"
#include "train/prefetch.h"

enum { MAX_STEPS = 256 };

/* A fake batch source: slot s holds the number of the step last filled
 * into it; fill records which thread ran and may fail at one step. */
typedef struct fake_source {
    int64_t slot_step[DEL_PREFETCH_MAX_SLOTS];
    int64_t filled[MAX_STEPS]; /* steps in fill order */
    int nfilled;
    int64_t fail_at; /* -1: never */
    pthread_t fill_thread;
    int fill_on_caller; /* every fill ran on the thread that started it */
    pthread_t caller;
} fake_source;

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static del_status fake_fill(void *ctx, int slot, int64_t step)
{
    fake_source *src = ctx;
    if (!pthread_equal(pthread_self(), src->caller))
        src->fill_on_caller = 0;
    if (src->nfilled < MAX_STEPS)
        src->filled[src->nfilled] = step;
    src->nfilled++;
    src->slot_step[slot] = step;
    if (step == src->fail_at)
        return del_error(DEL_EIO, "fake_fill: cannot read the batch of step %lld", (long long)step);
    return DEL_OK;
}

static void fake_init(fake_source *src)
{
    memset(src, 0, sizeof *src);
    src->fail_at = -1;
    src->fill_on_caller = 1;
    src->caller = pthread_self();
}

/* Acquires `steps` batches, checking that each slot holds its step while
 * the consumer works on it (a producer that ran too far ahead would have
 * overwritten it during the nap). */
static void consume(del_prefetch *pf, fake_source *src, int64_t first, int64_t steps, int nslots)
{
    for (int64_t s = first; s < first + steps; s++) {
        int slot = -1;
        ck_assert_del_ok(del_prefetch_acquire(pf, &slot));
        ck_assert_int_eq(slot, (int)((s - first) % nslots));
        ck_assert_int_eq(src->slot_step[slot], s);
        nap_us(200);
        ck_assert_int_eq(src->slot_step[slot], s);
        del_prefetch_release(pf);
    }
}

START_TEST(test_prefetch_fills_every_step_once_in_order_on_another_thread)
{
    for (int depth = 1; depth <= DEL_PREFETCH_MAX_DEPTH; depth++) {
        fake_source src;
        fake_init(&src);
        del_prefetch pf;
        const int64_t first = 1000, steps = 40;
        del_prefetch_start(&pf, depth, first, steps, fake_fill, &src);
        consume(&pf, &src, first, steps, del_prefetch_slots(depth));
        del_prefetch_stop(&pf);
        ck_assert_int_eq(src.nfilled, steps);
        for (int i = 0; i < steps; i++)
            ck_assert_int_eq(src.filled[i], first + i);
        ck_assert_msg(!src.fill_on_caller, "depth %d filled on the fitting thread", depth);
    }
}
END_TEST

START_TEST(test_prefetch_depth_0_fills_inline_on_the_calling_thread)
{
    fake_source src;
    fake_init(&src);
    del_prefetch pf;
    del_prefetch_start(&pf, 0, 7, 5, fake_fill, &src);
    ck_assert_int_eq(src.nfilled, 0); /* nothing before the first acquire */
    consume(&pf, &src, 7, 5, 1);
    del_prefetch_stop(&pf);
    ck_assert_int_eq(src.nfilled, 5);
    ck_assert(src.fill_on_caller);
}
END_TEST

START_TEST(test_prefetch_slots_are_depth_plus_one)
{
    ck_assert_int_eq(del_prefetch_slots(0), 1);
    ck_assert_int_eq(del_prefetch_slots(1), 2);
    ck_assert_int_eq(del_prefetch_slots(DEL_PREFETCH_MAX_DEPTH), DEL_PREFETCH_MAX_SLOTS);
}
END_TEST

START_TEST(test_prefetch_reports_a_fill_error_with_its_message_and_stops_filling)
{
    for (int depth = 0; depth <= 2; depth++) {
        fake_source src;
        fake_init(&src);
        src.fail_at = 5;
        del_prefetch pf;
        del_prefetch_start(&pf, depth, 0, 50, fake_fill, &src);
        consume(&pf, &src, 0, 5, del_prefetch_slots(depth));
        int slot = -1;
        /* The message was set on the producer's thread; it must reach this one. */
        ck_assert_del_err(del_prefetch_acquire(&pf, &slot), DEL_EIO, "batch of step 5");
        del_prefetch_stop(&pf);
        ck_assert_int_eq(src.nfilled, 6);
    }
}
END_TEST

START_TEST(test_prefetch_stop_joins_a_producer_that_is_ahead_or_waiting)
{
    for (int depth = 1; depth <= DEL_PREFETCH_MAX_DEPTH; depth++) {
        /* stopped before any acquire, and after a few */
        for (int taken = 0; taken <= 3; taken += 3) {
            fake_source src;
            fake_init(&src);
            del_prefetch pf;
            del_prefetch_start(&pf, depth, 0, 200, fake_fill, &src);
            consume(&pf, &src, 0, taken, del_prefetch_slots(depth));
            nap_us(2000); /* let it fill the ring and wait */
            del_prefetch_stop(&pf);
            /* the slot in use is released, the others may be ahead */
            ck_assert_int_le(src.nfilled, taken + del_prefetch_slots(depth));
            ck_assert_int_ge(src.nfilled, taken);
        }
    }
}
END_TEST

static Suite *prefetch_suite(void)
{
    Suite *s = suite_create("prefetch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_prefetch_fills_every_step_once_in_order_on_another_thread);
    tcase_add_test(tc, test_prefetch_depth_0_fills_inline_on_the_calling_thread);
    tcase_add_test(tc, test_prefetch_slots_are_depth_plus_one);
    tcase_add_test(tc, test_prefetch_reports_a_fill_error_with_its_message_and_stops_filling);
    tcase_add_test(tc, test_prefetch_stop_joins_a_producer_that_is_ahead_or_waiting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(prefetch_suite());
}
