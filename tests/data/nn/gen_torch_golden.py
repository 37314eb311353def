#!/usr/bin/python3
"""Writes torch_convnet.txt: a tiny conv net run by PyTorch, the reference
for tests/unit/nn/test_torch_golden.c.

The net is libdel's spec
    input 2 6 6; conv2d 4 k=3 p=1 bias=0; batchnorm; relu; maxpool 2;
    conv2d 3 k=3 s=2 p=1; relu; flatten; linear 5
with parameters in libdel's order (= PyTorch's named_parameters order).
Recorded: parameters, input, the training-mode output, the gradients of
L = sum(w * y) for a fixed w (parameters and input), and the
evaluation-mode output after that one training step updated the batchnorm
running statistics.

Run with Debian's python3-torch:  /usr/bin/python3 gen_torch_golden.py
Format: for each array a line "name count", then count values, one a line.
"""
import os

import torch
from torch import nn

SPEC = ("input 2 6 6; conv2d 4 k=3 p=1 bias=0; batchnorm; relu; maxpool 2; "
        "conv2d 3 k=3 s=2 p=1; relu; flatten; linear 5")


def main():
    torch.manual_seed(20240611)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4, eps=1e-5, momentum=0.1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 5),
    )
    with torch.no_grad():
        # Non-trivial batchnorm affine parameters.
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
    params = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    x = torch.randn(3, 2, 6, 6, requires_grad=True)
    w = torch.randn(3, 5)
    net.train()
    y = net(x)
    (y * w).sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in net.parameters()])

    net.eval()
    with torch.no_grad():
        y_eval = net(x)

    arrays = [
        ("params", params), ("input", x.detach()), ("grad_output", w),
        ("output_train", y.detach()), ("grads", grads), ("input_grad", x.grad),
        ("output_eval", y_eval),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_convnet.txt")
    with open(out, "w") as f:
        f.write("spec %s\n" % SPEC)
        for name, a in arrays:
            flat = a.reshape(-1).tolist()
            f.write("%s %d\n" % (name, len(flat)))
            for v in flat:
                f.write("%.9g\n" % v)


if __name__ == "__main__":
    main()
