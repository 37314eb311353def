/* Tests of checkpoints (src/io/checkpoint.c, the trainer's in
 * src/train/supervised.c) and of the trainer's total steps.
 *
 * The reference for every resume test is the run that was never
 * interrupted: a resumed run must end with the same bytes (parameters and
 * batchnorm statistics, compared as whole model files) as training
 * straight through. Models to resume into are initialised with another
 * seed, so anything the checkpoint fails to restore shows. */
#include <sys/stat.h>
#include <zlib.h>

#include "testutil.h"
#include "train_util.h"

static char tmpdir[] = "/tmp/del_test_ckpt_XXXXXX";

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* Conv, batchnorm and dropout: parameters, running statistics and the
 * model's random stream all matter. */
static del_model *cnn(uint64_t seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 28 28; conv2d 4 k=3 p=1 bias=0; batchnorm; relu; maxpool 2; "
                                             "flatten; linear 16; relu; dropout 0.5; linear 10"));
    ck_assert_del_ok(del_model_init(m, seed));
    return m;
}

/* The whole model file: parameters and batchnorm statistics. */
static void *model_bytes(const del_model *m, size_t *n)
{
    void *buf = NULL;
    ck_assert_del_ok(del_model_save_buffer(m, &buf, n));
    return buf;
}

static void assert_same_model(const del_model *a, const del_model *b, const char *what)
{
    size_t na = 0, nb = 0;
    void *ba = model_bytes(a, &na), *bb = model_bytes(b, &nb);
    ck_assert_msg(na == nb && memcmp(ba, bb, na) == 0, "%s: the models differ", what);
    del_buffer_free(ba);
    del_buffer_free(bb);
}

/* The settings of one resume scenario, applied to every trainer of it. */
typedef struct scenario {
    int adamw;
    int64_t warmup;
    int step_schedule;
    float clip;
    del_augment *aug;
    int prefetch;
} scenario;

static del_trainer *make_trainer(del_model *m, const scenario *sc, int64_t total)
{
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, fm_labeled));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 32));
    ck_assert_del_ok(del_trainer_set_seed(tr, 7));
    if (sc->adamw)
        ck_assert_del_ok(del_trainer_set_adamw(tr, 2e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f));
    if (sc->step_schedule)
        ck_assert_del_ok(del_trainer_set_step_schedule(tr, 5, 0.5f));
    ck_assert_del_ok(del_trainer_set_warmup(tr, sc->warmup));
    ck_assert_del_ok(del_trainer_set_clip_norm(tr, sc->clip));
    ck_assert_del_ok(del_trainer_set_augment(tr, sc->aug));
    ck_assert_del_ok(del_trainer_set_prefetch(tr, sc->prefetch));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, total));
    return tr;
}

/* Trains straight for n steps, and n/2 + save + (new model and trainer,
 * load) + n/2; both must end bit-identical. */
static void check_resume(const scenario *sc, int64_t n, const char *what)
{
    char path[512];
    tmp_path(path, sizeof path, "resume.delc");
    del_model *straight = cnn(1);
    del_trainer *t1 = make_trainer(straight, sc, n);
    ck_assert_del_ok(del_trainer_fit(t1, n));

    del_model *first = cnn(1);
    del_trainer *t2 = make_trainer(first, sc, n);
    ck_assert_del_ok(del_trainer_fit(t2, n / 2));
    ck_assert_del_ok(del_trainer_save_checkpoint(t2, path));
    del_trainer_free(t2);
    del_model_free(first);

    del_model *resumed = cnn(99);
    scenario other = *sc;
    other.prefetch = sc->prefetch ? 0 : 3; /* never changes results */
    del_trainer *t3 = make_trainer(resumed, &other, 5);
    /* settings the checkpoint replaces */
    ck_assert_del_ok(del_trainer_set_batch_size(t3, 10));
    ck_assert_del_ok(del_trainer_set_seed(t3, 1234));
    ck_assert_del_ok(del_trainer_load_checkpoint(t3, path));
    ck_assert_del_ok(del_trainer_fit(t3, n - n / 2));
    assert_same_model(straight, resumed, what);
    del_trainer_free(t1);
    del_trainer_free(t3);
    del_model_free(straight);
    del_model_free(resumed);
}

START_TEST(test_resume_sgd_cosine_total_steps_is_bit_identical)
{
    require_fmnist();
    scenario sc = {0};
    sc.prefetch = 2;
    check_resume(&sc, 20, "SGD, cosine over the total");
}
END_TEST

