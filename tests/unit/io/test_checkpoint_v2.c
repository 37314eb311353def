/* The checkpoint record (include/del/checkpoint.h) and checkpoint format
 * 2: named models with their optimizers, named tensors and a trainer
 * record, written and read whole; format 1 still read, and written when a
 * record fits it. */
#include "model_file_util.h"

#include "del/checkpoint.h"

/* A model with everything a checkpoint keeps moved off a fresh model's:
 * parameters, a dropout stream that has drawn, a frozen layer and an lr
 * multiplier; *opt (if not NULL) an SGD optimizer with momentum after one
 * step with made-up gradients. */
static del_model *trained(const char *spec, uint32_t seed, del_optimizer **opt)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, spec));
    ck_assert_del_ok(del_model_init(m, seed));
    fill_pattern(del_model_params(m), del_model_num_params(m), seed);
    del_tensor *x = pattern_input(m, 2, seed);
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x));
    del_tensor_free(x);
    if (opt) {
        ck_assert_del_ok(del_optimizer_new_sgd(opt, m, 0.1f, 0.9f, 0.0f, 0));
        float *g = del_model_grads(m);
        for (int64_t i = 0; i < del_model_num_params(m); i++)
            g[i] = 0.25f * (float)(i + 1);
        ck_assert_del_ok(del_optimizer_step(*opt));
    }
    ck_assert_del_ok(del_model_freeze(m, 0, 0));
    ck_assert_del_ok(del_model_set_lr_mult(m, del_model_num_layers(m) - 1, del_model_num_layers(m) - 1, 0.5f));
    return m;
}

static del_model *fresh(const char *spec)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, spec));
    ck_assert_del_ok(del_model_init(m, 99));
    return m;
}

static void assert_same_params(del_model *a, del_model *b)
{
    ck_assert_int_eq(del_model_num_params(a), del_model_num_params(b));
    ck_assert(memcmp(del_model_params(a), del_model_params(b),
                     (size_t)del_model_num_params(a) * sizeof(float)) == 0);
    ck_assert_int_eq(del_model_num_buffers(a), del_model_num_buffers(b));
    if (del_model_num_buffers(a) > 0)
        ck_assert(memcmp(del_model_buffers(a), del_model_buffers(b),
                         (size_t)del_model_num_buffers(a) * sizeof(float)) == 0);
}

/* Training-mode outputs of two models on one input: equal only if their
 * parameters and dropout streams are. */
static void assert_same_dropout(del_model *a, del_model *b)
{
    del_tensor *x = pattern_input(a, 4, 3);
    ck_assert_del_ok(del_model_set_training(a, 1));
    ck_assert_del_ok(del_model_set_training(b, 1));
    ck_assert_del_ok(del_model_forward(a, x));
    ck_assert_del_ok(del_model_forward(b, x));
    del_tensor *ya = del_model_output(a), *yb = del_model_output(b);
    ck_assert(memcmp(del_tensor_data(ya), del_tensor_data(yb), del_tensor_nbytes(ya)) == 0);
    del_tensor_free(x);
}

static const char *const STUDENT = "input 1 4 4; flatten; dropout 0.5; linear 6; relu; linear 3";
static const char *const TEACHER = "input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; dropout 0.25; linear 3";

static del_tensor *tensor_of(del_dtype dt, int ndim, const int64_t *shape, const void *values)
{
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, dt, ndim, shape));
    memcpy(del_tensor_data(t), values, del_tensor_nbytes(t));
    return t;
}

static void *bytes_of(const del_checkpoint *ck, size_t *n)
{
    void *buf = NULL;
    ck_assert_del_ok(del_checkpoint_write_buffer(ck, &buf, n));
    return buf;
}

static del_checkpoint *read_back(const del_checkpoint *ck)
{
    size_t n = 0;
    void *buf = bytes_of(ck, &n);
    del_checkpoint *r = NULL;
    ck_assert_del_ok(del_checkpoint_read_buffer(&r, buf, n));
    del_buffer_free(buf);
    return r;
}

