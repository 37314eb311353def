"""The augmentation ops as exposed by libdel.image (wrappers made from _ffi)."""

import unittest

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


if __name__ == "__main__":
    unittest.main()
