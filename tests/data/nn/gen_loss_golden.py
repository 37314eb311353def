#!/usr/bin/python3
"""Writes loss_golden.txt: losses and gradients computed by PyTorch, the
reference for tests/unit/nn/test_loss.c.

Two families of cases, each with its logits drawn as float32 (so libdel
reads exactly the values torch used) and the loss and gradient computed by
torch in float64 with autograd:

  smooth<i>:  F.cross_entropy(z, y, label_smoothing=s)   (mean over rows)
  distill<i>: F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1),
                       reduction='batchmean') * T * T,
              gradient with respect to zs

Run with Debian's python3-torch:  /usr/bin/python3 gen_loss_golden.py
Format: for each array a line "name count", then count values, one a line.
Arrays per case: <case>_meta (smooth: N K s; distill: N K T),
smooth: _logits (N*K), _labels (N), _loss (1), _grad (N*K);
distill: _student (N*K), _teacher (N*K), _loss (1), _grad (N*K).
"""
import os

import torch
import torch.nn.functional as F

# (N, K, smoothing, logit scale); the last one has logits in the hundreds,
# where an unshifted softmax would overflow.
SMOOTH_CASES = [
    (1, 2, 0.0, 1.0),
    (4, 10, 0.1, 2.0),
    (3, 5, 0.3, 1.0),
    (5, 7, 0.9, 3.0),
    (2, 4, 0.05, 300.0),
]

# (N, K, temperature, student scale, teacher scale)
DISTILL_CASES = [
    (1, 2, 1.0, 1.0, 1.0),
    (4, 10, 2.0, 2.0, 3.0),
    (3, 5, 4.0, 1.0, 5.0),
    (5, 7, 0.5, 1.0, 1.0),
    (2, 10, 20.0, 4.0, 8.0),
    (2, 3, 1.0, 60.0, 60.0),
]


def f32_logits(gen, n, k, scale):
    return (torch.randn(n, k, generator=gen) * scale).float()


def main():
    gen = torch.Generator().manual_seed(20240613)
    arrays = []
    for i, (n, k, s, scale) in enumerate(SMOOTH_CASES):
        z32 = f32_logits(gen, n, k, scale)
        y = torch.randint(0, k, (n,), generator=gen)
        z = z32.double().requires_grad_(True)
        loss = F.cross_entropy(z, y, label_smoothing=s)
        loss.backward()
        name = "smooth%d" % i
        arrays += [
            (name + "_meta", [n, k, s]),
            (name + "_logits", z32.reshape(-1).tolist()),
            (name + "_labels", y.tolist()),
            (name + "_loss", [loss.item()]),
            (name + "_grad", z.grad.reshape(-1).tolist()),
        ]
    for i, (n, k, t, s_scale, t_scale) in enumerate(DISTILL_CASES):
        zs32 = f32_logits(gen, n, k, s_scale)
        zt32 = f32_logits(gen, n, k, t_scale)
        zs = zs32.double().requires_grad_(True)
        zt = zt32.double()
        loss = F.kl_div(F.log_softmax(zs / t, dim=1), F.softmax(zt / t, dim=1), reduction="batchmean") * t * t
        loss.backward()
        name = "distill%d" % i
        arrays += [
            (name + "_meta", [n, k, t]),
            (name + "_student", zs32.reshape(-1).tolist()),
            (name + "_teacher", zt32.reshape(-1).tolist()),
            (name + "_loss", [loss.item()]),
            (name + "_grad", zs.grad.reshape(-1).tolist()),
        ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_golden.txt")
    with open(out, "w") as f:
        for name, values in arrays:
            f.write("%s %d\n" % (name, len(values)))
            for v in values:
                f.write("%.17g\n" % v)


if __name__ == "__main__":
    main()