START_TEST(test_two_models_an_optimizer_tensors_and_200_fields_round_trip)
{
    del_optimizer *opt = NULL;
    del_model *student = trained(STUDENT, 1, &opt), *teacher = trained(TEACHER, 2, NULL);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "student", student));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "teacher", teacher));
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "student", opt));
    const float yo[6] = {0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 7.75f};
    const int32_t idx[5] = {4, -1, 2147483647, 0, -2147483647 - 1};
    const uint8_t px[8] = {0, 1, 127, 128, 254, 255, 9, 10};
    const int64_t s_yo[2] = {2, 3}, s_idx[1] = {5}, s_px[4] = {1, 2, 2, 2};
    del_tensor *t_yo = tensor_of(DEL_DTYPE_F32, 2, s_yo, yo), *t_idx = tensor_of(DEL_DTYPE_I32, 1, s_idx, idx),
               *t_px = tensor_of(DEL_DTYPE_U8, 4, s_px, px);
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "lwf.y_old", t_yo));
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "pool", t_idx));
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "images", t_px));
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "distill"));
    char key[32];
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof key, "i_%d", k);
        ck_assert_del_ok(del_checkpoint_set_i64(ck, key, (int64_t)k * k * k * 1000003 - 7));
        snprintf(key, sizeof key, "F.%d", k);
        ck_assert_del_ok(del_checkpoint_set_f32(ck, key, (float)k / 8.0f - 3.0f));
    }
    /* what was added is a copy: changing the originals changes nothing */
    float *p = del_model_params(student);
    float saved0 = p[0];
    p[0] = 1234.0f;
    ((float *)del_tensor_data(t_yo))[0] = 99.0f;

    char path[128];
    make_tmpdir();
    snprintf(path, sizeof path, "%s/run.delc", tmpdir);
    ck_assert_del_ok(del_checkpoint_write(ck, path));
    del_checkpoint *r = NULL;
    ck_assert_del_ok(del_checkpoint_read(&r, path));
    size_t nf = 0, nb = 0;
    uint8_t *file = read_file(path, &nf);
    void *buf = bytes_of(ck, &nb);
    ck_assert_uint_eq(nf, nb);
    ck_assert(memcmp(file, buf, nf) == 0);
    ck_assert(memcmp(file, "DELC\2\0\0\0", 8) == 0);
    free(file);
    del_buffer_free(buf);
    p[0] = saved0;

    ck_assert_int_eq(del_checkpoint_num_models(r), 2);
    ck_assert_str_eq(del_checkpoint_model_name(r, 0), "student");
    ck_assert_str_eq(del_checkpoint_model_name(r, 1), "teacher");
    ck_assert_str_eq(del_checkpoint_optimizer_type(r, "student"), "sgd");
    ck_assert_ptr_null(del_checkpoint_optimizer_type(r, "teacher"));
    ck_assert_str_eq(del_checkpoint_trainer(r), "distill");
    ck_assert_int_eq(del_checkpoint_num_fields(r), 200);
    ck_assert_str_eq(del_checkpoint_field_name(r, 0), "i_0");
    ck_assert_str_eq(del_checkpoint_field_name(r, 199), "F.99");
    for (int k = 0; k < 100; k++) {
        int64_t i = 0;
        float f = 0;
        snprintf(key, sizeof key, "i_%d", k);
        ck_assert_int_eq(del_checkpoint_field_kind(r, key), DEL_CHECKPOINT_KIND_I64);
        ck_assert_del_ok(del_checkpoint_get_i64(r, key, &i));
        ck_assert_int_eq(i, (int64_t)k * k * k * 1000003 - 7);
        snprintf(key, sizeof key, "F.%d", k);
        ck_assert_int_eq(del_checkpoint_field_kind(r, key), DEL_CHECKPOINT_KIND_F32);
        ck_assert_del_ok(del_checkpoint_get_f32(r, key, &f));
        ck_assert(f == (float)k / 8.0f - 3.0f);
    }
    ck_assert_int_eq(del_checkpoint_num_tensors(r), 3);
    ck_assert_str_eq(del_checkpoint_tensor_name(r, 0), "lwf.y_old");
    del_tensor *g = NULL;
    ck_assert_del_ok(del_checkpoint_get_tensor(&g, r, "lwf.y_old"));
    ck_assert_int_eq(del_tensor_dtype(g), DEL_DTYPE_F32);
    ck_assert_int_eq(del_tensor_ndim(g), 2);
    ck_assert_int_eq(del_tensor_dim(g, 0), 2);
    ck_assert_int_eq(del_tensor_dim(g, 1), 3);
    ck_assert(memcmp(del_tensor_data(g), yo, sizeof yo) == 0);
    del_tensor_free(g);
    ck_assert_del_ok(del_checkpoint_get_tensor(&g, r, "pool"));
    ck_assert_int_eq(del_tensor_dtype(g), DEL_DTYPE_I32);
    ck_assert(memcmp(del_tensor_data(g), idx, sizeof idx) == 0);
    del_tensor_free(g);
    ck_assert_del_ok(del_checkpoint_get_tensor(&g, r, "images"));
    ck_assert_int_eq(del_tensor_dtype(g), DEL_DTYPE_U8);
    ck_assert_int_eq(del_tensor_ndim(g), 4);
    ck_assert(memcmp(del_tensor_data(g), px, sizeof px) == 0);
    del_tensor_free(g);

    /* both models restore, the student with its optimizer */
    del_model *s2 = fresh(STUDENT), *t2 = fresh(TEACHER);
    del_optimizer *opt2 = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt2, s2, 0.5f, 0.5f, 0.0f, 0));
    ck_assert_del_ok(del_checkpoint_restore_model(r, "student", s2, opt2));
    ck_assert_del_ok(del_checkpoint_restore_model(r, "teacher", t2, NULL));
    assert_same_params(student, s2);
    assert_same_params(teacher, t2);
    ck_assert_int_eq(del_optimizer_steps(opt2), 1);
    ck_assert(del_optimizer_lr(opt2) == del_optimizer_lr(opt));
    ck_assert_int_eq(del_model_layer_frozen(s2, 0), 1);
    ck_assert_int_eq(del_model_layer_frozen(s2, 1), 0);
    ck_assert(del_model_layer_lr_mult(s2, 4) == 0.5f);
    ck_assert(del_model_layer_lr_mult(t2, 5) == 0.5f);
    /* one more identical step: the momentum came back too */
    float *g1 = del_model_grads(student), *g2 = del_model_grads(s2);
    for (int64_t i = 0; i < del_model_num_params(student); i++)
        g1[i] = g2[i] = 0.01f * (float)(i % 5);
    ck_assert_del_ok(del_optimizer_step(opt));
    ck_assert_del_ok(del_optimizer_step(opt2));
    assert_same_params(student, s2);
    assert_same_dropout(student, s2);
    assert_same_dropout(teacher, t2);

    del_checkpoint_free(r);
    del_checkpoint_free(ck);
    del_tensor_free(t_yo);
    del_tensor_free(t_idx);
    del_tensor_free(t_px);
    del_optimizer_free(opt);
    del_optimizer_free(opt2);
    del_model_free(student);
    del_model_free(teacher);
    del_model_free(s2);
    del_model_free(t2);
    test_remove_tree(tmpdir);
}
END_TEST

/* The format written: 1 when the record fits it, else 2. */
static uint8_t version_of(const del_checkpoint *ck)
{
    size_t n = 0;
    uint8_t *b = bytes_of(ck, &n);
    uint8_t v = b[4];
    del_buffer_free(b);
    return v;
}

START_TEST(test_format_1_is_written_when_the_record_fits_it)
{
    del_model *m = trained(STUDENT, 1, NULL);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, DEL_CHECKPOINT_MODEL, m));
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "supervised"));
    char key[16];
    for (int k = 0; k < 64; k++) {
        snprintf(key, sizeof key, "k%d", k);
        ck_assert_del_ok(del_checkpoint_set_i64(ck, key, k));
    }
    ck_assert_int_eq(version_of(ck), 1);
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k64", 64)); /* a 65th field */
    ck_assert_int_eq(version_of(ck), 2);
    del_checkpoint_free(ck);

    const char *const v2_keys[] = {"Upper", "dotted.key", "a23456789012345678901234567890123"};
    for (int i = 0; i < 3; i++) {
        ck_assert_del_ok(del_checkpoint_new(&ck));
        ck_assert_del_ok(del_checkpoint_add_model(ck, DEL_CHECKPOINT_MODEL, m));
        ck_assert_del_ok(del_checkpoint_set_trainer(ck, "supervised"));
        ck_assert_int_eq(version_of(ck), 1);
        ck_assert_del_ok(del_checkpoint_set_f32(ck, v2_keys[i], 1.0f));
        ck_assert_int_eq(version_of(ck), 2);
        del_checkpoint_free(ck);
    }
    /* another model name, a second model, a tensor, no model at all */
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_int_eq(version_of(ck), 2);
    ck_assert_del_ok(del_checkpoint_add_model(ck, "student", m));
    ck_assert_int_eq(version_of(ck), 2);
    del_checkpoint_free(ck);
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, DEL_CHECKPOINT_MODEL, m));
    ck_assert_int_eq(version_of(ck), 1);
    ck_assert_del_ok(del_checkpoint_add_model(ck, "b", m));
    ck_assert_int_eq(version_of(ck), 2);
    del_checkpoint_free(ck);
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, DEL_CHECKPOINT_MODEL, m));
    const int64_t one = 1;
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 1, &one));
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "t", t));
    ck_assert_int_eq(version_of(ck), 2);
    /* an empty record writes and reads back empty */
    del_checkpoint *e = NULL, *r = NULL;
    ck_assert_del_ok(del_checkpoint_new(&e));
    r = read_back(e);
    ck_assert_int_eq(del_checkpoint_num_models(r), 0);
    ck_assert_int_eq(del_checkpoint_num_tensors(r), 0);
    ck_assert_ptr_null(del_checkpoint_trainer(r));
    del_checkpoint_free(r);
    del_checkpoint_free(e);
    del_tensor_free(t);
    del_checkpoint_free(ck);
    del_model_free(m);
}
END_TEST

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The layout of docs/file-format.md, read by hand from a small record:
 * a model "m", a tensor "t" i32 [2] = {7, -2} and a trainer "tr" with
 * one i64 field "k" = 5. */
