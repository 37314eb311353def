/* Backend: average pooling, global average pooling, the residual join (also
 * with the batchnorms' affine maps inside) and add, against naive loops written here (double precision), and
 * bit-identical results with 1, 2 and 4 threads. */
#include <math.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "testutil.h"
#include "backend_bufs.h"

/* Check's assertions are slow per call, so large loops count mismatches
 * (keeping the first) and assert once. */
typedef struct mismatch {
    const char *what;
    size_t count, first;
    double got, want;
} mismatch;

static void check_close(mismatch *m, const char *what, size_t i, double got, double want)
{
    if (fabs(got - want) <= 1e-5 * fabs(want) + 1e-6)
        return;
    if (m->count++ == 0) {
        m->what = what;
        m->first = i;
        m->got = got;
        m->want = want;
    }
}

static void assert_no_mismatch(const mismatch *m)
{
    ck_assert_msg(m->count == 0, "%zu mismatches, first %s[%zu]: got %.8g, want %.8g", m->count, m->what,
                  m->first, m->got, m->want);
}

static del_pool_shape pool(int n, int c, int h, int w, int k, int s)
{
    del_pool_shape p = {n, c, h, w, (h - k) / s + 1, (w - k) / s + 1, k, s};
    return p;
}

/* ---- avgpool ---- */

static void naive_avgpool(const del_pool_shape *s, const float *x, double *y)
{
    for (int p = 0; p < s->n * s->c; p++)
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++) {
                double acc = 0;
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++)
                        acc += x[(p * s->h_in + oh * s->stride + kh) * s->w_in + ow * s->stride + kw];
                y[(p * s->h_out + oh) * s->w_out + ow] = acc / (s->kernel * s->kernel);
            }
}

/* The adjoint: dx[i] = sum over windows containing i of dy / k^2. */
static void naive_avgpool_backward(const del_pool_shape *s, const float *dy, double *dx)
{
    size_t in = (size_t)s->n * s->c * s->h_in * s->w_in;
    for (size_t i = 0; i < in; i++)
        dx[i] = 0;
    for (int p = 0; p < s->n * s->c; p++)
        for (int oh = 0; oh < s->h_out; oh++)
            for (int ow = 0; ow < s->w_out; ow++)
                for (int kh = 0; kh < s->kernel; kh++)
                    for (int kw = 0; kw < s->kernel; kw++)
                        dx[(p * s->h_in + oh * s->stride + kh) * s->w_in + ow * s->stride + kw] +=
                            dy[(p * s->h_out + oh) * s->w_out + ow] / (double)(s->kernel * s->kernel);
}

START_TEST(test_avgpool_matches_naive_with_and_without_overlap)
{
    mismatch mm = {0};
    const del_backend *be = del_backend_get();
    del_pool_shape shapes[3] = {pool(2, 3, 6, 7, 2, 2), pool(1, 2, 7, 5, 3, 1), pool(3, 1, 8, 8, 3, 2)};
    for (int t = 0; t < 3; t++) {
        const del_pool_shape *s = &shapes[t];
        size_t in = (size_t)s->n * s->c * s->h_in * s->w_in, out = (size_t)s->n * s->c * s->h_out * s->w_out;
        float *x = rand_buf(in, 1 + t), *dy = rand_buf(out, 10 + t), *y = malloc(out * 4), *dx = malloc(in * 4);
        double *wy = malloc(out * 8), *wdx = malloc(in * 8);
        be->avgpool2d_forward(s, x, y);
        naive_avgpool(s, x, wy);
        for (size_t i = 0; i < out; i++)
            check_close(&mm, "avgpool y", i, y[i], wy[i]);
        be->avgpool2d_backward(s, dy, dx);
        naive_avgpool_backward(s, dy, wdx);
        for (size_t i = 0; i < in; i++)
            check_close(&mm, "avgpool dx", i, dx[i], wdx[i]);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(wy);
        free(wdx);
    }
    assert_no_mismatch(&mm);
}
END_TEST

