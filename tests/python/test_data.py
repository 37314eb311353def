"""Datasets: caller arrays, Fashion-MNIST from the Debian package, CIFAR-10
files, splits, batches."""

import array
import gzip
import os
import struct
import tempfile
import unittest

import _util
import libdel


def read_idx(path):
    """An independent IDX reader: (dims, payload bytes)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 0x08
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


class TestFromArrays(unittest.TestCase):
    def setUp(self):
        # Four 2x2 grey images whose pixels identify them: image i = 10*i + k.
        self.images = bytes(10 * i + k for i in range(4) for k in range(4))
        self.labels = [1, 0, 1, -1]
        self.ds = libdel.Dataset.from_arrays(self.images, self.labels, 4, 2, 2, 1)

    def test_sizes_labels_and_pixels_are_kept(self):
        ds = self.ds
        self.assertEqual((len(ds), ds.shape, ds.num_classes), (4, (2, 2, 1), 2))
        self.assertEqual(ds.labels.tolist(), self.labels)
        self.assertEqual(ds.images.tobytes(), self.images)
        self.assertEqual(ds.images.shape, (4, 2, 2, 1))

    def test_views_are_read_only(self):
        with self.assertRaises(TypeError):
            self.ds.labels[0] = 5

    def test_labels_may_be_an_int32_buffer_or_none(self):
        ds = libdel.Dataset.from_arrays(self.images, array.array("i", [0, 1, 2, 3]), 4, 2, 2)
        self.assertEqual(ds.labels.tolist(), [0, 1, 2, 3])
        ds = libdel.Dataset.from_arrays(self.images, None, 4, 2, 2)
        self.assertEqual(ds.labels.tolist(), [-1] * 4)
        self.assertEqual(ds.num_classes, 0)

    def test_wrong_image_byte_count_raises(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Dataset.from_arrays(self.images[:-1], self.labels, 4, 2, 2, 1)

    def test_bad_channels_raise_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Dataset.from_arrays(bytes(8), [0, 1], 2, 1, 2, 2)
        self.assertIn("del_dataset_from_arrays", str(cm.exception))

    def test_bad_label_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Dataset.from_arrays(self.images, [0, 1, -2, 0], 4, 2, 2, 1)
        self.assertIn("del_dataset_from_arrays", str(cm.exception))

    def test_subset_copies_in_given_order(self):
        sub = self.ds.subset([3, 0, 0])
        self.assertEqual(sub.labels.tolist(), [-1, 1, 1])
        self.assertEqual(sub.images.tobytes(), self.images[12:16] + self.images[0:4] * 2)

    def test_subset_index_out_of_range_raises(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            self.ds.subset([0, 4])
        self.assertIn("del_dataset_subset", str(cm.exception))

    def test_split_per_class_takes_first_k_per_class(self):
        labeled, unlabeled = self.ds.split_per_class(1)
        self.assertEqual(labeled.labels.tolist(), [1, 0])
        self.assertEqual(labeled.images.tobytes(), self.images[0:8])
        self.assertEqual(unlabeled.labels.tolist(), [-1, -1])
        self.assertEqual(unlabeled.images.tobytes(), self.images[8:16])

    def test_split_with_too_few_images_names_the_class(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            self.ds.split_per_class(2)
        self.assertIn("class 0", str(cm.exception))

    def test_batch_normalises_to_nchw(self):
        mean, std = 0.5, 0.25
        x, y = self.ds.batch([2, 0], mean=mean, std=std)
        self.assertEqual((x.shape, y.shape), ((2, 1, 2, 2), (2,)))
        expected = [[[[(v / 255.0 - mean) / std for v in self.images[base + 2 * r:base + 2 * r + 2]]
                      for r in range(2)]] for base in (8, 0)]
        got = x.tolist()
        for i in range(2):
            for r in range(2):
                for c in range(2):
                    self.assertAlmostEqual(got[i][0][r][c], expected[i][0][r][c], places=5)
        self.assertEqual(y.tolist(), [1, 1])

    def test_batch_rejects_zero_std_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            self.ds.batch([0], mean=0.0, std=0.0)
        self.assertIn("del_dataset_batch", str(cm.exception))


class TestIdxErrors(unittest.TestCase):
    def test_missing_file_raises_file_error_naming_it(self):
        path = "/nonexistent/libdel-test-images"
        with self.assertRaises(libdel.FileError) as cm:
            libdel.Dataset.load_idx(path)
        self.assertIn(path, str(cm.exception))
        self.assertIsInstance(cm.exception, OSError)

    def test_bad_magic_raises_format_error(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "junk")
            with open(path, "wb") as f:
                f.write(b"this is not an IDX file at all")
            with self.assertRaises(libdel.FormatError) as cm:
                libdel.Dataset.load_idx(path)
            self.assertIn("del_dataset_load_idx", str(cm.exception))

    def test_unknown_split_raises(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Dataset.fashion_mnist("validation")


def cifar_pixel(record, channel, y, x):
    return (record * 7 + channel * 50 + y * 3 + x) % 256


def cifar_records(labels, first=0):
    """CIFAR-10 binary records: a label byte, then the R, G and B 32x32 planes."""
    out = bytearray()
    for r, label in enumerate(labels, first):
        out.append(label)
        for c in range(3):
            out += bytes(cifar_pixel(r, c, y, x) for y in range(32) for x in range(32))
    return bytes(out)


class TestCifar10(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name, data, gz=False):
        path = os.path.join(self.dir.name, name)
        with (gzip.open if gz else open)(path, "wb") as f:
            f.write(data)
        return path

    def test_planes_become_hwc_images_in_file_order(self):
        path = self.write("test_batch.bin", cifar_records([3, 9, 0]))
        ds = libdel.Dataset.cifar10(path)
        self.assertEqual((len(ds), ds.shape), (3, (32, 32, 3)))
        self.assertEqual(ds.labels.tolist(), [3, 9, 0])
        img = ds.images
        for r, y, x, c in ((0, 0, 0, 0), (1, 5, 31, 2), (2, 31, 7, 1), (1, 12, 0, 1)):
            self.assertEqual(img[r, y, x, c], cifar_pixel(r, c, y, x))
        expected = bytes(cifar_pixel(1, c, y, x) for y in range(32) for x in range(32)
                         for c in range(3))
        self.assertEqual(ds.image(1).tobytes(), expected)

    def test_gzip_file_gives_the_same_dataset(self):
        plain = libdel.Dataset.cifar10(self.write("a.bin", cifar_records([1, 2])))
        packed = libdel.Dataset.cifar10(self.write("a.bin.gz", cifar_records([1, 2]), gz=True))
        self.assertEqual(packed.images.tobytes(), plain.images.tobytes())
        self.assertEqual(packed.labels.tolist(), [1, 2])

    def test_dir_concatenates_the_five_training_batches_in_order(self):
        for i in range(1, 6):
            self.write("data_batch_%d.bin" % i, cifar_records([i], first=i))
        self.write("test_batch.bin", cifar_records([0, 0]))
        train = libdel.Dataset.cifar10_dir(self.dir.name, "train")
        self.assertEqual(train.labels.tolist(), [1, 2, 3, 4, 5])
        self.assertEqual(train.images[4, 0, 0, 0], cifar_pixel(5, 0, 0, 0))
        self.assertEqual(len(libdel.Dataset.cifar10_dir(self.dir.name, "test")), 2)

    def test_size_not_a_multiple_of_a_record_is_a_format_error(self):
        path = self.write("bad.bin", cifar_records([1])[:-1])
        with self.assertRaises(libdel.FormatError) as cm:
            libdel.Dataset.cifar10(path)
        self.assertIn("bad.bin", str(cm.exception))

    def test_label_above_nine_is_a_format_error(self):
        path = self.write("label.bin", cifar_records([4, 10]))
        with self.assertRaises(libdel.FormatError) as cm:
            libdel.Dataset.cifar10(path)
        self.assertIn("label.bin", str(cm.exception))

    def test_missing_batch_raises_file_error(self):
        with self.assertRaises(libdel.FileError) as cm:
            libdel.Dataset.cifar10_dir(self.dir.name, "test")
        self.assertIn("test_batch", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Dataset.cifar10_dir(self.dir.name, "validation")


@unittest.skipUnless(_util.HAVE_FMNIST, "Fashion-MNIST not installed (dataset-fashion-mnist)")
class TestFashionMnist(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.train = libdel.Dataset.fashion_mnist("train", _util.FMNIST_DIR)

    def test_train_split_matches_an_independent_reader(self):
        dims, labels = read_idx(os.path.join(_util.FMNIST_DIR, "train-labels-idx1-ubyte.gz"))
        self.assertEqual(len(self.train), dims[0])
        self.assertEqual(len(self.train), 60000)
        self.assertEqual(self.train.shape, (28, 28, 1))
        self.assertEqual(self.train.num_classes, 10)
        self.assertEqual(self.train.labels.tobytes(), array.array("i", list(labels)).tobytes())
        idims, pixels = read_idx(os.path.join(_util.FMNIST_DIR, "train-images-idx3-ubyte.gz"))
        self.assertEqual(idims, (60000, 28, 28))
        self.assertEqual(self.train.images.tobytes(), pixels)

    def test_test_split_has_ten_thousand_images(self):
        test = libdel.Dataset.fashion_mnist("test", _util.FMNIST_DIR)
        self.assertEqual((len(test), test.shape), (10000, (28, 28, 1)))

    def test_fmnist_1k_split_has_100_per_class(self):
        labeled, unlabeled = self.train.split_per_class(100)
        counts = [0] * 10
        for v in labeled.labels.tolist():
            counts[v] += 1
        self.assertEqual(counts, [100] * 10)
        self.assertEqual(len(unlabeled), 59000)
        self.assertEqual(set(unlabeled.labels.tolist()), {-1})


if __name__ == "__main__":
    unittest.main()
