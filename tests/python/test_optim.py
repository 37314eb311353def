"""Optimizer: AdamW, step schedule, warm-up and gradient clipping against
hand-worked values (torch.optim.AdamW / StepLR / clip_grad_norm_ formulas)."""

import math
import unittest

import _util  # noqa: F401
import libdel

INITIAL = [1, 2, 3, 4, -1, 0, 1, 0, 0.5, -0.5]


def tiny_linear():
    """flatten + linear 4 -> 2: ten parameters with known values."""
    m = libdel.Model(1, 2, 2).add_flatten().add_linear(2)
    p = m.params
    for i, v in enumerate(INITIAL):
        p[i] = v
    m.zero_grad()
    return m


def adamw_reference(p, grads, lr, beta1, beta2, eps, wd):
    """torch.optim.AdamW on one scalar, in double precision."""
    m = v = 0.0
    for t, g in enumerate(grads, 1):
        p *= 1 - lr * wd
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


class TestAdamW(unittest.TestCase):
    def test_first_step_moves_by_lr_after_decoupled_decay(self):
        m = tiny_linear()
        opt = libdel.Optimizer.adamw(m, lr=0.1, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.01)
        m.grads[0] = 0.5
        opt.step()
        # p = 1 * (1 - 0.1*0.01) - 0.1 * m_hat/sqrt(v_hat) = 0.999 - 0.1 (m_hat = 0.5, v_hat = 0.25)
        self.assertAlmostEqual(m.params[0], 0.899, places=6)
        # A zero gradient only decays: 2 * 0.999.
        self.assertAlmostEqual(m.params[1], 1.998, places=6)
        self.assertEqual(opt.steps, 1)

    def test_three_steps_follow_the_reference_formula(self):
        m = tiny_linear()
        opt = libdel.Optimizer.adamw(m, lr=0.05, betas=(0.8, 0.99), eps=1e-6,
                                     weight_decay=0.1)
        grads = [0.5, -0.25, 2.0]
        for g in grads:
            m.grads[2] = g
            opt.step()
        want = adamw_reference(3.0, grads, 0.05, 0.8, 0.99, 1e-6, 0.1)
        self.assertAlmostEqual(m.params[2], want, places=5)

    def test_defaults_are_pytorchs(self):
        m = tiny_linear()
        opt = libdel.Optimizer.adamw(m)
        self.assertAlmostEqual(opt.lr, 1e-3, places=9)
        m.grads[3] = 1.0
        opt.step()
        want = adamw_reference(4.0, [1.0], 1e-3, 0.9, 0.999, 1e-8, 1e-2)
        self.assertAlmostEqual(m.params[3], want, places=6)

    def test_bad_beta_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Optimizer.adamw(tiny_linear(), betas=(1.0, 0.999))
        self.assertIn("del_optimizer_new_adamw", str(cm.exception))
        self.assertIn("beta1", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Optimizer.adamw(tiny_linear(), betas=0.9)


class TestSchedules(unittest.TestCase):
    def lrs(self, opt, n):
        out = []
        for _ in range(n):
            out.append(opt.lr)
            opt.step()
        return out

    def test_step_schedule_multiplies_by_gamma_every_step_size(self):
        opt = libdel.Optimizer.sgd(tiny_linear(), lr=0.1).set_step_schedule(2, 0.5)
        for got, want in zip(self.lrs(opt, 6), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]):
            self.assertAlmostEqual(got, want, places=7)

    def test_warmup_ramps_linearly_then_cosine_runs_over_the_rest(self):
        opt = libdel.Optimizer.sgd(tiny_linear(), lr=0.2).set_warmup(4)
        opt.set_schedule("cosine", 10)
        got = self.lrs(opt, 10)
        # Warm-up: 0.2 * (t+1)/4; then cosine over T = 6: t = 0 -> 0.2, t = 3 -> 0.1.
        for g, w in zip(got[:5], [0.05, 0.1, 0.15, 0.2, 0.2]):
            self.assertAlmostEqual(g, w, places=6)
        self.assertAlmostEqual(got[7], 0.1, places=6)
        self.assertAlmostEqual(opt.lr, 0.0, places=7)

    def test_step_kind_of_set_schedule_points_to_set_step_schedule(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Optimizer.sgd(tiny_linear()).set_schedule("step", 10)
        self.assertIn("del_optimizer_set_step_schedule", str(cm.exception))

    def test_step_schedule_errors_carry_the_c_message(self):
        opt = libdel.Optimizer.sgd(tiny_linear())
        with self.assertRaises(libdel.InvalidArgument) as cm:
            opt.set_step_schedule(0, 0.5)
        self.assertIn("step_size", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument) as cm:
            opt.set_warmup(-1)
        self.assertIn("del_optimizer_set_warmup", str(cm.exception))


class TestClipping(unittest.TestCase):
    def test_global_norm_is_clipped_and_reported(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m, lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False)
        opt.set_clip_norm(1.0)
        self.assertEqual(opt.grad_norm, 0.0)
        m.grads[0] = 3.0
        m.grads[1] = 4.0
        opt.step()
        self.assertAlmostEqual(opt.grad_norm, 5.0, places=6)
        # The step uses g * 1 / (5 + 1e-6): (0.6, 0.8).
        self.assertAlmostEqual(m.params[0], 0.4, places=5)
        self.assertAlmostEqual(m.params[1], 1.2, places=5)
        self.assertEqual(m.grads[0], 3.0)

    def test_small_gradients_are_left_alone(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m, lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False)
        opt.set_clip_norm(10.0)
        m.grads[0] = 3.0
        m.grads[1] = 4.0
        opt.step()
        self.assertAlmostEqual(m.params[0], -2.0, places=6)
        self.assertAlmostEqual(opt.grad_norm, 5.0, places=6)

    def test_norm_is_zero_when_clipping_is_off(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m)
        m.grads[0] = 3.0
        opt.step()
        self.assertEqual(opt.grad_norm, 0.0)

    def test_negative_max_norm_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Optimizer.sgd(tiny_linear()).set_clip_norm(-1.0)
        self.assertIn("del_optimizer_set_clip_norm", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
