/* Named heads (model.h "Heads"): a backbone plus heads, each head's output
 * checked against a plain model made of the backbone and that head alone
 * with the same weights; backward_heads against central differences of
 * L = sum over the listed heads h of sum_r w_hr y_hr (in double, eps 1e-2,
 * tolerance 2e-3 + 2e-3 |ana| as in test_gradcheck.c, on models without
 * kinks); add / replace / remove / split and their errors; optimizers
 * after a head change; the fmnist-cnn transfer flow. */
#include <math.h>

#include "nn/model_internal.h"
#include "testutil.h"

#define GC_EPS 1e-2
#define GC_ATOL 2e-3
#define GC_RTOL 2e-3
#define GC_MAX_CHECKS 60

/* The test's own random numbers (xorshift64*), independent of the library. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float uniform_pm1(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((double)((rng_state * 2685821657736338717ull) >> 11) / 4503599627370496.0 - 1.0);
}

static del_tensor *random_tensor(int ndim, const int64_t *shape)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, ndim, shape));
    float *d = del_tensor_data(t);
    for (int64_t i = 0; i < del_tensor_numel(t); i++)
        d[i] = uniform_pm1();
    return t;
}

static del_tensor *random_input(int n, int c, int h, int w)
{
    int64_t shape[4] = {n, c, h, w};
    return random_tensor(4, shape);
}

/* Random weights shaped like head name's output of the last forward. */
static del_tensor *weights_like(del_model *m, const char *name)
{
    del_tensor *y = del_model_head_output(m, name);
    ck_assert_ptr_nonnull(y);
    int64_t shape[4];
    int ndim = del_tensor_ndim(y);
    for (int k = 0; k < ndim; k++)
        shape[k] = del_tensor_dim(y, k);
    return random_tensor(ndim, shape);
}

static float *copy_floats(const float *src, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    if (n > 0)
        memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* A model from spec plus heads given as name, spec pairs (NULL-ended). */
static del_model *build(const char *spec, const char *const *heads)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, spec));
    for (int h = 0; heads && heads[h]; h += 2)
        ck_assert_del_ok(del_model_add_head(m, heads[h], heads[h + 1]));
    ck_assert_del_ok(del_model_init(m, 5));
    return m;
}

/* A plain model made of m's backbone and head name, with m's weights and
 * statistics copied in. flat_spec must spell out those layers. */
static del_model *flat_twin(del_model *m, const char *name, const char *flat_spec)
{
    del_model *f = NULL;
    ck_assert_del_ok(del_model_from_spec(&f, flat_spec));
    int bb = del_model_backbone_layers(m), first = 0, count = 0;
    ck_assert_del_ok(del_model_head_layers(m, name, &first, &count));
    ck_assert_int_eq(del_model_num_layers(f), bb + count);
    for (int i = 0; i < bb + count; i++) {
        const del_layer *src = &m->layers[i < bb ? i : first + i - bb], *dst = &f->layers[i];
        ck_assert_str_eq(src->ops->name, dst->ops->name);
        ck_assert_int_eq(src->n_params, dst->n_params);
        if (src->n_params)
            memcpy(f->params + dst->param_off, m->params + src->param_off, (size_t)src->n_params * sizeof(float));
        if (src->n_state)
            memcpy(f->state + dst->state_off, m->state + src->state_off, (size_t)src->n_state * sizeof(float));
    }
    return f;
}

static void assert_close(const float *a, const float *b, int64_t n, float tol)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i])), "[%lld] %g vs %g", (long long)i,
                      (double)a[i], (double)b[i]);
}

static const char *const two_heads[] = {
    "aux", "maxpool 2; flatten; linear 3 bias=0; relu; linear 2",
    "cls", "flatten; linear 4",
    NULL,
};
#define BACKBONE "input 2 5 5; conv2d 3 k=3 p=1 bias=0; batchnorm; relu"

/* Each head computes what backbone + that head alone computes, in training
 * mode (bit for bit: the same kernels in the same order) and in evaluation
 * mode (the backbone's conv + batchnorm + relu fold must not take in the
 * maxpool that starts the "aux" head, or "cls" would read a stale backbone
 * output). */