START_TEST(test_format_2_layout_is_the_documented_one)
{
    del_model *m = fresh("input 1 1 2; flatten; linear 1");
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "m", m));
    const int64_t two = 2;
    const int32_t v[2] = {7, -2};
    del_tensor *t = tensor_of(DEL_DTYPE_I32, 1, &two, v);
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "t", t));
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "tr"));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k", 5));
    size_t n = 0;
    uint8_t *f = bytes_of(ck, &n);
    uLongf plen = (uLongf)get_le64(f + 24);
    uint8_t *p = malloc(plen);
    ck_assert_int_eq(uncompress(p, &plen, f + 40, (uLong)(n - 40)), Z_OK);
    ck_assert_uint_eq(get_le32(p), 3); /* sections */
    size_t at = 4;
    /* MODL: str8 name, u64 model file size, the model file, the state */
    ck_assert(memcmp(p + at, "MODL", 4) == 0);
    uint64_t size = get_le64(p + at + 4);
    ck_assert(memcmp(p + at + 12, "\1m", 2) == 0);
    uint64_t mlen = get_le64(p + at + 14);
    void *mfile = NULL;
    size_t mlen2 = 0;
    ck_assert_del_ok(del_model_save_buffer(m, &mfile, &mlen2));
    ck_assert_uint_eq(mlen, mlen2);
    ck_assert(memcmp(p + at + 22, mfile, mlen2) == 0);
    del_buffer_free(mfile);
    /* state: seed, 4 x u64 stream, u32 layers (2), 2 x {u8, f32} */
    ck_assert_uint_eq(size, 2 + 8 + mlen + 8 + 32 + 4 + 2 * 5);
    ck_assert_uint_eq(get_le64(p + at + 22 + mlen), 99); /* the seed */
    ck_assert_uint_eq(get_le32(p + at + 22 + mlen + 40), 2);
    at += 12 + size;
    /* TNSR: str8 name, u8 dtype, u8 ndim, u64 dims, the elements */
    ck_assert(memcmp(p + at, "TNSR", 4) == 0);
    ck_assert_uint_eq(get_le64(p + at + 4), 2 + 2 + 8 + 8);
    static const uint8_t tensor[] = {1, 't', 2, 1, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff};
    ck_assert(memcmp(p + at + 12, tensor, sizeof tensor) == 0);
    at += 12 + sizeof tensor;
    /* TRNR: str8 name, u32 count, {str8 key, u8 kind, 8 bytes} */
    ck_assert(memcmp(p + at, "TRNR", 4) == 0);
    static const uint8_t trainer[] = {2, 't', 'r', 1, 0, 0, 0, 1, 'k', 1, 5, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_uint_eq(get_le64(p + at + 4), sizeof trainer);
    ck_assert(memcmp(p + at + 12, trainer, sizeof trainer) == 0);
    ck_assert_uint_eq(at + 12 + sizeof trainer, plen);
    free(p);
    del_buffer_free(f);
    del_tensor_free(t);
    del_checkpoint_free(ck);
    del_model_free(m);
}
END_TEST

/* What a trainer restoring several models does: check all, then restore
 * all. */
static del_status restore_all(const del_checkpoint *ck, int n, const char *const *names, del_model **models,
                              del_optimizer **opts)
{
    for (int i = 0; i < n; i++) {
        del_status st = del_checkpoint_check_model(ck, names[i], models[i], opts[i]);
        if (st != DEL_OK)
            return st;
    }
    for (int i = 0; i < n; i++)
        ck_assert_del_ok(del_checkpoint_restore_model(ck, names[i], models[i], opts[i]));
    return DEL_OK;
}

START_TEST(test_a_mismatch_in_the_second_model_leaves_the_first_untouched)
{
    del_optimizer *opt = NULL;
    del_model *a = trained(STUDENT, 1, &opt), *b = trained(TEACHER, 2, NULL);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "a", a));
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "a", opt));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "b", b));
    del_checkpoint *r = read_back(ck);

    del_model *a2 = fresh(STUDENT), *b_wide = fresh("input 1 4 4; conv2d 3 k=3 p=1; batchnorm; relu; flatten; "
                                                    "dropout 0.25; linear 3");
    del_optimizer *opt2 = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt2, a2, 0.5f, 0.5f, 0.0f, 0));
    del_model *before = fresh(STUDENT);
    const char *const names[2] = {"a", "b"};
    del_model *models[2] = {a2, b_wide};
    del_optimizer *opts[2] = {opt2, NULL};
    ck_assert_del_err(restore_all(r, 2, names, models, opts), DEL_EINVAL,
                      "layer 0 (conv2d) differs: out 2 in model 'b' of the checkpoint '<buffer>', 3 in 'model'");
    assert_same_params(a2, before);
    ck_assert_int_eq(del_optimizer_steps(opt2), 0);
    ck_assert_int_eq(del_model_layer_frozen(a2, 0), 0);
    /* one call is all or nothing too: the right model, an optimizer of the
     * wrong kind */
    del_optimizer *adam = NULL;
    ck_assert_del_ok(del_optimizer_new_adamw(&adam, a2, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f));
    ck_assert_del_err(del_checkpoint_restore_model(r, "a", a2, adam), DEL_EINVAL, "'opt' is AdamW but model 'a'");
    assert_same_params(a2, before);
    ck_assert_int_eq(del_model_layer_frozen(a2, 0), 0);
    ck_assert_int_eq(del_optimizer_steps(adam), 0);
    /* with the right second model both restore */
    del_model *b2 = fresh(TEACHER);
    models[1] = b2;
    ck_assert_del_ok(restore_all(r, 2, names, models, opts));
    assert_same_params(a, a2);
    assert_same_params(b, b2);
    ck_assert_int_eq(del_optimizer_steps(opt2), 1);

    del_optimizer_free(adam);
    del_optimizer_free(opt);
    del_optimizer_free(opt2);
    del_checkpoint_free(ck);
    del_checkpoint_free(r);
    del_model_free(a);
    del_model_free(b);
    del_model_free(a2);
    del_model_free(b2);
    del_model_free(b_wide);
    del_model_free(before);
}
END_TEST

/* A record restores any number of times, into optimizers with or without
 * the buffers it holds. */
