"""Single-image augmentation ops (include/del/augment.h) on uint8 [H, W, C] images.

Every C call `del_image_<op>(dst, src, ...)` appears here as
`<op>(src, *args, out=None, size=None)`: it returns `out`, or a new uint8
tensor of src's shape, or of `size` = (h, w) for ops whose output size may
differ (crop, pad_crop, affine, perspective). The wrappers are made from the
generated declarations, so an op added to the header is here after
`make python-gen`. `interp` arguments take "nearest", "bilinear" or the
DEL_INTERP_* values; matrix arguments take a sequence of floats.
"""

import ctypes
import os

from . import _ffi
from ._lib import Handle, c_array, check, invalid, lib, new_handle
from .tensor import Tensor, as_tensor

_INTERP = {"nearest": _ffi.DEL_INTERP_NEAREST, "bilinear": _ffi.DEL_INTERP_BILINEAR}
_OPS = []


def _convert(name, argtype, pname, value):
    # Enums are plain c_int in the declarations, so the parameter name tells.
    if pname == "interp":
        code = _INTERP.get(value, value)
        if code not in _INTERP.values():
            raise invalid("%s: '%s' must be 'nearest' or 'bilinear', got %r" % (name, pname, value))
        return code
    if argtype == ctypes.POINTER(ctypes.c_float):
        return c_array(ctypes.c_float, value, "%s: '%s'" % (name, pname))
    return value


def _make_op(cname, params):
    name = cname[len("del_image_"):]
    extra = params[2:]

    def op(src, *args, out=None, size=None):
        src = as_tensor(src)
        if len(args) != len(extra):
            raise TypeError("%s() takes src and %d more arguments (%s), got %d"
                            % (name, len(extra), ", ".join(p[1] for p in extra), len(args)))
        if out is None:
            shape = src.shape
            if size is not None:
                if len(shape) != 3:
                    raise invalid("%s: 'src' must be [H, W, C], got %s" % (name, shape))
                shape = (int(size[0]), int(size[1]), shape[2])
            out = Tensor.zeros(shape, "uint8")
        conv = [_convert(cname, t, p, v) for (t, p), v in zip(extra, args)]
        check(getattr(lib, cname)(out._h, src._h, *conv))
        return out

    op.__name__ = name
    op.__qualname__ = name
    op.__doc__ = "%s(src, %s, out=None, size=None): del_image_%s." % (
        name, ", ".join(p[1] for p in extra), name)
    return name, op


for _cname, (_restype, _params) in _ffi.FUNCTIONS.items():
    if _cname.startswith("del_image_") and [p[1] for p in _params[:2]] == ["dst", "src"]:
        _name, _op = _make_op(_cname, _params)
        globals()[_name] = _op
        _OPS.append(_name)


def write_png(img, path):
    """Writes a uint8 [H, W, 1 or 3] image to path as an 8-bit PNG (atomically)."""
    img = as_tensor(img)
    check(lib.del_image_write_png(img._h, os.fsencode(path)))


def grid_size(n, height, width, cols=8, pad=2):
    """(height, width) of the grid that grid() makes of n images of
    height x width pixels, cols per row, pad pixels between and around them."""
    gh, gw = ctypes.c_int(), ctypes.c_int()
    check(lib.del_image_grid_size(int(n), int(height), int(width), int(cols), int(pad),
                                  ctypes.byref(gh), ctypes.byref(gw)))
    return gh.value, gw.value


def grid(images, cols=8, pad=2, fill=0, out=None):
    """Tiles uint8 images [N, H, W, C] (a Tensor, or a buffer such as
    Dataset.images or Tensor.memoryview()) row by row into one uint8 image
    [H', W', C], cols per row, with pad pixels of value fill between and
    around them; returns it (or out)."""
    images = as_tensor(images)
    if out is None:
        shape = images.shape
        if len(shape) != 4:
            raise invalid("grid: 'images' must be uint8 [N, H, W, C], got shape %s" % (shape,))
        gh, gw = ctypes.c_int(), ctypes.c_int()
        if lib.del_image_grid_size(int(shape[0]), int(shape[1]), int(shape[2]), int(cols), int(pad),
                                   ctypes.byref(gh), ctypes.byref(gw)) == 0:
            out = Tensor.zeros((gh.value, gw.value, shape[3]), "uint8")
        else:
            # The same cols and pad make del_image_grid fail below, with
            # its own message (not the size query's).
            out = Tensor.zeros((1, 1, 1), "uint8")
    check(lib.del_image_grid(out._h, images._h, int(cols), int(pad), int(fill)))
    return out


