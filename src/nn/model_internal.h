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

/* Longest head name (model.h: 1..31 of [A-Za-z0-9_.-]). */
#define DEL_HEAD_NAME_MAX 31

/* A named head: the contiguous layers first..first+count-1 (count >= 1),
 * reading the backbone's output. Heads follow the backbone in the layer
 * array, in creation order, so the last head's layers end the array. */
typedef struct del_head {
    char name[DEL_HEAD_NAME_MAX + 1];
    int first, count;
    /* The last backward: whether it went through this head, and the lowest
     * layer whose dx it computed (first + count: none), as dx_valid_from. */
    int in_grad;
    int dx_valid_from;
    const del_tensor *grad_in; /* set only while a backward validates its arguments */
} del_head;

struct del_model {
    int in_c, in_h, in_w;
    del_layer *layers;
    del_layer_group *groups; /* one per layer */
    int n_layers;
    /* Layers 0..heads[0].first-1 are the backbone (all layers without
     * heads). building_head: del_model_add_layer appends to the last head
     * (model_add.c adds a head's layers this way). */
    del_head *heads;
    int n_heads;
    int building_head;
    /* Bumped by every change of a group, so that optimizers notice and
     * rebuild their parameter ranges. */
    uint64_t groups_version;
    /* Bumped whenever layers are removed or replaced (a head; appending
     * layers changes the parameter count instead, and split_head moves no
     * parameter): an optimizer made before refuses to step, as its state
     * belongs to other parameters. */
    uint64_t layout_version;
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
     * computed (n_layers: none); del_model_input_grad computes the rest.
     * With heads, dx_valid_from is the backbone's (its end: none) and each
     * head keeps its own. */
    int want_input_grad;
    int dx_valid_from;
    /* With heads: d loss / d backbone output of the last backward, the sum
     * over the heads it went through; valid once head_grad_valid. */
    del_tensor *head_grad;
    int head_grad_valid;
    /* Parameter-gradient scratch for frozen layers whose backward always
     * writes parameter gradients (all but conv2d and batchnorm). */
    float *scratch_grads;
    int64_t scratch_size;
    del_tensor *input;      /* copy of the last forward's input */
    del_tensor *input_grad; /* input gradient of a model without layers */
    void *ws;        /* conv scratch shared by all layers */
    size_t ws_size;
};

/* The number of backbone layers: where the first head starts, or
 * n_layers without heads. */
static inline int del_model_backbone_end(const del_model *m)
{
    return m->n_heads > 0 ? m->heads[0].first : m->n_layers;
}

/* The per-image shape the next layer appended by del_model_add_layer
 * receives (the backbone's output for the first layer of a head). */
void del_model_next_shape(const del_model *m, int *ndim, int64_t *shape);

/* Frees a layer's tensors. */
void del_model_layer_release(del_layer *l);

/* Initialises layer i's parameters and state from the model's seed and
 * the layer's index (stream DEL_MODEL_STREAM_INIT, sub-stream i). */
void del_model_layer_init(const del_model *m, int i);

/* Starts an empty head called name (valid and unused: the caller checks)
 * after the last layer; del_model_add_layer appends to it until
 * del_model_end_head. Errors: DEL_ENOMEM. */
del_status del_model_begin_head(del_model *m, const char *name, const char *func);
void del_model_end_head(del_model *m);

/* 1 if name is a valid head name (model.h). */
int del_model_head_name_valid(const char *name);

/* Appends the layers of a spec string without the input item ("flatten;
 * linear 10") to m, through del_model_add_layer (spec.c). Errors as
 * del_model_from_spec, the message starting with func. */
del_status del_model_parse_layers(del_model *m, const char *spec, const char *func);

/* DEL_OK if a and b have the same architecture: input shape, layer types,
 * settings and sizes, and heads (names and layer ranges), so that one's
 * parameter and state buffers fit the other's. Otherwise DEL_EINVAL naming
 * the first difference, e.g. "<func>: layer 3 (linear) differs: out 10 in
 * <a_name>, 5 in <b_name>"; the names are written as they should read
 * ("'src'", "the checkpoint"). Allocates nothing (model_clone.c). */
del_status del_model_check_same(const del_model *a, const char *a_name, const del_model *b, const char *b_name,
                                const char *func);

#endif
