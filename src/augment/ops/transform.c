/* Resampling ops: the matrices, built exactly as the reference computes
 * them (torchvision's _get_inverse_affine_matrix and Pillow's
 * Image.rotate for the RandAugment ops; cv2's inversions for the general
 * warps), handed to the kernels in warp.c. */
#include <math.h>
#include <string.h>

#include "augment/ops/image.h"
#include "core/error.h"

/* CPython's math.radians / math.degrees factors. */
static const double DEG2RAD = 3.14159265358979323846 / 180.0;
static const double RAD2DEG = 180.0 / 3.14159265358979323846;

static del_status warp_args(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src,
                            del_interp interp, int fill)
{
    del_status st = del_img_same(d, s, fn, dst, src, 0);
    if (st == DEL_OK)
        st = del_img_check_interp(fn, interp);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    return st;
}

/* Python's round(v, 15) for the cos/sin values Pillow puts in its
 * rotation matrix: it mostly snaps tiny residues such as sin(pi) to 0. */
static double round15(double v)
{
    return nearbyint(v * 1e15) / 1e15;
}

DEL_API del_status del_image_rotate(del_tensor *dst, const del_tensor *src, float degrees, del_interp interp,
                                    int fill)
{
    static const char fn[] = "del_image_rotate";
    del_img d, s;
    del_status st = warp_args(&d, &s, fn, dst, src, interp, fill);
    if (st != DEL_OK)
        return st;
    if (!isfinite(degrees))
        return del_error(DEL_EINVAL, "%s: 'degrees' must be finite, got %g", fn, (double)degrees);
    /* Python's angle % 360.0, then Image.rotate's exact shortcuts. */
    double angle = fmod((double)degrees, 360.0);
    if (angle < 0.0)
        angle += 360.0;
    if (angle == 0.0) {
        memcpy(d.px, s.px, (size_t)s.h * (size_t)s.w * (size_t)s.c);
        return DEL_OK;
    }
    if (angle == 180.0)
        return del_image_rotate180(dst, src);
    if (s.w == s.h && angle == 90.0)
        return del_image_rotate90(dst, src);
    if (s.w == s.h && angle == 270.0)
        return del_image_rotate270(dst, src);
    double r = -(angle * DEG2RAD);
    double a[6] = {round15(cos(r)), round15(sin(r)), 0.0, round15(-sin(r)), round15(cos(r)), 0.0};
    double cx = s.w / 2.0, cy = s.h / 2.0;
    a[2] = a[0] * -cx + a[1] * -cy + 0.0 + cx;
    a[5] = a[3] * -cx + a[4] * -cy + 0.0 + cy;
    del_warp_pil_affine(&d, &s, a, interp, (uint8_t)fill);
    return DEL_OK;
}

/* torchvision's _get_inverse_affine_matrix(center, angle=0, translate=0,
 * scale=1, shear) with the shear angles given in degrees. */
static void tv_inverse_shear(double out[6], double cx, double cy, double shear_x_deg, double shear_y_deg)
{
    const double rot = 0.0 * DEG2RAD, sx = shear_x_deg * DEG2RAD, sy = shear_y_deg * DEG2RAD;
    const double a = cos(rot - sy) / cos(sy);
    const double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    const double c = sin(rot - sy) / cos(sy);
    const double dd = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    double m[6] = {dd, -b, 0.0, -c, a, 0.0};
    for (int i = 0; i < 6; i++)
        m[i] = m[i] / 1.0;
    m[2] += m[0] * (-cx - 0.0) + m[1] * (-cy - 0.0);
    m[5] += m[3] * (-cx - 0.0) + m[4] * (-cy - 0.0);
    m[2] += cx;
    m[5] += cy;
    memcpy(out, m, sizeof m);
}

static del_status shear(del_tensor *dst, const del_tensor *src, float m, del_interp interp, int fill, int axis_y,
                        const char *fn)
{
    del_img d, s;
    del_status st = warp_args(&d, &s, fn, dst, src, interp, fill);
    if (st != DEL_OK)
        return st;
    if (!isfinite(m) || fabsf(m) > 100.0f)
        return del_error(DEL_EINVAL, "%s: 'm' must be finite with |m| <= 100, got %g", fn, (double)m);
    /* RandAugment passes shear=degrees(atan(m)) with center=[0, 0]. */
    double deg = atan((double)m) * RAD2DEG;
    double a[6];
    tv_inverse_shear(a, 0.0, 0.0, axis_y ? 0.0 : deg, axis_y ? deg : 0.0);
    del_warp_pil_affine(&d, &s, a, interp, (uint8_t)fill);
    return DEL_OK;
}

