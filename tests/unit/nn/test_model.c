/* Models: presets, spec strings, layer construction errors, forward and
 * backward contracts, evaluation mode, initialisation and determinism. */
#include <math.h>

#include "testutil.h"

static del_tensor *input_tensor(int n, int c, int h, int w, const float *values)
{
    int64_t shape[4] = {n, c, h, w};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, shape));
    if (values)
        ck_assert_del_ok(del_tensor_copy_from(x, values, del_tensor_nbytes(x)));
    return x;
}

/* Deterministic test pattern in [-1, 1), independent of the library. */
static void fill_pattern(del_tensor *t, uint32_t seed)
{
    float *d = del_tensor_data(t);
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < del_tensor_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
}

static void check_layers(const del_model *m, const char *const *names, int n)
{
    ck_assert_int_eq(del_model_num_layers(m), n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(del_model_layer_type(m, i), names[i]);
    ck_assert_ptr_null(del_model_layer_type(m, n));
    ck_assert_ptr_null(del_model_layer_type(m, -1));
}

START_TEST(test_preset_fmnist_cnn_layers_shape_and_params)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    static const char *const names[] = {"conv2d", "batchnorm", "relu", "conv2d", "batchnorm", "relu",
                                        "maxpool", "conv2d", "batchnorm", "relu", "conv2d", "batchnorm",
                                        "relu", "maxpool", "flatten", "linear", "relu", "dropout",
                                        "linear"};
    check_layers(m, names, 19);
    int ndim = 0;
    int64_t shape[3] = {0};
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 10);
    /* convs (no bias): 1*32*9 = 288, 32*32*9 = 9216, 32*64*9 = 18432, 64*64*9 = 36864;
     * batchnorm gamma+beta: 2*(32+32+64+64) = 384;
     * linear 3136*128 + 128 = 401536 (3136 = 64*7*7); linear 128*10 + 10 = 1290.
     * Total 64800 + 384 + 401536 + 1290 = 468010. */
    ck_assert_int_eq(del_model_num_params(m), 468010);
    del_model_free(m);
}
END_TEST

START_TEST(test_preset_mlp_layers_and_params)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    static const char *const names[] = {"flatten", "linear", "relu", "linear"};
    check_layers(m, names, 4);
    /* 784*256 + 256 + 256*10 + 10 = 203530 */
    ck_assert_int_eq(del_model_num_params(m), 203530);
    del_model_free(m);
}
END_TEST

START_TEST(test_input_shape_is_the_one_the_model_was_made_for)
{
    del_model *m = NULL;
    int c = 0, h = 0, w = 0;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 3, 17, 5, 4));
    ck_assert_del_ok(del_model_input_shape(m, &c, &h, &w));
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(h, 17);
    ck_assert_int_eq(w, 5);
    ck_assert_del_err(del_model_input_shape(NULL, &c, &h, &w), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_input_shape(m, &c, NULL, &w), DEL_EINVAL, "'height'");
    del_model_free(m);
}
END_TEST