START_TEST(test_restore_copies_and_leaves_the_record_reusable)
{
    del_optimizer *opt = NULL;
    del_model *src = trained(STUDENT, 1, &opt);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "m", src));
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "m", opt));
    del_model *x = fresh(STUDENT), *y = fresh(STUDENT);
    del_optimizer *ox = NULL, *oy = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&ox, x, 0.5f, 0.5f, 0.0f, 0));
    ck_assert_del_ok(del_optimizer_new_sgd(&oy, y, 0.5f, 0.0f, 0.0f, 0)); /* no momentum buffer */
    ck_assert_del_ok(del_checkpoint_restore_model(ck, "m", x, ox));
    ck_assert_del_ok(del_checkpoint_restore_model(ck, "m", y, oy));
    float *g = del_model_grads(src), *gx = del_model_grads(x), *gy = del_model_grads(y);
    for (int64_t i = 0; i < del_model_num_params(src); i++)
        g[i] = gx[i] = gy[i] = 0.03f * (float)(i % 3) - 0.01f;
    ck_assert_del_ok(del_optimizer_step(opt));
    ck_assert_del_ok(del_optimizer_step(ox));
    ck_assert_del_ok(del_optimizer_step(oy));
    assert_same_params(src, x);
    assert_same_params(src, y);
    /* get_model: a new model with the groups and the stream */
    del_model *z = NULL;
    ck_assert_del_ok(del_checkpoint_get_model(&z, ck, "m"));
    ck_assert_int_eq(del_model_layer_frozen(z, 0), 1);
    ck_assert(del_model_layer_lr_mult(z, 4) == 0.5f);
    del_model *w = fresh(STUDENT);
    ck_assert_del_ok(del_checkpoint_restore_model(ck, "m", w, NULL));
    assert_same_params(z, w);
    assert_same_dropout(z, w);
    del_optimizer_free(opt);
    del_optimizer_free(ox);
    del_optimizer_free(oy);
    del_checkpoint_free(ck);
    del_model_free(src);
    del_model_free(x);
    del_model_free(y);
    del_model_free(z);
    del_model_free(w);
}
END_TEST

/* A small format-2 file: two models, an optimizer, a tensor, a trainer. */
static uint8_t *small_v2(size_t *n)
{
    del_model *a = fresh("input 1 1 2; flatten; linear 1"), *b = fresh("input 1 1 2; flatten; linear 2 bias=0");
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, a, 0.1f, 0.9f, 0.0f, 0));
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "a", a));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "b", b));
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "a", opt));
    const int64_t two = 2;
    const int32_t v[2] = {3, 4};
    del_tensor *t = tensor_of(DEL_DTYPE_I32, 1, &two, v);
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "t", t));
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "x"));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "steps", 3));
    ck_assert_del_ok(del_checkpoint_set_f32(ck, "lr", 0.5f));
    void *buf = bytes_of(ck, n);
    uint8_t *copy = malloc(*n);
    memcpy(copy, buf, *n);
    del_buffer_free(buf);
    del_tensor_free(t);
    del_checkpoint_free(ck);
    del_optimizer_free(opt);
    del_model_free(a);
    del_model_free(b);
    return copy;
}

START_TEST(test_every_truncation_and_flipped_byte_of_a_v2_file_is_refused)
{
    size_t n = 0;
    uint8_t *f = small_v2(&n);
    ck_assert_uint_eq(f[4], 2);
    del_checkpoint *r = (del_checkpoint *)1;
    for (size_t len = 0; len < n; len++) {
        ck_assert_int_eq(del_checkpoint_read_buffer(&r, f, len), DEL_EFORMAT);
        ck_assert_ptr_null(r);
    }
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            f[i] ^= (uint8_t)(1u << bit);
            del_status st = del_checkpoint_read_buffer(&r, f, n);
            ck_assert_msg(st == DEL_EFORMAT, "byte %zu bit %d: %d (%s)", i, bit, (int)st, del_last_error());
            ck_assert_ptr_null(r);
            f[i] ^= (uint8_t)(1u << bit);
        }
    ck_assert_del_ok(del_checkpoint_read_buffer(&r, f, n));
    del_checkpoint_free(r);
    free(f);
}
END_TEST

/* The payload of f wrapped again in a valid container (real checksums),
 * so that damage reaches the section parsers, not the CRC. */
static uint8_t *rewrap(const uint8_t *payload, size_t plen, size_t *n)
{
    uLongf zlen = compressBound(plen);
    uint8_t *file = malloc(40 + zlen);
    ck_assert_int_eq(compress2(file + 40, &zlen, payload, plen, 1), Z_OK);
    memcpy(file, "DELC", 4);
    set_le(file + 4, 2, 4);
    set_le(file + 8, 0, 4);
    set_le(file + 12, 40, 4);
    set_le(file + 16, zlen, 8);
    set_le(file + 24, plen, 8);
    set_le(file + 32, crc32(0L, file + 40, (uInt)zlen), 4);
    fix_header_crc(file);
    *n = 40 + zlen;
    return file;
}

START_TEST(test_every_truncated_or_damaged_v2_payload_is_checked)
{
    size_t n = 0;
    uint8_t *f = small_v2(&n);
    uLongf plen = (uLongf)get_le64(f + 24);
    uint8_t *p = malloc(plen);
    ck_assert_int_eq(uncompress(p, &plen, f + 40, (uLong)(n - 40)), Z_OK);
    del_checkpoint *r = NULL;
    size_t wn = 0;
    uint8_t *w = rewrap(p, plen, &wn);
    ck_assert_del_ok(del_checkpoint_read_buffer(&r, w, wn)); /* the wrapper is right */
    del_checkpoint_free(r);
    free(w);
    /* every cut: each size is declared, so each is refused */
    for (size_t len = 0; len < plen; len++) {
        w = rewrap(p, len, &wn);
        del_status st = del_checkpoint_read_buffer(&r, w, wn);
        ck_assert_msg(st == DEL_EFORMAT, "cut at %zu: %d (%s)", len, (int)st, del_last_error());
        ck_assert_ptr_null(r);
        free(w);
    }
    /* every flipped bit of a size or a name; values may still be valid,
     * then the record reads (and frees) whole */
    int refused = 0;
    for (size_t i = 0; i < plen; i++)
        for (int bit = 0; bit < 8; bit++) {
            p[i] ^= (uint8_t)(1u << bit);
            w = rewrap(p, plen, &wn);
            del_status st = del_checkpoint_read_buffer(&r, w, wn);
            ck_assert_msg(st == DEL_OK || st == DEL_EFORMAT, "byte %zu: %d", i, (int)st);
            ck_assert(st == DEL_OK ? r != NULL : r == NULL);
            refused += st != DEL_OK;
            del_checkpoint_free(r);
            free(w);
            p[i] ^= (uint8_t)(1u << bit);
        }
    ck_assert_int_gt(refused, (int)plen); /* most flips are caught */
    /* a section count larger than the sections there are */
    put_u32(p, get_le32(p) + 1);
    w = rewrap(p, plen, &wn);
    ck_assert_del_err(del_checkpoint_read_buffer(&r, w, wn), DEL_EFORMAT, "section 6 of 6 is missing");
    free(w);
    free(p);
    free(f);
}
END_TEST

/* Every section of a small payload grown by one byte (its size too): each
 * content must fill its section exactly, so each is refused; and the
 * sections must come in the documented order. */