START_TEST(test_head_outputs_match_backbone_plus_that_head)
{
    del_model *m = build(BACKBONE, two_heads);
    ck_assert_int_eq(del_model_backbone_layers(m), 3);
    ck_assert_int_eq(del_model_num_layers(m), 3 + 2 + 5);
    /* conv 2*3*9 = 54, bn 6, aux 12*3 + 3*2+2 = 44, cls 75*4+4 = 304 */
    ck_assert_int_eq(del_model_num_params(m), 54 + 6 + 304 + 44);
    del_model *cls = flat_twin(m, "cls", BACKBONE "; flatten; linear 4");
    del_model *aux = flat_twin(m, "aux", BACKBONE "; maxpool 2; flatten; linear 3 bias=0; relu; linear 2");
    del_tensor *x = random_input(3, 2, 5, 5);
    ck_assert_ptr_null(del_model_head_output(m, "cls"));
    for (int training = 1; training >= 0; training--) {
        ck_assert_del_ok(del_model_set_training(m, training));
        ck_assert_del_ok(del_model_set_training(cls, training));
        ck_assert_del_ok(del_model_set_training(aux, training));
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_model_forward(cls, x));
        ck_assert_del_ok(del_model_forward(aux, x));
        del_tensor *yc = del_model_head_output(m, "cls"), *ya = del_model_head_output(m, "aux");
        ck_assert_ptr_eq(del_model_output(m), ya); /* the first head */
        ck_assert_int_eq(del_tensor_numel(yc), 3 * 4);
        ck_assert_int_eq(del_tensor_numel(ya), 3 * 2);
        if (training) {
            ck_assert_mem_eq(del_tensor_data(yc), del_tensor_data(del_model_output(cls)), del_tensor_nbytes(yc));
            ck_assert_mem_eq(del_tensor_data(ya), del_tensor_data(del_model_output(aux)), del_tensor_nbytes(ya));
            /* one forward of the backbone moved the running statistics once */
            ck_assert_mem_eq(m->state, cls->state, (size_t)cls->n_state * sizeof(float));
        } else {
            assert_close(del_tensor_data(yc), del_tensor_data(del_model_output(cls)), 12, 1e-5f);
            assert_close(del_tensor_data(ya), del_tensor_data(del_model_output(aux)), 6, 1e-5f);
        }
    }
    ck_assert_ptr_null(del_model_head_output(m, "nope"));
    ck_assert_ptr_null(del_model_head_output(m, NULL));
    ck_assert_ptr_null(del_model_head_output(NULL, "cls"));
    int nd = 0;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &nd, shape));
    ck_assert_int_eq(nd, 1);
    ck_assert_int_eq(shape[0], 2);
    del_tensor_free(x);
    del_model_free(cls);
    del_model_free(aux);
    del_model_free(m);
}
END_TEST

/* ---- gradients against central differences ---- */

typedef struct gc {
    del_model *m;
    del_tensor *x;
    int n;              /* heads in the loss */
    const char *names[4];
    del_tensor *w[4];   /* the loss weights = the heads' output gradients */
} gc;

static double gc_loss(gc *g)
{
    ck_assert_del_ok(del_model_forward(g->m, g->x));
    double L = 0.0;
    for (int k = 0; k < g->n; k++) {
        del_tensor *y = del_model_head_output(g->m, g->names[k]);
        const float *yd = del_tensor_data(y), *wd = del_tensor_data(g->w[k]);
        for (int64_t i = 0; i < del_tensor_numel(y); i++)
            L += (double)wd[i] * (double)yd[i];
    }
    return L;
}

static void gc_backward(gc *g)
{
    ck_assert_del_ok(del_model_zero_grad(g->m));
    ck_assert_del_ok(del_model_forward(g->m, g->x));
    ck_assert_del_ok(del_model_backward_heads(g->m, g->n, g->names, (const del_tensor *const *)g->w));
}

/* Checks d L / d v for a sample of v[0..n) against ana. */
static void gc_check(gc *g, float *v, int64_t n, const float *ana, const char *what)
{
    int64_t step = n > GC_MAX_CHECKS ? (n + GC_MAX_CHECKS - 1) / GC_MAX_CHECKS : 1;
    for (int64_t i = 0; i < n; i += step) {
        float orig = v[i];
        v[i] = (float)(orig + GC_EPS);
        double lp = gc_loss(g);
        v[i] = (float)(orig - GC_EPS);
        double lm = gc_loss(g);
        v[i] = orig;
        double num = (lp - lm) / (2.0 * GC_EPS);
        ck_assert_msg(fabs(num - ana[i]) <= GC_ATOL + GC_RTOL * fabs(ana[i]), "%s[%lld]: numerical %g, analytic %g",
                      what, (long long)i, num, (double)ana[i]);
    }
}

/* Parameter gradients of the backbone and listed heads, and the input
 * gradient, match central differences; the other heads' gradients stay 0. */
