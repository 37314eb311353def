/* libdel — models: a sequence of layers over f32 NCHW input, with all
 * parameters in one contiguous buffer (and their gradients in another);
 * optionally a backbone plus named heads (see "Heads" below).
 *
 * Layers: linear, conv2d, batchnorm, relu, maxpool, flatten, dropout,
 * avgpool, global_avgpool, residual (a ResNet basic block).
 * Weights are initialised as PyTorch does by default (conv/linear weight
 * and bias uniform in +-1/sqrt(fan_in); batchnorm gamma 1, beta 0).
 * Threading: a model is used by one thread at a time; distinct models are
 * independent. */
#ifndef DEL_MODEL_H
#define DEL_MODEL_H

#include "common.h"
#include "data.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct del_model del_model;

/* Creates an empty model taking input of shape [N, channels, height, width].
 * Its random stream (initialisation, dropout) starts from seed 0; see
 * del_model_init. Errors: DEL_EINVAL (NULL out, a size < 1), DEL_ENOMEM. */
DEL_API del_status del_model_new(del_model **out, int channels, int height, int width);

/* Appends a layer. The new layer's shape follows from the previous output.
 * Its parameters are initialised from the model's random stream.
 * Errors (all): DEL_EINVAL (NULL model, a parameter out of range, a layer
 * that does not fit the current output shape — e.g. conv2d after flatten,
 * linear on a 4-d output, a kernel larger than the padded input),
 * DEL_ESTATE (the model has heads: the backbone is complete; remove the
 * heads to add backbone layers), DEL_ENOMEM. */
/* conv2d: out_channels >= 1, kernel >= 1, stride >= 1, 0 <= pad < kernel; bias 0/1. */
DEL_API del_status del_model_add_conv2d(del_model *model, int out_channels, int kernel, int stride, int pad, int bias);
/* linear on a 2-d output [N, F]: y = x W^T + b; bias 0/1. */
DEL_API del_status del_model_add_linear(del_model *model, int out_features, int bias);
/* batchnorm over channels of a 4-d output (or features of a 2-d one);
 * eps > 0, momentum in (0, 1] (PyTorch defaults: 1e-5, 0.1). */
DEL_API del_status del_model_add_batchnorm(del_model *model, float eps, float momentum);
DEL_API del_status del_model_add_relu(del_model *model);
/* maxpool on a 4-d output: kernel >= 1, stride >= 1 (floor mode, no padding). */
DEL_API del_status del_model_add_maxpool(del_model *model, int kernel, int stride);
/* flatten [N, C, H, W] to [N, C*H*W] (C order). */
DEL_API del_status del_model_add_flatten(del_model *model);
/* dropout with drop probability p in [0, 1): inverted scaling, identity in eval mode. */
DEL_API del_status del_model_add_dropout(del_model *model, float p);
/* avgpool on a 4-d output: the mean of each kernel x kernel window
 * (divisor kernel*kernel), kernel >= 1, stride >= 1, floor mode, no
 * padding (torch's AvgPool2d(kernel, stride)). */
DEL_API del_status del_model_add_avgpool(del_model *model, int kernel, int stride);
/* global average pooling of a 4-d output: [N, C, H, W] -> [N, C], the mean
 * of each plane (torch's AdaptiveAvgPool2d(1) then flatten). */
DEL_API del_status del_model_add_global_avgpool(del_model *model);
/* residual on a 4-d output [N, Cin, H, W]: the basic block of He et al.'s
 * CIFAR ResNets, y = relu(branch(x) + shortcut(x)) with
 * branch = BN(conv3x3(relu(BN(conv3x3(x, stride, pad 1))), 1, pad 1)),
 * convs without bias, BNs with eps 1e-5 and momentum 0.1. The shortcut is x
 * if out_channels == Cin and stride == 1, else a projection
 * BN(conv1x1(x, stride)) (option B). Output [N, out_channels,
 * (H-1)/stride + 1, (W-1)/stride + 1]. Stochastic depth (Huang et al.
 * 2016) per image, as torchvision's stochastic_depth(mode="row"): in
 * training mode each image's branch is kept with probability
 * survival_prob and then scaled by 1/survival_prob, else dropped (one draw
 * per image from the model's stream, none if survival_prob is 1); in
 * evaluation mode the branch is always kept, unscaled. out_channels >= 1,
 * stride >= 1, survival_prob in (0, 1]. Weights initialised as PyTorch's
 * Conv2d/BatchNorm2d defaults. */
DEL_API del_status del_model_add_residual(del_model *model, int out_channels, int stride, float survival_prob);

/* Builds a model from a spec string: items separated by ';' or newlines,
 * each a layer name, positional numbers, then key=value options:
 *   input C H W                       (required, first)
 *   conv2d OUT [k=3] [s=1] [p=0] [bias=1]
 *   linear OUT [bias=1]
 *   batchnorm [eps=1e-5] [momentum=0.1]
 *   relu | flatten
 *   maxpool K [s=K]
 *   dropout P
 *   avgpool K [s=K]
 *   gap                               (global average pooling)
 *   residual OUT [s=1] [survival=1]
 * e.g. "input 1 28 28; flatten; linear 256; relu; linear 10".
 * Errors: DEL_EINVAL (NULL argument), DEL_EFORMAT (unknown layer or option,
 * missing or malformed number: the message gives the item number and the
 * offending text), the errors of the del_model_add_* calls, DEL_ENOMEM. */
