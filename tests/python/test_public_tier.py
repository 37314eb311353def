"""The public calls the trainers stand on: set_last_error, permutation,
Augment.batch with per-image epochs and caller-given targets."""

import unittest

import _util  # noqa: F401
import libdel


class TestPublicTier(unittest.TestCase):
    def test_set_last_error(self):
        self.assertEqual(libdel.set_last_error(libdel._ffi.DEL_EINVAL, "mine: 'k' is bad"),
                         libdel._ffi.DEL_EINVAL)
        self.assertEqual(libdel.last_error(), "mine: 'k' is bad")

    def test_permutation(self):
        p = libdel.permutation(50, seed=3, epoch=1, stream=1 << 40)
        self.assertEqual(sorted(p), list(range(50)))
        self.assertEqual(p, libdel.permutation(50, seed=3, epoch=1, stream=1 << 40))
        self.assertNotEqual(p, libdel.permutation(50, seed=3, epoch=2, stream=1 << 40))
        self.assertEqual(libdel.permutation(0, seed=1), [])
        with self.assertRaises(libdel.InvalidArgument):
            libdel.permutation(-1, seed=1)

    def test_batch_mixes_targets_and_takes_unlabeled_images(self):
        ds = libdel.Dataset.from_arrays(bytes(range(16)), [0, 1, -1, -1], 4, 2, 2, 1)
        aug = libdel.Augment(seed=2).add_mixup(1.0, 1.0)
        targets = libdel.Tensor.from_list([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75], [0.5, 0.5]])
        _, mixed = aug.batch(ds, [0, 1, 2, 3], targets=targets)
        for row in mixed.tolist():
            self.assertAlmostEqual(row[0] + row[1], 1.0, places=6)
            self.assertTrue(0.0 <= row[0] <= 1.0)
        with self.assertRaises(libdel.InvalidArgument):
            aug.batch(ds, [0, 1, 2, 3], num_classes=2)  # unlabeled images need targets
        x1, _ = aug.batch(ds, [0, 1], epoch=0, num_classes=2)
        x2, _ = aug.batch(ds, [0, 1], epoch=0, epochs=[0, 0], num_classes=2)
        self.assertEqual(x1.tolist(), x2.tolist())


if __name__ == "__main__":
    unittest.main()