static void check_subset(del_model *m, del_tensor *x, int n, const char *const *names)
{
    gc g = {.m = m, .x = x, .n = n};
    ck_assert_del_ok(del_model_forward(m, x));
    for (int k = 0; k < n; k++) {
        g.names[k] = names[k];
        g.w[k] = weights_like(m, names[k]);
    }
    gc_backward(&g);
    int64_t np = del_model_num_params(m);
    float *ana = copy_floats(del_model_grads(m), np);
    del_tensor *dx = del_model_input_grad(m);
    ck_assert_ptr_nonnull(dx);
    float *ana_x = copy_floats(del_tensor_data(dx), del_tensor_numel(dx));
    /* every layer: of the backbone or a listed head and trainable, or else
     * without gradient */
    int bb = del_model_backbone_layers(m);
    for (int i = 0; i < del_model_num_layers(m); i++) {
        const char *where = "backbone";
        int wanted = 1;
        for (int h = 0; i >= bb && h < del_model_num_heads(m); h++) {
            int first = 0, count = 0;
            ck_assert_del_ok(del_model_head_layers(m, del_model_head_name(m, h), &first, &count));
            if (i < first || i >= first + count)
                continue;
            where = del_model_head_name(m, h);
            wanted = 0;
            for (int k = 0; k < n; k++)
                wanted |= strcmp(names[k], where) == 0;
        }
        const del_layer *l = &m->layers[i];
        if (wanted && !del_model_layer_frozen(m, i)) {
            gc_check(&g, del_model_params(m) + l->param_off, l->n_params, ana + l->param_off, where);
            continue;
        }
        for (int64_t p = l->param_off; p < l->param_off + l->n_params; p++)
            ck_assert_msg(ana[p] == 0.0f, "layer %d (%s) is frozen or not listed, grad[%lld] = %g", i, where,
                          (long long)p, (double)ana[p]);
    }
    gc_check(&g, del_tensor_data(x), del_tensor_numel(x), ana_x, "input");
    for (int k = 0; k < n; k++)
        del_tensor_free(g.w[k]);
    free(ana);
    free(ana_x);
}

/* No kinks: the backbone is conv + batchnorm (batch statistics are smooth). */
#define SMOOTH_BACKBONE "input 2 4 4; conv2d 2 k=3 p=1; batchnorm"
static const char *const smooth_heads[] = {
    "a", "flatten; linear 3",
    "b", "gap; linear 4; linear 2",
    "c", "avgpool 2; flatten; linear 2",
    NULL,
};

START_TEST(test_backward_heads_matches_central_differences_for_subsets)
{
    del_model *m = build(SMOOTH_BACKBONE, smooth_heads);
    del_tensor *x = random_input(3, 2, 4, 4);
    static const char *const s_a[] = {"a"}, *const s_b[] = {"b"}, *const s_ab[] = {"a", "b"},
                             *const s_cab[] = {"c", "a", "b"};
    check_subset(m, x, 1, s_a);
    check_subset(m, x, 1, s_b);
    check_subset(m, x, 2, s_ab);
    check_subset(m, x, 3, s_cab);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* The backbone's gradient from {a, b} is the sum of those from {a} and
 * {b}; the list order does not matter (bit for bit); del_model_backward is
 * backward_heads of the first head. */
START_TEST(test_backbone_gradient_is_the_sum_over_heads)
{
    del_model *m = build(SMOOTH_BACKBONE, smooth_heads);
    del_tensor *x = random_input(2, 2, 4, 4);
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *wa = weights_like(m, "a"), *wb = weights_like(m, "b");
    const char *ab[] = {"a", "b"}, *ba[] = {"b", "a"};
    const del_tensor *g_ab[] = {wa, wb}, *g_ba[] = {wb, wa};
    int64_t np = del_model_num_params(m);
    int bb = del_model_backbone_layers(m);
    int64_t nbb = m->layers[bb - 1].param_off + m->layers[bb - 1].n_params;

    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward_heads(m, 1, ab, g_ab));
    float *ga = copy_floats(del_model_grads(m), np);
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward(m, wa)); /* "a" is the first head */
    ck_assert_mem_eq(del_model_grads(m), ga, (size_t)np * sizeof(float));
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward_heads(m, 1, ab + 1, g_ab + 1));
    float *gb = copy_floats(del_model_grads(m), np);
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward_heads(m, 2, ab, g_ab));
    float *gab = copy_floats(del_model_grads(m), np);
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward_heads(m, 2, ba, g_ba));
    ck_assert_mem_eq(del_model_grads(m), gab, (size_t)np * sizeof(float));
    for (int64_t p = 0; p < nbb; p++)
        ck_assert_msg(fabsf(gab[p] - (ga[p] + gb[p])) <= 1e-5f * (1.0f + fabsf(gab[p])), "[%lld] %g vs %g + %g",
                      (long long)p, (double)gab[p], (double)ga[p], (double)gb[p]);
    /* a head's own gradients come only from its own output gradient */
    for (int64_t p = nbb; p < np; p++)
        ck_assert_float_eq(gab[p], ga[p] + gb[p]);
    /* gradients accumulate like del_model_backward's */
    ck_assert_del_ok(del_model_backward_heads(m, 2, ab, g_ab));
    for (int64_t p = 0; p < np; p++)
        ck_assert_float_eq_tol(del_model_grads(m)[p], 2.0f * gab[p], 1e-6f * (1.0f + fabsf(gab[p])));
    free(ga);
    free(gb);
    free(gab);
    del_tensor_free(wa);
    del_tensor_free(wb);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* A frozen backbone with trainable heads: the backbone gets no gradient,
 * the heads' gradients and the (lazily computed) input gradient match
 * central differences. A frozen head with a trainable backbone: the head
 * passes the gradient through and gets none itself. */
