"""Shared set-up for the Python tests: makes the in-tree package importable
when the tests are run without PYTHONPATH (make sets it)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDINGS = os.path.join(ROOT, "bindings", "python")
if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)

try:
    import numpy  # noqa: F401
    HAVE_NUMPY = True
except ImportError:
    HAVE_NUMPY = False

FMNIST_DIR = os.environ.get("DEL_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
HAVE_FMNIST = os.path.exists(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz")) or \
    os.path.exists(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte"))
