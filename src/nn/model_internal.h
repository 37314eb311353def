/* Internal: the model record, for the nn module and the model file format. */
#ifndef DEL_NN_MODEL_INTERNAL_H
#define DEL_NN_MODEL_INTERNAL_H

#include "core/rng.h"
#include "del/model.h"
#include "nn/layer.h"

/* Sub-streams of a model's seed: one per layer for initialisation (so a
 * layer's initial weights depend only on the seed and its position), one
 * for dropout masks. */
#define DEL_MODEL_STREAM_INIT 1
#define DEL_MODEL_STREAM_DROPOUT 2

struct del_model {
    int in_c, in_h, in_w;
    del_layer *layers;
    int n_layers;
    float *params;   /* n_params floats, in layer order */
    float *grads;    /* n_params floats */
    int64_t n_params;
    float *state;    /* n_state floats: batchnorm running statistics */
    int64_t n_state;
    uint64_t seed;
    del_rng rng;     /* dropout stream */
    int training;
    int fwd_mode;    /* -1: no usable forward, 0: last forward in eval mode, 1: in training mode */
    int have_grad;   /* a backward ran since the last forward */
    /* The first layer's input gradient is only computed once someone asked
     * for it (del_model_input_grad sets want_input_grad); until then a
     * backward through a first conv2d skips it (input_grad_pending). */
    int want_input_grad;
    int input_grad_pending;
    del_tensor *input;      /* copy of the last forward's input */
    del_tensor *input_grad; /* input gradient of a model without layers */
    void *ws;        /* conv scratch shared by all layers */
    size_t ws_size;
};

#endif
