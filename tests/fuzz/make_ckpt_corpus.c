/* Writes the seed corpora of the checkpoint-loader fuzz targets:
 *   DIR/checkpoint_load/     whole files: small valid checkpoints (model
 *                            only, SGD with and without momentum, AdamW with
 *                            a schedule, a trainer's: format 1; two models
 *                            with optimizers, tensors and a trainer record,
 *                            tensors only: format 2) and damaged copies
 *                            (truncated, flipped bytes, a future version, a
 *                            model file)
 *   DIR/checkpoint_payload/  the format-version byte and the uncompressed
 *                            payload of each valid one
 * usage: make_ckpt_corpus DIR (the directories must exist).
 * tests/fuzz/build.sh builds and runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "del.h"

static const char *dir;

static void die(const char *what)
{
    fprintf(stderr, "make_ckpt_corpus: %s: %s\n", what, del_last_error());
    exit(1);
}

static void put_in(const char *sub, const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_ckpt_corpus: cannot write %s\n", path);
        exit(1);
    }
}

/* A valid file: it goes to checkpoint_load/ and its version byte and
 * payload, inflated, to checkpoint_payload/ (same name, .bin). Damaged
 * files use put_damaged. */
static void put_file(const char *name, const uint8_t *f, size_t n)
{
    put_in("checkpoint_load", name, f, n);
    uint64_t rawlen = 0;
    for (int k = 7; k >= 0; k--)
        rawlen = rawlen << 8 | f[24 + k];
    uint8_t *raw = malloc(rawlen + 1);
    uLongf got = (uLongf)rawlen;
    if (!raw || uncompress(raw + 1, &got, f + 40, (uLong)(n - 40)) != Z_OK || got != rawlen) {
        fprintf(stderr, "make_ckpt_corpus: cannot inflate %s\n", name);
        exit(1);
    }
    char bin[128];
    snprintf(bin, sizeof bin, "%.*s.bin", (int)(strlen(name) - 5), name);
    raw[0] = f[4]; /* the version */
    put_in("checkpoint_payload", bin, raw, (size_t)rawlen + 1);
    free(raw);
}

static void put_damaged(const char *name, const void *data, size_t n)
{
    put_in("checkpoint_load", name, data, n);
}

/* The checkpoint at path, read back (and the file removed). */
static uint8_t *take(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (!b || fread(b, 1, *n, f) != *n)
        die("read");
    fclose(f);
    unlink(path);
    return b;
}

static del_model *model(const char *spec)
{
    del_model *m = NULL;
    if (del_model_from_spec(&m, spec) != DEL_OK || del_model_init(m, 1) != DEL_OK)
        die(spec);
    return m;
}

