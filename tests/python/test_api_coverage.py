"""Every C function of the generated declarations is reachable from the
package: called by a wrapper, wrapped generically (libdel.image ops), or
listed in libdel._lib.RAW_ONLY. A C function added without a wrapper fails
here after `make python-gen`."""

import glob
import os
import re
import unittest

import _util  # noqa: F401
import libdel
from libdel import _ffi, _lib, image

PACKAGE_DIR = os.path.dirname(os.path.abspath(libdel.__file__))


def package_source():
    """The hand-written modules of the package (not the generated _ffi.py)."""
    text = []
    for path in sorted(glob.glob(os.path.join(PACKAGE_DIR, "*.py"))):
        if os.path.basename(path) != "_ffi.py":
            with open(path, encoding="utf-8") as f:
                text.append(f.read())
    return "\n".join(text)


class TestApiCoverage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.source = package_source()
        cls.generic = {"del_image_" + name for name in image._OPS}

    def test_every_c_function_has_a_wrapper(self):
        missing = [name for name in _ffi.FUNCTIONS
                   if name not in self.generic and name not in _lib.RAW_ONLY
                   and not re.search(r"\b%s\b" % name, self.source)]
        self.assertEqual(missing, [], "C functions without a Python wrapper: add one or list "
                         "them in libdel._lib.RAW_ONLY")

    def test_generic_image_ops_are_callable(self):
        self.assertGreater(len(self.generic), 10)
        for name in image._OPS:
            self.assertTrue(callable(getattr(image, name)), name)

    def test_raw_only_names_exist(self):
        self.assertEqual(sorted(n for n in _lib.RAW_ONLY if n not in _ffi.FUNCTIONS), [])

    def test_package_calls_only_declared_functions(self):
        called = set(re.findall(r"\blib\.(del_\w+)", self.source))
        called |= set(re.findall(r"[\"'](del_\w+_free)[\"']", self.source))
        self.assertGreater(len(called), 50)
        self.assertEqual(sorted(called - set(_ffi.FUNCTIONS)), [])


if __name__ == "__main__":
    unittest.main()
