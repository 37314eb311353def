/* SGD and AdamW (torch.optim semantics), learning-rate schedules, warm-up
 * and gradient clipping, against values worked by hand and runs of PyTorch
 * (tests/data/nn/optim_golden.txt, written by gen_optim_golden.py). */
#include <math.h>

#include "testutil.h"
#include "golden.h"

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

/* ---- AdamW, worked by hand (lr 0.1, betas 0.9/0.999, eps 1e-8) ---- */

/* With a constant gradient m_hat = g and v_hat = g^2 at every step, so each
 * step moves p by lr (up to eps): 1 -> 0.9 -> 0.8. With weight decay 0.01
 * p is first scaled by 1 - 0.001: 0.999 - 0.1 = 0.899, then
 * 0.899 * 0.999 - 0.1 = 0.798101. */
START_TEST(test_adamw_constant_gradient_moves_by_lr)
{
    for (int with_wd = 0; with_wd < 2; with_wd++) {
        del_model *m = two_param_model();
        del_optimizer *o = NULL;
        ck_assert_del_ok(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, with_wd ? 0.01f : 0.0f));
        ck_assert_del_ok(del_optimizer_step(o));
        float want1 = with_wd ? 0.899f : 0.9f, want2 = with_wd ? 0.798101f : 0.8f;
        ck_assert_float_eq_tol(del_model_params(m)[1], want1, 1e-6f);
        ck_assert_float_eq(del_model_grads(m)[0], 0.5f);
        ck_assert_del_ok(del_optimizer_step(o));
        ck_assert_float_eq_tol(del_model_params(m)[0], want2, 1e-6f);
        ck_assert_int_eq(del_optimizer_steps(o), 2);
        del_optimizer_free(o);
        del_model_free(m);
    }
}
END_TEST

/* p0 = 1 with g = 0.5 then -0.25; p1 = -2 with g = 0 then 1.
 * p0, step 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25, p = 0.9.
 *     step 2: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 =
 *     0.00031225; m_hat = 0.02 / 0.19 = 0.105263158, v_hat = 0.00031225 /
 *     0.001999 = 0.156203102, sqrt = 0.395225381; p = 0.9 - 0.1 * 0.266337
 *     = 0.8733663.
 * p1, step 1: m = v = 0, the update is 0 / (0 + eps) = 0, p = -2.
 *     step 2: m = 0.1, v = 0.001, m_hat = 0.526315789, v_hat = 0.500250125,
 *     sqrt = 0.707283766; p = -2 - 0.1 * 0.744137 = -2.0744137.
 * Weight decay 0.1 scales p by 0.99 first at each step: p0 = 0.99 - 0.1 =
 * 0.89, then 0.8811 - 0.0266337 = 0.8544663; p1 = -1.98, then -1.9602 -
 * 0.0744137 = -2.0346137. */
START_TEST(test_adamw_bias_correction_with_varying_gradient)
{
    static const float want[2][2][2] = {{{0.9f, -2.0f}, {0.8733663f, -2.0744137f}},
                                         {{0.89f, -1.98f}, {0.8544663f, -2.0346137f}}};
    for (int with_wd = 0; with_wd < 2; with_wd++) {
        del_model *m = two_param_model();
        float *p = del_model_params(m), *g = del_model_grads(m);
        p[1] = -2.0f;
        del_optimizer *o = NULL;
        ck_assert_del_ok(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, with_wd ? 0.1f : 0.0f));
        g[0] = 0.5f;
        g[1] = 0.0f;
        ck_assert_del_ok(del_optimizer_step(o));
        ck_assert_float_eq_tol(p[0], want[with_wd][0][0], 1e-6f);
        ck_assert_float_eq_tol(p[1], want[with_wd][0][1], 1e-6f);
        g[0] = -0.25f;
        g[1] = 1.0f;
        ck_assert_del_ok(del_optimizer_step(o));
        ck_assert_float_eq_tol(p[0], want[with_wd][1][0], 1e-6f);
        ck_assert_float_eq_tol(p[1], want[with_wd][1][1], 1e-6f);
        del_optimizer_free(o);
        del_model_free(m);
    }
}
END_TEST

