"""The augmentation ops as exposed by libdel.image (wrappers made from _ffi),
the Augment pipeline, PNG files and image grids."""

import os
import struct
import tempfile
import unittest
import zlib

import _util  # noqa: F401
import libdel
from libdel import image


def grid():
    """A 2x3 one-channel image: [[1, 2, 3], [4, 5, 6]] as uint8 [2, 3, 1]."""
    return libdel.Tensor.from_list([[[1], [2], [3]], [[4], [5], [6]]], dtype="uint8")


def flat(t):
    return [px[0] for row in t.tolist() for px in row]


class TestImageOps(unittest.TestCase):
    def test_every_header_image_op_is_wrapped(self):
        names = [n[len("del_image_"):] for n, (_, params) in libdel._ffi.FUNCTIONS.items()
                 if n.startswith("del_image_") and [p[1] for p in params[:2]] == ["dst", "src"]]
        self.assertGreater(len(names), 0)
        for n in names:
            self.assertTrue(callable(getattr(image, n)), n)

    def test_flip_and_rotate_permute_pixels(self):
        self.assertEqual(flat(image.flip_h(grid())), [3, 2, 1, 6, 5, 4])
        self.assertEqual(flat(image.flip_v(grid())), [4, 5, 6, 1, 2, 3])
        # np.rot90 of [[1,2,3],[4,5,6]] (counter-clockwise) is [[3,6],[2,5],[1,4]];
        # clockwise (rotate270) gives [[4,1],[5,2],[6,3]].
        self.assertEqual(flat(image.rotate90(grid(), size=(3, 2))), [3, 6, 2, 5, 1, 4])
        self.assertEqual(flat(image.rotate270(grid(), size=(3, 2))), [4, 1, 5, 2, 6, 3])

    def test_crop_takes_a_window_of_the_requested_size(self):
        out = image.crop(grid(), 0, 1, size=(2, 2))
        self.assertEqual((out.shape, flat(out)), ((2, 2, 1), [2, 3, 5, 6]))

    def test_posterize_keeps_top_bits(self):
        t = libdel.Tensor.from_list([[[255], [130], [77]]], dtype="uint8")
        self.assertEqual(flat(image.posterize(t, 2)), [255 & 0xC0, 130 & 0xC0, 77 & 0xC0])

    def test_out_tensor_is_written(self):
        out = libdel.Tensor.zeros((2, 3, 1), "uint8")
        self.assertIs(image.flip_h(grid(), out=out), out)
        self.assertEqual(flat(out), [3, 2, 1, 6, 5, 4])

    def test_affine_from_points_of_a_translation(self):
        m = image.affine_from_points([0, 0, 1, 0, 0, 1], [2, 3, 3, 3, 2, 4])
        for got, want in zip(m, [1, 0, 2, 0, 1, 3]):
            self.assertAlmostEqual(got, want, places=5)

    def test_errors_carry_the_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            image.posterize(grid(), 9)
        self.assertIn("del_image_posterize", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            image.rotate(grid(), 10.0, "cubic", 0)
        with self.assertRaises(TypeError):
            image.rotate(grid(), 10.0)

    def test_write_png_writes_a_png_file(self):
        import os
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "g.png")
            image.write_png(grid(), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            with self.assertRaises(libdel.FileError) as cm:
                image.write_png(grid(), os.path.join(d, "missing-dir", "g.png"))
            self.assertIn("missing-dir", str(cm.exception))

    def test_dataset_image_is_a_copy_of_one_image(self):
        images = bytes(range(2 * 2 * 2 * 3))
        ds = libdel.Dataset.from_arrays(images, [0, 1], 2, 2, 2, 3)
        img = ds.image(1)
        self.assertEqual(img.shape, (2, 2, 3))
        self.assertEqual(bytes(img.memoryview().cast("B")), images[12:24])
        self.assertEqual(ds.image(-1).tolist(), img.tolist())
        with self.assertRaises(libdel.InvalidArgument):
            ds.image(2)


class TestAugment(unittest.TestCase):
    def test_certain_flip_mirrors_the_image(self):
        aug = libdel.Augment(seed=1).add_flip_h(1.0)
        self.assertEqual(aug.num_steps, 1)
        self.assertEqual(flat(aug.image(grid())), [3, 2, 1, 6, 5, 4])

    def test_same_seed_epoch_index_gives_same_image(self):
        src = libdel.Tensor.from_buffer(bytearray(range(0, 250, 2)[:100]), shape=(10, 10, 1))

        def run(seed):
            aug = libdel.Augment(seed=seed).add_randaugment(2, 9).add_random_crop(8, pad=1)
            return aug.image(src, epoch=3, index=7).tolist()

        self.assertEqual(run(5), run(5))

    def test_random_crop_sets_the_output_size(self):
        aug = libdel.Augment().add_random_crop(24, 20, pad=2)
        self.assertEqual(aug.output_size(28, 28), (24, 20))
        self.assertEqual(aug.image(libdel.Tensor.zeros((28, 28, 1), "uint8")).shape, (24, 20, 1))

    def test_empty_pipeline_batch_is_the_plain_normalised_batch(self):
        images = bytes([0, 51, 102, 255] * 2)
        ds = libdel.Dataset.from_arrays(images, [0, 1], 2, 2, 2, 1)
        x, y = libdel.Augment().batch(ds, [1, 0], mean=0.2, std=0.5, num_classes=2)
        want = [(v / 255 - 0.2) / 0.5 for v in (0, 51, 102, 255)]
        for got, w in zip(sum(x.tolist()[0][0], []), want):
            self.assertAlmostEqual(got, w, places=5)
        self.assertEqual(y.tolist(), [[0.0, 1.0], [1.0, 0.0]])

    def test_cutmix_soft_labels_sum_to_one(self):
        ds = libdel.Dataset.from_arrays(bytes(range(64)), [0, 1, 2, 3], 4, 4, 4, 1)
        aug = libdel.Augment(seed=2).add_cutmix(1.0, 1.0)
        _, y = aug.batch(ds, [0, 1, 2, 3], num_classes=4)
        for row in y.tolist():
            self.assertAlmostEqual(sum(row), 1.0, places=5)

    def test_unknown_op_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Augment().add_op("wobble", 1.0, 0.0)
        self.assertIn("del_augment_add_op", str(cm.exception))


def read_png(path):
    """An independent PNG reader for 8-bit grey/RGB files: (width, height,
    colour type, pixel bytes), checking every chunk's CRC."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc, = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, "bad CRC in %r" % kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, ctype, comp, filt, lace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, lace) == (8, 0, 0, 0)
    bpp = {0: 1, 2: 3}[ctype]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    stride = w * bpp
    out, prev = bytearray(), bytearray(stride)
    for row in range(h):
        ftype = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
            else:
                assert ftype == 0, "unknown filter %d" % ftype
        out += line
        prev = line
    return w, h, ctype, bytes(out)


class TestPng(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def round_trip(self, pixels, h, w, c):
        path = os.path.join(self.dir.name, "img.png")
        image.write_png(libdel.Tensor.from_buffer(bytearray(pixels), shape=(h, w, c)), path)
        return read_png(path)

    def test_grey_image_reads_back_with_its_header(self):
        pixels = bytes((7 * i + 3) % 256 for i in range(5 * 9))
        self.assertEqual(self.round_trip(pixels, 5, 9, 1), (9, 5, 0, pixels))

    def test_rgb_image_reads_back_with_its_header(self):
        pixels = bytes((i * i + 11) % 256 for i in range(4 * 6 * 3))
        self.assertEqual(self.round_trip(pixels, 4, 6, 3), (6, 4, 2, pixels))

    def test_ihdr_bytes_follow_the_signature(self):
        path = os.path.join(self.dir.name, "h.png")
        image.write_png(libdel.Tensor.zeros((300, 2, 3), "uint8"), path)
        with open(path, "rb") as f:
            head = f.read(29)
        self.assertEqual(head[8:16], b"\x00\x00\x00\x0dIHDR")
        self.assertEqual(head[16:29], struct.pack(">IIBBBBB", 2, 300, 8, 2, 0, 0, 0))
        self.assertFalse(os.path.exists(path + ".tmp"))

    def test_two_channel_image_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            image.write_png(libdel.Tensor.zeros((2, 2, 2), "uint8"),
                            os.path.join(self.dir.name, "x.png"))
        self.assertIn("del_image_write_png", str(cm.exception))


class TestGrid(unittest.TestCase):
    def test_grid_size_counts_padding_between_and_around(self):
        # 3 images of 4x5 in 2 columns: 2 rows; 2*4 + 3*1 by 2*5 + 3*1.
        self.assertEqual(image.grid_size(3, 4, 5, cols=2, pad=1), (11, 13))
        self.assertEqual(image.grid_size(1, 4, 5, cols=8, pad=0), (4, 5))

    def test_images_are_tiled_row_by_row_with_fill(self):
        images = libdel.Tensor.from_buffer(bytearray([1, 2, 3, 4, 5, 6, 7, 8]),
                                           shape=(2, 2, 2, 1))
        g = image.grid(images, cols=2, pad=1, fill=9)
        self.assertEqual(g.shape, (4, 7, 1))
        self.assertEqual(flat(g), [9, 9, 9, 9, 9, 9, 9,
                                   9, 1, 2, 9, 5, 6, 9,
                                   9, 3, 4, 9, 7, 8, 9,
                                   9, 9, 9, 9, 9, 9, 9])

    def test_cells_after_the_last_image_are_fill(self):
        images = libdel.Tensor.from_buffer(bytearray([1, 2, 3]), shape=(3, 1, 1, 1))
        g = image.grid(images, cols=2, pad=0, fill=200)
        self.assertEqual(flat(g), [1, 2, 3, 200])

    def test_dataset_images_can_be_tiled(self):
        ds = libdel.Dataset.from_arrays(bytes(range(12)), None, 3, 2, 2, 1)
        g = image.grid(ds.images, cols=3, pad=0)
        self.assertEqual(flat(g), [0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11])

    def test_bad_cols_raise_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            image.grid_size(3, 4, 4, cols=0)
        self.assertIn("del_image_grid_size", str(cm.exception))
        out = libdel.Tensor.zeros((4, 4, 1), "uint8")
        with self.assertRaises(libdel.InvalidArgument) as cm:
            image.grid(libdel.Tensor.zeros((2, 2, 2, 1), "uint8"), cols=2, pad=1, out=out)
        self.assertIn("del_image_grid", str(cm.exception))

    def test_grid_errors_name_del_image_grid_not_the_size_query(self):
        images = libdel.Tensor.zeros((2, 2, 2, 1), "uint8")
        for kwargs, needle in (({"cols": 0}, "'cols' must be >= 1, got 0"),
                               ({"pad": -1}, "'pad' must be >= 0, got -1"),
                               ({"fill": 256}, "'fill'")):
            with self.assertRaises(libdel.InvalidArgument) as cm:
                image.grid(images, **kwargs)
            msg = str(cm.exception)
            self.assertTrue(msg.startswith("del_image_grid: "), msg)
            self.assertIn(needle, msg)


class TestAugmentDeterminism(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pixels = bytes((i * 37 + (i >> 3) * 11) % 256 for i in range(6 * 12 * 12 * 3))
        cls.ds = libdel.Dataset.from_arrays(pixels, [0, 1, 2, 0, 1, 2], 6, 12, 12, 3)

    def pipeline(self, seed):
        return (libdel.Augment(seed=seed).set_interp("bilinear", 0).add_randaugment(2, 9)
                .add_random_crop(10, pad=2).add_flip_h().add_cutout(0.5, 4)
                .add_mixup(0.5, 0.4).add_cutmix(0.5, 1.0))

    def run_batch(self, seed, epoch=0, batch_no=0):
        x, y = self.pipeline(seed).batch(self.ds, [5, 0, 3, 2], epoch=epoch, batch_no=batch_no,
                                         mean=[0.5, 0.5, 0.5], std=0.25, num_classes=3)
        return x.tobytes(), y.tobytes()

    def test_same_seed_gives_identical_batches_whatever_the_threads(self):
        old = libdel.get_num_threads()
        try:
            libdel.set_num_threads(1)
            one = self.run_batch(11, epoch=2, batch_no=5)
            libdel.set_num_threads(2)
            two = self.run_batch(11, epoch=2, batch_no=5)
        finally:
            libdel.set_num_threads(old)
        self.assertEqual(one, two)

    def test_seed_and_epoch_change_the_batch(self):
        base = self.run_batch(11)
        self.assertNotEqual(self.run_batch(12)[0], base[0])
        self.assertNotEqual(self.run_batch(11, epoch=1)[0], base[0])

    def test_image_streams_differ_per_index(self):
        aug = libdel.Augment(seed=3).add_trivialaugment()
        src = self.ds.image(0)
        results = {aug.image(src, epoch=0, index=i).tobytes() for i in range(8)}
        self.assertGreater(len(results), 1)
        self.assertEqual(aug.image(src, 0, 4).tobytes(), aug.image(src, 0, 4).tobytes())

    def test_mixup_rows_mix_at_most_two_labels(self):
        aug = libdel.Augment(seed=4).add_mixup(1.0, 1.0)
        _, y = aug.batch(self.ds, [0, 1, 2, 3, 4, 5], mean=0.5, std=0.25, num_classes=3)
        for row in y.tolist():
            self.assertAlmostEqual(sum(row), 1.0, places=5)
            self.assertLessEqual(sum(1 for v in row if v > 0), 2)


if __name__ == "__main__":
    unittest.main()