START_TEST(test_frozen_backbone_or_head_keeps_gradients_right)
{
    static const char *const s_ab[] = {"a", "b"}, *const s_abc[] = {"a", "b", "c"};
    del_model *m = build(SMOOTH_BACKBONE, smooth_heads);
    del_tensor *x = random_input(3, 2, 4, 4);
    /* the backbone's batchnorm then runs on running statistics: move them */
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_freeze(m, 0, del_model_backbone_layers(m) - 1));
    check_subset(m, x, 2, s_ab);
    del_model_free(m);

    m = build(SMOOTH_BACKBONE, smooth_heads);
    int first = 0, count = 0;
    ck_assert_del_ok(del_model_head_layers(m, "b", &first, &count));
    ck_assert_del_ok(del_model_freeze(m, first, first + count - 1));
    check_subset(m, x, 3, s_abc);
    /* everything frozen but one head's last layer */
    ck_assert_del_ok(del_model_freeze(m, 0, -1));
    ck_assert_del_ok(del_model_unfreeze(m, -1, -1));
    check_subset(m, x, 3, s_abc);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* A backbone without layers: every head reads the input, and the input
 * gradient is the sum of theirs. */
START_TEST(test_empty_backbone_heads_read_the_input)
{
    static const char *const heads[] = {"p", "flatten; linear 3", "q", "conv2d 2 k=3; gap; linear 2", NULL};
    static const char *const s_pq[] = {"p", "q"}, *const s_q[] = {"q"};
    del_model *m = build("input 2 4 4", heads);
    ck_assert_int_eq(del_model_backbone_layers(m), 0);
    del_tensor *x = random_input(2, 2, 4, 4);
    check_subset(m, x, 2, s_pq);
    check_subset(m, x, 1, s_q);
    /* the same, with the input gradient computed lazily after a backward */
    del_model *lazy = build("input 2 4 4", heads);
    ck_assert_del_ok(del_model_forward(lazy, x));
    del_tensor *wp = weights_like(lazy, "p"), *wq = weights_like(lazy, "q");
    const del_tensor *g[] = {wp, wq};
    ck_assert_del_ok(del_model_backward_heads(lazy, 2, s_pq, g));
    del_tensor *dx_lazy = del_model_input_grad(lazy);
    ck_assert_ptr_nonnull(dx_lazy);
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_backward_heads(m, 2, s_pq, g));
    assert_close(del_tensor_data(dx_lazy), del_tensor_data(del_model_input_grad(m)), del_tensor_numel(dx_lazy), 1e-6f);
    del_tensor_free(wp);
    del_tensor_free(wq);
    del_tensor_free(x);
    del_model_free(lazy);
    del_model_free(m);
}
END_TEST

/* ---- building ---- */

