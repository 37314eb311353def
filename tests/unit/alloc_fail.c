/* The allocator wrappers behind alloc_fail.h: linked with
 * -Wl,--wrap=<function> for each function below (see the Makefile), so that
 * calls of <function> reach __wrap_<function>, and __real_<function> is the
 * C library's (or the sanitizer's). */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "alloc_fail.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
int __real_posix_memalign(void **out, size_t align, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
int __wrap_posix_memalign(void **out, size_t align, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void __wrap_free(void *p);

/* countdown > 0: armed, the allocation that takes it to 0 fails. */
static atomic_long countdown;
static atomic_long attempts;
static atomic_int fired;
static atomic_long live;

void del_test_fail_alloc_after(long n)
{
    atomic_store(&countdown, n > 0 ? n : 0);
    atomic_store(&attempts, 0);
    atomic_store(&fired, 0);
}

int del_test_alloc_fired(void)
{
    return atomic_load(&fired);
}

long del_test_alloc_count(void)
{
    return atomic_load(&attempts);
}

long del_test_alloc_live(void)
{
    return atomic_load(&live);
}

/* 1 if this allocation is to fail. */
static int should_fail(void)
{
    atomic_fetch_add(&attempts, 1);
    long c = atomic_load(&countdown);
    if (c <= 0)
        return 0;
    while (c > 0 && !atomic_compare_exchange_weak(&countdown, &c, c - 1))
        ;
    if (c == 1) {
        atomic_store(&fired, 1);
        return 1;
    }
    return 0;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_malloc(size_t size)
{
    return should_fail() ? NULL : counted(__real_malloc(size));
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : counted(__real_calloc(n, size));
}

/* realloc(NULL, n) allocates a block; a moved or resized one stays one. */
void *__wrap_realloc(void *p, size_t size)
{
    if (should_fail())
        return NULL;
    void *q = __real_realloc(p, size);
    if (!p)
        return counted(q);
    if (!q && size == 0)
        atomic_fetch_sub(&live, 1);
    return q;
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return should_fail() ? NULL : counted(__real_aligned_alloc(align, size));
}

int __wrap_posix_memalign(void **out, size_t align, size_t size)
{
    if (should_fail())
        return ENOMEM;
    int rc = __real_posix_memalign(out, align, size);
    if (rc == 0)
        counted(*out);
    return rc;
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : counted(__real_strdup(s));
}

char *__wrap_strndup(const char *s, size_t n)
{
    return should_fail() ? NULL : counted(__real_strndup(s, n));
}

void __wrap_free(void *p)
{
    if (p)
        atomic_fetch_sub(&live, 1);
    __real_free(p);
}
