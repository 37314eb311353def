"""Parameter groups and the residual/pooling builders from Python."""
import unittest

import libdel


class TestGroups(unittest.TestCase):
    def test_frozen_layers_keep_their_weights_under_sgd(self):
        m = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=3)
        m.freeze(0, -2)  # everything but the last linear
        self.assertTrue(m.layer_frozen(1))
        self.assertFalse(m.layer_frozen(m.num_layers - 1))
        before = list(m.params)
        x = libdel.Tensor.from_list([float(i % 7) / 7 for i in range(2 * 16)], (2, 1, 4, 4))
        m.train()
        out = m(x)
        grad = libdel.Tensor.from_list([0.5, -0.5, 0.0] * 2, (2, 3))
        m.zero_grad()
        m.backward(grad)
        opt = libdel.Optimizer.sgd(m, lr=0.1)
        opt.step()
        after = list(m.params)
        n_head = 256 * 3 + 3  # the last linear: 256 -> 3 with bias
        self.assertEqual(before[:-n_head], after[:-n_head])
        self.assertNotEqual(before[-n_head:], after[-n_head:])
        del out

    def test_input_shape_is_the_one_the_model_was_made_for(self):
        m = libdel.Model.preset("mlp", channels=3, height=17, width=5, num_classes=4)
        self.assertEqual(m.input_shape, (3, 17, 5))

    def test_lr_mult_is_reported_and_checked(self):
        m = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=3)
        m.set_lr_mult(0.1, 0, 1)
        self.assertAlmostEqual(m.layer_lr_mult(0), 0.1, places=6)
        self.assertEqual(m.layer_lr_mult(m.num_layers - 1), 1.0)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            m.set_lr_mult(-1.0)
        self.assertIn("mult", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            m.freeze(0, 99)

    def test_residual_and_pooling_builders_give_expected_shapes(self):
        m = libdel.Model(3, 8, 8)
        m.add_conv2d(4, kernel=3, pad=1, bias=False).add_residual(8, stride=2)
        m.add_avgpool(2).add_global_avgpool().add_linear(5)
        self.assertEqual(m.layer_types,
                         ["conv2d", "residual", "avgpool", "global_avgpool", "linear"])
        x = libdel.Tensor.from_list([0.1] * (2 * 3 * 8 * 8), (2, 3, 8, 8))
        m.eval()
        self.assertEqual(m(x).shape, (2, 5))
        with self.assertRaises(libdel.InvalidArgument):
            m.add_residual(4, survival_prob=0.0)


if __name__ == "__main__":
    unittest.main()
