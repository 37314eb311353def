"""Named heads from Python: building, forward per head, backward_heads,
save/load, the transfer flow on a preset."""

import os
import tempfile
import unittest

import _util  # noqa: F401
import libdel


def backbone_with_two_heads():
    """flatten + linear 4 -> 3 (backbone) with heads "a" (linear 3 -> 2) and
    "b" (linear 3 -> 1), every weight set by hand (PyTorch order: weight,
    bias), so the outputs can be computed here."""
    m = libdel.Model(1, 2, 2).add_flatten().add_linear(3)
    m.add_head("a", "linear 2").add_head("b", "linear 1")
    values = [1, 0, 0, 1,  0, 1, 1, 0,  1, 1, 1, 1,  0.5, 0, -0.5,   # backbone W (3x4), b
              1, -1, 0,  0, 1, 2,  0.25, -0.25,                        # head a W (2x3), b
              2, 0, -1,  1]                                            # head b W (1x3), b
    p = m.params
    assert len(p) == len(values)
    for i, v in enumerate(values):
        p[i] = v
    return m


def reference(x):
    """The model above, computed by hand for one image x (4 values)."""
    h = [x[0] + x[3] + 0.5, x[1] + x[2], sum(x) - 0.5]
    a = [h[0] - h[1] + 0.25, h[1] + 2 * h[2] - 0.25]
    b = [2 * h[0] - h[2] + 1]
    return h, a, b