START_TEST(test_resume_adamw_warmup_clipping_is_bit_identical)
{
    require_fmnist();
    scenario sc = {0};
    sc.adamw = 1;
    sc.warmup = 6;
    sc.clip = 1.0f;
    check_resume(&sc, 20, "AdamW, warm-up, clipping");
}
END_TEST

START_TEST(test_resume_with_augmentation_and_prefetch_is_bit_identical)
{
    require_fmnist();
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_set_seed(aug, 3));
    ck_assert_del_ok(del_augment_add_random_crop(aug, 28, 28, 2, 0));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    scenario sc = {0};
    sc.aug = aug;
    sc.prefetch = 2;
    sc.step_schedule = 1;
    /* 24 steps of 32 cross the 500-image epoch boundary at step 16 */
    check_resume(&sc, 24, "augmentation + prefetch, step schedule");
    del_augment_free(aug);
}
END_TEST

START_TEST(test_resume_default_mode_continues_as_a_second_fit)
{
    /* Without total steps each fit has a fresh optimizer, so a checkpoint
     * between fits holds none, and the resumed fit equals the second fit
     * of the same trainer. */
    require_fmnist();
    char path[512];
    tmp_path(path, sizeof path, "default.delc");
    scenario sc = {0};
    del_model *a = cnn(1), *b = cnn(1), *c = cnn(5);
    del_trainer *ta = make_trainer(a, &sc, 0), *tb = make_trainer(b, &sc, 0), *tc = make_trainer(c, &sc, 0);
    ck_assert_del_ok(del_trainer_fit(ta, 8));
    ck_assert_del_ok(del_trainer_fit(ta, 8));
    ck_assert_del_ok(del_trainer_fit(tb, 8));
    ck_assert_del_ok(del_trainer_save_checkpoint(tb, path));
    ck_assert_del_ok(del_trainer_load_checkpoint(tc, path));
    ck_assert_del_ok(del_trainer_fit(tc, 8));
    assert_same_model(a, c, "default mode");
    del_trainer_free(ta);
    del_trainer_free(tb);
    del_trainer_free(tc);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
}
END_TEST

START_TEST(test_total_steps_make_split_fits_equal_one_fit)
{
    require_fmnist();
    scenario sc = {0};
    sc.warmup = 3;
    del_model *one = cnn(1), *split = cnn(1), *fresh = cnn(1), *reset = cnn(1);
    del_trainer *t1 = make_trainer(one, &sc, 15), *t2 = make_trainer(split, &sc, 15);
    ck_assert_del_ok(del_trainer_fit(t1, 15));
    ck_assert_del_ok(del_trainer_fit(t2, 5));
    ck_assert_del_ok(del_trainer_fit(t2, 10));
    assert_same_model(one, split, "fit(5) + fit(10) vs fit(15)");

    /* Default mode restarts the schedule per fit, and set_total_steps
     * drops the kept optimizer: both give the same, other weights. */
    del_trainer *t3 = make_trainer(fresh, &sc, 0), *t4 = make_trainer(reset, &sc, 5);
    ck_assert_del_ok(del_trainer_fit(t3, 5));
    ck_assert_del_ok(del_trainer_fit(t3, 10));
    ck_assert_del_ok(del_trainer_fit(t4, 5));
    ck_assert_del_ok(del_trainer_set_total_steps(t4, 10));
    ck_assert_del_ok(del_trainer_fit(t4, 10));
    assert_same_model(fresh, reset, "default mode vs a new run per fit");
    size_t n1 = 0, n3 = 0;
    void *b1 = model_bytes(one, &n1), *b3 = model_bytes(fresh, &n3);
    ck_assert_msg(n1 != n3 || memcmp(b1, b3, n1) != 0, "total steps made no difference");
    del_buffer_free(b1);
    del_buffer_free(b3);
    del_trainer_free(t1);
    del_trainer_free(t2);
    del_trainer_free(t3);
    del_trainer_free(t4);
    del_model_free(one);
    del_model_free(split);
    del_model_free(fresh);
    del_model_free(reset);
}
END_TEST

/* Saves at step `at` from the progress callback; records the status. */
typedef struct saver {
    del_trainer *trainer;
    const char *path;
    int64_t at;
    del_status save, load, set_total;
} saver;

static int save_from_callback(int64_t step, int64_t total, float loss, void *user)
{
    (void)total;
    (void)loss;
    saver *s = user;
    if (step == s->at) {
        s->save = del_trainer_save_checkpoint(s->trainer, s->path);
        s->load = del_trainer_load_checkpoint(s->trainer, s->path);
        s->set_total = del_trainer_set_total_steps(s->trainer, 1);
    }
    return 0;
}