START_TEST(test_a_byte_more_in_any_section_or_sections_out_of_order_are_refused)
{
    size_t n = 0;
    uint8_t *f = small_v2(&n);
    uLongf plen = (uLongf)get_le64(f + 24);
    uint8_t *p = malloc(plen), *q = malloc(plen + 1);
    ck_assert_int_eq(uncompress(p, &plen, f + 40, (uLong)(n - 40)), Z_OK);
    const uint32_t count = get_le32(p);
    ck_assert_uint_eq(count, 5); /* MODL MODL OPTM TNSR TRNR */
    static const char *const why[5] = {"bytes after the model state", "bytes after the model state",
                                       "bytes after the optimizer buffers", "bytes after the tensor",
                                       "bytes after the trainer record"};
    size_t at = 4;
    for (uint32_t k = 0; k < count; k++) {
        const uint64_t size = get_le64(p + at + 4);
        const size_t end = at + 12 + (size_t)size;
        memcpy(q, p, end);
        q[end] = 0;
        memcpy(q + end + 1, p + end, plen - end);
        set_le(q + at + 4, size + 1, 8);
        size_t wn = 0;
        uint8_t *w = rewrap(q, plen + 1, &wn);
        del_checkpoint *r = NULL;
        ck_assert_del_err(del_checkpoint_read_buffer(&r, w, wn), DEL_EFORMAT, why[k]);
        ck_assert_ptr_null(r);
        free(w);
        at = end;
    }
    ck_assert_uint_eq(at, plen);
    /* the sections in another order: the tensor before the optimizer, the
     * optimizer before its model */
    size_t start[6];
    at = 4;
    for (uint32_t k = 0; k < count; k++) {
        start[k] = at;
        at += 12 + (size_t)get_le64(p + at + 4);
    }
    start[5] = at;
    const int orders[2][5] = {{0, 1, 3, 2, 4}, {2, 0, 1, 3, 4}};
    const char *const order_why[2] = {"sections out of order", "optimizer of a model the file does not hold"};
    for (int o = 0; o < 2; o++) {
        size_t len = 4;
        memcpy(q, p, 4);
        for (int k = 0; k < 5; k++) {
            const int sec = orders[o][k];
            memcpy(q + len, p + start[sec], start[sec + 1] - start[sec]);
            len += start[sec + 1] - start[sec];
        }
        ck_assert_uint_eq(len, plen);
        size_t wn = 0;
        uint8_t *w = rewrap(q, len, &wn);
        del_checkpoint *r = NULL;
        ck_assert_del_err(del_checkpoint_read_buffer(&r, w, wn), DEL_EFORMAT, order_why[o]);
        free(w);
    }
    free(q);
    free(p);
    free(f);
}
END_TEST

static const char *data_file(const char *name, char *buf, size_t size)
{
    const char *dir = getenv("DEL_TEST_DATA");
    snprintf(buf, size, "%s/io/%s", dir ? dir : "tests/data", name);
    return buf;
}

/* The state tests/data/io/make_v1_checkpoints.c saved in v1_sgd.delc. */
static del_model *v1_recipe(del_optimizer **opt)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; dropout 0.5; linear 3; linear 2"));
    ck_assert_del_ok(del_model_init(m, 7));
    const int64_t xs[4] = {1, 1, 2, 2};
    del_tensor *x = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xs));
    ck_assert_del_ok(del_model_set_training(m, 1));
    ck_assert_del_ok(del_model_forward(m, x));
    ck_assert_del_ok(del_optimizer_new_sgd(opt, m, 0.1f, 0.9f, 1e-3f, 1));
    float *g = del_model_grads(m);
    for (int64_t i = 0; i < del_model_num_params(m); i++)
        g[i] = 0.25f * (float)(i + 1);
    ck_assert_del_ok(del_optimizer_step(*opt));
    ck_assert_del_ok(del_model_freeze(m, 2, 2));
    ck_assert_del_ok(del_model_set_lr_mult(m, 3, 3, 0.5f));
    del_tensor_free(x);
    return m;
}

