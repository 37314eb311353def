"""libdel: data-efficient learning of image classifiers (Python bindings).

A thin ctypes layer over the C library. The declarations in _ffi.py are
generated from include/del.h by bindings/python/gen_ffi.py.

The shared library is found through $LIBDEL_PATH (a file or a folder), then
the repository's lib/libdel.so.0, then the system's libdel.so.0.
Every failing call raises libdel.Error (or a subclass per status) whose
message is the library's del_last_error().
"""

import ctypes

from . import _ffi, image
from ._lib import (Canceled, Error, FileError, FormatError, InvalidArgument, NumericError,
                   OutOfMemory, StateError, check, lib, library_path)
from .image import Augment
from .data import FMNIST_MEAN, FMNIST_STD, Dataset
from .model import Model, cross_entropy, distill_loss, soft_cross_entropy, softmax
from .tensor import Tensor
from .train import (BALANCE_MEAN, Checkpoint, NoisyStudent, Optimizer, Trainer, load_checkpoint,
                    load_checkpoint_bytes, randaugment_search, save_checkpoint, save_checkpoint_bytes,
                    select_pseudo_labels)

__all__ = ["Error", "InvalidArgument", "OutOfMemory", "FileError", "FormatError", "Canceled",
           "StateError", "NumericError", "image", "Augment", "Tensor", "Dataset", "Model", "Optimizer", "Trainer",
           "Checkpoint", "NoisyStudent", "select_pseudo_labels", "BALANCE_MEAN", "randaugment_search",
           "save_checkpoint", "load_checkpoint", "save_checkpoint_bytes", "load_checkpoint_bytes",
           "cross_entropy", "distill_loss", "soft_cross_entropy", "softmax", "set_num_threads",
           "get_num_threads", "cpu_isa", "version", "version_number", "status_str", "last_error",
           "set_last_error", "permutation",
           "library_path", "FMNIST_MEAN", "FMNIST_STD", "FASHION_MNIST_DIR"]

FASHION_MNIST_DIR = _ffi.DEL_FASHION_MNIST_DIR
__version__ = "%d.%d.%d" % (_ffi.DEL_VERSION_MAJOR, _ffi.DEL_VERSION_MINOR,
                            _ffi.DEL_VERSION_PATCH)


def version():
    """The loaded library's version string, e.g. "0.1.0"."""
    return lib.del_version_string().decode()


def version_number():
    """The loaded library's version as MAJOR*10000 + MINOR*100 + PATCH."""
    return lib.del_version_number()


def status_str(status):
    """A short description of a del_status code."""
    return lib.del_status_str(int(status)).decode()


def last_error():
    """The message of the last failure on this thread ("" if none)."""
    return lib.del_last_error().decode("utf-8", "replace")


def set_last_error(status, message):
    """Sets this thread's last-error message (as code built on libdel
    reports a failure the library's way); returns status."""
    return lib.del_set_error(int(status), None if message is None else str(message).encode())


def permutation(n, seed, epoch=0, stream=0):
    """A permutation of range(n) drawn from the stream (seed, epoch, stream),
    as the trainers draw each epoch's batch order (a list of ints)."""
    n = int(n)
    if n < 0:
        raise InvalidArgument("permutation: 'n' must be >= 0, got %d" % n)
    perm = (ctypes.c_int64 * max(n, 1))()
    check(lib.del_permutation(perm, n, ctypes.c_uint64(int(seed)), ctypes.c_uint64(int(epoch)),
                              ctypes.c_uint64(int(stream))))
    return list(perm[:n])


def set_num_threads(n):
    """Sets the number of compute threads (1..256); results do not depend on it."""
    check(lib.del_set_num_threads(int(n)))


def get_num_threads():
    return lib.del_get_num_threads()


def cpu_isa():
    """The instruction set libdel's own SIMD kernels use: "avx512", "avx2"
    or "generic"; the CPU's best, capped by the environment variable
    DEL_CPU_ISA (read once per process, before the library's first use of
    it)."""
    return lib.del_cpu_isa().decode()