START_TEST(test_preset_rejects_bad_arguments)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_preset(&m, "resnet", 1, 28, 28, 10), DEL_EINVAL, "fmnist-cnn, mlp");
    ck_assert_del_err(del_model_preset(&m, NULL, 1, 28, 28, 10), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_model_preset(NULL, "mlp", 1, 28, 28, 10), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_model_preset(&m, "mlp", 1, 28, 28, 1), DEL_EINVAL, "'num_classes'");
    ck_assert_del_err(del_model_preset(&m, "mlp", 0, 28, 28, 10), DEL_EINVAL, "'channels'");
    /* two 2x2 poolings do not fit a 3x3 image */
    ck_assert_del_err(del_model_preset(&m, "fmnist-cnn", 1, 3, 3, 10), DEL_EINVAL, "kernel");
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_spec_equals_c_calls)
{
    del_model *a = NULL, *b = NULL;
    ck_assert_del_ok(del_model_from_spec(&a, "input 3 8 8; conv2d 4 k=3 s=2 p=1 bias=0\n"
                                             "batchnorm eps=1e-3 momentum=0.2; relu;\n"
                                             "  maxpool 2 ;flatten; dropout 0.3; linear 5; linear 2 bias=0;"));
    ck_assert_del_ok(del_model_new(&b, 3, 8, 8));
    ck_assert_del_ok(del_model_add_conv2d(b, 4, 3, 2, 1, 0));
    ck_assert_del_ok(del_model_add_batchnorm(b, 1e-3f, 0.2f));
    ck_assert_del_ok(del_model_add_relu(b));
    ck_assert_del_ok(del_model_add_maxpool(b, 2, 2));
    ck_assert_del_ok(del_model_add_flatten(b));
    ck_assert_del_ok(del_model_add_dropout(b, 0.3f));
    ck_assert_del_ok(del_model_add_linear(b, 5, 1));
    ck_assert_del_ok(del_model_add_linear(b, 2, 0));
    static const char *const names[] = {"conv2d", "batchnorm", "relu", "maxpool", "flatten",
                                        "dropout", "linear", "linear"};
    check_layers(a, names, 8);
    /* 4*3*9 + 2*4 + 16*5+5 + 5*2 = 108 + 8 + 85 + 10 */
    ck_assert_int_eq(del_model_num_params(a), 211);
    ck_assert_int_eq(del_model_num_params(b), 211);
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), 211 * sizeof(float));

    /* same forward, including the dropout mask and batchnorm settings */
    del_tensor *x = input_tensor(4, 3, 8, 8, NULL);
    fill_pattern(x, 3);
    ck_assert_del_ok(del_model_forward(a, x));
    ck_assert_del_ok(del_model_forward(b, x));
    ck_assert_mem_eq(del_tensor_data(del_model_output(a)), del_tensor_data(del_model_output(b)),
                     4 * 2 * sizeof(float));
    del_tensor_free(x);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

START_TEST(test_spec_maxpool_stride_defaults_to_kernel)
{
    del_model *m = NULL;
    int ndim;
    int64_t shape[3];
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 9 9; maxpool 3"));
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(shape[1], 3);
    del_model_free(m);
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 9 9; maxpool 3 s=1"));
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(shape[1], 7);
    del_model_free(m);
}
END_TEST

