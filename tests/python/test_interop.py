"""Model files cross the C/Python boundary: a model saved by a C program
(model_io_helper.c, compiled here against the loaded library) loads in
Python with identical logits, and the other way round."""

import array
import os
import shutil
import subprocess
import tempfile
import unittest

import _util
import libdel

# Must match model_io_helper.c.
SPEC = "input 1 6 6; conv2d 4 k=3 p=1; batchnorm; relu; maxpool 2; flatten; linear 3"
SEED = 7
BATCH = 2
PIXELS = 36
HELPER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_io_helper.c")
HEADER_DIR = os.path.join(_util.ROOT, "include")


def fixed_input():
    x = array.array("f", [(i % 17) / 8.0 - 1.0 for i in range(BATCH * PIXELS)])
    return libdel.Tensor.from_buffer(x, shape=(BATCH, 1, 6, 6))


def eval_logits(model):
    model.eval()
    return model(fixed_input()).tolist()


def float32(v):
    """v rounded to float32, as the C program's float was."""
    return array.array("f", [v])[0]


class TestModelFilesAcrossLanguages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
        lib_path = libdel.library_path
        if cc is None:
            raise unittest.SkipTest("no C compiler")
        if not os.path.exists(os.path.join(HEADER_DIR, "del.h")) or not os.path.isfile(lib_path):
            raise unittest.SkipTest("needs the source tree's headers and a library file")
        cls.tmp = tempfile.mkdtemp(prefix="libdel-interop-")
        cls.helper = os.path.join(cls.tmp, "model_io_helper")
        lib_dir = os.path.dirname(os.path.abspath(lib_path))
        cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
               "-Wmissing-prototypes", "-Werror", "-I", HEADER_DIR, HELPER_SOURCE,
               os.path.abspath(lib_path), "-Wl,-rpath," + lib_dir, "-o", cls.helper]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if done.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("compiling the C helper failed:\n" + done.stdout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_helper(self, verb, path):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        done = subprocess.run([self.helper, verb, path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        values = [float32(float(line)) for line in done.stdout.split()]
        self.assertEqual(len(values), BATCH * 3)
        return [values[:3], values[3:]]

    def test_model_saved_by_c_gives_identical_logits_in_python(self):
        path = os.path.join(self.tmp, "from_c.delm")
        c_logits = self.run_helper("save", path)
        model = libdel.Model.load(path)
        self.assertEqual(model.layer_types,
                         ["conv2d", "batchnorm", "relu", "maxpool", "flatten", "linear"])
        self.assertEqual(eval_logits(model), c_logits)

    def test_model_saved_by_python_gives_identical_logits_in_c(self):
        model = libdel.Model.from_spec(SPEC).init(SEED)
        model.train()
        model(fixed_input())  # moves the batchnorm running statistics
        path = os.path.join(self.tmp, "from_python.delm")
        model.save(path)
        py_logits = eval_logits(model)
        self.assertEqual(self.run_helper("load", path), py_logits)

    def test_both_sides_write_the_same_bytes(self):
        path = os.path.join(self.tmp, "same.delm")
        self.run_helper("save", path)
        model = libdel.Model.from_spec(SPEC).init(SEED)
        model.train()
        model(fixed_input())
        with open(path, "rb") as f:
            self.assertEqual(f.read(), model.to_bytes())

    def test_bytes_round_trip_keeps_the_logits(self):
        path = os.path.join(self.tmp, "bytes.delm")
        c_logits = self.run_helper("save", path)
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(eval_logits(libdel.Model.from_bytes(data)), c_logits)
        self.assertEqual(eval_logits(libdel.Model.from_bytes(bytearray(data))), c_logits)


class TestModelFileErrors(unittest.TestCase):
    def test_truncated_file_raises_format_error_with_c_message(self):
        data = libdel.Model.from_spec(SPEC).to_bytes()
        with self.assertRaises(libdel.FormatError) as cm:
            libdel.Model.from_bytes(data[:len(data) // 2])
        self.assertIn("del_model_load", str(cm.exception))
        self.assertEqual(cm.exception.message, libdel.last_error())

    def test_flipped_payload_byte_raises_format_error(self):
        data = bytearray(libdel.Model.from_spec(SPEC).to_bytes())
        data[-5] ^= 0xFF
        with self.assertRaises(libdel.FormatError):
            libdel.Model.from_bytes(data)

    def test_saving_into_a_missing_folder_names_the_path(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "no-such-dir", "m.delm")
            with self.assertRaises(libdel.FileError) as cm:
                libdel.Model.from_spec(SPEC).save(path)
            self.assertIn("no-such-dir", str(cm.exception))
            self.assertEqual(os.listdir(d), [])

    def test_loading_a_folder_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(libdel.Error) as cm:
                libdel.Model.load(d)
            self.assertIn(d, str(cm.exception))

    def test_empty_bytes_raise_format_error(self):
        with self.assertRaises(libdel.FormatError):
            libdel.Model.from_bytes(b"")


if __name__ == "__main__":
    unittest.main()