START_TEST(test_saving_from_the_progress_callback_resumes_mid_fit)
{
    require_fmnist();
    char path[512];
    tmp_path(path, sizeof path, "callback.delc");
    scenario sc = {0};
    sc.prefetch = 3;
    del_model *straight = cnn(1), *resumed = cnn(42);
    del_trainer *t1 = make_trainer(straight, &sc, 20);
    saver s = {t1, path, 8, DEL_OK, DEL_OK, DEL_OK};
    ck_assert_del_ok(del_trainer_set_progress(t1, save_from_callback, 4, &s));
    ck_assert_del_ok(del_trainer_fit(t1, 20));
    ck_assert_int_eq(s.save, DEL_OK);
    ck_assert_int_eq(s.load, DEL_ESTATE); /* loading during a fit is refused */
    ck_assert_int_eq(s.set_total, DEL_ESTATE);

    del_trainer *t2 = make_trainer(resumed, &sc, 0);
    ck_assert_del_ok(del_trainer_load_checkpoint(t2, path));
    ck_assert_del_ok(del_trainer_fit(t2, 12));
    assert_same_model(straight, resumed, "saved from the callback at step 8");

    /* Without total steps the fit's optimizer is not kept: refused. */
    del_trainer *t3 = make_trainer(resumed, &sc, 0);
    tmp_path(path, sizeof path, "callback_default.delc");
    saver s3 = {t3, path, 2, DEL_OK, DEL_OK, DEL_OK};
    ck_assert_del_ok(del_trainer_set_progress(t3, save_from_callback, 1, &s3));
    ck_assert_del_ok(del_trainer_fit(t3, 3));
    ck_assert_int_eq(s3.save, DEL_ESTATE);
    ck_assert_int_eq(access(path, F_OK), -1);
    del_trainer_free(t1);
    del_trainer_free(t2);
    del_trainer_free(t3);
    del_model_free(straight);
    del_model_free(resumed);
}
END_TEST

/* ---- the low-level calls in a hand-written loop ---- */

/* n steps of a textbook loop over fixed batches of the first 64 labeled
 * images (batch b takes images 16 b .. 16 b + 15 of them, b = step % 4). */
static void manual_steps(del_model *m, del_optimizer *opt, int64_t first, int64_t n)
{
    const float mean[1] = {0.2860f}, stdv[1] = {0.3530f};
    const int64_t xshape[4] = {16, 1, 28, 28}, yshape[1] = {16}, gshape[2] = {16, 10};
    del_tensor *x = NULL, *y = NULL, *g = NULL;
    ck_assert_del_ok(del_tensor_new(&x, DEL_DTYPE_F32, 4, xshape));
    ck_assert_del_ok(del_tensor_new(&y, DEL_DTYPE_I32, 1, yshape));
    ck_assert_del_ok(del_tensor_new(&g, DEL_DTYPE_F32, 2, gshape));
    ck_assert_del_ok(del_model_set_training(m, 1));
    for (int64_t s = first; s < first + n; s++) {
        int64_t idx[16];
        for (int i = 0; i < 16; i++)
            idx[i] = (s % 4) * 16 + i;
        float loss = 0.0f;
        ck_assert_del_ok(del_dataset_batch(fm_labeled, idx, 16, mean, stdv, x, y));
        ck_assert_del_ok(del_model_forward(m, x));
        ck_assert_del_ok(del_loss_cross_entropy(del_model_output(m), y, &loss, g));
        ck_assert_del_ok(del_model_zero_grad(m));
        ck_assert_del_ok(del_model_backward(m, g));
        ck_assert_del_ok(del_optimizer_step(opt));
    }
    del_tensor_free(x);
    del_tensor_free(y);
    del_tensor_free(g);
}

static del_optimizer *manual_opt(del_model *m, int adamw)
{
    del_optimizer *opt = NULL;
    if (adamw) {
        ck_assert_del_ok(del_optimizer_new_adamw(&opt, m, 1e-3f, 0.9f, 0.99f, 1e-7f, 0.05f));
        ck_assert_del_ok(del_optimizer_set_warmup(opt, 3));
    } else {
        ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.05f, 0.9f, 5e-4f, 1));
    }
    ck_assert_del_ok(del_optimizer_set_schedule(opt, DEL_SCHEDULE_COSINE, 12, 0.001f));
    return opt;
}

