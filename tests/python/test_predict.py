"""Model.predict from Python: logits and softmax(T) of a hand-set linear model
against values worked out by hand (the SPEC's test vectors), heads, the
training flag, unlabeled images, errors; with numpy, rows against an
evaluation-mode forward of the same batch."""

import math
import unittest

import _util
import libdel


def linear_model():
    """flatten; linear 2 on 1x1x2 images: W = [[2, 1], [4, -1]], b = (3, 6).
    With mean 0, std 1 the image (255, 0) gives the logits (5, 10), (0, 255)
    gives (4, 5) and (0, 0) gives (3, 6)."""
    m = libdel.Model(1, 1, 2).add_flatten().add_linear(2)
    for i, v in enumerate([2, 1, 4, -1, 3, 6]):
        m.params[i] = v
    return m


def linear_dataset():
    return libdel.Dataset.from_arrays(bytes([255, 0, 0, 255, 0, 0]), [1, -1, -1], 3, 1, 2)


def softmax2(a, b, t):
    """softmax((a, b) / t), worked out as 1 / (1 + e^((b - a) / t))."""
    p0 = 1.0 / (1.0 + math.exp((b - a) / t))
    return [p0, 1.0 - p0]


class TestPredict(unittest.TestCase):
    def test_logits_of_the_hand_set_model(self):
        y = linear_model().predict(linear_dataset(), mean=0.0, std=1.0)
        self.assertIsInstance(y, libdel.Tensor)
        self.assertEqual(y.shape, (3, 2))
        self.assertEqual(y.tolist(), [[5.0, 10.0], [4.0, 5.0], [3.0, 6.0]])

    def test_softmax_matches_the_spec_vectors(self):
        m, ds = linear_model(), linear_dataset()
        p = m.predict(ds, mean=0.0, std=1.0, softmax=True).tolist()
        self.assertAlmostEqual(p[0][0], 0.0067, delta=5e-5)
        self.assertAlmostEqual(p[0][1], 0.9933, delta=5e-5)
        p = m.predict(ds, mean=0.0, std=1.0, temperature=100.0, softmax=True).tolist()
        self.assertAlmostEqual(p[0][0], 0.4875, delta=5e-5)
        self.assertAlmostEqual(p[0][1], 0.5125, delta=5e-5)
        for t in (0.5, 1.0, 4.0, 100.0):
            p = m.predict(ds, mean=0.0, std=1.0, temperature=t, softmax=True).tolist()
            for row, (a, b) in zip(p, [(5, 10), (4, 5), (3, 6)]):
                for got, want in zip(row, softmax2(a, b, t)):
                    self.assertAlmostEqual(got, want, delta=1e-7)
                self.assertAlmostEqual(sum(row), 1.0, delta=1e-6)

    def test_head_and_training_flag(self):
        m = libdel.Model(1, 1, 2).add_flatten()
        m.add_head("old", "linear 2").add_head("new", "linear 3")
        m.init(4)
        ds = linear_dataset()
        self.assertTrue(m.training)
        first = m.predict(ds, mean=0.0, std=1.0).tolist()
        old = m.predict(ds, mean=0.0, std=1.0, head="old").tolist()
        new = m.predict(ds, mean=0.0, std=1.0, head="new")
        self.assertTrue(m.training)
        self.assertEqual(first, old)
        self.assertEqual(new.shape, (3, 3))
        m.eval()
        m.predict(ds, mean=0.0, std=1.0)
        self.assertFalse(m.training)

    def test_unlabeled_images_get_rows(self):
        m = linear_model()
        unlabeled = libdel.Dataset.from_arrays(bytes([255, 0, 0, 255, 0, 0]), None, 3, 1, 2)
        self.assertEqual(m.predict(unlabeled, mean=0.0, std=1.0).tolist(),
                         m.predict(linear_dataset(), mean=0.0, std=1.0).tolist())

    def test_predict_batch(self):
        self.assertEqual(linear_model().predict_batch, 512)
        self.assertEqual(libdel.Model.from_spec("input 3 32 32; conv2d 160 k=3 p=1").predict_batch, 128)

    def test_errors(self):
        m, ds = linear_model(), linear_dataset()
        with self.assertRaisesRegex(libdel.InvalidArgument, "'std\\[0\\]'"):
            m.predict(ds, mean=0.0, std=0.0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "'temperature'"):
            m.predict(ds, mean=0.0, std=1.0, temperature=0.0, softmax=True)
        with self.assertRaisesRegex(libdel.InvalidArgument, "'head'"):
            m.predict(ds, head="old")
        with self.assertRaisesRegex(libdel.InvalidArgument, "one per channel"):
            m.predict(ds, mean=[0.0, 0.0])
        with self.assertRaisesRegex(libdel.InvalidArgument, "'dataset'"):
            m.predict([1, 2, 3])
        wrong = libdel.Dataset.from_arrays(bytes(4), None, 1, 2, 2)
        with self.assertRaisesRegex(libdel.InvalidArgument, "model's input"):
            m.predict(wrong)
        m.params[4] = float("nan")
        with self.assertRaisesRegex(libdel.NumericError, "output 0 of image 0 is nan"):
            m.predict(ds, mean=0.0, std=1.0)


@_util.needs_numpy
class TestPredictNumpy(unittest.TestCase):
    def test_rows_equal_an_eval_forward_of_the_same_batch(self):
        import numpy as np

        rng = np.random.default_rng(3)
        n = 40
        images = rng.integers(0, 256, size=(n, 10, 10), dtype=np.uint8)
        ds = libdel.Dataset.from_arrays(images.tobytes(), None, n, 10, 10)
        m = libdel.Model.from_spec("input 1 10 10; conv2d 16 k=3 p=1 bias=0; batchnorm; relu; "
                                   "conv2d 16 k=3 p=1; relu; flatten; linear 10")
        m.init(7)
        y = m.predict(ds, mean=0.3, std=0.4, temperature=2.0, softmax=True).numpy(copy=True)
        self.assertEqual(y.shape, (n, 10))

        b = m.predict_batch
        idx = [min(i, n - 1) for i in range(b)]  # the padded batch predict ran
        x, _ = ds.batch(idx, mean=0.3, std=0.4)
        m.eval()
        z = m.forward(x).numpy(copy=True)[:n].astype(np.float64) / 2.0
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(y, p, rtol=0, atol=1e-6)


if __name__ == "__main__":
    unittest.main()