/* ---- schedules ---- */

/* base 0.1, step_size 3, gamma 0.5: 0.1 for t = 0..2, 0.05 for 3..5,
 * 0.025 for 6..8, 0.0125 at 9 - it keeps decaying. */
START_TEST(test_step_schedule_multiplies_by_gamma_every_step_size)
{
    static const float want[10] = {0.1f, 0.1f, 0.1f, 0.05f, 0.05f, 0.05f, 0.025f, 0.025f, 0.025f, 0.0125f};
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_step_schedule(o, 3, 0.5f));
    for (int t = 0; t < 10; t++) {
        ck_assert_float_eq_tol(del_optimizer_lr(o), want[t], 1e-9f);
        ck_assert_del_ok(del_optimizer_step(o));
    }
    /* the step schedule replaces cosine, and set_schedule replaces it back */
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_CONSTANT, 5, 0.0f));
    ck_assert_float_eq(del_optimizer_lr(o), 0.1f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* base 0.08, warm-up 4, cosine over total 8 to 0: warm-up 0.02, 0.04,
 * 0.06, 0.08; then cosine over the remaining 4 steps: t' = 0..3 gives
 * 0.04 (1 + cos(pi t' / 4)) = 0.08, 0.0682843, 0.04, 0.0117157; then 0. */
START_TEST(test_warmup_ramps_linearly_then_runs_schedule_over_rest)
{
    static const float want[9] = {0.02f, 0.04f, 0.06f, 0.08f, 0.08f, 0.0682843f, 0.04f, 0.0117157f, 0.0f};
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.08f, 0.9f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 8, 0.0f));
    ck_assert_del_ok(del_optimizer_set_warmup(o, 4));
    for (int t = 0; t < 9; t++) {
        ck_assert_msg(fabsf(del_optimizer_lr(o) - want[t]) < 1e-7f, "step %d: lr %.9g, want %.9g", t,
                      (double)del_optimizer_lr(o), (double)want[t]);
        ck_assert_del_ok(del_optimizer_step(o));
    }
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* The first step of a warm-up of 2 uses lr 0.05 instead of 0.1:
 * p = 1 - 0.05 * 0.5 = 0.975, then 0.975 - 0.1 * 0.5 = 0.925. Warm-up 0
 * turns it off again. */
START_TEST(test_warmup_scales_the_update_and_zero_turns_it_off)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_warmup(o, 2));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.975f, 1e-7f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.925f, 1e-7f);
    ck_assert_float_eq(del_optimizer_lr(o), 0.1f);
    ck_assert_del_ok(del_optimizer_set_warmup(o, 5));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.06f, 1e-8f); /* step 2 of 5: 0.1 * 3 / 5 */
    ck_assert_del_ok(del_optimizer_set_warmup(o, 0));
    ck_assert_float_eq(del_optimizer_lr(o), 0.1f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* Warm-up 5 with a cosine schedule of only 3 steps: nothing is left after
 * the warm-up, so the lr drops from the full 0.1 to final_lr 0.01. */
START_TEST(test_warmup_longer_than_schedule_then_final_lr)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 3, 0.01f));
    ck_assert_del_ok(del_optimizer_set_warmup(o, 5));
    for (int t = 0; t < 4; t++)
        ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_optimizer_lr(o), 0.1f, 1e-9f);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq(del_optimizer_lr(o), 0.01f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* ---- gradient clipping ---- */

/* grads (3, 4): norm 5 > 1, factor 1 / (5 + 1e-6) = 0.19999996; SGD lr 1
 * from p = 1: p = 1 - 0.6 = 0.4 and 1 - 0.8 = 0.2. The model's gradients
 * stay (3, 4). */
START_TEST(test_clip_scales_gradients_above_max_norm)
{
    del_model *m = two_param_model();
    float *g = del_model_grads(m);
    g[0] = 3.0f;
    g[1] = 4.0f;
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 1.0f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 1.0f));
    ck_assert_double_eq(del_optimizer_grad_norm(o), 0.0);
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_double_eq_tol(del_optimizer_grad_norm(o), 5.0, 1e-12);
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.4f, 1e-6f);
    ck_assert_float_eq_tol(del_model_params(m)[1], 0.2f, 1e-6f);
    ck_assert_float_eq(g[0], 3.0f);
    ck_assert_float_eq(g[1], 4.0f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* grads (0.3, 0.4): norm 0.5 <= 1, nothing changes: p = 0.7, 0.6. */
START_TEST(test_clip_leaves_gradients_below_max_norm)
{
    del_model *m = two_param_model();
    float *g = del_model_grads(m);
    g[0] = 0.3f;
    g[1] = 0.4f;
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 1.0f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 1.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_double_eq_tol(del_optimizer_grad_norm(o), 0.5, 1e-7);
    ck_assert_float_eq(del_model_params(m)[0], 1.0f - 0.3f);
    ck_assert_float_eq(del_model_params(m)[1], 1.0f - 0.4f);
    /* max_norm 0 turns clipping (and the norm) off */
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 0.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_double_eq(del_optimizer_grad_norm(o), 0.0);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* Clipping comes before weight decay, as clip_grad_norm_ before
 * optimizer.step(): grads (3, 4), max 1, wd 0.1, lr 1, p = 1:
 * g = 0.6 + 0.1 = 0.7 and 0.8 + 0.1 = 0.9, p = 0.3 and 0.1. */
START_TEST(test_clip_applies_before_weight_decay)
{
    del_model *m = two_param_model();
    float *g = del_model_grads(m);
    g[0] = 3.0f;
    g[1] = 4.0f;
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 1.0f, 0.0f, 0.1f, 0));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 1.0f));
    ck_assert_del_ok(del_optimizer_step(o));
    ck_assert_float_eq_tol(del_model_params(m)[0], 0.3f, 1e-6f);
    ck_assert_float_eq_tol(del_model_params(m)[1], 0.1f, 1e-6f);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* ---- against PyTorch ---- */

