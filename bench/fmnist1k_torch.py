#!/usr/bin/python3
"""FMNIST-1k (SPEC section 5) in PyTorch: the side-by-side reference for
bench/fmnist1k.c.

For each recipe and seed prints one JSON line
  {"recipe": "R0", "seed": 0, "reference_acc": 0.xx, "reference_s": ...,
   "reference_name": "pytorch 1.13", "steps": N}
where reference_s is the wall time of training plus test evaluation (data
loading excluded). Adding a recipe is one entry in RECIPES (its
augmentation, if any, a function returning the per-image transform and the
batch step)."""

import argparse
import collections
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import RandomSampler

from torch_common import (MEAN, REFERENCE_NAME, STD, emit, first_per_class,
                          fmnist_cnn, load_fmnist, log, normalise, set_threads, sgd)

# augment: None, or a function of no argument returning (per-image PIL
# transform, batch function on (x normalised, soft targets) or None).
Recipe = collections.namedtuple("Recipe", "about steps run augment")


def batches(n, batch, generator):
    """Endless stream of index batches: a fresh shuffle each epoch, `batch`
    per step, a batch that reaches the end of an epoch carrying on into the
    next one's shuffle, as libdel's supervised trainer draws them (so every
    image is seen equally often; DataLoader's drop_last would skip 40 of the
    1,000 images each epoch)."""
    sampler = RandomSampler(range(n), generator=generator)
    pending = []
    while True:
        for i in sampler:
            pending.append(i)
            if len(pending) == batch:
                yield torch.as_tensor(pending)
                pending = []


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def std_aug():
    """SPEC section 5 "std aug": random 28x28 crop of the image zero-padded
    by 2, horizontal flip p = 0.5 (libdel: random_crop(28, 28, 2, 0), flip_h(0.5))."""
    return [T.RandomCrop(28, padding=2), T.RandomHorizontalFlip()]


def cutmix(x, targets, p=0.5, alpha=1.0):
    """CutMix as SPEC section 5 and libdel define it (timm's batch mode):
    with probability p, lambda ~ Beta(alpha, alpha); a box of sides
    int(H sqrt(1 - lambda)) x int(W sqrt(1 - lambda)) around a uniform
    integer centre, clipped, is taken from the partner image n-1-i (the
    flipped batch); lambda is corrected to the pasted area and the soft
    targets become lambda y + (1 - lambda) y_partner. Uses torch's global
    generator. x is the normalised batch [n, C, H, W]."""
    if torch.rand(()).item() >= p:
        return x, targets
    lam = torch.distributions.Beta(alpha, alpha).sample().item()
    h, w = x.shape[2], x.shape[3]
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = torch.randint(h, ()).item(), torch.randint(w, ()).item()
    y0, y1 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    x0, x1 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * targets + (1.0 - lam) * targets.flip(0)


def augment_batch(data, idx, transform, batch_fn):
    """Runs transform on each PIL image of the batch (uint8 in, uint8 out),
    then normalises as libdel does and applies the batch step, if any.
    Returns (x, targets): soft targets [n, 10] or hard labels [n]."""
    images = [TF.pil_to_tensor(transform(data["pil"][i])) for i in idx.tolist()]
    x = torch.stack(images).float().div_(255.0).sub_(MEAN).div_(STD)
    y = data["ly"][idx]
    if batch_fn is None:
        return x, y
    return batch_fn(x, F.one_hot(y, 10).float())


