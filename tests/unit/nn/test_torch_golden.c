/* One forward and backward of a tiny conv net against PyTorch (golden file
 * written by tests/data/nn/gen_torch_golden.py): conventions such as the
 * weight layout, padding, the batchnorm variance and running-statistics
 * update, and maxpool windows must all agree. Values differ only by f32
 * summation order, hence a tolerance of 1e-4 (absolute + relative). */
#include <math.h>

#include "testutil.h"

#define GOLDEN_MAX_ARRAYS 8

typedef struct golden {
    char spec[512];
    char names[GOLDEN_MAX_ARRAYS][32];
    float *values[GOLDEN_MAX_ARRAYS];
    int counts[GOLDEN_MAX_ARRAYS];
    int n;
} golden;

static void golden_load(golden *g, const char *file)
{
    const char *dir = getenv("DEL_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/nn/%s", dir ? dir : "tests/data", file);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s (set DEL_TEST_DATA to tests/data)", path);
    memset(g, 0, sizeof *g);
    char line[512];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_int_eq(strncmp(line, "spec ", 5), 0);
    line[strcspn(line, "\n")] = '\0';
    snprintf(g->spec, sizeof g->spec, "%s", line + 5);
    while (g->n < GOLDEN_MAX_ARRAYS && fscanf(f, "%31s %d", g->names[g->n], &g->counts[g->n]) == 2) {
        int c = g->counts[g->n];
        ck_assert_int_gt(c, 0);
        g->values[g->n] = malloc((size_t)c * sizeof(float));
        for (int i = 0; i < c; i++)
            ck_assert_int_eq(fscanf(f, "%f", &g->values[g->n][i]), 1);
        g->n++;
    }
    fclose(f);
}

static const float *golden_get(const golden *g, const char *name, int count)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->names[i], name) == 0) {
            ck_assert_int_eq(g->counts[i], count);
            return g->values[i];
        }
    ck_abort_msg("golden file lacks '%s'", name);
    return NULL;
}

static void golden_free(golden *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->values[i]);
}

static void assert_close(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-4f + 1e-4f * fabsf(want[i]),
                      "%s[%d]: libdel %.7g, PyTorch %.7g", what, i, (double)got[i], (double)want[i]);
}

START_TEST(test_tiny_convnet_matches_pytorch)
{
    golden g;
    golden_load(&g, "torch_convnet.txt");
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, g.spec));
    int np = (int)del_model_num_params(m);
    ck_assert_int_eq(np, 256);
    memcpy(del_model_params(m), golden_get(&g, "params", np), (size_t)np * sizeof(float));

    int64_t xshape[4] = {3, 2, 6, 6}, yshape[2] = {3, 5};
    del_tensor *x = NULL, *w = NULL;
    ck_assert_del_ok(del_tensor_wrap(&x, DEL_DTYPE_F32, 4, xshape, (void *)golden_get(&g, "input", 216)));
    ck_assert_del_ok(del_tensor_wrap(&w, DEL_DTYPE_F32, 2, yshape, (void *)golden_get(&g, "grad_output", 15)));

    ck_assert_del_ok(del_model_forward(m, x));
    assert_close(del_tensor_data(del_model_output(m)), golden_get(&g, "output_train", 15), 15, "output_train");
    ck_assert_del_ok(del_model_backward(m, w));
    assert_close(del_model_grads(m), golden_get(&g, "grads", np), np, "grads");
    assert_close(del_tensor_data(del_model_input_grad(m)), golden_get(&g, "input_grad", 216), 216, "input_grad");

    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    assert_close(del_tensor_data(del_model_output(m)), golden_get(&g, "output_eval", 15), 15, "output_eval");

    del_tensor_free(x);
    del_tensor_free(w);
    del_model_free(m);
    golden_free(&g);
}
END_TEST

static Suite *torch_golden_suite(void)
{
    Suite *s = suite_create("nn_torch_golden");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_tiny_convnet_matches_pytorch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(torch_golden_suite());
}