def _from_points(cname, n_pts, n_out, src_pts, dst_pts):
    s = c_array(ctypes.c_float, src_pts, "%s: 'src_pts'" % cname)
    d = c_array(ctypes.c_float, dst_pts, "%s: 'dst_pts'" % cname)
    if len(s) != n_pts or len(d) != n_pts:
        raise invalid("%s: 'src_pts' and 'dst_pts' must hold %d values each" % (cname, n_pts))
    m = (ctypes.c_float * n_out)()
    check(getattr(lib, cname)(m, s, d))
    return list(m)


def affine_from_points(src_pts, dst_pts):
    """The 2x3 affine map (6 floats) taking 3 points (x0, y0, x1, y1, x2, y2) to 3 points."""
    return _from_points("del_affine_from_points", 6, 6, src_pts, dst_pts)


def perspective_from_points(src_pts, dst_pts):
    """The 3x3 homography (9 floats) taking 4 points (8 values) to 4 points."""
    return _from_points("del_perspective_from_points", 8, 9, src_pts, dst_pts)


def _interp_code(interp, where):
    code = _INTERP.get(interp, interp)
    if code not in _INTERP.values():
        raise invalid("%s: 'interp' must be 'nearest' or 'bilinear', got %r" % (where, interp))
    return code


class Augment(Handle):
    """An augmentation pipeline (del_augment): image steps run per image with
    a random stream derived from (seed, epoch, image index), batch steps
    (CutMix, MixUp) on the whole batch. The add_* methods return self."""

    _free_name = "del_augment_free"

    def __init__(self, seed=0):
        super().__init__(new_handle(lib.del_augment_new))
        self.set_seed(seed)

    def set_seed(self, seed):
        check(lib.del_augment_set_seed(self._h, ctypes.c_uint64(int(seed))))
        return self

    def set_interp(self, interp="nearest", fill=0):
        """Interpolation and fill of the geometric steps added after this call."""
        check(lib.del_augment_set_interp(self._h, _interp_code(interp, "Augment.set_interp"),
                                         int(fill)))
        return self

    def add_op(self, name, p=1.0, lo=0.0, hi=None):
        """Op `name` with probability p at a magnitude uniform in [lo, hi]."""
        check(lib.del_augment_add_op(self._h, name.encode("utf-8"), float(p), float(lo),
                                     float(lo if hi is None else hi)))
        return self

    def add_random_crop(self, size_h, size_w=None, pad=0, fill=0):
        check(lib.del_augment_add_random_crop(self._h, int(size_h),
                                              int(size_h if size_w is None else size_w),
                                              int(pad), int(fill)))
        return self

    def add_flip_h(self, p=0.5):
        check(lib.del_augment_add_flip_h(self._h, float(p)))
        return self

    def add_randaugment(self, n=2, m=9):
        check(lib.del_augment_add_randaugment(self._h, int(n), int(m)))
        return self

    def add_trivialaugment(self):
        check(lib.del_augment_add_trivialaugment(self._h))
        return self

    def add_cutout(self, p, size, fill=0):
        check(lib.del_augment_add_cutout(self._h, float(p), int(size), int(fill)))
        return self

    def add_cutmix(self, p=0.5, alpha=1.0):
        check(lib.del_augment_add_cutmix(self._h, float(p), float(alpha)))
        return self

    def add_mixup(self, p=1.0, alpha=0.2):
        check(lib.del_augment_add_mixup(self._h, float(p), float(alpha)))
        return self

    @property
    def num_steps(self):
        return lib.del_augment_num_steps(self._h)

    def output_size(self, height, width):
        """(height, width) of the images produced from height x width inputs."""
        oh, ow = ctypes.c_int(), ctypes.c_int()
        check(lib.del_augment_output_size(self._h, int(height), int(width), ctypes.byref(oh),
                                          ctypes.byref(ow)))
        return oh.value, ow.value

    def image(self, src, epoch=0, index=0, out=None):
        """Runs the image steps on one uint8 [H, W, C] image; returns the result."""
        src = as_tensor(src)
        if out is None:
            if len(src.shape) != 3:
                raise invalid("Augment.image: 'src' must be uint8 [H, W, C], got shape %s"
                              % (src.shape,))
            oh, ow = self.output_size(src.shape[0], src.shape[1])
            out = Tensor.zeros((oh, ow, src.shape[2]), "uint8")
        check(lib.del_augment_image(self._h, out._h, src._h, ctypes.c_uint64(int(epoch)),
                                    int(index)))
        return out

    def batch(self, dataset, indices, epoch=0, batch_no=0, mean=None, std=None,
              num_classes=None, epochs=None, targets=None):
        """(x, soft_labels): x float32 [n, C, H', W'] augmented and normalised
        (default Fashion-MNIST mean/std); soft_labels float32 [n, num_classes]
        mixed one-hot labels, or None when num_classes is None.
        epochs: one epoch per image (its stream; `epoch` keys the batch
        steps). targets: a float32 Tensor [n, num_classes] of label rows to
        mix instead of the dataset's labels (unlabeled images allowed)."""
        from .data import FMNIST_MEAN, FMNIST_STD
        hh, ww, cc = dataset.shape
        idx = c_array(ctypes.c_int64, indices, "Augment.batch: 'indices'")
        n = len(idx)
        if n < 1:
            raise invalid("Augment.batch: 'indices' must not be empty")
        mean = FMNIST_MEAN if mean is None else mean
        std = FMNIST_STD if std is None else std
        mean = [mean] * cc if isinstance(mean, (int, float)) else mean
        std = [std] * cc if isinstance(std, (int, float)) else std
        m = c_array(ctypes.c_float, mean, "Augment.batch: 'mean'")
        s = c_array(ctypes.c_float, std, "Augment.batch: 'std'")
        if len(m) != cc or len(s) != cc:
            raise invalid("Augment.batch: 'mean' and 'std' must hold %d values" % cc)
        oh, ow = self.output_size(hh, ww)
        x = Tensor.zeros((n, cc, oh, ow), "float32")
        y = None if num_classes is None else Tensor.zeros((n, int(num_classes)), "float32")
        if epochs is None and targets is None:
            check(lib.del_augment_batch(self._h, dataset._h, idx, n, ctypes.c_uint64(int(epoch)),
                                        ctypes.c_uint64(int(batch_no)), m, s, x._h,
                                        None if y is None else y._h,
                                        0 if num_classes is None else int(num_classes)))
            return x, y
        if targets is not None and num_classes is None:
            num_classes = targets.shape[1] if len(targets.shape) == 2 else 0
            y = Tensor.zeros((n, int(num_classes)), "float32")
        ep = None
        if epochs is not None:
            ep = c_array(ctypes.c_int64, epochs, "Augment.batch: 'epochs'")
            if len(ep) != n:
                raise invalid("Augment.batch: 'epochs' must hold one epoch per index (%d), got %d"
                              % (n, len(ep)))
        check(lib.del_augment_batch_epochs(self._h, dataset._h, idx, ep, n,
                                           ctypes.c_uint64(int(epoch)),
                                           ctypes.c_uint64(int(batch_no)), m, s, x._h,
                                           None if targets is None else targets._h,
                                           None if y is None else y._h,
                                           0 if num_classes is None else int(num_classes)))
        return x, y


__all__ = _OPS + ["affine_from_points", "perspective_from_points", "write_png", "grid",
                  "grid_size", "Augment"]
