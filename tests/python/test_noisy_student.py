"""NoisyStudent and select_pseudo_labels: the selection against a count
by hand, a run whose iterations chain, a checkpointed run stopped and
finished to the same bytes, bad arguments."""

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


def model(seed=21):
    m = libdel.Model.from_spec("input 1 4 4; conv2d 2 k=3 p=1; batchnorm; relu; flatten; dropout 0.25; linear 3")
    m.init(seed)
    return m


PROBS = [[.5, .3, .2], [.05, .9, .05], [.8, .1, .1], [.4, .4, .2],
         [.6, .2, .2], [.35, .35, .3], [.7, .15, .15], [.3, .3, .4]]


class TestSelect(unittest.TestCase):
    def test_selection_matches_a_count_by_hand(self):
        probs = libdel.Tensor.from_list([v for row in PROBS for v in row], shape=(8, 3))
        self.assertEqual(libdel.select_pseudo_labels(probs, 0.5, 0), [0, 1, 2, 4, 6])
        self.assertEqual(libdel.select_pseudo_labels(probs, 0.5, 2), [2, 6, 1, 1])
        # mean of 6, 1, 1 kept per class: 3
        self.assertEqual(libdel.select_pseudo_labels(probs, 0.3), [2, 6, 4, 1, 1, 1, 7, 7, 7])
        self.assertEqual(libdel.select_pseudo_labels(probs, 1.0), [])
        with self.assertRaisesRegex(libdel.InvalidArgument, "'threshold' must be in \\[0, 1\\]"):
            libdel.select_pseudo_labels(probs, 1.5)


class TestNoisyStudent(unittest.TestCase):
    def make(self, teacher, **kw):
        settings = dict(iterations=2, steps=6, batch_sizes=(6, 10), lr=0.2, momentum=0.5)
        settings.update(kw)
        return libdel.NoisyStudent(teacher, dataset(12, 1), dataset(30, 2, False), **settings)

    def test_a_run_trains_students_that_chain(self):
        teacher = model()
        val = dataset(24, 5)
        ns = self.make(teacher, validation=val)
        calls = []
        ns.run(progress=lambda step, total, loss: calls.append((step, total)), every=3)
        self.assertEqual(calls, [(3, 12), (6, 12), (9, 12), (12, 12)])
        final = ns.model()
        self.assertNotEqual(final.to_bytes(), teacher.to_bytes())
        acc0, kept0, pool0 = ns.stats(0)
        acc2, kept2, pool2 = ns.stats(2)
        self.assertTrue(0.0 <= acc0 <= 1.0 and 0.0 <= acc2 <= 1.0)
        self.assertEqual((kept0, pool0), (0, 0))
        self.assertGreater(pool2, 0)
        # two iterations = one, then one more from seed 1 taught by its student
        first = self.make(teacher, iterations=1)
        first.run()
        second = self.make(first.model(), iterations=1, seed=1)
        second.run()
        self.assertEqual(second.model().to_bytes(), final.to_bytes())
        with self.assertRaises(libdel.StateError):
            ns.run()

    def test_stopped_and_run_again_it_ends_with_the_same_bytes(self):
        teacher = model(3)
        want = self.make(teacher)
        want.run()
        with tempfile.TemporaryDirectory() as d:
            ckpt = os.path.join(d, "run")
            ns = self.make(teacher, checkpoint_dir=ckpt, checkpoint_every=2)
            with self.assertRaises(libdel.Canceled):
                ns.run(progress=lambda step, total, loss: step == 9)
            self.assertTrue(os.path.exists(os.path.join(ckpt, "iteration-1.ckpt")))
            again = self.make(teacher, checkpoint_dir=ckpt, checkpoint_every=2)
            again.run()
            self.assertEqual(again.model().to_bytes(), want.model().to_bytes())
            other = self.make(teacher, steps=7, checkpoint_dir=ckpt)
            with self.assertRaisesRegex(libdel.InvalidArgument, "holds another run \\('steps' is 6 there"):
                other.run()

    def test_bad_arguments(self):
        teacher = model()
        with self.assertRaisesRegex(libdel.InvalidArgument, "'threshold' must be in \\[0, 1\\]"):
            self.make(teacher, threshold=2.0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "4 class scores, the teacher 3"):
            self.make(teacher, students=libdel.Model.from_spec("input 1 4 4; flatten; linear 4"))
        wide = libdel.Dataset.from_arrays(bytes(4 * 25), [-1] * 4, 4, 5, 5, 1)
        with self.assertRaisesRegex(libdel.InvalidArgument, "'unlabeled' has 1 x 5 x 5 images"):
            libdel.NoisyStudent(teacher, dataset(12, 1), wide)
        ns = self.make(teacher)
        with self.assertRaises(libdel.StateError):
            ns.stats(1)
        ns = self.make(teacher, iterations=1)
        ns.run()
        self.assertTrue(math.isnan(ns.stats(1)[0]))  # no validation split


if __name__ == "__main__":
    unittest.main()