START_TEST(test_add_replace_remove_heads)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; flatten; linear 8; relu"));
    ck_assert_int_eq(del_model_num_heads(m), 0);
    ck_assert_int_eq(del_model_backbone_layers(m), 3);
    ck_assert_del_ok(del_model_add_head(m, "old", "linear 3"));
    ck_assert_del_ok(del_model_add_head(m, "new-1.x", "linear 5; relu; linear 2"));
    ck_assert_del_ok(del_model_add_head(m, "z", "linear 4"));
    ck_assert_int_eq(del_model_num_heads(m), 3);
    ck_assert_int_eq(del_model_backbone_layers(m), 3);
    ck_assert_str_eq(del_model_head_name(m, 1), "new-1.x");
    ck_assert_ptr_null(del_model_head_name(m, 3));
    ck_assert_ptr_null(del_model_head_name(m, -1));
    ck_assert_int_eq(del_model_head_index(m, "z"), 2);
    ck_assert_int_eq(del_model_head_index(m, "Z"), -1);
    int first = 0, count = 0;
    ck_assert_del_ok(del_model_head_layers(m, "new-1.x", &first, &count));
    ck_assert_int_eq(first, 4);
    ck_assert_int_eq(count, 3);
    ck_assert_str_eq(del_model_layer_type(m, 6), "linear");
    /* 16*8+8 = 136; old 27; new 45 + 12 = 57; z 36 */
    ck_assert_int_eq(del_model_num_params(m), 136 + 27 + 57 + 36);

    /* the backbone and the other heads keep their parameters */
    float *before = copy_floats(del_model_params(m), del_model_num_params(m));
    ck_assert_del_ok(del_model_replace_head(m, "old", "linear 6; linear 2"));
    ck_assert_int_eq(del_model_num_params(m), 136 + 54 + 14 + 57 + 36);
    ck_assert_del_ok(del_model_head_layers(m, "old", &first, &count));
    ck_assert_int_eq(first, 3);
    ck_assert_int_eq(count, 2);
    ck_assert_del_ok(del_model_head_layers(m, "z", &first, &count));
    ck_assert_int_eq(first, 8);
    ck_assert_int_eq(count, 1);
    ck_assert_mem_eq(del_model_params(m), before, 136 * sizeof(float));
    ck_assert_mem_eq(del_model_params(m) + 136 + 68, before + 136 + 27, (57 + 36) * sizeof(float));
    /* the new layers are initialised as del_model_init initialises layers
     * at their indices (seed 0 here): a plain model of the same layers */
    del_model *twin = NULL;
    ck_assert_del_ok(del_model_from_spec(&twin, "input 1 4 4; flatten; linear 8; relu; linear 6; linear 2"));
    ck_assert_mem_eq(del_model_params(m) + 136, del_model_params(twin) + 136, 68 * sizeof(float));
    del_model_free(twin);

    ck_assert_del_ok(del_model_remove_head(m, "new-1.x"));
    ck_assert_int_eq(del_model_num_heads(m), 2);
    ck_assert_str_eq(del_model_head_name(m, 1), "z");
    ck_assert_del_ok(del_model_head_layers(m, "z", &first, &count));
    ck_assert_int_eq(first, 5);
    ck_assert_int_eq(del_model_num_layers(m), 6);
    ck_assert_int_eq(del_model_num_params(m), 136 + 68 + 36);
    ck_assert_mem_eq(del_model_params(m) + 136 + 68, before + 136 + 27 + 57, 36 * sizeof(float));

    /* removing every head leaves the backbone, which takes layers again */
    ck_assert_del_ok(del_model_remove_head(m, "old"));
    ck_assert_del_ok(del_model_remove_head(m, "z"));
    ck_assert_int_eq(del_model_num_heads(m), 0);
    ck_assert_int_eq(del_model_num_layers(m), 3);
    ck_assert_int_eq(del_model_num_params(m), 136);
    ck_assert_mem_eq(del_model_params(m), before, 136 * sizeof(float));
    ck_assert_del_ok(del_model_add_linear(m, 2, 1));
    ck_assert_int_eq(del_model_backbone_layers(m), 4);
    free(before);
    del_model_free(m);
}
END_TEST