START_TEST(test_spec_errors_name_the_item)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; flatten; conv2d x"), DEL_EFORMAT,
                      "item 3 'conv2d x': expected a number for OUT");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; pool 2"), DEL_EFORMAT,
                      "item 2 'pool 2': unknown layer 'pool'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; conv2d 8 kernel=3"), DEL_EFORMAT,
                      "item 2 'conv2d 8 kernel=3': unknown option 'kernel'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; conv2d 8 k=three"), DEL_EFORMAT,
                      "item 2 'conv2d 8 k=three': expected a number for k, got 'three'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; dropout"), DEL_EFORMAT,
                      "item 2 'dropout': expected a number for P");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; relu 3"), DEL_EFORMAT,
                      "item 2 'relu 3': unexpected '3'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28 28; flatten; linear 2.5"), DEL_EFORMAT,
                      "item 3 'linear 2.5': expected an integer for OUT, got '2.5'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 28; relu"), DEL_EFORMAT,
                      "item 1 'input 1 28': expected a number for W");
    ck_assert_del_err(del_model_from_spec(&m, "flatten; linear 10"), DEL_EFORMAT,
                      "item 1 'flatten': the first item must be 'input C H W'");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 2 2; input 1 2 2"), DEL_EFORMAT, "item 2");
    ck_assert_del_err(del_model_from_spec(&m, " ; \n "), DEL_EFORMAT, "empty spec");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; maxpool 2 s=1 s=2"), DEL_EFORMAT, "twice");
    /* syntactically fine but does not fit the shape: the add call's error, naming the item */
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; relu; flatten; conv2d 4"), DEL_EINVAL,
                      "item 4 'conv2d 4': conv2d needs a 4-d input");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; linear 4"), DEL_EINVAL,
                      "item 2 'linear 4': linear needs a 2-d input");
    ck_assert_del_err(del_model_from_spec(&m, "input 1 8 8; dropout 1.5"), DEL_EINVAL, "item 2");
    ck_assert_del_err(del_model_from_spec(&m, "input 0 8 8"), DEL_EINVAL, "item 1");
    ck_assert_del_err(del_model_from_spec(&m, NULL), DEL_EINVAL, "'spec'");
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_add_layer_rejects_what_does_not_fit)
{
    del_model *m = NULL;
    ck_assert_del_err(del_model_new(&m, 1, 0, 5), DEL_EINVAL, "'height'");
    ck_assert_del_ok(del_model_new(&m, 1, 5, 5));
    ck_assert_del_err(del_model_add_linear(m, 3, 1), DEL_EINVAL, "flatten first");
    ck_assert_del_err(del_model_add_conv2d(m, 2, 7, 1, 0, 1), DEL_EINVAL, "larger than the padded input");
    ck_assert_del_err(del_model_add_conv2d(m, 2, 3, 1, 3, 1), DEL_EINVAL, "'pad'");
    ck_assert_del_err(del_model_add_conv2d(m, 0, 3, 1, 0, 1), DEL_EINVAL, "'out_channels'");
    ck_assert_del_err(del_model_add_conv2d(m, 2, 3, 0, 0, 1), DEL_EINVAL, "'stride'");
    ck_assert_del_err(del_model_add_conv2d(m, 2, 3, 1, 0, 2), DEL_EINVAL, "'bias'");
    ck_assert_del_err(del_model_add_maxpool(m, 6, 1), DEL_EINVAL, "larger than the input");
    ck_assert_del_err(del_model_add_dropout(m, 1.0f), DEL_EINVAL, "'p'");
    ck_assert_del_err(del_model_add_dropout(m, -0.1f), DEL_EINVAL, "'p'");
    ck_assert_del_err(del_model_add_batchnorm(m, 0.0f, 0.1f), DEL_EINVAL, "'eps'");
    ck_assert_del_err(del_model_add_batchnorm(m, 1e-5f, 0.0f), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_model_add_batchnorm(m, 1e-5f, 1.5f), DEL_EINVAL, "'momentum'");
    ck_assert_del_err(del_model_add_relu(NULL), DEL_EINVAL, "'model'");
    ck_assert_int_eq(del_model_num_layers(m), 0);
    ck_assert_del_ok(del_model_add_flatten(m));
    ck_assert_del_err(del_model_add_conv2d(m, 2, 3, 1, 0, 1), DEL_EINVAL, "4-d input");
    ck_assert_del_err(del_model_add_maxpool(m, 2, 2), DEL_EINVAL, "4-d input");
    ck_assert_del_err(del_model_add_flatten(m), DEL_EINVAL, "4-d input");
    ck_assert_del_err(del_model_add_linear(m, 0, 1), DEL_EINVAL, "'out_features'");
    ck_assert_int_eq(del_model_num_layers(m), 1);
    ck_assert_int_eq(del_model_num_params(m), 0);
    ck_assert_ptr_null(del_model_params(m));
    del_model_free(m);
}
END_TEST

/* conv 1->1, k 2, w = (1 2; 3 4), b = 0.5 on x = (1 2 3; 4 5 6; 7 8 9):
 * y = (1+4+12+20, 2+6+15+24; 4+10+21+32, 5+12+24+36) + 0.5 = (37.5 47.5; 67.5 77.5).
 * linear 4->2 with W = (1 0 0 -1; 0 1 1 0), b = (0, -100) on y:
 * (37.5 - 77.5, 47.5 + 67.5 - 100) = (-40, 15). */
