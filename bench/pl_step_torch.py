#!/usr/bin/python3
"""PyTorch reference for bench/pl_step.c: train_pseudo_label_fmnist_cnn, R4's
pseudo-label step past its ramp, in img/s: each step 64 images of
FMNIST-1k's L and 256 of U, each through torchvision's RandomCrop(28,
padding=2) + RandomHorizontalFlip() on its PIL image, normalised, one joint
forward of the 320, CE(L) + 3 * CE(argmax pseudo-labels of U), backward,
SGD step (lr 0.05, momentum 0.9, Nesterov, wd 5e-4) — the loop of
bench/fmnist1k_torch.py's run_pseudo_label, the augmentation in the
training process as there."""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from torch_common import (FMNIST_DIR, MEAN, REFERENCE_NAME, STD, emit, first_per_class, fmnist_cnn, load_fmnist,
                          log, num_params, set_threads, sgd)

LABELED, UNLABELED = 64, 256


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-t", "--threads", type=int, default=1)
    p.add_argument("--data", default=FMNIST_DIR)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--block-steps", type=int, default=4)
    p.add_argument("--max-seconds", type=float, default=15)
    args = p.parse_args()
    if min(args.threads, args.blocks, args.block_steps) < 1 or args.warmup < 0:
        p.error("--threads, --blocks and --block-steps must be >= 1, --warmup >= 0")
    set_threads(args.threads)
    x, y = load_fmnist("train", args.data)
    keep = first_per_class(y, 100)
    rest = sorted(set(range(len(y))) - set(keep.tolist()))
    l_pil = [Image.fromarray(img, mode="L") for img in x[keep]]
    ly = torch.from_numpy(y[keep]).long()
    u_raw = x[rest]
    torch.manual_seed(0)
    model = fmnist_cnn().train()
    opt = sgd(model, lr=0.05)
    transform = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip()])
    gl, gu = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1000003)

    def step():
        il = torch.randint(len(l_pil), (LABELED,), generator=gl)
        iu = torch.randint(len(u_raw), (UNLABELED,), generator=gu)
        xl = torch.stack([TF.pil_to_tensor(transform(l_pil[i])) for i in il.tolist()])
        xu = torch.stack([TF.pil_to_tensor(transform(Image.fromarray(u_raw[i], mode="L"))) for i in iu.tolist()])
        xb = torch.cat([xl, xu]).float().div_(255.0).sub_(MEAN).div_(STD)
        opt.zero_grad(set_to_none=True)
        z = model(xb)
        zl, zu = z[:LABELED], z[LABELED:]
        loss = F.cross_entropy(zl, ly[il]) + 3.0 * F.cross_entropy(zu, zu.detach().argmax(1))
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    rates = []
    start = time.perf_counter()
    while len(rates) < args.blocks and (len(rates) < 3 or time.perf_counter() - start < args.max_seconds):
        t0 = time.perf_counter()
        for _ in range(args.block_steps):
            step()
        rates.append((LABELED + UNLABELED) * args.block_steps / (time.perf_counter() - t0))
    med = statistics.median(rates)
    log("torch train_pseudo_label_fmnist_cnn threads=%d: median %.1f img/s, blocks %s" % (
        args.threads, med, " ".join("%.1f" % r for r in rates)))
    emit({"bench": "train_pseudo_label_fmnist_cnn", "threads": args.threads, "unit": "img/s",
          "reference": round(med, 1), "reference_name": REFERENCE_NAME, "batch": LABELED + UNLABELED,
          "params": num_params(model)})


if __name__ == "__main__":
    main()
