/* Single-image augmentation ops against golden outputs written by
 * scripts/gen_augment_golden.py from the libraries libdel follows
 * (torchvision/PIL, numpy, OpenCV; the script says which defines which op). */
#include <math.h>
#include <zlib.h>

#include "augment/augment_internal.h"
#include "del/augment.h"
#include "testutil.h"

/* ---- golden file ---- */

typedef struct rec {
    char name[64];
    char kind; /* 'u' or 'f' */
    int dims[3];
    void *data;
} rec;

static rec *recs;
static int nrecs;

static int read_exact(gzFile f, void *buf, unsigned n)
{
    return gzread(f, buf, n) == (int)n;
}

static int load_golden(void)
{
    const char *dir = getenv("DEL_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/augment/golden.bin.gz", dir ? dir : "tests/data");
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    char magic[8];
    int ok = read_exact(f, magic, 8) && memcmp(magic, "DELAUGG1", 8) == 0;
    int cap = 0;
    while (ok) {
        unsigned char len[2];
        int got = gzread(f, len, 2);
        if (got == 0)
            break;
        unsigned n = (unsigned)len[0] | (unsigned)len[1] << 8;
        if (got != 2 || n >= sizeof recs[0].name) {
            ok = 0;
            break;
        }
        if (nrecs == cap) {
            cap = cap ? 2 * cap : 256;
            recs = realloc(recs, (size_t)cap * sizeof *recs);
        }
        rec *r = &recs[nrecs];
        memset(r, 0, sizeof *r);
        int32_t dims[3];
        ok = read_exact(f, r->name, n) && read_exact(f, &r->kind, 1) && read_exact(f, dims, sizeof dims);
        if (!ok)
            break;
        size_t count = (size_t)dims[0] * (size_t)dims[1] * (size_t)dims[2];
        size_t bytes = count * (r->kind == 'f' ? 4 : 1);
        r->data = malloc(bytes ? bytes : 1);
        memcpy(r->dims, dims, sizeof dims);
        ok = read_exact(f, r->data, (unsigned)bytes);
        nrecs++;
    }
    gzclose(f);
    if (!ok)
        fprintf(stderr, "%s: malformed golden file\n", path);
    return ok;
}

static const rec *find(const char *fmt, const char *op, int i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, op, i);
    for (int k = 0; k < nrecs; k++)
        if (strcmp(recs[k].name, name) == 0)
            return &recs[k];
    return NULL;
}

static const rec *need(const char *fmt, const char *op, int i)
{
    const rec *r = find(fmt, op, i);
    ck_assert_msg(r != NULL, "golden record missing: %s %d", op, i);
    return r;
}

static del_tensor *u8_image(int h, int w, int c)
{
    del_tensor *t = NULL;
    const int64_t shape[3] = {h, w, c};
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 3, shape));
    return t;
}

/* The input image k of the golden file, as a fresh owned tensor. */
static del_tensor *golden_input(int k)
{
    const rec *r = need("img/%s%d", "", k);
    del_tensor *t = u8_image(r->dims[0], r->dims[1], r->dims[2]);
    ck_assert_del_ok(del_tensor_copy_from(t, r->data, del_tensor_nbytes(t)));
    return t;
}

/* Compares out to the reference: at most max_frac of the samples may
 * differ, none by more than max_abs. */
static void compare(del_tensor *out, const rec *ref, int max_abs, double max_frac, const char *what, int i)
{
    ck_assert_int_eq(ref->kind, 'u');
    ck_assert_msg(del_tensor_dim(out, 0) == ref->dims[0] && del_tensor_dim(out, 1) == ref->dims[1] &&
                      del_tensor_dim(out, 2) == ref->dims[2],
                  "%s case %d: shape differs from the reference", what, i);
    const uint8_t *a = del_tensor_data(out), *b = ref->data;
    size_t n = del_tensor_nbytes(out), ndiff = 0;
    int worst = 0;
    for (size_t k = 0; k < n; k++) {
        int d = abs((int)a[k] - (int)b[k]);
        ndiff += d != 0;
        worst = d > worst ? d : worst;
    }
    ck_assert_msg(worst <= max_abs && (double)ndiff <= max_frac * (double)n,
                  "%s case %d: %zu of %zu samples differ, max |diff| %d (allowed %d, %.3f)", what, i, ndiff, n,
                  worst, max_abs, max_frac);
}

/* Runs every golden case of op: call(dst, src, params) must reproduce it. */
typedef del_status (*case_fn)(del_tensor *dst, const del_tensor *src, const float *p);