START_TEST(test_forward_matches_hand_computed_conv_and_linear)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 3 3; conv2d 1 k=2; flatten; linear 2"));
    ck_assert_int_eq(del_model_num_params(m), 5 + 10);
    const float params[15] = {1, 2, 3, 4, 0.5f, 1, 0, 0, -1, 0, 1, 1, 0, 0, -100};
    memcpy(del_model_params(m), params, sizeof params);
    const float xs[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    del_tensor *x = input_tensor(1, 1, 3, 3, xs);
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *y = del_model_output(m);
    ck_assert_int_eq(del_tensor_ndim(y), 2);
    ck_assert_int_eq(del_tensor_dim(y, 0), 1);
    ck_assert_int_eq(del_tensor_dim(y, 1), 2);
    const float *yd = del_tensor_data(y);
    ck_assert_float_eq(yd[0], -40.0f);
    ck_assert_float_eq(yd[1], 15.0f);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_forward_rejects_wrong_input)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 28, 28, 10));
    del_tensor *x3 = input_tensor(2, 3, 28, 28, NULL);
    ck_assert_del_err(del_model_forward(m, x3), DEL_EINVAL, "[N, 1, 28, 28], got f32 [2, 3, 28, 28]");
    int64_t flat_shape[2] = {2, 784};
    del_tensor *flat = NULL, *u8 = NULL;
    ck_assert_del_ok(del_tensor_new(&flat, DEL_DTYPE_F32, 2, flat_shape));
    ck_assert_del_err(del_model_forward(m, flat), DEL_EINVAL, "got f32 [2, 784]");
    int64_t img_shape[4] = {2, 1, 28, 28};
    ck_assert_del_ok(del_tensor_new(&u8, DEL_DTYPE_U8, 4, img_shape));
    ck_assert_del_err(del_model_forward(m, u8), DEL_EINVAL, "got u8");
    ck_assert_del_err(del_model_forward(m, NULL), DEL_EINVAL, "'x'");
    ck_assert_del_err(del_model_forward(NULL, x3), DEL_EINVAL, "'model'");
    ck_assert_ptr_null(del_model_output(m));
    del_tensor_free(x3);
    del_tensor_free(flat);
    del_tensor_free(u8);
    del_model_free(m);
}
END_TEST

START_TEST(test_backward_needs_a_training_forward)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "mlp", 1, 4, 4, 3));
    int64_t gshape[2] = {2, 3};
    del_tensor *g = NULL, *x = input_tensor(2, 1, 4, 4, NULL);
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gshape));
    ck_assert_del_err(del_model_backward(m, g), DEL_ESTATE, "no forward");
    ck_assert_ptr_null(del_model_input_grad(m));
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_int_eq(del_model_is_training(m), 0);
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_err(del_model_backward(m, g), DEL_ESTATE, "evaluation mode");
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor *bad = NULL;
    int64_t bshape[2] = {2, 4};
    ck_assert_del_ok(del_tensor_new(&bad, DEL_DTYPE_F32, 2, bshape));
    ck_assert_del_err(del_model_backward(m, bad), DEL_EINVAL, "'grad_output' must be f32 [2, 3]");
    ck_assert_del_err(del_model_backward(m, NULL), DEL_EINVAL, "'grad_output'");
    ck_assert_del_ok(del_model_backward(m, g));
    del_tensor *gx = del_model_input_grad(m);
    ck_assert_ptr_nonnull(gx);
    ck_assert_int_eq(del_tensor_ndim(gx), 4);
    ck_assert_int_eq(del_tensor_dim(gx, 3), 4);
    /* adding a layer invalidates the last forward */
    ck_assert_del_ok(del_model_add_relu(m));
    ck_assert_del_err(del_model_backward(m, g), DEL_ESTATE, "no forward");
    del_tensor_free(g);
    del_tensor_free(bad);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_backward_accumulates_parameter_gradients)
{
    /* linear 2 -> 1 without bias: dL/dW = sum_n dy_n x_n; two backwards add up. */
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 2 1 1; flatten; linear 1 bias=0"));
    const float xs[4] = {1, 2, 3, 4}, gs[2] = {1, -1};
    del_tensor *x = input_tensor(2, 2, 1, 1, xs), *g = NULL;
    int64_t gshape[2] = {2, 1};
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gshape));
    ck_assert_del_ok(del_tensor_copy_from(g, gs, sizeof gs));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_model_backward(m, g));
    ck_assert_float_eq(del_model_grads(m)[0], -2.0f); /* 1*1 - 3 */
    ck_assert_float_eq(del_model_grads(m)[1], -2.0f); /* 2 - 4 */
    ck_assert_del_ok(del_model_backward(m, g));
    ck_assert_float_eq(del_model_grads(m)[0], -4.0f);
    ck_assert_del_ok(del_model_zero_grad(m));
    ck_assert_float_eq(del_model_grads(m)[0], 0.0f);
    ck_assert_float_eq(del_model_grads(m)[1], 0.0f);
    del_tensor_free(x);
    del_tensor_free(g);
    del_model_free(m);
}
END_TEST

