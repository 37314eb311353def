/* Internal: setting the thread-local error message. */
#ifndef DEL_CORE_ERROR_H
#define DEL_CORE_ERROR_H

#include "del/common.h"

/* The longest message, with its terminating NUL: room for two paths of
 * PATH_MAX (4096) bytes, e.g. a link and its target or a file and its
 * temporary twin, and the words and system's reason around them. A
 * buffer that keeps del_last_error() to quote it in a new message has
 * this size too. */
#define DEL_ERROR_MSG_SIZE (2 * 4096 + 1024)

/* Formats the thread-local message (printf-style) and returns status, so
 * callers write `return del_error(DEL_EINVAL, "...")`. A message longer
 * than DEL_ERROR_MSG_SIZE - 1 bytes keeps its start (the function) and its
 * end (the reason) with "..." between them. An argument must not point
 * into del_last_error() (copy it first). */
del_status del_error(del_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shorthand for the frequent NULL-argument check. */
del_status del_error_null(const char *func, const char *arg);

#endif