def run_supervised(data, steps, seed, name, augment=None, return_model=False):
    """R0: fmnist-cnn with PyTorch's default init, SGD 0.05 momentum 0.9
    Nesterov wd 5e-4, CosineAnnealingLR(T_max=steps) stepped per step,
    batch 64, no augmentation. R1-R3: the same with the recipe's
    torchvision transforms applied to each PIL image at every step (torch's
    global generator, seeded with the seed) and its batch step; CutMix's
    soft targets go to F.cross_entropy's probability form."""
    torch.manual_seed(seed)
    model = fmnist_cnn().train()
    opt = sgd(model, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    stream = batches(len(data["lx"]), 64, torch.Generator().manual_seed(seed))
    transform, batch_fn = augment() if augment else (None, None)
    every = 500 if steps >= 1000 else 100
    running = 0.0
    for step in range(1, steps + 1):
        idx = next(stream)
        if transform is None:
            x, y = data["lx"][idx], data["ly"][idx]
        else:
            x, y = augment_batch(data, idx, transform, batch_fn)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % every == 0 or step == steps:
            log("  %s step %d/%d  loss %.4f" % (name, step, steps, running / (every if step % every == 0 else step % every)))
            running = 0.0
    acc = evaluate(model, data["tx"], data["ty"])
    return (acc, model) if return_model else acc


def run_pseudo_label(data, steps, seed, name, augment=None):
    """R4 (SPEC 1.5, 5): fmnist-cnn with the R0 optimizer for 4000 steps,
    each 64 labeled images of L and 256 of U (its own chained-epoch stream,
    labels unused), std aug on every image of both; the 256 pseudo-labeled
    by the argmax of the model's own output in the step (no threshold), one
    joint forward of the 320 images (batchnorm over all of them):
    loss = CE(L) + alpha(t) * CE(pseudo) (mean over the 256), alpha(t) = 0
    for t < 800, 3 (t - 800) / 1600 up to t = 2400, 3 after (t: steps taken
    before this one); while alpha is 0 only the labeled batch runs."""
    full = data["full"]()
    torch.manual_seed(seed)
    model = fmnist_cnn().train()
    opt = sgd(model, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    lab = batches(len(data["lx"]), 64, torch.Generator().manual_seed(seed))
    unl = batches(len(full["ux"]), 256, torch.Generator().manual_seed(seed + 1000003))
    transform = T.Compose(std_aug())
    t1 = steps // 5
    t2 = max(steps * 3 // 5, t1 + 1)
    kept = correct = 0
    progress = Progress(name, steps)
    for step in range(1, steps + 1):
        t = step - 1
        alpha = 0.0 if t < t1 else 3.0 if t >= t2 else 3.0 * (t - t1) / (t2 - t1)
        xl, yl = augment_batch(data, next(lab), transform, None)
        iu = next(unl)
        opt.zero_grad(set_to_none=True)
        if alpha == 0.0:
            loss = F.cross_entropy(model(xl), yl)
        else:
            images = [TF.pil_to_tensor(transform(Image.fromarray(full["u_raw"][i], mode="L")))
                      for i in iu.tolist()]
            xu = torch.stack(images).float().div_(255.0).sub_(MEAN).div_(STD)
            z = model(torch.cat([xl, xu]))
            zl, zu = z[:len(xl)], z[len(xl):]
            pseudo = zu.detach().argmax(1)
            kept += len(pseudo)
            correct += (pseudo == full["uy"][iu]).sum().item()
            loss = F.cross_entropy(zl, yl) + alpha * F.cross_entropy(zu, pseudo)
        loss.backward()
        opt.step()
        sched.step()
        progress.add(step, loss.item())
    if kept:
        log("fmnist1k_torch: R4 pseudo-labels: %.2f %% correct (%d judged)" % (100.0 * correct / kept, kept))
    return evaluate(model, data["tx"], data["ty"])


def select_balanced(probs, threshold=0.3):
    """libdel's del_select_pseudo_labels(probs, threshold, DEL_BALANCE_MEAN):
    rows whose top probability (class: the argmax, the first of equals)
    reaches threshold; each class with any brought to the mean count per
    such class (rounded half up): its most confident rows (ties: the lower
    row), or all of them repeated most confident first. Classes in order."""
    top = probs.max(1).values
    cls = probs.argmax(1)
    keep = top >= threshold
    groups = []
    for c in range(probs.shape[1]):
        rows = torch.nonzero(keep & (cls == c)).flatten()
        if len(rows):
            order = torch.sort(-top[rows], stable=True).indices
            groups.append(rows[order])
    target = int(math.floor(int(keep.sum()) / len(groups) + 0.5)) if groups else 0
    picked = [g[torch.arange(target) % len(g)] for g in groups]
    return (torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)), int(keep.sum())


def run_noisy_student(data, steps, seed, name, augment=None, steps_override=0, options=None):
    """R5 (SPEC 1.6, 5): Noisy Student, 2 iterations from the R1 teacher
    (run_supervised with std aug, 3000 steps). Each iteration: the teacher
    in eval mode on the plain U images (the 59,000 not in L), softmax;
    select_balanced(0.3); a fresh fmnist-cnn (torch.manual_seed(seed + k))
    trains `steps` steps with the R0 optimizer, each step 64 images of L and
    192 of the pool (their own chained-epoch streams), both through std aug
    + RandAugment(2, 9), one joint forward, loss CE(L) + soft CE(teacher's
    probabilities, pool) (F.cross_entropy's probability targets, mean over
    the 192); the student is the next teacher. Parts teacher, student1,
    student2 with their test accuracy."""
    full = data["full"]()
    t0 = time.perf_counter()
    teacher_steps = steps_override or 3000
    acc, teacher = run_supervised(data, teacher_steps, seed, "teacher", lambda: (T.Compose(std_aug()), None),
                                  return_model=True)
    log("fmnist1k_torch: teacher accuracy %.4f" % acc)
    results = [("teacher", acc, time.perf_counter() - t0, teacher_steps, False)]
    transform = T.Compose(std_aug() + [T.RandAugment(2, 9)])
    for k in (1, 2):
        t0 = time.perf_counter()
        teacher.eval()
        with torch.inference_mode():
            probs = torch.cat([F.softmax(teacher(full["ux"][i:i + 1000]), 1)
                               for i in range(0, len(full["ux"]), 1000)])
        rows, kept = select_balanced(probs, 0.3)
        targets = probs[rows].clone()
        torch.manual_seed(seed + k)
        model = fmnist_cnn().train()
        opt = sgd(model, lr=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        lab = batches(len(data["lx"]), 64, torch.Generator().manual_seed(seed + k))
        unl = batches(len(rows), 192, torch.Generator().manual_seed(seed + k + 1000003))
        progress = Progress("%s student%d" % (name, k), steps)
        for step in range(1, steps + 1):
            xl, yl = augment_batch(data, next(lab), transform, None)
            ip = next(unl)
            images = [TF.pil_to_tensor(transform(Image.fromarray(full["u_raw"][i], mode="L")))
                      for i in rows[ip].tolist()]
            xp = torch.stack(images).float().div_(255.0).sub_(MEAN).div_(STD)
            opt.zero_grad(set_to_none=True)
            z = model(torch.cat([xl, xp]))
            loss = F.cross_entropy(z[:len(xl)], yl) + F.cross_entropy(z[len(xl):], targets[ip])
            loss.backward()
            opt.step()
            sched.step()
            progress.add(step, loss.item())
        acc = evaluate(model, data["tx"], data["ty"])
        log("fmnist1k_torch: student%d accuracy %.4f (%d of %d unlabeled images kept, pool %d)" % (
            k, acc, kept, len(full["ux"]), len(rows)))
        results.append(("student%d" % k, acc, time.perf_counter() - t0, steps, False))
        teacher = model
    return results


def cutout(img, size=14, fill=0):
    """libdel's del_augment_add_cutout(p=1, size, fill) on a uint8 [C, H, W]
    tensor: a size x size square at a uniform integer centre (cy, cx),
    rows cy - size//2 .. cy - size//2 + size, clipped (DeVries & Taylor)."""
    h, w = img.shape[1], img.shape[2]
    cy, cx = torch.randint(h, ()).item(), torch.randint(w, ()).item()
    y0, x0 = max(cy - size // 2, 0), max(cx - size // 2, 0)
    y1, x1 = min(cy - size // 2 + size, h), min(cx - size // 2 + size, w)
    img = img.clone()
    if y1 > y0 and x1 > x0:
        img[:, y0:y1, x0:x1] = fill
    return img


def run_consistency(data, steps, seed, name, augment=None):
    """R8 (SPEC 1.7, 5; schedule in docs/benchmarks.md): FixMatch on
    fmnist-cnn with the R0 optimizer, each step 64 labeled images (std aug)
    and 448 of U (its own chained-epoch stream), each seen weakly (std aug)
    and strongly (std aug + RandAugment(2, 10) + cutout 14); one joint
    forward of the 960 images; pseudo-label = argmax of the weak view's
    softmax (detached), kept when >= 0.95; loss = CE(L) + mean over the 448
    of mask * CE(pseudo, strong); EMA of the weights (0.999, batchnorm
    statistics copied) scored on the test set."""
    full = data["full"]()
    torch.manual_seed(seed)
    model = fmnist_cnn().train()
    ema = fmnist_cnn()
    ema.load_state_dict(model.state_dict())
    ema.eval()
    opt = sgd(model, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    lab = batches(len(data["lx"]), 64, torch.Generator().manual_seed(seed))
    unl = batches(len(full["ux"]), 448, torch.Generator().manual_seed(seed + 1000003))
    weak = T.Compose(std_aug())
    strong = T.Compose(std_aug() + [T.RandAugment(2, 10)])
    kept = seen = 0
    progress = Progress(name, steps)
    for step in range(1, steps + 1):
        xl, yl = augment_batch(data, next(lab), weak, None)
        pils = [Image.fromarray(full["u_raw"][i], mode="L") for i in next(unl).tolist()]
        xw = torch.stack([TF.pil_to_tensor(weak(p)) for p in pils])
        xs = torch.stack([cutout(TF.pil_to_tensor(strong(p))) for p in pils])
        xu = torch.cat([xw, xs]).float().div_(255.0).sub_(MEAN).div_(STD)
        z = model(torch.cat([xl, xu]))
        zl, zw, zs = z[:len(xl)], z[len(xl):len(xl) + len(pils)], z[len(xl) + len(pils):]
        top, pseudo = torch.softmax(zw.detach(), 1).max(1)
        mask = (top >= 0.95).float()
        kept += int(mask.sum().item())
        seen += len(pils)
        loss = F.cross_entropy(zl, yl) + (F.cross_entropy(zs, pseudo, reduction="none") * mask).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(0.999).add_(pm.detach(), alpha=0.001)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        progress.add(step, loss.item())
    log("fmnist1k_torch: R8 pseudo-labels kept: %.1f %%" % (100.0 * kept / max(seen, 1)))
    return evaluate(ema, data["tx"], data["ty"])


def mlp(num_classes=10):
    """libdel's "mlp" preset: flatten, Linear 784->256, ReLU, Linear 256->classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(inplace=True),
                         nn.Linear(256, num_classes))


def warmup_cosine(opt, steps, warmup):
    """libdel's schedule with del_trainer_set_warmup(warmup): step t (0-based)
    < warmup uses base * (t + 1) / warmup, then a cosine to 0 over the
    remaining steps; warmup 0 is CosineAnnealingLR(T_max=steps)."""
    if warmup <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    def factor(t):
        if t < warmup:
            return (t + 1) / warmup
        return (1.0 + math.cos(math.pi * min(t - warmup, steps - warmup) / (steps - warmup))) / 2.0
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_supervised(model, x, y, steps, seed, label, params=None, warmup=0):
    """The R0 recipe on (x, y) for any model: SGD 0.05 momentum 0.9 Nesterov
    wd 5e-4, cosine per step (after a linear warm-up over the first warmup
    steps when warmup > 0), batch 64 from the chained-epoch stream."""
    model.train()
    opt = sgd(model, lr=0.05)
    sched = warmup_cosine(opt, steps, warmup)
    stream = batches(len(x), 64, torch.Generator().manual_seed(seed))
    progress = Progress(label, steps)
    for step in range(1, steps + 1):
        idx = next(stream)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        sched.step()
        progress.add(step, loss.item())


class Progress:
    """The running-mean loss lines of run_supervised."""

    def __init__(self, label, steps):
        self.label, self.steps, self.every, self.running = label, steps, 500 if steps >= 1000 else 100, 0.0

    def add(self, step, loss):
        self.running += loss
        if step % self.every == 0 or step == self.steps:
            n = self.every if step % self.every == 0 else step % self.every
            log("  %s step %d/%d  loss %.4f" % (self.label, step, self.steps, self.running / n))
            self.running = 0.0


def model_path(directory, what, seed, steps):
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, "%s-seed%d-steps%d.pt" % (what, seed, steps))


def train_and_save(make_model, x, y, test_x, test_y, steps, seed, path, reuse, part, warmup=0):
    """make_model() initialised under torch.manual_seed(seed), trained with
    the R0 recipe, its state_dict saved to path; with reuse and path there,
    loaded instead. Returns (part, accuracy, seconds, steps, reused)."""
    t0 = time.perf_counter()
    reused = reuse and os.path.exists(path)
    torch.manual_seed(seed)
    model = make_model()
    if reused:
        log("fmnist1k_torch: %s: reusing %s" % (part, path))
        model.load_state_dict(torch.load(path))
    else:
        train_supervised(model, x, y, steps, seed, part, warmup=warmup)
        torch.save(model.state_dict(), path)
    acc = evaluate(model, test_x, test_y)
    log("fmnist1k_torch: %s accuracy %.4f" % (part, acc))
    return (part, acc, time.perf_counter() - t0, steps, reused)


def run_kd(data, steps, seed, name, augment=None, steps_override=0, options=None):
    """R6 (SPEC 1.3, 5): teacher fmnist-cnn on all 60,000 training labels,
    3750 steps of 64 (4 epochs), R0 recipe, saved and loaded; student MLP
    784-256-10 (torch.manual_seed(seed) before it is built, so both students
    start from the same weights) with the R0 recipe for 3000 steps (a) alone
    on L, (b) distilled: each step 64 images of L and 64 of U (the other
    59,000, from its own chained-epoch stream), the teacher in eval mode on
    the same 128 images, loss 0.9 * T^2 KL(softmax_T(t) || softmax_T(s))
    (batchmean over the 128, T = 4) + 0.1 * CE on the 64 labels."""
    teacher_steps = steps_override or 3750
    results = []
    full = data["full"]()
    path = model_path(options.models, "R6-teacher", seed, teacher_steps)
    results.append(train_and_save(fmnist_cnn, full["x"], full["y"], data["tx"], data["ty"], teacher_steps,
                                  seed, path, options.reuse, "teacher"))

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    student = mlp()
    train_supervised(student, data["lx"], data["ly"], steps, seed, "alone")
    acc = evaluate(student, data["tx"], data["ty"])
    log("fmnist1k_torch: alone accuracy %.4f" % acc)
    results.append(("alone", acc, time.perf_counter() - t0, steps, False))

    t0 = time.perf_counter()
    teacher = fmnist_cnn()
    teacher.load_state_dict(torch.load(path))
    teacher.eval()
    torch.manual_seed(seed)
    student = mlp().train()
    opt = sgd(student, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    lab = batches(len(data["lx"]), 64, torch.Generator().manual_seed(seed))
    unl = batches(len(full["ux"]), 64, torch.Generator().manual_seed(seed + 1000003))
    temp, alpha = 4.0, 0.9
    progress = Progress("distilled", steps)
    for step in range(1, steps + 1):
        il, iu = next(lab), next(unl)
        x = torch.cat([data["lx"][il], full["ux"][iu]])
        with torch.inference_mode():
            t = teacher(x)
        s = student(x)
        kd = F.kl_div(F.log_softmax(s / temp, 1), F.softmax(t / temp, 1), reduction="batchmean") * temp * temp
        ce = F.cross_entropy(s[:len(il)], data["ly"][il])
        loss = alpha * kd + (1 - alpha) * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.add(step, loss.item())
    acc = evaluate(student, data["tx"], data["ty"])
    log("fmnist1k_torch: distilled accuracy %.4f" % acc)
    results.append(("distilled", acc, time.perf_counter() - t0, steps, False))
    return results


def select_classes(x, y, lo):
    """The rows of (x, y) whose label is in lo..lo+4, in order, labelled 0..4."""
    keep = (y >= lo) & (y <= lo + 4)
    return x[keep], y[keep] - lo


class TwoHeads(nn.Module):
    """A backbone with a new and an old classifier head on its output."""

    def __init__(self, backbone, new, old):
        super().__init__()
        self.backbone, self.new, self.old = backbone, new, old

    def forward(self, x):
        f = self.backbone(x)
        return self.new(f), self.old(f)


class NewHead(nn.Module):
    def __init__(self, two):
        super().__init__()
        self.two = two

    def forward(self, x):
        return self.two(x)[0]


class OldHead(NewHead):
    def forward(self, x):
        return self.two(x)[1]


def set_frozen(modules, frozen):
    """As libdel's del_model_freeze: no gradients for the parameters, and a
    frozen batchnorm normalises with its running statistics (eval mode)
    without updating them; dropout stays as the model's mode has it."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(not frozen)
        for sub in m.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.train(not frozen)


def transfer_once(method, t, path, steps, warmup, seed):
    """One R7 run from the saved pre-trained model; returns the two parts."""
    t0 = time.perf_counter()
    pre = fmnist_cnn(5)
    pre.load_state_dict(torch.load(path))
    backbone, old = pre[:-1], pre[-1]
    torch.manual_seed(seed)
    model = TwoHeads(backbone, nn.Linear(128, 5), old).train()
    lr = 0.05
    if method == "probe":
        set_frozen([backbone, old], True)
        opt = torch.optim.SGD(model.new.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        if method == "finetune":
            set_frozen([old], True)
            pretrained = list(backbone.parameters())
        else:
            pretrained = list(backbone.parameters()) + list(old.parameters())
        opt = torch.optim.SGD([{"params": pretrained, "lr": 0.1 * lr}, {"params": model.new.parameters(), "lr": lr}],
                              lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if method == "lwf":
        # Y_o: the original old head on the new task's images, eval mode.
        model.eval()
        with torch.inference_mode():
            y_old = model(t["new_x"])[1].clone()
        model.train()
    stream = batches(len(t["new_x"]), 64, torch.Generator().manual_seed(seed))
    temp, lam = 2.0, 1.0
    progress = Progress(method, steps)
    frozen = None
    for step in range(1, steps + 1):
        if method != "probe":
            now_frozen = step <= warmup
            if now_frozen != frozen:
                set_frozen([backbone] if method == "finetune" else [backbone, old], now_frozen)
                frozen = now_frozen
        idx = next(stream)
        zn, zo = model(t["new_x"][idx])
        loss = F.cross_entropy(zn, t["new_y"][idx])
        if method == "lwf" and not frozen:
            loss = loss + lam * temp * temp * F.kl_div(F.log_softmax(zo / temp, 1), F.softmax(y_old[idx] / temp, 1),
                                                       reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.add(step, loss.item())
    acc_new = evaluate(NewHead(model), t["new_tx"], t["new_ty"])
    acc_old = evaluate(OldHead(model), t["old_tx"], t["old_ty"])
    log("fmnist1k_torch: %s new %.4f old %.4f" % (method, acc_new, acc_old))
    seconds = time.perf_counter() - t0
    return [(method + "_new", acc_new, seconds, steps, False), (method + "_old", acc_old, seconds, steps, False)]


def run_transfer(data, steps, seed, name, augment=None, steps_override=0, options=None):
    """R7 (SPEC 1.2, 1.4, 5): fmnist-cnn(5) pre-trained with the R0 recipe
    for 1500 steps on all 30,000 training images of classes 0-4, the lr
    warmed up linearly over the first 100 steps (warmup_cosine), saved;
    new task classes 5-9 (as 0-4), the first 100 training images of each
    (L's). From the saved model, loaded afresh, the R0 recipe for 1000
    steps: probe (new head alone, backbone frozen with BN on running
    statistics), finetune (200 steps of the new head alone, then the
    backbone at 0.1x; old head frozen), lwf (200 steps of the new head
    alone, then backbone and old head at 0.1x with
    CE + 1 * T^2 KL(softmax_T(Y_o) || softmax_T(old)), T = 2)."""
    pre_steps = steps_override or 1500
    warmup = 200 if steps >= 1000 else steps // 5
    full = data["full"]()
    old_x, old_y = select_classes(full["x"], full["y"], 0)
    new_x, new_y = select_classes(data["lx"], data["ly"], 5)
    old_tx, old_ty = select_classes(data["tx"], data["ty"], 0)
    new_tx, new_ty = select_classes(data["tx"], data["ty"], 5)
    t = {"new_x": new_x, "new_y": new_y, "old_tx": old_tx, "old_ty": old_ty, "new_tx": new_tx, "new_ty": new_ty}
    pre_warmup = 100 if pre_steps >= 1000 else pre_steps // 10
    path = model_path(options.models, "R7-pretrained-warmup100", seed, pre_steps)
    results = [train_and_save(lambda: fmnist_cnn(5), old_x, old_y, old_tx, old_ty, pre_steps, seed, path,
                              options.reuse, "pretrained_old", warmup=pre_warmup)]
    for method in ("probe", "finetune", "lwf"):
        results += transfer_once(method, t, path, steps, warmup, seed)
    return results


RECIPES = {
    "R0": Recipe("supervised on L, no augmentation, 3000 steps", 3000, run_supervised, None),
    "R1": Recipe("R0 + std aug (pad-2 random crop 28x28, flip p=0.5)", 3000, run_supervised,
                 lambda: (T.Compose(std_aug()), None)),
    # torchvision's classification reference order: crop, flip, then the policy.
    "R2": Recipe("R1 + RandAugment(2, 9) after crop and flip", 3000, run_supervised,
                 lambda: (T.Compose(std_aug() + [T.RandAugment(2, 9)]), None)),
    "R3": Recipe("R1 + CutMix (p=0.5, alpha=1), soft-target CE", 3000, run_supervised,
                 lambda: (T.Compose(std_aug()), cutmix)),
    "R4": Recipe("pseudo-label: R1's std aug on L (64) and U (256, labels unused), hard argmax of the model in the "
                 "step, alpha 0 -> 3 from 20 % to 60 % of 4000 steps", 4000, run_pseudo_label, None),
    "R5": Recipe("Noisy Student: 2 iterations from the R1 teacher, soft labels, threshold 0.3, balanced to the mean "
                 "per class, students noised with std aug + RandAugment(2, 9) + dropout, 64 labeled + 192 pseudo, "
                 "4000 steps", 4000, run_noisy_student, None),
    "R8": Recipe("FixMatch: L 64 (std aug) + U 448 (weak std aug / strong + RandAugment(2, 10) + cutout 14), "
                 "tau 0.95, lambda_u 1, EMA 0.999 scored, 4000 steps", 4000, run_consistency, None),
    "R6": Recipe("KD: fmnist-cnn teacher on all 60,000 labels (3750 steps = 4 epochs) -> MLP 784-256-10 alone on L "
                 "vs distilled on L + U (T=4, alpha=0.9, 64 + 64 per step), 3000 steps", 3000, run_kd, None),
    "R7": Recipe("transfer: fmnist-cnn pre-trained on classes 0-4 (1500 steps, 100 warm-up), new task 5-9 with 100 labels each: "
                 "linear probe vs fine-tune (backbone 0.1x) vs LwF (T=2, lambda=1), 1000 steps, 200 head warm-up",
                 1000, run_transfer, None),
}
MULTI_PART = {"R5", "R6", "R7"}


def load_data(directory):
    train_x, train_y = load_fmnist("train", directory)
    test_x, test_y = load_fmnist("t10k", directory)
    keep = first_per_class(train_y, 100)
    cache = {}

    def full():
        """All 60,000 training images and labels, and U (the 59,000 not
        in L, in file order), normalised on first use."""
        if not cache:
            rest = np.setdiff1d(np.arange(len(train_y)), keep)
            x = normalise(train_x)
            cache.update({"x": x, "y": torch.from_numpy(train_y), "ux": x[torch.from_numpy(rest)],
                          "u_raw": train_x[rest], "uy": torch.from_numpy(train_y[rest])})
        return cache

    return {"lx": normalise(train_x[keep]), "ly": torch.from_numpy(train_y[keep]),
            "pil": [Image.fromarray(img, mode="L") for img in train_x[keep]],
            "tx": normalise(test_x), "ty": torch.from_numpy(test_y), "full": full}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("-t", "--threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--seeds", default="0", help='e.g. "0 1 2"')
    p.add_argument("--steps", type=int, default=0, help="override the step count (smoke runs)")
    p.add_argument("--dir", default=None)
    p.add_argument("--models", default="build/fmnist1k-models",
                   help="where R6's teacher and R7's pre-trained model are saved and loaded")
    p.add_argument("--reuse", action="store_true",
                   help="load a seed's saved teacher / pre-trained model instead of training it again")
    args = p.parse_args()
    if args.list:
        for name, r in RECIPES.items():
            print("%s\t%s" % (name, r.about))
        return 0
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown or not args.recipes:
        log("fmnist1k_torch: %s; known recipes: %s" % (
            "unknown recipe '%s'" % unknown[0] if unknown else "no recipe given", ", ".join(RECIPES)))
        return 2
    try:
        seeds = [int(s) for s in args.seeds.replace(",", " ").split()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or args.steps < 0:
        log("fmnist1k_torch: --seeds must be non-negative integers and --steps >= 0")
        return 2
    if args.threads:
        set_threads(args.threads)

    data = load_data(args.dir or "/usr/share/datasets/fashion-mnist")
    log("fmnist1k_torch: %s, %d thread(s), %d labeled / %d test images" % (
        REFERENCE_NAME, torch.get_num_threads(), len(data["lx"]), len(data["tx"])))
    for name in args.recipes:
        recipe = RECIPES[name]
        steps = args.steps or recipe.steps
        for seed in seeds:
            log("fmnist1k_torch: %s seed %d, %d steps" % (name, seed, steps))
            t0 = time.perf_counter()
            if name in MULTI_PART:
                for part, acc, seconds, part_steps, reused in recipe.run(
                        data, steps, seed, name, recipe.augment, steps_override=args.steps, options=args):
                    record = {"recipe": name, "part": part, "seed": seed, "reference_acc": round(acc, 4),
                              "reference_s": round(seconds, 1), "reference_name": REFERENCE_NAME,
                              "steps": part_steps}
                    if reused:
                        record["reused"] = True
                    emit(record)
                continue
            acc = recipe.run(data, steps, seed, name, recipe.augment)
            emit({"recipe": name, "seed": seed, "reference_acc": round(acc, 4),
                  "reference_s": round(time.perf_counter() - t0, 1),
                  "reference_name": REFERENCE_NAME, "steps": steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
