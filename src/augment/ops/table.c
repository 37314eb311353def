/* The op table: every RandAugment-style op behind one signature, so a
 * pipeline looks ops up by name instead of switching on strings. */
#include <math.h>
#include <string.h>

#include "augment/ops/image.h"

static del_status op_identity(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    (void)value;
    (void)interp;
    (void)fill;
    del_img d, s;
    del_status st = del_img_same(&d, &s, "identity op", dst, src, 1);
    if (st == DEL_OK && d.px != s.px)
        memcpy(d.px, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c);
    return st;
}

static del_status op_shear_x(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    return del_image_shear_x(dst, src, value, interp, fill);
}

static del_status op_shear_y(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    return del_image_shear_y(dst, src, value, interp, fill);
}

/* torchvision truncates translations with int(). */
static int trunc_int(float v)
{
    return !isfinite(v) ? 0 : v >= 2e9f ? 2000000000 : v <= -2e9f ? -2000000000 : (int)v;
}

static del_status op_translate_x(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    (void)interp;
    return del_image_translate_x(dst, src, trunc_int(value), fill);
}

static del_status op_translate_y(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    (void)interp;
    return del_image_translate_y(dst, src, trunc_int(value), fill);
}

static del_status op_rotate(del_tensor *dst, const del_tensor *src, float value, del_interp interp, int fill)
{
    return del_image_rotate(dst, src, value, interp, fill);
}

#define POINT_OP(name, call)                                                                                  \
    static del_status op_##name(del_tensor *dst, const del_tensor *src, float value, del_interp interp,       \
                                int fill)                                                                      \
    {                                                                                                          \
        (void)value;                                                                                           \
        (void)interp;                                                                                          \
        (void)fill;                                                                                            \
        return call;                                                                                           \
    }

POINT_OP(brightness, del_image_brightness(dst, src, value))
POINT_OP(brightness_add, del_image_brightness_add(dst, src, trunc_int(value)))
POINT_OP(color, del_image_color(dst, src, value))
POINT_OP(contrast, del_image_contrast(dst, src, value))
POINT_OP(sharpness, del_image_sharpness(dst, src, value))
POINT_OP(posterize, del_image_posterize(dst, src, trunc_int(value)))
POINT_OP(solarize, del_image_solarize(dst, src, value))
POINT_OP(autocontrast, del_image_autocontrast(dst, src))
POINT_OP(equalize, del_image_equalize(dst, src))
POINT_OP(flip_h, del_image_flip_h(dst, src))
POINT_OP(flip_v, del_image_flip_v(dst, src))

#undef POINT_OP

/* RandAugment's 14 ops first, in torchvision's order, then the extras. */
static const del_aug_op ops[] = {
    {/* .name = */ "identity", /* .fn = */ op_identity, /* .in_place = */ 1},
    {"shear_x", op_shear_x, 0},
    {"shear_y", op_shear_y, 0},
    {"translate_x", op_translate_x, 0},
    {"translate_y", op_translate_y, 0},
    {"rotate", op_rotate, 0},
    {"brightness", op_brightness, 1},
    {"color", op_color, 1},
    {"contrast", op_contrast, 1},
    {"sharpness", op_sharpness, 0},
    {"posterize", op_posterize, 1},
    {"solarize", op_solarize, 1},
    {"autocontrast", op_autocontrast, 1},
    {"equalize", op_equalize, 1},
    {"flip_h", op_flip_h, 0},
    {"flip_v", op_flip_v, 0},
    {"brightness_add", op_brightness_add, 1},
};

const del_aug_op *del_aug_op_table(int *count)
{
    if (count)
        *count = (int)(sizeof ops / sizeof ops[0]);
    return ops;
}

const del_aug_op *del_aug_op_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    return NULL;
}
