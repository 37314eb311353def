"""Trainer.lwf: a new head learns while the old head is held to its
recorded outputs."""

import unittest

import _util  # noqa: F401
import libdel


def dataset(n=20):
    images = bytes((i * 67 + 3) % 256 for i in range(n * 4))
    return libdel.Dataset.from_arrays(images, [i % 2 for i in range(n)], n, 2, 2, 1)


class TestLwf(unittest.TestCase):
    def test_heads_and_evaluation(self):
        m = libdel.Model.from_spec("input 1 2 2; flatten; linear 5; relu; linear 3")
        t = libdel.Trainer.lwf(m, dataset(), 2, lwf_lambda=2.0, temperature=2.0, head_warmup=2)
        self.assertEqual(m.heads, ["old", "new"])
        t.fit(4)
        self.assertGreaterEqual(t.evaluate(dataset()), 0.0)
        old_task = libdel.Dataset.from_arrays(bytes(range(12)), [0, 1, 2], 3, 2, 2, 1)
        self.assertGreaterEqual(t.evaluate_head(old_task, "old"), 0.0)
        with self.assertRaises(libdel.InvalidArgument):
            t.evaluate_head(old_task, "new")  # label 2 has no output there
        with self.assertRaises(libdel.InvalidArgument):
            t.set(lwf_lambda=-1.0)
        with self.assertRaises(libdel.StateError):
            t.set(lwf_live_original=True)  # after the first step

    def test_live_original(self):
        m = libdel.Model.from_spec("input 1 2 2; flatten; linear 5; relu; linear 3")
        t = libdel.Trainer.lwf(m, dataset(), 2, lwf_live_original=True)
        t.fit(3)
        self.assertGreaterEqual(t.evaluate(dataset()), 0.0)


if __name__ == "__main__":
    unittest.main()
