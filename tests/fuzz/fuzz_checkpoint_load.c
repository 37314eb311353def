/* libFuzzer target for the checkpoint reader (tests/fuzz/build.sh builds
 * it; the library is built with checksums not enforced). Built plainly,
 * the input is a whole checkpoint file given to del_checkpoint_read_buffer,
 * the reader behind del_checkpoint_load and del_trainer_load_checkpoint.
 * Built with -DFUZZ_PAYLOAD, the input is one byte, the container's format
 * version (1 or 2; others are tried as they come), then the uncompressed
 * payload, which the target wraps in a valid container of that version, so
 * mutations reach the section, model, optimizer, tensor and trainer
 * parsers of both formats instead of dying in zlib.
 *
 * The contract: no crash, no leak, no undefined behaviour, no result on
 * failure; every model of a checkpoint that reads restores into a copy of
 * itself and an optimizer of its kind, which then train a step when small;
 * every tensor and field reads back; and the record writes and reads again
 * to the same models, tensors and fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "del.h"
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

/* One stored model: restored into a copy of itself (with an optimizer
 * of the stored kind), which then trains a step when small. */
static void check_model(const del_checkpoint *c, const char *name)
{
    del_model *m = NULL;
    if (del_checkpoint_get_model(&m, c, name) != DEL_OK)
        abort(); /* a stored model rebuilds */
    const char *kind = del_checkpoint_optimizer_type(c, name);
    del_optimizer *opt = NULL;
    if (kind) {
        del_status st = strcmp(kind, "adamw") == 0 ? del_optimizer_new_adamw(&opt, m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f)
                                                   : del_optimizer_new_sgd(&opt, m, 0.1f, 0.0f, 0.0f, 0);
        if (st != DEL_OK)
            abort();
    }
    if (del_checkpoint_check_model(c, name, m, opt) != DEL_OK || del_checkpoint_restore_model(c, name, m, opt) != DEL_OK)
        abort(); /* a checkpoint fits a copy of its own model */
    if (del_model_num_params(m) <= (1 << 16) && activation_floats(m) <= (1 << 16))
        train_step(m, opt);
    del_optimizer_free(opt);
    del_model_free(m);
}

/* Whether the two records hold the same models (by parameters), tensors
 * (by bytes) and fields. */
static int same_record(const del_checkpoint *a, const del_checkpoint *b)
{
    if (del_checkpoint_num_models(a) != del_checkpoint_num_models(b) ||
        del_checkpoint_num_tensors(a) != del_checkpoint_num_tensors(b) ||
        del_checkpoint_num_fields(a) != del_checkpoint_num_fields(b))
        return 0;
    for (int i = 0; i < del_checkpoint_num_models(a); i++) {
        const char *name = del_checkpoint_model_name(a, i);
        del_model *x = NULL, *y = NULL;
        int same = strcmp(name, del_checkpoint_model_name(b, i)) == 0 &&
                   del_checkpoint_get_model(&x, a, name) == DEL_OK && del_checkpoint_get_model(&y, b, name) == DEL_OK &&
                   x->n_params == y->n_params &&
                   (x->n_params == 0 || memcmp(x->params, y->params, (size_t)x->n_params * sizeof(float)) == 0);
        del_model_free(x);
        del_model_free(y);
        if (!same)
            return 0;
    }
    for (int i = 0; i < del_checkpoint_num_tensors(a); i++) {
        const char *name = del_checkpoint_tensor_name(a, i);
        del_tensor *x = NULL, *y = NULL;
        int same = del_checkpoint_get_tensor(&x, a, name) == DEL_OK && del_checkpoint_get_tensor(&y, b, name) == DEL_OK &&
                   del_tensor_nbytes(x) == del_tensor_nbytes(y) &&
                   memcmp(del_tensor_data(x), del_tensor_data(y), del_tensor_nbytes(x)) == 0;
        del_tensor_free(x);
        del_tensor_free(y);
        if (!same)
            return 0;
    }
    for (int i = 0; i < del_checkpoint_num_fields(a); i++) {
        const char *key = del_checkpoint_field_name(a, i);
        int64_t p = 0, q = 1;
        float f = 0, g = 1;
        del_checkpoint_kind k = del_checkpoint_field_kind(a, key);
        if (k != del_checkpoint_field_kind(b, key))
            return 0;
        if (k == DEL_CHECKPOINT_KIND_I64 &&
            (del_checkpoint_get_i64(a, key, &p) != DEL_OK || del_checkpoint_get_i64(b, key, &q) != DEL_OK || p != q))
            return 0;
        if (k == DEL_CHECKPOINT_KIND_F32 && (del_checkpoint_get_f32(a, key, &f) != DEL_OK ||
                                             del_checkpoint_get_f32(b, key, &g) != DEL_OK || memcmp(&f, &g, 4) != 0))
            return 0;
    }
    const char *ta = del_checkpoint_trainer(a), *tb = del_checkpoint_trainer(b);
    return (ta == NULL) == (tb == NULL) && (!ta || strcmp(ta, tb) == 0);
}

static void check_parsed(const del_checkpoint *c)
{
    for (int i = 0; i < del_checkpoint_num_models(c); i++)
        check_model(c, del_checkpoint_model_name(c, i));
    for (int i = 0; i < del_checkpoint_num_tensors(c); i++) {
        del_tensor *t = NULL;
        if (del_checkpoint_get_tensor(&t, c, del_checkpoint_tensor_name(c, i)) != DEL_OK)
            abort();
        del_tensor_free(t);
    }
    for (int i = 0; i < del_checkpoint_num_fields(c); i++)
        if (del_checkpoint_field_kind(c, del_checkpoint_field_name(c, i)) == DEL_CHECKPOINT_KIND_NONE)
            abort();

    void *again = NULL;
    size_t len = 0;
    /* A model with NaN or infinity reads, but is not checkpointed again. */
    del_status st = del_checkpoint_write_buffer(c, &again, &len);
    if (st == DEL_ENUMERIC)
        return;
    del_checkpoint *c2 = NULL;
    if (st != DEL_OK || del_checkpoint_read_buffer(&c2, again, len) != DEL_OK || !same_record(c, c2))
        abort(); /* what was read writes and reads again, the same */
    del_checkpoint_free(c2);
    del_buffer_free(again);
}

#ifdef FUZZ_PAYLOAD
static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The documented container around payload (docs/file-format.md). */
static uint8_t *wrap(uint32_t version, const uint8_t *payload, size_t len, size_t *out_len)
{
    uLongf zlen = compressBound(len);
    uint8_t *file = malloc(40 + zlen);
    if (!file || compress2(file + 40, &zlen, payload, len, 1) != Z_OK) {
        free(file);
        return NULL;
    }
    memcpy(file, "DELC", 4);
    put_le(file + 4, version, 4);
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
    if (size < 1)
        return 0;
    uint8_t *wrapped = wrap(data[0], data + 1, size - 1, &len);
    if (!wrapped)
        return 0;
    file = wrapped;
#endif
    del_checkpoint *c = NULL;
    if (del_checkpoint_read_buffer(&c, file, len) == DEL_OK)
        check_parsed(c);
    else if (c != NULL)
        abort(); /* no result after a failure */
    del_checkpoint_free(c);
#ifdef FUZZ_PAYLOAD
    free(wrapped);
#endif
    return 0;
}
