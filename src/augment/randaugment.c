/* RandAugment and TrivialAugmentWide with torchvision 0.14's augmentation
 * spaces: which op, which magnitude, which sign. The ops themselves are
 * the table's (augment/ops/table.c, same order as torchvision's dict). */
#include <math.h>

#include "augment/augment_internal.h"

enum {
    OP_IDENTITY,
    OP_SHEAR_X,
    OP_SHEAR_Y,
    OP_TRANSLATE_X,
    OP_TRANSLATE_Y,
    OP_ROTATE,
    OP_BRIGHTNESS,
    OP_COLOR,
    OP_CONTRAST,
    OP_SHARPNESS,
    OP_POSTERIZE,
    OP_SOLARIZE,
    OP_AUTOCONTRAST,
    OP_EQUALIZE,
    NUM_OPS,
    NUM_BINS = 31
};

/* torch.linspace(...) values as torch 1.13 computes them in float32 on
 * this CPU (its SIMD kernel is not the textbook formula: some bins differ
 * by one ulp from start + i * step), printed with 9 significant digits. */
static const float SHEAR[NUM_BINS] = { /* linspace(0, 0.3, 31) */
    0.0f,         0.0100000007f, 0.0200000014f, 0.0300000012f, 0.0400000028f, 0.0500000045f, 0.0600000024f,
    0.0700000077f, 0.0800000057f, 0.0900000036f, 0.100000009f, 0.110000007f, 0.120000005f, 0.13000001f,
    0.140000015f, 0.150000006f, 0.159999996f, 0.170000002f, 0.180000007f, 0.189999998f, 0.200000003f,
    0.210000008f, 0.219999999f, 0.230000004f, 0.24000001f, 0.25f,         0.26000002f,  0.270000011f,
    0.280000001f, 0.290000021f, 0.300000012f};
static const float ENHANCE[NUM_BINS] = { /* linspace(0, 0.9, 31) */
    0.0f,         0.0299999993f, 0.0599999987f, 0.0899999961f, 0.119999997f, 0.149999991f, 0.179999992f,
    0.209999993f, 0.239999995f, 0.269999981f, 0.299999982f, 0.329999983f, 0.359999985f, 0.389999986f,
    0.419999987f, 0.449999988f, 0.479999989f, 0.50999999f,  0.539999962f, 0.569999993f, 0.599999964f,
    0.629999995f, 0.659999967f, 0.689999998f, 0.719999969f, 0.75f,        0.779999971f, 0.810000002f,
    0.839999974f, 0.870000005f, 0.899999976f};
static const float WIDE[NUM_BINS] = { /* linspace(0, 0.99, 31): TrivialAugmentWide shear and enhance */
    0.0f,         0.0329999998f, 0.0659999996f, 0.0989999995f, 0.131999999f, 0.164999992f, 0.197999999f,
    0.231000006f, 0.263999999f, 0.296999991f, 0.329999983f, 0.363000005f, 0.395999998f, 0.42899999f,
    0.462000012f, 0.495000005f, 0.527999997f, 0.56099999f,  0.593999982f, 0.627000034f, 0.660000026f,
    0.693000019f, 0.726000011f, 0.759000003f, 0.791999996f, 0.824999988f, 0.85800004f,  0.891000032f,
    0.924000025f, 0.957000017f, 0.99000001f};
static const float WIDE_TRANSLATE[NUM_BINS] = { /* linspace(0, 32, 31) */
    0.0f,         1.06666672f, 2.13333344f, 3.20000029f, 4.26666689f, 5.33333349f, 6.40000057f, 7.46666718f,
    8.53333378f,  9.60000038f, 10.666667f,  11.7333336f, 12.8000011f, 13.8666668f, 14.9333344f, 16.0f,
    17.0666656f,  18.1333332f, 19.1999989f, 20.2666664f, 21.3333321f, 22.3999996f, 23.4666672f, 24.5333328f,
    25.6000004f,  26.666666f,  27.7333336f, 28.7999992f, 29.8666668f, 30.9333324f, 32.0f};