/* batchnorm, gamma 2, beta 0.5, on the batch (1, 2, 3, 6): mean 3, biased
 * variance 3.5, unbiased 14/3. Training output 2 (x - 3)/sqrt(3.5 + 1e-5) + 0.5
 * = (-1.6380869, -0.5690434, 0.5, 3.7071303). Running statistics after it
 * (momentum 0.1): mean 0.3, var 0.9 + 0.1 * 14/3 = 1.3666667. Evaluation
 * of (0.3, 2.3, -1): 2 (x - 0.3)/sqrt(1.3666667 + 1e-5) + 0.5
 * = (0.5, 3.9215832, -1.7240291). */
START_TEST(test_batchnorm_eval_uses_running_statistics)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 1, 1, 1));
    ck_assert_del_ok(del_model_add_batchnorm(m, 1e-5f, 0.1f));
    del_model_params(m)[0] = 2.0f;
    del_model_params(m)[1] = 0.5f;
    const float xs[4] = {1, 2, 3, 6};
    del_tensor *x = input_tensor(4, 1, 1, 1, xs);
    ck_assert_del_ok(del_model_forward(m, x));
    const float want_train[4] = {-1.6380869f, -0.5690434f, 0.5f, 3.7071303f};
    const float *y = del_tensor_data(del_model_output(m));
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(y[i], want_train[i], 2e-6f);

    ck_assert_del_ok(del_model_set_training(m, 0));
    const float es[3] = {0.3f, 2.3f, -1.0f};
    del_tensor *e = input_tensor(3, 1, 1, 1, es);
    ck_assert_del_ok(del_model_forward(m, e));
    const float want_eval[3] = {0.5f, 3.9215832f, -1.7240291f};
    y = del_tensor_data(del_model_output(m));
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(y[i], want_eval[i], 2e-6f);
    /* evaluation does not move the running statistics */
    ck_assert_del_ok(del_model_forward(m, e));
    y = del_tensor_data(del_model_output(m));
    ck_assert_float_eq_tol(y[1], want_eval[1], 2e-6f);
    /* a single value per channel has no variance: refused in training mode only */
    del_tensor *one = input_tensor(1, 1, 1, 1, es);
    ck_assert_del_ok(del_model_forward(m, one));
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_err(del_model_forward(m, one), DEL_EINVAL, "more than 1 value");
    del_tensor_free(x);
    del_tensor_free(e);
    del_tensor_free(one);
    del_model_free(m);
}
END_TEST

