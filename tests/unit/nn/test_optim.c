/* SGD (torch.optim.SGD semantics) and learning-rate schedules, against
 * values worked by hand. */
#include <math.h>

#include "testutil.h"

/* A model with two parameters (linear 1 -> 1 with bias), p = 1, grad = 0.5. */
static del_model *two_param_model(void)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 1));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, 1, 1));
    ck_assert_int_eq(del_model_num_params(m), 2);
    for (int i = 0; i < 2; i++) {
        del_model_params(m)[i] = 1.0f;
        del_model_grads(m)[i] = 0.5f;
    }
    return m;
}

static void check_two_steps(float momentum, float wd, int nesterov, float want1, float want2)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, momentum, wd, nesterov));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], want1, 1e-6f);
    ck_assert_float_eq_tol(del_model_params(m)[1], want1, 1e-6f);
    /* the step leaves gradients alone */
    ck_assert_float_eq(del_model_grads(m)[0], 0.5f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], want2, 1e-6f);
    ck_assert_int_eq(del_optimizer_steps(o), 2);
    del_optimizer_free(o);
    del_model_free(m);
}

/* lr 0.1, g 0.5: p = 1 - 0.05 = 0.95, then p = 0.95 - 0.05 = 0.9. */
START_TEST(test_sgd_plain_step)
{
    check_two_steps(0.0f, 0.0f, 0, 0.95f, 0.9f);
}
END_TEST

/* v1 = 0.5, p = 0.95; v2 = 0.9*0.5 + 0.5 = 0.95, p = 0.95 - 0.095 = 0.855. */
START_TEST(test_sgd_momentum_starts_buffer_at_gradient)
{
    check_two_steps(0.9f, 0.0f, 0, 0.95f, 0.855f);
}
END_TEST

/* v1 = 0.5, d = 0.5 + 0.45 = 0.95, p = 0.905;
 * v2 = 0.95, d = 0.5 + 0.855 = 1.355, p = 0.905 - 0.1355 = 0.7695. */
START_TEST(test_sgd_nesterov)
{
    check_two_steps(0.9f, 0.0f, 1, 0.905f, 0.7695f);
}
END_TEST

/* g1 = 0.5 + 0.01*1 = 0.51, p = 0.949; g2 = 0.5 + 0.00949 = 0.50949, p = 0.898051. */
START_TEST(test_sgd_weight_decay)
{
    check_two_steps(0.0f, 0.01f, 0, 0.949f, 0.898051f);
}
END_TEST

/* wd 0.1, momentum 0.9, Nesterov: g1 = 0.6, v1 = 0.6, d = 1.14, p = 0.886;
 * g2 = 0.5886, v2 = 0.54 + 0.5886 = 1.1286, d = 0.5886 + 1.01574 = 1.60434,
 * p = 0.886 - 0.160434 = 0.725566. */
START_TEST(test_sgd_nesterov_with_weight_decay)
{
    check_two_steps(0.9f, 0.1f, 1, 0.886f, 0.725566f);
}
END_TEST

/* base 0.05, final 0, T 100: lr(t) = 0.025 (1 + cos(pi t / 100)). */
START_TEST(test_cosine_schedule_values)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.05f, 0.9f, 5e-4f, 1));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 100, 0.0f));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.05f, 1e-9f);
    for (int t = 0; t < 25; t++)
        ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.0426777f, 1e-7f); /* 0.025 (1 + 1/sqrt 2) */
    for (int t = 25; t < 50; t++)
        ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.025f, 1e-8f);
    for (int t = 50; t < 100; t++)
        ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq(del_optimizer_lr(o), 0.0f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq(del_optimizer_lr(o), 0.0f);
    ck_assert_int_eq(del_optimizer_steps(o), 101);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* final 0.01: lr(T/2) = 0.01 + 0.04/2 = 0.03, and 0.01 after T. */
START_TEST(test_cosine_schedule_ends_at_final_lr)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.05f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 4, 0.01f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.03f, 1e-8f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.01f, 1e-9f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* T 2, base 0.1, no momentum, g 0.5: p = 1 - 0.05 = 0.95, then lr 0.05:
 * p = 0.95 - 0.025 = 0.925, then lr 0: unchanged. */
START_TEST(test_step_uses_scheduled_lr)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 2, 0.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.95f, 1e-7f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.925f, 1e-7f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.925f, 1e-7f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

START_TEST(test_constant_schedule_keeps_base_lr)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_CONSTANT, 3, 0.0f));
    for (int i = 0; i < 5; i++) {
        ck_assert_float_eq(del_optimizer_lr(o), 0.1f);
        ck_assert_del_ok(del_optimizer_step(o));
    }
    ck_assert_float_eq(del_optimizer_lr(o), 0.1f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

START_TEST(test_optimizer_rejects_bad_arguments)
{
    del_model *m = two_param_model(), *empty = NULL;
    ck_assert_del_ok(del_model_new(&empty, 1, 2, 2));
    ck_assert_del_ok(del_model_add_relu(empty));
    del_optimizer *o = NULL;
    ck_assert_del_err(del_optimizer_new_sgd(NULL, m, 0.1f, 0, 0, 0), DEL_EINVAL, "out");
    ck_assert_del_err(del_optimizer_new_sgd(&o, NULL, 0.1f, 0, 0, 0), DEL_EINVAL, "model");
    ck_assert_del_err(del_optimizer_new_sgd(&o, empty, 0.1f, 0, 0, 0), DEL_EINVAL, "no parameters");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.0f, 0, 0, 0), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.1f, 1.0f, 0, 0), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.1f, -0.1f, 0, 0), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.1f, 0.9f, -1e-4f, 0), DEL_EINVAL, "'weight_decay'");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0, 1), DEL_EINVAL, "'nesterov'");
    ck_assert_ptr_null(o);

    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.9f, 0, 1));
    ck_assert_del_err(del_optimizer_set_schedule(o, (del_schedule)7, 10, 0), DEL_EINVAL, "'kind'");
    ck_assert_del_err(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 0, 0), DEL_EINVAL, "'total_steps'");
    ck_assert_del_err(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 10, -0.1f), DEL_EINVAL, "'final_lr'");
    ck_assert_del_err(del_optimizer_set_schedule(NULL, DEL_SCHEDULE_COSINE, 10, 0), DEL_EINVAL, "'opt'");
    ck_assert_del_err(del_optimizer_step(NULL), DEL_EINVAL, "'opt'");
    ck_assert_float_eq(del_optimizer_lr(NULL), 0.0f);
    ck_assert_int_eq(del_optimizer_steps(NULL), 0);

    /* a layer added afterwards invalidates the optimizer */
    ck_assert_del_ok(del_model_add_linear(m, 3, 1));
    ck_assert_del_err(del_optimizer_step(o), DEL_ESTATE, "parameters");
    del_optimizer_free(o);
    del_optimizer_free(NULL);
    del_model_free(m);
    del_model_free(empty);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("nn_optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sgd_plain_step);
    tcase_add_test(tc, test_sgd_momentum_starts_buffer_at_gradient);
    tcase_add_test(tc, test_sgd_nesterov);
    tcase_add_test(tc, test_sgd_weight_decay);
    tcase_add_test(tc, test_sgd_nesterov_with_weight_decay);
    tcase_add_test(tc, test_cosine_schedule_values);
    tcase_add_test(tc, test_cosine_schedule_ends_at_final_lr);
    tcase_add_test(tc, test_step_uses_scheduled_lr);
    tcase_add_test(tc, test_constant_schedule_keeps_base_lr);
    tcase_add_test(tc, test_optimizer_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(optim_suite());
}
