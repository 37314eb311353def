/* Internal: reading through zlib, shared by the IDX and CIFAR-10 readers. */
#ifndef DEL_DATA_GZIO_H
#define DEL_DATA_GZIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "del/common.h"

/* Reads up to len bytes of f into buf; *got < len means the file ended
 * first. With cut_stream_is_error, a gzip stream that ends without its
 * trailer fails with DEL_EFORMAT instead of reading as a short file.
 * Messages name func and path. */
del_status del_gz_read(gzFile f, uint8_t *buf, size_t len, size_t *got, bool cut_stream_is_error, const char *path,
                       const char *func);

#endif
