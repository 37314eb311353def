/* Model files with the layers of format version 2 (avgpool,
 * global_avgpool, residual): round trips with identical logits, the
 * version written, and hand-encoded records, good and damaged. */
#include "model_file_util.h"

static del_model *round_trip_buffer(const del_model *m, uint32_t *version)
{
    void *buf = NULL;
    size_t n = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, &n));
    *version = get_le32((const uint8_t *)buf + 4);
    del_model *back = NULL;
    ck_assert_del_ok(del_model_load_buffer(&back, buf, n));
    del_buffer_free(buf);
    return back;
}

START_TEST(test_round_trip_resnet20_keeps_params_state_and_logits)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "resnet20", 3, 32, 32, 10));
    perturb(m);
    round_trip_file(m);
    del_model_free(m);
}
END_TEST

START_TEST(test_round_trip_keeps_residual_and_pooling_settings)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 2 9 9; residual 3 survival=0.8; residual 5 s=2 survival=0.65; "
                                             "avgpool 2 s=1; gap; linear 4"));
    perturb(m);
    uint32_t version = 0;
    del_model *back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 2);
    assert_same_model(m, back);
    for (int i = 0; i < 2; i++)
        ck_assert(memcmp(&m->layers[i].cfg.survival, &back->layers[i].cfg.survival, sizeof(float)) == 0);
    ck_assert_float_eq(back->layers[1].cfg.survival, 0.65f);
    ck_assert_int_eq(back->layers[1].cfg.stride, 2);
    ck_assert_int_eq(back->layers[2].cfg.kernel, 2);
    ck_assert_int_eq(back->layers[2].cfg.stride, 1);
    del_model_free(back);
    del_model_free(m);
}
END_TEST

/* Models without the new layers are still written as version 1, so older
 * readers keep loading them. */
START_TEST(test_models_without_new_layers_stay_version_1)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    uint32_t version = 0;
    del_model *back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 1);
    del_model_free(back);
    del_model_free(m);
}
END_TEST

/* input 1x2x2, a residual record with the given settings, gap, then the
 * parameters (identity block, one channel: 9 + 2 + 9 + 2) and the state. */
static uint8_t *residual_file(int32_t out, int32_t stride, float survival, size_t *len)
{
    enc e = {.n = 0};
    put_le(&e, 1, 4);
    put_le(&e, 2, 4);
    put_le(&e, 2, 4);
    put_le(&e, 2, 4); /* two layers */
    put_str(&e, "residual");
    put_le(&e, 3, 1);
    put_int_setting(&e, "out", out);
    put_int_setting(&e, "stride", stride);
    put_str(&e, "survival");
    put_le(&e, 2, 1);
    put_f32(&e, survival);
    put_str(&e, "global_avgpool");
    put_le(&e, 0, 1);
    put_le(&e, 22, 8);
    for (int i = 0; i < 22; i++)
        put_f32(&e, 0.0f); /* all weights 0, gamma 0, beta 0: branch 0 */
    put_le(&e, 4, 8);
    const float state[4] = {0.0f, 1.0f, 0.0f, 1.0f};
    for (int i = 0; i < 4; i++)
        put_f32(&e, state[i]);
    return container(&e, 2, len);
}

/* With a zero branch the block is relu(x) and gap the mean:
 * x = (1, -2, 3, 0.5) -> (1 + 0 + 3 + 0.5) / 4 = 1.125. */
START_TEST(test_hand_built_residual_file_loads_and_computes_by_hand)
{
    size_t len = 0;
    uint8_t *file = residual_file(1, 1, 0.5f, &len);
    del_model *m = NULL;
    ck_assert_del_ok(del_model_load_buffer(&m, file, len));
    ck_assert_str_eq(del_model_layer_type(m, 0), "residual");
    ck_assert_float_eq(m->layers[0].cfg.survival, 0.5f);
    int64_t shape[4] = {1, 1, 2, 2};
    const float xv[4] = {1.0f, -2.0f, 3.0f, 0.5f};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    memcpy(del_tensor_data(x), xv, sizeof xv);
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_float_eq(((float *)del_tensor_data(del_model_output(m)))[0], 1.125f);
    del_tensor_free(x);
    del_model_free(m);
    free(file);
}
END_TEST

static void expect_corrupt_residual(int32_t out, int32_t stride, float survival, const char *needle)
{
    size_t len = 0;
    uint8_t *file = residual_file(out, stride, survival, &len);
    del_model *m = NULL;
    ck_assert_del_err(del_model_load_buffer(&m, file, len), DEL_EFORMAT, needle);
    ck_assert_ptr_null(m);
    free(file);
}

START_TEST(test_damaged_residual_records_are_refused)
{
    expect_corrupt_residual(1, 1, 0.0f, "corrupt layer record 0 (residual)");
    expect_corrupt_residual(1, 1, 1.5f, "'survival_prob' must be in (0, 1]");
    expect_corrupt_residual(1, 0, 1.0f, "'stride'");
    expect_corrupt_residual(0, 1, 1.0f, "'out_channels'");
    /* a wider block needs more parameters than the file holds */
    expect_corrupt_residual(64, 1, 1.0f, "do not fit");
}
END_TEST

static Suite *model_file_residual_suite(void)
{
    Suite *s = suite_create("io_model_file_residual");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip_resnet20_keeps_params_state_and_logits);
    tcase_add_test(tc, test_round_trip_keeps_residual_and_pooling_settings);
    tcase_add_test(tc, test_models_without_new_layers_stay_version_1);
    tcase_add_test(tc, test_hand_built_residual_file_loads_and_computes_by_hand);
    tcase_add_test(tc, test_damaged_residual_records_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(model_file_residual_suite());
}