#define GOLDEN_STEPS 8
#define GOLDEN_N 8

static const double *golden_get(const golden *gd, const char *name, int count)
{
    for (int i = 0; i < gd->n; i++)
        if (strcmp(gd->names[i], name) == 0) {
            ck_assert_int_eq(gd->counts[i], count);
            return gd->values[i];
        }
    ck_abort_msg("golden file lacks '%s'", name);
    return NULL;
}

/* Replays run `name` of the golden file through opt on m (8 parameters),
 * comparing the lr, the measured norm and the parameters after each step.
 * f32 versus torch's f32 with its own rounding of the scalars: 1e-5
 * relative. */
static void replay_golden(const golden *gd, const char *name, del_model *m, del_optimizer *o)
{
    char key[64];
    snprintf(key, sizeof key, "%s_grads", name);
    const double *grads = golden_get(gd, key, GOLDEN_STEPS * GOLDEN_N);
    snprintf(key, sizeof key, "%s_lr", name);
    const double *lrs = golden_get(gd, key, GOLDEN_STEPS);
    snprintf(key, sizeof key, "%s_norm", name);
    const double *norms = golden_get(gd, key, GOLDEN_STEPS);
    snprintf(key, sizeof key, "%s_params", name);
    const double *params = golden_get(gd, key, GOLDEN_STEPS * GOLDEN_N);
    float *p = del_model_params(m), *g = del_model_grads(m);
    for (int s = 0; s < GOLDEN_STEPS; s++) {
        for (int i = 0; i < GOLDEN_N; i++)
            g[i] = (float)grads[s * GOLDEN_N + i];
        ck_assert_msg(fabs(del_optimizer_lr(o) - lrs[s]) <= 1e-6 * lrs[s], "%s step %d: lr %.9g, torch %.9g", name,
                      s, (double)del_optimizer_lr(o), lrs[s]);
        ck_assert_del_ok(del_optimizer_step(o));
        ck_assert_msg(fabs(del_optimizer_grad_norm(o) - norms[s]) <= 1e-6 * norms[s],
                      "%s step %d: norm %.9g, torch %.9g", name, s, del_optimizer_grad_norm(o), norms[s]);
        for (int i = 0; i < GOLDEN_N; i++) {
            double want = params[s * GOLDEN_N + i];
            ck_assert_msg(fabs(p[i] - want) <= 1e-5 * (1.0 + fabs(want)), "%s step %d param %d: %.9g, torch %.9g",
                          name, s, i, (double)p[i], want);
        }
    }
}

