/* Internal: setting the thread-local error message. */
#ifndef DEL_CORE_ERROR_H
#define DEL_CORE_ERROR_H

#include "del/common.h"

/* Formats the thread-local message (printf-style, truncated to fit) and
 * returns status, so callers write `return del_error(DEL_EINVAL, "...")`. */
del_status del_error(del_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shorthand for the frequent NULL-argument check. */
del_status del_error_null(const char *func, const char *arg);

#endif