DEL_API del_status del_model_from_spec(del_model **out, const char *spec);

/* Builds a named preset for the given input shape and number of classes:
 *   "fmnist-cnn"  [conv3x3(32,p1,no bias) BN ReLU] x2, maxpool 2,
 *                 [conv3x3(64,p1,no bias) BN ReLU] x2, maxpool 2, flatten,
 *                 linear 128, ReLU, dropout 0.5, linear num_classes
 *   "mlp"         flatten, linear 256, ReLU, linear num_classes
 *   "resnet20"    He et al.'s CIFAR ResNet-20: conv3x3(16, p1, no bias) BN
 *                 ReLU, 3 stages x 3 residual blocks of 16/32/64 channels
 *                 (stride 2 at the first block of stages 2 and 3), global
 *                 average pooling, linear num_classes (0.27 M parameters
 *                 on 3x32x32 with 10 classes)
 *   "wrn-16-K"    wide ResNet WRN-16-K, K = 1..10 (e.g. "wrn-16-4"): as
 *                 resnet20 with 2 blocks per stage of 16K/32K/64K channels
 *                 (the post-activation block above, no dropout)
 * Errors: DEL_EINVAL (NULL argument, unknown name: the message lists the
 * presets, a size < 1, num_classes < 2), DEL_ENOMEM. */
DEL_API del_status del_model_preset(del_model **out, const char *name, int channels, int height, int width, int num_classes);

/* Frees model. del_model_free(NULL) is a no-op. */
DEL_API void del_model_free(del_model *model);

/* Re-initialises every parameter (and batchnorm running statistics) from
 * seed and restarts the model's random stream (dropout) at seed.
 * Errors: DEL_EINVAL (NULL model). */
DEL_API del_status del_model_init(del_model *model, uint64_t seed);

/* Selects training mode (1: batchnorm uses batch statistics and updates
 * running ones, dropout active) or evaluation mode (0). New models are in
 * training mode. Errors: DEL_EINVAL (NULL model). */
DEL_API del_status del_model_set_training(del_model *model, int training);

/* 1 in training mode, 0 in evaluation mode (0 if model is NULL). */
DEL_API int del_model_is_training(const del_model *model);

/* Number of layers (0 if NULL): the backbone's and every head's. */
DEL_API int del_model_num_layers(const del_model *model);

/* The type name of layer i ("conv2d", "linear", ...); NULL if out of range. */
DEL_API const char *del_model_layer_type(const del_model *model, int i);

/* Number of trainable parameters (0 if NULL). */
DEL_API int64_t del_model_num_params(const del_model *model);

/* The contiguous parameter buffer and its gradient buffer, each
 * del_model_num_params floats, in layer order (borrowed; valid until the
 * next layer or head is added, a head is replaced or removed, or the model
 * is freed). Writing parameters is allowed.
 * NULL if model is NULL or has no parameters. */
DEL_API float *del_model_params(del_model *model);
DEL_API float *del_model_grads(del_model *model);

/* The parameters of layer i: del_model_params(model)[*offset ..
 * *offset + *count - 1] (count 0 for a layer without parameters, e.g.
 * relu). Layers are numbered as in del_model_layer_type, heads included.
 * Errors: DEL_EINVAL if model, offset or count is NULL or i is out of
 * range. */
DEL_API del_status del_model_layer_params(const del_model *model, int i, int64_t *offset, int64_t *count);

/* The model's non-trainable buffers (PyTorch's "buffers": the running
 * means and variances of its batchnorm layers and residual blocks), in
 * layer order, del_model_num_buffers floats (0 and NULL for a model
 * without batchnorm). Borrowed, valid as del_model_params. A training-mode
 * forward updates them; writing them is allowed (e.g. restoring a copy). */
DEL_API int64_t del_model_num_buffers(const del_model *model);
DEL_API float *del_model_buffers(del_model *model);

/* The input shape the model was made for: [channels, height, width] of one
 * image. Errors: DEL_EINVAL (a NULL argument). */
DEL_API del_status del_model_input_shape(const del_model *model, int *channels, int *height, int *width);

/* The output shape for one image (with heads, the first head's): *ndim is
 * 1 ([F]) or 3 ([C, H, W]) and shape receives that many sizes (shape must
 * hold 3). Errors: DEL_EINVAL. */
DEL_API del_status del_model_output_shape(const del_model *model, int *ndim, int64_t *shape);

/* Writes a human-readable summary (one line per layer with output shape and
 * parameter count, then the total) into buf of size bytes, NUL-terminated;
 * *needed (if not NULL) receives the size the whole summary needs,
 * including the NUL, as snprintf's return value plus one.
 * Size query: size 0 (buf may be NULL; nothing is written) sets *needed and
 * returns DEL_OK, so the usual pair of calls is
 *   del_model_summary(m, NULL, 0, &n); buf = malloc(n);
 *   del_model_summary(m, buf, n, NULL);
 * A buffer too small for the whole summary (0 < size < *needed) receives
 * the first size - 1 bytes and a NUL, and the call returns DEL_EINVAL
 * (naming 'size' and the size needed), so that a caller checking only the
 * status never takes a truncated summary for the whole.
 * Errors: DEL_EINVAL (model NULL; buf NULL with size > 0; needed NULL with
 * size 0; size too small, as above). */
