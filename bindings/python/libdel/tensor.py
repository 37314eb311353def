"""del_tensor: n-d arrays of float32, uint8 or int32."""

import ctypes
import os

from . import _ffi
from ._lib import Handle, address_of, check, invalid, lib, new_handle, view_memory

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

__all__ = ["Tensor", "DTYPES"]

# name -> (del_dtype, memoryview format, ctypes type, item size)
DTYPES = {
    "float32": (_ffi.DEL_DTYPE_F32, "f", ctypes.c_float, 4),
    "uint8": (_ffi.DEL_DTYPE_U8, "B", ctypes.c_uint8, 1),
    "int32": (_ffi.DEL_DTYPE_I32, "i", ctypes.c_int32, 4),
}
_BY_CODE = {v[0]: k for k, v in DTYPES.items()}


def _dtype_name(dtype):
    if dtype is None:
        return None
    name = getattr(dtype, "name", dtype)  # numpy dtypes and scalar types
    if isinstance(dtype, type) and _np is not None:
        name = _np.dtype(dtype).name
    aliases = {"f32": "float32", "float": "float32", "u8": "uint8", "i32": "int32",
               _ffi.DEL_DTYPE_F32: "float32", _ffi.DEL_DTYPE_U8: "uint8",
               _ffi.DEL_DTYPE_I32: "int32"}
    name = aliases.get(name, name)
    if name not in DTYPES:
        raise invalid("Tensor: 'dtype' must be one of float32, uint8, int32, got %r" % (dtype,))
    return name


def _dtype_of_buffer(mv):
    fmt = mv.format.lstrip("@=<")
    if fmt == "f" and mv.itemsize == 4:
        return "float32"
    if fmt in ("B", "c") and mv.itemsize == 1:
        return "uint8"
    if fmt in ("i", "l") and mv.itemsize == 4:
        return "int32"
    raise invalid("Tensor: cannot infer the dtype of a buffer of format %r (item size %d); "
                  "use float32, uint8 or int32 data or pass dtype" % (mv.format, mv.itemsize))


def _shape_array(shape):
    shape = tuple(int(s) for s in shape)
    return len(shape), (ctypes.c_int64 * max(len(shape), 1))(*shape)


