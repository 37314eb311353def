/* Internal: the building blocks of libdel's binary files (models now,
 * tensors and checkpoints later): little-endian writers and bounds-checked
 * readers, the common container (magic, version, sizes, CRC-32, zlib
 * payload) and crash-safe file writes. docs/file-format.md has the layout.
 *
 * Byte order is fixed by writing bytes one at a time, so files are the same
 * on every host; floats travel as their IEEE-754 bit patterns. */
#ifndef DEL_IO_FORMAT_H
#define DEL_IO_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "del/common.h"

/* Bytes of the container header (format version 1). */
#define DEL_FORMAT_HEADER_SIZE 40

/* The largest payload (compressed or not) a reader accepts: far above any
 * model libdel can train, far below what would make sizes overflow. */
#define DEL_FORMAT_MAX_PAYLOAD ((uint64_t)1 << 36)

/* zlib cannot expand data by more than about 1032:1; a declared
 * uncompressed size beyond this ratio is a lie, refused before allocating. */
#define DEL_FORMAT_MAX_RATIO 1100

/* A growable little-endian output buffer. Failures are sticky: after an
 * allocation fails every write is a no-op and oom is set, so a writer checks
 * once at the end instead of after every field. */
typedef struct del_writer {
    uint8_t *data;
    size_t len, cap;
    int oom;
} del_writer;

void del_writer_init(del_writer *w);
void del_writer_free(del_writer *w);
void del_writer_bytes(del_writer *w, const void *p, size_t n);
void del_writer_u8(del_writer *w, uint8_t v);
void del_writer_u16(del_writer *w, uint16_t v);
void del_writer_u32(del_writer *w, uint32_t v);
void del_writer_u64(del_writer *w, uint64_t v);
void del_writer_i32(del_writer *w, int32_t v);
void del_writer_f32(del_writer *w, float v);
void del_writer_f32_array(del_writer *w, const float *p, size_t n);
/* A u8 length and the bytes of s (strlen(s) <= 255; longer is an internal
 * error and sets oom). */
void del_writer_str8(del_writer *w, const char *s);

/* A bounds-checked little-endian view of untrusted bytes. Reading past the
 * end yields zeros and sets overrun (sticky), so a parser may read a whole
 * record and check once; nothing is ever read outside [data, data+len). */
typedef struct del_reader {
    const uint8_t *data;
    size_t len, pos;
    int overrun;
} del_reader;

void del_reader_init(del_reader *r, const void *data, size_t len);
size_t del_reader_left(const del_reader *r);
/* The next n bytes in place, or NULL (and overrun) if fewer are left. */
const uint8_t *del_reader_take(del_reader *r, size_t n);
uint8_t del_reader_u8(del_reader *r);
uint16_t del_reader_u16(del_reader *r);
uint32_t del_reader_u32(del_reader *r);
uint64_t del_reader_u64(del_reader *r);
int32_t del_reader_i32(del_reader *r);
float del_reader_f32(del_reader *r);
/* n floats into dst; 0 (and overrun, dst untouched) if fewer are left. */
int del_reader_f32_array(del_reader *r, float *dst, size_t n);

/* zlib's CRC-32 of n bytes, for any n. */
uint32_t del_crc32(const void *p, size_t n);

/* What a container holds: its magic, the format version written (also the
 * newest one read) and a noun for messages ("model"). */
typedef struct del_format {
    char magic[4];
    uint32_t version;
    const char *noun;
} del_format;

/* Who is reading, for messages: the public function and the source (a path,
 * or "<buffer>"). */
typedef struct del_source {
    const char *func;
    const char *name;
} del_source;

/* Compresses payload and prepends the header; *out (malloc'd, the caller
 * frees it) receives the whole file. Errors: DEL_ENOMEM, DEL_EINVAL (too
 * large). */
del_status del_format_pack(const del_format *f, const void *payload, size_t len, const char *func,
                           uint8_t **out, size_t *out_len);

/* Validates a whole file (magic, version, header CRC, flags, sizes, payload
 * CRC) and decompresses it; *payload (malloc'd, never NULL on success, the
 * caller frees it) receives exactly *payload_len bytes and *version the
 * file's version. Errors: DEL_EFORMAT (the message says what is wrong),
 * DEL_ENOMEM. */
del_status del_format_unpack(const del_format *f, const del_source *src, const uint8_t *file,
                             size_t len, uint32_t *version, uint8_t **payload, size_t *payload_len);

/* Reads a whole regular file of at most max bytes into *out (malloc'd, the
 * caller frees it; not NULL even when empty). Errors: DEL_EIO (with
 * strerror), DEL_EFORMAT (larger than max), DEL_ENOMEM. */
del_status del_file_read(const char *path, uint64_t max, const char *func, uint8_t **out, size_t *len);

/* DEL_OK if path (the argument called arg) names a file: not NULL, not
 * empty. Errors: DEL_EINVAL ("'path' must not be NULL", "'path' is
 * empty"). */
del_status del_path_check(const char *path, const char *arg, const char *func);

/* Writes data to path crash-safely. The file written is path or, when path
 * is a symbolic link, the end of its chain of links (created if the last
 * link dangles; the links stay links). The data go to a fresh
 * "<file>.tmp.<pid>.XXXXXX" in that file's directory, which is fsynced,
 * renamed over the file and the directory fsynced, so readers see either
 * the old file or the complete new one. On failure the temporary file is
 * removed and an existing file is left untouched. After a successful
 * rename the temporary files of the same file left by writers that were
 * killed (their process no longer exists) are removed; those of writers
 * still running, this process's included, are kept. The new file has mode
 * 0644. Errors: DEL_EINVAL (path NULL or empty: nothing is created),
 * DEL_EIO (the message names the file and gives strerror), DEL_ENOMEM. */
del_status del_file_write_atomic(const char *path, const void *data, size_t len, const char *func);

#endif