static int run_cases(const char *op, case_fn call, int max_abs, double max_frac)
{
    int i = 0;
    for (; find("%s/%d/p", op, i); i++) {
        const rec *p = need("%s/%d/p", op, i), *ref = need("%s/%d/out", op, i);
        del_tensor *src = golden_input((int)((const float *)p->data)[0]);
        del_tensor *dst = u8_image(ref->dims[0], ref->dims[1], ref->dims[2]);
        ck_assert_del_ok(call(dst, src, (const float *)p->data + 1));
        compare(dst, ref, max_abs, max_frac, op, i);
        del_tensor_free(src);
        del_tensor_free(dst);
    }
    ck_assert_msg(i > 0, "no golden cases for %s", op);
    return i;
}

#define P_INT(k) ((int)lrintf(p[k]))

static del_status c_brightness_add(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_brightness_add(d, s, P_INT(0));
}
static del_status c_brightness(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_brightness(d, s, p[0]);
}
static del_status c_contrast(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_contrast(d, s, p[0]);
}
static del_status c_color(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_color(d, s, p[0]);
}
static del_status c_sharpness(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_sharpness(d, s, p[0]);
}
static del_status c_posterize(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_posterize(d, s, P_INT(0));
}
static del_status c_solarize(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_solarize(d, s, p[0]);
}
static del_status c_autocontrast(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_autocontrast(d, s);
}
static del_status c_equalize(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_equalize(d, s);
}
static del_status c_flip_h(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_flip_h(d, s);
}
static del_status c_flip_v(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_flip_v(d, s);
}
static del_status c_rotate90(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_rotate90(d, s);
}
static del_status c_rotate180(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_rotate180(d, s);
}
static del_status c_rotate270(del_tensor *d, const del_tensor *s, const float *p)
{
    (void)p;
    return del_image_rotate270(d, s);
}
static del_status c_crop(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_crop(d, s, P_INT(0), P_INT(1));
}
static del_status c_pad_crop(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_pad_crop(d, s, P_INT(0), P_INT(1), P_INT(2), P_INT(5));
}
static del_status c_cutout(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_cutout(d, s, P_INT(0), P_INT(1), P_INT(2), P_INT(3));
}
static del_status c_rotate(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_rotate(d, s, p[0], (del_interp)P_INT(1), P_INT(2));
}
static del_status c_shear_x(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_shear_x(d, s, p[0], (del_interp)P_INT(1), P_INT(2));
}
static del_status c_shear_y(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_shear_y(d, s, p[0], (del_interp)P_INT(1), P_INT(2));
}
static del_status c_translate_x(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_translate_x(d, s, P_INT(0), P_INT(1));
}
static del_status c_translate_y(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_translate_y(d, s, P_INT(0), P_INT(1));
}
/* p: h, w, interp, fill, then the matrix (6 or 9 values). */
static del_status c_affine(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_affine(d, s, p + 4, (del_interp)P_INT(2), P_INT(3));
}
static del_status c_perspective(del_tensor *d, const del_tensor *s, const float *p)
{
    return del_image_perspective(d, s, p + 4, (del_interp)P_INT(2), P_INT(3));
}

/* ---- golden comparisons ---- */

START_TEST(test_point_ops_match_pil_exactly)
{
    run_cases("brightness_add", c_brightness_add, 0, 0);
    run_cases("brightness", c_brightness, 0, 0);
    run_cases("contrast", c_contrast, 0, 0);
    run_cases("color", c_color, 0, 0);
    run_cases("sharpness", c_sharpness, 0, 0);
    run_cases("posterize", c_posterize, 0, 0);
    run_cases("solarize", c_solarize, 0, 0);
    run_cases("autocontrast", c_autocontrast, 0, 0);
    run_cases("equalize", c_equalize, 0, 0);
}
END_TEST

START_TEST(test_flips_and_quarter_turns_match_numpy_and_cv2_rotate)
{
    run_cases("flip_h", c_flip_h, 0, 0);
    run_cases("flip_v", c_flip_v, 0, 0);
    run_cases("rotate90", c_rotate90, 0, 0);
    run_cases("rotate180", c_rotate180, 0, 0);
    run_cases("rotate270", c_rotate270, 0, 0);
}
END_TEST

START_TEST(test_crop_pad_crop_and_cutout_match_numpy_slicing)
{
    run_cases("crop", c_crop, 0, 0);
    run_cases("pad_crop", c_pad_crop, 0, 0);
    run_cases("cutout", c_cutout, 0, 0);
}
END_TEST

/* Rotate and shear reproduce Pillow's arithmetic and match bit for bit
 * with glibc's libm; their matrices go through cos/sin/tan/atan, so a
 * different libm may move a coordinate by an ulp and flip a nearest or
 * truncation tie: up to 1% of the samples may differ, by any amount (a
 * flipped nearest pixel can differ by a lot). Everything else is exact. */
#define LIBM_FRAC 0.01