class Tensor(Handle):
    """An n-d array (1 to 4 dims). Either owns its memory, wraps a Python
    buffer without copying (keeping the buffer alive), or is a view borrowed
    from a model (valid until that model's next forward)."""

    _free_name = "del_tensor_free"

    def __init__(self, handle, keep=None, owned=True):
        super().__init__(handle)
        self._keep = keep
        if not owned:
            self._free_name = None

    @classmethod
    def zeros(cls, shape, dtype="float32"):
        """A zero-filled tensor that owns its memory."""
        name = _dtype_name(dtype)
        ndim, arr = _shape_array(shape)
        return cls(new_handle(lib.del_tensor_new, DTYPES[name][0], ndim, arr))

    @classmethod
    def from_buffer(cls, obj, shape=None, dtype=None, copy=None):
        """A tensor over a buffer (bytearray, array.array, memoryview, numpy
        array...). copy=None wraps writable C-contiguous buffers without
        copying and copies the others; copy=False insists on wrapping;
        copy=True always copies. shape defaults to the buffer's shape and
        dtype to its item format."""
        try:
            mv = memoryview(obj)
        except TypeError:
            raise invalid("Tensor.from_buffer: 'obj' must support the buffer protocol, got %s"
                          % type(obj).__name__)
        raw = mv.format.lstrip("@=<") in ("B", "c") and mv.itemsize == 1
        if dtype is None:
            name = _dtype_of_buffer(mv)
        else:
            name = _dtype_name(dtype)
            # Raw bytes may be reinterpreted; typed buffers must match.
            if not raw and _dtype_of_buffer(mv) != name:
                raise invalid("Tensor.from_buffer: the buffer holds %s items, not %s"
                              % (_dtype_of_buffer(mv), name))
        if shape is None:
            shape = mv.shape if mv.ndim > 0 else (1,)
            if raw and name != "uint8":
                shape = (mv.nbytes // DTYPES[name][3],)
        ndim, arr = _shape_array(shape)
        numel = 1
        for s in shape:
            numel *= int(s)
        if numel * DTYPES[name][3] != mv.nbytes:
            raise invalid("Tensor.from_buffer: the buffer holds %d bytes but shape %s of %s "
                          "needs %d" % (mv.nbytes, tuple(shape), name, numel * DTYPES[name][3]))
        code = DTYPES[name][0]
        if copy is not True:
            address, keep = address_of(mv)
            if address is not None:
                return cls(new_handle(lib.del_tensor_wrap, code, ndim, arr,
                                      ctypes.c_void_p(address)), keep=(keep, obj))
            if copy is False:
                raise invalid("Tensor.from_buffer: cannot wrap without a copy: the buffer "
                              "is read-only or not C-contiguous")
        t = cls(new_handle(lib.del_tensor_new, code, ndim, arr))
        if not mv.c_contiguous:
            mv = memoryview(mv.tobytes())
        src = (ctypes.c_char * mv.nbytes).from_buffer_copy(mv)
        check(lib.del_tensor_copy_from(t._h, src, mv.nbytes))
        return t

    @classmethod
    def from_list(cls, values, shape=None, dtype="float32"):
        """An owning tensor copied from a (nested) list of numbers."""
        name = _dtype_name(dtype)
        flat = []
        dims = []

        def walk(v, depth):
            if isinstance(v, (list, tuple)):
                if len(dims) <= depth:
                    dims.append(len(v))
                elif dims[depth] != len(v):
                    raise invalid("Tensor.from_list: ragged nested list")
                for x in v:
                    walk(x, depth + 1)
            else:
                if depth != len(dims):
                    raise invalid("Tensor.from_list: ragged nested list")
                flat.append(v)

        walk(values, 0)
        if not flat:
            raise invalid("Tensor.from_list: 'values' must not be empty")
        ctype = DTYPES[name][2]
        try:
            data = (ctype * len(flat))(*flat)
        except TypeError:
            raise invalid("Tensor.from_list: 'values' must hold numbers for dtype %s" % name)
        t = cls.zeros(shape if shape is not None else (dims or [len(flat)]), name)
        check(lib.del_tensor_copy_from(t._h, data, ctypes.sizeof(data)))
        return t

    @classmethod
    def load(cls, path):
        """Loads a tensor saved by save() (or del_tensor_save): an owning
        tensor of the saved dtype, shape and elements."""
        return cls(new_handle(lib.del_tensor_load, os.fsencode(path)))

    @classmethod
    def from_bytes(cls, data):
        """Loads a tensor from the bytes of a tensor file (to_bytes())."""
        mv = memoryview(data).cast("B")
        buf = (ctypes.c_char * max(mv.nbytes, 1)).from_buffer_copy(mv) if mv.nbytes else None
        return cls(new_handle(lib.del_tensor_load_buffer, buf, mv.nbytes))

    def save(self, path, allow_nonfinite=False):
        """Saves the tensor to a tensor file at path (written to a temp file,
        then renamed; a symbolic link is saved through). A float32 tensor
        with NaN or infinite values raises NumericError unless
        allow_nonfinite is true."""
        if allow_nonfinite:
            check(lib.del_tensor_save_flags(self._h, os.fsencode(path), _ffi.DEL_SAVE_ALLOW_NONFINITE))
        else:
            check(lib.del_tensor_save(self._h, os.fsencode(path)))

    def to_bytes(self, allow_nonfinite=False):
        """The tensor file's bytes (NaN or infinite values: as save())."""
        ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
        if allow_nonfinite:
            check(lib.del_tensor_save_buffer_flags(self._h, ctypes.byref(ptr), ctypes.byref(size),
                                                   _ffi.DEL_SAVE_ALLOW_NONFINITE))
        else:
            check(lib.del_tensor_save_buffer(self._h, ctypes.byref(ptr), ctypes.byref(size)))
        try:
            return ctypes.string_at(ptr, size.value)
        finally:
            lib.del_buffer_free(ptr)

    @property
    def dtype(self):
        return _BY_CODE[lib.del_tensor_dtype(self._h)]

    @property
    def ndim(self):
        return lib.del_tensor_ndim(self._h)

    @property
    def shape(self):
        h = self._h
        return tuple(lib.del_tensor_dim(h, i) for i in range(lib.del_tensor_ndim(h)))

    @property
    def numel(self):
        return lib.del_tensor_numel(self._h)

    @property
    def nbytes(self):
        return lib.del_tensor_nbytes(self._h)

    @property
    def itemsize(self):
        """Bytes per element (4, 1 or 4)."""
        return lib.del_dtype_size(lib.del_tensor_dtype(self._h))

    def __len__(self):
        return self.shape[0]

    def memoryview(self):
        """A writable memoryview of the data (no copy), shaped like the tensor."""
        h = self._h
        return view_memory(lib.del_tensor_data(h), lib.del_tensor_nbytes(h),
                           DTYPES[self.dtype][1], self.shape, self)

    def numpy(self, copy=False):
        """A numpy array over the data (no copy unless copy=True)."""
        if _np is None:
            raise ImportError("Tensor.numpy() needs numpy; use tolist() or memoryview()")
        arr = _np.asarray(self.memoryview())
        return arr.copy() if copy else arr

    def tolist(self):
        return self.memoryview().tolist()

    def tobytes(self):
        """A copy of the data as bytes (C order)."""
        h = self._h
        buf = ctypes.create_string_buffer(max(lib.del_tensor_nbytes(h), 1))
        check(lib.del_tensor_copy_to(h, buf, lib.del_tensor_nbytes(h)))
        return buf.raw[:lib.del_tensor_nbytes(h)]

    def copy(self):
        """An owning deep copy."""
        return Tensor(new_handle(lib.del_tensor_copy, self._h))

    def reshape(self, shape):
        """Changes the shape in place (same element count); returns self."""
        ndim, arr = _shape_array(shape)
        check(lib.del_tensor_reshape(self._h, ndim, arr))
        return self

    def __repr__(self):
        if self.closed:
            return "Tensor(<closed>)"
        return "Tensor(shape=%s, dtype=%s)" % (self.shape, self.dtype)


def as_tensor(x):
    """x if it is a Tensor, else a Tensor over the buffer x (no copy when possible)."""
    if isinstance(x, Tensor):
        return x
    return Tensor.from_buffer(x)
