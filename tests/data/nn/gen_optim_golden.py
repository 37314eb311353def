#!/usr/bin/python3
"""Writes optim_golden.txt: optimizer runs done by PyTorch, the reference for
tests/unit/nn/test_optim.c.

Eight f32 parameters (one flat tensor, libdel's contiguous buffer) take
STEPS steps with fixed gradients, some of global norm above the clipping
threshold and some below. Each step is torch.nn.utils.clip_grad_norm_, then
optimizer.step(), then scheduler.step(). Two runs:

  adamw: torch.optim.AdamW(lr 0.01, betas (0.8, 0.99), eps 1e-6,
         weight_decay 0.05), clip 1.0, linear warm-up over 3 steps
         (LinearLR(start_factor 1/3, total_iters 2) = lr (t+1)/3), then
         CosineAnnealingLR(T_max 5, eta_min 0.001), i.e. libdel's cosine
         schedule with total_steps 8, final_lr 0.001, warm-up 3.
  sgd:   torch.optim.SGD(lr 0.1, momentum 0.9, nesterov, weight_decay 5e-4),
         clip 0.5, warm-up over 2 steps (LinearLR(start_factor 1/2,
         total_iters 1)), then StepLR(step_size 3, gamma 0.5).

Run with Debian's python3-torch:  /usr/bin/python3 gen_optim_golden.py
Format: for each array a line "name count", then count values, one a line.
Arrays: init (8), <run>_grads (STEPS x 8, the gradient of each step),
<run>_lr (STEPS, the lr each step used), <run>_norm (STEPS, the norm
clip_grad_norm_ returned), <run>_params (STEPS x 8, after each step).
"""
import os

import torch

STEPS = 8
N = 8


def make_grads(gen):
    # Alternate large (norm about 2.8) and small (about 0.3) gradients so
    # that both sides of each clipping threshold are exercised.
    grads = []
    for s in range(STEPS):
        scale = 1.0 if s % 2 == 0 else 0.1
        grads.append(torch.randn(N, generator=gen) * scale)
    return grads


def run(init, grads, make_opt, make_sched, max_norm):
    p = torch.nn.Parameter(init.clone())
    opt = make_opt([p])
    sched = make_sched(opt)
    lrs, norms, params = [], [], []
    for g in grads:
        p.grad = g.clone()
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(float(torch.nn.utils.clip_grad_norm_([p], max_norm)))
        opt.step()
        sched.step()
        params.append(p.detach().clone())
    return lrs, norms, torch.stack(params)


def main():
    gen = torch.Generator().manual_seed(20240612)
    init = torch.randn(N, generator=gen)
    grads = make_grads(gen)
    lin = torch.optim.lr_scheduler.LinearLR
    seq = torch.optim.lr_scheduler.SequentialLR

    def adamw_sched(opt):
        return seq(opt, [lin(opt, start_factor=1.0 / 3.0, total_iters=2),
                         torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.001)],
                   milestones=[3])

    def sgd_sched(opt):
        return seq(opt, [lin(opt, start_factor=0.5, total_iters=1),
                         torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)],
                   milestones=[2])

    runs = {
        "adamw": run(init, grads,
                     lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
                     adamw_sched, 1.0),
        "sgd": run(init, grads,
                   lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                   sgd_sched, 0.5),
    }
    arrays = [("init", init.tolist())]
    for name, (lrs, norms, params) in runs.items():
        arrays += [
            (name + "_grads", torch.stack(grads).reshape(-1).tolist()),
            (name + "_lr", lrs),
            (name + "_norm", norms),
            (name + "_params", params.reshape(-1).tolist()),
        ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.txt")
    with open(out, "w") as f:
        for name, values in arrays:
            f.write("%s %d\n" % (name, len(values)))
            for v in values:
                f.write("%.9g\n" % v)


if __name__ == "__main__":
    main()