DEL_API del_status del_model_summary(const del_model *model, char *buf, size_t size, size_t *needed);

/* Runs the model on x (f32 [N, C, H, W] matching the input shape; N >= 1):
 * with heads, the backbone once and every head on its output.
 * The result is kept in the model: see del_model_output.
 * Errors: DEL_EINVAL (NULL argument, wrong dtype or shape: the message gives
 * expected and actual), DEL_ENOMEM. */
DEL_API del_status del_model_forward(del_model *model, const del_tensor *x);

/* The output of the last forward (f32 [N, ...]), borrowed: valid until the
 * next forward, a change of the layers or heads, or until the model is
 * freed. NULL before any forward. With heads, the first head's output. */
DEL_API del_tensor *del_model_output(del_model *model);

/* Back-propagates grad_output (f32, the shape of del_model_output) through
 * the last forward, adding parameter gradients into del_model_grads. With
 * heads, through the first head and the backbone only (as
 * del_model_backward_heads with that head alone).
 * Errors: DEL_EINVAL (NULL argument, shape mismatch), DEL_ESTATE (no forward
 * yet, or the last forward was in evaluation mode), DEL_ENOMEM. */
DEL_API del_status del_model_backward(del_model *model, const del_tensor *grad_output);

/* Gradient of the loss with respect to the last forward's input (f32
 * [N, C, H, W]), borrowed; NULL before any backward. With heads, from the
 * heads the last backward went through. */
DEL_API del_tensor *del_model_input_grad(del_model *model);

/* Sets every gradient to zero. Errors: DEL_EINVAL (NULL model). */
DEL_API del_status del_model_zero_grad(del_model *model);

/* ---- Parameter groups (transfer learning, SPEC 1.2) ----
 * Every layer is trainable (the default) or frozen, and has a learning-rate
 * multiplier (default 1). A frozen layer behaves as a PyTorch module whose
 * parameters have requires_grad=False: backward adds no gradient to its
 * parameters (they stay as they are, normally 0) but still passes the
 * gradient through it to earlier trainable layers, and optimizers leave
 * its parameters and their optimizer state (momentum, Adam moments, weight
 * decay) alone. A frozen batchnorm also normalises with its running
 * statistics in training mode and does not update them, so it computes
 * exactly what it computes in evaluation mode (a linear probe's backbone);
 * so does a frozen residual block (its batchnorms, and no stochastic
 * depth). Dropout in a frozen range stays active in training mode.
 * Backward skips every layer below the lowest trainable one until
 * del_model_input_grad asks for the input gradient, so training only a
 * head costs one layer's backward.
 * Optimizers read the groups at every step: a change applies from the
 * next del_optimizer_step (see del_optimizer_new_sgd). Groups are not
 * saved in model files: a loaded model has every layer trainable at 1x
 * (del_model_clone keeps them).
 * Layer ranges are inclusive; a negative index counts from the end (-1 is
 * the last layer), so del_model_freeze(model, 0, -2) freezes all but the
 * last layer. Ranges may include layers without parameters (freezing them
 * does nothing). */

/* Freezes layers first..last. Freezing or unfreezing a batchnorm or a
 * residual block between a forward and its backward makes that backward
 * fail (DEL_ESTATE): the forward normalised with other statistics.
 * Errors: DEL_EINVAL (NULL model, a model without layers, an index out of
 * range, first after last). */
DEL_API del_status del_model_freeze(del_model *model, int first, int last);

/* Makes layers first..last trainable again. Errors: as del_model_freeze. */
DEL_API del_status del_model_unfreeze(del_model *model, int first, int last);

/* Sets the learning-rate multiplier of layers first..last: their
 * parameters are updated with the optimizer's current lr times mult (e.g.
 * 0.1 for a fine-tuned backbone). mult must be finite and > 0 (freeze a
 * layer to stop training it). Errors: as del_model_freeze; mult out of
 * range. */
DEL_API del_status del_model_set_lr_mult(del_model *model, int first, int last, float mult);

/* 1 if layer i is frozen, 0 if trainable, NULL model or i out of range. */
DEL_API int del_model_layer_frozen(const del_model *model, int i);

/* The learning-rate multiplier of layer i; 0 if model is NULL or i is out
 * of range. */
DEL_API float del_model_layer_lr_mult(const del_model *model, int i);

/* ---- Heads ----
 * A model may be a backbone plus one or more named heads (transfer
 * learning swaps the classifier head, Learning without Forgetting trains
 * an old and a new head on one backbone, ...). Every head reads the
 * backbone's output (the model's input if the backbone has no layers).
 * The layers stay one list, backbone first, then each head's layers as a
 * contiguous range, heads in creation order; layer indices (freeze,
 * lr_mult, del_model_layer_type, the summary) cover all of them. The first
 * head added turns the layers present so far into the backbone; after that
 * the del_model_add_* builders fail (DEL_ESTATE) until every head is
 * removed. A model without heads behaves as a plain sequence.
 * A head name is 1..31 characters of A-Z a-z 0-9 _ . - and unique within
 * the model. A head spec is a layer list in the grammar of
 * del_model_from_spec without the input item, e.g. "linear 10" or
 * "flatten; linear 128; relu; linear 10"; a head has at least one layer.
 * A head's new layers are initialised from the model's seed (del_model_init,
 * 0 for a new or loaded model) and their layer indices, exactly as
 * del_model_init would initialise layers at those indices; they are
 * trainable at lr multiplier 1. Adding, replacing or removing a head moves
 * the parameter buffers (see del_model_params) and drops the last forward;
 * an optimizer made before must be made again (del_optimizer_step fails
 * when the parameter count changed). Heads are saved in model files. */

