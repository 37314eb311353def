/* libFuzzer target for the checkpoint loader (tests/fuzz/build.sh builds
 * it; the library is built with checksums not enforced). Built plainly,
 * the input is a whole checkpoint file given to the parser behind
 * del_checkpoint_load and del_trainer_load_checkpoint. Built with
 * -DFUZZ_PAYLOAD, the input is the uncompressed payload, which the target
 * wraps in a valid container first, so mutations reach the section,
 * optimizer and trainer parsers instead of dying in zlib.
 *
 * The contract: no crash, no leak, no undefined behaviour, no result on
 * failure; a checkpoint that parses applies to a model of its own
 * architecture and an optimizer of its kind, which then train a step when
 * small, and it saves and parses again to the same model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "del.h"
#include "io/checkpoint.h"
#include "io/model_file.h"
#include "nn/model_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    del_set_num_threads(1);
    return 0;
}

/* A copy of the checkpoint's model: the target to apply it to. */
static del_model *copy_model(const del_model *src)
{
    void *buf = NULL;
    size_t n = 0;
    del_model *m = NULL;
    if (del_model_save_buffer_flags(src, &buf, &n, DEL_SAVE_ALLOW_NONFINITE) != DEL_OK ||
        del_model_load_buffer(&m, buf, n) != DEL_OK)
        abort(); /* a model that loaded must save and load again */
    del_buffer_free(buf);
    return m;
}

/* Floats of activations one image needs through the whole model. */
static int64_t activation_floats(const del_model *m)
{
    int64_t total = (int64_t)m->in_c * m->in_h * m->in_w;
    for (int i = 0; i < m->n_layers; i++) {
        const del_layer *l = &m->layers[i];
        int64_t n = l->out_shape[0];
        if (l->out_ndim == 3)
            n *= l->out_shape[1] * l->out_shape[2];
        total += n;
    }
    return total;
}

/* One forward, backward and optimizer step on a zero batch of 2. */
static void train_step(del_model *m, del_optimizer *opt)
{
    int ndim = 0;
    int64_t out[3];
    if (del_model_output_shape(m, &ndim, out) != DEL_OK || ndim != 1 || out[0] > 64)
        return;
    int64_t xs[4] = {2, m->in_c, m->in_h, m->in_w}, gs[2] = {2, out[0]};
    del_tensor *x = NULL, *g = NULL;
    if (del_tensor_new(&x, DEL_DTYPE_F32, 4, xs) == DEL_OK && del_tensor_new(&g, DEL_DTYPE_F32, 2, gs) == DEL_OK &&
        del_model_set_training(m, 1) == DEL_OK && del_model_forward(m, x) == DEL_OK &&
        del_model_zero_grad(m) == DEL_OK && del_model_backward(m, g) == DEL_OK && opt)
        (void)del_optimizer_step(opt);
    del_tensor_free(x);
    del_tensor_free(g);
}

static void check_parsed(del_ckpt *c)
{
    const del_model *stored = del_ckpt_model(c);
    del_model *m = copy_model(stored);
    del_optimizer *opt = NULL;
    int adamw = 0;
    if (del_ckpt_has_optimizer(c, &adamw) && del_model_num_params(m) > 0) {
        del_status st = adamw ? del_optimizer_new_adamw(&opt, m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f)
                              : del_optimizer_new_sgd(&opt, m, 0.1f, 0.0f, 0.0f, 0);
        if (st != DEL_OK)
            abort();
    }
    if (del_ckpt_check(c, m, opt, "fuzz", "<input>") != DEL_OK)
        abort(); /* a checkpoint fits a copy of its own model */
    del_ckpt_apply(c, m, opt);
    (void)del_ckpt_trainer(c);
    (void)del_ckpt_field_get(c, "steps_done", DEL_CKPT_I64);

    uint8_t *again = NULL;
    size_t len = 0;
    del_ckpt *c2 = NULL;
    /* A model with NaN or infinity loads, but is not checkpointed again. */
    del_status st = del_ckpt_serialize(m, opt, NULL, NULL, 0, "fuzz", &again, &len);
    if (st == DEL_ENUMERIC && del_model_check_finite(m, "fuzz", "") == DEL_ENUMERIC) {
        del_optimizer_free(opt);
        del_model_free(m);
        return;
    }
    if (st != DEL_OK || del_ckpt_parse(&c2, again, len, "fuzz", "<again>") != DEL_OK)
        abort(); /* what was applied saves and parses again */
    const del_model *m2 = del_ckpt_model(c2);
    if (m2->n_params != m->n_params ||
        (m->n_params && memcmp(m2->params, m->params, (size_t)m->n_params * sizeof(float)) != 0))
        abort();
    del_ckpt_free(c2);
    free(again);

    if (del_model_num_params(m) <= (1 << 16) && activation_floats(m) <= (1 << 16))
        train_step(m, opt);
    del_optimizer_free(opt);
    del_model_free(m);
}

#ifdef FUZZ_PAYLOAD
static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The documented container around payload (docs/file-format.md). */
static uint8_t *wrap(const uint8_t *payload, size_t len, size_t *out_len)
{
    uLongf zlen = compressBound(len);
    uint8_t *file = malloc(40 + zlen);
    if (!file || compress2(file + 40, &zlen, payload, len, 1) != Z_OK) {
        free(file);
        return NULL;
    }
    memcpy(file, "DELC", 4);
    put_le(file + 4, 1, 4);
    put_le(file + 8, 0, 4);
    put_le(file + 12, 40, 4);
    put_le(file + 16, zlen, 8);
    put_le(file + 24, len, 8);
    put_le(file + 32, crc32(0L, file + 40, (uInt)zlen), 4);
    put_le(file + 36, crc32(0L, file, 36), 4);
    *out_len = 40 + zlen;
    return file;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *file = data;
    size_t len = size;
#ifdef FUZZ_PAYLOAD
    uint8_t *wrapped = wrap(data, size, &len);
    if (!wrapped)
        return 0;
    file = wrapped;
#endif
    del_ckpt *c = NULL;
    if (del_ckpt_parse(&c, file, len, "fuzz", "<input>") == DEL_OK)
        check_parsed(c);
    else if (c != NULL)
        abort(); /* no result after a failure */
    del_ckpt_free(c);
#ifdef FUZZ_PAYLOAD
    free(wrapped);
#endif
    return 0;
}
