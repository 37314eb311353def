"""Shared pieces of the PyTorch reference benchmarks: the fmnist-cnn network
(SPEC section 5), the FMNIST-1k data, thread setup and JSON output."""

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
