#!/usr/bin/python3
"""PyTorch reference for bench/kd_step.c: train_kd_fmnist_cnn, one
knowledge-distillation step with a live teacher at batch 128, in img/s:
the fmnist-cnn teacher's eval-mode forward under torch.inference_mode(),
then the MLP student's zero_grad, forward, loss
0.9 * T^2 KL(softmax_T(t) || softmax_T(s)) (batchmean, T = 4) + 0.1 * CE,
backward and SGD step (lr 0.05, momentum 0.9, Nesterov, wd 5e-4), on
seeded random input. The teacher is timed in both memory formats
(contiguous and channels_last, block by block in turn); the faster one is
the reference on stdout, both are logged on stderr."""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import REFERENCE_NAME, emit, fmnist_cnn, log, num_params, set_threads, sgd

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
TEMPERATURE, ALPHA = 4.0, 0.9


def mlp():
    """libdel's "mlp" preset: flatten, Linear 784->256, ReLU, Linear 256->10."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(inplace=True), nn.Linear(256, 10))


def runner(fmt, batch, seed):
    torch.manual_seed(seed)
    teacher = fmnist_cnn().to(memory_format=fmt).eval()
    student = mlp().train()
    opt = sgd(student)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    xt = x.to(memory_format=fmt)

    def step():
        with torch.inference_mode():
            t = teacher(xt)
        t = t.clone()  # an inference tensor cannot enter autograd's graph
        opt.zero_grad(set_to_none=True)
        s = student(x)
        kd = F.kl_div(F.log_softmax(s / TEMPERATURE, 1), F.softmax(t / TEMPERATURE, 1),
                      reduction="batchmean") * TEMPERATURE * TEMPERATURE
        loss = ALPHA * kd + (1 - ALPHA) * F.cross_entropy(s, y)
        loss.backward()
        opt.step()

    return step, num_params(teacher) + num_params(student)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per format")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per format")
    p.add_argument("--block-steps", type=int, default=4, help="steps per timed block")
    p.add_argument("--max-seconds", type=float, default=20,
                   help="stop after 3 blocks once this much time has passed (both formats)")
    p.add_argument("--formats", default="contiguous,channels_last")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if not formats or any(f not in FORMATS for f in formats):
        p.error("--formats: a comma-separated list of %s" % ", ".join(FORMATS))
    if min(args.threads, args.batch, args.blocks, args.block_steps) < 1:
        p.error("--threads, --batch, --blocks and --block-steps must be >= 1")
    set_threads(args.threads)
    runners = {f: runner(FORMATS[f], args.batch, args.seed) for f in formats}
    params = next(iter(runners.values()))[1]
    for run, _ in runners.values():
        for _ in range(args.warmup):
            run()
    rates = {f: [] for f in runners}
    start = time.perf_counter()
    for b in range(args.blocks):
        if b >= 3 and time.perf_counter() - start > args.max_seconds:
            break
        for f, (run, _) in runners.items():
            t0 = time.perf_counter()
            for _ in range(args.block_steps):
                run()
            rates[f].append(args.batch * args.block_steps / (time.perf_counter() - t0))
    medians = {f: statistics.median(r) for f, r in rates.items()}
    for f in runners:
        log("torch train_kd_fmnist_cnn threads=%d %s: median %.1f img/s, blocks %s" % (
            args.threads, f, medians[f], " ".join("%.1f" % r for r in rates[f])))
    best = max(medians, key=medians.get)
    emit({"bench": "train_kd_fmnist_cnn", "threads": args.threads, "unit": "img/s",
          "reference": round(medians[best], 1), "reference_name": REFERENCE_NAME,
          "memory_format": best, "batch": args.batch, "params": params,
          "by_format": {f: round(m, 1) for f, m in medians.items()}})


if __name__ == "__main__":
    main()
