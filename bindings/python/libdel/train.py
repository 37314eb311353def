"""del_optimizer and del_trainer."""

import ctypes
import os

from . import _ffi
from ._lib import Canceled, Handle, c_array, check, invalid, lib, new_handle
from .model import Model
from .tensor import Tensor, as_tensor

__all__ = ["Optimizer", "Trainer", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "save_checkpoint_bytes", "load_checkpoint_bytes", "NoisyStudent", "select_pseudo_labels",
           "BALANCE_MEAN", "randaugment_search"]

_SCHEDULES = {"constant": _ffi.DEL_SCHEDULE_CONSTANT, "cosine": _ffi.DEL_SCHEDULE_COSINE,
              "step": _ffi.DEL_SCHEDULE_STEP}
_SCHEDULES.update({code: code for code in list(_SCHEDULES.values())})


def _schedule(kind, where):
    code = _SCHEDULES.get(kind)
    if code is None:
        raise invalid("%s: 'kind' must be 'constant', 'cosine' or 'step', got %r" % (where, kind))
    return code


def _normalization(mean, std, channels, where, names=("mean", "std")):
    """(mean, std) as ctypes float arrays of one value per channel (a number
    stands for every channel): the arguments of the *_normalize calls."""
    if mean is None or std is None:
        raise invalid("%s: '%s' and '%s' go together" % (where, names[0], names[1]))
    if isinstance(mean, (int, float)):
        mean = [mean] * channels
    if isinstance(std, (int, float)):
        std = [std] * channels
    m = c_array(ctypes.c_float, mean, "%s: '%s'" % (where, names[0]))
    s = c_array(ctypes.c_float, std, "%s: '%s'" % (where, names[1]))
    if len(m) != len(s):
        raise invalid("%s: '%s' and '%s' differ in length" % (where, names[0], names[1]))
    return m, s


class _Progress:
    """A Python progress(step, total, loss) as a del_progress_fn: returning
    True stops the C loop; an exception raised by it stops it too and is
    kept in .error, to be re-raised where the C call returns."""

    def __init__(self, progress, where):
        if not callable(progress):
            raise invalid("%s: 'progress' must be callable" % where)
        self.error = None

        def trampoline(step, total, loss, user):
            try:
                return 1 if progress(step, total, loss) else 0
            except BaseException as e:  # never let it unwind through C
                self.error = e
                return 1

        self.fn = _ffi.del_progress_fn(trampoline)

    def reraise(self):
        """Re-raises the callback's exception, if it raised one."""
        err, self.error = self.error, None
        if err is not None:
            raise err