START_TEST(test_head_errors_leave_the_model_unchanged)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; conv2d 2 k=3; batchnorm"));
    ck_assert_del_ok(del_model_add_head(m, "h", "flatten; linear 3"));
    int64_t np = del_model_num_params(m);
    int nl = del_model_num_layers(m);
    ck_assert_del_err(del_model_add_head(NULL, "x", "relu"), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_add_head(m, NULL, "relu"), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_model_add_head(m, "x", NULL), DEL_EINVAL, "'spec'");
    ck_assert_del_err(del_model_add_head(m, "", "relu"), DEL_EINVAL, "'name' must be 1..31 characters");
    ck_assert_del_err(del_model_add_head(m, "a b", "relu"), DEL_EINVAL, "got 'a b'");
    ck_assert_del_err(del_model_add_head(m, "a/b", "relu"), DEL_EINVAL, "A-Z a-z 0-9 _ . -");
    ck_assert_del_err(del_model_add_head(m, "abcdefghijklmnopqrstuvwxyz789012", "relu"), DEL_EINVAL, "1..31");
    ck_assert_del_ok(del_model_add_head(m, "abcdefghijklmnopqrstuvwxyz78901", "relu"));
    ck_assert_del_ok(del_model_remove_head(m, "abcdefghijklmnopqrstuvwxyz78901"));
    ck_assert_del_err(del_model_add_head(m, "h", "relu"), DEL_EINVAL, "'name' 'h' is already a head");
    ck_assert_del_err(del_model_add_head(m, "x", "relu; bogus 3"), DEL_EFORMAT,
                      "del_model_add_head: item 2 'bogus 3': unknown layer 'bogus'");
    ck_assert_del_err(del_model_add_head(m, "x", "flatten; conv2d 2"), DEL_EINVAL,
                      "del_model_add_head: item 2 'conv2d 2': conv2d needs a 4-d input");
    ck_assert_del_err(del_model_add_head(m, "x", "linear 2"), DEL_EINVAL, "item 1 'linear 2'");
    ck_assert_del_err(del_model_add_head(m, "x", "linear"), DEL_EFORMAT, "item 1 'linear': expected a number for OUT");
    ck_assert_del_err(del_model_add_head(m, "x", "input 1 4 4; relu"), DEL_EFORMAT, "a head has no 'input' item");
    ck_assert_del_err(del_model_add_head(m, "x", " ;\n "), DEL_EFORMAT, "empty spec");
    ck_assert_del_err(del_model_replace_head(m, "nope", "relu"), DEL_EINVAL, "'name' must name a head of the model, got 'nope'");
    ck_assert_del_err(del_model_replace_head(m, NULL, "relu"), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_model_replace_head(m, "h", NULL), DEL_EINVAL, "'spec'");
    ck_assert_del_err(del_model_replace_head(m, "h", "flatten; linear 3; conv2d 1"), DEL_EINVAL, "item 3");
    ck_assert_del_err(del_model_remove_head(m, "nope"), DEL_EINVAL, "got 'nope'");
    ck_assert_del_err(del_model_remove_head(NULL, "h"), DEL_EINVAL, "'model'");
    int first = 7, count = 7;
    ck_assert_del_err(del_model_head_layers(m, "nope", &first, &count), DEL_EINVAL, "got 'nope'");
    ck_assert_del_err(del_model_head_layers(m, "h", NULL, &count), DEL_EINVAL, "'first'");
    ck_assert_del_err(del_model_head_layers(m, "h", &first, NULL), DEL_EINVAL, "'count'");
    ck_assert_int_eq(first, 7);
    /* the backbone is complete once a head exists */
    ck_assert_del_err(del_model_add_relu(m), DEL_ESTATE, "del_model_add_relu: the model has heads");
    ck_assert_del_err(del_model_add_conv2d(m, 2, 1, 1, 0, 1), DEL_ESTATE, "before the first head");
    ck_assert_del_err(del_model_split_head(m, "s", -1), DEL_ESTATE, "already has heads");
    ck_assert_int_eq(del_model_num_heads(m), 1);
    ck_assert_int_eq(del_model_num_layers(m), nl);
    ck_assert_int_eq(del_model_num_params(m), np);
    ck_assert_int_eq(del_model_num_heads(NULL), 0);
    ck_assert_int_eq(del_model_backbone_layers(NULL), 0);
    ck_assert_int_eq(del_model_head_index(NULL, "h"), -1);
    ck_assert_int_eq(del_model_head_index(m, NULL), -1);
    ck_assert_ptr_null(del_model_head_name(NULL, 0));
    /* a model without heads */
    del_model *plain = NULL;
    ck_assert_del_ok(del_model_from_spec(&plain, "input 1 2 2; flatten; linear 2"));
    ck_assert_del_err(del_model_remove_head(plain, "h"), DEL_EINVAL, "(the model has no heads)");
    ck_assert_del_err(del_model_split_head(plain, "h", 2), DEL_EINVAL, "'first_layer' must be a layer index in 0..1 (or -2..-1 from the end), got 2");
    ck_assert_del_err(del_model_split_head(plain, "h", -3), DEL_EINVAL, "got -3");
    ck_assert_del_err(del_model_split_head(plain, "h h", 1), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_model_split_head(NULL, "h", 1), DEL_EINVAL, "'model'");
    ck_assert_int_eq(del_model_num_heads(plain), 0);
    del_model *empty = NULL;
    ck_assert_del_ok(del_model_new(&empty, 1, 2, 2));
    ck_assert_del_err(del_model_split_head(empty, "h", 0), DEL_EINVAL, "has no layers");
    del_model_free(empty);
    del_model_free(plain);
    del_model_free(m);
}
END_TEST