/* Adds a head called name whose layers are given by spec, after the other
 * heads. Errors: DEL_EINVAL (NULL argument, a bad name, a name already
 * used, a layer that does not fit: the message gives the spec item),
 * DEL_EFORMAT (a malformed or empty spec, an unknown layer or option: the
 * message gives the item number and text, as del_model_from_spec),
 * DEL_ENOMEM. On error the model is unchanged. */
DEL_API del_status del_model_add_head(del_model *model, const char *name, const char *spec);

/* Replaces the layers of head name by new ones built from spec, freshly
 * initialised, at the same position and under the same name; the old
 * layers, their parameters, gradients and groups are gone. Errors: as
 * del_model_add_head, and DEL_EINVAL if no head is called name. On error
 * the model is unchanged. */
DEL_API del_status del_model_replace_head(del_model *model, const char *name, const char *spec);

/* Removes head name and its layers; the later heads move down. Removing
 * the last head leaves a model without heads (its backbone).
 * Errors: DEL_EINVAL (NULL argument, no head called name), DEL_ENOMEM. On
 * error the model is unchanged. */
DEL_API del_status del_model_remove_head(del_model *model, const char *name);

/* Turns layers first_layer..end of a model without heads into a head
 * called name (a negative index counts from the end: -1 makes the last
 * layer a head, e.g. a preset's classifier, to replace with
 * del_model_replace_head); the layers before it become the backbone.
 * Parameters and groups are kept. Errors: DEL_EINVAL (NULL argument, a bad
 * name, a model without layers, first_layer out of range), DEL_ESTATE (the
 * model already has heads), DEL_ENOMEM. */
DEL_API del_status del_model_split_head(del_model *model, const char *name, int first_layer);

/* Number of heads (0 if NULL or without heads). */
DEL_API int del_model_num_heads(const del_model *model);

/* The name of head i (creation order), borrowed until the head is removed;
 * NULL if model is NULL or i is out of range. */
DEL_API const char *del_model_head_name(const del_model *model, int i);

/* The index of the head called name; -1 if none (or a NULL argument). */
DEL_API int del_model_head_index(const del_model *model, const char *name);

/* The layers of head name: *first receives its first layer index, *count
 * its number of layers (the range first..first+count-1 for
 * del_model_freeze and friends). Errors: DEL_EINVAL (NULL argument, no
 * head called name). */
DEL_API del_status del_model_head_layers(const del_model *model, const char *name, int *first, int *count);

/* Number of backbone layers: the index of the first head's first layer,
 * or del_model_num_layers without heads (0 if NULL). Freeze the backbone
 * with del_model_freeze(model, 0, del_model_backbone_layers(model) - 1). */
DEL_API int del_model_backbone_layers(const del_model *model);

/* The output of head name in the last forward (f32 [N, ...]), borrowed as
 * del_model_output; NULL before any forward, if no head is called name or
 * a NULL argument. */
DEL_API del_tensor *del_model_head_output(del_model *model, const char *name);

/* Back-propagates the gradients grads[k] (f32, the shape of
 * del_model_head_output of names[k]) of count heads, each named at most
 * once: through each of those heads, then through the backbone from the
 * sum of the gradients they pass down. Parameter gradients are added into
 * del_model_grads for the layers of the listed heads and of the backbone,
 * as del_model_backward does; the heads not listed get none. The result
 * does not depend on the order of the list. Frozen layers behave as in
 * del_model_backward (a frozen backbone is not back-propagated through
 * until del_model_input_grad asks). Errors: DEL_EINVAL (NULL model, names
 * or grads, count < 1, a model without heads, a NULL or unknown name, a
 * name listed twice, a NULL gradient, a gradient of the wrong dtype or
 * shape: the message gives its index), DEL_ESTATE (as del_model_backward),
 * DEL_ENOMEM. On DEL_EINVAL or DEL_ESTATE nothing is computed. */
DEL_API del_status del_model_backward_heads(del_model *model, int count, const char *const *names, const del_tensor *const *grads);

/* ---- Copies and the moving average of weights ----
 * A clone is a second, independent model equal to the first (a teacher
 * kept while a student trains, a snapshot to go back to, the averaged
 * model of FixMatch or Mean Teacher); del_model_copy_weights moves the
 * weights between two models of one architecture; del_model_ema_update
 * keeps an exponential moving average of a model's weights in a clone of
 * it. As all parameters are in one buffer and all batchnorm statistics in
 * another, each call costs one pass over them (a clone also rebuilds the
 * layers). Threading: as every model call; the models passed are used by
 * no other thread during the call. */