START_TEST(test_low_level_checkpoint_reproduces_a_hand_written_loop)
{
    require_fmnist();
    char path[512];
    tmp_path(path, sizeof path, "manual.delc");
    for (int adamw = 0; adamw < 2; adamw++) {
        del_model *straight = cnn(1), *half = cnn(1), *resumed = cnn(77);
        /* groups are saved and restored too */
        ck_assert_del_ok(del_model_freeze(straight, 0, 0));
        ck_assert_del_ok(del_model_set_lr_mult(straight, 5, 5, 0.5f));
        ck_assert_del_ok(del_model_freeze(half, 0, 0));
        ck_assert_del_ok(del_model_set_lr_mult(half, 5, 5, 0.5f));
        del_optimizer *o1 = manual_opt(straight, adamw), *o2 = manual_opt(half, adamw);
        /* settings the checkpoint replaces */
        del_optimizer *o3 = NULL;
        if (adamw)
            ck_assert_del_ok(del_optimizer_new_adamw(&o3, resumed, 0.5f, 0.5f, 0.5f, 1e-3f, 0.0f));
        else
            ck_assert_del_ok(del_optimizer_new_sgd(&o3, resumed, 0.5f, 0.0f, 0.0f, 0));
        manual_steps(straight, o1, 0, 12);
        manual_steps(half, o2, 0, 5);
        ck_assert_del_ok(del_checkpoint_save(path, half, o2));
        ck_assert_del_ok(del_checkpoint_load(path, resumed, o3));
        ck_assert_int_eq(del_model_layer_frozen(resumed, 0), 1);
        ck_assert(del_model_layer_lr_mult(resumed, 5) == 0.5f);
        ck_assert_int_eq(del_optimizer_steps(o3), 5);
        ck_assert(del_optimizer_lr(o3) == del_optimizer_lr(o2));
        manual_steps(resumed, o3, 5, 7);
        assert_same_model(straight, resumed, adamw ? "AdamW loop" : "SGD loop");
        ck_assert(del_optimizer_lr(o3) == del_optimizer_lr(o1));
        del_optimizer_free(o1);
        del_optimizer_free(o2);
        del_optimizer_free(o3);
        del_model_free(straight);
        del_model_free(half);
        del_model_free(resumed);
    }
}
END_TEST

/* ---- errors, on a tiny model so that every byte can be tried ---- */

static del_model *tiny(uint64_t seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 2 2; flatten; linear 3"));
    ck_assert_del_ok(del_model_init(m, seed));
    return m;
}

/* A tiny model with one SGD step taken, so that its momentum is not 0. */
static void tiny_trained(del_model **m, del_optimizer **opt, uint64_t seed)
{
    *m = tiny(seed);
    ck_assert_del_ok(del_optimizer_new_sgd(opt, *m, 0.1f, 0.9f, 0.0f, 0));
    float *g = del_model_grads(*m);
    for (int i = 0; i < del_model_num_params(*m); i++)
        g[i] = 0.25f * (float)(i + 1);
    ck_assert_del_ok(del_optimizer_step(*opt));
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A target model and optimizer whose state a failed load must not touch. */
typedef struct target {
    del_model *m;
    del_optimizer *opt;
    void *bytes;
    size_t n;
} target;

static void target_init(target *t)
{
    tiny_trained(&t->m, &t->opt, 5);
    ck_assert_del_ok(del_optimizer_step(t->opt));
    t->bytes = model_bytes(t->m, &t->n);
}

static void target_assert_unchanged(const target *t)
{
    size_t n = 0;
    void *b = model_bytes(t->m, &n);
    ck_assert_msg(n == t->n && memcmp(b, t->bytes, n) == 0, "a failed load changed the model");
    ck_assert_int_eq(del_optimizer_steps(t->opt), 2);
    ck_assert(del_optimizer_lr(t->opt) == 0.1f);
    ck_assert_int_eq(del_model_layer_frozen(t->m, 1), 0);
    del_buffer_free(b);
}

static void target_free(target *t)
{
    del_optimizer_free(t->opt);
    del_model_free(t->m);
    del_buffer_free(t->bytes);
}

/* The checkpoint of a tiny model (layer 1 frozen) with its optimizer. */
static uint8_t *tiny_checkpoint(const char *path, size_t *n)
{
    del_model *m = NULL;
    del_optimizer *opt = NULL;
    tiny_trained(&m, &opt, 3);
    ck_assert_del_ok(del_model_freeze(m, 1, 1));
    ck_assert_del_ok(del_checkpoint_save(path, m, opt));
    del_optimizer_free(opt);
    del_model_free(m);
    return read_all(path, n);
}

START_TEST(test_every_truncation_and_every_flipped_byte_is_refused)
{
    char path[512], bad[512];
    tmp_path(path, sizeof path, "tiny.delc");
    tmp_path(bad, sizeof bad, "bad.delc");
    size_t n = 0;
    uint8_t *file = tiny_checkpoint(path, &n);
    target t;
    target_init(&t);
    ck_assert_uint_gt(n, 100);
    for (size_t len = 0; len < n; len++) {
        write_all(bad, file, len);
        ck_assert_int_eq(del_checkpoint_load(bad, t.m, t.opt), DEL_EFORMAT);
    }
    target_assert_unchanged(&t);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            file[i] ^= (uint8_t)(1u << bit);
            write_all(bad, file, n);
            del_status st = del_checkpoint_load(bad, t.m, t.opt);
            ck_assert_msg(st == DEL_EFORMAT, "byte %zu bit %d: %d (%s)", i, bit, (int)st, del_last_error());
            file[i] ^= (uint8_t)(1u << bit);
        }
    }
    target_assert_unchanged(&t);
    /* the intact file loads: the tiny model's values replace the target's */
    write_all(bad, file, n);
    ck_assert_del_ok(del_checkpoint_load(bad, t.m, t.opt));
    ck_assert_int_eq(del_optimizer_steps(t.opt), 1);
    ck_assert_int_eq(del_model_layer_frozen(t.m, 1), 1);
    free(file);
    target_free(&t);
}
END_TEST

