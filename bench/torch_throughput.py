#!/usr/bin/python3
"""PyTorch reference for bench/throughput.c: fmnist-cnn or resnet20 training
(forward, cross-entropy, backward, SGD step) at batch 128 and eval-mode
inference at batch 512 on seeded random input, in img/s.

Both memory formats (contiguous NCHW and channels_last) are timed, block by
block in turn so that machine noise hits both; the faster one is reported
on stdout as the reference, both are logged on stderr.

--mode steps runs --steps training steps untimed in the first of --formats
and prints nothing on stdout: a process for bench/peak_rss.py to measure.

--mode predict (fmnist-cnn only): predict_fmnist_cnn, the reference for
del_model_predict: a torch.utils.data.DataLoader (shuffle off, no worker
processes) over the 60,000 Fashion-MNIST training images as a uint8
TensorDataset, each batch normalised as (x/255 - 0.2860) / 0.3530, the
model in eval mode under torch.no_grad(), softmax written into a
preallocated [60000, 10] tensor, in img/s. Each of --predict-batches is
probed with one pass over the first 10,000 images (after one untimed
batch); the fastest is then timed over the whole set in up to 3 blocks of
one pass each, stopping after the block that passes --max-seconds."""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from torch_common import (FMNIST_DIR, MEAN, MODELS, REFERENCE_NAME, STD, emit, load_fmnist, log,
                          num_params, set_threads, sgd)

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def make_input(batch, shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return x, y


def train_runner(model_name, fmt, batch, seed):
    build, shape = MODELS[model_name]
    torch.manual_seed(seed)
    model = build().to(memory_format=fmt).train()
    opt = sgd(model)
    x, y = make_input(batch, shape, seed)
    x = x.to(memory_format=fmt)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def infer_runner(model_name, fmt, batch, seed):
    build, shape = MODELS[model_name]
    torch.manual_seed(seed)
    model = build().to(memory_format=fmt).eval()
    x, _ = make_input(batch, shape, seed)
    x = x.to(memory_format=fmt)

    def step():
        with torch.inference_mode():
            model(x)

    return step


def bench_name(kind, model_name):
    return kind + "_" + model_name.replace("-", "_")


def measure(kind, make_runner, batch, args):
    name = bench_name(kind, args.model)
    runners = {f: make_runner(args.model, FORMATS[f], batch, args.seed) for f in args.formats}
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
          "memory_format": best, "batch": batch,
          "params": num_params(MODELS[args.model][0]()),
          "by_format": {f: round(m, 1) for f, m in medians.items()}})


def predict_pass(model, images, batch, out):
    """One DataLoader pass over images (uint8 [N, 1, 28, 28]) into out."""
    loader = DataLoader(TensorDataset(images), batch_size=batch, shuffle=False, num_workers=0)
    first = 0
    with torch.no_grad():
        for (xb,) in loader:
            x = (xb.float() / 255.0 - MEAN) / STD
            out[first:first + len(xb)] = F.softmax(model(x), dim=1)
            first += len(xb)
    assert first == len(images)


def measure_predict(args):
    images = torch.from_numpy(load_fmnist("train", args.fmnist_dir)[0].copy()).unsqueeze(1)
    n = len(images)
    torch.manual_seed(args.seed)
    model = MODELS["fmnist-cnn"][0]().eval()
    out = torch.empty(n, 10)
    probe_n = min(n, 10000)
    probe = {}
    for b in args.predict_batches:
        predict_pass(model, images[:b], b, out)  # untimed: first-call allocations
        t0 = time.perf_counter()
        predict_pass(model, images[:probe_n], b, out)
        probe[b] = probe_n / (time.perf_counter() - t0)
    best = max(probe, key=probe.get)
    rates = []
    start = time.perf_counter()
    while len(rates) < args.predict_blocks and (not rates or time.perf_counter() - start < args.max_seconds):
        t0 = time.perf_counter()
        predict_pass(model, images, best, out)
        rates.append(n / (time.perf_counter() - t0))
    log("torch predict_fmnist_cnn threads=%d: probe %s, batch %d blocks %s" % (
        args.threads, " ".join("%d: %.1f" % (b, r) for b, r in probe.items()), best,
        " ".join("%.1f" % r for r in rates)))
    emit({"bench": "predict_fmnist_cnn", "threads": args.threads, "unit": "img/s",
          "reference": round(statistics.median(rates), 1), "reference_name": REFERENCE_NAME,
          "batch": best, "images": n, "params": num_params(model),
          "by_batch": {str(b): round(r, 1) for b, r in probe.items()}})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", choices=tuple(MODELS), default="fmnist-cnn")
    p.add_argument("--mode", choices=("train", "infer", "both", "steps", "predict"), default="both")
    p.add_argument("--steps", type=int, default=20, help="training steps of --mode steps")
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=512)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per format")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per format")
    p.add_argument("--block-steps", type=int, default=4, help="steps per timed block")
    p.add_argument("--max-seconds", type=float, default=20,
                   help="stop after 3 blocks once this much time has passed (both formats)")
    p.add_argument("--formats", default="contiguous,channels_last")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--predict-batches", default="256,512,1000",
                   help="DataLoader batch sizes --mode predict probes")
    p.add_argument("--predict-blocks", type=int, default=3, help="timed passes of --mode predict")
    p.add_argument("--fmnist-dir", default=None, help="Fashion-MNIST folder (default Debian's)")
    args = p.parse_args()
    try:
        args.predict_batches = [int(b) for b in args.predict_batches.split(",") if b]
    except ValueError:
        p.error("--predict-batches must be comma-separated integers")
    if not args.predict_batches or min(args.predict_batches) < 1 or args.predict_blocks < 1:
        p.error("--predict-batches and --predict-blocks must be >= 1")
    if args.mode == "predict" and args.model != "fmnist-cnn":
        p.error("--mode predict runs fmnist-cnn only")
    if args.fmnist_dir is None:
        args.fmnist_dir = FMNIST_DIR
    args.formats = [f for f in args.formats.split(",") if f]
    if not args.formats:
        p.error("--formats names no memory format")
    for f in args.formats:
        if f not in FORMATS:
            p.error("unknown memory format %r (known: %s)" % (f, ", ".join(FORMATS)))
    if min(args.threads, args.steps, args.blocks, args.block_steps, args.train_batch, args.infer_batch) < 1:
        p.error("--threads, --blocks, --block-steps and the batch sizes must be >= 1")

    set_threads(args.threads)
    if args.mode == "steps":
        step = train_runner(args.model, FORMATS[args.formats[0]], args.train_batch, args.seed)
        for _ in range(args.steps):
            step()
        log("torch %s %s: %d training steps at batch %d" % (
            args.model, args.formats[0], args.steps, args.train_batch))
    if args.mode in ("train", "both"):
        measure("train", train_runner, args.train_batch, args)
    if args.mode in ("infer", "both"):
        measure("infer", infer_runner, args.infer_batch, args)
    if args.mode == "predict":
        measure_predict(args)


if __name__ == "__main__":
    main()