START_TEST(test_dropout_identity_in_eval_and_scaled_in_training)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 4, 10, 10));
    ck_assert_del_ok(del_model_add_dropout(m, 0.5f));
    del_tensor *x = input_tensor(5, 4, 10, 10, NULL);
    fill_pattern(x, 7);
    const float *xs = del_tensor_data(x);
    ck_assert_del_ok(del_model_set_training(m, 0));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_mem_eq(del_tensor_data(del_model_output(m)), xs, del_tensor_nbytes(x));

    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x));
    const float *y = del_tensor_data(del_model_output(m));
    int dropped = 0;
    for (int i = 0; i < 2000; i++) {
        if (y[i] == 0.0f)
            dropped++;
        else
            ck_assert_float_eq(y[i], xs[i] * 2.0f);
    }
    /* Binomial(2000, 0.5): mean 1000, sd 22.4; +-5 sd */
    ck_assert_int_gt(dropped, 888);
    ck_assert_int_lt(dropped, 1112);
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_summary_lists_layers_and_total)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
    char buf[4096];
    size_t needed = 0;
    ck_assert_del_ok(del_model_summary(m, buf, sizeof buf, &needed));
    ck_assert_uint_eq(needed, strlen(buf) + 1);
    ck_assert_ptr_nonnull(strstr(buf, "conv2d"));
    ck_assert_ptr_nonnull(strstr(buf, "[32, 28, 28]"));
    ck_assert_ptr_nonnull(strstr(buf, "[64, 7, 7]"));
    ck_assert_ptr_nonnull(strstr(buf, "[3136]"));
    ck_assert_ptr_nonnull(strstr(buf, "401536"));
    ck_assert_ptr_nonnull(strstr(buf, "total params: 468010"));
    int lines = 0;
    for (const char *p = buf; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 19 + 3); /* header, input, 19 layers, total */

    char small[32];
    size_t needed2 = 0;
    ck_assert_del_err(del_model_summary(m, small, sizeof small, &needed2), DEL_EINVAL, "'size'");
    ck_assert_uint_eq(needed2, needed);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(strncmp(small, buf, sizeof small - 1), 0);
    needed2 = 0;
    ck_assert_del_ok(del_model_summary(m, NULL, 0, &needed2));
    ck_assert_uint_eq(needed2, needed);
    del_model_free(m);
}
END_TEST

/* The summary of a small model, written out by hand: 4 + 5 lines of 44
 * characters plus "total params: 15\n", 197 bytes, 198 with the NUL. */
static const char small_summary[] = "#   layer      output                 params\n"
                                    "-   input      [1, 2, 2]                   0\n"
                                    "0   flatten    [4]                         0\n"
                                    "1   linear     [3]                        15\n"
                                    "total params: 15\n";

/* Like snprintf(NULL, 0, ...): size 0 asks for the size, which is no
 * error; nothing is written even where buf is not NULL. */
START_TEST(test_summary_size_query_returns_ok_and_the_bytes_needed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 3"));
    size_t needed = 0;
    ck_assert_del_ok(del_model_summary(m, NULL, 0, &needed));
    ck_assert_uint_eq(needed, sizeof small_summary);
    ck_assert_uint_eq(needed, 198);
    char untouched[4] = "abc";
    needed = 0;
    ck_assert_del_ok(del_model_summary(m, untouched, 0, &needed));
    ck_assert_uint_eq(needed, 198);
    ck_assert_str_eq(untouched, "abc");
    char *buf = malloc(needed);
    ck_assert_del_ok(del_model_summary(m, buf, needed, NULL));
    ck_assert_str_eq(buf, small_summary);
    free(buf);
    /* a size query without a place for the answer is a mistake */
    ck_assert_del_err(del_model_summary(m, NULL, 0, NULL), DEL_EINVAL, "del_model_summary: 'needed'");
    ck_assert_del_err(del_model_summary(m, NULL, 5, &needed), DEL_EINVAL, "del_model_summary: 'buf'");
    del_model_free(m);
}
END_TEST

/* A buffer too small for the whole text gets its first size - 1 bytes and
 * a NUL, *needed gets the full size, and the call fails naming 'size', so
 * a caller checking only the status never mistakes the prefix for the
 * summary. */
START_TEST(test_summary_too_small_buffer_gets_a_terminated_prefix_and_einval)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 3"));
    char buf[sizeof small_summary];
    const size_t sizes[] = {1, 2, 45, sizeof small_summary - 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        memset(buf, 'x', sizeof buf);
        size_t needed = 0;
        ck_assert_del_err(del_model_summary(m, buf, sizes[k], &needed), DEL_EINVAL,
                          "del_model_summary: 'size' must be at least 198");
        ck_assert_uint_eq(needed, 198);
        ck_assert_uint_eq(strlen(buf), sizes[k] - 1);
        ck_assert_int_eq(memcmp(buf, small_summary, sizes[k] - 1), 0);
        ck_assert_int_eq(buf[sizes[k]], 'x'); /* nothing past size */
    }
    /* the exact size is enough */
    ck_assert_del_ok(del_model_summary(m, buf, sizeof buf, NULL));
    ck_assert_str_eq(buf, small_summary);
    del_model_free(m);
}
END_TEST