/* A hand-worked 1x4x4 plane, kernel 2 stride 2: window means. */
START_TEST(test_avgpool_hand_worked)
{
    const float x[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    float y[4], dx[16];
    del_pool_shape s = pool(1, 1, 4, 4, 2, 2);
    del_backend_get()->avgpool2d_forward(&s, x, y);
    ck_assert_float_eq(y[0], 3.5f);  /* (1+2+5+6)/4 */
    ck_assert_float_eq(y[1], 5.5f);  /* (3+4+7+8)/4 */
    ck_assert_float_eq(y[2], 11.5f); /* (9+10+13+14)/4 */
    ck_assert_float_eq(y[3], 13.5f);
    const float dy[4] = {4, 8, -4, 2};
    del_backend_get()->avgpool2d_backward(&s, dy, dx);
    ck_assert_float_eq(dx[0], 1.0f);
    ck_assert_float_eq(dx[5], 1.0f);
    ck_assert_float_eq(dx[3], 2.0f);
    ck_assert_float_eq(dx[12], -1.0f);
    ck_assert_float_eq(dx[15], 0.5f);
}
END_TEST

START_TEST(test_global_avgpool_matches_naive)
{
    mismatch mm = {0};
    const del_backend *be = del_backend_get();
    int planes = 7, hw = 30;
    float *x = rand_buf((size_t)planes * hw, 3), *dy = rand_buf(planes, 4), y[7], *dx = malloc(planes * hw * 4);
    be->global_avgpool_forward(planes, hw, x, y);
    be->global_avgpool_backward(planes, hw, dy, dx);
    for (int p = 0; p < planes; p++) {
        double acc = 0;
        for (int i = 0; i < hw; i++)
            acc += x[p * hw + i];
        check_close(&mm, "gap y", p, y[p], acc / hw);
        for (int i = 0; i < hw; i++)
            check_close(&mm, "gap dx", p * hw + i, dx[p * hw + i], dy[p] / (double)hw);
    }
    free(x);
    free(dy);
    free(dx);
    assert_no_mismatch(&mm);
}
END_TEST

/* ---- residual join ---- */

START_TEST(test_residual_join_matches_naive)
{
    mismatch mm = {0};
    const del_backend *be = del_backend_get();
    int rows = 3;
    int64_t cols = 40000; /* more than one block per row */
    size_t n = (size_t)rows * cols;
    float *a = rand_buf(n, 5), *b = rand_buf(n, 6), *dy = rand_buf(n, 7), *y = malloc(n * 4);
    float *db = malloc(n * 4), *da = malloc(n * 4);
    const float scale[3] = {2.5f, 0.0f, 1.0f};
    for (int with_scale = 0; with_scale < 2; with_scale++) {
        const float *sc = with_scale ? scale : NULL;
        be->residual_join_forward(rows, cols, a, sc, b, y);
        be->residual_join_backward(rows, cols, y, dy, sc, db, da);
        for (size_t i = 0; i < n; i++) {
            double m = sc ? sc[i / cols] : 1.0, v = m * a[i] + b[i];
            check_close(&mm, "join y", i, y[i], v > 0 ? v : 0);
            double g = y[i] > 0 ? dy[i] : 0;
            check_close(&mm, "join db", i, db[i], g);
            check_close(&mm, "join da", i, da[i], m * g);
        }
    }
    /* in place: y == a, and da may be NULL without a scale */
    float *a2 = malloc(n * 4);
    memcpy(a2, a, n * 4);
    be->residual_join_forward(rows, cols, a2, scale, b, a2);
    be->residual_join_forward(rows, cols, a, scale, b, y);
    ck_assert_mem_eq(a2, y, n * 4);
    be->residual_join_backward(rows, cols, y, dy, NULL, db, NULL);
    for (size_t i = 0; i < n; i++)
        check_close(&mm, "join db", i, db[i], y[i] > 0 ? dy[i] : 0);
    free(a);
    free(a2);
    free(b);
    free(dy);
    free(y);
    free(db);
    free(da);
    assert_no_mismatch(&mm);
}
END_TEST

/* The join with the batchnorms' affine maps inside gives the bits of the
 * batchnorm outputs joined afterwards (what residual.c did before), with
 * and without a mask and a projection batchnorm, in place, and for 1, 2
 * and 4 threads. */
START_TEST(test_residual_join_bn_equals_batchnorm_then_join)
{
    const del_backend *be = del_backend_get();
    enum { N = 5, C = 6, HW = 50 };
    size_t len = (size_t)N * C * HW;
    float *a = rand_buf(len, 21), *b = rand_buf(len, 22), *ya = malloc(len * 4), *yb = malloc(len * 4);
    float *want = malloc(len * 4), *got = malloc(len * 4);
    float *gamma = rand_buf(2 * C, 23), *beta = rand_buf(2 * C, 24), *st = fill_buf(8 * C, 1.0f);
    float sc[2][C], sh[2][C];
    const float mask[N] = {1.25f, 0.0f, 1.25f, 1.25f, 0.0f};
    /* the batchnorm outputs, and the affine maps from their saved statistics */
    be->batchnorm_forward_train(N, C, HW, a, gamma, beta, 1e-5f, 0.1f, st, st + C, 0, ya, st + 2 * C, st + 3 * C,
                                NULL);
    be->batchnorm_forward_train(N, C, HW, b, gamma + C, beta + C, 1e-5f, 0.1f, st + 4 * C, st + 5 * C, 0, yb,
                                st + 6 * C, st + 7 * C, NULL);
    for (int k = 0; k < 2; k++)
        for (int ch = 0; ch < C; ch++) {
            sc[k][ch] = gamma[k * C + ch] * st[(4 * k + 3) * C + ch];
            sh[k][ch] = beta[k * C + ch] - st[(4 * k + 2) * C + ch] * sc[k][ch];
        }
    static const int threads[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        ck_assert_del_ok(del_set_num_threads(threads[t]));
        for (int with_mask = 0; with_mask < 2; with_mask++)
            for (int proj = 0; proj < 2; proj++) {
                const float *m = with_mask ? mask : NULL;
                be->residual_join_forward(N, (int64_t)C * HW, ya, m, proj ? yb : b, want);
                be->residual_join_forward_bn(N, C, HW, a, sc[0], sh[0], m, b, proj ? sc[1] : NULL,
                                             proj ? sh[1] : NULL, got);
                ck_assert_msg(memcmp(want, got, len * 4) == 0, "threads %d, mask %d, projection %d", threads[t],
                              with_mask, proj);
                /* in place on a copy of a */
                memcpy(got, a, len * 4);
                be->residual_join_forward_bn(N, C, HW, got, sc[0], sh[0], m, b, proj ? sc[1] : NULL,
                                             proj ? sh[1] : NULL, got);
                ck_assert_msg(memcmp(want, got, len * 4) == 0, "in place: mask %d, projection %d", with_mask, proj);
            }
    }
    /* and the join does something: a value clipped to 0 and a positive one */
    int zeros = 0, positive = 0;
    for (size_t i = 0; i < len; i++) {
        zeros += got[i] == 0.0f;
        positive += got[i] > 0.0f;
    }
    ck_assert(zeros > 0 && positive > 0);
    free(a);
    free(b);
    free(ya);
    free(yb);
    free(want);
    free(got);
    free(gamma);
    free(beta);
    free(st);
}
END_TEST

START_TEST(test_add_accumulates)
{
    size_t n = 50000;
    float *x = rand_buf(n, 8), *y = rand_buf(n, 9), *y0 = malloc(n * 4);
    memcpy(y0, y, n * 4);
    del_backend_get()->add((int64_t)n, x, y);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], y0[i] + x[i]);
    free(x);
    free(y);
    free(y0);
}
END_TEST

