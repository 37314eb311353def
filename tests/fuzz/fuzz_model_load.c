/* libFuzzer target for the model loader (tests/fuzz/build.sh builds it).
 *
 * Built plainly, the input is a whole model file given to
 * del_model_load_buffer. Built with -DFUZZ_PAYLOAD, the input is a
 * format-version byte followed by the uncompressed payload: the target
 * wraps the payload in a valid container (zlib, CRC-32) of that version
 * first, so mutations reach the architecture, heads and tensor parsers of
 * every version instead of dying at the checksum. Either way the contract is: no crash,
 * no leak, no undefined behaviour, *out NULL on failure, and a model that
 * loads is whole: it saves and reloads to the same parameters and, when
 * small, runs a forward pass. */
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
    memcpy(file, "DELM", 4);
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

static void check_loaded(del_model *m)
{
    void *buf = NULL;
    size_t n = 0;
    del_model *again = NULL;
    /* NaN and infinity load as they are, so saving them must be allowed. */
    if (del_model_save_buffer_flags(m, &buf, &n, DEL_SAVE_ALLOW_NONFINITE) != DEL_OK ||
        del_model_load_buffer(&again, buf, n) != DEL_OK)
        abort(); /* whatever loads must save and load again */
    if (del_model_num_params(again) != del_model_num_params(m) ||
        (m->n_params && memcmp(m->params, again->params, (size_t)m->n_params * sizeof(float)) != 0))
        abort();
    del_model_free(again);
    del_buffer_free(buf);
    if (activation_floats(m) <= (1 << 16) && del_model_num_params(m) <= (1 << 16)) {
        int64_t shape[4] = {2, m->in_c, m->in_h, m->in_w};
        del_tensor *x = NULL;
        if (del_tensor_new(&x, DEL_DTYPE_F32, 4, shape) == DEL_OK) {
            del_model_set_training(m, 0);
            (void)del_model_forward(m, x);
        }
        del_tensor_free(x);
    }
}

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
    del_model *m = NULL;
    if (del_model_load_buffer(&m, file, len) == DEL_OK)
        check_loaded(m);
    else if (m != NULL)
        abort(); /* *out must be NULL after a failure */
    del_model_free(m);
#ifdef FUZZ_PAYLOAD
    free(wrapped);
#endif
    return 0;
}