START_TEST(test_backward_heads_errors)
{
    del_model *m = build(SMOOTH_BACKBONE, smooth_heads);
    del_tensor *x = random_input(2, 2, 4, 4);
    const char *names[] = {"a", "b", "a"};
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *wa = weights_like(m, "a"), *wb = weights_like(m, "b");
    const del_tensor *grads[] = {wa, wb, wa};
    const del_tensor *swapped[] = {wb, wa};
    ck_assert_del_err(del_model_backward_heads(NULL, 1, names, grads), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_backward_heads(m, 0, names, grads), DEL_EINVAL, "'count' must be >= 1, got 0");
    ck_assert_del_err(del_model_backward_heads(m, 1, NULL, grads), DEL_EINVAL, "'names'");
    ck_assert_del_err(del_model_backward_heads(m, 1, names, NULL), DEL_EINVAL, "'grads'");
    ck_assert_del_err(del_model_backward_heads(m, 3, names, grads), DEL_EINVAL, "'names[2]': head 'a' is listed twice");
    const char *unknown[] = {"a", "zz"}, *null_name[] = {NULL};
    ck_assert_del_err(del_model_backward_heads(m, 2, unknown, grads), DEL_EINVAL, "'names[1]' must name a head of the model, got 'zz'");
    ck_assert_del_err(del_model_backward_heads(m, 1, null_name, grads), DEL_EINVAL, "'names[0]'");
    const del_tensor *null_grad[] = {wa, NULL};
    ck_assert_del_err(del_model_backward_heads(m, 2, names, null_grad), DEL_EINVAL, "'grads[1]'");
    ck_assert_del_err(del_model_backward_heads(m, 2, names, swapped), DEL_EINVAL,
                      "'grads[0]' must be f32 [2, 3] like the output of head 'a', got [2, 2]");
    /* nothing was computed by the failures, and a good call still works */
    ck_assert_ptr_null(del_model_input_grad(m));
    ck_assert_del_ok(del_model_backward_heads(m, 2, names, grads));
    ck_assert_ptr_nonnull(del_model_input_grad(m));
    ck_assert_del_err(del_model_backward(m, wb), DEL_EINVAL, "like the output");
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_err(del_model_backward_heads(m, 1, names, grads), DEL_ESTATE, "evaluation mode");
    ck_assert_del_ok(del_model_add_head(m, "d", "gap; linear 2"));
    ck_assert_del_err(del_model_backward_heads(m, 1, names, grads), DEL_ESTATE, "no forward");
    del_model *plain = NULL;
    ck_assert_del_ok(del_model_from_spec(&plain, SMOOTH_BACKBONE "; flatten; linear 3"));
    ck_assert_del_ok(del_model_forward(plain, x));
    ck_assert_del_err(del_model_backward_heads(plain, 1, names, grads), DEL_EINVAL, "'model' has no heads");
    del_model_free(plain);
    del_tensor_free(wa);
    del_tensor_free(wb);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

/* An optimizer made before a head change refuses to step when the
 * parameter count changed; a new one trains the new head. */
START_TEST(test_optimizer_after_replace_head)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 4"));
    ck_assert_del_ok(del_model_add_head(m, "h", "linear 3"));
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.9f, 0.0f, 0));
    uint64_t version = m->groups_version;
    ck_assert_del_ok(del_model_replace_head(m, "h", "linear 2"));
    ck_assert_uint_gt(m->groups_version, version);
    ck_assert_del_err(del_optimizer_step(opt), DEL_ESTATE, "make a new optimizer");
    del_optimizer_free(opt);
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.0f, 0.0f, 0));
    del_tensor *x = random_input(2, 1, 2, 2);
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *w = weights_like(m, "h");
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_del_ok(del_model_backward(m, w));
    int64_t np = del_model_num_params(m);
    ck_assert_int_eq(np, 20 + 10);
    float *p0 = copy_floats(del_model_params(m), np), *g = copy_floats(del_model_grads(m), np);
    ck_assert_del_ok(del_optimizer_step(opt));
    for (int64_t i = 0; i < np; i++)
        ck_assert_float_eq_tol(del_model_params(m)[i], p0[i] - 0.1f * g[i], 1e-6f);
    free(p0);
    free(g);
    del_tensor_free(w);
    del_tensor_free(x);
    del_optimizer_free(opt);
    /* The same parameter count is not enough: the optimizer's state
     * (momentum here) belongs to the old head. A split moves nothing. */
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_model_replace_head(m, "h", "linear 2"));
    ck_assert_int_eq(del_model_num_params(m), np);
    ck_assert_del_err(del_optimizer_step(opt), DEL_ESTATE, "removed or replaced");
    del_optimizer_free(opt);
    ck_assert_del_ok(del_model_remove_head(m, "h"));
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_model_split_head(m, "tail", -1));
    ck_assert_del_ok(del_optimizer_step(opt));
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

/* m is conv + batchnorm, a head "r" of relu, flatten, linear 3 and a head
 * "lin" of flatten, linear 2: "r" computes what the plain model does,
 * "lin" sees the batchnorm's output without the relu. */
static void check_relu_stays_in_its_head(del_model *m)
{
    const char *spec = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3";
    del_model *r = flat_twin(m, "r", spec);
    del_model *lin = flat_twin(m, "lin", "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; flatten; linear 2");
    del_tensor *x = random_input(2, 1, 4, 4);
    for (int training = 1; training >= 0; training--) {
        ck_assert_del_ok(del_model_set_training(m, training));
        ck_assert_del_ok(del_model_set_training(r, training));
        ck_assert_del_ok(del_model_set_training(lin, training));
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_model_forward(r, x));
        ck_assert_del_ok(del_model_forward(lin, x));
        assert_close(del_tensor_data(del_model_head_output(m, "r")), del_tensor_data(del_model_output(r)), 6, 1e-6f);
        assert_close(del_tensor_data(del_model_head_output(m, "lin")), del_tensor_data(del_model_output(lin)), 4,
                     1e-6f);
    }
    del_tensor_free(x);
    del_model_free(lin);
    del_model_free(r);
}

/* Splitting where a relu is fused into the batchnorm below it, or adding
 * a head that starts with a relu after a backbone ending in a batchnorm:
 * the relu stays in the head. */
START_TEST(test_split_or_add_head_keeps_a_relu_out_of_the_backbone)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3"));
    ck_assert_del_ok(del_model_split_head(m, "r", 2));
    ck_assert_int_eq(del_model_backbone_layers(m), 2);
    ck_assert_del_ok(del_model_add_head(m, "lin", "flatten; linear 2"));
    check_relu_stays_in_its_head(m);
    del_model_free(m);
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; conv2d 2 k=3 p=1; batchnorm"));
    ck_assert_del_ok(del_model_add_head(m, "r", "relu; flatten; linear 3"));
    ck_assert_del_ok(del_model_add_head(m, "lin", "flatten; linear 2"));
    check_relu_stays_in_its_head(m);
    del_model_free(m);
}
END_TEST

