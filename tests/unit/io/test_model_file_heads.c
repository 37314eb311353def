/* Model files with heads (format version 3, docs/file-format.md): round
 * trips keep every head's name, layers, parameters and outputs; models
 * without heads keep their older version; hand-encoded heads sections,
 * good and damaged. */
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

/* Same heads, and every head's eval-mode output bit for bit. */
static void assert_same_heads(del_model *a, del_model *b)
{
    ck_assert_int_eq(del_model_num_heads(a), del_model_num_heads(b));
    ck_assert_int_eq(del_model_backbone_layers(a), del_model_backbone_layers(b));
    del_tensor *x = pattern_input(a, 2, 9);
    ck_assert_del_ok(del_model_set_training(a, 0));
    ck_assert_del_ok(del_model_set_training(b, 0));
    ck_assert_del_ok(del_model_forward(a, x));
    ck_assert_del_ok(del_model_forward(b, x));
    for (int h = 0; h < del_model_num_heads(a); h++) {
        const char *name = del_model_head_name(a, h);
        ck_assert_str_eq(name, del_model_head_name(b, h));
        int fa = 0, ca = 0, fb = 0, cb = 0;
        ck_assert_del_ok(del_model_head_layers(a, name, &fa, &ca));
        ck_assert_del_ok(del_model_head_layers(b, name, &fb, &cb));
        ck_assert_int_eq(fa, fb);
        ck_assert_int_eq(ca, cb);
        del_tensor *ya = del_model_head_output(a, name), *yb = del_model_head_output(b, name);
        ck_assert_int_eq(del_tensor_numel(ya), del_tensor_numel(yb));
        ck_assert_mem_eq(del_tensor_data(ya), del_tensor_data(yb), del_tensor_nbytes(ya));
    }
    del_tensor_free(x);
}

START_TEST(test_round_trip_keeps_heads_and_their_outputs)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 6 6; conv2d 3 k=3 p=1 bias=0; batchnorm"));
    ck_assert_del_ok(del_model_add_head(m, "old_task", "relu; maxpool 2; flatten; linear 5"));
    ck_assert_del_ok(del_model_add_head(m, "new-task.v2", "gap; linear 4; relu; linear 3"));
    perturb(m);
    uint32_t version = 0;
    del_model *back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 3);
    assert_same_model(m, back); /* layers, parameters, state, first head's logits */
    assert_same_heads(m, back);
    /* the loaded model works as one built by calls: heads can change */
    ck_assert_del_err(del_model_add_relu(back), DEL_ESTATE, "has heads");
    ck_assert_del_ok(del_model_replace_head(back, "old_task", "gap; linear 2"));
    del_model_free(back);

    /* through a file too */
    round_trip_file(m);
    /* without heads the model is written with the version its layers need */
    ck_assert_del_ok(del_model_remove_head(m, "old_task"));
    ck_assert_del_ok(del_model_remove_head(m, "new-task.v2"));
    back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 1);
    ck_assert_int_eq(del_model_num_heads(back), 0);
    del_model_free(back);
    ck_assert_del_ok(del_model_add_global_avgpool(m));
    back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 2);
    del_model_free(back);
    del_model_free(m);
}
END_TEST

/* A split preset (empty-backbone models too) round-trips. */
START_TEST(test_round_trip_split_preset_and_empty_backbone)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_split_head(m, "fmnist", -1));
    ck_assert_del_ok(del_model_add_head(m, "five", "linear 5"));
    perturb(m);
    uint32_t version = 0;
    del_model *back = round_trip_buffer(m, &version);
    ck_assert_uint_eq(version, 3);
    assert_same_model(m, back);
    assert_same_heads(m, back);
    del_model_free(back);
    del_model_free(m);

    ck_assert_del_ok(del_model_new(&m, 2, 3, 3));
    ck_assert_del_ok(del_model_add_head(m, "a", "flatten; linear 2"));
    ck_assert_del_ok(del_model_add_head(m, "b", "gap"));
    perturb(m);
    back = round_trip_buffer(m, &version);
    ck_assert_int_eq(del_model_backbone_layers(back), 0);
    assert_same_heads(m, back);
    del_model_free(back);
    del_model_free(m);
}
END_TEST

/* ---- hand-encoded files: input 1x1x2, backbone flatten, heads ---- */

static void two_layer_records(enc *e, int n_layers)
{
    e->n = 0;
    put_le(e, 1, 4);
    put_le(e, 1, 4);
    put_le(e, 2, 4);
    put_le(e, (uint32_t)n_layers, 4);
    put_str(e, "flatten");
    put_le(e, 0, 1);
    good_linear(e); /* linear out=1, bias */
}

static void put_head(enc *e, const char *name, uint32_t count)
{
    put_str(e, name);
    put_le(e, count, 4);
}