DEL_API del_status del_image_shear_x(del_tensor *dst, const del_tensor *src, float m, del_interp interp, int fill)
{
    return shear(dst, src, m, interp, fill, 0, "del_image_shear_x");
}

DEL_API del_status del_image_shear_y(del_tensor *dst, const del_tensor *src, float m, del_interp interp, int fill)
{
    return shear(dst, src, m, interp, fill, 1, "del_image_shear_y");
}

static del_status finite_values(const char *fn, const float *m, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(m[i]))
            return del_error(DEL_EINVAL, "%s: 'm[%d]' must be finite, got %g", fn, i, (double)m[i]);
    return DEL_OK;
}

/* The output size comes from dst; m holds n finite coefficients. */
static del_status matrix_args(del_img *d, del_img *s, const char *fn, del_tensor *dst, const del_tensor *src,
                              const float *m, int n, del_interp interp, int fill)
{
    del_status st = del_img_window(d, s, fn, dst, src);
    if (st == DEL_OK)
        st = del_img_check_interp(fn, interp);
    if (st == DEL_OK)
        st = del_img_check_fill(fn, fill);
    if (st != DEL_OK)
        return st;
    if (!m)
        return del_error_null(fn, "m");
    return finite_values(fn, m, n);
}

DEL_API del_status del_image_affine(del_tensor *dst, const del_tensor *src, const float *m, del_interp interp,
                                    int fill)
{
    static const char fn[] = "del_image_affine";
    del_img d, s;
    del_status st = matrix_args(&d, &s, fn, dst, src, m, 6, interp, fill);
    if (st != DEL_OK)
        return st;
    /* cv2.warpAffine's own inversion, step by step, in double. */
    double M[6];
    for (int i = 0; i < 6; i++)
        M[i] = m[i];
    double D = M[0] * M[4] - M[1] * M[3];
    if (D == 0.0 || !isfinite(1.0 / D))
        return del_error(DEL_EINVAL, "%s: 'm' must be invertible (its 2x2 part is singular)", fn);
    D = 1.0 / D;
    double A11 = M[4] * D, A22 = M[0] * D;
    M[0] = A11;
    M[1] *= -D;
    M[3] *= -D;
    M[4] = A22;
    double b1 = -M[0] * M[2] - M[1] * M[5];
    double b2 = -M[3] * M[2] - M[4] * M[5];
    M[2] = b1;
    M[5] = b2;
    del_warp_cv_affine(&d, &s, M, interp, (uint8_t)fill);
    return DEL_OK;
}

DEL_API del_status del_image_perspective(del_tensor *dst, const del_tensor *src, const float *m, del_interp interp,
                                         int fill)
{
    static const char fn[] = "del_image_perspective";
    del_img d, s;
    del_status st = matrix_args(&d, &s, fn, dst, src, m, 9, interp, fill);
    if (st != DEL_OK)
        return st;
    /* cv::invert's closed form for 3x3 (DECOMP_LU), in double. */
    double S[9];
    for (int i = 0; i < 9; i++)
        S[i] = m[i];
    double det = S[0] * (S[4] * S[8] - S[5] * S[7]) - S[1] * (S[3] * S[8] - S[5] * S[6]) +
                 S[2] * (S[3] * S[7] - S[4] * S[6]);
    if (det == 0.0 || !isfinite(1.0 / det))
        return del_error(DEL_EINVAL, "%s: 'm' must be invertible (its determinant is 0)", fn);
    det = 1.0 / det;
    double t[9] = {
        (S[4] * S[8] - S[5] * S[7]) * det, (S[2] * S[7] - S[1] * S[8]) * det, (S[1] * S[5] - S[2] * S[4]) * det,
        (S[5] * S[6] - S[3] * S[8]) * det, (S[0] * S[8] - S[2] * S[6]) * det, (S[2] * S[3] - S[0] * S[5]) * det,
        (S[3] * S[7] - S[4] * S[6]) * det, (S[1] * S[6] - S[0] * S[7]) * det, (S[0] * S[4] - S[1] * S[3]) * det,
    };
    del_warp_cv_perspective(&d, &s, t, interp, (uint8_t)fill);
    return DEL_OK;
}

