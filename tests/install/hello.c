/* Built against an installed libdel through pkg-config by run.sh. Prints
 * what run.sh compares with expected values. */
#include <del.h>
#include <stdio.h>

int main(void)
{
    del_tensor *x = NULL;
    del_model *m = NULL;
    const int64_t shape[4] = {2, 1, 28, 28};
    int rc = 1;

    printf("version %s\n", del_version_string());
    if (del_tensor_new(&x, DEL_DTYPE_F32, 4, shape) != DEL_OK)
        goto cleanup;
    printf("tensor numel %lld\n", (long long)del_tensor_numel(x));
    if (del_model_preset(&m, "mlp", 1, 28, 28, 10) != DEL_OK)
        goto cleanup;
    printf("mlp params %lld\n", (long long)del_model_num_params(m));
    if (del_model_forward(m, x) != DEL_OK)
        goto cleanup;
    printf("output %lld x %lld\n", (long long)del_tensor_dim(del_model_output(m), 0),
           (long long)del_tensor_dim(del_model_output(m), 1));
    rc = 0;
cleanup:
    if (rc != 0)
        fprintf(stderr, "hello: %s\n", del_last_error());
    del_model_free(m);
    del_tensor_free(x);
    return rc;
}