/* 8 parameters (linear 3 -> 2 with bias) set to the golden initial values. */
static del_model *golden_model(const golden *gd)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 3));
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_ok(del_model_add_linear(m, 2, 1));
    ck_assert_int_eq(del_model_num_params(m), GOLDEN_N);
    const double *init = golden_get(gd, "init", GOLDEN_N);
    for (int i = 0; i < GOLDEN_N; i++)
        del_model_params(m)[i] = (float)init[i];
    return m;
}

START_TEST(test_adamw_matches_torch_with_warmup_cosine_and_clip)
{
    golden gd;
    golden_load(&gd, "optim_golden.txt");
    del_model *m = golden_model(&gd);
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_adamw(&o, m, 0.01f, 0.8f, 0.99f, 1e-6f, 0.05f));
    ck_assert_del_ok(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 8, 0.001f));
    ck_assert_del_ok(del_optimizer_set_warmup(o, 3));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 1.0f));
    replay_golden(&gd, "adamw", m, o);
    del_optimizer_free(o);
    del_model_free(m);
    golden_free(&gd);
}
END_TEST

START_TEST(test_sgd_matches_torch_with_warmup_step_schedule_and_clip)
{
    golden gd;
    golden_load(&gd, "optim_golden.txt");
    del_model *m = golden_model(&gd);
    del_optimizer *o = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.9f, 5e-4f, 1));
    ck_assert_del_ok(del_optimizer_set_step_schedule(o, 3, 0.5f));
    ck_assert_del_ok(del_optimizer_set_warmup(o, 2));
    ck_assert_del_ok(del_optimizer_set_clip_norm(o, 0.5f));
    replay_golden(&gd, "sgd", m, o);
    del_optimizer_free(o);
    del_model_free(m);
    golden_free(&gd);
}
END_TEST

