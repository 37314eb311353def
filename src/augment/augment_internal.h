/* Internal: the pipeline struct and the pieces randaugment.c, mix.c and
 * pipeline.c share. */
#ifndef DEL_AUGMENT_INTERNAL_H
#define DEL_AUGMENT_INTERNAL_H

#include "augment/ops/image.h"
#include "core/rng.h"
#include "del/augment.h"

typedef enum step_kind {
    STEP_OP,
    STEP_RANDOM_CROP,
    STEP_RANDAUGMENT,
    STEP_TRIVIAL,
    STEP_CUTOUT,
    STEP_CUTMIX,
    STEP_MIXUP
} step_kind;

typedef struct aug_step {
    step_kind kind;
    float p;                /* probability (ops, cutout, cutmix, mixup) */
    const del_aug_op *op;   /* STEP_OP */
    float lo, hi;           /* STEP_OP magnitude range */
    int integer;            /* STEP_OP: magnitudes are integers */
    int a, b, pad, fill;    /* crop: size_h, size_w, pad, fill; RandAugment: n, m; cutout: size */
    float alpha;            /* cutmix, mixup */
    del_interp interp;      /* geometric ops */
    int geo_fill;
} aug_step;

struct del_augment {
    uint64_t seed;
    del_interp interp;
    int fill;
    aug_step *steps;
    int nsteps, cap;
    uint8_t *scratch; /* del_augment_image's buffers, kept between calls */
    size_t scratch_cap;
};

/* ---- randaugment.c ---- */

/* One op chosen by RandAugment / TrivialAugmentWide: the index into the op
 * table (0..13) and the value handed to the op. */
typedef struct del_ra_choice {
    int op;
    float value;
} del_ra_choice;

/* The value RandAugment hands to op (0..13) at bin m on an h x w image,
 * negated for signed ops when negate is set. */
float del_randaugment_value(int op, int m, int negate, int h, int w);

/* Draws RandAugment's n choices for magnitude bin m on an h x w image, in
 * torchvision's order of draws: op index (below 14), then a sign bit only
 * for signed ops (1 = negate). */
void del_randaugment_draw(del_rng *r, int n, int m, int h, int w, del_ra_choice *out);

/* Draws TrivialAugmentWide's choice: op index, then a bin (below 31) only
 * for ops with magnitudes, then a sign bit only for signed ops. */
void del_trivialaugment_draw(del_rng *r, del_ra_choice *out);

/* ---- mix.c ---- */

/* Gamma(shape, 1), shape > 0 (Marsaglia & Tsang 2000). */
double del_rng_gamma(del_rng *r, double shape);

/* Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
double del_rng_beta(del_rng *r, double a, double b);

/* CutMix's box for lambda on an h x w image: rows y0..y1-1, columns
 * x0..x1-1 (possibly empty). Draws the centre row, then the column. */
void del_cutmix_box(del_rng *r, double lambda, int h, int w, int *y0, int *y1, int *x0, int *x1);

/* Runs the batch steps on x (f32 [n, C, H, W]) and, if soft is not NULL,
 * the soft labels soft[n * k]. */
void del_augment_run_batch_steps(const del_augment *aug, float *x, float *soft, int64_t n, int c, int h, int w,
                                 int k, uint64_t epoch, uint64_t batch_no);

/* ---- pipeline.c ---- */



#endif
