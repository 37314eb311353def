/* Little-endian writers/readers, the file container and crash-safe writes
 * shared by libdel's binary formats. */
#include "io/format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"

/* ---- writer ---- */

void del_writer_init(del_writer *w)
{
    memset(w, 0, sizeof *w);
}

void del_writer_free(del_writer *w)
{
    free(w->data);
    del_writer_init(w);
}

static int writer_reserve(del_writer *w, size_t n)
{
    if (w->oom)
        return 0;
    if (n <= w->cap - w->len)
        return 1;
    if (n > SIZE_MAX / 2 - w->len) {
        w->oom = 1;
        return 0;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < n)
        cap *= 2;
    uint8_t *p = realloc(w->data, cap);
    if (!p) {
        w->oom = 1;
        return 0;
    }
    w->data = p;
    w->cap = cap;
    return 1;
}

void del_writer_bytes(del_writer *w, const void *p, size_t n)
{
    if (n == 0 || !writer_reserve(w, n))
        return;
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

/* The low `bytes` bytes of v, least significant first. */
static void writer_le(del_writer *w, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    del_writer_bytes(w, b, (size_t)bytes);
}

void del_writer_u8(del_writer *w, uint8_t v)
{
    writer_le(w, v, 1);
}

void del_writer_u16(del_writer *w, uint16_t v)
{
    writer_le(w, v, 2);
}

void del_writer_u32(del_writer *w, uint32_t v)
{
    writer_le(w, v, 4);
}

void del_writer_u64(del_writer *w, uint64_t v)
{
    writer_le(w, v, 8);
}

void del_writer_i32(del_writer *w, int32_t v)
{
    writer_le(w, (uint32_t)v, 4);
}

void del_writer_f32(del_writer *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    writer_le(w, bits, 4);
}

void del_writer_f32_array(del_writer *w, const float *p, size_t n)
{
    if (n > SIZE_MAX / 4) {
        w->oom = 1;
        return;
    }
    if (!writer_reserve(w, n * 4))
        return;
    for (size_t i = 0; i < n; i++)
        del_writer_f32(w, p[i]);
}

void del_writer_str8(del_writer *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 255) {
        w->oom = 1;
        return;
    }
    del_writer_u8(w, (uint8_t)n);
    del_writer_bytes(w, s, n);
}

/* ---- reader ---- */

void del_reader_init(del_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->overrun = 0;
}

size_t del_reader_left(const del_reader *r)
{
    return r->len - r->pos;
}

