/* libdel — version. */
#ifndef DEL_VERSION_H
#define DEL_VERSION_H

#include "common.h"

#define DEL_VERSION_MAJOR 0
#define DEL_VERSION_MINOR 1
#define DEL_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* The run-time version as "MAJOR.MINOR.PATCH", e.g. "0.1.0". Static storage. */
DEL_API const char *del_version_string(void);

/* The run-time version as MAJOR*10000 + MINOR*100 + PATCH. */
DEL_API int del_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
