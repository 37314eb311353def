"""del_dataset: uint8 images (N x H x W x C) with int32 labels (-1 = unlabeled)."""

import ctypes
import os

from . import _ffi
from ._lib import Handle, c_array, check, invalid, lib, new_handle, view_memory
from .tensor import Tensor

__all__ = ["Dataset", "FMNIST_MEAN", "FMNIST_STD"]

FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530

_SPLITS = {"train": _ffi.DEL_SPLIT_TRAIN, "test": _ffi.DEL_SPLIT_TEST,
           _ffi.DEL_SPLIT_TRAIN: _ffi.DEL_SPLIT_TRAIN, _ffi.DEL_SPLIT_TEST: _ffi.DEL_SPLIT_TEST}


def _path(p):
    return None if p is None else os.fsencode(p)


def _readable_bytes(obj, what):
    try:
        mv = memoryview(obj)
    except TypeError:
        raise invalid("Dataset.from_arrays: '%s' must be bytes-like, got %s"
                      % (what, type(obj).__name__))
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    return mv


class Dataset(Handle):
    """A set of images and labels; it does not change after creation,
    except for its soft labels (set_soft_labels)."""

    _free_name = "del_dataset_free"

    @classmethod
    def load_idx(cls, images_path, labels_path=None):
        """Loads IDX files (plain or gzip); labels_path None: all labels -1."""
        return cls(new_handle(lib.del_dataset_load_idx, _path(images_path), _path(labels_path)))

    @classmethod
    def fashion_mnist(cls, split="train", dir=None):
        """Loads a Fashion-MNIST split ("train" or "test") from dir (default:
        Debian's /usr/share/datasets/fashion-mnist)."""
        code = _SPLITS.get(split, split)
        if not isinstance(code, int):
            raise invalid("Dataset.fashion_mnist: 'split' must be 'train' or 'test', got %r"
                          % (split,))
        return cls(new_handle(lib.del_dataset_load_fashion_mnist, _path(dir), code))

    @classmethod
    def cifar10(cls, path):
        """Loads one CIFAR-10 binary batch file (data_batch_N.bin or
        test_batch.bin, plain or gzip): 32x32x3 HWC images, labels 0..9."""
        return cls(new_handle(lib.del_dataset_load_cifar10, _path(path)))

    @classmethod
    def cifar10_dir(cls, dir, split="train"):
        """Loads a CIFAR-10 split from the cifar-10-batches-bin folder:
        "train" (data_batch_1..5, 50,000 images) or "test" (10,000)."""
        code = _SPLITS.get(split, split)
        if not isinstance(code, int):
            raise invalid("Dataset.cifar10_dir: 'split' must be 'train' or 'test', got %r"
                          % (split,))
        return cls(new_handle(lib.del_dataset_load_cifar10_dir, _path(dir), code))

    @classmethod
    def from_arrays(cls, images, labels, n, height, width, channels=1):
        """Copies n images (bytes-like, n*height*width*channels bytes, HWC per
        image) and n labels (a sequence or int32 buffer; None: all -1)."""
        mv = _readable_bytes(images, "images")
        need = int(n) * int(height) * int(width) * int(channels)
        if n >= 1 and height >= 1 and width >= 1 and channels >= 1 and mv.nbytes != need:
            raise invalid("Dataset.from_arrays: 'images' holds %d bytes, expected "
                          "n*height*width*channels = %d" % (mv.nbytes, need))
        img = (ctypes.c_uint8 * max(mv.nbytes, 1)).from_buffer_copy(mv.cast("B")) \
            if mv.nbytes else None
        lab = None
        if labels is not None:
            lab = c_array(ctypes.c_int32, labels, "Dataset.from_arrays: 'labels'")
            if len(lab) != n:
                raise invalid("Dataset.from_arrays: 'labels' holds %d values, expected n = %d"
                              % (len(lab), n))
        return cls(new_handle(lib.del_dataset_from_arrays, img, lab, int(n),
                              int(height), int(width), int(channels)))

    def __len__(self):
        return lib.del_dataset_size(self._h)

    @property
    def size(self):
        return len(self)

    @property
    def shape(self):
        """(height, width, channels) of one image."""
        h = self._h
        return (lib.del_dataset_height(h), lib.del_dataset_width(h), lib.del_dataset_channels(h))

    @property
    def num_classes(self):
        return lib.del_dataset_num_classes(self._h)

    @property
    def labels(self):
        """The labels as a read-only int32 memoryview (no copy)."""
        h = self._h
        n = lib.del_dataset_size(h)
        ptr = ctypes.cast(lib.del_dataset_labels(h), ctypes.c_void_p).value
        return view_memory(ptr, 4 * n, "i", (n,), self, readonly=True)

    @property
    def images(self):
        """The images as a read-only uint8 memoryview of shape (N, H, W, C)."""
        h = self._h
        hh, ww, cc = self.shape
        n = lib.del_dataset_size(h)
        ptr = ctypes.cast(lib.del_dataset_images(h), ctypes.c_void_p).value
        return view_memory(ptr, n * hh * ww * cc, "B", (n, hh, ww, cc), self, readonly=True)

    def image(self, i):
        """A copy of image i as a uint8 Tensor [H, W, C] (for libdel.image ops)."""
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise invalid("Dataset.image: 'i' must be in -%d..%d, got %d" % (n, n - 1, i))
        i %= n
        hh, ww, cc = self.shape
        size = hh * ww * cc
        ptr = ctypes.cast(lib.del_dataset_images(self._h), ctypes.c_void_p).value + i * size
        return Tensor.from_buffer(bytes((ctypes.c_char * size).from_address(ptr)),
                                  shape=(hh, ww, cc))

    def set_soft_labels(self, soft):
        """Sets the soft labels to a copy of soft (a float32 Tensor or buffer of
        shape (N, K): one probability vector per image, each value finite
        and >= 0, each row summing to 1 within 1e-3); None removes them.
        Subsets and splits carry them."""
        if soft is None:
            check(lib.del_dataset_set_soft_labels(self._h, None))
            return
        t = soft if isinstance(soft, Tensor) else Tensor.from_buffer(soft)
        check(lib.del_dataset_set_soft_labels(self._h, t._h))

    @property
    def soft_labels(self):
        """A copy of the soft labels as a float32 Tensor (N, K), or None."""
        h = lib.del_dataset_soft_labels(self._h)
        return None if not h else Tensor(new_handle(lib.del_tensor_copy, h))

    @property
    def num_soft_classes(self):
        """K of the soft labels (0 without them)."""
        return lib.del_dataset_num_soft_classes(self._h)

    def soft_batch(self, indices):
        """The soft labels of the images at indices, a float32 Tensor (n, K)."""
        idx = c_array(ctypes.c_int64, indices, "Dataset.soft_batch: 'indices'")
        out = Tensor.zeros((max(len(idx), 1), max(self.num_soft_classes, 1)), "float32")
        check(lib.del_dataset_soft_batch(self._h, idx, len(idx), out._h))
        return out

    def split_per_class(self, per_class):
        """(labeled, unlabeled): the first per_class images of each class,
        and all the others with their labels set to -1."""
        a, b = ctypes.c_void_p(), ctypes.c_void_p()
        check(lib.del_dataset_split_per_class(ctypes.byref(a), ctypes.byref(b), self._h,
                                              int(per_class)))
        return Dataset(a.value), Dataset(b.value)

    def subset(self, indices):
        """A copy of the images at indices (in order; repeats allowed)."""
        idx = c_array(ctypes.c_int64, indices, "Dataset.subset: 'indices'")
        return Dataset(new_handle(lib.del_dataset_subset, self._h, idx, len(idx)))

    def batch(self, indices, mean=None, std=None):
        """(x, y): x float32 [n, C, H, W] = (image/255 - mean) / std, y int32
        [n] labels. mean/std: one value per channel (default Fashion-MNIST's)."""
        hh, ww, cc = self.shape
        idx = c_array(ctypes.c_int64, indices, "Dataset.batch: 'indices'")
        n = len(idx)
        if n < 1:
            raise invalid("Dataset.batch: 'indices' must not be empty")
        mean = [FMNIST_MEAN] * cc if mean is None else mean
        std = [FMNIST_STD] * cc if std is None else std
        if isinstance(mean, (int, float)):
            mean = [mean] * cc
        if isinstance(std, (int, float)):
            std = [std] * cc
        m = c_array(ctypes.c_float, mean, "Dataset.batch: 'mean'")
        s = c_array(ctypes.c_float, std, "Dataset.batch: 'std'")
        if len(m) != cc or len(s) != cc:
            raise invalid("Dataset.batch: 'mean' and 'std' must hold %d values (one per channel)"
                          % cc)
        x = Tensor.zeros((n, cc, hh, ww), "float32")
        y = Tensor.zeros((n,), "int32")
        check(lib.del_dataset_batch(self._h, idx, n, m, s, x._h, y._h))
        return x, y

    def __repr__(self):
        if self.closed:
            return "Dataset(<closed>)"
        return "Dataset(n=%d, shape=%s, classes=%d)" % (len(self), self.shape, self.num_classes)