static const int SIGNED[NUM_OPS] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};

/* linspace(0, end, 31)[i] for the image-dependent translate range, by
 * torch's scalar formula (the SIMD one can differ by an ulp, which only
 * matters when the value is within an ulp of an integer). */
static float linspace_from_zero(float end, int i)
{
    const float step = end / (float)(NUM_BINS - 1);
    return i < NUM_BINS / 2 ? step * (float)i : end - step * (float)(NUM_BINS - 1 - i);
}

/* The op's parameter for magnitude mag (already signed), as _apply_op
 * passes it on: enhance factors 1 + mag, translate int(mag), posterize
 * int(mag). Shear, rotate and solarize take mag itself. */
static float op_value(int op, float mag)
{
    switch (op) {
    case OP_BRIGHTNESS:
    case OP_COLOR:
    case OP_CONTRAST:
    case OP_SHARPNESS: return (float)(1.0 + (double)mag);
    case OP_TRANSLATE_X:
    case OP_TRANSLATE_Y:
    case OP_POSTERIZE: return truncf(mag);
    default: return mag;
    }
}

static float ra_magnitude(int op, int m, int h, int w)
{
    switch (op) {
    case OP_SHEAR_X:
    case OP_SHEAR_Y: return SHEAR[m];
    case OP_TRANSLATE_X: return linspace_from_zero((float)(150.0 / 331.0 * w), m);
    case OP_TRANSLATE_Y: return linspace_from_zero((float)(150.0 / 331.0 * h), m);
    case OP_ROTATE: return (float)m; /* linspace(0, 30, 31) is exact */
    case OP_BRIGHTNESS:
    case OP_COLOR:
    case OP_CONTRAST:
    case OP_SHARPNESS: return ENHANCE[m];
    case OP_POSTERIZE: return (float)(8 - (int)nearbyint(m / 7.5)); /* no bin is a tie */
    case OP_SOLARIZE: return 255.0f - 8.5f * (float)m;                 /* exact in float */
    default: return 0.0f;
    }
}

float del_randaugment_value(int op, int m, int negate, int h, int w)
{
    float mag = ra_magnitude(op, m, h, w);
    return op_value(op, SIGNED[op] && negate ? -mag : mag);
}

void del_randaugment_draw(del_rng *r, int n, int m, int h, int w, del_ra_choice *out)
{
    for (int k = 0; k < n; k++) {
        int op = (int)del_rng_below(r, NUM_OPS);
        int negate = SIGNED[op] && del_rng_below(r, 2);
        out[k].op = op;
        out[k].value = del_randaugment_value(op, m, negate, h, w);
    }
}

static float wide_magnitude(int op, int bin)
{
    switch (op) {
    case OP_SHEAR_X:
    case OP_SHEAR_Y:
    case OP_BRIGHTNESS:
    case OP_COLOR:
    case OP_CONTRAST:
    case OP_SHARPNESS: return WIDE[bin];
    case OP_TRANSLATE_X:
    case OP_TRANSLATE_Y: return WIDE_TRANSLATE[bin];
    case OP_ROTATE: return 4.5f * (float)bin; /* linspace(0, 135, 31), exact */
    case OP_POSTERIZE: return (float)(8 - (int)nearbyint(bin / 5.0));
    case OP_SOLARIZE: return 255.0f - 8.5f * (float)bin;
    default: return 0.0f;
    }
}

void del_trivialaugment_draw(del_rng *r, del_ra_choice *out)
{
    int op = (int)del_rng_below(r, NUM_OPS);
    float mag = 0.0f;
    /* torchvision draws a bin only for ops whose magnitudes are a range. */
    if (op != OP_IDENTITY && op != OP_AUTOCONTRAST && op != OP_EQUALIZE)
        mag = wide_magnitude(op, (int)del_rng_below(r, NUM_BINS));
    if (SIGNED[op] && del_rng_below(r, 2))
        mag = -mag;
    out->op = op;
    out->value = op_value(op, mag);
}
