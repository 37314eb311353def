"""Model copies from Python: clone (and copy.deepcopy), copy_weights_from and
the exponential moving average of weights, against hand-worked values."""
import copy
import math
import unittest

import _util  # noqa: F401
import libdel


def batch(model, n):
    c, h, w = model.input_shape
    vals = [((i * 37) % 101) / 50.0 - 1.0 for i in range(n * c * h * w)]
    return libdel.Tensor.from_list(vals, (n, c, h, w))


def train_step(model, opt, x, labels):
    model.zero_grad()
    out = model(x)
    _, grad = libdel.cross_entropy(out, labels, grad=True)
    model.backward(grad)
    opt.step()
    return out.tolist()


def three_params(a, b, c):
    m = libdel.Model.from_spec("input 1 1 2; flatten; linear 1")
    p = m.params
    p[0], p[1], p[2] = a, b, c
    return m


class TestClone(unittest.TestCase):
    def make(self):
        m = libdel.Model.preset("fmnist-cnn", channels=1, height=12, width=12, num_classes=4)
        m.init(7)
        m.freeze(0, 2)
        m.set_lr_mult(0.5, 3, 5)
        opt = libdel.Optimizer.sgd(m, lr=0.05)
        train_step(m, opt, batch(m, 3), [0, 1, 2])
        return m

    def test_clone_has_the_same_weights_groups_and_mode(self):
        m = self.make()
        m.eval()
        c = m.clone()
        self.assertIsNot(c, m)
        self.assertEqual(list(c.params), list(m.params))
        self.assertEqual(list(c.buffers), list(m.buffers))
        self.assertEqual(c.layer_types, m.layer_types)
        self.assertEqual([c.layer_frozen(i) for i in range(c.num_layers)],
                         [m.layer_frozen(i) for i in range(m.num_layers)])
        self.assertEqual(c.layer_lr_mult(4), 0.5)
        self.assertFalse(c.training)
        self.assertIsNone(c.output)
        self.assertEqual(set(c.grads), {0.0})
        x = batch(m, 2)
        self.assertEqual(c(x).tolist(), m(x).tolist())

    def test_clone_trains_as_the_original_with_the_same_dropout(self):
        m = self.make()
        c = copy.deepcopy(m)
        om, oc = libdel.Optimizer.sgd(m, lr=0.05), libdel.Optimizer.sgd(c, lr=0.05)
        x = batch(m, 3)
        for _ in range(2):
            self.assertEqual(train_step(c, oc, x, [2, 0, 1]), train_step(m, om, x, [2, 0, 1]))
        self.assertEqual(list(c.params), list(m.params))
        self.assertEqual(list(c.buffers), list(m.buffers))

    def test_clone_keeps_heads_and_is_independent(self):
        m = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=3)
        m.split_head("old", -1)
        m.add_head("new", "linear 2")
        c = copy.copy(m)
        self.assertEqual(c.heads, ["old", "new"])
        self.assertEqual(c.head_layers("new"), m.head_layers("new"))
        before = list(m.params)
        c.params[0] = 42.0
        c.remove_head("new")
        self.assertEqual(list(m.params), before)
        self.assertEqual(m.heads, ["old", "new"])
        m.close()
        self.assertEqual(c.params[0], 42.0)

    def test_copy_weights_from_a_model_of_the_same_preset(self):
        src = self.make()
        dst = libdel.Model.preset("fmnist-cnn", channels=1, height=12, width=12, num_classes=4)
        self.assertIs(dst.copy_weights_from(src), dst)
        self.assertEqual(list(dst.params), list(src.params))
        self.assertEqual(list(dst.buffers), list(src.buffers))
        self.assertFalse(dst.layer_frozen(0))  # dst's groups are its own
        x = batch(src, 2)
        self.assertEqual(dst.eval()(x).tolist(), src.eval()(x).tolist())

    def test_copy_weights_from_another_architecture_raises_naming_the_difference(self):
        src = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=3)
        dst = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=5)
        before = list(dst.params)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            dst.copy_weights_from(src)
        self.assertIn("layer 3 (linear) differs: out 3 in 'src', 5 in 'dst'", str(cm.exception))
        self.assertEqual(list(dst.params), before)
        with self.assertRaises(libdel.InvalidArgument):
            dst.copy_weights_from("not a model")


class TestEma(unittest.TestCase):
    def assert_params(self, m, want):
        for got, w in zip(m.params, want):
            self.assertAlmostEqual(got, w, delta=1e-6 * (1 + abs(w)))

    def test_two_updates_match_the_closed_form(self):
        # e0 = (1, 2, 3), p = (0, 10, -4), decay 0.9: e2 = 0.81 e0 + 0.19 p
        ema, m = three_params(1, 2, 3), three_params(0, 10, -4)
        self.assertIs(ema.ema_update(m, 0.9), ema)
        self.assert_params(ema, [0.9, 2.8, 2.3])
        ema.ema_update(m, 0.9)
        self.assert_params(ema, [0.81, 3.52, 1.67])

    def test_decay_0_copies_and_decay_1_keeps(self):
        ema, m = three_params(1, 2, 3), three_params(0.25, 10, -4)
        ema.ema_update(m, 1.0)
        self.assertEqual(list(ema.params), [1, 2, 3])
        ema.ema_update(m, 0.0)
        self.assertEqual(list(ema.params), [0.25, 10, -4])

    def test_warm_up_uses_min_decay_one_plus_step_over_ten_plus_step(self):
        ema, m = three_params(1, 2, 3), three_params(0, 0, 0)
        ema.ema_update(m, 0.999, step=0)  # decay 0.1
        self.assert_params(ema, [0.1, 0.2, 0.3])
        ema.ema_update(m, 0.999, step=8)  # decay 0.5
        self.assert_params(ema, [0.05, 0.1, 0.15])
        ema.ema_update(m, 0.25, step=80)  # min(0.25, 0.9)
        self.assert_params(ema, [0.0125, 0.025, 0.0375])

    def test_bad_decay_and_mismatch_raise(self):
        ema, m = three_params(1, 2, 3), three_params(0, 10, -4)
        for bad in (-0.5, 1.5, math.nan):
            with self.assertRaises(libdel.InvalidArgument) as cm:
                ema.ema_update(m, bad)
            self.assertIn("'decay' must be in [0, 1]", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            ema.ema_update(m, 0.9, step=-1)
        with self.assertRaises(libdel.InvalidArgument):
            ema.ema_update(ema, 0.9)
        other = libdel.Model.from_spec("input 1 1 2; flatten; linear 2")
        with self.assertRaises(libdel.InvalidArgument) as cm:
            other.ema_update(m, 0.9)
        self.assertIn("out 1 in 'model', 2 in 'ema'", str(cm.exception))
        self.assertEqual(list(ema.params), [1, 2, 3])

    def test_ema_of_a_clone_copies_batchnorm_statistics(self):
        m = libdel.Model.from_spec("input 2 2 2; batchnorm; flatten; linear 2")
        ema = m.clone()
        m.train()(batch(m, 4))  # a training forward moves the running statistics
        self.assertNotEqual(list(m.buffers), list(ema.buffers))
        ema.ema_update(m, 0.999)
        self.assertEqual(list(ema.buffers), list(m.buffers))


if __name__ == "__main__":
    unittest.main()
