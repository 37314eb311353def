/* The CIFAR-10 binary format (Krizhevsky's "binary version"): a file is a
 * sequence of 3073-byte records, one label byte (0..9) and the 32x32 image
 * as three planes R, G, B. Read through zlib so that plain and gzip files
 * look the same; records are converted to HWC as they stream in, so a
 * 50,000-image split never needs a second copy of the raw file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/gzio.h"

#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_IMAGE (3 * CIFAR_PLANE)
#define CIFAR_RECORD (1 + CIFAR_IMAGE)
#define CIFAR_CLASSES 10
#define CIFAR_TRAIN_FILES 5

/* Records to allocate for first; a data_batch file holds 10,000. */
#define CIFAR_FIRST_CAP 1024

/* Makes room for one more image in ds, doubling its capacity *cap. */
static del_status reserve_one(del_dataset *ds, int64_t *cap, const char *func)
{
    if (ds->n < *cap)
        return DEL_OK;
    int64_t next = *cap ? *cap * 2 : CIFAR_FIRST_CAP;
    if ((uint64_t)next > SIZE_MAX / CIFAR_IMAGE)
        return del_error(DEL_ENOMEM, "%s: %lld CIFAR images do not fit in memory", func, (long long)next);
    uint8_t *images = realloc(ds->images, (size_t)next * CIFAR_IMAGE);
    if (!images)
        return del_error(DEL_ENOMEM, "%s: out of memory for %lld images", func, (long long)next);
    ds->images = images;
    int32_t *labels = realloc(ds->labels, (size_t)next * sizeof *labels);
    if (!labels)
        return del_error(DEL_ENOMEM, "%s: out of memory for %lld labels", func, (long long)next);
    ds->labels = labels;
    *cap = next;
    return DEL_OK;
}

/* Planes R, G, B (CHW) -> interleaved HWC. */
static void chw_to_hwc(uint8_t *dst, const uint8_t *planes)
{
    for (int i = 0; i < CIFAR_PLANE; i++) {
        dst[3 * i + 0] = planes[i];
        dst[3 * i + 1] = planes[CIFAR_PLANE + i];
        dst[3 * i + 2] = planes[2 * CIFAR_PLANE + i];
    }
}

/* Appends every record of path to ds. */
static del_status append_file(del_dataset *ds, int64_t *cap, const char *path, const char *func)
{
    del_status st = DEL_OK;
    uint8_t rec[CIFAR_RECORD];
    int64_t records = 0;

    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno == 0)
            return del_error(DEL_ENOMEM, "%s: out of memory opening '%s'", func, path);
        return del_error(DEL_EIO, "%s: cannot open CIFAR-10 file '%s': %s", func, path, strerror(errno));
    }
    for (;;) {
        size_t got = 0;
        st = del_gz_read(f, rec, CIFAR_RECORD, &got, true, path, func);
        if (st != DEL_OK)
            goto cleanup;
        if (got == 0)
            break;
        if (got < CIFAR_RECORD) {
            st = del_error(DEL_EFORMAT,
                           "%s: CIFAR-10 file '%s' has %lld bytes, not a multiple of the %d-byte record "
                           "(truncated, or not CIFAR-10)",
                           func, path, (long long)records * CIFAR_RECORD + (long long)got, CIFAR_RECORD);
            goto cleanup;
        }
        if (rec[0] >= CIFAR_CLASSES) {
            st = del_error(DEL_EFORMAT, "%s: CIFAR-10 file '%s' has label %d in record %lld, expected 0..%d", func,
                           path, rec[0], (long long)records, CIFAR_CLASSES - 1);
            goto cleanup;
        }
        st = reserve_one(ds, cap, func);
        if (st != DEL_OK)
            goto cleanup;
        chw_to_hwc(ds->images + (size_t)ds->n * CIFAR_IMAGE, rec + 1);
        ds->labels[ds->n] = rec[0];
        ds->n++;
        records++;
    }
    if (records == 0)
        st = del_error(DEL_EFORMAT, "%s: CIFAR-10 file '%s' is empty (expected %d-byte records)", func, path,
                       CIFAR_RECORD);

cleanup:
    gzclose(f);
    return st;
}

/* Loads the files in order into one dataset. */
static del_status load_files(del_dataset **out, const char *const *paths, int count, const char *func)
{
    del_dataset *ds = NULL;
    int64_t cap = 0;
    del_status st = del_dataset_alloc(&ds, 0, CIFAR_SIDE, CIFAR_SIDE, 3, func);
    if (st != DEL_OK)
        return st;
    for (int i = 0; i < count; i++) {
        st = append_file(ds, &cap, paths[i], func);
        if (st != DEL_OK)
            goto cleanup;
    }
    /* Give back the slack of the doubling; keeping it is harmless if the
     * allocator refuses. */
    if (cap > ds->n) {
        uint8_t *images = realloc(ds->images, (size_t)ds->n * CIFAR_IMAGE);
        if (images)
            ds->images = images;
        int32_t *labels = realloc(ds->labels, (size_t)ds->n * sizeof *labels);
        if (labels)
            ds->labels = labels;
    }
    del_dataset_update_classes(ds);
    *out = ds;
    ds = NULL;

cleanup:
    del_dataset_free(ds);
    return st;
}

DEL_API del_status del_dataset_load_cifar10(del_dataset **out, const char *path)
{
    static const char fn[] = "del_dataset_load_cifar10";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!path)
        return del_error_null(fn, "path");
    if (!path[0])
        return del_error(DEL_EINVAL, "%s: 'path' must not be empty", fn);
    return load_files(out, &path, 1, fn);
}

/* "<dir>/<name>.gz" if that exists, else "<dir>/<name>" (also when neither
 * does, so the error names the usual file); NULL when out of memory. */
static char *cifar_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + sizeof "/.gz";
    char *path = malloc(len);
    if (!path)
        return NULL;
    snprintf(path, len, "%s/%s.gz", dir, name);
    if (access(path, F_OK) != 0)
        snprintf(path, len, "%s/%s", dir, name);
    return path;
}

DEL_API del_status del_dataset_load_cifar10_dir(del_dataset **out, const char *dir, del_split split)
{
    static const char fn[] = "del_dataset_load_cifar10_dir";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!dir)
        return del_error_null(fn, "dir");
    if (!dir[0])
        return del_error(DEL_EINVAL, "%s: 'dir' must not be empty", fn);
    if (split != DEL_SPLIT_TRAIN && split != DEL_SPLIT_TEST)
        return del_error(DEL_EINVAL, "%s: 'split' must be DEL_SPLIT_TRAIN (0) or DEL_SPLIT_TEST (1), got %d", fn,
                         (int)split);

    del_status st = DEL_OK;
    char *paths[CIFAR_TRAIN_FILES] = {0};
    int count = split == DEL_SPLIT_TRAIN ? CIFAR_TRAIN_FILES : 1;
    for (int i = 0; i < count; i++) {
        char name[32];
        if (split == DEL_SPLIT_TRAIN)
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        paths[i] = cifar_path(dir, name);
        if (!paths[i]) {
            st = del_error(DEL_ENOMEM, "%s: out of memory", fn);
            goto cleanup;
        }
    }
    st = load_files(out, (const char *const *)paths, count, fn);

cleanup:
    for (int i = 0; i < count; i++)
        free(paths[i]);
    return st;
}