/* Makes *out a deep, independent copy of model: the architecture (every
 * layer with its settings, the heads with their names), the parameters,
 * the batchnorm running statistics (del_model_buffers), the parameter
 * groups (frozen layers, learning-rate multipliers), the seed and the
 * random stream where it stands (so the clone draws the dropout masks and
 * stochastic-depth choices that model would draw next) and the training
 * or evaluation mode. Not copied: the gradients (the clone's are 0), the
 * last forward (the clone has none: del_model_output is NULL) and anything
 * made over model, such as an optimizer. Unlike a round trip through
 * del_model_save_buffer and del_model_load_buffer, groups, mode and stream
 * are kept. Later changes to either model leave the other as it is. The
 * caller owns *out and frees it with del_model_free; *out is NULL on
 * failure. Errors: DEL_EINVAL (NULL out or model), DEL_ENOMEM (nothing is
 * leaked). */
DEL_API del_status del_model_clone(del_model **out, const del_model *model);

/* Copies the parameters and batchnorm running statistics of src into dst,
 * a model of the same architecture (input shape, layer types and
 * settings, heads with their names and layers: e.g. built from the same
 * spec or preset, or a clone): a teacher takes the student's weights
 * (Noisy Student), a snapshot is restored. dst's groups, mode, random
 * stream, gradients and last forward stay as they are (as after writing
 * del_model_params). dst == src does nothing.
 * Errors: DEL_EINVAL (NULL argument; another architecture: the message
 * names the first difference, e.g. "layer 3 (linear) differs: out 10 in
 * 'src', 5 in 'dst'", and dst is unchanged). */
DEL_API del_status del_model_copy_weights(del_model *dst, const del_model *src);

/* Updates ema, an exponential moving average of model's weights (the EMA
 * of FixMatch, Mean Teacher, timm's ModelEmaV2): every parameter becomes
 *   p_ema = decay * p_ema + (1 - decay) * p
 * (computed in double, so a parameter that did not move stays exactly as
 * it is; decay 0 copies the parameters, decay 1 leaves them unchanged).
 * The batchnorm running statistics are copied from model as they are, as
 * in FixMatch's EMA (timm's ModelEmaV3 with exclude_buffers=True): they
 * already are a moving average of model's batch statistics, and averaging
 * them again would make them lag far behind the weights they normalise
 * (timm's default averages them with the parameters). Typical use: make
 * ema with del_model_clone(&ema, model) before training, update it after
 * every optimizer step with decay 0.999 (FixMatch) to 0.9999, and evaluate
 * or predict with ema through the ordinary calls, in evaluation mode.
 * ema's groups, mode, random stream and gradients stay as they are. The
 * result does not depend on the number of threads.
 * Errors: DEL_EINVAL (NULL argument; decay not in [0, 1], NaN included;
 * ema and model the same model; another architecture, as
 * del_model_copy_weights). On error ema is unchanged. */
DEL_API del_status del_model_ema_update(del_model *ema, const del_model *model, float decay);

/* del_model_ema_update with the decay warmed up over the first updates,
 * as TensorFlow's ExponentialMovingAverage with num_updates: it uses
 *   decay_t = min(decay, (1 + step) / (10 + step))
 * (the ratio rounded to float) at update step (0 for the first update):
 * 0.1 at step 0, 0.5 at step 8, 0.9 at step 80, so that the average soon
 * forgets the initial weights. Errors: those of del_model_ema_update, and
 * DEL_EINVAL for step < 0. */
DEL_API del_status del_model_ema_update_step(del_model *ema, const del_model *model, float decay, int64_t step);

/* Mean softmax cross-entropy of logits (f32 [N, K]) against labels (i32
 * [N], each in 0..K-1). *loss receives the mean; if grad is not NULL
 * (f32 [N, K]) it receives d loss / d logits = (softmax - onehot) / N.
 * Errors: DEL_EINVAL (NULL argument, wrong dtype or shape, label out of
 * range: the message names the row). */
DEL_API del_status del_loss_cross_entropy(const del_tensor *logits, const del_tensor *labels, float *loss, del_tensor *grad);

/* Mean softmax cross-entropy against soft targets: targets is f32 [N, K],
 * each row a probability vector (entries >= 0, summing to 1 within 1e-3),
 * e.g. CutMix/MixUp labels or a teacher's softmax. *loss receives
 * mean_r -sum_k t_rk log softmax(z_r)_k; if grad is not NULL (f32 [N, K])
 * it receives (softmax - targets) / N. One-hot targets give exactly
 * del_loss_cross_entropy's loss and gradient.
 * Errors: DEL_EINVAL (NULL argument, wrong dtype or shape, a target row
 * with a negative or non-finite entry or not summing to 1: the message
 * names the row). */
DEL_API del_status del_loss_soft_cross_entropy(const del_tensor *logits, const del_tensor *targets, float *loss, del_tensor *grad);

/* Mean softmax cross-entropy with label smoothing, as torch's
 * F.cross_entropy(logits, labels, label_smoothing=smoothing): the target
 * of row r is (1 - s) onehot(y_r) + s / K. *loss receives
 * mean_r -sum_k t_rk log softmax(z_r)_k; if grad is not NULL (f32 [N, K])
 * it receives (softmax - t) / N. smoothing is in [0, 1); 0 gives exactly
 * del_loss_cross_entropy's loss and gradient.
 * Errors: DEL_EINVAL (as del_loss_cross_entropy; smoothing outside [0, 1)). */
DEL_API del_status del_loss_cross_entropy_smooth(const del_tensor *logits, const del_tensor *labels, float smoothing, float *loss, del_tensor *grad);