START_TEST(test_rotate_matches_torchvision_pil)
{
    run_cases("rotate", c_rotate, 255, LIBM_FRAC);
}
END_TEST

START_TEST(test_shear_and_translate_match_torchvision_randaugment)
{
    run_cases("shear_x", c_shear_x, 255, LIBM_FRAC);
    run_cases("shear_y", c_shear_y, 255, LIBM_FRAC);
    run_cases("translate_x", c_translate_x, 0, 0);
    run_cases("translate_y", c_translate_y, 0, 0);
}
END_TEST

START_TEST(test_affine_from_points_matches_cv2_get_affine_transform)
{
    for (int i = 0; find("%s/%d/m", "affine_points", i); i++) {
        const float *src = need("%s/%d/src", "affine_points", i)->data;
        const float *dst = need("%s/%d/dst", "affine_points", i)->data;
        const float *ref = need("%s/%d/m", "affine_points", i)->data;
        float m[6];
        ck_assert_del_ok(del_affine_from_points(m, src, dst));
        for (int k = 0; k < 6; k++)
            ck_assert_msg(fabsf(m[k] - ref[k]) <= 1e-5f * fmaxf(1.0f, fabsf(ref[k])), "case %d m[%d] = %.8g, cv2 %.8g",
                          i, k, m[k], ref[k]);
    }
}
END_TEST

START_TEST(test_affine_warp_matches_cv2_warp_affine)
{
    run_cases("affine", c_affine, 0, 0);
}
END_TEST

/* p = [m, op0, negate0, op1, negate1]: RandAugment's value table and the
 * op table, applied in sequence as torchvision's forward does. */
static del_status c_randaugment(del_tensor *d, const del_tensor *s, const float *p)
{
    int h = (int)del_tensor_dim(s, 0), w = (int)del_tensor_dim(s, 1), c = (int)del_tensor_dim(s, 2);
    const del_aug_op *table = del_aug_op_table(NULL);
    del_tensor *mid = u8_image(h, w, c);
    float v0 = del_randaugment_value(P_INT(1), P_INT(0), P_INT(2), h, w);
    float v1 = del_randaugment_value(P_INT(3), P_INT(0), P_INT(4), h, w);
    del_status st = table[P_INT(1)].fn(mid, s, v0, DEL_INTERP_NEAREST, 0);
    if (st == DEL_OK)
        st = table[P_INT(3)].fn(d, mid, v1, DEL_INTERP_NEAREST, 0);
    del_tensor_free(mid);
    return st;
}

START_TEST(test_randaugment_op_sequences_match_torchvision)
{
    ck_assert_int_ge(run_cases("randaugment", c_randaugment, 0, 0), 60);
}
END_TEST

START_TEST(test_perspective_from_points_matches_cv2_get_perspective_transform)
{
    for (int i = 0; find("%s/%d/m", "perspective_points", i); i++) {
        const float *src = need("%s/%d/src", "perspective_points", i)->data;
        const float *dst = need("%s/%d/dst", "perspective_points", i)->data;
        const float *ref = need("%s/%d/m", "perspective_points", i)->data;
        float m[9];
        ck_assert_del_ok(del_perspective_from_points(m, src, dst));
        for (int k = 0; k < 9; k++)
            ck_assert_msg(fabsf(m[k] - ref[k]) <= 1e-5f * fmaxf(1.0f, fabsf(ref[k])), "case %d m[%d] = %.8g, cv2 %.8g",
                          i, k, m[k], ref[k]);
    }
}
END_TEST

START_TEST(test_perspective_warp_matches_cv2_warp_perspective)
{
    run_cases("perspective", c_perspective, 0, 0);
}
END_TEST

static Suite *augment_golden_suite(void)
{
    Suite *s = suite_create("augment_golden");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, test_point_ops_match_pil_exactly);
    tcase_add_test(tc, test_flips_and_quarter_turns_match_numpy_and_cv2_rotate);
    tcase_add_test(tc, test_crop_pad_crop_and_cutout_match_numpy_slicing);
    tcase_add_test(tc, test_rotate_matches_torchvision_pil);
    tcase_add_test(tc, test_shear_and_translate_match_torchvision_randaugment);
    tcase_add_test(tc, test_affine_from_points_matches_cv2_get_affine_transform);
    tcase_add_test(tc, test_affine_warp_matches_cv2_warp_affine);
    tcase_add_test(tc, test_perspective_from_points_matches_cv2_get_perspective_transform);
    tcase_add_test(tc, test_perspective_warp_matches_cv2_warp_perspective);
    tcase_add_test(tc, test_randaugment_op_sequences_match_torchvision);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!load_golden())
        return EXIT_FAILURE;
    int rc = test_run_suite(augment_golden_suite());
    for (int i = 0; i < nrecs; i++)
        free(recs[i].data);
    free(recs);
    return rc;
}
