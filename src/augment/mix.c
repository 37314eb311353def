/* Batch steps: CutMix (Yun et al. 2019) and MixUp (Zhang et al. 2018) as
 * timm's Mixup does them in its default "batch" mode: one lambda and one
 * box per batch, image i mixed with image n-1-i (the batch flipped). */
#include <math.h>
#include <string.h>

#include "augment/augment_internal.h"

/* Batch streams use a salted seed so that they never coincide with the
 * stream of an image whose dataset index equals the batch number. */
static const uint64_t BATCH_SALT = 0x6a09e667f3bcc909ULL;

/* (0, 1]: safe for log and for u^(1/a). */
static double uniform_open0(del_rng *r)
{
    return 1.0 - del_rng_uniform_double(r);
}

double del_rng_gamma(del_rng *r, double shape)
{
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia & Tsang, sec. 6). */
        double g = del_rng_gamma(r, shape + 1.0);
        return g * pow(uniform_open0(r), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = (double)del_rng_normal(r);
        double v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = uniform_open0(r);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double del_rng_beta(del_rng *r, double a, double b)
{
    double x = del_rng_gamma(r, a), y = del_rng_gamma(r, b);
    if (x + y > 0.0)
        return x / (x + y);
    /* Both underflowed (tiny shapes put all mass near 0 and 1). */
    return del_rng_below(r, 2) ? 1.0 : 0.0;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void del_cutmix_box(del_rng *r, double lambda, int h, int w, int *y0, int *y1, int *x0, int *x1)
{
    const double ratio = sqrt(1.0 - lambda);
    const int cut_h = (int)(h * ratio), cut_w = (int)(w * ratio);
    const int cy = (int)del_rng_below(r, (uint64_t)h), cx = (int)del_rng_below(r, (uint64_t)w);
    *y0 = clampi(cy - cut_h / 2, 0, h);
    *y1 = clampi(cy + cut_h / 2, 0, h);
    *x0 = clampi(cx - cut_w / 2, 0, w);
    *x1 = clampi(cx + cut_w / 2, 0, w);
}

/* Mixes the soft labels of the pairs (i, n-1-i) with weights a, b. */
static void mix_labels(float *soft, int64_t n, int k, float a, float b)
{
    if (!soft)
        return;
    for (int64_t i = 0, j = n - 1; i <= j; i++, j--) {
        float *yi = soft + i * k, *yj = soft + j * k;
        for (int t = 0; t < k; t++) {
            float vi = yi[t], vj = yj[t];
            yi[t] = vi * a + vj * b;
            yj[t] = vj * a + vi * b;
        }
    }
}

static void cutmix(float *x, int64_t n, int c, int h, int w, int y0, int y1, int x0, int x1)
{
    const size_t img = (size_t)c * (size_t)h * (size_t)w, plane = (size_t)h * (size_t)w;
    for (int64_t i = 0, j = n - 1; i < j; i++, j--)
        for (int ch = 0; ch < c; ch++)
            for (int y = y0; y < y1; y++) {
                float *pi = x + (size_t)i * img + (size_t)ch * plane + (size_t)y * (size_t)w;
                float *pj = x + (size_t)j * img + (size_t)ch * plane + (size_t)y * (size_t)w;
                for (int xx = x0; xx < x1; xx++) {
                    float t = pi[xx];
                    pi[xx] = pj[xx];
                    pj[xx] = t;
                }
            }
}

/* timm: x.mul_(lam).add_(x.flip(0).mul_(1 - lam)), in float. */
static void mixup(float *x, int64_t n, size_t img, float a, float b)
{
    for (int64_t i = 0, j = n - 1; i <= j; i++, j--) {
        float *pi = x + (size_t)i * img, *pj = x + (size_t)j * img;
        for (size_t t = 0; t < img; t++) {
            float vi = pi[t], vj = pj[t];
            pi[t] = vi * a + vj * b;
            pj[t] = vj * a + vi * b;
        }
    }
}

void del_augment_run_batch_steps(const del_augment *aug, float *x, float *soft, int64_t n, int c, int h, int w,
                                 int k, uint64_t epoch, uint64_t batch_no)
{
    del_rng r;
    del_rng_seed_stream(&r, aug->seed ^ BATCH_SALT, epoch, batch_no);
    for (int i = 0; i < aug->nsteps; i++) {
        const aug_step *s = &aug->steps[i];
        if (s->kind != STEP_CUTMIX && s->kind != STEP_MIXUP)
            continue;
        if (!(del_rng_uniform(&r) < s->p))
            continue;
        double lambda = del_rng_beta(&r, s->alpha, s->alpha);
        if (s->kind == STEP_CUTMIX) {
            int y0, y1, x0, x1;
            del_cutmix_box(&r, lambda, h, w, &y0, &y1, &x0, &x1);
            cutmix(x, n, c, h, w, y0, y1, x0, x1);
            lambda = 1.0 - (double)(y1 - y0) * (double)(x1 - x0) / ((double)h * (double)w);
            /* Pasting copies values exactly; only the labels are blended. */
            mix_labels(soft, n, k, (float)lambda, (float)(1.0 - lambda));
        } else {
            mixup(x, n, (size_t)c * (size_t)h * (size_t)w, (float)lambda, (float)(1.0 - lambda));
            mix_labels(soft, n, k, (float)lambda, (float)(1.0 - lambda));
        }
    }
}