const uint8_t *del_reader_take(del_reader *r, size_t n)
{
    if (r->overrun || n > r->len - r->pos) {
        r->overrun = 1;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

static uint64_t reader_le(del_reader *r, int bytes)
{
    const uint8_t *p = del_reader_take(r, (size_t)bytes);
    uint64_t v = 0;
    if (p)
        for (int i = bytes - 1; i >= 0; i--)
            v = v << 8 | p[i];
    return v;
}

uint8_t del_reader_u8(del_reader *r)
{
    return (uint8_t)reader_le(r, 1);
}

uint16_t del_reader_u16(del_reader *r)
{
    return (uint16_t)reader_le(r, 2);
}

uint32_t del_reader_u32(del_reader *r)
{
    return (uint32_t)reader_le(r, 4);
}

uint64_t del_reader_u64(del_reader *r)
{
    return reader_le(r, 8);
}

int32_t del_reader_i32(del_reader *r)
{
    uint32_t u = del_reader_u32(r);
    int32_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation, no UB */
    return v;
}

float del_reader_f32(del_reader *r)
{
    uint32_t u = del_reader_u32(r);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

int del_reader_f32_array(del_reader *r, float *dst, size_t n)
{
    if (n > (r->len - r->pos) / 4) {
        r->overrun = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = del_reader_f32(r);
    return !r->overrun;
}

/* ---- checksums and the container ---- */

uint32_t del_crc32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

del_status del_format_pack(const del_format *f, const void *payload, size_t len, const char *func,
                           uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if ((uint64_t)len > DEL_FORMAT_MAX_PAYLOAD || len > (uLong)-1)
        return del_error(DEL_EINVAL, "%s: the %s is too large to save (%zu bytes)", func, f->noun, len);
    uLong bound = compressBound((uLong)len);
    if (bound > SIZE_MAX - DEL_FORMAT_HEADER_SIZE)
        return del_error(DEL_EINVAL, "%s: the %s is too large to save (%zu bytes)", func, f->noun, len);
    uint8_t *file = malloc(DEL_FORMAT_HEADER_SIZE + (size_t)bound);
    if (!file)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    uLongf zlen = bound;
    int zst = compress2(file + DEL_FORMAT_HEADER_SIZE, &zlen, payload, (uLong)len, Z_DEFAULT_COMPRESSION);
    if (zst != Z_OK) {
        free(file);
        return zst == Z_MEM_ERROR ? del_error(DEL_ENOMEM, "%s: out of memory (zlib)", func)
                                  : del_error(DEL_EINVAL, "%s: zlib compress2 failed (%d)", func, zst);
    }
    del_writer h;
    del_writer_init(&h);
    del_writer_bytes(&h, f->magic, 4);
    del_writer_u32(&h, f->version);
    del_writer_u32(&h, 0); /* flags: none defined */
    del_writer_u32(&h, DEL_FORMAT_HEADER_SIZE);
    del_writer_u64(&h, (uint64_t)zlen);
    del_writer_u64(&h, (uint64_t)len);
    del_writer_u32(&h, del_crc32(file + DEL_FORMAT_HEADER_SIZE, (size_t)zlen));
    if (!h.oom)
        del_writer_u32(&h, del_crc32(h.data, h.len));
    if (h.oom) {
        del_writer_free(&h);
        free(file);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    memcpy(file, h.data, DEL_FORMAT_HEADER_SIZE);
    del_writer_free(&h);
    *out = file;
    *out_len = DEL_FORMAT_HEADER_SIZE + (size_t)zlen;
    return DEL_OK;
}

/* Fuzzing builds accept any checksum so that mutated inputs reach the
 * checks behind it (the FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION convention
 * of libFuzzer and OSS-Fuzz); the checksum tests run on ordinary builds. */
static int checksum_ok(uint32_t computed, uint32_t stored)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)computed;
    (void)stored;
    return 1;
#else
    return computed == stored;
#endif
}

del_status del_format_unpack(const del_format *f, const del_source *src, const uint8_t *file,
                             size_t len, uint32_t *version, uint8_t **payload, size_t *payload_len)
{
    const char *fn = src->func, *name = src->name, *noun = f->noun;
    *payload = NULL;
    *payload_len = 0;
    if (len == 0)
        return del_error(DEL_EFORMAT, "%s: '%s' is not a libdel %s (empty file)", fn, name, noun);
    if (len < 4 || memcmp(file, f->magic, 4) != 0) {
        /* Another libdel container handed to the wrong loader. */
        static const struct { char magic[4]; const char *noun, *loader; } known[] = {
            {{'D', 'E', 'L', 'M'}, "model file", "del_model_load"},
            {{'D', 'E', 'L', 'C'}, "checkpoint", "del_checkpoint_load or del_trainer_load_checkpoint"},
            {{'D', 'E', 'L', 'T'}, "tensor file", "del_tensor_load"},
        };
        for (size_t i = 0; len >= 4 && i < sizeof known / sizeof known[0]; i++)
            if (memcmp(file, known[i].magic, 4) == 0)
                return del_error(DEL_EFORMAT, "%s: '%s' is a libdel %s, not a %s (load it with %s)", fn, name,
                                 known[i].noun, noun, known[i].loader);
        return del_error(DEL_EFORMAT, "%s: '%s' is not a libdel %s (bad magic)", fn, name, noun);
    }
    if (len < DEL_FORMAT_HEADER_SIZE)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated (%zu bytes; the header alone has %d)", fn,
                         name, len, DEL_FORMAT_HEADER_SIZE);
    del_reader r;
    del_reader_init(&r, file + 4, DEL_FORMAT_HEADER_SIZE - 4);
    uint32_t ver = del_reader_u32(&r);
    uint32_t flags = del_reader_u32(&r);
    uint32_t hsize = del_reader_u32(&r);
    uint64_t zlen = del_reader_u64(&r);
    uint64_t rawlen = del_reader_u64(&r);
    uint32_t crc = del_reader_u32(&r);
    uint32_t hcrc = del_reader_u32(&r);
    /* The version is judged before the checksum: a newer format may lay its
     * header out differently, and "too new" is the useful message then. */
    if (ver > f->version)
        return del_error(DEL_EFORMAT,
                         "%s: '%s' was written by a newer libdel (format %u, this build reads <= %u)",
                         fn, name, (unsigned)ver, (unsigned)f->version);
    if (ver == 0)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (format version 0)", fn, name);
    if (!checksum_ok(del_crc32(file, DEL_FORMAT_HEADER_SIZE - 4), hcrc))
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (header checksum mismatch)", fn, name);
    if (flags != 0)
        return del_error(DEL_EFORMAT, "%s: '%s' uses unknown flags 0x%x", fn, name, (unsigned)flags);
    if (hsize != DEL_FORMAT_HEADER_SIZE)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (header size %u, expected %d)", fn, name,
                         (unsigned)hsize, DEL_FORMAT_HEADER_SIZE);
    if (zlen > DEL_FORMAT_MAX_PAYLOAD || rawlen > DEL_FORMAT_MAX_PAYLOAD || rawlen > SIZE_MAX ||
        rawlen > (uLong)-1)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (declared payload of %llu/%llu bytes is too large)",
                         fn, name, (unsigned long long)zlen, (unsigned long long)rawlen);
    uint64_t have = len - DEL_FORMAT_HEADER_SIZE;
    if (have < zlen)
        return del_error(DEL_EFORMAT, "%s: '%s' is truncated (payload has %llu of %llu bytes)", fn, name,
                         (unsigned long long)have, (unsigned long long)zlen);
    if (have > zlen)
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (%llu bytes after the payload)", fn, name,
                         (unsigned long long)(have - zlen));
    const uint8_t *z = file + DEL_FORMAT_HEADER_SIZE;
    if (!checksum_ok(del_crc32(z, (size_t)zlen), crc))
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (payload checksum mismatch)", fn, name);
    if (rawlen > zlen * DEL_FORMAT_MAX_RATIO + 64)
        return del_error(DEL_EFORMAT,
                         "%s: '%s' is corrupt (%llu bytes cannot decompress to the declared %llu)", fn,
                         name, (unsigned long long)zlen, (unsigned long long)rawlen);
    uint8_t *raw = malloc(rawlen ? (size_t)rawlen : 1);
    if (!raw)
        return del_error(DEL_ENOMEM, "%s: out of memory (%llu bytes)", fn, (unsigned long long)rawlen);
    uLongf outlen = (uLongf)rawlen;
    int zst = uncompress(raw, &outlen, z, (uLong)zlen);
    if (zst != Z_OK || outlen != rawlen) {
        free(raw);
        if (zst == Z_MEM_ERROR)
            return del_error(DEL_ENOMEM, "%s: out of memory (zlib)", fn);
        if (zst == Z_BUF_ERROR || zst == Z_OK)
            return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (payload does not decompress to the "
                                          "declared %llu bytes)", fn, name, (unsigned long long)rawlen);
        return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (zlib: %s)", fn, name, zError(zst));
    }
    *version = ver;
    *payload = raw;
    *payload_len = (size_t)rawlen;
    return DEL_OK;
}

