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
import sys
import time

import torch
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


def run_supervised(data, steps, seed, name, augment=None):
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
    return evaluate(model, data["tx"], data["ty"])


RECIPES = {
    "R0": Recipe("supervised on L, no augmentation, 3000 steps", 3000, run_supervised, None),
    "R1": Recipe("R0 + std aug (pad-2 random crop 28x28, flip p=0.5)", 3000, run_supervised,
                 lambda: (T.Compose(std_aug()), None)),
    # torchvision's classification reference order: crop, flip, then the policy.
    "R2": Recipe("R1 + RandAugment(2, 9) after crop and flip", 3000, run_supervised,
                 lambda: (T.Compose(std_aug() + [T.RandAugment(2, 9)]), None)),
    "R3": Recipe("R1 + CutMix (p=0.5, alpha=1), soft-target CE", 3000, run_supervised,
                 lambda: (T.Compose(std_aug()), cutmix)),
}


def load_data(directory):
    train_x, train_y = load_fmnist("train", directory)
    test_x, test_y = load_fmnist("t10k", directory)
    keep = first_per_class(train_y, 100)
    return {"lx": normalise(train_x[keep]), "ly": torch.from_numpy(train_y[keep]),
            "pil": [Image.fromarray(img, mode="L") for img in train_x[keep]],
            "tx": normalise(test_x), "ty": torch.from_numpy(test_y)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("-t", "--threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--seeds", default="0", help='e.g. "0 1 2"')
    p.add_argument("--steps", type=int, default=0, help="override the step count (smoke runs)")
    p.add_argument("--dir", default=None)
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
            acc = recipe.run(data, steps, seed, name, recipe.augment)
            emit({"recipe": name, "seed": seed, "reference_acc": round(acc, 4),
                  "reference_s": round(time.perf_counter() - t0, 1),
                  "reference_name": REFERENCE_NAME, "steps": steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
