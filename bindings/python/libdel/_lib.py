"""Loading the shared library, status-to-exception mapping, buffer helpers."""

import ctypes
import ctypes.util
import os

from . import _ffi

__all__ = ["Error", "InvalidArgument", "OutOfMemory", "FileError", "FormatError",
           "Canceled", "StateError", "NumericError", "lib", "check", "library_path"]

# C functions deliberately left without a Python wrapper, reachable only as
# libdel.lib.<name>. tests/python/test_api_coverage.py fails for any other
# function of _ffi that the package does not call, so a new C function needs
# a wrapper or an entry here.
RAW_ONLY = frozenset()


class Error(Exception):
    """A libdel call failed. `status` is the del_status code, `message` the
    library's del_last_error() text (or the binding's own message for
    arguments rejected before reaching C)."""

    def __init__(self, message, status=_ffi.DEL_EINVAL):
        super().__init__(message)
        self.status = status
        self.message = message


class InvalidArgument(Error, ValueError):
    """DEL_EINVAL: an argument is invalid."""


class OutOfMemory(Error, MemoryError):
    """DEL_ENOMEM: an allocation failed."""


class FileError(Error, OSError):
    """DEL_EIO: a file could not be opened, read or written."""


class FormatError(Error, ValueError):
    """DEL_EFORMAT: a file or string is malformed."""


class Canceled(Error):
    """DEL_ECANCELED: a callback stopped the work."""


class StateError(Error, RuntimeError):
    """DEL_ESTATE: the call is not valid in the handle's current state."""


class NumericError(Error, ArithmeticError):
    """DEL_ENUMERIC: a computation or a value is not finite (a diverged
    training step, a model with NaN weights)."""


_ERRORS = {
    _ffi.DEL_EINVAL: InvalidArgument,
    _ffi.DEL_ENOMEM: OutOfMemory,
    _ffi.DEL_EIO: FileError,
    _ffi.DEL_EFORMAT: FormatError,
    _ffi.DEL_ECANCELED: Canceled,
    _ffi.DEL_ESTATE: StateError,
    _ffi.DEL_ENUMERIC: NumericError,
}


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    yield os.path.join(repo, "lib", "libdel.so.%d" % _ffi.DEL_VERSION_MAJOR)
    found = ctypes.util.find_library("del")
    if found:
        yield found
    yield "libdel.so.%d" % _ffi.DEL_VERSION_MAJOR


def _load():
    env = os.environ.get("LIBDEL_PATH")
    if env:
        # An explicit choice must not silently fall back to another copy.
        path = env
        if os.path.isdir(env):
            path = os.path.join(env, "libdel.so.%d" % _ffi.DEL_VERSION_MAJOR)
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            raise ImportError("libdel: cannot load LIBDEL_PATH=%s: %s" % (env, e))
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append("%s (missing)" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("libdel: shared library not found; build it with `make` or set "
                      "LIBDEL_PATH. Tried: " + "; ".join(tried))


lib, library_path = _load()
try:
    _ffi.bind(lib)
except AttributeError as e:
    raise ImportError("%s (loaded from %s)" % (e, library_path))


def last_error():
    return lib.del_last_error().decode("utf-8", "replace")


def check(status):
    """Raises the Error subclass for a non-OK status, with the C message."""
    if status == _ffi.DEL_OK:
        return
    cls = _ERRORS.get(status, Error)
    raise cls(last_error(), status)


def invalid(message):
    """A binding-side argument error, shaped like the library's."""
    return InvalidArgument(message, _ffi.DEL_EINVAL)


class Handle:
    """Owns one C handle; freed by close(), the context manager or __del__."""

    _free_name = None

    def __init__(self, handle):
        self._handle = handle

    @property
    def _h(self):
        if self._handle is None:
            raise invalid("%s: the handle is closed" % type(self).__name__)
        return self._handle

    @property
    def closed(self):
        return self._handle is None

    def close(self):
        h, self._handle = self._handle, None
        if h is not None and self._free_name is not None:
            getattr(lib, self._free_name)(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            # At interpreter shutdown the module may already be torn down.
            pass


def new_handle(create, *args):
    """Calls create(&out, *args), checks the status, returns the pointer."""
    out = ctypes.c_void_p()
    check(create(ctypes.byref(out), *args))
    return out.value


def address_of(obj):
    """(address, keep-alive object) of a writable C-contiguous buffer, or
    (None, None) when obj cannot be shared without a copy."""
    try:
        mv = memoryview(obj)
    except TypeError:
        return None, None
    if mv.readonly or not mv.c_contiguous or mv.nbytes == 0:
        return None, None
    arr = (ctypes.c_char * mv.nbytes).from_buffer(mv)
    return ctypes.addressof(arr), arr


def view_memory(address, nbytes, fmt, shape, owner, readonly=False):
    """A memoryview over C memory, keeping `owner` alive while it lives."""
    arr = (ctypes.c_char * nbytes).from_address(address)
    arr._owner = owner
    mv = memoryview(arr).cast("B").cast(fmt, shape)
    return mv.toreadonly() if readonly else mv


def c_array(ctype, values, what):
    """A ctypes array copied from a sequence or buffer of numbers."""
    try:
        mv = memoryview(values)
    except TypeError:
        mv = None
    if mv is not None and mv.c_contiguous and mv.itemsize == ctypes.sizeof(ctype) \
            and mv.format.lstrip("@=<") in _BUFFER_FORMATS.get(ctype, ()):
        return (ctype * (mv.nbytes // mv.itemsize)).from_buffer_copy(mv)
    try:
        seq = [int(v) if ctype is not ctypes.c_float else float(v) for v in values]
    except (TypeError, ValueError):
        raise invalid("%s must be a sequence of numbers" % what)
    return (ctype * len(seq))(*seq)


_BUFFER_FORMATS = {
    ctypes.c_int64: ("q", "l"),
    ctypes.c_int32: ("i", "l"),
    ctypes.c_float: ("f",),
    ctypes.c_uint8: ("B",),
}
