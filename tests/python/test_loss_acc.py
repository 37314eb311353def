"""The weighted, accumulating losses: row weights, ignored rows, a loss
weight, gradients added into a given tensor (del_loss_*_acc)."""

import math
import unittest

import _util
import libdel

LOGITS = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0], [0.25, -0.5, 1.5]]
TEACHER = [[0.5, 3.0, -1.0], [0.0, 0.0, 1.0], [2.0, -1.0, 0.0]]


def ref_softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def assert_rows_close(case, got, want, places=6):
    for row, wrow in zip(got, want):
        for g, w in zip(row, wrow):
            case.assertAlmostEqual(g, w, places=places)


class TestWeightedCrossEntropy(unittest.TestCase):
    def test_row_weights_and_ignored_rows_follow_the_mean_over_all_rows(self):
        labels, w, weight, n = [2, -1, 0], [0.5, 4.0, 2.0], 1.5, 3
        loss, grad = libdel.cross_entropy(libdel.Tensor.from_list(LOGITS), labels, grad=True,
                                          row_weights=w, weight=weight)
        want, want_grad = 0.0, []
        for z, y, wr in zip(LOGITS, labels, w):
            p = ref_softmax(z)
            if y < 0:
                want_grad.append([0.0] * 3)
                continue
            want += weight * wr * -math.log(p[y]) / n
            want_grad.append([weight * wr * (pj - (j == y)) / n for j, pj in enumerate(p)])
        self.assertAlmostEqual(loss, want, places=5)
        assert_rows_close(self, grad.tolist(), want_grad)

    def test_gradient_is_added_into_the_given_tensor(self):
        logits = libdel.Tensor.from_list(LOGITS)
        start = [[0.125] * 3 for _ in range(3)]
        g = libdel.Tensor.from_list(start)
        loss, same = libdel.cross_entropy(logits, [0, 1, 2], grad=g, label_smoothing=0.1)
        self.assertIs(same, g)
        plain_loss, plain = libdel.cross_entropy(logits, [0, 1, 2], grad=True, label_smoothing=0.1)
        self.assertAlmostEqual(loss, plain_loss, places=7)
        assert_rows_close(self, g.tolist(), [[0.125 + v for v in row] for row in plain.tolist()])

    def test_distillation_sums_kd_and_ce_into_one_gradient(self):
        alpha, temp = 0.7, 4.0
        logits = libdel.Tensor.from_list(LOGITS)
        teacher = libdel.Tensor.from_list(TEACHER)
        g = libdel.Tensor.zeros((3, 3))
        kd, _ = libdel.distill_loss(logits, teacher, temp, grad=g, weight=alpha)
        ce, _ = libdel.cross_entropy(logits, [1, 2, 0], grad=g, weight=1 - alpha)
        kd1, g_kd = libdel.distill_loss(logits, teacher, temp, grad=True)
        ce1, g_ce = libdel.cross_entropy(logits, [1, 2, 0], grad=True)
        self.assertAlmostEqual(kd, alpha * kd1, places=6)
        self.assertAlmostEqual(ce, (1 - alpha) * ce1, places=6)
        want = [[alpha * a + (1 - alpha) * b for a, b in zip(ra, rb)]
                for ra, rb in zip(g_kd.tolist(), g_ce.tolist())]
        assert_rows_close(self, g.tolist(), want)

    def test_defaults_keep_the_plain_loss(self):
        logits = libdel.Tensor.from_list(LOGITS)
        self.assertEqual(libdel.cross_entropy(logits, [0, 1, 2]),
                         libdel.cross_entropy(logits, [0, 1, 2], grad=libdel.Tensor.zeros((3, 3)))[0])
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(logits, [0, -1, 2])
        self.assertIn("del_loss_cross_entropy:", str(cm.exception))

    def test_bad_row_weights_and_weight_raise_naming_them(self):
        logits = libdel.Tensor.from_list(LOGITS)
        for bad in ([1.0, float("nan"), 1.0], [1.0, -0.5, 1.0], [1.0, 1.0]):
            with self.assertRaises(libdel.InvalidArgument) as cm:
                libdel.cross_entropy(logits, [0, 1, 2], row_weights=bad)
            self.assertIn("del_loss_cross_entropy_acc: 'row_weights'", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(logits, [0, 1, 2], weight=-1.0)
        self.assertIn("'weight'", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(logits, [0, 1, 2], grad=libdel.Tensor.zeros((3, 2)))
        self.assertIn("'grad'", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.cross_entropy(logits, [0, 1, 2], grad=logits)
        self.assertIn("must not share memory", str(cm.exception))


class TestWeightedSoftAndDistill(unittest.TestCase):
    def test_soft_cross_entropy_row_weights(self):
        targets = [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]
        w, weight, n = [1.0, 0.0, 3.0], 0.5, 3
        loss, grad = libdel.soft_cross_entropy(libdel.Tensor.from_list(LOGITS), targets, grad=True,
                                               row_weights=w, weight=weight)
        want, want_grad = 0.0, []
        for z, t, wr in zip(LOGITS, targets, w):
            p = ref_softmax(z)
            want -= weight * wr * sum(tj * math.log(pj) for tj, pj in zip(t, p)) / n
            want_grad.append([weight * wr * (pj - tj) / n for pj, tj in zip(p, t)])
        self.assertAlmostEqual(loss, want, places=5)
        assert_rows_close(self, grad.tolist(), want_grad)

    def test_distill_without_t_squared_and_from_probabilities(self):
        temp = 4.0
        student = libdel.Tensor.from_list(LOGITS)
        teacher = libdel.Tensor.from_list(TEACHER)
        probs = libdel.softmax(teacher)
        with_t2 = libdel.distill_loss(student, teacher, temp)
        without = libdel.distill_loss(student, teacher, temp, t_squared=False)
        self.assertAlmostEqual(with_t2, temp * temp * without, places=5)
        from_probs, g_probs = libdel.distill_loss(student, probs, temp, grad=True, teacher_probs=True)
        from_logits, g_logits = libdel.distill_loss(student, teacher, temp, grad=True)
        self.assertAlmostEqual(from_probs, from_logits, places=6)
        assert_rows_close(self, g_probs.tolist(), g_logits.tolist())
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.distill_loss(student, teacher, temp, teacher_probs=True)
        self.assertIn("del_loss_distill_acc: 'teacher' row 0 must be a probability vector",
                      str(cm.exception))

    def test_distill_row_weights_mean_over_all_rows(self):
        temp, w = 2.0, [1.0, 0.0, 2.0]
        student = libdel.Tensor.from_list(LOGITS)
        teacher = libdel.Tensor.from_list(TEACHER)
        loss = libdel.distill_loss(student, teacher, temp, row_weights=w)
        want = 0.0
        for zs, zt, wr in zip(LOGITS, TEACHER, w):
            p, q = ref_softmax(zs, temp), ref_softmax(zt, temp)
            want += wr * temp * temp * sum(qk * math.log(qk / pk) for qk, pk in zip(q, p)) / 3
        self.assertAlmostEqual(loss, want, places=6)


@_util.needs_numpy
class TestNumpyRowWeights(unittest.TestCase):
    def test_numpy_mask_as_row_weights(self):
        import numpy as np
        logits = np.array(LOGITS, dtype=np.float32)
        mask = np.array([1.0, 0.0, 1.0], dtype=np.float32)
        masked = libdel.cross_entropy(logits, np.array([0, 1, 2], dtype=np.int32), row_weights=mask)
        kept = libdel.cross_entropy(logits[[0, 2]], np.array([0, 2], dtype=np.int32))
        # the mean over all 3 rows: 2 of them kept
        self.assertAlmostEqual(masked, kept * 2 / 3, places=6)


if __name__ == "__main__":
    unittest.main()
