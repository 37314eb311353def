"""Trainer.pseudo_label: labeled and unlabeled batches, the model's own
predictions as labels for the unlabeled ones."""

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


class TestPseudoLabel(unittest.TestCase):
    def run_pl(self, truth=None, **settings):
        m = model()
        t = libdel.Trainer.pseudo_label(m, dataset(12, 1), dataset(20, 2, False), batch_size=6,
                                        unlabeled_batch_size=10, pl_ramp=(1, 3, 2.0),
                                        unlabeled_truth=truth, **settings)
        t.fit(6)
        return m, t

    def test_hidden_labels_never_train_and_are_scored(self):
        a, ta = self.run_pl(pl_threshold=0.4)
        b, tb = self.run_pl(truth=[i % 3 for i in range(20)], pl_threshold=0.4)
        c, _ = self.run_pl(truth=[(i * 7 + 2) % 3 for i in range(20)], pl_threshold=0.4)
        self.assertEqual(list(a.params), list(b.params))
        self.assertEqual(list(a.params), list(c.params))
        rate, acc, judged = tb.pseudo_label_stats()
        self.assertTrue(0.0 <= rate <= 1.0)
        self.assertEqual(ta.pseudo_label_stats()[2], 0)
        self.assertTrue(math.isnan(ta.pseudo_label_stats()[1]))
        if judged:
            self.assertTrue(0.0 <= acc <= 1.0)

    def test_options_change_the_run(self):
        base = list(self.run_pl()[0].params)
        for settings in ({"pl_soft": True}, {"pl_bn": "frozen"}, {"pl_threshold": 0.9}):
            self.assertNotEqual(list(self.run_pl(**settings)[0].params), base, settings)
        rate = self.run_pl()[1].pseudo_label_stats()[0]
        self.assertEqual(rate, 1.0)  # threshold 0 keeps every pseudo-label

    def test_checkpoint_resumes(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pl.delc")
            whole = model()
            libdel.Trainer.pseudo_label(whole, dataset(12, 1), dataset(20, 2, False), batch_size=6,
                                        unlabeled_batch_size=10, total_steps=6).fit(6)
            half = model()
            t = libdel.Trainer.pseudo_label(half, dataset(12, 1), dataset(20, 2, False), batch_size=6,
                                            unlabeled_batch_size=10, total_steps=6)
            t.fit(3)
            t.save_checkpoint(path)
            again = model()
            t2 = libdel.Trainer.pseudo_label(again, dataset(12, 1), dataset(20, 2, False),
                                             batch_size=6, unlabeled_batch_size=10, total_steps=6)
            t2.load_checkpoint(path)
            t2.fit(3)
            self.assertEqual(list(whole.params), list(again.params))

    def test_errors(self):
        u = dataset(20, 2, False)
        with self.assertRaisesRegex(libdel.InvalidArgument, "threshold"):
            libdel.Trainer.pseudo_label(model(), dataset(12, 1), u, pl_threshold=1.5)
        with self.assertRaisesRegex(libdel.InvalidArgument, "'t2'"):
            libdel.Trainer.pseudo_label(model(), dataset(12, 1), u, pl_ramp=(5, 2, 3.0))
        with self.assertRaisesRegex(libdel.InvalidArgument, "pl_bn"):
            libdel.Trainer.pseudo_label(model(), dataset(12, 1), u, pl_bn="none")
        with self.assertRaisesRegex(libdel.InvalidArgument, "'n'"):
            libdel.Trainer.pseudo_label(model(), dataset(12, 1), u, unlabeled_truth=[0, 1])
        other = libdel.Dataset.from_arrays(bytes(25 * 4), [-1] * 4, 4, 5, 5, 1)
        with self.assertRaisesRegex(libdel.InvalidArgument, "unlabeled"):
            libdel.Trainer.pseudo_label(model(), dataset(12, 1), other)
        with self.assertRaisesRegex(libdel.InvalidArgument, "does not apply"):
            libdel.Trainer.supervised(model(), dataset(12, 1), pl_threshold=0.5)


if __name__ == "__main__":
    unittest.main()