START_TEST(test_format_1_files_of_the_old_writer_still_load)
{
    char path[512];
    del_checkpoint *r = NULL;
    ck_assert_del_ok(del_checkpoint_read(&r, data_file("v1_sgd.delc", path, sizeof path)));
    ck_assert_int_eq(del_checkpoint_num_models(r), 1);
    ck_assert_str_eq(del_checkpoint_model_name(r, 0), DEL_CHECKPOINT_MODEL);
    ck_assert_str_eq(del_checkpoint_optimizer_type(r, "model"), "sgd");
    ck_assert_ptr_null(del_checkpoint_trainer(r));
    ck_assert_int_eq(del_checkpoint_num_tensors(r), 0);
    del_optimizer *opt = NULL, *opt2 = NULL;
    del_model *want = v1_recipe(&opt), *m = fresh("input 1 2 2; flatten; dropout 0.5; linear 3; linear 2");
    ck_assert_del_ok(del_optimizer_new_sgd(&opt2, m, 0.3f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_checkpoint_restore_model(r, "model", m, opt2));
    assert_same_params(want, m);
    assert_same_dropout(want, m);
    ck_assert_int_eq(del_optimizer_steps(opt2), 1);
    ck_assert(del_optimizer_lr(opt2) == 0.1f);
    ck_assert_int_eq(del_model_layer_frozen(m, 2), 1);
    ck_assert(del_model_layer_lr_mult(m, 3) == 0.5f);
    /* and today's writer writes these very bytes */
    del_optimizer_free(opt);
    del_model_free(want);
    want = v1_recipe(&opt);
    size_t nf = 0, nb = 0;
    uint8_t *file = read_file(path, &nf);
    void *buf = NULL;
    ck_assert_del_ok(del_checkpoint_save_buffer(want, opt, &buf, &nb));
    ck_assert_uint_eq(nb, nf);
    ck_assert(memcmp(buf, file, nf) == 0);
    del_buffer_free(buf);
    free(file);
    del_checkpoint_free(r);

    /* a trainer's: the settings of make_v1_checkpoints.c */
    ck_assert_del_ok(del_checkpoint_read(&r, data_file("v1_trainer.delc", path, sizeof path)));
    ck_assert_str_eq(del_checkpoint_trainer(r), "supervised");
    ck_assert_str_eq(del_checkpoint_optimizer_type(r, "model"), "sgd");
    int64_t v = 0;
    ck_assert_del_ok(del_checkpoint_get_i64(r, "batch", &v));
    ck_assert_int_eq(v, 4);
    ck_assert_del_ok(del_checkpoint_get_i64(r, "steps_done", &v));
    ck_assert_int_eq(v, 2);
    ck_assert_del_ok(del_checkpoint_get_i64(r, "total_steps", &v));
    ck_assert_int_eq(v, 5);
    ck_assert_del_ok(del_checkpoint_get_i64(r, "labeled", &v));
    ck_assert_int_eq(v, 6);
    float lr = 0;
    ck_assert_del_ok(del_checkpoint_get_f32(r, "sgd_lr", &lr));
    ck_assert(lr > 0.0f);
    del_checkpoint_free(r);
    del_optimizer_free(opt);
    del_optimizer_free(opt2);
    del_model_free(want);
    del_model_free(m);
}
END_TEST

START_TEST(test_a_newer_format_is_refused_with_its_number)
{
    size_t n = 0;
    uint8_t *f = small_v2(&n);
    f[4] = 3;
    fix_header_crc(f);
    del_checkpoint *r = NULL;
    ck_assert_del_err(del_checkpoint_read_buffer(&r, f, n), DEL_EFORMAT,
                      "'<buffer>' was written by a newer libdel (format 3, this build reads <= 2)");
    ck_assert_ptr_null(r);
    free(f);
}
END_TEST

START_TEST(test_absent_models_tensors_and_fields_are_estate)
{
    size_t n = 0;
    uint8_t *f = small_v2(&n);
    del_checkpoint *r = NULL;
    ck_assert_del_ok(del_checkpoint_read_buffer(&r, f, n));
    int64_t i = 42;
    float x = 4.5f;
    ck_assert_int_eq(del_checkpoint_field_kind(r, "nope"), DEL_CHECKPOINT_KIND_NONE);
    ck_assert_del_err(del_checkpoint_get_i64(r, "nope", &i), DEL_ESTATE, "'<buffer>' has no field \"nope\"");
    ck_assert_int_eq(i, 42); /* a default survives */
    ck_assert_del_err(del_checkpoint_get_i64(r, "lr", &i), DEL_ESTATE, "field 'lr' of '<buffer>' is an f32, not "
                                                                       "an i64");
    ck_assert_int_eq(i, 42);
    ck_assert_del_err(del_checkpoint_get_f32(r, "steps", &x), DEL_ESTATE, "is an i64, not an f32");
    ck_assert(x == 4.5f);
    ck_assert_del_ok(del_checkpoint_get_f32(r, "lr", &x));
    ck_assert(x == 0.5f);
    del_tensor *t = (del_tensor *)1;
    ck_assert_del_err(del_checkpoint_get_tensor(&t, r, "T"), DEL_ESTATE, "has no tensor \"T\"");
    ck_assert_ptr_null(t);
    del_model *m = fresh("input 1 1 2; flatten; linear 1"), *got = (del_model *)1;
    ck_assert_int_eq(del_checkpoint_has_model(r, "a"), 1);
    ck_assert_int_eq(del_checkpoint_has_model(r, "c"), 0);
    ck_assert_del_err(del_checkpoint_check_model(r, "c", m, NULL), DEL_ESTATE, "has no model \"c\"");
    ck_assert_del_err(del_checkpoint_restore_model(r, "c", m, NULL), DEL_ESTATE, "has no model \"c\"");
    ck_assert_del_err(del_checkpoint_get_model(&got, r, "c"), DEL_ESTATE, "has no model \"c\"");
    ck_assert_ptr_null(got);
    ck_assert_ptr_null(del_checkpoint_optimizer_type(r, "b")); /* a model without one */
    ck_assert_ptr_null(del_checkpoint_optimizer_type(r, "c"));
    ck_assert_ptr_null(del_checkpoint_field_name(r, 2));
    ck_assert_ptr_null(del_checkpoint_field_name(r, -1));
    ck_assert_ptr_null(del_checkpoint_model_name(r, 2));
    ck_assert_ptr_null(del_checkpoint_tensor_name(r, 1));
    /* optimizer state asked of a model stored without one */
    del_model *mb = fresh("input 1 1 2; flatten; linear 2 bias=0");
    del_optimizer *ob = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&ob, mb, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_err(del_checkpoint_check_model(r, "b", mb, ob), DEL_EINVAL, "model 'b' of the checkpoint '<buffer>' holds no "
                                                                              "optimizer state");
    /* the plain loader wants the model "model" */
    ck_assert_del_err(del_checkpoint_load_buffer(f, n, m, NULL), DEL_EINVAL, "holds no model 'model' (it holds 2");
    del_optimizer_free(ob);
    del_model_free(mb);
    del_model_free(m);
    del_checkpoint_free(r);
    free(f);
    /* a record without a trainer */
    del_checkpoint *e = NULL;
    ck_assert_del_ok(del_checkpoint_new(&e));
    ck_assert_ptr_null(del_checkpoint_trainer(e));
    ck_assert_int_eq(del_checkpoint_num_fields(e), 0);
    del_checkpoint_free(e);
}
END_TEST

START_TEST(test_duplicate_names_are_refused_and_fields_are_replaced)
{
    del_optimizer *opt = NULL;
    del_model *m = trained(STUDENT, 1, &opt);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "m", m));
    ck_assert_del_err(del_checkpoint_add_model(ck, "m", m), DEL_EINVAL, "has a model 'm' already");
    ck_assert_del_ok(del_checkpoint_add_model(ck, "M", m)); /* names are case-sensitive */
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "m", opt));
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, "m", opt), DEL_EINVAL, "model 'm' has an optimizer already");
    const int64_t one = 1;
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_F32, 1, &one));
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "m", t)); /* tensors have their own names */
    ck_assert_del_err(del_checkpoint_add_tensor(ck, "m", t), DEL_EINVAL, "has a tensor 'm' already");
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "tr"));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k", 1));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k", 2));
    ck_assert_del_ok(del_checkpoint_set_f32(ck, "k2", 1.0f));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k2", 3));
    ck_assert_int_eq(del_checkpoint_num_fields(ck), 2);
    del_checkpoint *r = read_back(ck);
    int64_t v = 0;
    ck_assert_del_ok(del_checkpoint_get_i64(r, "k", &v));
    ck_assert_int_eq(v, 2);
    ck_assert_del_ok(del_checkpoint_get_i64(r, "k2", &v));
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(del_checkpoint_num_models(r), 2);
    del_checkpoint_free(r);
    del_checkpoint_free(ck);
    del_tensor_free(t);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

START_TEST(test_names_are_1_to_64_of_letters_digits_and_dot_dash_underscore)
{
    del_model *m = fresh("input 1 1 2; flatten; linear 1");
    const int64_t one = 1;
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_I32, 1, &one));
    char longest[65], too_long[66];
    memset(longest, 'a', 64);
    longest[64] = '\0';
    memset(too_long, 'b', 65);
    too_long[65] = '\0';
    const char *const good[] = {"a", "Z9", "head.old-2_x", "-", longest};
    const char *const bad[] = {"", too_long, "a b", "a/b", "caf\xc3\xa9", "tab\t", "a:b"};
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_del_ok(del_checkpoint_add_model(ck, good[i], m));
        ck_assert_del_ok(del_checkpoint_add_tensor(ck, good[i], t));
        ck_assert_del_ok(del_checkpoint_set_i64(ck, good[i], (int64_t)i));
        ck_assert_del_ok(del_checkpoint_set_trainer(ck, good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_del_err(del_checkpoint_add_model(ck, bad[i], m), DEL_EINVAL,
                          "'name' must be 1 to 64 characters of [A-Za-z0-9_.-]");
        ck_assert_del_err(del_checkpoint_add_tensor(ck, bad[i], t), DEL_EINVAL, "'name' must be");
        ck_assert_del_err(del_checkpoint_set_i64(ck, bad[i], 1), DEL_EINVAL, "'key' must be");
        ck_assert_del_err(del_checkpoint_set_f32(ck, bad[i], 1), DEL_EINVAL, "'key' must be");
        ck_assert_del_err(del_checkpoint_set_trainer(ck, bad[i]), DEL_EINVAL, "'name' must be");
        ck_assert_del_err(del_checkpoint_add_optimizer(ck, bad[i], NULL), DEL_EINVAL, "'opt'");
    }
    ck_assert_int_eq(del_checkpoint_num_models(ck), 5);
    ck_assert_int_eq(del_checkpoint_num_tensors(ck), 5);
    ck_assert_int_eq(del_checkpoint_num_fields(ck), 5);
    ck_assert_str_eq(del_checkpoint_trainer(ck), longest);
    del_checkpoint *r = read_back(ck);
    ck_assert_str_eq(del_checkpoint_model_name(r, 4), longest);
    ck_assert_str_eq(del_checkpoint_trainer(r), longest);
    del_checkpoint_free(r);
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, NULL));
    ck_assert_ptr_null(del_checkpoint_trainer(ck));
    del_checkpoint_free(ck);
    del_tensor_free(t);
    del_model_free(m);
}
END_TEST