class Optimizer(Handle):
    """SGD or AdamW over all parameters of a model (which it keeps alive).

    The learning rate of step t comes from an optional linear warm-up
    (set_warmup) followed by a schedule (set_schedule or set_step_schedule);
    set_clip_norm clips the gradients by their global norm inside each step.
    The setters return self."""

    _free_name = "del_optimizer_free"

    def __init__(self, handle, model):
        super().__init__(handle)
        self.model = model

    @classmethod
    def sgd(cls, model, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True):
        """torch.optim.SGD semantics (PyTorch's momentum and Nesterov)."""
        return cls(new_handle(lib.del_optimizer_new_sgd, model._h, float(lr), float(momentum),
                              float(weight_decay), 1 if nesterov else 0), model)

    @classmethod
    def adamw(cls, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        """torch.optim.AdamW semantics (decoupled weight decay, no amsgrad);
        the defaults are PyTorch's."""
        try:
            beta1, beta2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise invalid("Optimizer.adamw: 'betas' must be two numbers, got %r" % (betas,))
        return cls(new_handle(lib.del_optimizer_new_adamw, model._h, float(lr), beta1, beta2,
                              float(eps), float(weight_decay)), model)

    def set_schedule(self, kind, total_steps, final_lr=0.0):
        """kind 'constant' or 'cosine' (to final_lr over total_steps, warm-up
        included); the step schedule has its own setter, set_step_schedule."""
        check(lib.del_optimizer_set_schedule(self._h, _schedule(kind, "Optimizer.set_schedule"),
                                             int(total_steps), float(final_lr)))
        return self

    def set_step_schedule(self, step_size, gamma=0.1):
        """torch's StepLR: the lr is multiplied by gamma every step_size steps
        (counted after the warm-up)."""
        check(lib.del_optimizer_set_step_schedule(self._h, int(step_size), float(gamma)))
        return self

    def set_warmup(self, steps):
        """Linear warm-up: step t (0-based) of the first `steps` uses
        lr * (t + 1) / steps. 0 turns it off."""
        check(lib.del_optimizer_set_warmup(self._h, int(steps)))
        return self

    def set_clip_norm(self, max_norm):
        """Clips the gradients by their global L2 norm, as
        torch.nn.utils.clip_grad_norm_ (the model's gradients are left as
        they are). 0 turns it off."""
        check(lib.del_optimizer_set_clip_norm(self._h, float(max_norm)))
        return self

    @property
    def grad_norm(self):
        """The global gradient norm measured by the last step, before
        clipping (0.0 when clipping is off or before the first step)."""
        return lib.del_optimizer_grad_norm(self._h)

    def step(self):
        check(lib.del_optimizer_step(self._h))

    @property
    def lr(self):
        """The learning rate the next step will use."""
        return lib.del_optimizer_lr(self._h)

    @property
    def steps(self):
        return lib.del_optimizer_steps(self._h)


class Trainer(Handle):
    """A training loop. Keeps its model, dataset and pipelines alive.

    Settings (keyword arguments of the constructors and of set()):
    batch_size; optimizer ('sgd' or 'adamw') with lr and weight_decay (for
    the optimizer in use), momentum and nesterov (SGD), betas and eps
    (AdamW); schedule ('cosine', 'constant' or 'step'), step_size and gamma
    (select 'step'), warmup (steps), clip_norm, label_smoothing; mean and
    std (one value or one per channel); seed; total_steps (see
    set_total_steps); augment and augment_unlabeled (Augment pipelines,
    False removes); prefetch (0..4); backbone_lr_mult and head_warmup
    (fine-tuning trainers only); temperature, alpha, kd_weight with
    ce_weight, t2, teacher_training, teacher_mean with teacher_std,
    unlabeled_batch_size (distillation); lwf_lambda and lwf_live_original
    (LwF); nonfinite ('stop', the default: a step
    with a NaN or infinite loss, statistic or gradient stops fit with
    NumericError, the model as before that step; or 'skip': such steps are
    skipped and counted in skipped_steps)."""

    _free_name = "del_trainer_free"
    # The C defaults (include/del/train.h), so a partial change keeps the rest.
    _DEFAULTS = {
        "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
        "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    }
    _STEP_DEFAULTS = {"step_size": 1000, "gamma": 0.1}

    def __init__(self, handle, model, dataset):
        super().__init__(handle)
        self.model = model
        self.dataset = dataset
        self.augment = None
        self.augment_unlabeled = None
        self.optimizer = "sgd"
        self._opt = {k: dict(v) for k, v in self._DEFAULTS.items()}
        self._step = dict(self._STEP_DEFAULTS)
        self._callback = None

    @classmethod
    def supervised(cls, model, labeled, **settings):
        """Minibatch SGD (or AdamW) with cross-entropy on the labeled images
        of `labeled`."""
        t = cls(new_handle(lib.del_trainer_new_supervised, model._h, labeled._h), model, labeled)
        t.set(**settings)
        return t

    @classmethod
    def finetune(cls, model, labeled, num_classes, mode="probe", **settings):
        """Transfer learning: model's classifier is replaced by a new linear
        head for num_classes classes (labels 0..num_classes-1), then either
        only the head trains on the frozen backbone (mode='probe') or the
        whole model does (mode='full') with the backbone at
        backbone_lr_mult (default 0.1) after head_warmup steps of the head
        alone (default 0)."""
        modes = {"probe": _ffi.DEL_FINETUNE_LINEAR_PROBE, "full": _ffi.DEL_FINETUNE_FULL}
        if mode not in modes:
            raise invalid("Trainer.finetune: 'mode' must be 'probe' or 'full', got %r" % (mode,))
        model._invalidate_views()
        t = cls(new_handle(lib.del_trainer_new_finetune, model._h, labeled._h, int(num_classes),
                           modes[mode]), model, labeled)
        t.set(**settings)
        return t

    @classmethod
    def distill(cls, student, teacher, labeled=None, transfer=None, **settings):
        """Knowledge distillation (Hinton et al. 2015): student learns from
        teacher's temperature-softened outputs (teacher None: the datasets'
        stored soft labels, Dataset.set_soft_labels) on every image of a step
        (labeled and/or the unlabeled transfer set) and from the labels of
        the labeled ones. Settings: temperature (default 4), alpha (0.9)
        or kd_weight and ce_weight, t2 (True), teacher_training (False),
        teacher_mean / teacher_std, unlabeled_batch_size (64), and every
        supervised setting."""
        student._invalidate_views()
        t = cls(new_handle(lib.del_trainer_new_distill, student._h,
                           None if teacher is None else teacher._h,
                           None if labeled is None else labeled._h,
                           None if transfer is None else transfer._h),
                student, labeled if labeled is not None else transfer)
        t.teacher = teacher
        t.transfer = transfer
        t.set(**settings)
        return t

    @classmethod
    def lwf(cls, model, labeled, num_classes, old_head="old", new_head="new", **settings):
        """Learning without Forgetting: model keeps its old head (its last
        layer split off as old_head when it has no heads), gets a new head
        for num_classes classes, and trains CE on the new head plus
        lwf_lambda (1) * T^2 KL toward the old head's outputs recorded
        before training (temperature 2); head_warmup trains the new head
        alone first. evaluate() scores the new head, evaluate_head(test,
        old_head) the old task."""
        model._invalidate_views()
        t = cls(new_handle(lib.del_trainer_new_lwf, model._h, labeled._h, old_head.encode(),
                           new_head.encode(), int(num_classes)), model, labeled)
        t.set(**settings)
        return t

    @classmethod
    def pseudo_label(cls, model, labeled, unlabeled, **settings):
        """Pseudo-labeling (Lee 2013): each step a labeled batch (64) and an
        unlabeled one (256, unlabeled_batch_size) labeled by the model's own
        prediction in that step, loss CE + alpha(t) * mean(mask * CE(pseudo)),
        alpha ramped from 0 at pl_ramp[0] to pl_ramp[2] at pl_ramp[1]
        (default 20 % and 60 % of the run, alpha_f 3). Settings: pl_ramp =
        (t1, t2, alpha_f), pl_threshold (0), pl_soft (False), pl_bn ('joint'
        or 'frozen'), unlabeled_truth (labels for the log only, never
        trained), and every supervised setting. pseudo_label_stats() gives
        the fit's mask rate and pseudo-label accuracy."""
        model._invalidate_views()
        t = cls(new_handle(lib.del_trainer_new_pseudo_label, model._h, labeled._h, unlabeled._h),
                model, labeled)
        t.unlabeled = unlabeled
        t.set(**settings)
        return t

    @classmethod
    def consistency(cls, model, labeled, unlabeled, weak, strong, **settings):
        """Consistency training (FixMatch): each step a labeled batch (64) and
        unlabeled_ratio (7) times as many unlabeled images, each seen through
        `weak` and `strong` (Augment pipelines); the argmax on the weak view,
        kept above consistency_threshold (0.95; flexmatch=True for FlexMatch's
        per-class thresholds), trains the strong view with weight
        consistency_weight (1). Keeps an EMA of the weights (ema=0.999),
        which evaluate() scores; ema_model() copies it."""
        model._invalidate_views()
        t = cls(new_handle(lib.del_trainer_new_consistency, model._h, labeled._h, unlabeled._h,
                           weak._h, strong._h), model, labeled)
        t.unlabeled, t.weak, t.strong = unlabeled, weak, strong
        t.set(**settings)
        return t

    def consistency_stats(self):
        """The fraction of unlabeled images whose pseudo-label was kept in the
        current or last fit so far (NaN before any)."""
        rate = ctypes.c_double()
        check(lib.del_trainer_consistency_stats(self._h, ctypes.byref(rate)))
        return rate.value

    def ema_model(self):
        """A copy (a new Model) of the trainer's moving average of the
        weights, or None without one (ema=decay turns it on)."""
        h = lib.del_trainer_ema_model(self._h)
        if not h:
            return None
        return Model(_handle=new_handle(lib.del_model_clone, h))

    def pseudo_label_stats(self):
        """(mask_rate, accuracy, judged) of the current or last fit so far:
        the fraction of unlabeled images whose pseudo-label was kept, the
        fraction of kept ones equal to unlabeled_truth (NaN without it), and
        how many were judged."""
        rate, acc, judged = ctypes.c_double(), ctypes.c_double(), ctypes.c_int64()
        check(lib.del_trainer_pseudo_label_stats(self._h, ctypes.byref(rate), ctypes.byref(acc),
                                                 ctypes.byref(judged)))
        return rate.value, acc.value, judged.value

    def _set_pseudo(self, ramp, threshold, soft, bn, truth):
        h = self._h
        if ramp is not None:
            try:
                t1, t2, alpha_f = ramp
            except (TypeError, ValueError):
                raise invalid("Trainer.set: 'pl_ramp' must be (t1, t2, alpha_f), got %r" % (ramp,))
            check(lib.del_trainer_set_pseudo_label_ramp(h, int(t1), int(t2), float(alpha_f)))
        if threshold is not None:
            check(lib.del_trainer_set_pseudo_label_threshold(h, float(threshold)))
        if soft is not None:
            check(lib.del_trainer_set_pseudo_label_soft(h, 1 if soft else 0))
        if bn is not None:
            modes = {"joint": _ffi.DEL_PSEUDO_BN_JOINT, "frozen": _ffi.DEL_PSEUDO_BN_FROZEN}
            if bn not in modes:
                raise invalid("Trainer.set: 'pl_bn' must be 'joint' or 'frozen', got %r" % (bn,))
            check(lib.del_trainer_set_pseudo_label_bn(h, modes[bn]))
        if truth is not None:
            labels = c_array(ctypes.c_int32, truth, "Trainer.set: 'unlabeled_truth'")
            check(lib.del_trainer_set_unlabeled_truth(h, labels, len(labels)))

    def add_teacher(self, teacher, temperature=4.0, alpha=0.9):
        """Adds a live teacher to a supervised, fine-tuning or LwF trainer:
        the loss of the head trained on labels becomes alpha * T^2 KL(teacher
        || head) + (1 - alpha) * CE on the same (augmented) batch; the
        distillation settings (alpha, kd_weight/ce_weight, t2,
        teacher_training, teacher_mean/std; temperature except on LwF) then
        apply to it. Returns self."""
        check(lib.del_trainer_add_teacher(self._h, teacher._h, float(temperature), float(alpha)))
        self.teacher = teacher
        return self

    def _set_distill(self, temperature, alpha, kd_weight, ce_weight, t2, teacher_training,
                     teacher_mean, teacher_std, unlabeled_batch_size):
        h = self._h
        if unlabeled_batch_size is not None:
            check(lib.del_trainer_set_unlabeled_batch_size(h, int(unlabeled_batch_size)))
        if temperature is not None:
            check(lib.del_trainer_set_temperature(h, float(temperature)))
        if alpha is not None:
            check(lib.del_trainer_set_distill_alpha(h, float(alpha)))
        if kd_weight is not None or ce_weight is not None:
            if kd_weight is None or ce_weight is None:
                raise invalid("Trainer.set: 'kd_weight' and 'ce_weight' go together")
            check(lib.del_trainer_set_distill_weights(h, float(kd_weight), float(ce_weight)))
        if t2 is not None:
            check(lib.del_trainer_set_distill_t2(h, 1 if t2 else 0))
        if teacher_training is not None:
            check(lib.del_trainer_set_teacher_training(h, 1 if teacher_training else 0))
        if teacher_mean is not None or teacher_std is not None:
            m, sd = _normalization(teacher_mean, teacher_std, self.dataset.shape[2], "Trainer.set",
                                   ("teacher_mean", "teacher_std"))
            check(lib.del_trainer_set_teacher_normalize(h, m, sd, len(m)))

    def _set_optimizer(self, optimizer, values):
        kind = self.optimizer if optimizer is None else optimizer
        if optimizer is None and all(v is None for v in values.values()):
            return
        if kind is None:
            raise invalid("Trainer.set: the optimizer settings came from a checkpoint; give "
                          "'optimizer' and all its settings")
        if kind not in self._DEFAULTS:
            raise invalid("Trainer.set: 'optimizer' must be 'sgd' or 'adamw', got %r" % (kind,))
        for key, value in values.items():
            if value is not None and key not in self._DEFAULTS[kind]:
                raise invalid("Trainer.set: '%s' is not a setting of %s" % (key, kind))
        if kind not in self._opt:
            missing = [k for k in self._DEFAULTS[kind] if values.get(k) is None]
            if missing:
                raise invalid("Trainer.set: the %s settings came from a checkpoint; give all of "
                              "them (missing: %s)" % (kind, ", ".join(missing)))
            self._opt[kind] = {}
        new = dict(self._opt[kind])
        new.update({k: v for k, v in values.items() if v is not None})
        if kind == "sgd":
            check(lib.del_trainer_set_sgd(self._h, float(new["lr"]), float(new["momentum"]),
                                          float(new["weight_decay"]),
                                          1 if new["nesterov"] else 0))
        else:
            try:
                beta1, beta2 = (float(b) for b in new["betas"])
            except (TypeError, ValueError):
                raise invalid("Trainer.set: 'betas' must be two numbers, got %r"
                              % (new["betas"],))
            check(lib.del_trainer_set_adamw(self._h, float(new["lr"]), beta1, beta2,
                                            float(new["eps"]), float(new["weight_decay"])))
        self._opt[kind] = new
        self.optimizer = kind

    def _set_schedule(self, schedule, step_size, gamma):
        h = self._h
        if step_size is not None or gamma is not None:
            if schedule not in (None, "step", _ffi.DEL_SCHEDULE_STEP):
                raise invalid("Trainer.set: 'step_size' and 'gamma' need schedule='step', got %r"
                              % (schedule,))
            if self._step is None and (step_size is None or gamma is None):
                raise invalid("Trainer.set: the step schedule came from a checkpoint; give both "
                              "'step_size' and 'gamma'")
            new = dict(self._step or {})
            if step_size is not None:
                new["step_size"] = step_size
            if gamma is not None:
                new["gamma"] = gamma
            check(lib.del_trainer_set_step_schedule(h, int(new["step_size"]),
                                                    float(new["gamma"])))
            self._step = new
        elif schedule is not None:
            check(lib.del_trainer_set_schedule(h, _schedule(schedule, "Trainer.set")))

    def set(self, batch_size=None, optimizer=None, lr=None, momentum=None, weight_decay=None,
            nesterov=None, betas=None, eps=None, schedule=None, step_size=None, gamma=None,
            warmup=None, clip_norm=None, label_smoothing=None, mean=None, std=None, seed=None,
            augment=None, augment_unlabeled=None, prefetch=None, total_steps=None,
            nonfinite=None, backbone_lr_mult=None, head_warmup=None, temperature=None,
            alpha=None, kd_weight=None, ce_weight=None, t2=None, teacher_training=None,
            teacher_mean=None, teacher_std=None, unlabeled_batch_size=None, lwf_lambda=None,
            lwf_live_original=None, pl_ramp=None, pl_threshold=None, pl_soft=None, pl_bn=None,
            unlabeled_truth=None, consistency_threshold=None, consistency_weight=None,
            flexmatch=None, unlabeled_ratio=None, ema=None):
        """Changes settings; those left None keep their value. Returns self.
        lr and weight_decay apply to the optimizer selected (now or before);
        each optimizer keeps its own values. augment / augment_unlabeled: an
        Augment pipeline (kept alive by the trainer), or False to remove it.
        prefetch: batches prepared ahead (0..4)."""
        h = self._h
        for key, fn in (("augment", lib.del_trainer_set_augment),
                        ("augment_unlabeled", lib.del_trainer_set_augment_unlabeled)):
            aug = augment if key == "augment" else augment_unlabeled
            if aug is None:
                continue
            check(fn(h, None if aug is False else aug._h))
            setattr(self, key, None if aug is False else aug)
        if prefetch is not None:
            check(lib.del_trainer_set_prefetch(h, int(prefetch)))
        if batch_size is not None:
            check(lib.del_trainer_set_batch_size(h, int(batch_size)))
        self._set_optimizer(optimizer, {"lr": lr, "momentum": momentum,
                                        "weight_decay": weight_decay, "nesterov": nesterov,
                                        "betas": betas, "eps": eps})
        self._set_schedule(schedule, step_size, gamma)
        if warmup is not None:
            check(lib.del_trainer_set_warmup(h, int(warmup)))
        if clip_norm is not None:
            check(lib.del_trainer_set_clip_norm(h, float(clip_norm)))
        if label_smoothing is not None:
            check(lib.del_trainer_set_label_smoothing(h, float(label_smoothing)))
        if mean is not None or std is not None:
            m, s = _normalization(mean, std, self.dataset.shape[2], "Trainer.set")
            check(lib.del_trainer_set_normalize(h, m, s, len(m)))
        if seed is not None:
            check(lib.del_trainer_set_seed(h, ctypes.c_uint64(int(seed))))
        if total_steps is not None:
            self.set_total_steps(total_steps)
        self._set_distill(temperature, alpha, kd_weight, ce_weight, t2, teacher_training,
                          teacher_mean, teacher_std, unlabeled_batch_size)
        self._set_pseudo(pl_ramp, pl_threshold, pl_soft, pl_bn, unlabeled_truth)
        if consistency_threshold is not None:
            check(lib.del_trainer_set_consistency_threshold(h, float(consistency_threshold)))
        if consistency_weight is not None:
            check(lib.del_trainer_set_consistency_weight(h, float(consistency_weight)))
        if flexmatch is not None:
            check(lib.del_trainer_set_flexmatch(h, 1 if flexmatch else 0))
        if unlabeled_ratio is not None:
            check(lib.del_trainer_set_unlabeled_ratio(h, int(unlabeled_ratio)))
        if ema is not None:
            check(lib.del_trainer_set_ema(h, float(ema)))
        if lwf_lambda is not None:
            check(lib.del_trainer_set_lwf_lambda(h, float(lwf_lambda)))
        if lwf_live_original is not None:
            check(lib.del_trainer_set_lwf_live_original(h, 1 if lwf_live_original else 0))
        if backbone_lr_mult is not None:
            check(lib.del_trainer_set_backbone_lr_mult(h, float(backbone_lr_mult)))
        if head_warmup is not None:
            check(lib.del_trainer_set_head_warmup(h, int(head_warmup)))
        if nonfinite is not None:
            policies = {"stop": _ffi.DEL_NONFINITE_STOP, "skip": _ffi.DEL_NONFINITE_SKIP}
            if nonfinite not in policies:
                raise invalid("Trainer.set: 'nonfinite' must be 'stop' or 'skip', got %r"
                              % (nonfinite,))
            check(lib.del_trainer_set_nonfinite(h, policies[nonfinite]))
        return self

    @property
    def skipped_steps(self):
        """Steps skipped as non-finite (nonfinite='skip') since the trainer
        was made or its seed set; readable from the progress callback."""
        return lib.del_trainer_skipped_steps(self._h)

    def set_total_steps(self, total_steps):
        """Trains one run of total_steps steps over several fits: the first
        fit makes the optimizer with its schedule and warm-up over
        total_steps and later fits continue it, so fit(a) then fit(b) equals
        fit(a + b) bit for bit. 0 (the default) gives every fit a fresh
        optimizer. Calling it (or changing an optimizer setting) starts a
        new run at the next fit. Returns self."""
        check(lib.del_trainer_set_total_steps(self._h, int(total_steps)))
        return self

    def save_checkpoint(self, path):
        """Saves the run (model parameters, batchnorm statistics, random
        stream and groups; the kept optimizer; the trainer's settings and
        place in the batch order) to path. Not saved: the dataset, the
        pipelines, the progress callback, the prefetch depth. May be called
        from the progress callback of fit when total_steps is set."""
        check(lib.del_trainer_save_checkpoint(self._h, os.fsencode(path)))

    def load_checkpoint(self, path):
        """Continues the run saved at path: the trainer must have the same
        model architecture and dataset, and an augmentation pipeline exactly
        when the saved one had (the same one, set before loading). Replaces
        the trainer's settings with the saved ones; all or nothing."""
        check(lib.del_trainer_load_checkpoint(self._h, os.fsencode(path)))
        # The settings are now the checkpoint's, which this object does not
        # know: a later set() of part of them must give them all.
        self.optimizer = None
        self._opt = {}
        self._step = None

    def fit(self, steps, progress=None, every=1):
        """Trains for `steps` steps. progress(step, total, loss) is called every
        `every` steps and after the last one; if it returns True the training
        stops and fit raises Canceled. An exception raised by progress also
        stops the training and is re-raised here."""
        h = self._h
        if progress is not None:
            self._callback = _Progress(progress, "Trainer.fit")
            check(lib.del_trainer_set_progress(h, self._callback.fn, int(every), None))
        self.model._invalidate_views()
        try:
            check(lib.del_trainer_fit(h, int(steps)))
        except Canceled:
            if progress is not None:
                self._callback.reraise()
            raise
        finally:
            if progress is not None:
                lib.del_trainer_set_progress(h, _ffi.del_progress_fn(), 1, None)
                self._callback = None

    def fit_times(self):
        """(data_wait_s, step_s) of the last (or current) fit: seconds the
        training thread waited for its batches (the loading and augmentation
        the prefetch thread did not hide) and seconds of the steps."""
        wait, step = ctypes.c_double(), ctypes.c_double()
        check(lib.del_trainer_fit_times(self._h, ctypes.byref(wait), ctypes.byref(step)))
        return wait.value, step.value

    def step(self):
        """One training step outside a fit (needs set_total_steps); n calls
        equal fit(n) bit for bit. Returns the step's loss (NaN for a step
        skipped as non-finite)."""
        loss = ctypes.c_float()
        self.model._invalidate_views()
        check(lib.del_trainer_step(self._h, ctypes.byref(loss)))
        return loss.value

    def evaluate(self, test):
        """Top-1 accuracy (0..1) on the labeled images of dataset `test`, of
        the head this trainer trains."""
        acc = ctypes.c_double()
        self.model._invalidate_views()
        check(lib.del_trainer_evaluate(self._h, test._h, ctypes.byref(acc)))
        return acc.value

    def evaluate_head(self, test, head):
        """Top-1 accuracy (0..1) of the model's head called `head`."""
        acc = ctypes.c_double()
        self.model._invalidate_views()
        check(lib.del_trainer_evaluate_head(self._h, test._h, head.encode(), ctypes.byref(acc)))
        return acc.value


def save_checkpoint(path, model, optimizer=None):
    """Saves model (parameters, batchnorm statistics, random stream and
    parameter groups) and, if given, optimizer (its buffers, step count,
    settings and schedule) to path, as saving a PyTorch model's and
    optimizer's state_dict together. The file is replaced atomically (a
    symbolic link is saved through). A model with NaN or infinite values
    raises NumericError: keep it with Model.save(path, allow_nonfinite=True)."""
    check(lib.del_checkpoint_save(os.fsencode(path), model._h,
                                  None if optimizer is None else optimizer._h))


def load_checkpoint(path, model, optimizer=None):
    """Loads the checkpoint at path into model (same architecture) and, if
    given, optimizer (made over model, of the saved kind; its settings are
    replaced by the saved ones). All or nothing: on error both are
    unchanged."""
    check(lib.del_checkpoint_load(os.fsencode(path), model._h,
                                  None if optimizer is None else optimizer._h))


def save_checkpoint_bytes(model, optimizer=None):
    """The bytes save_checkpoint would write (the same, byte for byte)."""
    ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
    check(lib.del_checkpoint_save_buffer(model._h, None if optimizer is None else optimizer._h,
                                         ctypes.byref(ptr), ctypes.byref(size)))
    try:
        return ctypes.string_at(ptr, size.value)
    finally:
        lib.del_buffer_free(ptr)


def load_checkpoint_bytes(data, model, optimizer=None):
    """load_checkpoint from the bytes of a checkpoint (e.g. from
    save_checkpoint_bytes): the same checks, all or nothing."""
    mv = memoryview(data).cast("B")
    buf = (ctypes.c_char * mv.nbytes).from_buffer_copy(mv)
    check(lib.del_checkpoint_load_buffer(buf, mv.nbytes, model._h,
                                         None if optimizer is None else optimizer._h))


def _name(name, what):
    if not isinstance(name, str):
        raise invalid("Checkpoint: %r must be a str, got %r" % (what, name))
    return name.encode("utf-8")


class _Fields:
    """The trainer fields of a Checkpoint as a mapping: an int (or bool) is
    stored as an i64, a float as an f32 (rounded); reading gives them back
    as int and float."""

    def __init__(self, ck):
        self._ck = ck

    def __len__(self):
        return lib.del_checkpoint_num_fields(self._ck._h)

    def __iter__(self):
        h = self._ck._h
        return iter([lib.del_checkpoint_field_name(h, i).decode()
                     for i in range(lib.del_checkpoint_num_fields(h))])

    def keys(self):
        return list(self)

    def items(self):
        return [(k, self[k]) for k in self]

    def __contains__(self, key):
        return isinstance(key, str) and \
            lib.del_checkpoint_field_kind(self._ck._h, key.encode("utf-8")) != _ffi.DEL_CHECKPOINT_KIND_NONE

    def __getitem__(self, key):
        k = _name(key, "key")
        kind = lib.del_checkpoint_field_kind(self._ck._h, k)
        if kind == _ffi.DEL_CHECKPOINT_KIND_I64:
            v = ctypes.c_int64()
            check(lib.del_checkpoint_get_i64(self._ck._h, k, ctypes.byref(v)))
        elif kind == _ffi.DEL_CHECKPOINT_KIND_F32:
            v = ctypes.c_float()
            check(lib.del_checkpoint_get_f32(self._ck._h, k, ctypes.byref(v)))
        else:
            raise KeyError(key)
        return v.value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __setitem__(self, key, value):
        k = _name(key, "key")
        if isinstance(value, (bool, int)):
            check(lib.del_checkpoint_set_i64(self._ck._h, k, int(value)))
        elif isinstance(value, float):
            check(lib.del_checkpoint_set_f32(self._ck._h, k, value))
        else:
            raise invalid("Checkpoint.fields: the value of %r must be an int or a float, got %r" % (key, value))

    def __repr__(self):
        return repr(dict(self.items()))


class Checkpoint(Handle):
    """A checkpoint record (include/del/checkpoint.h): named models, each
    with its random stream, parameter groups and optionally an optimizer's
    whole state; named tensors; a trainer name and fields (`fields`, a
    dict-like). Everything added is copied at once. write / to_bytes save
    it, Checkpoint.read / Checkpoint.from_bytes load one (any libdel
    checkpoint, del_checkpoint_save's and the trainers' included)."""

    _free_name = "del_checkpoint_free"

    def __init__(self, _handle=None):
        super().__init__(_handle if _handle is not None else new_handle(lib.del_checkpoint_new))
        self.fields = _Fields(self)

    @classmethod
    def read(cls, path):
        return cls(new_handle(lib.del_checkpoint_read, os.fsencode(path)))

    @classmethod
    def from_bytes(cls, data):
        mv = memoryview(data).cast("B")
        buf = (ctypes.c_char * mv.nbytes).from_buffer_copy(mv)
        return cls(new_handle(lib.del_checkpoint_read_buffer, buf, mv.nbytes))

    def write(self, path):
        """Writes the record to path, atomically (a symbolic link is saved
        through); a model with NaN or infinite values raises NumericError."""
        check(lib.del_checkpoint_write(self._h, os.fsencode(path)))
        return self

    def to_bytes(self):
        """The bytes write would write."""
        ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.del_checkpoint_write_buffer(self._h, ctypes.byref(ptr), ctypes.byref(size)))
        try:
            return ctypes.string_at(ptr, size.value)
        finally:
            lib.del_buffer_free(ptr)

    def add_model(self, name, model, optimizer=None):
        """Adds a copy of model (and, if given, of optimizer's state, made
        over model) under name."""
        check(lib.del_checkpoint_add_model(self._h, _name(name, "name"), model._h))
        if optimizer is not None:
            self.add_optimizer(name, optimizer)
        return self

    def add_optimizer(self, model_name, optimizer):
        check(lib.del_checkpoint_add_optimizer(self._h, _name(model_name, "model_name"), optimizer._h))
        return self

    def add_tensor(self, name, tensor):
        """Adds a copy of tensor (a Tensor or a buffer: numpy array, bytes
        with a format, ...) under name."""
        check(lib.del_checkpoint_add_tensor(self._h, _name(name, "name"), as_tensor(tensor)._h))
        return self

    @property
    def trainer(self):
        """The trainer's name, or None."""
        name = lib.del_checkpoint_trainer(self._h)
        return None if name is None else name.decode()

    @trainer.setter
    def trainer(self, name):
        check(lib.del_checkpoint_set_trainer(self._h, None if name is None else _name(name, "name")))

    @property
    def models(self):
        """The models' names, in order."""
        h = self._h
        return [lib.del_checkpoint_model_name(h, i).decode() for i in range(lib.del_checkpoint_num_models(h))]

    @property
    def tensors(self):
        """The tensors' names, in order."""
        h = self._h
        return [lib.del_checkpoint_tensor_name(h, i).decode() for i in range(lib.del_checkpoint_num_tensors(h))]

    def has_model(self, name):
        return bool(lib.del_checkpoint_has_model(self._h, _name(name, "name")))

    def optimizer_type(self, name):
        """'sgd' or 'adamw' for the optimizer stored with model name, or None."""
        kind = lib.del_checkpoint_optimizer_type(self._h, _name(name, "name"))
        return None if kind is None else kind.decode()

    def check_model(self, name, model, optimizer=None):
        """Raises (InvalidArgument naming the first difference, StateError
        for no such model) unless restore_model would succeed; changes
        nothing."""
        check(lib.del_checkpoint_check_model(self._h, _name(name, "name"), model._h,
                                             None if optimizer is None else optimizer._h))

    def restore_model(self, name, model, optimizer=None):
        """Restores the model stored as name into model (same architecture)
        and, if given, its optimizer state into optimizer. All or nothing."""
        check(lib.del_checkpoint_restore_model(self._h, _name(name, "name"), model._h,
                                               None if optimizer is None else optimizer._h))

    def get_model(self, name):
        """A new Model rebuilt from the one stored as name."""
        return Model(_handle=new_handle(lib.del_checkpoint_get_model, self._h, _name(name, "name")))

    def get_tensor(self, name):
        """A copy of the tensor stored as name."""
        return Tensor(new_handle(lib.del_checkpoint_get_tensor, self._h, _name(name, "name")))


BALANCE_MEAN = _ffi.DEL_BALANCE_MEAN


def _per_class(per_class, where):
    if per_class == "mean":
        return BALANCE_MEAN
    if per_class is None or per_class is False:
        return 0
    return int(per_class)


def select_pseudo_labels(probs, threshold=0.3, per_class="mean"):
    """Rows of probs ([N, K] probabilities, e.g. Model.predict's softmax)
    whose top probability reaches threshold, balanced per class (each
    class's argmax): per_class N keeps a class's N most confident, repeating
    a short class's rows most confident first; "mean" (default): N = the
    mean kept count of the classes that have one; 0 or None: no balancing.
    Returns the row indices as a list (classes in order, most confident
    first; without balancing in row order)."""
    probs = as_tensor(probs)
    out, n = ctypes.POINTER(ctypes.c_int64)(), ctypes.c_int64()
    check(lib.del_select_pseudo_labels(ctypes.byref(out), ctypes.byref(n), probs._h, float(threshold),
                                       _per_class(per_class, "select_pseudo_labels")))
    try:
        return [out[i] for i in range(n.value)]
    finally:
        if out:
            lib.del_buffer_free(out)


class NoisyStudent(Handle):
    """Noisy Student self-training (Xie et al. 2020): each iteration the
    teacher labels the unlabeled set without noise, the labels are kept
    above `threshold` (0.3) and balanced per class (`per_class`, "mean"), and
    a noised student (its `augment` pipelines, its own dropout and
    stochastic depth) trains on labeled + pseudo-labeled images (`steps`,
    `batch_sizes` = (labeled, pseudo)) with CE + mean CE(target); the
    student teaches the next iteration. Targets are the teacher's
    probabilities, or one-hot with label smoothing when hard=True.
    students: a Model (every iteration's architecture) or {iteration: Model}
    (copied; from scratch unless init_from_teacher). With checkpoint_dir the
    run is checkpointed per iteration (and every checkpoint_every steps) and
    the same call after a crash or kill finishes it with the same bytes.
    run(progress) trains; model() is a copy of the final student; stats(k)
    gives (validation accuracy, kept, pool) of iteration k (0: the teacher)."""

    _free_name = "del_noisy_student_free"

    def __init__(self, teacher, labeled, unlabeled, iterations=2, steps=4000, batch_sizes=(64, 192),
                 threshold=0.3, per_class="mean", hard=False, smoothing=0.0, students=None,
                 init_from_teacher=False, augment=None, lr=0.05, momentum=0.9, weight_decay=5e-4,
                 nesterov=True, mean=None, std=None, seed=0, validation=None, checkpoint_dir=None,
                 checkpoint_every=0):
        super().__init__(new_handle(lib.del_noisy_student_new, teacher._h, labeled._h, unlabeled._h))
        h = self._h
        self._keep = [teacher, labeled, unlabeled, validation]
        check(lib.del_noisy_student_set_iterations(h, int(iterations)))
        check(lib.del_noisy_student_set_steps(h, int(steps)))
        try:
            bl, bp = batch_sizes
        except (TypeError, ValueError):
            raise invalid("NoisyStudent: 'batch_sizes' must be (labeled, pseudo), got %r" % (batch_sizes,))
        check(lib.del_noisy_student_set_batch_sizes(h, int(bl), int(bp)))
        check(lib.del_noisy_student_set_selection(h, float(threshold), _per_class(per_class, "NoisyStudent")))
        check(lib.del_noisy_student_set_hard(h, 1 if hard else 0, float(smoothing)))
        if students is not None:
            items = students.items() if isinstance(students, dict) else [(0, students)]
            for k, m in items:
                check(lib.del_noisy_student_set_student(h, int(k), m._h if m is not None else None))
        check(lib.del_noisy_student_set_init_from_teacher(h, 1 if init_from_teacher else 0))
        if augment is not None:
            aug_l, aug_p = augment if isinstance(augment, (tuple, list)) else (augment, augment)
            self._keep += [aug_l, aug_p]
            check(lib.del_noisy_student_set_augment(h, aug_l._h if aug_l is not None else None,
                                                    aug_p._h if aug_p is not None else None))
        check(lib.del_noisy_student_set_sgd(h, float(lr), float(momentum), float(weight_decay),
                                            1 if nesterov else 0))
        if mean is not None or std is not None:
            m, s = _normalization(mean, std, labeled.shape[2], "NoisyStudent")
            check(lib.del_noisy_student_set_normalize(h, m, s, len(m)))
        check(lib.del_noisy_student_set_seed(h, ctypes.c_uint64(int(seed))))
        if validation is not None:
            check(lib.del_noisy_student_set_validation(h, validation._h))
        if checkpoint_dir is not None:
            check(lib.del_noisy_student_set_checkpoint_dir(h, os.fsencode(checkpoint_dir),
                                                           int(checkpoint_every)))
        self.iterations = int(iterations)

    def run(self, progress=None, every=1):
        """Runs (or, from its checkpoint directory, finishes) every iteration.
        progress(step, total, loss) as Trainer.fit's, step counting over the
        iterations; returning True stops the run (Canceled)."""
        h = self._h
        callback = None
        if progress is not None:
            callback = _Progress(progress, "NoisyStudent.run")
            check(lib.del_noisy_student_set_progress(h, callback.fn, int(every), None))
        try:
            check(lib.del_noisy_student_run(h))
        except Canceled:
            if callback is not None:
                callback.reraise()
            raise
        finally:
            if callback is not None:
                lib.del_noisy_student_set_progress(h, _ffi.del_progress_fn(), 1, None)

    def model(self):
        """A copy (a new Model) of the last finished student (the teacher
        before any iteration finished)."""
        return Model(_handle=new_handle(lib.del_model_clone, lib.del_noisy_student_model(self._h)))

    def stats(self, iteration):
        """(validation accuracy or NaN, images kept by the threshold, pool
        size after balancing) of iteration `iteration` (0: the teacher)."""
        acc, kept, pool = ctypes.c_double(), ctypes.c_int64(), ctypes.c_int64()
        check(lib.del_noisy_student_stats(self._h, int(iteration), ctypes.byref(acc), ctypes.byref(kept),
                                          ctypes.byref(pool)))
        return acc.value, kept.value, pool.value


def randaugment_search(model, labeled, n=(1, 2, 3), m=(5, 9, 13), steps=1000, val_per_class=20,
                       crop_pad=2, flip=0.5, seed=0, mean=None, std=None, progress=None, every=100):
    """RandAugment policy search (Cubuk et al. 2020): every (N, M) of the grid
    trains a fresh copy of model's architecture (seeded with seed) for
    `steps` steps on labeled minus a validation split (its first
    val_per_class images of each class), with crop (pad crop_pad; -1: none)
    + flip (p flip) + RandAugment(N, M) (N 0: none) and the supervised
    trainer's defaults, and is scored on the split. progress(step, total,
    loss) counts over the cells. Returns {"table": [(N, M, accuracy), ...]
    in grid order, "best": (N, M, accuracy)} (best: the highest, the first
    among equals)."""
    s = _PolicySearch(new_handle(lib.del_policy_search_new, model._h, labeled._h))
    h = s._h
    ns = c_array(ctypes.c_int, list(n), "randaugment_search: 'n'")
    ms = c_array(ctypes.c_int, list(m), "randaugment_search: 'm'")
    check(lib.del_policy_search_set_grid(h, ns, len(ns), ms, len(ms)))
    check(lib.del_policy_search_set_validation(h, int(val_per_class)))
    check(lib.del_policy_search_set_steps(h, int(steps)))
    check(lib.del_policy_search_set_crop_flip(h, int(crop_pad), float(flip)))
    check(lib.del_policy_search_set_seed(h, ctypes.c_uint64(int(seed))))
    if mean is not None or std is not None:
        mv, sv = _normalization(mean, std, labeled.shape[2], "randaugment_search")
        check(lib.del_policy_search_set_normalize(h, mv, sv, len(mv)))
    callback = None
    if progress is not None:
        callback = _Progress(progress, "randaugment_search")
        check(lib.del_policy_search_set_progress(h, callback.fn, int(every), None))
    try:
        check(lib.del_policy_search_run(h))
    except Canceled:
        if callback is not None:
            callback.reraise()
        raise
    table = []
    for i in range(lib.del_policy_search_num_cells(h)):
        cn, cm, acc = ctypes.c_int(), ctypes.c_int(), ctypes.c_double()
        check(lib.del_policy_search_cell(h, i, ctypes.byref(cn), ctypes.byref(cm), ctypes.byref(acc)))
        table.append((cn.value, cm.value, acc.value))
    bn, bm, bacc = ctypes.c_int(), ctypes.c_int(), ctypes.c_double()
    check(lib.del_policy_search_best(h, ctypes.byref(bn), ctypes.byref(bm), ctypes.byref(bacc)))
    s.close()
    return {"table": table, "best": (bn.value, bm.value, bacc.value)}


class _PolicySearch(Handle):
    _free_name = "del_policy_search_free"
