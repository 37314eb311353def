"""randaugment_search: a cell equals a training by hand on the split, the
best is the highest cell, progress counts over the cells, bad grids."""

import unittest

import _util  # noqa: F401
import libdel


def dataset(seed):
    r, px = seed, []
    for _ in range(30 * 64):
        r = (r * 1664525 + 1013904223) % 2 ** 32
        px.append(r >> 24)
    labels = [-1 if i % 7 == 6 else i % 3 for i in range(30)]
    return libdel.Dataset.from_arrays(bytes(px), labels, 30, 8, 8, 1)


def model():
    return libdel.Model.from_spec("input 1 8 8; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3")


class TestPolicySearch(unittest.TestCase):
    def test_cells_match_a_training_by_hand(self):
        ds = dataset(3)
        seen = []
        out = libdel.randaugment_search(model(), ds, n=(0, 2), m=(4, 20), steps=6, val_per_class=3,
                                        crop_pad=1, flip=0.5, seed=5,
                                        progress=lambda step, total, loss: seen.append((step, total)),
                                        every=3)
        self.assertEqual([c[:2] for c in out["table"]], [(0, 4), (0, 20), (2, 4), (2, 20)])
        self.assertEqual(seen[-1], (24, 24))
        self.assertEqual(len(seen), 8)
        best = max(out["table"], key=lambda c: c[2])
        self.assertEqual(out["best"], best)
        # the (2, 20) cell by hand: first 3 labeled images of each class validate
        labels = list(ds.labels)
        count = {0: 0, 1: 0, 2: 0}
        train_i, val_i = [], []
        for i, y in enumerate(labels):
            if y < 0:
                continue
            (val_i if count[y] < 3 else train_i).append(i)
            count[y] += 1
        train, val = ds.subset(train_i), ds.subset(val_i)
        m = model()
        m.init(5)
        aug = libdel.Augment(5).add_random_crop(8, 8, pad=1).add_flip_h(0.5).add_randaugment(2, 20)
        t = libdel.Trainer.supervised(m, train, augment=aug, seed=5)
        t.fit(6)
        self.assertEqual(out["table"][3][2], t.evaluate(val))

    def test_bad_grids_are_refused(self):
        with self.assertRaisesRegex(libdel.InvalidArgument, "N must be in 0..14"):
            libdel.randaugment_search(model(), dataset(4), n=(15,), m=(9,), val_per_class=3)
        with self.assertRaisesRegex(libdel.InvalidArgument, "M must be in 0..30"):
            libdel.randaugment_search(model(), dataset(4), n=(2,), m=(31,), val_per_class=3)
        with self.assertRaisesRegex(libdel.InvalidArgument, "holding out 20"):
            libdel.randaugment_search(model(), dataset(4), n=(2,), m=(9,))


if __name__ == "__main__":
    unittest.main()
