/* Argument checking and small helpers shared by the augmentation ops. */
#include "augment/ops/image.h"

#include <math.h>

#include "core/error.h"

static const char *dtype_name(del_dtype t)
{
    switch (t) {
    case DEL_DTYPE_F32: return "f32";
    case DEL_DTYPE_U8: return "u8";
    case DEL_DTYPE_I32: return "i32";
    }
    return "?";
}

del_status del_img_src(del_img *view, const char *fn, const del_tensor *src)
{
    if (!src)
        return del_error_null(fn, "src");
    char buf[96];
    if (src->dtype != DEL_DTYPE_U8 || src->ndim != 3 || (src->shape[2] != 1 && src->shape[2] != 3) ||
        src->shape[0] > INT32_MAX / 4 || src->shape[1] > INT32_MAX / 4)
        return del_error(DEL_EINVAL, "%s: 'src' must be a u8 image [H, W, 1 or 3], got %s %s", fn,
                         dtype_name(src->dtype), del_tensor_shape_str(src, buf, sizeof buf));
    view->px = (uint8_t *)src->data;
    view->h = (int)src->shape[0];
    view->w = (int)src->shape[1];
    view->c = (int)src->shape[2];
    return DEL_OK;
}

del_status del_img_dst(del_img *view, const char *fn, del_tensor *dst, int h, int w, int c)
{
    if (!dst)
        return del_error_null(fn, "dst");
    const int64_t want[3] = {h, w, c};
    if (!del_tensor_has_shape(dst, DEL_DTYPE_U8, 3, want)) {
        char buf[96];
        return del_error(DEL_EINVAL, "%s: 'dst' must be a u8 tensor of shape [%d, %d, %d], got %s %s", fn, h, w,
                         c, dtype_name(dst->dtype), del_tensor_shape_str(dst, buf, sizeof buf));
    }
    view->px = (uint8_t *)dst->data;
    view->h = h;
    view->w = w;
    view->c = c;
    return DEL_OK;
}

int del_img_overlap(const del_tensor *a, const del_tensor *b)
{
    const uint8_t *pa = (const uint8_t *)a->data, *pb = (const uint8_t *)b->data;
    size_t na = del_tensor_nbytes(a), nb = del_tensor_nbytes(b);
    return pa < pb + nb && pb < pa + na;
}

del_status del_img_same(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src,
                        int may_alias)
{
    del_status st = del_img_src(s, fn, src);
    if (st != DEL_OK)
        return st;
    st = del_img_dst(d, fn, dst, s->h, s->w, s->c);
    if (st != DEL_OK)
        return st;
    if (may_alias) {
        /* In place is fine only when both views start at the same byte. */
        if (d->px != s->px && del_img_overlap(dst, src))
            return del_error(DEL_EINVAL, "%s: 'dst' partially overlaps 'src' (use the same buffer or a "
                                         "separate one)", fn);
    } else if (del_img_overlap(dst, src)) {
        return del_error(DEL_EINVAL, "%s: 'dst' must not share memory with 'src' (not an in-place op)", fn);
    }
    return DEL_OK;
}

del_status del_img_window(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src)
{
    del_status st = del_img_src(s, fn, src);
    if (st != DEL_OK)
        return st;
    if (!dst)
        return del_error_null(fn, "dst");
    if (dst->dtype != DEL_DTYPE_U8 || dst->ndim != 3 || dst->shape[2] != s->c || dst->shape[0] > INT32_MAX / 4 ||
        dst->shape[1] > INT32_MAX / 4) {
        char buf[96];
        return del_error(DEL_EINVAL, "%s: 'dst' must be a u8 tensor of shape [h, w, %d], got %s", fn, s->c,
                         del_tensor_shape_str(dst, buf, sizeof buf));
    }
    st = del_img_dst(d, fn, dst, (int)dst->shape[0], (int)dst->shape[1], s->c);
    if (st != DEL_OK)
        return st;
    if (del_img_overlap(dst, src))
        return del_error(DEL_EINVAL, "%s: 'dst' must not share memory with 'src' (not an in-place op)", fn);
    return DEL_OK;
}

del_status del_img_check_fill(const char *fn, int fill)
{
    if (fill < 0 || fill > 255)
        return del_error(DEL_EINVAL, "%s: 'fill' must be in 0..255, got %d", fn, fill);
    return DEL_OK;
}

del_status del_img_check_interp(const char *fn, del_interp interp)
{
    if (interp != DEL_INTERP_NEAREST && interp != DEL_INTERP_BILINEAR)
        return del_error(DEL_EINVAL, "%s: 'interp' must be DEL_INTERP_NEAREST or DEL_INTERP_BILINEAR, got %d", fn,
                         (int)interp);
    return DEL_OK;
}

del_status del_img_check_factor(const char *fn, float factor)
{
    if (!isfinite(factor) || factor < 0.0f)
        return del_error(DEL_EINVAL, "%s: 'factor' must be finite and >= 0, got %g", fn, (double)factor);
    return DEL_OK;
}