START_TEST(test_init_follows_pytorch_defaults)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 8 6 6; conv2d 16 k=3; batchnorm; flatten; linear 100"));
    const float *p = del_model_params(m);
    /* conv: fan_in 8*9 = 72, weights and bias in +-1/sqrt(72) */
    double bound = 1.0 / sqrt(72.0), maxabs = 0.0, sum = 0.0;
    for (int i = 0; i < 16 * 72 + 16; i++) {
        ck_assert(fabs(p[i]) <= bound);
        maxabs = fmax(maxabs, fabs(p[i]));
        sum += p[i];
    }
    ck_assert(maxabs > 0.95 * bound);
    ck_assert(fabs(sum / (16 * 72 + 16)) < 0.1 * bound);
    p += 16 * 72 + 16;
    for (int i = 0; i < 16; i++) {
        ck_assert_float_eq(p[i], 1.0f);
        ck_assert_float_eq(p[16 + i], 0.0f);
    }
    p += 32;
    /* linear: fan_in 16*4*4 = 256, bound 1/16 */
    maxabs = 0.0;
    for (int i = 0; i < 256 * 100 + 100; i++) {
        ck_assert(fabs(p[i]) <= 1.0 / 16);
        maxabs = fmax(maxabs, fabs(p[i]));
    }
    ck_assert(maxabs > 0.99 / 16);
    del_model_free(m);
}
END_TEST

START_TEST(test_init_is_deterministic_per_seed)
{
    del_model *a = NULL, *b = NULL;
    ck_assert_del_ok(del_model_preset(&a, "fmnist-cnn", 1, 28, 28, 10));
    ck_assert_del_ok(del_model_preset(&b, "fmnist-cnn", 1, 28, 28, 10));
    size_t bytes = (size_t)del_model_num_params(a) * sizeof(float);
    /* built layer by layer from seed 0 == re-initialised from seed 0 */
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), bytes);
    ck_assert_del_ok(del_model_init(a, 0));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), bytes);
    ck_assert_del_ok(del_model_init(a, 1234));
    ck_assert_del_ok(del_model_init(b, 1234));
    ck_assert_mem_eq(del_model_params(a), del_model_params(b), bytes);
    ck_assert_del_ok(del_model_init(b, 1235));
    ck_assert_int_ne(memcmp(del_model_params(a), del_model_params(b), bytes), 0);
    ck_assert_del_err(del_model_init(NULL, 1), DEL_EINVAL, "'model'");
    del_model_free(a);
    del_model_free(b);
}
END_TEST

/* forward + backward with 1 and 4 threads give bit-identical outputs,
 * parameter gradients and input gradients (dropout included). */
START_TEST(test_results_do_not_depend_on_thread_count)
{
    float *out[2], *grads[2], *gin[2];
    int64_t np = 0;
    del_tensor *x = input_tensor(8, 1, 28, 28, NULL), *g = NULL;
    fill_pattern(x, 11);
    int64_t gshape[2] = {8, 10};
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gshape));
    fill_pattern(g, 12);
    const int threads[2] = {1, 4};
    for (int r = 0; r < 2; r++) {
        ck_assert_del_ok(del_set_num_threads(threads[r]));
        del_model *m = NULL;
        ck_assert_del_ok(del_model_preset(&m, "fmnist-cnn", 1, 28, 28, 10));
        ck_assert_del_ok(del_model_init(m, 99));
        np = del_model_num_params(m);
        for (int step = 0; step < 2; step++) {
            ck_assert_del_ok(del_model_forward(m, x));
            ck_assert_del_ok(del_model_backward(m, g));
        }
        out[r] = malloc(80 * sizeof(float));
        grads[r] = malloc((size_t)np * sizeof(float));
        gin[r] = malloc(del_tensor_nbytes(x));
        memcpy(out[r], del_tensor_data(del_model_output(m)), 80 * sizeof(float));
        memcpy(grads[r], del_model_grads(m), (size_t)np * sizeof(float));
        memcpy(gin[r], del_tensor_data(del_model_input_grad(m)), del_tensor_nbytes(x));
        del_model_free(m);
    }
    ck_assert_mem_eq(out[0], out[1], 80 * sizeof(float));
    ck_assert_mem_eq(grads[0], grads[1], (size_t)np * sizeof(float));
    ck_assert_mem_eq(gin[0], gin[1], del_tensor_nbytes(x));
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(grads[r]);
        free(gin[r]);
    }
    del_tensor_free(x);
    del_tensor_free(g);
}
END_TEST