START_TEST(test_limits_on_models_tensors_and_fields)
{
    del_model *m = fresh("input 1 1 1; flatten");
    const int64_t one = 1;
    del_tensor *t = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 1, &one));
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    char name[16];
    for (int i = 0; i < DEL_CHECKPOINT_MAX_MODELS; i++) {
        snprintf(name, sizeof name, "m%d", i);
        ck_assert_del_ok(del_checkpoint_add_model(ck, name, m));
    }
    ck_assert_del_err(del_checkpoint_add_model(ck, "one_more", m), DEL_EINVAL, "64 models already");
    for (int i = 0; i < DEL_CHECKPOINT_MAX_TENSORS; i++) {
        snprintf(name, sizeof name, "t%d", i);
        ck_assert_del_ok(del_checkpoint_add_tensor(ck, name, t));
    }
    ck_assert_del_err(del_checkpoint_add_tensor(ck, "one_more", t), DEL_EINVAL, "1024 tensors already");
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "tr"));
    for (int i = 0; i < DEL_CHECKPOINT_MAX_FIELDS; i++) {
        snprintf(name, sizeof name, "f%d", i);
        ck_assert_del_ok(del_checkpoint_set_i64(ck, name, i));
    }
    ck_assert_del_err(del_checkpoint_set_i64(ck, "one_more", 1), DEL_EINVAL, "1024 fields already");
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "f7", -7)); /* replacing is fine */
    del_checkpoint *r = read_back(ck);
    ck_assert_int_eq(del_checkpoint_num_models(r), 64);
    ck_assert_int_eq(del_checkpoint_num_tensors(r), 1024);
    ck_assert_int_eq(del_checkpoint_num_fields(r), 1024);
    int64_t v = 0;
    ck_assert_del_ok(del_checkpoint_get_i64(r, "f1023", &v));
    ck_assert_int_eq(v, 1023);
    del_checkpoint_free(r);
    del_checkpoint_free(ck);
    del_tensor_free(t);
    del_model_free(m);
}
END_TEST

START_TEST(test_optimizers_bind_to_the_model_they_were_made_over)
{
    del_optimizer *opt = NULL;
    del_model *a = trained(STUDENT, 1, &opt), *b = trained(STUDENT, 2, NULL);
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, "a", opt), DEL_ESTATE, "has no model \"a\" (add it first");
    ck_assert_del_ok(del_checkpoint_add_model(ck, "a", a));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "b", b));
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, "b", opt), DEL_EINVAL,
                      "'opt' was made for another model than the one added as 'b'");
    /* the model grew since it was added: the optimizer made then is stale */
    del_model *c = fresh("input 1 1 2; flatten; linear 2");
    ck_assert_del_ok(del_checkpoint_add_model(ck, "c", c));
    ck_assert_del_ok(del_model_add_linear(c, 2, 1));
    del_optimizer *oc = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&oc, c, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, "c", oc), DEL_ESTATE,
                      "model 'c' had 6 parameters when it was added, 'opt' was made for 12");
    ck_assert_ptr_null(del_checkpoint_optimizer_type(ck, "c"));
    ck_assert_del_ok(del_checkpoint_add_optimizer(ck, "a", opt));
    /* a model read back binds an optimizer of its architecture */
    del_checkpoint *r = read_back(ck);
    ck_assert_del_err(del_checkpoint_add_optimizer(r, "c", oc), DEL_EINVAL, "another architecture than 'c'");
    del_optimizer *ob = NULL;
    ck_assert_del_ok(del_optimizer_new_adamw(&ob, b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f));
    ck_assert_del_ok(del_checkpoint_add_optimizer(r, "b", ob));
    ck_assert_str_eq(del_checkpoint_optimizer_type(r, "b"), "adamw");
    del_checkpoint_free(r);
    del_checkpoint_free(ck);
    del_optimizer_free(opt);
    del_optimizer_free(oc);
    del_optimizer_free(ob);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
}
END_TEST

START_TEST(test_write_refuses_nonfinite_models_and_fields_without_a_trainer)
{
    del_model *a = fresh("input 1 1 2; flatten; linear 1"), *b = fresh("input 1 1 2; flatten; linear 1");
    del_model_params(b)[1] = NAN;
    del_checkpoint *ck = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "a", a));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "b", b)); /* kept, not written */
    void *buf = (void *)1;
    size_t size = 1;
    ck_assert_del_err(del_checkpoint_write_buffer(ck, &buf, &size), DEL_ENUMERIC,
                      "del_checkpoint_write_buffer: model 'b': layer 1 (linear) has NaN");
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(size, 0);
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/x.delc", tmpdir);
    ck_assert_del_err(del_checkpoint_write(ck, path), DEL_ENUMERIC, "DEL_SAVE_ALLOW_NONFINITE");
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_del_err(del_checkpoint_write(ck, ""), DEL_EINVAL, "'path' is empty");
    del_checkpoint_free(ck);
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_set_i64(ck, "k", 1));
    ck_assert_del_err(del_checkpoint_write_buffer(ck, &buf, &size), DEL_ESTATE, "no trainer name");
    ck_assert_del_ok(del_checkpoint_set_trainer(ck, "t"));
    ck_assert_del_ok(del_checkpoint_write(ck, path));
    del_checkpoint *r = NULL;
    ck_assert_del_ok(del_checkpoint_read(&r, path));
    ck_assert_str_eq(del_checkpoint_trainer(r), "t");
    del_checkpoint_free(r);
    /* NaN in a tensor or an f32 field is data, kept as it is */
    const int64_t two = 2;
    const float nan_inf[2] = {NAN, -INFINITY};
    del_tensor *t = tensor_of(DEL_DTYPE_F32, 1, &two, nan_inf), *g = NULL;
    ck_assert_del_ok(del_checkpoint_add_tensor(ck, "logits", t));
    ck_assert_del_ok(del_checkpoint_set_f32(ck, "best", INFINITY));
    r = read_back(ck);
    ck_assert_del_ok(del_checkpoint_get_tensor(&g, r, "logits"));
    ck_assert(memcmp(del_tensor_data(g), nan_inf, sizeof nan_inf) == 0);
    float best = 0;
    ck_assert_del_ok(del_checkpoint_get_f32(r, "best", &best));
    ck_assert(isinf(best));
    del_checkpoint_free(r);
    del_tensor_free(g);
    del_tensor_free(t);
    del_checkpoint_free(ck);
    ck_assert_del_err(del_checkpoint_read(&r, path + strlen(path)), DEL_EIO, "");
    test_remove_tree(tmpdir);
    del_model_free(a);
    del_model_free(b);
}
END_TEST

