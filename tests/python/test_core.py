"""Version, threads and the status-to-exception mapping."""

import os
import subprocess
import sys
import unittest

import _util  # noqa: F401
import libdel
from libdel import _ffi


class TestVersion(unittest.TestCase):
    def test_version_matches_header_constants(self):
        expected = "%d.%d.%d" % (_ffi.DEL_VERSION_MAJOR, _ffi.DEL_VERSION_MINOR,
                                 _ffi.DEL_VERSION_PATCH)
        self.assertEqual(libdel.version(), expected)
        self.assertEqual(libdel.__version__, expected)

    def test_version_number_encodes_major_minor_patch(self):
        major, minor, patch = (int(p) for p in libdel.version().split("."))
        self.assertEqual(libdel.version_number(), major * 10000 + minor * 100 + patch)

    def test_library_is_found(self):
        self.assertIn("libdel.so", libdel.library_path)


class TestThreads(unittest.TestCase):
    def test_set_num_threads_round_trips(self):
        old = libdel.get_num_threads()
        try:
            libdel.set_num_threads(1)
            self.assertEqual(libdel.get_num_threads(), 1)
        finally:
            libdel.set_num_threads(old)

    def test_set_num_threads_zero_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.set_num_threads(0)
        self.assertIn("del_set_num_threads", str(cm.exception))
        self.assertEqual(cm.exception.status, _ffi.DEL_EINVAL)
        self.assertEqual(cm.exception.message, libdel.last_error())


class TestCpuIsa(unittest.TestCase):
    NAMES = ("generic", "avx2", "avx512")

    def isa_in_child(self, value):
        """cpu_isa() in a fresh interpreter with DEL_CPU_ISA = value (unset if None)."""
        env = dict(os.environ)
        env.pop("DEL_CPU_ISA", None)
        if value is not None:
            env["DEL_CPU_ISA"] = value
        out = subprocess.run([sys.executable, "-c", "import libdel; print(libdel.cpu_isa())"], env=env,
                             check=True, stdout=subprocess.PIPE, cwd=_util.BINDINGS)
        return out.stdout.decode().strip()

    def test_cpu_isa_is_one_of_the_levels(self):
        self.assertIn(libdel.cpu_isa(), self.NAMES)

    def test_env_caps_the_level(self):
        best = self.isa_in_child(None)
        self.assertEqual(self.isa_in_child("generic"), "generic")
        for cap in self.NAMES:
            expected = self.NAMES[min(self.NAMES.index(cap), self.NAMES.index(best))]
            self.assertEqual(self.isa_in_child(cap), expected)

    def test_unknown_env_value_gives_the_best_level(self):
        self.assertEqual(self.isa_in_child("sse9"), self.isa_in_child(None))


class TestStatus(unittest.TestCase):
    def test_status_strings_are_distinct(self):
        codes = list(_ffi.ENUMS["del_status"].values())
        texts = {libdel.status_str(c) for c in codes}
        self.assertEqual(len(texts), len(codes))
        self.assertEqual(libdel.status_str(12345), "unknown status")

    def test_every_error_subclass_is_an_error(self):
        for cls in (libdel.InvalidArgument, libdel.OutOfMemory, libdel.FileError,
                    libdel.FormatError, libdel.Canceled, libdel.StateError):
            self.assertTrue(issubclass(cls, libdel.Error))
        self.assertTrue(issubclass(libdel.FileError, OSError))
        self.assertTrue(issubclass(libdel.InvalidArgument, ValueError))


if __name__ == "__main__":
    unittest.main()