START_TEST(test_new_optimizer_calls_reject_bad_arguments)
{
    del_model *m = two_param_model(), *empty = NULL;
    ck_assert_del_ok(del_model_new(&empty, 1, 2, 2));
    ck_assert_del_ok(del_model_add_relu(empty));
    del_optimizer *o = NULL;
    ck_assert_del_err(del_optimizer_new_adamw(NULL, m, 0.1f, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, NULL, 0.1f, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, empty, 0.1f, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL,
                      "no parameters");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.0f, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, NAN, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'lr'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 1.0f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'beta1'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, -0.1f, 0.999f, 1e-8f, 0), DEL_EINVAL, "'beta1'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 1.0f, 1e-8f, 0), DEL_EINVAL, "'beta2'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, NAN, 1e-8f, 0), DEL_EINVAL, "'beta2'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 0.0f, 0), DEL_EINVAL, "'eps'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, INFINITY, 0), DEL_EINVAL, "'eps'");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, -0.01f), DEL_EINVAL,
                      "'weight_decay'");
    ck_assert_ptr_null(o);

    ck_assert_del_ok(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f));
    ck_assert_del_err(del_optimizer_set_schedule(o, DEL_SCHEDULE_STEP, 10, 0), DEL_EINVAL,
                      "del_optimizer_set_step_schedule");
    ck_assert_del_err(del_optimizer_set_step_schedule(NULL, 3, 0.5f), DEL_EINVAL, "'opt'");
    ck_assert_del_err(del_optimizer_set_step_schedule(o, 0, 0.5f), DEL_EINVAL, "'step_size'");
    ck_assert_del_err(del_optimizer_set_step_schedule(o, 3, 0.0f), DEL_EINVAL, "'gamma'");
    ck_assert_del_err(del_optimizer_set_step_schedule(o, 3, NAN), DEL_EINVAL, "'gamma'");
    ck_assert_del_err(del_optimizer_set_warmup(NULL, 3), DEL_EINVAL, "'opt'");
    ck_assert_del_err(del_optimizer_set_warmup(o, -1), DEL_EINVAL, "'warmup_steps'");
    ck_assert_del_err(del_optimizer_set_clip_norm(NULL, 1.0f), DEL_EINVAL, "'opt'");
    ck_assert_del_err(del_optimizer_set_clip_norm(o, -1.0f), DEL_EINVAL, "'max_norm'");
    ck_assert_del_err(del_optimizer_set_clip_norm(o, INFINITY), DEL_EINVAL, "'max_norm'");
    ck_assert_double_eq(del_optimizer_grad_norm(NULL), 0.0);
    /* rejected settings leave the optimizer as it was: constant lr 0.1 */
    ck_assert_float_eq(del_optimizer_lr(o), 0.1f);

    ck_assert_del_ok(del_model_add_linear(m, 3, 1));
    ck_assert_del_err(del_optimizer_step(o), DEL_ESTATE, "parameters");
    del_optimizer_free(o);
    del_model_free(m);
    del_model_free(empty);
}
END_TEST

/* A check that refuses inf or NaN says "finite": "'lr' must be > 0, got
 * inf" would read as a contradiction. */
START_TEST(test_float_argument_messages_say_finite)
{
    del_model *m = two_param_model();
    del_optimizer *o = NULL;
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, INFINITY, 0, 0, 0), DEL_EINVAL,
                      "del_optimizer_new_sgd: 'lr' must be a finite value > 0, got inf");
    ck_assert_del_err(del_optimizer_new_sgd(&o, m, 0.1f, 0, INFINITY, 0), DEL_EINVAL,
                      "del_optimizer_new_sgd: 'weight_decay' must be a finite value >= 0, got inf");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, INFINITY, 0.9f, 0.999f, 1e-8f, 0), DEL_EINVAL,
                      "del_optimizer_new_adamw: 'lr' must be a finite value > 0, got inf");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, INFINITY, 0), DEL_EINVAL,
                      "del_optimizer_new_adamw: 'eps' must be a finite value > 0, got inf");
    ck_assert_del_err(del_optimizer_new_adamw(&o, m, 0.1f, 0.9f, 0.999f, 1e-8f, NAN), DEL_EINVAL,
                      "del_optimizer_new_adamw: 'weight_decay' must be a finite value >= 0, got nan");
    ck_assert_ptr_null(o);
    ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0, 0, 0));
    ck_assert_del_err(del_optimizer_set_schedule(o, DEL_SCHEDULE_COSINE, 10, INFINITY), DEL_EINVAL,
                      "del_optimizer_set_schedule: 'final_lr' must be a finite value >= 0, got inf");
    ck_assert_del_err(del_optimizer_set_step_schedule(o, 3, INFINITY), DEL_EINVAL,
                      "del_optimizer_set_step_schedule: 'gamma' must be a finite value > 0, got inf");
    ck_assert_del_err(del_optimizer_set_clip_norm(o, INFINITY), DEL_EINVAL,
                      "del_optimizer_set_clip_norm: 'max_norm' must be a finite value >= 0 (0 = off), got inf");
    ck_assert_del_err(del_model_add_batchnorm(m, INFINITY, 0.1f), DEL_EINVAL,
                      "del_model_add_batchnorm: 'eps' must be a finite value > 0, got inf");
    del_tensor *logits = NULL, *probs = NULL;
    ck_assert_del_ok(del_tensor_new(&logits, DEL_DTYPE_F32, 2, (const int64_t[]){1, 2}));
    ck_assert_del_ok(del_tensor_new(&probs, DEL_DTYPE_F32, 2, (const int64_t[]){1, 2}));
    ck_assert_del_err(del_softmax(logits, INFINITY, probs), DEL_EINVAL,
                      "del_softmax: 'temperature' must be a finite value > 0, got inf");
    del_tensor_free(logits);
    del_tensor_free(probs);
    del_optimizer_free(o);
    del_model_free(m);
}
END_TEST