/* ---- files ---- */

del_status del_file_read(const char *path, uint64_t max, const char *func, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return del_error(DEL_EIO, "%s: cannot open '%s': %s", func, path, strerror(errno));
    del_status st = DEL_OK;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = del_error(DEL_EIO, "%s: cannot read '%s': %s", func, path, strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = del_error(DEL_EIO, "%s: cannot read '%s': %s", func, path, strerror(EISDIR));
        goto cleanup;
    }
    if (max > SIZE_MAX - 1)
        max = SIZE_MAX - 1;
    /* The size is only a hint (the file may be a pipe or change): reading
     * goes on to end of file, but never beyond max + 1 bytes. */
    cap = S_ISREG(sb.st_mode) && (uint64_t)sb.st_size <= max ? (size_t)sb.st_size + 1 : 4096;
    buf = malloc(cap);
    if (!buf) {
        st = del_error(DEL_ENOMEM, "%s: out of memory reading '%s'", func, path);
        goto cleanup;
    }
    for (;;) {
        if (n == cap) {
            if ((uint64_t)cap > max) {
                st = del_error(DEL_EFORMAT, "%s: '%s' is too large (more than %llu bytes)", func, path,
                               (unsigned long long)max);
                goto cleanup;
            }
            size_t ncap = (uint64_t)cap * 2 > max + 1 ? (size_t)max + 1 : cap * 2;
            uint8_t *p = realloc(buf, ncap);
            if (!p) {
                st = del_error(DEL_ENOMEM, "%s: out of memory reading '%s'", func, path);
                goto cleanup;
            }
            buf = p;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            st = del_error(DEL_EIO, "%s: cannot read '%s': %s", func, path, strerror(errno));
            goto cleanup;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if ((uint64_t)n > max) {
        st = del_error(DEL_EFORMAT, "%s: '%s' is too large (more than %llu bytes)", func, path,
                       (unsigned long long)max);
        goto cleanup;
    }
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    free(buf);
    close(fd);
    return st;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return 0;
        }
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

/* Makes the rename itself durable. Best effort: the new file is already in
 * place, so a failure here is not worth reporting as a failed save. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

del_status del_path_check(const char *path, const char *arg, const char *func)
{
    if (!path)
        return del_error_null(func, arg);
    if (path[0] == '\0')
        return del_error(DEL_EINVAL, "%s: '%s' is empty (expected a file name)", func, arg);
    return DEL_OK;
}

/* DEL_EIO for a failed step on file (the link given, if any, named too). */
static del_status write_error(const char *func, const char *step, const char *file, const char *link, int err)
{
    if (link)
        return del_error(DEL_EIO, "%s: cannot %s '%s' (for the link '%s'): %s", func, step, file, link,
                         strerror(err));
    return del_error(DEL_EIO, "%s: cannot %s '%s': %s", func, step, file, strerror(err));
}

/* The links a save follows before giving up, as the kernel (MAXSYMLINKS). */
#define MAX_LINK_HOPS 40

/* The target of the link at path (malloc'd), or NULL with errno set. */
static char *read_link(const char *path, size_t hint)
{
    size_t cap = hint + 1 > 64 ? hint + 1 : 64;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf)
            return NULL;
        ssize_t n = readlink(path, buf, cap);
        if (n >= 0 && (size_t)n < cap) {
            buf[n] = '\0';
            return buf;
        }
        free(buf);
        if (n < 0)
            return NULL;
        if (cap > ((size_t)1 << 20)) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        cap *= 2; /* the link changed since lstat, or st_size was 0 */
    }
}