/* Knowledge-distillation loss (Hinton et al. 2015) at temperature T:
 * T^2 KL(softmax_T(teacher) || softmax_T(student)), the mean over rows of
 * each row's sum, as torch's F.kl_div(F.log_softmax(s / T, 1),
 * F.softmax(t / T, 1), reduction='batchmean') * T * T. Both inputs are
 * logits, f32 [N, K] (a teacher's stored probabilities p can be passed as
 * log p: softmax_T(log p) is p sharpened or softened by T; or to
 * del_loss_distill_acc with DEL_DISTILL_TEACHER_PROBS). If grad is not
 * NULL (f32 [N, K]) it receives d loss / d student_logits
 * = T (softmax_T(student) - softmax_T(teacher)) / N, whose scale does not
 * shrink as T grows. Computed in double. grad may be the same tensor as an
 * input. Errors: DEL_EINVAL (NULL argument, wrong dtype or shape, the two
 * logits of different shapes, temperature not a finite value > 0),
 * DEL_ENOMEM (more than 256 classes and no memory for two rows). */
DEL_API del_status del_loss_distill(const del_tensor *student_logits, const del_tensor *teacher_logits, float temperature, float *loss, del_tensor *grad);

/* ---- Losses that combine ----
 * The _acc forms add their gradient into grad instead of overwriting it,
 * so several losses sum into one gradient with no scratch tensor:
 * distillation alpha KD + (1 - alpha) CE, LwF CE + lambda KD, pseudo-labels
 * CE_l + lambda(t) CE_u with a confidence mask. Each weighs row r by
 * w_r = row_weights[r] (f32 [N], each finite and >= 0; NULL: all 1) and the
 * whole loss by weight (finite, >= 0), and takes the mean over all N rows:
 *   loss = weight * (1/N) sum_r w_r loss_r;   grad += d loss / d logits,
 * in PyTorch weight * (w * loss_fn(..., reduction='none')).mean(). A row
 * of weight 0 still counts in N, as FixMatch's (mask * ce).mean() over the
 * whole unlabeled batch; torch's reduction='mean' over the M rows kept is
 * weight N / M here. A row whose w_r * weight is 0 is skipped: its gradient
 * row is left as it was and its logits are not read (a NaN there does not
 * spread). *loss receives this loss, the term, not a running sum. grad may
 * be NULL (the loss alone) and must not share memory with an input. On an
 * error nothing is written to *loss or grad.
 * Threading: reentrant; calls writing the same grad must not overlap. */

/* Softmax cross-entropy against hard labels, with row weights, label
 * smoothing s in [0, 1) and ignored rows (label -1), added into grad:
 *   loss = weight * (1/N) sum_{r: y_r != -1} w_r * -sum_k t_rk log softmax(z_r)_k,  t_r = (1 - s) onehot(y_r) + s / K
 * in PyTorch weight * (w * F.cross_entropy(z, y, ignore_index=-1, label_smoothing=s, reduction='none')).mean();
 *   grad_r += weight * w_r * (softmax(z_r) - t_r) / N  (rows labelled -1: unchanged).
 * An ignored row counts in N like a row of weight 0; torch's
 * F.cross_entropy(z, y, ignore_index=-1) (mean over the M rows kept) is
 * weight N / M. Into a zeroed grad with row_weights NULL, weight 1 and no
 * label -1 it gives del_loss_cross_entropy_smooth's loss and gradient
 * exactly (del_loss_cross_entropy's with s = 0).
 * Errors: DEL_EINVAL (NULL logits, labels or loss; logits not f32 [N, K];
 * labels not i32 [N]; a label outside 0..K-1 other than -1 or a row weight
 * negative or not finite: the message names the row; row_weights not f32
 * [N]; smoothing outside [0, 1); weight negative or not finite; grad not
 * f32 [N, K] or sharing memory with an input). */
DEL_API del_status del_loss_cross_entropy_acc(const del_tensor *logits, const del_tensor *labels, const del_tensor *row_weights, float smoothing, float weight, float *loss, del_tensor *grad);

/* Softmax cross-entropy against soft targets (f32 [N, K], rows of
 * probabilities as for del_loss_soft_cross_entropy; every row is checked,
 * also those of weight 0), with row weights, added into grad:
 *   loss = weight * (1/N) sum_r w_r * -sum_k t_rk log softmax(z_r)_k
 * in PyTorch weight * (w * F.cross_entropy(z, t, reduction='none')).mean() (t probabilities);
 *   grad_r += weight * w_r * (softmax(z_r) - t_r) / N.
 * Into a zeroed grad with row_weights NULL and weight 1 it gives
 * del_loss_soft_cross_entropy's loss and gradient exactly.
 * Errors: DEL_EINVAL (NULL logits, targets or loss; logits not f32 [N, K];
 * targets not f32 [N, K] or a target row not a probability vector, or a
 * row weight negative or not finite: the message names the row;
 * row_weights not f32 [N]; weight negative or not finite; grad not f32
 * [N, K] or sharing memory with an input). */
DEL_API del_status del_loss_soft_cross_entropy_acc(const del_tensor *logits, const del_tensor *targets, const del_tensor *row_weights, float weight, float *loss, del_tensor *grad);