START_TEST(test_model_without_layers_passes_input_through)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_new(&m, 2, 2, 2));
    ck_assert_int_eq(del_model_num_params(m), 0);
    ck_assert_ptr_null(del_model_grads(m));
    int ndim;
    int64_t shape[3];
    ck_assert_del_ok(del_model_output_shape(m, &ndim, shape));
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[0], 2);
    del_tensor *x = input_tensor(3, 2, 2, 2, NULL);
    fill_pattern(x, 5);
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_mem_eq(del_tensor_data(del_model_output(m)), del_tensor_data(x), del_tensor_nbytes(x));
    ck_assert_del_ok(del_model_backward(m, x));
    ck_assert_mem_eq(del_tensor_data(del_model_input_grad(m)), del_tensor_data(x), del_tensor_nbytes(x));
    del_tensor_free(x);
    del_model_free(m);
}
END_TEST

START_TEST(test_null_model_accessors)
{
    del_model_free(NULL);
    ck_assert_int_eq(del_model_num_layers(NULL), 0);
    ck_assert_int_eq(del_model_num_params(NULL), 0);
    ck_assert_int_eq(del_model_is_training(NULL), 0);
    ck_assert_ptr_null(del_model_params(NULL));
    ck_assert_ptr_null(del_model_grads(NULL));
    ck_assert_ptr_null(del_model_output(NULL));
    ck_assert_ptr_null(del_model_input_grad(NULL));
    ck_assert_ptr_null(del_model_layer_type(NULL, 0));
    int ndim;
    int64_t shape[3];
    ck_assert_del_err(del_model_output_shape(NULL, &ndim, shape), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_set_training(NULL, 1), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_zero_grad(NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_summary(NULL, NULL, 0, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_model_new(NULL, 1, 1, 1), DEL_EINVAL, "'out'");
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("nn_model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_preset_fmnist_cnn_layers_shape_and_params);
    tcase_add_test(tc, test_preset_mlp_layers_and_params);
    tcase_add_test(tc, test_preset_rejects_bad_arguments);
    tcase_add_test(tc, test_input_shape_is_the_one_the_model_was_made_for);
    tcase_add_test(tc, test_spec_equals_c_calls);
    tcase_add_test(tc, test_spec_maxpool_stride_defaults_to_kernel);
    tcase_add_test(tc, test_spec_errors_name_the_item);
    tcase_add_test(tc, test_add_layer_rejects_what_does_not_fit);
    tcase_add_test(tc, test_forward_matches_hand_computed_conv_and_linear);
    tcase_add_test(tc, test_forward_rejects_wrong_input);
    tcase_add_test(tc, test_backward_needs_a_training_forward);
    tcase_add_test(tc, test_backward_accumulates_parameter_gradients);
    tcase_add_test(tc, test_batchnorm_eval_uses_running_statistics);
    tcase_add_test(tc, test_dropout_identity_in_eval_and_scaled_in_training);
    tcase_add_test(tc, test_summary_lists_layers_and_total);
    tcase_add_test(tc, test_summary_size_query_returns_ok_and_the_bytes_needed);
    tcase_add_test(tc, test_summary_too_small_buffer_gets_a_terminated_prefix_and_einval);
    tcase_add_test(tc, test_init_follows_pytorch_defaults);
    tcase_add_test(tc, test_init_is_deterministic_per_seed);
    tcase_add_test(tc, test_results_do_not_depend_on_thread_count);
    tcase_add_test(tc, test_model_without_layers_passes_input_through);
    tcase_add_test(tc, test_null_model_accessors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(model_suite());
}