/* The file a save to path replaces, in *out (malloc'd): path itself, or,
 * when path is a symbolic link, the end of its chain of links, which need
 * not exist yet (a dangling link is saved through: its target is created).
 * A relative target is relative to the link's own directory, so it is
 * appended to the link's directory as given (the kernel resolves the
 * result as it would have resolved the link). */
static del_status resolve_links(const char *path, const char *func, char **out)
{
    *out = NULL;
    char *cur = strdup(path);
    if (!cur)
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    for (int hops = 0;; hops++) {
        struct stat sb;
        /* Anything but a link (or nothing yet, or an lstat error the
         * create will report with its reason) ends the chain. */
        if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode)) {
            *out = cur;
            return DEL_OK;
        }
        if (hops == MAX_LINK_HOPS) {
            free(cur);
            return write_error(func, "write", path, NULL, ELOOP);
        }
        char *target = read_link(cur, (size_t)sb.st_size);
        if (!target) {
            del_status st = errno == ENOMEM ? del_error(DEL_ENOMEM, "%s: out of memory", func)
                                            : del_error(DEL_EIO, "%s: cannot read the link '%s': %s", func,
                                                        cur, strerror(errno));
            free(cur);
            return st;
        }
        const char *slash = strrchr(cur, '/');
        size_t dlen = target[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        size_t tlen = strlen(target);
        char *next = malloc(dlen + tlen + 1);
        if (!next) {
            free(target);
            free(cur);
            return del_error(DEL_ENOMEM, "%s: out of memory", func);
        }
        memcpy(next, cur, dlen);
        memcpy(next + dlen, target, tlen + 1);
        free(target);
        free(cur);
        cur = next;
    }
}

