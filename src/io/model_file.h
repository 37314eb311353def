/* Internal: what the model file code (src/io/model_file.c) offers the
 * other writers of models (checkpoints). */
#ifndef DEL_IO_MODEL_FILE_H
#define DEL_IO_MODEL_FILE_H

#include "del/model.h"

/* DEL_OK if every parameter and batchnorm running statistic of m is
 * finite. Otherwise DEL_ENUMERIC with the message "<func>: layer <i>
 * (<type>) has NaN (or infinity) in its parameters (or running
 * statistics)<advice>" for the first such layer; advice says what the
 * caller can do instead. */
del_status del_model_check_finite(const del_model *m, const char *func, const char *advice);

#endif
