/* The IDX file format (LeCun's MNIST format, also Fashion-MNIST's), read
 * through zlib so that plain and gzip-compressed files look the same.
 *
 *   magic: 0x00 0x00 <type> <ndim>      type 0x08 = unsigned byte
 *   ndim big-endian uint32 sizes, then the data in C order. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/gzio.h"

#define IDX_TYPE_U8 0x08
#define IDX_MAX_DIMS 4

/* Growing the buffer in bounded chunks bounds the first allocation, so a
 * forged header announcing terabytes fails on the truncated data instead
 * of on a huge malloc. */
#define IDX_CHUNK ((size_t)1 << 26)

typedef struct idx_file {
    int ndim;
    uint64_t dims[IDX_MAX_DIMS];
    uint8_t *data; /* malloc'd, the product of dims bytes */
} idx_file;

static uint64_t be32(const uint8_t *p)
{
    return ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | (uint64_t)p[3];
}

/* Reads one u8 IDX file of rank min_rank..max_rank; `what` ("images",
 * "labels") goes into the messages. */
static del_status idx_read(idx_file *out, const char *path, int min_rank, int max_rank, const char *what,
                           const char *func)
{
    del_status st = DEL_OK;
    uint8_t *data = NULL;
    uint8_t head[4 + 4 * IDX_MAX_DIMS];
    size_t got = 0;

    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno == 0)
            return del_error(DEL_ENOMEM, "%s: out of memory opening %s file '%s'", func, what, path);
        return del_error(DEL_EIO, "%s: cannot open %s file '%s': %s", func, what, path, strerror(errno));
    }
    st = del_gz_read(f, head, 4, &got, false, path, func);
    if (st != DEL_OK)
        goto cleanup;
    if (got < 4) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' is truncated (%zu of 4 header bytes)", func, what, path, got);
        goto cleanup;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' is not an IDX file (bad magic %02x %02x %02x %02x)", func, what,
                       path, head[0], head[1], head[2], head[3]);
        goto cleanup;
    }
    if (head[2] != IDX_TYPE_U8) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' has IDX type 0x%02x, expected 0x08 (unsigned byte)", func, what,
                       path, head[2]);
        goto cleanup;
    }
    int ndim = head[3];
    if (ndim < min_rank || ndim > max_rank) {
        if (min_rank == max_rank)
            st = del_error(DEL_EFORMAT, "%s: %s file '%s' has %d dimensions, expected %d", func, what, path, ndim,
                           min_rank);
        else
            st = del_error(DEL_EFORMAT, "%s: %s file '%s' has %d dimensions, expected %d or %d", func, what, path,
                           ndim, min_rank, max_rank);
        goto cleanup;
    }
    st = del_gz_read(f, head + 4, 4 * (size_t)ndim, &got, false, path, func);
    if (st != DEL_OK)
        goto cleanup;
    if (got < 4 * (size_t)ndim) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' is truncated in its header", func, what, path);
        goto cleanup;
    }
    uint64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t size = be32(head + 4 + 4 * d);
        if (size < 1 || size > INT_MAX) {
            st = del_error(DEL_EFORMAT, "%s: %s file '%s' has size %llu in dimension %d, expected 1..%d", func, what,
                           path, (unsigned long long)size, d, INT_MAX);
            goto cleanup;
        }
        if (total > (uint64_t)(SIZE_MAX < INT64_MAX ? SIZE_MAX : INT64_MAX) / size) {
            st = del_error(DEL_EFORMAT, "%s: %s file '%s' announces more data than fits in memory", func, what, path);
            goto cleanup;
        }
        total *= size;
        out->dims[d] = size;
    }
    out->ndim = ndim;

    size_t cap = total < IDX_CHUNK ? (size_t)total : IDX_CHUNK;
    size_t have = 0;
    data = malloc(cap);
    if (!data) {
        st = del_error(DEL_ENOMEM, "%s: out of memory for %s file '%s'", func, what, path);
        goto cleanup;
    }
    for (;;) {
        st = del_gz_read(f, data + have, cap - have, &got, false, path, func);
        if (st != DEL_OK)
            goto cleanup;
        have += got;
        if (have < cap || cap == total)
            break;
        size_t next = cap > total / 2 ? (size_t)total : cap * 2;
        uint8_t *grown = realloc(data, next);
        if (!grown) {
            st = del_error(DEL_ENOMEM, "%s: out of memory for %s file '%s'", func, what, path);
            goto cleanup;
        }
        data = grown;
        cap = next;
    }
    if (have < total) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' is truncated (%zu of %llu data bytes)", func, what, path, have,
                       (unsigned long long)total);
        goto cleanup;
    }
    uint8_t extra;
    st = del_gz_read(f, &extra, 1, &got, false, path, func);
    if (st != DEL_OK)
        goto cleanup;
    if (got != 0) {
        st = del_error(DEL_EFORMAT, "%s: %s file '%s' has bytes after the announced %llu data bytes", func, what,
                       path, (unsigned long long)total);
        goto cleanup;
    }
    out->data = data;
    data = NULL;

