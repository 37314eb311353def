"""Models, forward/backward, losses and the optimizer."""

import array
import math
import unittest

import _util  # noqa: F401
import libdel


def tiny_linear():
    """flatten + linear 4 -> 2 with known weights: W = [[1,2,3,4],[-1,0,1,0]], b = [0.5,-0.5]
    (parameters in PyTorch order: weight then bias)."""
    m = libdel.Model(1, 2, 2).add_flatten().add_linear(2)
    p = m.params
    for i, v in enumerate([1, 2, 3, 4, -1, 0, 1, 0, 0.5, -0.5]):
        p[i] = v
    return m


class TestModelBuild(unittest.TestCase):
    def test_fmnist_cnn_has_the_pytorch_parameter_count(self):
        m = libdel.Model.preset("fmnist-cnn")
        # conv 1*32*9 + BN 64 + conv 32*32*9 + BN 64 + conv 32*64*9 + BN 128
        # + conv 64*64*9 + BN 128 + linear 3136*128+128 + linear 128*10+10
        self.assertEqual(m.num_params, 468010)
        self.assertEqual(m.output_shape, (10,))
        self.assertEqual(m.layer_types[:3], ["conv2d", "batchnorm", "relu"])

    def test_builders_chain_and_shapes_follow(self):
        m = libdel.Model(1, 8, 8).add_conv2d(4, kernel=3, pad=1, bias=False).add_batchnorm()
        m.add_relu().add_maxpool(2)
        self.assertEqual(m.output_shape, (4, 4, 4))
        m.add_flatten().add_dropout(0.5).add_linear(3)
        self.assertEqual(m.output_shape, (3,))
        self.assertEqual(m.num_params, 4 * 9 + 8 + 64 * 3 + 3)
        self.assertEqual(m.num_layers, 7)

    def test_spec_builds_the_mlp(self):
        m = libdel.Model.from_spec("input 1 28 28; flatten; linear 256; relu; linear 10")
        self.assertEqual(m.num_params, 784 * 256 + 256 + 256 * 10 + 10)

    def test_bad_spec_raises_format_error(self):
        with self.assertRaises(libdel.FormatError) as cm:
            libdel.Model.from_spec("input 1 28 28; frobnicate 3")
        self.assertIn("frobnicate", str(cm.exception))

    def test_unknown_preset_lists_the_presets(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Model.preset("resnet-9000")
        self.assertIn("fmnist-cnn", str(cm.exception))

    def test_linear_on_4d_output_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Model(1, 4, 4).add_linear(3)
        self.assertIn("del_model_add_linear", str(cm.exception))

    def test_summary_names_layers_and_total(self):
        m = libdel.Model.preset("mlp")
        s = str(m)
        self.assertIn("linear", s)
        self.assertIn(str(m.num_params), s.replace(",", ""))

    def test_summary_is_the_whole_text_sized_by_a_size_query(self):
        # del_model_summary(m, NULL, 0, &needed) is a size query: DEL_OK;
        # summary() sizes its buffer with it and returns the whole text.
        import ctypes
        from libdel._lib import lib
        m = libdel.Model.from_spec("input 1 2 2; flatten; linear 3")
        needed = ctypes.c_size_t(0)
        self.assertEqual(lib.del_model_summary(m._h, None, 0, ctypes.byref(needed)), 0)
        self.assertEqual(needed.value, 198)
        s = m.summary()
        self.assertEqual(len(s) + 1, needed.value)
        self.assertTrue(s.startswith("#   layer      output"), s)
        self.assertTrue(s.endswith("1   linear     [3]                        15\ntotal params: 15\n"), s)

    def test_train_eval_modes(self):
        m = libdel.Model.preset("mlp")
        self.assertTrue(m.training)
        self.assertFalse(m.eval().training)
        self.assertTrue(m.train().training)

    def test_init_is_deterministic_per_seed(self):
        a = libdel.Model.preset("mlp").init(7)
        b = libdel.Model.preset("mlp").init(7)
        c = libdel.Model.preset("mlp").init(8)
        self.assertEqual(a.params.tobytes(), b.params.tobytes())
        self.assertNotEqual(a.params.tobytes(), c.params.tobytes())
        bound = 1 / math.sqrt(784)
        self.assertLessEqual(max(abs(v) for v in a.params[:784 * 256]), bound)


class TestSaveLoad(unittest.TestCase):
    def test_save_load_round_trips_parameters(self):
        import os
        import tempfile
        m = tiny_linear()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.delm")
            m.save(path)
            back = libdel.Model.load(path)
        self.assertEqual(back.params.tolist(), [1, 2, 3, 4, -1, 0, 1, 0, 0.5, -0.5])
        self.assertEqual(back.layer_types, ["flatten", "linear"])
        again = libdel.Model.from_bytes(m.to_bytes())
        self.assertEqual(again.params.tobytes(), m.params.tobytes())

    def test_nonfinite_models_save_only_when_allowed(self):
        import os
        import tempfile
        m = tiny_linear()
        m.params[9] = float("-inf")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.delm")
            with self.assertRaises(libdel.NumericError) as cm:
                m.save(path)
            self.assertIn("del_model_save: layer 1 (linear) has infinity in its parameters",
                          str(cm.exception))
            self.assertEqual(os.listdir(d), [])
            with self.assertRaises(ArithmeticError):
                m.to_bytes()
            m.save(path, allow_nonfinite=True)
            back = libdel.Model.load(path)
        self.assertEqual(back.params[9], float("-inf"))
        self.assertEqual(m.to_bytes(allow_nonfinite=True), back.to_bytes(allow_nonfinite=True))

    def test_save_goes_through_a_symlink_and_refuses_an_empty_path(self):
        import os
        import tempfile
        m = tiny_linear()
        with tempfile.TemporaryDirectory() as d:
            os.symlink("real.delm", os.path.join(d, "link.delm"))
            m.save(os.path.join(d, "link.delm"))
            self.assertTrue(os.path.islink(os.path.join(d, "link.delm")))
            self.assertEqual(libdel.Model.load(os.path.join(d, "real.delm")).to_bytes(), m.to_bytes())
            self.assertEqual(sorted(os.listdir(d)), ["link.delm", "real.delm"])
        with self.assertRaises(libdel.InvalidArgument) as cm:
            m.save("")
        self.assertIn("'path' is empty", str(cm.exception))

    def test_loading_garbage_is_a_format_error(self):
        with self.assertRaises(libdel.FormatError):
            libdel.Model.from_bytes(b"definitely not a model file")

    def test_loading_a_missing_file_is_a_file_error(self):
        with self.assertRaises(libdel.FileError) as cm:
            libdel.Model.load("/nonexistent/libdel-model.delm")
        self.assertIn("/nonexistent/libdel-model.delm", str(cm.exception))


class TestForwardBackward(unittest.TestCase):
    def test_forward_matches_hand_computed_linear(self):
        m = tiny_linear()
        x = array.array("f", [1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5])
        y = m.forward(libdel.Tensor.from_buffer(x, shape=(2, 1, 2, 2)))
        # row 0: [1+4+0.5, -1+0-0.5]; row 1: [0.5*10+0.5, 0.5*0-0.5]
        self.assertEqual(y.shape, (2, 2))
        for got, want in zip(sum(y.tolist(), []), [5.5, -1.5, 5.5, -0.5]):
            self.assertAlmostEqual(got, want, places=5)

    def test_old_output_view_is_closed_by_the_next_forward(self):
        m = tiny_linear()
        first = m.forward(libdel.Tensor.zeros((1, 1, 2, 2)))
        kept = first.copy()
        second = m.forward(libdel.Tensor.zeros((3, 1, 2, 2)))
        with self.assertRaises(libdel.InvalidArgument):
            first.tolist()
        self.assertEqual(second.shape, (3, 2))
        self.assertEqual(kept.tolist(), [[0.5, -0.5]])

    def test_forward_shape_of_the_cnn_preset(self):
        m = libdel.Model.preset("fmnist-cnn").eval()
        out = m(libdel.Tensor.zeros((3, 1, 28, 28)))
        self.assertEqual((out.shape, out.dtype), ((3, 10), "float32"))

    def test_forward_rejects_wrong_shape_with_c_message(self):
        m = libdel.Model.preset("mlp")
        with self.assertRaises(libdel.InvalidArgument) as cm:
            m.forward(libdel.Tensor.zeros((1, 1, 27, 28)))
        self.assertIn("del_model_forward", str(cm.exception))

    def test_backward_before_forward_is_a_state_error(self):
        m = tiny_linear()
        with self.assertRaises(libdel.StateError):
            m.backward(libdel.Tensor.zeros((1, 2)))

    def test_backward_gives_linear_gradients(self):
        m = tiny_linear()
        m.zero_grad()
        x = array.array("f", [1, 2, 3, 4])
        m.forward(libdel.Tensor.from_buffer(x, shape=(1, 1, 2, 2)))
        m.backward(libdel.Tensor.from_list([[1.0, -2.0]]))
        g = m.grads.tolist()
        # dW = g^T x, db = g; d input = g W
        self.assertEqual(g, [1, 2, 3, 4, -2, -4, -6, -8, 1, -2])
        self.assertEqual(sum(m.input_grad.tolist()[0][0], []), [3, 2, 1, 4])


class TestLosses(unittest.TestCase):
    def test_softmax_matches_the_published_vectors(self):
        p = libdel.softmax(libdel.Tensor.from_list([[5.0, 10.0]])).tolist()[0]
        self.assertAlmostEqual(p[0], 0.0067, places=4)
        self.assertAlmostEqual(p[1], 0.9933, places=4)
        p = libdel.softmax(libdel.Tensor.from_list([[5.0, 10.0]]), temperature=100).tolist()[0]
        self.assertAlmostEqual(p[0], 0.4875, places=4)
        self.assertAlmostEqual(p[1], 0.5125, places=4)

    def test_softmax_rejects_zero_temperature(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.softmax(libdel.Tensor.from_list([[1.0, 2.0]]), temperature=0)
        self.assertIn("del_softmax", str(cm.exception))

    def test_cross_entropy_of_uniform_logits_is_log_k(self):
        loss, grad = libdel.cross_entropy(libdel.Tensor.from_list([[0.0, 0.0], [0.0, 0.0]]),
                                          [0, 1], grad=True)
        self.assertAlmostEqual(loss, math.log(2), places=6)
        self.assertEqual(grad.tolist(), [[-0.25, 0.25], [0.25, -0.25]])

    def test_soft_cross_entropy_of_one_hot_targets_is_cross_entropy(self):
        logits = libdel.Tensor.from_list([[1.0, 2.0, 0.5]])
        soft = libdel.soft_cross_entropy(logits, [[0.0, 1.0, 0.0]])
        # -log softmax(z)_1 = log(e^1 + e^2 + e^0.5) - 2
        self.assertAlmostEqual(soft, math.log(math.e + math.e ** 2 + math.e ** 0.5) - 2,
                               places=5)

    def test_cross_entropy_label_out_of_range_raises(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(libdel.Tensor.from_list([[0.0, 0.0]]), [2])
        self.assertIn("del_loss_cross_entropy", str(cm.exception))


def ref_softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


class TestSmoothingAndDistillation(unittest.TestCase):
    LOGITS = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]
    TEACHER = [[0.5, 3.0, -1.0], [0.0, 0.0, 1.0]]

    def test_label_smoothing_follows_torchs_definition(self):
        labels, s, k = [1, 0], 0.1, 3
        loss, grad = libdel.cross_entropy(libdel.Tensor.from_list(self.LOGITS), labels,
                                          grad=True, label_smoothing=s)
        want, want_grad = 0.0, []
        for z, y in zip(self.LOGITS, labels):
            p = ref_softmax(z)
            t = [(1 - s) * (j == y) + s / k for j in range(k)]
            want -= sum(tj * math.log(pj) for tj, pj in zip(t, p)) / 2
            want_grad.append([(pj - tj) / 2 for pj, tj in zip(p, t)])
        self.assertAlmostEqual(loss, want, places=5)
        for row, wrow in zip(grad.tolist(), want_grad):
            for g, w in zip(row, wrow):
                self.assertAlmostEqual(g, w, places=6)

    def test_zero_smoothing_is_plain_cross_entropy(self):
        logits = libdel.Tensor.from_list(self.LOGITS)
        self.assertEqual(libdel.cross_entropy(logits, [2, 1], label_smoothing=0.0),
                         libdel.cross_entropy(logits, [2, 1]))

    def test_smoothing_of_one_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(libdel.Tensor.from_list(self.LOGITS), [0, 1],
                                 label_smoothing=1.0)
        self.assertIn("del_loss_cross_entropy_smooth", str(cm.exception))

    def test_distill_loss_is_t_squared_kl_with_t_scaled_gradient(self):
        temp = 4.0
        loss, grad = libdel.distill_loss(libdel.Tensor.from_list(self.LOGITS),
                                         libdel.Tensor.from_list(self.TEACHER), temp, grad=True)
        want, want_grad = 0.0, []
        for zs, zt in zip(self.LOGITS, self.TEACHER):
            p, q = ref_softmax(zs, temp), ref_softmax(zt, temp)
            want += temp * temp * sum(qk * (math.log(qk) - math.log(pk))
                                      for qk, pk in zip(q, p)) / 2
            want_grad.append([temp * (pk - qk) / 2 for pk, qk in zip(p, q)])
        self.assertAlmostEqual(loss, want, places=6)
        for row, wrow in zip(grad.tolist(), want_grad):
            for g, w in zip(row, wrow):
                self.assertAlmostEqual(g, w, places=6)

    def test_distill_loss_of_identical_logits_is_zero(self):
        logits = libdel.Tensor.from_list(self.LOGITS)
        self.assertAlmostEqual(libdel.distill_loss(logits, logits, 2.0), 0.0, places=7)

    def test_distill_shape_mismatch_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.distill_loss(libdel.Tensor.from_list(self.LOGITS),
                                libdel.Tensor.from_list([[1.0, 2.0]]), 2.0)
        self.assertIn("del_loss_distill", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            libdel.distill_loss(libdel.Tensor.from_list(self.LOGITS),
                                libdel.Tensor.from_list(self.LOGITS), 0.0)


class TestOptimizer(unittest.TestCase):
    def test_plain_sgd_step(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m, lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False)
        m.grads[0] = 0.5
        opt.step()
        self.assertAlmostEqual(m.params[0], 1 - 0.1 * 0.5, places=6)
        self.assertEqual(opt.steps, 1)

    def test_nesterov_first_step_uses_g_plus_momentum_times_g(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m, lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=True)
        m.zero_grad()
        m.grads[0] = 0.5
        opt.step()
        self.assertAlmostEqual(m.params[0], 1 - 0.1 * (0.5 + 0.9 * 0.5), places=6)

    def test_cosine_schedule_halves_lr_at_midpoint(self):
        m = tiny_linear()
        opt = libdel.Optimizer.sgd(m, lr=0.2).set_schedule("cosine", 10)
        self.assertAlmostEqual(opt.lr, 0.2, places=6)
        m.zero_grad()
        for _ in range(5):
            opt.step()
        self.assertAlmostEqual(opt.lr, 0.1, places=6)

    def test_negative_lr_raises_with_c_message(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Optimizer.sgd(tiny_linear(), lr=-1.0)
        self.assertIn("del_optimizer_new_sgd", str(cm.exception))

    def test_unknown_schedule_raises(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Optimizer.sgd(tiny_linear()).set_schedule("linear", 10)


if __name__ == "__main__":
    unittest.main()