/* What del_loss_distill_acc takes as its teacher and whether T^2 scales the
 * loss (an OR of these). */
typedef enum del_distill_flags {
    DEL_DISTILL_DEFAULT = 0,       /* teacher logits, T^2 KL: del_loss_distill's loss */
    DEL_DISTILL_TEACHER_PROBS = 1, /* teacher rows are probabilities p at T = 1 (del_softmax(z, 1), stored soft labels), softened as p^(1/T) / sum p^(1/T) = softmax(log p / T) */
    DEL_DISTILL_NO_T_SQUARED = 2   /* KL without the T^2 factor, as Avalanche's and FACIL's LwF */
} del_distill_flags;

/* Knowledge distillation at temperature T with row weights, added into
 * grad; teacher is f32 [N, K] like student_logits, logits or (with
 * DEL_DISTILL_TEACHER_PROBS) probabilities. With q_r = softmax_T(teacher_r)
 * and f = T^2 (1 with DEL_DISTILL_NO_T_SQUARED):
 *   loss = weight * f * (1/N) sum_r w_r KL(q_r || softmax_T(student_r))
 * in PyTorch weight * f * (w * F.kl_div(F.log_softmax(s / T, 1), q, reduction='none').sum(1)).mean(),
 * the mean over rows of each row's sum (reduction='batchmean', not 'mean',
 * which also divides by K);
 *   grad_r += weight * w_r * (f / T) * (softmax_T(student_r) - q_r) / N.
 * Probabilities p give the loss of the logits log p (up to rounding), so a
 * teacher's stored softmax and its logits give the same loss. Into a zeroed grad
 * with row_weights NULL, flags 0 and weight 1 it gives del_loss_distill's
 * loss and gradient exactly. Computed in double.
 * Errors: DEL_EINVAL (NULL student_logits, teacher or loss; student_logits
 * not f32 [N, K]; teacher not f32 of its shape; with
 * DEL_DISTILL_TEACHER_PROBS a teacher row not a probability vector, or a
 * row weight negative or not finite: the message names the row;
 * row_weights not f32 [N]; temperature not a finite value > 0; flags not
 * an OR of del_distill_flags; weight negative or not finite; grad not f32
 * [N, K] or sharing memory with an input), DEL_ENOMEM (more than 256
 * classes and no memory for two rows). */
DEL_API del_status del_loss_distill_acc(const del_tensor *student_logits, const del_tensor *teacher, const del_tensor *row_weights, float temperature, int flags, float weight, float *loss, del_tensor *grad);

/* Row-wise softmax with temperature: probs_i = exp(z_i/T) / sum_j exp(z_j/T),
 * computed stably. logits and probs are f32 [N, K] (may be the same tensor).
 * Errors: DEL_EINVAL (NULL argument, shape mismatch, temperature <= 0). */
DEL_API del_status del_softmax(const del_tensor *logits, float temperature, del_tensor *probs);

/* ---- Prediction ----
 * A model's outputs on every image of a dataset, computed once: a
 * teacher's logits or soft labels for distillation or Noisy Student, an
 * old head's outputs for Learning without Forgetting. */

/* The batch size del_model_predict runs model at: 512, halved while 512
 * images' largest layer output (or input) exceeds 2^25 floats (128 MiB),
 * but at least 16 (fmnist-cnn, resnet20, wrn-16-4: 512; wrn-16-8 on 32x32: 256).
 * It depends on the model's layer shapes only. 0 if model is NULL. */
DEL_API int del_model_predict_batch(const del_model *model);

/* Runs model in evaluation mode on every image of ds, labeled or not, and
 * stores in *out a new f32 tensor [N, K] (N = del_dataset_size(ds), K the
 * model's outputs per image): row i holds image i's logits (softmax 0) or
 * its probabilities at temperature T (softmax 1):
 * softmax_T(z)_j = exp(z_j / T) / sum_l exp(z_l / T), computed stably in
 * double (T = 1: the plain softmax; larger T: softer labels), as
 * del_softmax. Each image enters the model as
 * (v / 255 - mean[c]) / std[c] per channel c (as del_dataset_batch).
 * head names the head whose outputs are returned (del_model_head_output);
 * NULL means the first head, or the model's output without heads (as
 * del_model_output). temperature is only read when softmax is 1.
 * The images go through the model in batches of del_model_predict_batch
 * images in dataset order, the last one filled up with copies of the
 * last image, so row i is exactly what del_model_forward gives in
 * evaluation mode for image i at position i mod B of a batch of B images
 * (B = del_model_predict_batch): bit-identical whatever the thread count,
 * and independent of the dataset's other images and of its size. (The
 * same image at another position or in a batch of another size can
 * differ in the last bits: the convolutions and gemms round by position.)
 * The model's training flag is restored afterwards; in evaluation mode
 * nothing of the model changes (dropout is the identity, batchnorm uses
 * its running statistics, the random stream is not drawn from), except
 * that del_model_output and del_model_head_output then hold the last
 * batch's outputs. The caller frees *out with del_tensor_free; *out is
 * NULL on failure.
 * Threading: uses the library's compute threads; the model must not be
 * used by another thread during the call (ds may be shared).
 * Errors: DEL_EINVAL (NULL out, model, ds, mean or std; head naming no
 * head of the model; images of ds shaped other than the model's input; a
 * mean not finite or a std not finite and > 0: the message names the
 * channel; softmax not 0 or 1; temperature not finite and > 0 with
 * softmax 1; a model whose output (that head's) is not a vector per
 * image), DEL_ENUMERIC (an output is NaN or infinite, e.g. a diverged
 * teacher: the message names the image and the output), DEL_ENOMEM.
 * On error the model's training flag is restored too. */