/* ---- thread counts ---- */

START_TEST(test_pooling_and_join_do_not_depend_on_thread_count)
{
    const del_backend *be = del_backend_get();
    del_pool_shape s = pool(4, 8, 12, 12, 3, 2);
    size_t in = (size_t)4 * 8 * 144, out = (size_t)4 * 8 * s.h_out * s.w_out;
    float *x = rand_buf(in, 11), *dy = rand_buf(out, 12), *dyi = rand_buf(in, 13);
    const float scale[4] = {0.0f, 1.25f, 1.25f, 0.0f};
    float *res[3][7];
    const int threads[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        ck_assert_del_ok(del_set_num_threads(threads[t]));
        for (int k = 0; k < 7; k++)
            res[t][k] = malloc(in * 4);
        be->avgpool2d_forward(&s, x, res[t][0]);
        be->avgpool2d_backward(&s, dy, res[t][1]);
        be->global_avgpool_forward(32, 144, x, res[t][2]);
        be->global_avgpool_backward(32, 144, dy, res[t][3]);
        be->residual_join_forward(4, 8 * 144, x, scale, dyi, res[t][4]);
        be->residual_join_backward(4, 8 * 144, res[t][4], dyi, scale, res[t][5], res[t][6]);
    }
    size_t sizes[7] = {out, in, 32, in, in, in, in};
    for (int t = 1; t < 3; t++)
        for (int k = 0; k < 7; k++)
            ck_assert_mem_eq(res[0][k], res[t][k], sizes[k] * 4);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 7; k++)
            free(res[t][k]);
    free(x);
    free(dy);
    free(dyi);
}
END_TEST

static Suite *backend_pool_suite(void)
{
    Suite *s = suite_create("backend_pool");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_avgpool_matches_naive_with_and_without_overlap);
    tcase_add_test(tc, test_avgpool_hand_worked);
    tcase_add_test(tc, test_global_avgpool_matches_naive);
    tcase_add_test(tc, test_residual_join_matches_naive);
    tcase_add_test(tc, test_residual_join_bn_equals_batchnorm_then_join);
    tcase_add_test(tc, test_add_accumulates);
    tcase_add_test(tc, test_pooling_and_join_do_not_depend_on_thread_count);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(backend_pool_suite());
}
