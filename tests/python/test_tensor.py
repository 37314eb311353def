"""Tensors: wrapping Python buffers without copies, copies, numpy views."""

import array
import gc
import unittest

import _util
import libdel

if _util.HAVE_NUMPY:
    import numpy as np


class TestTensorBasics(unittest.TestCase):
    def test_zeros_has_shape_dtype_and_zero_data(self):
        t = libdel.Tensor.zeros((2, 3), "int32")
        self.assertEqual(t.shape, (2, 3))
        self.assertEqual(t.dtype, "int32")
        self.assertEqual((t.ndim, t.numel, t.nbytes, len(t)), (2, 6, 24, 2))
        self.assertEqual(t.tolist(), [[0, 0, 0], [0, 0, 0]])

    def test_from_list_round_trips_nested_values(self):
        t = libdel.Tensor.from_list([[1.5, -2.0], [3.25, 4.0]])
        self.assertEqual(t.shape, (2, 2))
        self.assertEqual(t.dtype, "float32")
        self.assertEqual(t.tolist(), [[1.5, -2.0], [3.25, 4.0]])

    def test_from_list_rejects_ragged_lists(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_list([[1.0, 2.0], [3.0]])

    def test_zero_size_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Tensor.zeros((2, 0))
        self.assertIn("del_tensor_new", str(cm.exception))

    def test_five_dims_raise_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Tensor.zeros((1, 1, 1, 1, 1))
        self.assertIn("del_tensor_new", str(cm.exception))

    def test_unknown_dtype_raises(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.zeros((2,), "float64")

    def test_reshape_keeps_data_and_rejects_other_counts(self):
        t = libdel.Tensor.from_list([1, 2, 3, 4, 5, 6], dtype="int32")
        t.reshape((3, 2))
        self.assertEqual(t.tolist(), [[1, 2], [3, 4], [5, 6]])
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.reshape((4, 2))
        self.assertIn("del_tensor_reshape", str(cm.exception))

    def test_copy_is_independent(self):
        t = libdel.Tensor.from_list([1.0, 2.0])
        c = t.copy()
        t.memoryview()[0] = 9.0
        self.assertEqual(c.tolist(), [1.0, 2.0])
        self.assertEqual(t.tolist(), [9.0, 2.0])

    def test_closed_tensor_raises(self):
        t = libdel.Tensor.zeros((1,))
        t.close()
        t.close()
        with self.assertRaises(libdel.InvalidArgument):
            t.shape

    def test_context_manager_closes(self):
        with libdel.Tensor.zeros((1,)) as t:
            self.assertFalse(t.closed)
        self.assertTrue(t.closed)


class TestTensorWrap(unittest.TestCase):
    def test_wraps_array_without_copy_both_ways(self):
        a = array.array("f", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
        t = libdel.Tensor.from_buffer(a, shape=(2, 3))
        self.assertEqual(t.dtype, "float32")
        a[4] = 42.0
        self.assertEqual(t.tolist(), [[0.0, 1.0, 2.0], [3.0, 42.0, 5.0]])
        t.memoryview()[0, 1] = -7.0
        self.assertEqual(a[1], -7.0)

    def test_wraps_bytearray_as_uint8(self):
        b = bytearray(range(6))
        t = libdel.Tensor.from_buffer(b)
        self.assertEqual((t.dtype, t.shape), ("uint8", (6,)))
        b[5] = 200
        self.assertEqual(t.tolist(), [0, 1, 2, 3, 4, 200])

    def test_wrapped_buffer_stays_alive_and_pinned(self):
        def make():
            return libdel.Tensor.from_buffer(bytearray(b"\x01\x02\x03"))
        t = make()
        gc.collect()
        self.assertEqual(t.tolist(), [1, 2, 3])
        a = array.array("i", [1, 2])
        libdel.Tensor.from_buffer(a)  # freed at once: the export is released
        gc.collect()
        t2 = libdel.Tensor.from_buffer(a)
        with self.assertRaises(BufferError):
            a.append(3)  # the tensor's pointer must never dangle
        t2.close()
        del t2
        gc.collect()
        a.append(3)

    def test_read_only_bytes_are_copied(self):
        data = bytes([1, 2, 3, 4])
        t = libdel.Tensor.from_buffer(data, shape=(2, 2))
        self.assertEqual(t.tolist(), [[1, 2], [3, 4]])
        t.memoryview()[0, 0] = 100
        self.assertEqual(data[0], 1)

    def test_copy_false_refuses_read_only_buffers(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(b"\x00\x00\x00\x00", copy=False)

    def test_raw_bytes_reinterpreted_with_dtype(self):
        raw = bytearray(array.array("i", [7, -8]).tobytes())
        t = libdel.Tensor.from_buffer(raw, dtype="int32")
        self.assertEqual((t.shape, t.tolist()), ((2,), [7, -8]))

    def test_shape_must_match_buffer_size(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(array.array("f", [1.0, 2.0, 3.0]), shape=(2, 2))

    def test_typed_buffer_of_other_dtype_is_rejected(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(array.array("f", [1.0]), dtype="int32")
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(array.array("d", [1.0]))

    def test_copy_true_always_copies(self):
        a = array.array("f", [1.0, 2.0])
        t = libdel.Tensor.from_buffer(a, copy=True)
        a[0] = 5.0
        self.assertEqual(t.tolist(), [1.0, 2.0])

    def test_numpy_without_numpy_raises_import_error(self):
        if _util.HAVE_NUMPY:
            self.skipTest("numpy is installed")
        with self.assertRaises(ImportError):
            libdel.Tensor.zeros((1,)).numpy()


@_util.needs_numpy
class TestTensorNumpy(unittest.TestCase):
    def test_wraps_numpy_array_and_writes_show_both_ways(self):
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        t = libdel.Tensor.from_buffer(a)
        self.assertEqual((t.shape, t.dtype), ((2, 3), "float32"))
        a[1, 2] = 42.0
        self.assertEqual(t.tolist()[1][2], 42.0)
        v = t.numpy()
        v[0, 0] = -1.0
        self.assertEqual(a[0, 0], -1.0)
        self.assertTrue(np.shares_memory(v, a))

    def test_numpy_view_keeps_tensor_memory_alive(self):
        t = libdel.Tensor.from_list([[1, 2], [3, 4]], dtype="int32")
        v = t.numpy()
        del t
        gc.collect()
        self.assertEqual(v.dtype, np.int32)
        np.testing.assert_array_equal(v, [[1, 2], [3, 4]])

    def test_numpy_copy_is_independent(self):
        t = libdel.Tensor.zeros((3,), "uint8")
        c = t.numpy(copy=True)
        c[0] = 9
        self.assertEqual(t.tolist(), [0, 0, 0])

    def test_non_contiguous_array_is_copied_or_refused(self):
        a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
        t = libdel.Tensor.from_buffer(a)
        np.testing.assert_array_equal(t.numpy(), a)
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(a, copy=False)

    def test_float64_array_is_rejected(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Tensor.from_buffer(np.zeros(3))

    def test_numpy_dtype_objects_are_accepted(self):
        t = libdel.Tensor.zeros((2,), np.int32)
        self.assertEqual(t.dtype, "int32")
        t = libdel.Tensor.zeros((2,), np.dtype("uint8"))
        self.assertEqual(t.dtype, "uint8")


if __name__ == "__main__":
    unittest.main()
