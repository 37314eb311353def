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

/* A layer's parameter group: frozen layers get no parameter gradients and
 * no optimizer updates (a frozen batchnorm or residual block also
 * normalises with its running statistics, as in evaluation mode); lr_mult
 * scales the optimizer's learning rate for the layer's parameters. */
typedef struct del_layer_group {
    int frozen;
    float lr_mult;
} del_layer_group;

struct del_model {
    int in_c, in_h, in_w;
    del_layer *layers;
    del_layer_group *groups; /* one per layer */
    int n_layers;
    /* Bumped by every change of a group, so that optimizers notice and
     * rebuild their parameter ranges. */
    uint64_t groups_version;
    /* A layer with batchnorm statistics (model.c: runs_as_eval) changed
     * frozen state since the last forward: that forward normalised with
     * other statistics than backward would assume. */
    int bn_groups_changed;
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
    /* The input gradient is only computed once someone asked for it
     * (del_model_input_grad sets want_input_grad); until then backward stops
     * below the lowest trainable layer and skips a first conv2d's input
     * gradient. dx_valid_from is the lowest layer whose dx the last backward
     * computed (n_layers: none); del_model_input_grad computes the rest. */
    int want_input_grad;
    int dx_valid_from;
    /* Parameter-gradient scratch for frozen layers whose backward always
     * writes parameter gradients (all but conv2d and batchnorm). */
    float *scratch_grads;
    int64_t scratch_size;
    del_tensor *input;      /* copy of the last forward's input */
    del_tensor *input_grad; /* input gradient of a model without layers */
    void *ws;        /* conv scratch shared by all layers */
    size_t ws_size;
};

#endif
