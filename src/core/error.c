/* Status codes and the thread-local error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[DEL_ERROR_MSG_SIZE];

DEL_API const char *del_last_error(void)
{
    return last_error;
}

DEL_API const char *del_status_str(del_status status)
{
    switch (status) {
    case DEL_OK: return "success";
    case DEL_EINVAL: return "invalid argument";
    case DEL_ENOMEM: return "out of memory";
    case DEL_EIO: return "input/output error";
    case DEL_EFORMAT: return "malformed data";
    case DEL_ECANCELED: return "canceled";
    case DEL_ESTATE: return "invalid state";
    case DEL_ENUMERIC: return "non-finite value";
    }
    return "unknown status";
}

/* Puts the n-byte message full into last_error with its middle replaced by
 * "...": the start names the function, the end says why it failed (the
 * system's reason after a long path), so both are kept. The cuts never
 * split a UTF-8 sequence. */
static void keep_ends(const char *full, size_t n)
{
    static const char dots[] = "...";
    size_t room = sizeof last_error - sizeof dots; /* bytes of the two ends */
    size_t head = room / 3, tail_at = n - (room - head);
    while (head > 0 && ((unsigned char)full[head] & 0xC0) == 0x80)
        head--;
    while (tail_at < n && ((unsigned char)full[tail_at] & 0xC0) == 0x80)
        tail_at++;
    memcpy(last_error, full, head);
    memcpy(last_error + head, dots, sizeof dots - 1);
    memcpy(last_error + head + sizeof dots - 1, full + tail_at, n - tail_at + 1);
}

del_status del_error(del_status status, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(last_error, sizeof last_error, "%s", del_status_str(status));
    } else if ((size_t)n >= sizeof last_error) {
        /* Too long: format it whole once more to keep its end. Without
         * memory the start stays, cut (reporting must never fail). */
        char *full = malloc((size_t)n + 1);
        if (full && vsnprintf(full, (size_t)n + 1, fmt, again) == n)
            keep_ends(full, (size_t)n);
        free(full);
    }
    va_end(again);
    return status;
}

del_status del_error_null(const char *func, const char *arg)
{
    return del_error(DEL_EINVAL, "%s: '%s' must not be NULL", func, arg);
}

DEL_API del_status del_set_error(del_status status, const char *message)
{
    return del_error(status, "%s", message ? message : del_status_str(status));
}
