"""Tensor files from Python (Tensor.save/load/to_bytes/from_bytes) and soft
labels on datasets (Dataset.set_soft_labels, soft_labels, soft_batch)."""

import array
import math
import os
import struct
import tempfile
import unittest
import zlib

import _util
import libdel
from libdel import Tensor


def decode(file_bytes):
    """An independent reader of the documented layout: (dtype, shape, element bytes)."""
    assert file_bytes[:4] == b"DELT"
    version, flags, hsize, zlen, rawlen, crc, hcrc = struct.unpack("<IIIQQII", file_bytes[4:40])
    assert (version, flags, hsize, zlen) == (1, 0, 40, len(file_bytes) - 40)
    assert zlib.crc32(file_bytes[40:]) == crc and zlib.crc32(file_bytes[:36]) == hcrc
    raw = zlib.decompress(file_bytes[40:])
    assert len(raw) == rawlen
    dtype, ndim = struct.unpack("<II", raw[:8])
    shape = struct.unpack("<%dQ" % ndim, raw[8:8 + 8 * ndim])
    return dtype, shape, raw[8 + 8 * ndim:]


class TestTensorFile(unittest.TestCase):
    def test_each_dtype_round_trips_through_a_file_and_bytes(self):
        cases = [
            (Tensor.from_list([[0.5, -1.25, 3.0], [1e-30, -0.0, 7.5]]), 0, "f"),
            (Tensor.from_buffer(bytearray(range(24)), shape=(2, 3, 2, 2)), 1, "B"),
            (Tensor.from_list([1, -2, 2 ** 31 - 1, -2 ** 31], dtype="int32"), 2, "i"),
        ]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.delt")
            for t, code, fmt in cases:
                t.save(path)
                with open(path, "rb") as f:
                    on_disk = f.read()
                self.assertEqual(on_disk, t.to_bytes())
                dtype, shape, elems = decode(on_disk)
                self.assertEqual((dtype, shape), (code, t.shape))
                self.assertEqual(elems, array.array(fmt, t.tobytes()).tobytes())
                for back in (Tensor.load(path), Tensor.from_bytes(on_disk)):
                    self.assertEqual((back.dtype, back.shape), (t.dtype, t.shape))
                    self.assertEqual(back.tobytes(), t.tobytes())

    def test_nan_needs_allow_nonfinite_and_comes_back_as_nan(self):
        t = Tensor.from_list([1.0, float("nan"), float("-inf")])
        with self.assertRaises(libdel.NumericError) as cm:
            t.to_bytes()
        self.assertIn("NaN at element 1", str(cm.exception))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "nan.delt")
            with self.assertRaises(libdel.NumericError):
                t.save(path)
            self.assertFalse(os.path.exists(path))
            t.save(path, allow_nonfinite=True)
            back = Tensor.load(path).tolist()
        self.assertEqual(back[0], 1.0)
        self.assertTrue(math.isnan(back[1]))
        self.assertEqual(back[2], float("-inf"))
        self.assertEqual(Tensor.from_bytes(t.to_bytes(allow_nonfinite=True)).tobytes(), t.tobytes())

    def test_damaged_and_foreign_bytes_raise_format_error(self):
        data = Tensor.from_list([1.0, 2.0]).to_bytes()
        with self.assertRaises(libdel.FormatError):
            Tensor.from_bytes(data[:-1])
        damaged = bytearray(data)
        damaged[-1] ^= 1
        with self.assertRaises(libdel.FormatError) as cm:
            Tensor.from_bytes(bytes(damaged))
        self.assertIn("checksum mismatch", str(cm.exception))
        model = libdel.Model.from_spec("input 1 1 2; flatten; linear 1").to_bytes()
        with self.assertRaises(libdel.FormatError) as cm:
            Tensor.from_bytes(model)
        self.assertIn("is a libdel model file, not a tensor (load it with del_model_load)", str(cm.exception))
        with self.assertRaises(libdel.FormatError) as cm:
            libdel.Model.from_bytes(data)
        self.assertIn("is a libdel tensor file, not a model (load it with del_tensor_load)", str(cm.exception))
        with self.assertRaises(libdel.FormatError):
            Tensor.from_bytes(b"")


class TestSoftLabels(unittest.TestCase):
    def setUp(self):
        self.ds = libdel.Dataset.from_arrays(bytes([0, 10, 20, 30]), [0, 1, 0, 1], 4, 1, 1, 1)
        self.rows = [[1.0, 0.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.125, 0.875], [0.5, 0.5, 0.0]]

    def test_set_read_and_remove(self):
        ds = self.ds
        self.assertIsNone(ds.soft_labels)
        self.assertEqual(ds.num_soft_classes, 0)
        ds.set_soft_labels(Tensor.from_list(self.rows))
        self.assertEqual(ds.soft_labels.tolist(), self.rows)
        self.assertEqual(ds.num_soft_classes, 3)
        self.assertEqual(ds.soft_batch([3, 0]).tolist(), [self.rows[3], self.rows[0]])
        # A 2-d float32 buffer works as well as a Tensor.
        flat = array.array("f", [v for r in reversed(self.rows) for v in r])
        ds.set_soft_labels(memoryview(flat).cast("B").cast("f", (4, 3)))
        self.assertEqual(ds.soft_labels.tolist(), self.rows[::-1])
        ds.set_soft_labels(None)
        self.assertIsNone(ds.soft_labels)
        with self.assertRaises(libdel.StateError):
            ds.soft_batch([0])

    def test_bad_rows_are_refused_naming_soft(self):
        bad = [list(r) for r in self.rows]
        bad[2][1] = 0.5
        with self.assertRaises(libdel.InvalidArgument) as cm:
            self.ds.set_soft_labels(Tensor.from_list(bad))
        self.assertIn("'soft' row 2 must sum to 1", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument) as cm:
            self.ds.set_soft_labels(Tensor.from_list(self.rows[:3]))
        self.assertIn("'soft' must be f32 [4, K]", str(cm.exception))
        self.assertIsNone(self.ds.soft_labels)

    def test_subsets_splits_and_a_tensor_file_carry_them(self):
        ds = self.ds
        ds.set_soft_labels(Tensor.from_list(self.rows))
        self.assertEqual(ds.subset([2, 2, 1]).soft_labels.tolist(), [self.rows[2], self.rows[2], self.rows[1]])
        lab, unl = ds.split_per_class(1)
        self.assertEqual(lab.soft_labels.tolist(), self.rows[:2])
        self.assertEqual(unl.soft_labels.tolist(), self.rows[2:])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "teacher.delt")
            ds.soft_labels.save(path)
            other = libdel.Dataset.from_arrays(bytes(4), None, 4, 1, 1, 1)
            other.set_soft_labels(Tensor.load(path))
        self.assertEqual(other.soft_labels.tolist(), self.rows)


if __name__ == "__main__":
    unittest.main()