DEL_API del_status del_model_predict(del_tensor **out, del_model *model, const char *head, const del_dataset *ds,
                                     const float *mean, const float *std, float temperature, int softmax);

/* ---- Model files (docs/file-format.md) ----
 * A model file holds the architecture (input shape, the layer list with
 * each layer's settings, the heads' names and layer counts), every
 * parameter and the batchnorm running statistics, zlib-compressed, with
 * CRC-32 checksums. It is the same on
 * every host. Gradients, the training/evaluation mode and the random
 * stream are not saved: a loaded model is in training mode with its stream
 * at seed 0, as a new one. Loaders check every byte before use, so an
 * untrusted or damaged file gives an error, never a crash.
 * Threading: the calls are reentrant; the model must not be used by another
 * thread during the call. */

/* Saves model to path. The file is written to "<path>.tmp.<pid>.XXXXXX"
 * (<pid>: the writing process's id) in the same directory, flushed to disk
 * and renamed over path, so a crash or a failure never leaves a
 * half-written model and an existing file at path stays untouched unless
 * the save succeeds. A path that is a symbolic link is saved through: the
 * file at the end of the chain of links is replaced that way, with its
 * temporary file beside it (created if the last link dangles), and the
 * links stay links.
 * A writer killed during a save (a crash, SIGKILL) leaves its temporary
 * file behind; the next successful save of the same file removes those of
 * writers that no longer run, never one of a save still in progress in
 * another process or thread (docs/file-format.md has the exact rule).
 * A model with a NaN or infinite parameter or batchnorm running statistic
 * (a diverged run) is refused; del_model_save_flags with
 * DEL_SAVE_ALLOW_NONFINITE saves it anyway.
 * Errors: DEL_EINVAL (NULL argument, empty path, a layer type the format
 * cannot hold), DEL_ENUMERIC (a parameter or statistic is not finite: the
 * message names the first such layer, its index and type), DEL_EIO (the
 * file cannot be created, written or renamed, e.g. the directory does not
 * exist or path is a directory: the message names the file and ends with
 * the system's reason), DEL_ENOMEM. */
DEL_API del_status del_model_save(const del_model *model, const char *path);

/* What del_model_save_flags and del_model_save_buffer_flags may do beyond
 * del_model_save and del_model_save_buffer (an OR of these). */
typedef enum del_save_flags {
    DEL_SAVE_DEFAULT = 0,        /* as del_model_save: refuse non-finite values */
    DEL_SAVE_ALLOW_NONFINITE = 1 /* save NaN and infinite parameters and statistics as they are */
} del_save_flags;

/* del_model_save with flags (del_save_flags). A file saved with NaN or
 * infinite values loads with del_model_load as any other.
 * Errors: those of del_model_save (DEL_ENUMERIC only without
 * DEL_SAVE_ALLOW_NONFINITE); DEL_EINVAL also for unknown flags. */
DEL_API del_status del_model_save_flags(const del_model *model, const char *path, int flags);

/* Loads the model saved at path into *out (the caller frees it with
 * del_model_free; *out is NULL on failure).
 * Errors: DEL_EINVAL (NULL argument), DEL_EIO (cannot open or read path,
 * with the system's reason), DEL_EFORMAT (not a libdel model: a checkpoint
 * or tensor file is named as such; written by a newer libdel, truncated, checksum mismatch, a corrupt layer record or
 * parameter count: the message says which), DEL_ENOMEM. */
DEL_API del_status del_model_load(del_model **out, const char *path);

/* Serialises model into memory: *out receives the bytes of a model file
 * (what del_model_save would write), *size their number. The caller frees
 * *out with del_buffer_free. A model with a NaN or infinite value is
 * refused, as by del_model_save. Errors: DEL_EINVAL (NULL argument, a
 * layer type the format cannot hold), DEL_ENUMERIC (a parameter or
 * statistic is not finite: the message names the layer), DEL_ENOMEM. */
DEL_API del_status del_model_save_buffer(const del_model *model, void **out, size_t *size);

/* del_model_save_buffer with flags (del_save_flags). Errors: those of
 * del_model_save_buffer (DEL_ENUMERIC only without
 * DEL_SAVE_ALLOW_NONFINITE); DEL_EINVAL also for unknown flags. */
DEL_API del_status del_model_save_buffer_flags(const del_model *model, void **out, size_t *size, int flags);

/* Loads a model from the size bytes at data (a model file's contents; data
 * may be NULL only if size is 0). Errors: as del_model_load, without
 * DEL_EIO. */
DEL_API del_status del_model_load_buffer(del_model **out, const void *data, size_t size);

/* Frees a buffer returned by libdel (del_model_save_buffer[_flags],
 * del_checkpoint_save_buffer, del_tensor_save_buffer[_flags]).
 * del_buffer_free(NULL) is a no-op. */
DEL_API void del_buffer_free(void *buf);

#ifdef __cplusplus
}
#endif
#endif