/* A step after the model changed says what changed: layers removed or
 * replaced (a head), whatever the parameter count is now, or layers with
 * parameters appended. */
START_TEST(test_step_after_model_change_says_what_changed)
{
    static const char *const changes[] = {"remove", "replace same size", "replace other size", "add layer"};
    for (int k = 0; k < 4; k++) {
        del_model *m = NULL;
        ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 4"));
        ck_assert_del_ok(del_model_add_head(m, "h", "linear 3"));
        del_optimizer *o = NULL;
        ck_assert_del_ok(del_optimizer_new_sgd(&o, m, 0.1f, 0.9f, 0.0f, 0));
        ck_assert_del_ok(del_optimizer_step(o));
        const char *want;
        if (k == 0) {
            ck_assert_del_ok(del_model_remove_head(m, "h"));
            want = "the model's layers were removed or replaced since the optimizer was made";
        } else if (k == 1) {
            ck_assert_del_ok(del_model_replace_head(m, "h", "linear 3"));
            want = "the model's layers were removed or replaced since the optimizer was made";
        } else if (k == 2) {
            ck_assert_del_ok(del_model_replace_head(m, "h", "linear 2"));
            want = "the model's layers were removed or replaced since the optimizer was made";
        } else {
            ck_assert_del_ok(del_model_add_head(m, "g", "linear 2"));
            want = "layers with parameters were added to the model since the optimizer was made";
        }
        float p0 = del_model_params(m)[0];
        del_status st = del_optimizer_step(o);
        ck_assert_msg(st == DEL_ESTATE, "%s: status %d", changes[k], (int)st);
        const char *msg = del_last_error();
        ck_assert_msg(strncmp(msg, "del_optimizer_step: ", 20) == 0, "%s: %s", changes[k], msg);
        ck_assert_msg(strstr(msg, want) != NULL, "%s: '%s' lacks '%s'", changes[k], msg, want);
        ck_assert_msg(strstr(msg, "make a new optimizer") != NULL, "%s: %s", changes[k], msg);
        ck_assert_msg(k == 3 || strstr(msg, "added") == NULL, "%s: %s", changes[k], msg);
        ck_assert_float_eq(del_model_params(m)[0], p0);
        del_optimizer_free(o);
        del_model_free(m);
    }
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
    tcase_add_test(tc, test_adamw_constant_gradient_moves_by_lr);
    tcase_add_test(tc, test_adamw_bias_correction_with_varying_gradient);
    tcase_add_test(tc, test_step_schedule_multiplies_by_gamma_every_step_size);
    tcase_add_test(tc, test_warmup_ramps_linearly_then_runs_schedule_over_rest);
    tcase_add_test(tc, test_warmup_scales_the_update_and_zero_turns_it_off);
    tcase_add_test(tc, test_warmup_longer_than_schedule_then_final_lr);
    tcase_add_test(tc, test_clip_scales_gradients_above_max_norm);
    tcase_add_test(tc, test_clip_leaves_gradients_below_max_norm);
    tcase_add_test(tc, test_clip_applies_before_weight_decay);
    tcase_add_test(tc, test_adamw_matches_torch_with_warmup_cosine_and_clip);
    tcase_add_test(tc, test_sgd_matches_torch_with_warmup_step_schedule_and_clip);
    tcase_add_test(tc, test_new_optimizer_calls_reject_bad_arguments);
    tcase_add_test(tc, test_float_argument_messages_say_finite);
    tcase_add_test(tc, test_step_after_model_change_says_what_changed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(optim_suite());
}
