"""Shared set-up for the Python tests: makes the in-tree package importable
when the tests are run without PYTHONPATH (make sets it)."""

import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDINGS = os.path.join(ROOT, "bindings", "python")
if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)

try:
    import numpy  # noqa: F401
    HAVE_NUMPY = True
except ImportError:
    HAVE_NUMPY = False

# make test-python sets DEL_TEST_NUMPY=1 for the interpreter that must have
# numpy (the Makefile's NUMPY_PYTHON, Debian's /usr/bin/python3): there the
# numpy tests run, and fail, without numpy, so the numpy half of the tests
# cannot vanish into a skip. Elsewhere they are skipped without numpy.
NUMPY_REQUIRED = os.environ.get("DEL_TEST_NUMPY") == "1"


def needs_numpy(cls):
    """Class decorator for tests that use numpy: as is when numpy imports,
    failing in setUp when numpy is required but missing, skipped otherwise."""
    if HAVE_NUMPY:
        return cls
    if not NUMPY_REQUIRED:
        return unittest.skip("numpy not installed")(cls)

    def setUp(self):
        self.fail("numpy does not import in %s, the interpreter make test-python runs "
                  "with DEL_TEST_NUMPY=1 (NUMPY_PYTHON); install python3-numpy "
                  "(make deps)" % sys.executable)
    cls.setUp = setUp
    return cls

FMNIST_DIR = os.environ.get("DEL_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
HAVE_FMNIST = os.path.exists(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz")) or \
    os.path.exists(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte"))
