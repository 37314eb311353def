"""del_model: a sequence of layers over float32 NCHW input, optionally a
backbone plus named heads; losses."""

import ctypes
import os
import weakref

from . import _ffi
from ._lib import Handle, c_array, check, invalid, lib, new_handle, view_memory
from .data import FMNIST_MEAN, FMNIST_STD, Dataset
from .tensor import Tensor, as_tensor

__all__ = ["Model", "cross_entropy", "distill_loss", "soft_cross_entropy", "softmax"]


class Model(Handle):
    """A network. Build it with Model(channels, height, width) and the add_*
    methods (each returns the model, so calls chain), from a spec string, or
    from a preset. One thread at a time."""

    _free_name = "del_model_free"

    def __init__(self, channels=None, height=None, width=None, _handle=None):
        if _handle is None:
            if channels is None or height is None or width is None:
                raise invalid("Model: 'channels', 'height' and 'width' are required")
            _handle = new_handle(lib.del_model_new, int(channels), int(height), int(width))
        super().__init__(_handle)
        self._views = weakref.WeakSet()

    def _invalidate_views(self):
        """Closes the Tensor views of the output and input gradient: the C
        side may reallocate them, and a closed view raises instead of reading
        freed memory."""
        for v in list(self._views):
            v._handle = None
        self._views.clear()

    def _view(self, h):
        if not h:
            return None
        t = Tensor(h, keep=self, owned=False)
        self._views.add(t)
        return t

    def close(self):
        if getattr(self, "_views", None) is not None:
            self._invalidate_views()
        super().close()

    @classmethod
    def preset(cls, name, channels=1, height=28, width=28, num_classes=10):
        """A named preset: "fmnist-cnn" or "mlp"."""
        return cls(_handle=new_handle(lib.del_model_preset, name.encode("utf-8"), int(channels),
                                      int(height), int(width), int(num_classes)))

    @classmethod
    def from_spec(cls, spec):
        """A model from a spec string, e.g. "input 1 28 28; flatten; linear 10"."""
        return cls(_handle=new_handle(lib.del_model_from_spec, spec.encode("utf-8")))

    @classmethod
    def load(cls, path):
        """Loads a model saved by save() (or del_model_save)."""
        return cls(_handle=new_handle(lib.del_model_load, os.fsencode(path)))

    @classmethod
    def from_bytes(cls, data):
        """Loads a model from the bytes of a saved model file."""
        mv = memoryview(data).cast("B")
        buf = (ctypes.c_char * mv.nbytes).from_buffer_copy(mv)
        return cls(_handle=new_handle(lib.del_model_load_buffer, buf, mv.nbytes))

    def save(self, path, allow_nonfinite=False):
        """Saves the model to path (written to a temp file, then renamed; a
        symbolic link is saved through). A model with NaN or infinite
        values raises NumericError unless allow_nonfinite is true (to keep
        a diverged model for inspection)."""
        if allow_nonfinite:
            check(lib.del_model_save_flags(self._h, os.fsencode(path), _ffi.DEL_SAVE_ALLOW_NONFINITE))
        else:
            check(lib.del_model_save(self._h, os.fsencode(path)))

    def to_bytes(self, allow_nonfinite=False):
        """The model file's bytes (NaN or infinite values: as save())."""
        ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
        if allow_nonfinite:
            check(lib.del_model_save_buffer_flags(self._h, ctypes.byref(ptr), ctypes.byref(size),
                                                  _ffi.DEL_SAVE_ALLOW_NONFINITE))
        else:
            check(lib.del_model_save_buffer(self._h, ctypes.byref(ptr), ctypes.byref(size)))
        try:
            return ctypes.string_at(ptr, size.value)
        finally:
            lib.del_buffer_free(ptr)

    def add_conv2d(self, out_channels, kernel=3, stride=1, pad=0, bias=True):
        check(lib.del_model_add_conv2d(self._h, int(out_channels), int(kernel), int(stride),
                                       int(pad), 1 if bias else 0))
        return self

    def add_linear(self, out_features, bias=True):
        check(lib.del_model_add_linear(self._h, int(out_features), 1 if bias else 0))
        return self

    def add_batchnorm(self, eps=1e-5, momentum=0.1):
        check(lib.del_model_add_batchnorm(self._h, float(eps), float(momentum)))
        return self

    def add_relu(self):
        check(lib.del_model_add_relu(self._h))
        return self

    def add_maxpool(self, kernel, stride=None):
        check(lib.del_model_add_maxpool(self._h, int(kernel),
                                        int(kernel if stride is None else stride)))
        return self

    def add_flatten(self):
        check(lib.del_model_add_flatten(self._h))
        return self

    def add_dropout(self, p):
        check(lib.del_model_add_dropout(self._h, float(p)))
        return self

    def add_avgpool(self, kernel, stride=None):
        check(lib.del_model_add_avgpool(self._h, int(kernel),
                                        int(kernel if stride is None else stride)))
        return self

    def add_global_avgpool(self):
        check(lib.del_model_add_global_avgpool(self._h))
        return self

    def add_residual(self, out_channels, stride=1, survival_prob=1.0):
        """ResNet basic block (projection shortcut when the shape changes),
        with per-image stochastic depth when survival_prob < 1."""
        check(lib.del_model_add_residual(self._h, int(out_channels), int(stride),
                                         float(survival_prob)))
        return self

    # ---- heads (a backbone plus named heads, model.h "Heads") ----

    def add_head(self, name, spec):
        """Adds a head called name whose layers are given by a spec string
        without the input item (e.g. "flatten; linear 10"); it reads the
        backbone's output. The first head makes the layers so far the
        backbone. Returns self."""
        self._invalidate_views()
        check(lib.del_model_add_head(self._h, name.encode("utf-8"), spec.encode("utf-8")))
        return self

    def replace_head(self, name, spec):
        """Replaces head name's layers by fresh ones built from spec (same
        position and name). Returns self."""
        self._invalidate_views()
        check(lib.del_model_replace_head(self._h, name.encode("utf-8"), spec.encode("utf-8")))
        return self

    def remove_head(self, name):
        """Removes head name and its layers. Returns self."""
        self._invalidate_views()
        check(lib.del_model_remove_head(self._h, name.encode("utf-8")))
        return self

    def split_head(self, name, first_layer=-1):
        """Turns layers first_layer.. (negative: from the end) of a model
        without heads into a head called name, e.g. a preset's classifier.
        Returns self."""
        self._invalidate_views()
        check(lib.del_model_split_head(self._h, name.encode("utf-8"), int(first_layer)))
        return self

    @property
    def heads(self):
        """The head names, in order (the first is what forward returns)."""
        h = self._h
        return [lib.del_model_head_name(h, i).decode("utf-8") for i in range(lib.del_model_num_heads(h))]

    def head_index(self, name):
        """The index of head name in heads, or -1."""
        return lib.del_model_head_index(self._h, name.encode("utf-8"))

    def head_layers(self, name):
        """(first, count): the layer index range of head name."""
        first, count = ctypes.c_int(), ctypes.c_int()
        check(lib.del_model_head_layers(self._h, name.encode("utf-8"), ctypes.byref(first),
                                        ctypes.byref(count)))
        return (first.value, count.value)

    @property
    def backbone_layers(self):
        """The number of backbone layers (num_layers without heads)."""
        return lib.del_model_backbone_layers(self._h)

    def freeze_backbone(self, frozen=True):
        """Freezes (or, with frozen=False, unfreezes) every backbone layer.
        Returns self."""
        n = self.backbone_layers
        if n > 0:
            (self.freeze if frozen else self.unfreeze)(0, n - 1)
        return self

    def head_output(self, name):
        """Head name's output of the last forward: a Tensor view owned by the
        model, valid until the next forward (None before one)."""
        h = lib.del_model_head_output(self._h, name.encode("utf-8"))
        if not h and self.head_index(name) < 0:
            raise invalid("Model.head_output: no head called %r (heads: %s)" % (name, self.heads))
        return self._view(h)

    def backward_heads(self, grads):
        """Back-propagates {head name: gradient shaped like its output} through
        those heads and, from the sum of what they pass down, the backbone,
        adding into the gradients; heads not listed get none."""
        items = list(grads.items())
        if not items:
            raise invalid("Model.backward_heads: 'grads' must name at least one head")
        tensors = [as_tensor(g) for _, g in items]
        names = (ctypes.c_char_p * len(items))(*[n.encode("utf-8") for n, _ in items])
        handles = (ctypes.c_void_p * len(items))(*[t._h for t in tensors])
        # Only the input gradient may move; the heads' outputs stay valid.
        keep = {lib.del_model_head_output(self._h, n.encode("utf-8")) for n in self.heads}
        for v in list(self._views):
            if v._handle not in keep:
                v._handle = None
        check(lib.del_model_backward_heads(self._h, len(items), names, handles))

    def freeze(self, first=0, last=-1):
        """Freezes layers first..last (inclusive; negative counts from the
        end): no gradient, no update, batchnorm on running statistics."""
        check(lib.del_model_freeze(self._h, int(first), int(last)))
        return self

    def unfreeze(self, first=0, last=-1):
        check(lib.del_model_unfreeze(self._h, int(first), int(last)))
        return self

    def set_lr_mult(self, mult, first=0, last=-1):
        """Learning-rate multiplier (> 0) of layers first..last."""
        check(lib.del_model_set_lr_mult(self._h, int(first), int(last), float(mult)))
        return self

    def layer_frozen(self, i):
        return bool(lib.del_model_layer_frozen(self._h, int(i)))

    def layer_lr_mult(self, i):
        return lib.del_model_layer_lr_mult(self._h, int(i))

    def init(self, seed=0):
        """Re-initialises every parameter from seed; returns self."""
        check(lib.del_model_init(self._h, ctypes.c_uint64(int(seed))))
        return self

    # ---- copies and the moving average of weights (model.h "Copies") ----

    def clone(self):
        """A deep, independent copy (copy.deepcopy(model) in PyTorch): the
        layers and heads, parameters, batchnorm statistics, frozen layers
        and learning-rate multipliers, the random stream where it stands and
        the training/evaluation mode; no gradients, no last forward.
        copy.copy and copy.deepcopy call this too (two Models never share a
        handle)."""
        return type(self)(_handle=new_handle(lib.del_model_clone, self._h))

    def __copy__(self):
        return self.clone()

    def __deepcopy__(self, memo):
        return self.clone()

    def copy_weights_from(self, other):
        """Copies other's parameters and batchnorm statistics into this model
        of the same architecture (PyTorch's
        self.load_state_dict(other.state_dict())); groups, mode and stream
        stay this model's. Raises InvalidArgument naming the first
        difference otherwise. Returns self."""
        check(lib.del_model_copy_weights(self._h, _model_handle(other, "Model.copy_weights_from")))
        return self

    def ema_update(self, model, decay, step=None):
        """Makes this model (a clone of model) the exponential moving average
        of model's weights: p_self = decay * p_self + (1 - decay) * p_model;
        batchnorm statistics are copied from model. With step (0, 1, ...
        for successive updates), decay is warmed up as
        min(decay, (1 + step) / (10 + step)). As timm's ModelEmaV2.update or
        torch.optim.swa_utils.AveragedModel.update_parameters. Returns self."""
        h = _model_handle(model, "Model.ema_update")
        if step is None:
            check(lib.del_model_ema_update(self._h, h, float(decay)))
        else:
            check(lib.del_model_ema_update_step(self._h, h, float(decay), int(step)))
        return self

    def train(self, mode=True):
        """Training mode (batch statistics, dropout) or, with mode=False,
        evaluation mode; returns self."""
        check(lib.del_model_set_training(self._h, 1 if mode else 0))
        return self

    def eval(self):
        return self.train(False)

    @property
    def training(self):
        return bool(lib.del_model_is_training(self._h))

    @property
    def num_layers(self):
        return lib.del_model_num_layers(self._h)

    @property
    def layer_types(self):
        h = self._h
        return [lib.del_model_layer_type(h, i).decode() for i in range(lib.del_model_num_layers(h))]

    @property
    def input_shape(self):
        """(channels, height, width) of one input image."""
        c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        check(lib.del_model_input_shape(self._h, ctypes.byref(c), ctypes.byref(h), ctypes.byref(w)))
        return (c.value, h.value, w.value)

    @property
    def num_params(self):
        return lib.del_model_num_params(self._h)

    def _floats(self, fn, count=None):
        h = self._h
        n = (count or lib.del_model_num_params)(h)
        ptr = ctypes.cast(fn(h), ctypes.c_void_p).value
        if not ptr or n == 0:
            return memoryview(b"").cast("B").cast("f")
        return view_memory(ptr, 4 * n, "f", (n,), self)

    @property
    def params(self):
        """The parameters as a writable float32 memoryview (no copy); stale
        once another layer is added."""
        return self._floats(lib.del_model_params)

    @property
    def grads(self):
        """The gradients as a float32 memoryview (no copy)."""
        return self._floats(lib.del_model_grads)

    @property
    def num_buffers(self):
        """The number of non-trainable values (batchnorm running statistics)."""
        return lib.del_model_num_buffers(self._h)

    @property
    def buffers(self):
        """The batchnorm running means and variances, in layer order, as a
        writable float32 memoryview (no copy; PyTorch's buffers)."""
        return self._floats(lib.del_model_buffers, lib.del_model_num_buffers)

    def layer_params(self, i):
        """(offset, count): layer i's parameters are params[offset:offset + count]."""
        off, count = ctypes.c_int64(), ctypes.c_int64()
        check(lib.del_model_layer_params(self._h, int(i), ctypes.byref(off), ctypes.byref(count)))
        return off.value, count.value

    @property
    def output_shape(self):
        """The output shape for one image: (F,) or (C, H, W)."""
        ndim = ctypes.c_int()
        shape = (ctypes.c_int64 * 3)()
        check(lib.del_model_output_shape(self._h, ctypes.byref(ndim), shape))
        return tuple(shape[:ndim.value])

    def summary(self):
        needed = ctypes.c_size_t(0)
        check(lib.del_model_summary(self._h, None, 0, ctypes.byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        check(lib.del_model_summary(self._h, buf, len(buf), None))
        return buf.value.decode("utf-8", "replace")

    def __str__(self):
        return self.summary() if not self.closed else "Model(<closed>)"

    def __repr__(self):
        if self.closed:
            return "Model(<closed>)"
        return "Model(layers=%d, params=%d)" % (self.num_layers, self.num_params)

    def forward(self, x):
        """Runs the model on x (a float32 Tensor or buffer [N, C, H, W]) and
        returns the output: a Tensor view owned by the model, valid until the
        next forward (use .copy() or .numpy(copy=True) to keep it)."""
        x = as_tensor(x)
        self._invalidate_views()
        check(lib.del_model_forward(self._h, x._h))
        return self.output

    __call__ = forward

    @property
    def output(self):
        return self._view(lib.del_model_output(self._h))

    def backward(self, grad_output):
        """Back-propagates grad_output (shaped like the output), adding into
        the gradients."""
        g = as_tensor(grad_output)
        out = lib.del_model_output(self._h)
        # Only the input gradient may move; the output stays valid.
        for v in list(self._views):
            if v._handle != out:
                v._handle = None
        check(lib.del_model_backward(self._h, g._h))

    @property
    def input_grad(self):
        return self._view(lib.del_model_input_grad(self._h))

    def zero_grad(self):
        check(lib.del_model_zero_grad(self._h))

    def predict(self, dataset, mean=None, std=None, temperature=1.0, softmax=False, head=None):
        """The model's outputs on every image of dataset (labeled or not), in
        evaluation mode, as a new float32 Tensor [N, K]: logits, or with
        softmax=True the probabilities softmax(z / temperature). Each image
        enters as (image/255 - mean) / std, one value per channel or one for
        all (default Fashion-MNIST's). head: the head whose outputs come back
        (default the first head, or the model's output). The training mode
        is restored afterwards. Raises NumericError naming the image if an
        output is NaN or infinite."""
        if not isinstance(dataset, Dataset):
            raise invalid("Model.predict: 'dataset' must be a libdel.Dataset, got %s"
                          % type(dataset).__name__)
        channels = self.input_shape[0]
        mean = FMNIST_MEAN if mean is None else mean
        std = FMNIST_STD if std is None else std
        if isinstance(mean, (int, float)):
            mean = [mean] * channels
        if isinstance(std, (int, float)):
            std = [std] * channels
        m = c_array(ctypes.c_float, mean, "Model.predict: 'mean'")
        s = c_array(ctypes.c_float, std, "Model.predict: 'std'")
        if len(m) != channels or len(s) != channels:
            raise invalid("Model.predict: 'mean' and 'std' must hold %d values (one per channel)"
                          % channels)
        self._invalidate_views()
        out = ctypes.c_void_p()
        check(lib.del_model_predict(ctypes.byref(out), self._h,
                                    None if head is None else head.encode("utf-8"), dataset._h, m, s,
                                    float(temperature), 1 if softmax else 0))
        return Tensor(out.value)

    @property
    def predict_batch(self):
        """The batch size predict() runs the model at (fixed by its layer
        shapes): row i of predict() equals an evaluation-mode forward of a
        batch of that many images in which image i sits at i % predict_batch."""
        return lib.del_model_predict_batch(self._h)


def _model_handle(model, fn):
    if not isinstance(model, Model):
        raise invalid("%s: 'model' must be a Model, got %s" % (fn, type(model).__name__))
    return model._h


def _labels_tensor(labels):
    if isinstance(labels, Tensor):
        return labels
    if isinstance(labels, (list, tuple)):
        return Tensor.from_list(labels, dtype="int32")
    return Tensor.from_buffer(labels, dtype="int32")


def _row_weights_tensor(row_weights):
    if row_weights is None or isinstance(row_weights, Tensor):
        return row_weights
    if isinstance(row_weights, (list, tuple)):
        return Tensor.from_list(row_weights)
    return Tensor.from_buffer(row_weights, dtype="float32")


def _grad_out(grad, like):
    """(tensor or None, accumulate?) for a loss's grad argument: False, True
    (a new zeroed tensor) or a Tensor to add into."""
    if isinstance(grad, Tensor):
        return grad, True
    return (Tensor.zeros(like.shape, "float32") if grad else None), False


def cross_entropy(logits, labels, grad=False, label_smoothing=0.0, row_weights=None, weight=1.0):
    """Mean softmax cross-entropy of logits [N, K] against int32 labels [N],
    with torch's label_smoothing s in [0, 1) (target (1-s) onehot + s/K).

    grad: False returns the loss; True returns (loss, d loss / d logits) in
    a new tensor; a float32 Tensor [N, K] has weight * d loss / d logits
    added into it and is returned as (loss, grad), so losses sum into one
    gradient. With row_weights (float32 [N], >= 0), weight != 1 or a grad
    tensor, the weighted form del_loss_cross_entropy_acc is used:
    loss = weight * (w * F.cross_entropy(z, y, ignore_index=-1,
    label_smoothing=s, reduction='none')).mean(), the mean over all N rows,
    where label -1 marks an ignored row (it adds nothing and counts in N)."""
    logits = as_tensor(logits)
    labels = _labels_tensor(labels)
    loss = ctypes.c_float()
    g, accumulate = _grad_out(grad, logits)
    gh = g._h if g is not None else None
    if accumulate or row_weights is not None or weight != 1.0:
        rw = _row_weights_tensor(row_weights)
        check(lib.del_loss_cross_entropy_acc(logits._h, labels._h, rw._h if rw is not None else None,
                                             float(label_smoothing), float(weight), ctypes.byref(loss), gh))
    elif label_smoothing == 0.0:
        check(lib.del_loss_cross_entropy(logits._h, labels._h, ctypes.byref(loss), gh))
    else:
        check(lib.del_loss_cross_entropy_smooth(logits._h, labels._h, float(label_smoothing),
                                                ctypes.byref(loss), gh))
    return (loss.value, g) if g is not None else loss.value


def distill_loss(student_logits, teacher_logits, temperature, grad=False, row_weights=None, weight=1.0,
                 teacher_probs=False, t_squared=True):
    """Hinton's distillation loss T^2 KL(softmax_T(teacher) || softmax_T(student)),
    the batch mean, for logits [N, K]. Returns the loss, or (loss, d loss /
    d student_logits); grad as for cross_entropy (True or a Tensor to add
    into). teacher_probs=True takes the teacher as probabilities p at T = 1
    (softened as p^(1/T) / sum p^(1/T), the loss of the logits log p);
    t_squared=False drops the T^2 factor (Avalanche's and FACIL's LwF).
    Any of those, row_weights [N], weight != 1 or a grad tensor use
    del_loss_distill_acc: weight * f * (w * KL_rows).mean()."""
    student = as_tensor(student_logits)
    teacher = as_tensor(teacher_logits)
    loss = ctypes.c_float()
    g, accumulate = _grad_out(grad, student)
    gh = g._h if g is not None else None
    flags = (_ffi.DEL_DISTILL_TEACHER_PROBS if teacher_probs else 0) | \
        (0 if t_squared else _ffi.DEL_DISTILL_NO_T_SQUARED)
    if accumulate or flags or row_weights is not None or weight != 1.0:
        rw = _row_weights_tensor(row_weights)
        check(lib.del_loss_distill_acc(student._h, teacher._h, rw._h if rw is not None else None,
                                       float(temperature), flags, float(weight), ctypes.byref(loss), gh))
    else:
        check(lib.del_loss_distill(student._h, teacher._h, float(temperature), ctypes.byref(loss), gh))
    return (loss.value, g) if g is not None else loss.value


def soft_cross_entropy(logits, targets, grad=False, row_weights=None, weight=1.0):
    """Mean cross-entropy of logits [N, K] against soft targets [N, K] (rows of
    probabilities, e.g. CutMix labels). Returns the loss, or (loss, grad);
    grad as for cross_entropy (True or a Tensor to add into). With
    row_weights [N], weight != 1 or a grad tensor it is
    del_loss_soft_cross_entropy_acc: weight * (w * ce_rows).mean()."""
    logits = as_tensor(logits)
    if isinstance(targets, (list, tuple)):
        targets = Tensor.from_list(targets)
    targets = as_tensor(targets)
    loss = ctypes.c_float()
    g, accumulate = _grad_out(grad, logits)
    gh = g._h if g is not None else None
    if accumulate or row_weights is not None or weight != 1.0:
        rw = _row_weights_tensor(row_weights)
        check(lib.del_loss_soft_cross_entropy_acc(logits._h, targets._h, rw._h if rw is not None else None,
                                                  float(weight), ctypes.byref(loss), gh))
    else:
        check(lib.del_loss_soft_cross_entropy(logits._h, targets._h, ctypes.byref(loss), gh))
    return (loss.value, g) if g is not None else loss.value


def softmax(logits, temperature=1.0):
    """Row-wise softmax of logits [N, K] at a temperature, as a new Tensor."""
    logits = as_tensor(logits)
    probs = Tensor.zeros(logits.shape, "float32")
    check(lib.del_softmax(logits._h, float(temperature), probs._h))
    return probs