/* One step with made-up gradients, so that the buffers are not zero. */
static void step(del_model *m, del_optimizer *opt)
{
    float *g = del_model_grads(m);
    for (int64_t i = 0; i < del_model_num_params(m); i++)
        g[i] = 0.01f * (float)(i % 7) - 0.02f;
    if (del_optimizer_step(opt) != DEL_OK)
        die("step");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/checkpoint_load/.tmp.delc", dir);
    size_t n = 0;
    uint8_t *f;

    del_model *a = model("input 1 2 2; flatten; linear 3");
    if (del_checkpoint_save(tmp, a, NULL) != DEL_OK)
        die("save");
    f = take(tmp, &n);
    put_file("model_only.delc", f, n);
    free(f);

    del_optimizer *sgd = NULL, *plain = NULL, *adamw = NULL;
    del_model *b = model("input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; maxpool 2; flatten; dropout 0.5; linear 3");
    if (del_optimizer_new_sgd(&sgd, b, 0.1f, 0.9f, 5e-4f, 1) != DEL_OK)
        die("sgd");
    step(b, sgd);
    if (del_model_freeze(b, 0, 1) != DEL_OK || del_checkpoint_save(tmp, b, sgd) != DEL_OK)
        die("save sgd");
    f = take(tmp, &n);
    put_file("sgd_momentum.delc", f, n);

    /* damaged copies of this one */
    put_damaged("truncated_header.delc", f, 20);
    put_damaged("truncated_payload.delc", f, n - 9);
    f[n / 2] ^= 0x10;
    put_damaged("flipped_payload.delc", f, n);
    f[n / 2] ^= 0x10;
    f[4] = 3;
    uint32_t crc = (uint32_t)crc32(0L, f, 36);
    for (int i = 0; i < 4; i++)
        f[36 + i] = (uint8_t)(crc >> (8 * i));
    put_damaged("future_version.delc", f, n);
    free(f);
    void *mb = NULL;
    if (del_model_save_buffer(b, &mb, &n) != DEL_OK)
        die("model buffer");
    put_damaged("model_file.delm", mb, n);
    del_buffer_free(mb);

    del_model *c = model("input 1 1 3; flatten; linear 2 bias=0");
    if (del_optimizer_new_sgd(&plain, c, 0.5f, 0.0f, 0.0f, 0) != DEL_OK)
        die("plain sgd");
    step(c, plain);
    if (del_checkpoint_save(tmp, c, plain) != DEL_OK)
        die("save plain");
    f = take(tmp, &n);
    put_file("sgd_plain.delc", f, n);
    free(f);

    if (del_optimizer_new_adamw(&adamw, a, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f) != DEL_OK ||
        del_optimizer_set_schedule(adamw, DEL_SCHEDULE_COSINE, 10, 1e-4f) != DEL_OK ||
        del_optimizer_set_warmup(adamw, 2) != DEL_OK || del_optimizer_set_clip_norm(adamw, 1.0f) != DEL_OK)
        die("adamw");
    step(a, adamw);
    if (del_checkpoint_save(tmp, a, adamw) != DEL_OK)
        die("save adamw");
    f = take(tmp, &n);
    put_file("adamw.delc", f, n);
    free(f);

    /* a trainer's, with its record */
    uint8_t px[6 * 4];
    int32_t labels[6];
    for (int i = 0; i < 6; i++) {
        for (int p = 0; p < 4; p++)
            px[i * 4 + p] = (uint8_t)(i * 40 + p * 9);
        labels[i] = i % 3;
    }
    del_dataset *ds = NULL;
    del_trainer *tr = NULL;
    if (del_dataset_from_arrays(&ds, px, labels, 6, 2, 2, 1) != DEL_OK ||
        del_trainer_new_supervised(&tr, a, ds) != DEL_OK || del_trainer_set_batch_size(tr, 4) != DEL_OK ||
        del_trainer_set_total_steps(tr, 5) != DEL_OK || del_trainer_fit(tr, 2) != DEL_OK ||
        del_trainer_save_checkpoint(tr, tmp) != DEL_OK)
        die("trainer");
    f = take(tmp, &n);
    put_file("trainer.delc", f, n);
    free(f);

    /* format 2: two models with their optimizers, tensors of each type, a
     * trainer record with names format 1 cannot hold */
    del_checkpoint *ck = NULL;
    del_tensor *tf = NULL, *ti = NULL, *tu = NULL;
    const int64_t sf[2] = {2, 3}, si[1] = {4}, su[3] = {2, 1, 2};
    if (del_checkpoint_new(&ck) != DEL_OK || del_checkpoint_add_model(ck, "student", b) != DEL_OK ||
        del_checkpoint_add_model(ck, "teacher.old", a) != DEL_OK ||
        del_checkpoint_add_optimizer(ck, "student", sgd) != DEL_OK ||
        del_checkpoint_add_optimizer(ck, "teacher.old", adamw) != DEL_OK ||
        del_tensor_new(&tf, DEL_DTYPE_F32, 2, sf) != DEL_OK || del_tensor_new(&ti, DEL_DTYPE_I32, 1, si) != DEL_OK ||
        del_tensor_new(&tu, DEL_DTYPE_U8, 3, su) != DEL_OK)
        die("v2 record");
    for (int i = 0; i < 6; i++)
        ((float *)del_tensor_data(tf))[i] = 0.5f * (float)i - 1.0f;
    for (int i = 0; i < 4; i++)
        ((int32_t *)del_tensor_data(ti))[i] = 3 - 2 * i;
    for (int i = 0; i < 4; i++)
        ((uint8_t *)del_tensor_data(tu))[i] = (uint8_t)(60 * i);
    if (del_checkpoint_add_tensor(ck, "y_old", tf) != DEL_OK || del_checkpoint_add_tensor(ck, "pool", ti) != DEL_OK ||
        del_checkpoint_add_tensor(ck, "images", tu) != DEL_OK || del_checkpoint_set_trainer(ck, "Noisy-Student") != DEL_OK ||
        del_checkpoint_set_i64(ck, "iteration", 2) != DEL_OK || del_checkpoint_set_f32(ck, "T.teacher", 4.0f) != DEL_OK ||
        del_checkpoint_write(ck, tmp) != DEL_OK)
        die("v2 write");
    f = take(tmp, &n);
    put_file("v2_two_models.delc", f, n);
    put_damaged("v2_truncated.delc", f, n - 5);
    f[n / 3] ^= 0x04;
    put_damaged("v2_flipped.delc", f, n);
    free(f);
    del_checkpoint_free(ck);
    if (del_checkpoint_new(&ck) != DEL_OK || del_checkpoint_add_tensor(ck, "soft_labels", tf) != DEL_OK ||
        del_checkpoint_write(ck, tmp) != DEL_OK)
        die("v2 tensors");
    f = take(tmp, &n);
    put_file("v2_tensors_only.delc", f, n);
    free(f);
    del_checkpoint_free(ck);
    del_tensor_free(tf);
    del_tensor_free(ti);
    del_tensor_free(tu);

    del_trainer_free(tr);
    del_dataset_free(ds);
    del_optimizer_free(sgd);
    del_optimizer_free(plain);
    del_optimizer_free(adamw);
    del_model_free(a);
    del_model_free(b);
    del_model_free(c);
    return 0;
}