START_TEST(test_error_messages_say_what_is_wrong)
{
    char path[512], bad[512], mpath[512];
    tmp_path(path, sizeof path, "tiny.delc");
    tmp_path(bad, sizeof bad, "bad.delc");
    tmp_path(mpath, sizeof mpath, "tiny.delm");
    size_t n = 0;
    uint8_t *file = tiny_checkpoint(path, &n);
    target t;
    target_init(&t);

    char missing[512];
    tmp_path(missing, sizeof missing, "missing.delc");
    ck_assert_del_err(del_checkpoint_load(missing, t.m, t.opt), DEL_EIO, "missing.delc");
    write_all(bad, "", 0);
    ck_assert_del_err(del_checkpoint_load(bad, t.m, t.opt), DEL_EFORMAT, "not a libdel checkpoint (empty file)");
    write_all(bad, "PK\3\4 not a checkpoint at all", 29);
    ck_assert_del_err(del_checkpoint_load(bad, t.m, t.opt), DEL_EFORMAT, "not a libdel checkpoint (bad magic)");
    /* a model file given to the checkpoint loader, and the other way */
    ck_assert_del_ok(del_model_save(t.m, mpath));
    ck_assert_del_err(del_checkpoint_load(mpath, t.m, t.opt), DEL_EFORMAT, "is a libdel model file, not a checkpoint");
    del_model *loaded = NULL;
    ck_assert_del_err(del_model_load(&loaded, path), DEL_EFORMAT, "is a libdel checkpoint, not a model");
    ck_assert_ptr_null(loaded);
    ck_assert_del_err(del_trainer_load_checkpoint(NULL, path), DEL_EINVAL, "'trainer'");
    /* a newer version (this build reads formats 1 and 2), with a valid
     * header checksum */
    file[4] = 3;
    uint32_t crc = (uint32_t)crc32(0L, file, 36);
    for (int i = 0; i < 4; i++)
        file[36 + i] = (uint8_t)(crc >> (8 * i));
    write_all(bad, file, n);
    ck_assert_del_err(del_checkpoint_load(bad, t.m, t.opt), DEL_EFORMAT, "written by a newer libdel (format 3, this build reads <= 2)");
    target_assert_unchanged(&t);

    /* mismatches with the target */
    del_model *other = NULL, *wider = NULL, *deeper = NULL;
    del_optimizer *adam = NULL, *foreign = NULL;
    ck_assert_del_ok(del_model_from_spec(&other, "input 1 2 3; flatten; linear 3"));
    ck_assert_del_ok(del_model_from_spec(&wider, "input 1 2 2; flatten; linear 4"));
    ck_assert_del_ok(del_model_from_spec(&deeper, "input 1 2 2; flatten; linear 3; relu"));
    ck_assert_del_err(del_checkpoint_load(path, other, NULL), DEL_EINVAL, "input 1 x 2 x 2, 'model' takes 1 x 2 x 3");
    ck_assert_del_err(del_checkpoint_load(path, wider, NULL), DEL_EINVAL, "layer 1 (linear) differs: out 3 in the "
                                                                         "checkpoint '");
    ck_assert_del_err(del_checkpoint_load(path, deeper, NULL), DEL_EINVAL, "2 layers, 'model' has 3");
    ck_assert_del_ok(del_optimizer_new_adamw(&adam, t.m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f));
    ck_assert_del_err(del_checkpoint_load(path, t.m, adam), DEL_EINVAL, "'opt' is AdamW but");
    ck_assert_del_ok(del_optimizer_new_sgd(&foreign, wider, 0.1f, 0.0f, 0.0f, 0));
    ck_assert_del_err(del_checkpoint_load(path, t.m, foreign), DEL_EINVAL, "another model");
    ck_assert_del_err(del_checkpoint_save(path, t.m, foreign), DEL_EINVAL, "another model");
    target_assert_unchanged(&t);
    /* a checkpoint without optimizer state: fine for the model alone */
    ck_assert_del_ok(del_checkpoint_save(bad, t.m, NULL));
    ck_assert_del_err(del_checkpoint_load(bad, t.m, t.opt), DEL_EINVAL, "holds no optimizer state");
    target_assert_unchanged(&t);
    ck_assert_del_ok(del_checkpoint_load(path, t.m, NULL));
    ck_assert_int_eq(del_model_layer_frozen(t.m, 1), 1);
    ck_assert_int_eq(del_optimizer_steps(t.opt), 2);

    /* NULL arguments */
    ck_assert_del_err(del_checkpoint_save(NULL, t.m, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_checkpoint_save(path, NULL, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_checkpoint_load(NULL, t.m, NULL), DEL_EINVAL, "'path'");
    ck_assert_del_err(del_checkpoint_load(path, NULL, NULL), DEL_EINVAL, "'model'");
    ck_assert_del_err(del_trainer_save_checkpoint(NULL, path), DEL_EINVAL, "'trainer'");
    ck_assert_del_err(del_trainer_set_total_steps(NULL, 1), DEL_EINVAL, "'trainer'");
    free(file);
    target_free(&t);
    del_optimizer_free(adam);
    del_optimizer_free(foreign);
    del_model_free(other);
    del_model_free(wider);
    del_model_free(deeper);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(test_unwritable_path_leaves_no_file_behind)
{
    char dir[256], path[512], target_dir[512];
    tmp_path(dir, sizeof dir, "unwritable");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.delc", dir);
    snprintf(target_dir, sizeof target_dir, "%s/a_directory", dir);
    ck_assert_int_eq(mkdir(target_dir, 0755), 0);
    del_model *m = tiny(1);
    ck_assert_del_err(del_checkpoint_save(path, m, NULL), DEL_EIO, "no/such/dir");
    ck_assert_del_err(del_checkpoint_save(target_dir, m, NULL), DEL_EIO, "a_directory");
    ck_assert_int_eq(count_entries(dir), 1); /* a_directory, no temporary file */
    ck_assert_int_eq(count_entries(target_dir), 0);
    del_model_free(m);
}
END_TEST

/* 12 labeled copies of patterned 4 x 4 images in 3 classes. */
static del_dataset *small_dataset(int shift)
{
    enum { N = 12 };
    uint8_t px[N * 16];
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < 16; p++)
            px[i * 16 + p] = (uint8_t)((p * 37 + i * 11) % 256);
        labels[i] = (i + shift) % 3;
    }
    del_dataset *ds = NULL;
    ck_assert_del_ok(del_dataset_from_arrays(&ds, px, labels, N, 4, 4, 1));
    return ds;
}

static del_model *small_model(uint64_t seed)
{
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 4 4; flatten; linear 5; relu; linear 3"));
    ck_assert_del_ok(del_model_init(m, seed));
    return m;
}

/* Heads are part of the layout: the same layer list cut into other
 * heads, or heads named otherwise, is another model; the same heads load. */
START_TEST(test_checkpoint_load_compares_heads)
{
    char path[512];
    tmp_path(path, sizeof path, "heads.delc");
    del_model *src = small_model(1);
    ck_assert_del_ok(del_model_split_head(src, "old", -1));
    ck_assert_del_ok(del_checkpoint_save(path, src, NULL));

    del_model *renamed = small_model(2), *cut = small_model(2), *same = small_model(2), *plain = small_model(2);
    ck_assert_del_ok(del_model_split_head(renamed, "new", -1));
    ck_assert_del_ok(del_model_split_head(cut, "old", -3));
    ck_assert_del_ok(del_model_split_head(same, "old", -1));
    int64_t np = del_model_num_params(src);
    float *before = malloc((size_t)np * sizeof(float));
    ck_assert_ptr_nonnull(before);
    memcpy(before, del_model_params(renamed), (size_t)np * sizeof(float));
    ck_assert_del_err(del_checkpoint_load(path, renamed, NULL), DEL_EINVAL,
                      "head 0 is 'old' in the checkpoint '");
    ck_assert_mem_eq(del_model_params(renamed), before, (size_t)np * sizeof(float));
    ck_assert_del_err(del_checkpoint_load(path, cut, NULL), DEL_EINVAL,
                      "head 'old' is layers 3..3 in the checkpoint '");
    ck_assert_del_err(del_checkpoint_load(path, plain, NULL), DEL_EINVAL,
                      "the number of heads differs: 1 in the checkpoint '");
    ck_assert_del_ok(del_checkpoint_load(path, same, NULL));
    ck_assert_mem_eq(del_model_params(same), del_model_params(src), (size_t)np * sizeof(float));
    free(before);
    del_model_free(src);
    del_model_free(renamed);
    del_model_free(cut);
    del_model_free(same);
    del_model_free(plain);
}
END_TEST

START_TEST(test_trainer_load_refuses_mismatches_and_leaves_the_trainer_unchanged)
{
    char path[512], plain[512];
    tmp_path(path, sizeof path, "trainer.delc");
    tmp_path(plain, sizeof plain, "plain.delc");
    del_dataset *ds = small_dataset(0), *relabeled = small_dataset(1);
    del_model *m = small_model(1), *ref_m = small_model(2), *probe_m = small_model(2);
    del_trainer *tr = NULL, *ref = NULL, *probe = NULL, *other = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 4));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 10));
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    ck_assert_del_ok(del_trainer_save_checkpoint(tr, path));
    ck_assert_del_ok(del_checkpoint_save(plain, m, NULL));

    /* probe and ref: the same trainer; probe sees every failed load */
    ck_assert_del_ok(del_trainer_new_supervised(&ref, ref_m, ds));
    ck_assert_del_ok(del_trainer_new_supervised(&probe, probe_m, ds));
    for (int k = 0; k < 2; k++) {
        del_trainer *t = k ? probe : ref;
        ck_assert_del_ok(del_trainer_set_total_steps(t, 6));
        ck_assert_del_ok(del_trainer_fit(t, 2));
    }
    ck_assert_del_err(del_trainer_load_checkpoint(probe, plain), DEL_EINVAL, "holds no trainer state");
    del_augment *aug = NULL;
    ck_assert_del_ok(del_augment_new(&aug));
    ck_assert_del_ok(del_augment_add_flip_h(aug, 0.5f));
    ck_assert_del_ok(del_trainer_set_augment(probe, aug));
    ck_assert_del_err(del_trainer_load_checkpoint(probe, path), DEL_EINVAL, "saved without an augmentation pipeline");
    ck_assert_del_ok(del_trainer_set_augment(probe, NULL));
    ck_assert_del_ok(del_trainer_new_supervised(&other, m, relabeled));
    ck_assert_del_err(del_trainer_load_checkpoint(other, path), DEL_EINVAL, "another dataset");
    del_model *wide = NULL;
    del_trainer *wide_tr = NULL;
    ck_assert_del_ok(del_model_from_spec(&wide, "input 1 4 4; flatten; linear 6; relu; linear 3"));
    ck_assert_del_ok(del_trainer_new_supervised(&wide_tr, wide, ds));
    ck_assert_del_err(del_trainer_load_checkpoint(wide_tr, path), DEL_EINVAL, "layer 1 (linear) differs");
    ck_assert_del_err(del_trainer_set_total_steps(probe, -1), DEL_EINVAL, "'total_steps' must be >= 0");

    /* probe continues exactly as ref: nothing of the loads stuck */
    ck_assert_del_ok(del_trainer_fit(ref, 4));
    ck_assert_del_ok(del_trainer_fit(probe, 4));
    assert_same_model(ref_m, probe_m, "after failed loads");
    /* and a good load into it continues tr's run */
    ck_assert_del_ok(del_trainer_load_checkpoint(probe, path));
    ck_assert_del_ok(del_trainer_fit(tr, 7));
    ck_assert_del_ok(del_trainer_fit(probe, 7));
    assert_same_model(m, probe_m, "loaded over a trained trainer");
    /* the trainer's checkpoint loads into a bare model too */
    ck_assert_del_ok(del_checkpoint_load(path, ref_m, NULL));
    del_trainer_free(tr);
    del_trainer_free(ref);
    del_trainer_free(probe);
    del_trainer_free(other);
    del_trainer_free(wide_tr);
    del_augment_free(aug);
    del_model_free(m);
    del_model_free(ref_m);
    del_model_free(probe_m);
    del_model_free(wide);
    del_dataset_free(ds);
    del_dataset_free(relabeled);
}
END_TEST