static del_status point_args(const char *fn, const float *m_out, const float *src_pts, const float *dst_pts, int n)
{
    if (!m_out)
        return del_error_null(fn, "m_out");
    if (!src_pts)
        return del_error_null(fn, "src_pts");
    if (!dst_pts)
        return del_error_null(fn, "dst_pts");
    for (int i = 0; i < n; i++) {
        if (!isfinite(src_pts[i]))
            return del_error(DEL_EINVAL, "%s: 'src_pts[%d]' must be finite, got %g", fn, i, (double)src_pts[i]);
        if (!isfinite(dst_pts[i]))
            return del_error(DEL_EINVAL, "%s: 'dst_pts[%d]' must be finite, got %g", fn, i, (double)dst_pts[i]);
    }
    return DEL_OK;
}

/* Solves the n x n system a x = b in place by Gaussian elimination with
 * partial pivoting; 0 if a pivot is negligible against the matrix scale. */
static int solve(double *a, double *b, int n)
{
    double scale = 0.0;
    for (int i = 0; i < n * n; i++)
        scale = fmax(scale, fabs(a[i]));
    if (scale == 0.0)
        return 0;
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r * n + col]) > fabs(a[piv * n + col]))
                piv = r;
        if (fabs(a[piv * n + col]) <= 1e-12 * scale)
            return 0;
        if (piv != col) {
            for (int k = 0; k < n; k++) {
                double t = a[col * n + k];
                a[col * n + k] = a[piv * n + k];
                a[piv * n + k] = t;
            }
            double t = b[col];
            b[col] = b[piv];
            b[piv] = t;
        }
        for (int r = col + 1; r < n; r++) {
            double f = a[r * n + col] / a[col * n + col];
            for (int k = col; k < n; k++)
                a[r * n + k] -= f * a[col * n + k];
            b[r] -= f * b[col];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double acc = b[r];
        for (int k = r + 1; k < n; k++)
            acc -= a[r * n + k] * b[k];
        b[r] = acc / a[r * n + r];
    }
    return 1;
}

DEL_API del_status del_affine_from_points(float *m_out, const float *src_pts, const float *dst_pts)
{
    static const char fn[] = "del_affine_from_points";
    del_status st = point_args(fn, m_out, src_pts, dst_pts, 6);
    if (st != DEL_OK)
        return st;
    /* Same unknown order as cv2.getAffineTransform: rows (x, y, 1, 0, 0, 0)
     * -> u and (0, 0, 0, x, y, 1) -> v. */
    double a[36] = {0}, b[6];
    for (int i = 0; i < 3; i++) {
        double x = src_pts[2 * i], y = src_pts[2 * i + 1];
        double *ru = a + 12 * i, *rv = ru + 6;
        ru[0] = rv[3] = x;
        ru[1] = rv[4] = y;
        ru[2] = rv[5] = 1.0;
        b[2 * i] = dst_pts[2 * i];
        b[2 * i + 1] = dst_pts[2 * i + 1];
    }
    if (!solve(a, b, 6))
        return del_error(DEL_EINVAL, "%s: 'src_pts' must not be collinear", fn);
    for (int i = 0; i < 6; i++)
        m_out[i] = (float)b[i];
    return DEL_OK;
}

DEL_API del_status del_perspective_from_points(float *m_out, const float *src_pts, const float *dst_pts)
{
    static const char fn[] = "del_perspective_from_points";
    del_status st = point_args(fn, m_out, src_pts, dst_pts, 8);
    if (st != DEL_OK)
        return st;
    double a[64] = {0}, b[8];
    for (int i = 0; i < 4; i++) {
        double x = src_pts[2 * i], y = src_pts[2 * i + 1];
        double u = dst_pts[2 * i], v = dst_pts[2 * i + 1];
        double *ru = a + 8 * i, *rv = a + 8 * (i + 4);
        ru[0] = rv[3] = x;
        ru[1] = rv[4] = y;
        ru[2] = rv[5] = 1.0;
        ru[6] = -x * u;
        ru[7] = -y * u;
        rv[6] = -x * v;
        rv[7] = -y * v;
        b[i] = u;
        b[i + 4] = v;
    }
    /* A solvable system can still give a singular map (e.g. three source
     * points on a line): reject that too, relative to the entries' size. */
    int ok = solve(a, b, 8);
    if (ok) {
        double h[9] = {b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 1.0}, big = 0.0;
        for (int i = 0; i < 9; i++)
            big = fmax(big, fabs(h[i]));
        double det = h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
                     h[2] * (h[3] * h[7] - h[4] * h[6]);
        ok = isfinite(det) && fabs(det) > 1e-12 * big * big * big;
    }
    if (!ok)
        return del_error(DEL_EINVAL, "%s: the points are degenerate (three of them collinear?)", fn);
    for (int i = 0; i < 8; i++)
        m_out[i] = (float)b[i];
    m_out[8] = 1.0f;
    return DEL_OK;
}
