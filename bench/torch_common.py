"""Shared pieces of the PyTorch reference benchmarks: the fmnist-cnn network
(SPEC section 5) and ResNet-20 as libdel builds them, the FMNIST-1k data, thread setup and JSON output."""

import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
REFERENCE_NAME = "pytorch " + ".".join(torch.__version__.split(".")[:2])


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


def set_threads(n):
    torch.set_num_threads(n)
    # Only settable before the first parallel region runs; a second call
    # in the same process raises, which is harmless here.
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError as exc:
        log("torch: set_num_interop_threads(%d) not applied: %s" % (n, exc))
    if torch.get_num_threads() != n:
        log("torch: asked for %d threads, got %d" % (n, torch.get_num_threads()))


def fmnist_cnn(num_classes=10):
    """The SPEC's reference CNN, layer for layer as libdel's preset."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(128, num_classes))


class BasicBlock(nn.Module):
    """libdel's residual layer: relu(BN(conv3x3(relu(BN(conv3x3(x, s))))) +
    shortcut(x)), convs without bias, shortcut x or BN(conv1x1(x, s)) when
    the shape changes (option B)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


RESNET20_PARAMS = 272474  # libdel's preset on 3x32x32, 10 classes


def resnet20(num_classes=10):
    """He et al.'s CIFAR ResNet-20 as libdel's "resnet20" preset: stem
    conv3x3 16 BN ReLU, 3 stages x 3 blocks of 16/32/64 channels (stride 2
    at the first block of stages 2 and 3), global average pooling, linear."""
    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for b in range(3):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    model = nn.Sequential(*layers)
    if num_classes == 10:
        n = num_params(model)
        assert n == RESNET20_PARAMS, "torch resnet20 has %d parameters, libdel's %d" % (n, RESNET20_PARAMS)
    return model


def num_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# name -> (constructor, input shape of one image)
MODELS = {"fmnist-cnn": (fmnist_cnn, (1, 28, 28)), "resnet20": (resnet20, (3, 32, 32))}


def sgd(model, lr=0.05):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9,
                           nesterov=True, weight_decay=5e-4)


def _read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return body.reshape(dims)


def load_fmnist(split, directory=FMNIST_DIR):
    """(images uint8 [N, 28, 28], labels int64 [N]) of 'train' or 't10k'."""
    def path(kind):
        p = os.path.join(directory, "%s-%s-ubyte" % (split, kind))
        return p + ".gz" if os.path.exists(p + ".gz") else p

    return _read_idx(path("images-idx3")), _read_idx(path("labels-idx1")).astype(np.int64)


def first_per_class(labels, per_class):
    """Indices of the first per_class images of each class, in file order."""
    seen = {}
    keep = []
    for i, c in enumerate(labels.tolist()):
        if seen.get(c, 0) < per_class:
            seen[c] = seen.get(c, 0) + 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def normalise(images):
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - MEAN) / STD).unsqueeze(1).contiguous()