START_TEST(test_optimizer_refuses_a_changed_parameter_count_and_follows_groups)
{
    /* Ranges are rebuilt before every step (replaced heads change the layer
     * list); a new parameter count is refused at the next step. */
    del_model *m = NULL;
    ck_assert_del_ok(del_model_from_spec(&m, "input 1 1 4; flatten; linear 2 bias=0"));
    del_optimizer *opt = NULL;
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.5f, 0.0f, 0.0f, 0));
    ck_assert_del_ok(del_model_add_linear(m, 1, 1));
    ck_assert_del_err(del_optimizer_step(opt), DEL_ESTATE, "the model has 11 parameters, the optimizer was made "
                                                           "for 8");
    del_optimizer_free(opt);
    /* made over the bigger model: its ranges cover both linears */
    ck_assert_del_ok(del_optimizer_new_sgd(&opt, m, 0.5f, 0.0f, 0.0f, 0));
    float *p = del_model_params(m), *g = del_model_grads(m);
    for (int i = 0; i < 11; i++) {
        p[i] = 1.0f;
        g[i] = (float)i;
    }
    ck_assert_del_ok(del_model_freeze(m, 1, 1));
    ck_assert_del_ok(del_optimizer_step(opt));
    for (int i = 0; i < 11; i++)
        ck_assert_float_eq(p[i], i < 8 ? 1.0f : 1.0f - 0.5f * (float)i);
    del_optimizer_free(opt);
    del_model_free(m);
}
END_TEST

