/* The public header on its own: compiled as C11 and as C++11 with -pedantic
 * -Werror, including nothing but <del.h>, then linked and run against the
 * shared library. Catches a header that needs another include first, uses a
 * compiler extension, or is not C++-clean (extern "C", enum conversions). */
#include <del.h>

/* Only after del.h, so that del.h must bring its own includes. */
#include <stdio.h>

static void expect(int cond, const char *what, int *failures)
{
    if (!cond) {
        fprintf(stderr, "header_test: FAILED: %s\n", what);
        ++*failures;
    }
}

int main(void)
{
    int failures = 0;
    del_tensor *t = NULL;
    const int64_t shape[2] = {2, 3};
    const char *v = del_version_string();
    const char *msg;

    expect(del_version_number() ==
               DEL_VERSION_MAJOR * 10000 + DEL_VERSION_MINOR * 100 + DEL_VERSION_PATCH,
           "version number matches the header", &failures);
    expect(v != NULL && v[0] == (char)('0' + DEL_VERSION_MAJOR), "version string", &failures);
    expect(DEL_OK == 0 && DEL_EINVAL < 0, "status values", &failures);
    expect(del_tensor_new(&t, DEL_DTYPE_F32, 2, shape) == DEL_OK, "tensor_new", &failures);
    expect(del_tensor_numel(t) == 6, "numel", &failures);
    del_tensor_free(t);
    expect(del_tensor_new(NULL, DEL_DTYPE_F32, 2, shape) == DEL_EINVAL, "NULL out", &failures);
    msg = del_last_error();
    expect(msg != NULL && msg[0] != '\0', "error message set", &failures);
    expect(del_status_str(DEL_ENOMEM) != NULL, "status_str", &failures);
    return failures == 0 ? 0 : 1;
}
