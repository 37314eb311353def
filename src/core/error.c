/* Status codes and the thread-local error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

/* One line per failure; long messages are truncated rather than refused,
 * because reporting must never fail. */
#define DEL_ERROR_MSG_SIZE 512

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

del_status del_error(del_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(last_error, sizeof last_error, "%s", del_status_str(status));
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
