/* Tensor files: one tensor (its dtype, shape and elements) in the
 * container of io/format.h with the magic "DELT". docs/file-format.md has
 * the byte layout.
 *
 * The payload has no freedom: a tensor has exactly one encoding, so a
 * loader can check every byte's place (shape, element count, no trailing
 * bytes) before it allocates the tensor, and saving what was loaded gives
 * back the same bytes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_internal.h"
#include "del/io.h"
#include "del/model.h"
#include "io/format.h"

static const del_format tensor_format = {{'D', 'E', 'L', 'T'}, 1, "tensor"};

/* ---- saving ---- */

/* Elements are written one at a time as little-endian bit patterns, so a
 * file is the same on every host. */
static del_status serialize(const del_tensor *t, const char *func, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const size_t numel = (size_t)del_tensor_numel(t);
    del_writer w;
    del_writer_init(&w);
    del_writer_u32(&w, (uint32_t)t->dtype);
    del_writer_u32(&w, (uint32_t)t->ndim);
    for (int i = 0; i < t->ndim; i++)
        del_writer_u64(&w, (uint64_t)t->shape[i]);
    if (t->dtype == DEL_DTYPE_U8) {
        del_writer_bytes(&w, t->data, numel);
    } else {
        /* f32 and i32 alike as their 32-bit patterns (a NaN's payload too). */
        const uint8_t *d = t->data;
        for (size_t k = 0; k < numel && !w.oom; k++) {
            uint32_t bits;
            memcpy(&bits, d + 4 * k, 4);
            del_writer_u32(&w, bits);
        }
    }
    if (w.oom) {
        del_writer_free(&w);
        return del_error(DEL_ENOMEM, "%s: out of memory (%zu bytes)", func, del_tensor_nbytes(t));
    }
    del_status st = del_format_pack(&tensor_format, w.data, w.len, func, out, len);
    del_writer_free(&w);
    return st;
}

/* Checks t and flags and, unless flags allow them, that an f32 tensor has
 * no NaN or infinity. */
static del_status check_save(const del_tensor *t, int flags, const char *func, const char *flags_func)
{
    if (!t)
        return del_error_null(func, "t");
    if (t->ndim < 1 || t->ndim > DEL_TENSOR_MAX_DIMS || del_dtype_size(t->dtype) == 0)
        return del_error(DEL_EINVAL, "%s: 't' has no shape yet (ndim %d): nothing to save", func, t->ndim);
    if (flags & ~DEL_SAVE_ALLOW_NONFINITE)
        return del_error(DEL_EINVAL, "%s: 'flags' must be DEL_SAVE_DEFAULT or DEL_SAVE_ALLOW_NONFINITE, got %d",
                         func, flags);
    if (t->dtype != DEL_DTYPE_F32 || (flags & DEL_SAVE_ALLOW_NONFINITE))
        return DEL_OK;
    const float *d = t->data;
    const int64_t n = del_tensor_numel(t);
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(d[k]))
            return del_error(DEL_ENUMERIC,
                             "%s: 't' has %s at element %lld (to save it anyway, call %s with "
                             "DEL_SAVE_ALLOW_NONFINITE)",
                             func, isnan(d[k]) ? "NaN" : "infinity", (long long)k, flags_func);
    return DEL_OK;
}

static del_status save_file(const del_tensor *t, const char *path, int flags, const char *fn)
{
    del_status st = check_save(t, flags, fn, "del_tensor_save_flags");
    if (st == DEL_OK)
        st = del_path_check(path, "path", fn);
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = serialize(t, fn, &file, &len);
    if (st == DEL_OK)
        st = del_file_write_atomic(path, file, len, fn);
    free(file);
    return st;
}

DEL_API del_status del_tensor_save(const del_tensor *t, const char *path)
{
    return save_file(t, path, DEL_SAVE_DEFAULT, "del_tensor_save");
}

DEL_API del_status del_tensor_save_flags(const del_tensor *t, const char *path, int flags)
{
    return save_file(t, path, flags, "del_tensor_save_flags");
}

static del_status save_buffer(const del_tensor *t, void **out, size_t *size, int flags, const char *fn)
{
    if (out)
        *out = NULL;
    if (size)
        *size = 0;
    del_status st = check_save(t, flags, fn, "del_tensor_save_buffer_flags");
    if (st != DEL_OK)
        return st;
    if (!out)
        return del_error_null(fn, "out");
    if (!size)
        return del_error_null(fn, "size");
    uint8_t *file = NULL;
    size_t len = 0;
    st = serialize(t, fn, &file, &len);
    if (st != DEL_OK)
        return st;
    *out = file;
    *size = len;
    return DEL_OK;
}

DEL_API del_status del_tensor_save_buffer(const del_tensor *t, void **out, size_t *size)
{
    return save_buffer(t, out, size, DEL_SAVE_DEFAULT, "del_tensor_save_buffer");
}

DEL_API del_status del_tensor_save_buffer_flags(const del_tensor *t, void **out, size_t *size, int flags)
{
    return save_buffer(t, out, size, flags, "del_tensor_save_buffer_flags");
}

/* ---- loading ---- */

