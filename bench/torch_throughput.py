#!/usr/bin/python3
"""PyTorch reference for bench/throughput.c: fmnist-cnn training (forward,
cross-entropy, backward, SGD step) at batch 128 and eval-mode inference at
batch 512 on seeded random input, in img/s.

Both memory formats (contiguous NCHW and channels_last) are timed, block by
block in turn so that machine noise hits both; the faster one is reported
on stdout as the reference, both are logged on stderr."""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from torch_common import REFERENCE_NAME, emit, fmnist_cnn, log, set_threads, sgd

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def make_input(batch, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return x, y


def train_runner(fmt, batch, seed):
    torch.manual_seed(seed)
    model = fmnist_cnn().to(memory_format=fmt).train()
    opt = sgd(model)
    x, y = make_input(batch, seed)
    x = x.to(memory_format=fmt)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def infer_runner(fmt, batch, seed):
    torch.manual_seed(seed)
    model = fmnist_cnn().to(memory_format=fmt).eval()
    x, _ = make_input(batch, seed)
    x = x.to(memory_format=fmt)

    def step():
        with torch.inference_mode():
            model(x)

    return step


def measure(name, make_runner, batch, args):
    runners = {f: make_runner(FORMATS[f], batch, args.seed) for f in args.formats}
    for run in runners.values():
        for _ in range(args.warmup):
            run()
    rates = {f: [] for f in runners}
    start = time.perf_counter()
    # Stops early, after 3 blocks, once max_seconds have passed (as throughput.c).
    for b in range(args.blocks):
        if b >= 3 and time.perf_counter() - start > args.max_seconds:
            break
        for f, run in runners.items():
            t0 = time.perf_counter()
            for _ in range(args.block_steps):
                run()
            rates[f].append(batch * args.block_steps / (time.perf_counter() - t0))
    medians = {f: statistics.median(r) for f, r in rates.items()}
    for f in runners:
        log("torch %s threads=%d %s: median %.1f img/s, blocks %s" % (
            name, args.threads, f, medians[f], " ".join("%.1f" % r for r in rates[f])))
    best = max(medians, key=medians.get)
    emit({"bench": name, "threads": args.threads, "unit": "img/s",
          "reference": round(medians[best], 1), "reference_name": REFERENCE_NAME,
          "memory_format": best,
          "by_format": {f: round(m, 1) for f, m in medians.items()}})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", choices=("train", "infer", "both"), default="both")
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=512)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per format")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per format")
    p.add_argument("--block-steps", type=int, default=4, help="steps per timed block")
    p.add_argument("--max-seconds", type=float, default=20,
                   help="stop after 3 blocks once this much time has passed (both formats)")
    p.add_argument("--formats", default="contiguous,channels_last")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.formats = [f for f in args.formats.split(",") if f]
    for f in args.formats:
        if f not in FORMATS:
            p.error("unknown memory format %r (known: %s)" % (f, ", ".join(FORMATS)))
    if min(args.threads, args.blocks, args.block_steps, args.train_batch, args.infer_batch) < 1:
        p.error("--threads, --blocks, --block-steps and the batch sizes must be >= 1")

    set_threads(args.threads)
    if args.mode in ("train", "both"):
        measure("train_fmnist_cnn", train_runner, args.train_batch, args)
    if args.mode in ("infer", "both"):
        measure("infer_fmnist_cnn", infer_runner, args.infer_batch, args)


if __name__ == "__main__":
    main()