/* The transfer flow on the fmnist-cnn preset: its classifier becomes a
 * head, is replaced by a 5-class one, the backbone is frozen, and a
 * training step changes the head's parameters only. */
START_TEST(test_preset_classifier_split_replace_and_train_the_head)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    int64_t np10 = del_model_num_params(m);
    int nl = del_model_num_layers(m);
    ck_assert_del_ok(del_model_split_head(m, "fmnist", -1));
    ck_assert_del_ok(del_model_replace_head(m, "fmnist", "linear 5"));
    ck_assert_int_eq(del_model_num_layers(m), nl);
    ck_assert_int_eq(del_model_num_params(m), np10 - (128 * 10 + 10) + (128 * 5 + 5));
    ck_assert_del_ok(del_model_freeze(m, 0, del_model_backbone_layers(m) - 1));
    char summary[4096];
    ck_assert_del_ok(del_model_summary(m, summary, sizeof summary, NULL));
    ck_assert_ptr_nonnull(strstr(summary, "head 'fmnist' (layers 18..18"));
    int64_t np = del_model_num_params(m), head_off = np - (128 * 5 + 5);
    float *before = copy_floats(del_model_params(m), np);
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.05f, 0.9f, 5e-4f, 1));
    del_tensor *x = random_input(4, 1, 28, 28), *grad = NULL;
    int64_t gshape[2] = {4, 5};
    ck_assert_del_ok(del_tensor_new(&grad, DEL_DTYPE_F32, 2, gshape));
    int32_t yv[4] = {0, 1, 4, 2};
    int64_t yshape[1] = {4};
    del_tensor *y = NULL;
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, yshape));
    memcpy(del_tensor_data(y), yv, sizeof yv);
    float loss0 = 0.0f, loss = 0.0f;
    for (int step = 0; step < 5; step++) {
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_loss_cross_entropy(del_model_output(m), y, &loss, grad));
        if (step == 0)
            loss0 = loss;
        ck_assert_del_ok(del_model_backward(m, grad));
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    ck_assert_float_lt(loss, loss0);
    ck_assert_mem_eq(del_model_params(m), before, (size_t)head_off * sizeof(float));
    int changed = 0;
    for (int64_t i = head_off; i < np; i++)
        changed += del_model_params(m)[i] != before[i];
    ck_assert_int_gt(changed, (128 * 5 + 5) / 2);
    free(before);
    del_tensor_free(x);
    del_tensor_free(y);
    del_tensor_free(grad);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

START_TEST(test_replace_head_takes_the_name_del_model_head_name_returns)
{
    /* The name belongs to the head array that the replacement reallocates:
     * it must be read before (ASan saw a use after free). */
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 4; relu; linear 3"));
    ck_assert_del_ok(del_model_split_head(m, "a_head_of_twenty_nine_chars__", -1));
    for (int i = 0; i < 4; i++)
        ck_assert_del_ok(del_model_replace_head(m, del_model_head_name(m, 0), "linear 5"));
    ck_assert_str_eq(del_model_head_name(m, 0), "a_head_of_twenty_nine_chars__");
    ck_assert_del_ok(del_model_add_head(m, "second", "linear 2"));
    ck_assert_del_ok(del_model_replace_head(m, del_model_head_name(m, 1), "linear 6"));
    ck_assert_str_eq(del_model_head_name(m, 1), "second");
    del_model_free(m);
}
END_TEST

static Suite *heads_suite(void)
{
    Suite *s = suite_create("nn_heads");
    TCase *tc = tcase_create("heads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_head_outputs_match_backbone_plus_that_head);
    tcase_add_test(tc, test_replace_head_takes_the_name_del_model_head_name_returns);
    tcase_add_test(tc, test_backward_heads_matches_central_differences_for_subsets);
    tcase_add_test(tc, test_backbone_gradient_is_the_sum_over_heads);
    tcase_add_test(tc, test_frozen_backbone_or_head_keeps_gradients_right);
    tcase_add_test(tc, test_empty_backbone_heads_read_the_input);
    tcase_add_test(tc, test_add_replace_remove_heads);
    tcase_add_test(tc, test_head_errors_leave_the_model_unchanged);
    tcase_add_test(tc, test_backward_heads_errors);
    tcase_add_test(tc, test_optimizer_after_replace_head);
    tcase_add_test(tc, test_split_or_add_head_keeps_a_relu_out_of_the_backbone);
    tcase_add_test(tc, test_preset_classifier_split_replace_and_train_the_head);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(heads_suite());
}