START_TEST(test_steps_past_the_total_keep_cosine_at_0)
{
    del_dataset *ds = small_dataset(0);
    del_model *m = small_model(1);
    del_trainer *tr = NULL;
    ck_assert_del_ok(del_trainer_new_supervised(&tr, m, ds));
    ck_assert_del_ok(del_trainer_set_batch_size(tr, 4));
    ck_assert_del_ok(del_trainer_set_total_steps(tr, 3));
    /* cosine to 0 over 3 steps: steps past the total leave the weights */
    ck_assert_del_ok(del_trainer_fit(tr, 3));
    int64_t n = 0;
    float *before = copy_params(m, &n);
    ck_assert_del_ok(del_trainer_fit(tr, 2));
    ck_assert_msg(memcmp(before, del_model_params(m), (size_t)n * sizeof *before) == 0,
                  "steps past the total changed the weights");
    free(before);
    del_trainer_free(tr);
    del_model_free(m);
    del_dataset_free(ds);
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *fm = tcase_create("fashion_mnist");
    tcase_add_unchecked_fixture(fm, fm_setup, fm_teardown);
    tcase_set_timeout(fm, 300);
    tcase_add_test(fm, test_resume_sgd_cosine_total_steps_is_bit_identical);
    tcase_add_test(fm, test_resume_adamw_warmup_clipping_is_bit_identical);
    tcase_add_test(fm, test_resume_with_augmentation_and_prefetch_is_bit_identical);
    tcase_add_test(fm, test_resume_default_mode_continues_as_a_second_fit);
    tcase_add_test(fm, test_total_steps_make_split_fits_equal_one_fit);
    tcase_add_test(fm, test_saving_from_the_progress_callback_resumes_mid_fit);
    tcase_add_test(fm, test_low_level_checkpoint_reproduces_a_hand_written_loop);
    suite_add_tcase(s, fm);

    TCase *small = tcase_create("small");
    tcase_set_timeout(small, 120);
    tcase_add_test(small, test_every_truncation_and_every_flipped_byte_is_refused);
    tcase_add_test(small, test_checkpoint_load_compares_heads);
    tcase_add_test(small, test_error_messages_say_what_is_wrong);
    tcase_add_test(small, test_unwritable_path_leaves_no_file_behind);
    tcase_add_test(small, test_trainer_load_refuses_mismatches_and_leaves_the_trainer_unchanged);
    tcase_add_test(small, test_optimizer_refuses_a_changed_parameter_count_and_follows_groups);
    tcase_add_test(small, test_steps_past_the_total_keep_cosine_at_0);
    suite_add_tcase(s, small);
    return s;
}

int main(void)
{
    return test_run_suite_in_tmpdir(checkpoint_suite, tmpdir);
}