class TestHeads(unittest.TestCase):
    def test_heads_are_listed_with_their_layers(self):
        m = backbone_with_two_heads()
        self.assertEqual(m.heads, ["a", "b"])
        self.assertEqual(m.backbone_layers, 2)
        self.assertEqual(m.head_layers("b"), (3, 1))
        self.assertEqual(m.head_index("b"), 1)
        self.assertEqual(m.head_index("zz"), -1)
        self.assertEqual(m.num_layers, 4)
        self.assertEqual(m.output_shape, (2,))
        with self.assertRaises(libdel.InvalidArgument):
            m.head_layers("zz")
        with self.assertRaises(libdel.InvalidArgument):
            m.add_head("a", "linear 2")
        with self.assertRaises(libdel.FormatError) as cm:
            m.add_head("c", "linear; relu")
        self.assertIn("item 1", str(cm.exception))
        with self.assertRaises(libdel.StateError):
            m.add_relu()
        self.assertEqual(m.heads, ["a", "b"])

    def test_forward_gives_every_head_output(self):
        m = backbone_with_two_heads()
        xs = [[1.0, 2.0, -1.0, 0.5], [0.0, -2.0, 3.0, 1.0]]
        x = libdel.Tensor.from_list([v for row in xs for v in row], (2, 1, 2, 2))
        out = m(x)
        self.assertEqual(out.shape, (2, 2))  # the first head
        ya, yb = m.head_output("a").tolist(), m.head_output("b").tolist()
        for r, row in enumerate(xs):
            _, a, b = reference(row)
            for got, want in zip(ya[r], a):
                self.assertAlmostEqual(got, want, places=5)
            self.assertAlmostEqual(yb[r][0], b[0], places=5)
        self.assertEqual(out.tolist(), ya)
        with self.assertRaises(libdel.InvalidArgument):
            m.head_output("zz")

    def test_backward_heads_sums_at_the_backbone_and_skips_unlisted_heads(self):
        m = backbone_with_two_heads()
        xs = [1.0, 2.0, -1.0, 0.5]
        x = libdel.Tensor.from_list(xs, (1, 1, 2, 2))
        m(x)
        m.zero_grad()
        ga = [1.0, -2.0]
        gb = [0.5]
        m.backward_heads({"b": libdel.Tensor.from_list(gb, (1, 1)),
                          "a": libdel.Tensor.from_list(ga, (1, 2))})
        g = list(m.grads)
        h, _, _ = reference(xs)
        # d/dh of ga . a + gb . b, with a = Wa h + ba, b = Wb h + bb
        wa = [[1, -1, 0], [0, 1, 2]]
        wb = [[2, 0, -1]]
        dh = [ga[0] * wa[0][j] + ga[1] * wa[1][j] + gb[0] * wb[0][j] for j in range(3)]
        want_backbone_w = [dh[i] * xs[k] for i in range(3) for k in range(4)]
        for got, want in zip(g[:12], want_backbone_w):
            self.assertAlmostEqual(got, want, places=5)
        for got, want in zip(g[12:15], dh):
            self.assertAlmostEqual(got, want, places=5)
        want_a = [ga[i] * h[j] for i in range(2) for j in range(3)] + ga
        for got, want in zip(g[15:23], want_a):
            self.assertAlmostEqual(got, want, places=5)
        # only "b" now: head a gets nothing more
        m(x)
        m.zero_grad()
        m.backward_heads({"b": libdel.Tensor.from_list(gb, (1, 1))})
        self.assertEqual(list(m.grads)[15:23], [0.0] * 8)
        self.assertAlmostEqual(list(m.grads)[-1], gb[0], places=6)
        with self.assertRaises(libdel.InvalidArgument):
            m.backward_heads({})
        with self.assertRaises(libdel.InvalidArgument) as cm:
            m.backward_heads({"a": libdel.Tensor.from_list([1.0], (1, 1))})
        self.assertIn("grads[0]", str(cm.exception))

    def test_replace_remove_and_save_load(self):
        m = backbone_with_two_heads()
        m.replace_head("b", "relu; linear 4")
        self.assertEqual(m.head_layers("b"), (3, 2))
        self.assertEqual(m.num_params, 15 + 8 + 16)
        x = libdel.Tensor.from_list([0.5, -1.0, 2.0, 0.25], (1, 1, 2, 2))
        m.eval()
        m(x)
        want = {n: m.head_output(n).tolist() for n in m.heads}
        again = libdel.Model.from_bytes(m.to_bytes())
        self.assertEqual(again.heads, ["a", "b"])
        again.eval()
        again(x)
        for n in again.heads:
            self.assertEqual(again.head_output(n).tolist(), want[n])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "heads.delm")
            m.save(path)
            loaded = libdel.Model.load(path)
            self.assertEqual(loaded.head_layers("b"), (3, 2))
            self.assertEqual(list(loaded.params), list(m.params))
        m.remove_head("a")
        self.assertEqual(m.heads, ["b"])
        self.assertEqual(m.head_layers("b"), (2, 2))
        m.remove_head("b")
        self.assertEqual(m.heads, [])
        m.add_linear(2)  # a backbone again
        self.assertEqual(m.num_layers, 3)

    def test_preset_classifier_becomes_a_replaceable_head(self):
        m = libdel.Model.preset("mlp", channels=1, height=4, width=4, num_classes=10)
        m.split_head("clf").replace_head("clf", "linear 5").freeze_backbone()
        self.assertEqual(m.heads, ["clf"])
        self.assertEqual(m.backbone_layers, 3)
        self.assertTrue(all(m.layer_frozen(i) for i in range(3)))
        self.assertEqual(m.num_params, (16 * 256 + 256) + (256 * 5 + 5))
        before = list(m.params)
        x = libdel.Tensor.from_list([float(i % 5) / 5 for i in range(2 * 16)], (2, 1, 4, 4))
        logits = m(x)
        self.assertEqual(logits.shape, (2, 5))
        _, grad = libdel.cross_entropy(logits, [1, 3], grad=True)
        m.zero_grad()
        m.backward(grad)
        libdel.Optimizer.sgd(m, lr=0.1).step()
        after = list(m.params)
        n_head = 256 * 5 + 5
        self.assertEqual(before[:-n_head], after[:-n_head])
        self.assertNotEqual(before[-n_head:], after[-n_head:])


if __name__ == "__main__":
    unittest.main()