/* Temporary files are "<file>.tmp.<pid>.XXXXXX": the writer's process id,
 * then mkstemp's six characters. */
static const char temp_infix[] = ".tmp.";

/* The process id in name if name is a temporary file of a save to the
 * file called base (exactly the pattern above), else 0. */
static long temp_file_pid(const char *name, const char *base)
{
    size_t blen = strlen(base), ilen = sizeof temp_infix - 1;
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, temp_infix, ilen) != 0)
        return 0;
    const char *p = name + blen + ilen;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 9 || (digits == 0 && *p == '0'))
            return 0;
        pid = pid * 10 + (*p - '0');
    }
    if (digits == 0 || *p++ != '.')
        return 0;
    for (int k = 0; k < 6; k++, p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return *p == '\0' ? pid : 0;
}

/* Removes what earlier saves of file left behind when they were killed
 * before their rename: the temporary files of file (its directory, its
 * name, the pattern above) that are regular files of this user and whose
 * writer process no longer exists. A writer still running (another
 * process, or another thread of this one: the same pid) keeps its file.
 * Best effort: a file that cannot be examined or removed stays. */
static void remove_stale_temps(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *dir = slash ? strndup(file, slash == file ? 1 : (size_t)(slash - file)) : strdup(".");
    const char *base = slash ? slash + 1 : file;
    DIR *d = dir ? opendir(dir) : NULL;
    free(dir);
    if (!d)
        return;
    const long self = (long)getpid();
    const uid_t uid = geteuid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = temp_file_pid(e->d_name, base);
        if (pid <= 0 || pid == self || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            sb.st_uid == uid)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

del_status del_file_write_atomic(const char *path, const void *data, size_t len, const char *func)
{
    del_status st = del_path_check(path, "path", func);
    if (st != DEL_OK)
        return st;
    char *file = NULL, *tmp = NULL;
    st = resolve_links(path, func, &file);
    if (st != DEL_OK)
        return st;
    const char *link = strcmp(file, path) != 0 ? path : NULL;
    char pid[24];
    int plen = snprintf(pid, sizeof pid, "%ld", (long)getpid());
    tmp = malloc(strlen(file) + sizeof temp_infix + (size_t)plen + sizeof ".XXXXXX");
    if (!tmp) {
        free(file);
        return del_error(DEL_ENOMEM, "%s: out of memory", func);
    }
    sprintf(tmp, "%s%s%s.XXXXXX", file, temp_infix, pid);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        st = write_error(func, "create", tmp, link, errno);
        free(tmp);
        free(file);
        return st;
    }
    /* mkstemp makes the file private (0600); a saved model is a normal file. */
    if (fchmod(fd, 0644) != 0 || !write_all(fd, data, len) || fsync(fd) != 0) {
        st = write_error(func, "write", tmp, link, errno);
        close(fd);
        goto cleanup;
    }
    if (close(fd) != 0) {
        st = write_error(func, "write", tmp, link, errno);
        goto cleanup;
    }
    if (rename(tmp, file) != 0) {
        st = write_error(func, "replace", file, link, errno);
        goto cleanup;
    }
    sync_parent_dir(file);
    remove_stale_temps(file);
cleanup:
    if (st != DEL_OK)
        unlink(tmp);
    free(tmp);
    free(file);
    return st;
}