START_TEST(test_null_arguments_are_einval)
{
    del_model *m = fresh("input 1 1 2; flatten; linear 1");
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.1f, 0.0f, 0.0f, 0));
    const int64_t one = 1;
    del_tensor *t = NULL, *tout = NULL;
    ck_assert_del_ok(del_tensor_new(&t, DEL_DTYPE_U8, 1, &one));
    del_checkpoint *ck = NULL, *out = NULL;
    ck_assert_del_ok(del_checkpoint_new(&ck));
    ck_assert_del_ok(del_checkpoint_add_model(ck, "m", m));
    int64_t i = 0;
    float f = 0;
    void *buf = NULL;
    size_t size = 0;
    del_model *mout = NULL;
    ck_assert_del_err(del_checkpoint_new(NULL), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_add_model(NULL, "m", m), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_add_model(ck, NULL, m), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_checkpoint_add_model(ck, "n", NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_checkpoint_add_optimizer(NULL, "m", opt), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, NULL, opt), DEL_EINVAL, "'model_name'");
    ck_assert_del_err(del_checkpoint_add_optimizer(ck, "m", NULL), DEL_EINVAL, "'opt'");
    ck_assert_del_err(del_checkpoint_add_tensor(NULL, "t", t), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_add_tensor(ck, NULL, t), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_checkpoint_add_tensor(ck, "t", NULL), DEL_EINVAL, "'t'");
    ck_assert_del_err(del_checkpoint_set_trainer(NULL, "x"), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_set_i64(NULL, "k", 1), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_set_i64(ck, NULL, 1), DEL_EINVAL, "'key'");
    ck_assert_del_err(del_checkpoint_set_f32(NULL, "k", 1), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_set_f32(ck, NULL, 1), DEL_EINVAL, "'key'");
    ck_assert_del_err(del_checkpoint_write(NULL, "x"), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_write(ck, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_checkpoint_write_buffer(NULL, &buf, &size), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_write_buffer(ck, NULL, &size), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_write_buffer(ck, &buf, NULL), DEL_EINVAL, "'size'");
    ck_assert_del_err(del_checkpoint_read(NULL, "x"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_read(&out, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_checkpoint_read_buffer(NULL, "", 0), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_read_buffer(&out, NULL, 3), DEL_EINVAL, "'data'");
    ck_assert_del_err(del_checkpoint_read_buffer(&out, NULL, 0), DEL_EFORMAT, "empty");
    ck_assert_ptr_null(out);
    ck_assert_del_err(del_checkpoint_get_i64(NULL, "k", &i), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_get_i64(ck, NULL, &i), DEL_EINVAL, "'key'");
    ck_assert_del_err(del_checkpoint_get_i64(ck, "k", NULL), DEL_EINVAL, "'value'");
    ck_assert_del_err(del_checkpoint_get_f32(NULL, "k", &f), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_get_f32(ck, NULL, &f), DEL_EINVAL, "'key'");
    ck_assert_del_err(del_checkpoint_get_f32(ck, "k", NULL), DEL_EINVAL, "'value'");
    ck_assert_del_err(del_checkpoint_check_model(NULL, "m", m, NULL), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_check_model(ck, NULL, m, NULL), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_checkpoint_check_model(ck, "m", NULL, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_checkpoint_restore_model(NULL, "m", m, NULL), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_restore_model(ck, NULL, m, NULL), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_checkpoint_restore_model(ck, "m", NULL, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_checkpoint_get_model(NULL, ck, "m"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_get_model(&mout, NULL, "m"), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_get_model(&mout, ck, NULL), DEL_EINVAL, "'name'");
    ck_assert_del_err(del_checkpoint_get_tensor(NULL, ck, "t"), DEL_EINVAL, "'out'");
    ck_assert_del_err(del_checkpoint_get_tensor(&tout, NULL, "t"), DEL_EINVAL, "'ck'");
    ck_assert_del_err(del_checkpoint_get_tensor(&tout, ck, NULL), DEL_EINVAL, "'name'");
    ck_assert_ptr_null(mout);
    ck_assert_ptr_null(tout);
    /* the queries answer "nothing" */
    ck_assert_ptr_null(del_checkpoint_trainer(NULL));
    ck_assert_int_eq(del_checkpoint_num_fields(NULL), 0);
    ck_assert_ptr_null(del_checkpoint_field_name(NULL, 0));
    ck_assert_int_eq(del_checkpoint_field_kind(NULL, "k"), DEL_CHECKPOINT_KIND_NONE);
    ck_assert_int_eq(del_checkpoint_field_kind(ck, NULL), DEL_CHECKPOINT_KIND_NONE);
    ck_assert_int_eq(del_checkpoint_num_models(NULL), 0);
    ck_assert_ptr_null(del_checkpoint_model_name(NULL, 0));
    ck_assert_int_eq(del_checkpoint_has_model(NULL, "m"), 0);
    ck_assert_int_eq(del_checkpoint_has_model(ck, NULL), 0);
    ck_assert_ptr_null(del_checkpoint_optimizer_type(NULL, "m"));
    ck_assert_ptr_null(del_checkpoint_optimizer_type(ck, NULL));
    ck_assert_int_eq(del_checkpoint_num_tensors(NULL), 0);
    ck_assert_ptr_null(del_checkpoint_tensor_name(NULL, 0));
    del_checkpoint_free(NULL);
    del_checkpoint_free(ck);
    del_tensor_free(t);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

static Suite *checkpoint_v2_suite(void)
{
    Suite *s = suite_create("checkpoint_v2");
    TCase *tc = tcase_create("v2");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_two_models_an_optimizer_tensors_and_200_fields_round_trip);
    tcase_add_test(tc, test_format_1_is_written_when_the_record_fits_it);
    tcase_add_test(tc, test_format_2_layout_is_the_documented_one);
    tcase_add_test(tc, test_a_mismatch_in_the_second_model_leaves_the_first_untouched);
    tcase_add_test(tc, test_restore_copies_and_leaves_the_record_reusable);
    tcase_add_test(tc, test_every_truncation_and_flipped_byte_of_a_v2_file_is_refused);
    tcase_add_test(tc, test_every_truncated_or_damaged_v2_payload_is_checked);
    tcase_add_test(tc, test_a_byte_more_in_any_section_or_sections_out_of_order_are_refused);
    tcase_add_test(tc, test_format_1_files_of_the_old_writer_still_load);
    tcase_add_test(tc, test_a_newer_format_is_refused_with_its_number);
    tcase_add_test(tc, test_absent_models_tensors_and_fields_are_estate);
    tcase_add_test(tc, test_duplicate_names_are_refused_and_fields_are_replaced);
    tcase_add_test(tc, test_names_are_1_to_64_of_letters_digits_and_dot_dash_underscore);
    tcase_add_test(tc, test_limits_on_models_tensors_and_fields);
    tcase_add_test(tc, test_optimizers_bind_to_the_model_they_were_made_over);
    tcase_add_test(tc, test_write_refuses_nonfinite_models_and_fields_without_a_trainer);
    tcase_add_test(tc, test_null_arguments_are_einval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(checkpoint_v2_suite());
}
