/* A C client of libdel for tests/python/test_interop.py: it saves and loads
 * model files through the C API so the Python bindings can be checked
 * against a program that never goes through ctypes.
 *
 *   model_io_helper save PATH   builds SPEC, init(SEED), one training-mode
 *                               forward (so the batchnorm running statistics
 *                               are not the initial ones), saves to PATH
 *   model_io_helper load PATH   loads PATH
 *
 * Both then print the evaluation-mode logits of the fixed input, one value
 * per line with %.9g (enough digits to round-trip a float). The spec, seed
 * and input must stay in step with test_interop.py. */
#include <stdio.h>
#include <string.h>

#include "del.h"

#define SPEC "input 1 6 6; conv2d 4 k=3 p=1; batchnorm; relu; maxpool 2; flatten; linear 3"
#define SEED 7
#define BATCH 2
#define PIXELS 36

static int fail(const char *what)
{
    fprintf(stderr, "model_io_helper: %s: %s\n", what, del_last_error());
    return 1;
}

/* Exactly representable values, so Python builds the same input bit for bit. */
static void fill_input(float *x, int n)
{
    for (int i = 0; i < n; i++)
        x[i] = (float)(i % 17) / 8.0f - 1.0f;
}

int main(int argc, char **argv)
{
    float input[BATCH * PIXELS];
    int64_t shape[4] = {BATCH, 1, 6, 6};
    del_model *model = NULL;
    del_tensor *x = NULL, *out;
    const float *logits;
    int rc = 1;

    if (argc != 3 || (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "load") != 0)) {
        fprintf(stderr, "usage: model_io_helper save|load PATH\n");
        return 2;
    }
    fill_input(input, BATCH * PIXELS);
    if (del_tensor_wrap(&x, DEL_DTYPE_F32, 4, shape, input) != DEL_OK) {
        rc = fail("del_tensor_wrap");
        goto cleanup;
    }
    if (strcmp(argv[1], "save") == 0) {
        if (del_model_from_spec(&model, SPEC) != DEL_OK || del_model_init(model, SEED) != DEL_OK
            || del_model_forward(model, x) != DEL_OK || del_model_save(model, argv[2]) != DEL_OK) {
            rc = fail("save");
            goto cleanup;
        }
    } else if (del_model_load(&model, argv[2]) != DEL_OK) {
        rc = fail("del_model_load");
        goto cleanup;
    }
    if (del_model_set_training(model, 0) != DEL_OK || del_model_forward(model, x) != DEL_OK) {
        rc = fail("forward");
        goto cleanup;
    }
    out = del_model_output(model);
    logits = del_tensor_data(out);
    for (int64_t i = 0; i < del_tensor_numel(out); i++)
        printf("%.9g\n", (double)logits[i]);
    rc = 0;
cleanup:
    del_tensor_free(x);
    del_model_free(model);
    return rc;
}
