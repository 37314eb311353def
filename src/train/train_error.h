/* The trainers' error reporting, on the public API only (as Lua's
 * lauxlib formats its messages and raises them through lua_error): a
 * printf-style message formatted here and set with del_set_error. */
#ifndef DEL_TRAIN_TRAIN_ERROR_H
#define DEL_TRAIN_TRAIN_ERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "del.h"

/* Room for a message naming two PATH_MAX paths and the system's reason
 * (the library's own message size). */
#define TRAIN_ERROR_SIZE 9216

__attribute__((format(printf, 2, 3))) static inline del_status train_error(del_status status, const char *fmt, ...)
{
    char msg[TRAIN_ERROR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return del_set_error(status, n < 0 ? NULL : msg);
}

/* st from a public call the trainer made, its message under fn's name:
 * "del_checkpoint_write: 'x' ..." becomes "fn: 'x' ...". */
static inline del_status train_error_as(del_status st, const char *fn)
{
    if (st == DEL_OK)
        return st;
    const char *msg = del_last_error();
    const char *rest = strncmp(msg, "del_", 4) == 0 ? strstr(msg, ": ") : NULL;
    if (strncmp(msg, fn, strlen(fn)) == 0 || !rest)
        return st;
    char copy[TRAIN_ERROR_SIZE];
    snprintf(copy, sizeof copy, "%s", rest + 2);
    return train_error(st, "%s: %s", fn, copy);
}

/* The frequent NULL-argument check's message. */
static inline del_status train_error_null(const char *func, const char *arg)
{
    return train_error(DEL_EINVAL, "%s: '%s' must not be NULL", func, arg);
}

#endif