cleanup:
    free(data);
    gzclose(f);
    return st;
}

del_status del_idx_load_pair(del_dataset **out, const char *images_path, const char *labels_path, const char *func)
{
    del_status st;
    idx_file img = {0}, lab = {0};
    del_dataset *ds = NULL;

    *out = NULL;
    st = idx_read(&img, images_path, 3, 4, "images", func);
    if (st != DEL_OK)
        goto cleanup;
    uint64_t n = img.dims[0];
    int channels = img.ndim == 4 ? (int)img.dims[3] : 1;
    if (channels != 1 && channels != 3) {
        st = del_error(DEL_EFORMAT, "%s: images file '%s' has %d channels, expected 1 or 3", func, images_path,
                       channels);
        goto cleanup;
    }
    if (labels_path) {
        st = idx_read(&lab, labels_path, 1, 1, "labels", func);
        if (st != DEL_OK)
            goto cleanup;
        if (lab.dims[0] != n) {
            st = del_error(DEL_EFORMAT, "%s: labels file '%s' has %llu labels but images file '%s' has %llu images",
                           func, labels_path, (unsigned long long)lab.dims[0], images_path, (unsigned long long)n);
            goto cleanup;
        }
    }
    /* The image bytes are already in dataset layout: adopt the buffer rather
     * than copy 47 MB. */
    st = del_dataset_alloc(&ds, 0, (int)img.dims[1], (int)img.dims[2], channels, func);
    if (st != DEL_OK)
        goto cleanup;
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    if (!ds->labels) {
        st = del_error(DEL_ENOMEM, "%s: out of memory for %llu labels", func, (unsigned long long)n);
        goto cleanup;
    }
    for (uint64_t i = 0; i < n; i++)
        ds->labels[i] = lab.data ? (int32_t)lab.data[i] : -1;
    ds->n = (int64_t)n;
    ds->images = img.data;
    img.data = NULL;
    del_dataset_update_classes(ds);
    *out = ds;
    ds = NULL;

cleanup:
    free(img.data);
    free(lab.data);
    del_dataset_free(ds);
    return st;
}

DEL_API del_status del_dataset_load_idx(del_dataset **out, const char *images_path, const char *labels_path)
{
    static const char fn[] = "del_dataset_load_idx";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!images_path)
        return del_error_null(fn, "images_path");
    if (!images_path[0])
        return del_error(DEL_EINVAL, "%s: 'images_path' must not be empty", fn);
    if (labels_path && !labels_path[0])
        return del_error(DEL_EINVAL, "%s: 'labels_path' must be NULL or a path, got an empty string", fn);
    return del_idx_load_pair(out, images_path, labels_path, fn);
}

/* "<dir>/<name>.gz" if that file exists, else "<dir>/<name>"; NULL when out
 * of memory. The caller frees it. */
static char *pick_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + sizeof "/.gz";
    char *path = malloc(len);
    if (!path)
        return NULL;
    snprintf(path, len, "%s/%s.gz", dir, name);
    if (access(path, F_OK) != 0) {
        char *plain = malloc(len);
        if (!plain) {
            free(path);
            return NULL;
        }
        snprintf(plain, len, "%s/%s", dir, name);
        if (access(plain, F_OK) == 0) {
            free(path);
            return plain;
        }
        free(plain);
    }
    return path;
}

DEL_API del_status del_dataset_load_fashion_mnist(del_dataset **out, const char *dir, del_split split)
{
    static const char fn[] = "del_dataset_load_fashion_mnist";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (split != DEL_SPLIT_TRAIN && split != DEL_SPLIT_TEST)
        return del_error(DEL_EINVAL, "%s: 'split' must be DEL_SPLIT_TRAIN (0) or DEL_SPLIT_TEST (1), got %d", fn,
                         (int)split);
    if (!dir)
        dir = DEL_FASHION_MNIST_DIR;
    if (!dir[0])
        return del_error(DEL_EINVAL, "%s: 'dir' must be NULL or a directory, got an empty string", fn);
    const char *prefix = split == DEL_SPLIT_TRAIN ? "train" : "t10k";
    char images_name[32], labels_name[32];
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);

    del_status st;
    char *images_path = pick_path(dir, images_name);
    char *labels_path = pick_path(dir, labels_name);
    if (!images_path || !labels_path)
        st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
    else
        st = del_idx_load_pair(out, images_path, labels_path, fn);
    free(images_path);
    free(labels_path);
    return st;
}