START_TEST(test_load_hand_encoded_heads_section)
{
    enc e;
    two_layer_records(&e, 2);
    put_le(&e, 1, 4);
    put_head(&e, "h", 1);
    tiny_tensors(&e, 3); /* w0 0.5, w1 -2, b 0.25 */
    size_t len = 0;
    uint8_t *file = container(&e, 3, &len);
    del_model *m = NULL;
    ck_assert_del_ok(del_model_load_buffer(&m, file, len));
    ck_assert_int_eq(del_model_num_heads(m), 1);
    ck_assert_str_eq(del_model_head_name(m, 0), "h");
    ck_assert_int_eq(del_model_backbone_layers(m), 1);
    int64_t shape[4] = {1, 1, 1, 2};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    float *xd = del_tensor_data(x);
    xd[0] = 2.0f;
    xd[1] = 0.5f;
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_float_eq(((float *)del_tensor_data(del_model_head_output(m, "h")))[0], 0.5f * 2.0f - 2.0f * 0.5f + 0.25f);
    del_tensor_free(x);
    del_model_free(m);
    free(file);

    /* a version-3 file may hold no heads */
    two_layer_records(&e, 2);
    put_le(&e, 0, 4);
    tiny_tensors(&e, 3);
    file = container(&e, 3, &len);
    ck_assert_del_ok(del_model_load_buffer(&m, file, len));
    ck_assert_int_eq(del_model_num_heads(m), 0);
    del_model_free(m);
    free(file);
}
END_TEST

START_TEST(test_load_corrupt_heads_sections_are_refused)
{
    static const struct {
        int n_heads;
        const char *names[3];
        uint32_t counts[3];
        const char *needle;
    } cases[] = {
        {3, {"a", "b", "c"}, {1, 1, 1}, "3 heads for 2 layers"},
        {1, {"", NULL, NULL}, {1, 0, 0}, "corrupt head 0 in '<buffer>': malformed name"},
        {1, {"a b", NULL, NULL}, {1, 0, 0}, "malformed name"},
        {1, {"abcdefghijklmnopqrstuvwxyz789012", NULL, NULL}, {1, 0, 0}, "malformed name"},
        {2, {"a", "a", NULL}, {1, 1, 0}, "corrupt head 1 in '<buffer>': the name 'a' is used twice"},
        {1, {"a", NULL, NULL}, {0, 0, 0}, "corrupt head 0 ('a') in '<buffer>': it has no layers"},
        {1, {"a", NULL, NULL}, {3, 0, 0}, "its heads have more layers than its 2 layer records"},
        {2, {"a", "b", NULL}, {1, 0xFFFFFFFFu, 0}, "its heads have more layers"},
        /* an empty backbone: head b's linear reads the input [1, 1, 2] */
        {2, {"a", "b", NULL}, {1, 1, 0}, "corrupt layer record 1 (linear) in '<buffer>'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enc e;
        two_layer_records(&e, 2);
        put_le(&e, (uint32_t)cases[i].n_heads, 4);
        for (int h = 0; h < cases[i].n_heads; h++)
            put_head(&e, cases[i].names[h], cases[i].counts[h]);
        tiny_tensors(&e, 3);
        size_t len = 0;
        uint8_t *file = container(&e, 3, &len);
        expect_corrupt(file, len, cases[i].needle);
        free(file);
    }
    /* truncated inside the section */
    enc e;
    two_layer_records(&e, 2);
    size_t len = 0;
    uint8_t *file = container(&e, 3, &len);
    expect_corrupt(file, len, "is truncated in the heads section");
    free(file);
    two_layer_records(&e, 2);
    put_le(&e, 1, 4);
    put_str(&e, "abc");
    file = container(&e, 3, &len);
    expect_corrupt(file, len, "is truncated in head 0");
    free(file);
    /* a name with a NUL byte */
    two_layer_records(&e, 2);
    put_le(&e, 1, 4);
    put_le(&e, 3, 1);
    put_le(&e, 'a', 1);
    put_le(&e, 0, 1);
    put_le(&e, 'b', 1);
    put_le(&e, 1, 4);
    tiny_tensors(&e, 3);
    file = container(&e, 3, &len);
    expect_corrupt(file, len, "malformed name");
    free(file);
    /* a heads section in a version-2 file is not read as one */
    two_layer_records(&e, 2);
    put_le(&e, 1, 4);
    put_head(&e, "h", 1);
    tiny_tensors(&e, 3);
    file = container(&e, 2, &len);
    expect_corrupt(file, len, "is corrupt");
    free(file);
}
END_TEST

/* Every truncation of a saved headed model fails cleanly. */
START_TEST(test_truncated_headed_files_fail_cleanly)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 3 3; flatten"));
    ck_assert_del_ok(del_model_add_head(m, "a", "linear 2"));
    ck_assert_del_ok(del_model_add_head(m, "b", "linear 3; relu"));
    void *buf = NULL;
    size_t n = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, &n));
    for (size_t cut = 0; cut < n; cut++) {
        del_model *back = NULL;
        ck_assert_int_ne(del_model_load_buffer(&back, buf, cut), DEL_OK);
        ck_assert_ptr_null(back);
    }
    del_buffer_free(buf);
    del_model_free(m);
}
END_TEST

static Suite *model_file_heads_suite(void)
{
    Suite *s = suite_create("io_model_file_heads");
    TCase *tc = tcase_create("heads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip_keeps_heads_and_their_outputs);
    tcase_add_test(tc, test_round_trip_split_preset_and_empty_backbone);
    tcase_add_test(tc, test_load_hand_encoded_heads_section);
    tcase_add_test(tc, test_load_corrupt_heads_sections_are_refused);
    tcase_add_test(tc, test_truncated_headed_files_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(model_file_heads_suite());
}
