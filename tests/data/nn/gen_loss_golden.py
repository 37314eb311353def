#!/usr/bin/python3
"""Writes loss_golden.txt and loss_acc_golden.txt: losses and gradients
computed by PyTorch, the references for tests/unit/nn/test_loss.c and
tests/unit/nn/test_loss_acc.c.

Two families of cases, each with its logits drawn as float32 (so libdel
reads exactly the values torch used) and the loss and gradient computed by
torch in float64 with autograd:

  smooth<i>:  F.cross_entropy(z, y, label_smoothing=s)   (mean over rows)
  distill<i>: F.kl_div(F.log_softmax(zs / T, 1), F.softmax(zt / T, 1),
                       reduction='batchmean') * T * T,
              gradient with respect to zs

loss_acc_golden.txt holds the weighted forms (the _acc functions), each
reduced as the mean over all N rows, w being the row weights (1 without):

  ce<i>:      weight * (w * F.cross_entropy(z, y, ignore_index=-1,
                        label_smoothing=s, reduction='none')).mean()
              (one case instead F.cross_entropy(z, y, ignore_index=-1), the
              mean over the M rows kept, which is weight N / M)
  softacc<i>: weight * (w * F.cross_entropy(z, t, reduction='none')).mean()
  kd<i>:      weight * f * (w * F.kl_div(F.log_softmax(zs / T, 1), q,
                        reduction='none').sum(1)).mean(),
              f = T^2 or 1, q = F.softmax(zt / T, 1) for teacher logits or
              p^(1/T) / sum p^(1/T) for teacher probabilities p
  accum<i>:   two of them summed into one gradient that starts at grad0:
              accum0 distillation alpha KD + (1 - alpha) CE,
              accum1 LwF CE + lambda KD without T^2,
              accum2 FixMatch on one concatenated batch: the labeled mean
              F.cross_entropy(z[:L], y) + lambda_u (mask *
              F.cross_entropy(z[L:], pseudo, reduction='none')).mean()

Run with Debian's python3-torch:  /usr/bin/python3 gen_loss_golden.py
Format: for each array a line "name count", then count values, one a line.
Arrays per case: <case>_meta (smooth: N K s; distill: N K T),
smooth: _logits (N*K), _labels (N), _loss (1), _grad (N*K);
distill: _student (N*K), _teacher (N*K), _loss (1), _grad (N*K).
ce: _meta (N K s weight has_row_weights), _logits, _labels (-1 ignored),
_weights (N), _loss, _grad. softacc: _meta (N K weight has_row_weights),
_logits, _targets (N*K), _weights, _loss, _grad. kd: _meta (N K T flags
weight has_row_weights; flags as del_distill_flags: 1 teacher
probabilities, 2 no T^2), _student, _teacher, _weights, _loss, _grad.
accum: _meta (accum0/1: N K T alpha-or-lambda; accum2: L U K lambda_u),
_logits, _teacher (accum0/1), _labels, _pseudo and _mask (accum2), _grad0,
_loss_a, _loss_b (the two terms), _grad (grad0 + the summed gradient).
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


# (N, K, smoothing, weight, row weights?, ignored rows, logit scale); weight
# "mean" is torch's reduction='mean' with ignore_index. Case 2 has a row
# weight of exactly 0; in case 4 every row is ignored.
CE_CASES = [
    (4, 5, 0.0, 1.0, False, [1], 1.0),
    (6, 10, 0.1, 0.5, True, [0, 4], 2.0),
    (3, 3, 0.0, 2.0, True, [], 1.0),
    (5, 7, 0.2, 1.0, True, [2], 300.0),
    (3, 4, 0.0, 1.0, False, [0, 1, 2], 1.0),
    (6, 5, 0.1, "mean", False, [1, 3], 1.5),
]

# (N, K, weight, row weights?, logit scale); the first row of every case is
# a MixUp of two one-hot labels (zeros elsewhere).
SOFT_ACC_CASES = [
    (4, 5, 1.0, True, 1.0),
    (3, 10, 0.3, True, 3.0),
    (5, 4, 2.0, False, 1.0),
]

TEACHER_PROBS, NO_T_SQUARED = 1, 2

# (N, K, T, flags, weight, row weights?, zero teacher probabilities?)
KD_CASES = [
    (4, 10, 4.0, 0, 1.0, False, False),
    (4, 10, 4.0, NO_T_SQUARED, 1.0, False, False),
    (3, 6, 4.0, TEACHER_PROBS, 0.7, True, False),
    (3, 6, 4.0, TEACHER_PROBS | NO_T_SQUARED, 1.0, True, False),
    (5, 5, 2.0, 0, 0.25, True, False),
    (2, 4, 1.0, TEACHER_PROBS, 1.0, False, True),
    (3, 5, 4.0, TEACHER_PROBS, 1.0, False, True),
]


def f32_logits(gen, n, k, scale):
    return (torch.randn(n, k, generator=gen) * scale).float()


def f32_row_weights(gen, n):
    return (torch.rand(n, generator=gen) * 2.0).float()


def ce_terms(z, y, s=0.0):
    """Per-row F.cross_entropy with ignore_index=-1 (0 for ignored rows)."""
    return F.cross_entropy(z, y, ignore_index=-1, label_smoothing=s, reduction="none")


def kd_terms(zs, q, t):
    """Per-row KL(q || softmax_T(zs))."""
    return F.kl_div(F.log_softmax(zs / t, dim=1), q, reduction="none").sum(1)


def soften(p, t):
    """Teacher probabilities p at temperature T: p^(1/T) / sum p^(1/T)."""
    r = p.pow(1.0 / t)
    return r / r.sum(1, keepdim=True)


def acc_arrays(gen):
    arrays = []
    for i, (n, k, s, weight, has_w, ignored, scale) in enumerate(CE_CASES):
        z32 = f32_logits(gen, n, k, scale)
        y = torch.randint(0, k, (n,), generator=gen)
        y[ignored] = -1
        w32 = f32_row_weights(gen, n)
        if i == 2:
            w32[1] = 0.0
        z = z32.double().requires_grad_(True)
        if weight == "mean":
            loss = F.cross_entropy(z, y, ignore_index=-1, label_smoothing=s)
            weight = n / (n - len(ignored))
        else:
            w = w32.double() if has_w else torch.ones(n, dtype=torch.float64)
            loss = weight * (w * ce_terms(z, y, s)).mean()
        loss.backward()
        name = "ce%d" % i
        arrays += [
            (name + "_meta", [n, k, s, weight, int(has_w)]),
            (name + "_logits", z32.reshape(-1).tolist()),
            (name + "_labels", y.tolist()),
            (name + "_weights", w32.tolist()),
            (name + "_loss", [loss.item()]),
            (name + "_grad", z.grad.reshape(-1).tolist()),
        ]
    for i, (n, k, weight, has_w, scale) in enumerate(SOFT_ACC_CASES):
        z32 = f32_logits(gen, n, k, scale)
        t32 = F.softmax(f32_logits(gen, n, k, 2.0), dim=1).float()
        t32[0] = 0.0
        t32[0, 0], t32[0, k - 1] = 0.75, 0.25
        w32 = f32_row_weights(gen, n)
        z = z32.double().requires_grad_(True)
        w = w32.double() if has_w else torch.ones(n, dtype=torch.float64)
        loss = weight * (w * F.cross_entropy(z, t32.double(), reduction="none")).mean()
        loss.backward()
        name = "softacc%d" % i
        arrays += [
            (name + "_meta", [n, k, weight, int(has_w)]),
            (name + "_logits", z32.reshape(-1).tolist()),
            (name + "_targets", t32.reshape(-1).tolist()),
            (name + "_weights", w32.tolist()),
            (name + "_loss", [loss.item()]),
            (name + "_grad", z.grad.reshape(-1).tolist()),
        ]
    for i, (n, k, t, flags, weight, has_w, zeros) in enumerate(KD_CASES):
        zs32 = f32_logits(gen, n, k, 1.5)
        zt32 = f32_logits(gen, n, k, 3.0)
        w32 = f32_row_weights(gen, n)
        if flags & TEACHER_PROBS:
            p = F.softmax(zt32.double(), dim=1)
            if zeros:
                p[:, 1] = 0.0
                p = p / p.sum(1, keepdim=True)
            teacher32 = p.float()
            q = soften(teacher32.double(), t)
        else:
            teacher32 = zt32
            q = F.softmax(zt32.double() / t, dim=1)
        f = 1.0 if flags & NO_T_SQUARED else t * t
        zs = zs32.double().requires_grad_(True)
        w = w32.double() if has_w else torch.ones(n, dtype=torch.float64)
        loss = weight * f * (w * kd_terms(zs, q, t)).mean()
        loss.backward()
        name = "kd%d" % i
        arrays += [
            (name + "_meta", [n, k, t, flags, weight, int(has_w)]),
            (name + "_student", zs32.reshape(-1).tolist()),
            (name + "_teacher", teacher32.reshape(-1).tolist()),
            (name + "_weights", w32.tolist()),
            (name + "_loss", [loss.item()]),
            (name + "_grad", zs.grad.reshape(-1).tolist()),
        ]
    # Distillation (alpha KD + (1 - alpha) CE) and LwF (CE + lambda KD
    # without T^2), each on one batch of logits.
    for i, (n, k, t, coef) in enumerate([(4, 6, 4.0, 0.7), (5, 4, 2.0, 1.5)]):
        z32 = f32_logits(gen, n, k, 2.0)
        zt32 = f32_logits(gen, n, k, 3.0)
        y = torch.randint(0, k, (n,), generator=gen)
        g0 = f32_logits(gen, n, k, 0.1)
        z = z32.double().requires_grad_(True)
        q = F.softmax(zt32.double() / t, dim=1)
        if i == 0:
            loss_a = coef * t * t * kd_terms(z, q, t).mean()
            loss_b = (1.0 - coef) * F.cross_entropy(z, y)
        else:
            loss_a = F.cross_entropy(z, y)
            loss_b = coef * kd_terms(z, q, t).mean()
        (loss_a + loss_b).backward()
        name = "accum%d" % i
        arrays += [
            (name + "_meta", [n, k, t, coef]),
            (name + "_logits", z32.reshape(-1).tolist()),
            (name + "_teacher", zt32.reshape(-1).tolist()),
            (name + "_labels", y.tolist()),
            (name + "_grad0", g0.reshape(-1).tolist()),
            (name + "_loss_a", [loss_a.item()]),
            (name + "_loss_b", [loss_b.item()]),
            (name + "_grad", (g0.double() + z.grad).reshape(-1).tolist()),
        ]
    # FixMatch on one forward of L labeled and U unlabeled images: pseudo
    # labels from the weak view's softmax where it reaches tau = 0.7.
    nl, nu, k, lam = 2, 8, 5, 1.0
    z32 = f32_logits(gen, nl + nu, k, 2.0)
    weak = F.softmax(f32_logits(gen, nu, k, 3.0).double(), dim=1)
    conf, pseudo_u = weak.max(1)
    mask_u = (conf >= 0.7).double()
    y_l = torch.randint(0, k, (nl,), generator=gen)
    g0 = f32_logits(gen, nl + nu, k, 0.1)
    z = z32.double().requires_grad_(True)
    loss_a = F.cross_entropy(z[:nl], y_l)
    loss_b = lam * (mask_u * F.cross_entropy(z[nl:], pseudo_u, reduction="none")).mean()
    (loss_a + loss_b).backward()
    minus = [-1] * nl
    arrays += [
        ("accum2_meta", [nl, nu, k, lam]),
        ("accum2_logits", z32.reshape(-1).tolist()),
        ("accum2_labels", y_l.tolist() + [-1] * nu),
        ("accum2_pseudo", minus + pseudo_u.tolist()),
        ("accum2_mask", [0.0] * nl + mask_u.tolist()),
        ("accum2_grad0", g0.reshape(-1).tolist()),
        ("accum2_loss_a", [loss_a.item()]),
        ("accum2_loss_b", [loss_b.item()]),
        ("accum2_grad", (g0.double() + z.grad).reshape(-1).tolist()),
    ]
    return arrays


def write(file, arrays):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), file)
    with open(out, "w") as f:
        for name, values in arrays:
            f.write("%s %d\n" % (name, len(values)))
            for v in values:
                f.write("%.17g\n" % v)


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
    write("loss_golden.txt", arrays)
    # Drawn after the cases above, so that adding these left them as they were.
    write("loss_acc_golden.txt", acc_arrays(gen))


if __name__ == "__main__":
    main()
