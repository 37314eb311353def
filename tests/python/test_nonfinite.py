"""Divergence is reported: non-finite steps stop the fit (NumericError) or
are skipped and counted; evaluation refuses a NaN model; buffers and
per-layer parameter ranges."""

import math
import unittest

import _util  # noqa: F401
import libdel


def bright_dataset():
    """16 black 2x2 images and one white one (image 5). With mean 0 and
    std 1e-38 the white image normalises to 1e38 per pixel."""
    images = bytearray(17 * 4)
    images[5 * 4:6 * 4] = bytes([255] * 4)
    return libdel.Dataset.from_arrays(bytes(images), [i % 2 for i in range(17)], 17, 2, 2, 1)


def ones_model():
    """flatten + linear 2 with every weight 1: the white image's logits
    (4 x 1e38) overflow, and black images (input 0) never change them."""
    m = libdel.Model.from_spec("input 1 2 2; flatten; linear 2")
    off, count = m.layer_params(1)
    params = m.params
    for i in range(off, off + 8):
        params[i] = 1.0
    return m


class TestNonFinite(unittest.TestCase):
    def test_layer_params_and_buffers(self):
        m = libdel.Model.from_spec("input 1 2 2; conv2d 3 k=1; batchnorm; flatten; linear 2")
        self.assertEqual(m.layer_params(0), (0, 3 * 1 + 3))
        self.assertEqual(m.layer_params(1), (6, 6))
        self.assertEqual(m.layer_params(2)[1], 0)
        self.assertEqual(m.num_buffers, 6)  # running mean and variance of 3 channels
        self.assertEqual(len(m.buffers), 6)
        with self.assertRaises(libdel.InvalidArgument):
            m.layer_params(9)

    def test_nonfinite_step_stops_the_fit_with_the_model_unchanged(self):
        m = ones_model()
        t = libdel.Trainer.supervised(m, bright_dataset(), batch_size=17, mean=0.0, std=1e-38)
        before = list(m.params)
        with self.assertRaises(libdel.NumericError) as cm:
            t.fit(3)
        self.assertEqual(cm.exception.status, libdel._ffi.DEL_ENUMERIC)
        self.assertIn("step 1", str(cm.exception))
        self.assertEqual(list(m.params), before)

    def test_skip_policy_counts_the_skipped_steps(self):
        m = ones_model()
        t = libdel.Trainer.supervised(m, bright_dataset(), batch_size=17, mean=0.0, std=1e-38,
                                      nonfinite="skip")
        seen = []
        t.fit(3, progress=lambda step, total, loss: seen.append((t.skipped_steps, loss)))
        self.assertEqual(t.skipped_steps, 3)  # every batch holds the white image
        self.assertEqual([s for s, _ in seen], [1, 2, 3])
        self.assertTrue(all(math.isnan(loss) for _, loss in seen))
        with self.assertRaises(libdel.InvalidArgument):
            t.set(nonfinite="ignore")

    def test_evaluate_refuses_a_nan_model(self):
        m = libdel.Model.from_spec("input 1 2 2; flatten; linear 2")
        t = libdel.Trainer.supervised(m, bright_dataset())
        m.params[0] = float("nan")
        with self.assertRaises(libdel.NumericError):
            t.evaluate(bright_dataset())


class TestStep(unittest.TestCase):
    def test_steps_equal_a_fit(self):
        images = bytes((i * 37) % 256 for i in range(12 * 4))
        ds = libdel.Dataset.from_arrays(images, [i % 2 for i in range(12)], 12, 2, 2, 1)
        a = libdel.Model.from_spec("input 1 2 2; flatten; linear 2")
        b = libdel.Model.from_spec("input 1 2 2; flatten; linear 2")
        ta = libdel.Trainer.supervised(a, ds, batch_size=5, total_steps=4)
        tb = libdel.Trainer.supervised(b, ds, batch_size=5, total_steps=4)
        ta.fit(4)
        losses = [tb.step() for _ in range(4)]
        self.assertTrue(all(loss > 0 for loss in losses))
        self.assertEqual(list(a.params), list(b.params))
        with self.assertRaises(libdel.StateError):
            libdel.Trainer.supervised(a, ds).step()


if __name__ == "__main__":
    unittest.main()
