"""Trainer.consistency (FixMatch, FlexMatch) and the moving average of
weights of any trainer (ema=...)."""

import math
import os
import tempfile
import unittest

import _util  # noqa: F401
import libdel


def dataset(n, seed, labeled=True):
    r, px = seed, []
    for _ in range(n * 16):
        r = (r * 1664525 + 1013904223) % 2 ** 32
        px.append(r >> 24)
    labels = [i % 3 if labeled else -1 for i in range(n)]
    return libdel.Dataset.from_arrays(bytes(px), labels, n, 4, 4, 1)


def model():
    m = libdel.Model.from_spec("input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; linear 3")
    m.init(21)
    return m


def views():
    weak = libdel.Augment().add_random_crop(4, 4, pad=1).add_flip_h(0.5)
    strong = libdel.Augment().add_random_crop(4, 4, pad=1).add_randaugment(2, 10).add_cutout(1.0, 2)
    return weak, strong


class TestConsistency(unittest.TestCase):
    def trainer(self, m, **settings):
        weak, strong = views()
        settings.setdefault("unlabeled_ratio", 2)
        return libdel.Trainer.consistency(m, dataset(12, 1), dataset(20, 2, False), weak, strong,
                                          batch_size=4, **settings)

    def test_trains_and_scores_the_moving_average(self):
        m = model()
        t = self.trainer(m, consistency_threshold=0.5, ema=0.9)
        before = list(m.params)
        t.fit(5)
        self.assertNotEqual(list(m.params), before)
        ema = t.ema_model()
        self.assertIsInstance(ema, libdel.Model)
        self.assertNotEqual(list(ema.params), list(m.params))
        rate = t.consistency_stats()
        self.assertTrue(0.0 <= rate <= 1.0)
        acc = t.evaluate(dataset(12, 1))
        probe = libdel.Trainer.supervised(ema, dataset(12, 1))
        self.assertEqual(acc, probe.evaluate(dataset(12, 1)))

    def test_flexmatch_and_resume(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.delc")
            a = model()
            self.trainer(a, flexmatch=True, total_steps=6).fit(6)
            b = model()
            t = self.trainer(b, flexmatch=True, total_steps=6)
            t.fit(3)
            t.save_checkpoint(path)
            c = model()
            t2 = self.trainer(c, total_steps=6)
            t2.load_checkpoint(path)
            t2.fit(3)
            self.assertEqual(list(a.params), list(c.params))

    def test_ema_on_a_supervised_trainer(self):
        t = libdel.Trainer.supervised(model(), dataset(12, 1))
        self.assertIsNone(t.ema_model())
        t.set(ema=0.5)
        t.fit(2)
        self.assertIsNotNone(t.ema_model())
        with self.assertRaisesRegex(libdel.InvalidArgument, "decay"):
            t.set(ema=1.0)

    def test_errors(self):
        with self.assertRaisesRegex(libdel.InvalidArgument, "threshold"):
            self.trainer(model(), consistency_threshold=2.0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "'mu'"):
            self.trainer(model(), unlabeled_ratio=0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "weight"):
            self.trainer(model(), consistency_weight=-1.0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "does not apply"):
            libdel.Trainer.supervised(model(), dataset(12, 1), flexmatch=True)
        self.assertTrue(math.isnan(self.trainer(model()).consistency_stats()))


if __name__ == "__main__":
    unittest.main()