static del_status corrupt(const del_source *src, const char *what)
{
    return del_error(DEL_EFORMAT, "%s: '%s' is corrupt (%s)", src->func, src->name, what);
}

/* Reads the payload's shape, checks that the elements fill the rest of it
 * exactly, then builds the tensor. Every size is checked before use: the
 * dims are multiplied with an overflow check, and the element bytes are
 * compared with what the payload holds, so a lying shape never allocates. */
static del_status parse_tensor(const uint8_t *payload, size_t len, const del_source *src, del_tensor **out)
{
    char why[160];
    del_reader r;
    del_reader_init(&r, payload, len);
    uint32_t dtype = del_reader_u32(&r);
    uint32_t ndim = del_reader_u32(&r);
    if (r.overrun) {
        snprintf(why, sizeof why, "payload of %zu bytes is shorter than its dtype and ndim", len);
        return corrupt(src, why);
    }
    size_t esize = dtype <= DEL_DTYPE_I32 ? del_dtype_size((del_dtype)dtype) : 0;
    if (esize == 0) {
        snprintf(why, sizeof why, "dtype %u, expected 0 (f32), 1 (u8) or 2 (i32)", (unsigned)dtype);
        return corrupt(src, why);
    }
    if (ndim < 1 || ndim > DEL_TENSOR_MAX_DIMS) {
        snprintf(why, sizeof why, "ndim %u, expected 1..%d", (unsigned)ndim, DEL_TENSOR_MAX_DIMS);
        return corrupt(src, why);
    }
    int64_t shape[DEL_TENSOR_MAX_DIMS];
    /* The payload is at most DEL_FORMAT_MAX_PAYLOAD (2^36) bytes, so a
     * product beyond it is refused before it can overflow. */
    uint64_t bytes = esize;
    for (uint32_t i = 0; i < ndim; i++) {
        uint64_t d = del_reader_u64(&r);
        if (r.overrun) {
            snprintf(why, sizeof why, "payload of %zu bytes ends inside its %u dims", len, (unsigned)ndim);
            return corrupt(src, why);
        }
        if (d < 1) {
            snprintf(why, sizeof why, "dim %u is 0, expected >= 1", (unsigned)i);
            return corrupt(src, why);
        }
        if (d > DEL_FORMAT_MAX_PAYLOAD / bytes) {
            snprintf(why, sizeof why, "dims too large: more than %llu bytes of elements",
                     (unsigned long long)DEL_FORMAT_MAX_PAYLOAD);
            return corrupt(src, why);
        }
        bytes *= d;
        shape[i] = (int64_t)d;
    }
    size_t left = del_reader_left(&r);
    if ((uint64_t)left < bytes) {
        snprintf(why, sizeof why, "%zu bytes of elements, the shape needs %llu", left, (unsigned long long)bytes);
        return corrupt(src, why);
    }
    if ((uint64_t)left > bytes) {
        snprintf(why, sizeof why, "%llu bytes after the elements", (unsigned long long)(left - bytes));
        return corrupt(src, why);
    }
    del_tensor *t = NULL;
    if (del_tensor_new(&t, (del_dtype)dtype, (int)ndim, shape) != DEL_OK)
        return del_error(DEL_ENOMEM, "%s: out of memory for a tensor of %llu bytes", src->func,
                         (unsigned long long)bytes);
    const size_t numel = (size_t)(bytes / esize);
    uint8_t *d = t->data;
    if (dtype == DEL_DTYPE_U8) {
        memcpy(d, del_reader_take(&r, numel), numel);
    } else {
        for (size_t k = 0; k < numel; k++) {
            uint32_t bits = del_reader_u32(&r);
            memcpy(d + 4 * k, &bits, 4);
        }
    }
    *out = t;
    return DEL_OK;
}

static del_status load_bytes(del_tensor **out, const uint8_t *file, size_t len, const del_source *src)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    uint32_t version = 0;
    del_status st = del_format_unpack(&tensor_format, src, file, len, &version, &payload, &plen);
    if (st == DEL_OK)
        st = parse_tensor(payload, plen, src, out);
    free(payload);
    return st;
}

DEL_API del_status del_tensor_load(del_tensor **out, const char *path)
{
    static const char fn[] = "del_tensor_load";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    del_status st = del_path_check(path, "path", fn);
    if (st != DEL_OK)
        return st;
    uint8_t *file = NULL;
    size_t len = 0;
    st = del_file_read(path, DEL_FORMAT_HEADER_SIZE + DEL_FORMAT_MAX_PAYLOAD, fn, &file, &len);
    if (st == DEL_OK) {
        del_source src = {fn, path};
        st = load_bytes(out, file, len, &src);
    }
    free(file);
    return st;
}

DEL_API del_status del_tensor_load_buffer(del_tensor **out, const void *data, size_t size)
{
    static const char fn[] = "del_tensor_load_buffer";
    if (!out)
        return del_error_null(fn, "out");
    *out = NULL;
    if (!data && size > 0)
        return del_error_null(fn, "data");
    del_source src = {fn, "<buffer>"};
    return load_bytes(out, data ? data : "", size, &src);
}
