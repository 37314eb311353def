"""Trainer.distill: a student learns a teacher's softened outputs."""

import math
import unittest

import _util  # noqa: F401
import libdel


def dataset(labeled=True, n=24):
    images = bytes((i * 71 + 5) % 256 for i in range(n * 4))
    labels = [i % 3 if labeled else -1 for i in range(n)]
    return libdel.Dataset.from_arrays(images, labels, n, 2, 2, 1)


def linear(seed):
    m = libdel.Model.from_spec("input 1 2 2; flatten; linear 3")
    p = m.params
    for i in range(len(p)):
        p[i] = 0.5 * math.sin(seed * (i + 1))
    return m


class TestDistill(unittest.TestCase):
    def test_student_moves_toward_the_teacher(self):
        student, teacher = linear(1.3), linear(0.7)
        before = list(teacher.params)
        t = libdel.Trainer.distill(student, teacher, transfer=dataset(False), alpha=1.0,
                                   temperature=2.0, unlabeled_batch_size=12, lr=0.5,
                                   schedule="constant")
        kl_before = self.kl(student, teacher)
        t.fit(30)
        self.assertLess(self.kl(student, teacher), kl_before / 2)
        self.assertEqual(list(teacher.params), before)

    @staticmethod
    def kl(student, teacher):
        """Mean KL(teacher || student) of the softmaxes over the images."""
        ds = dataset(False)
        x = ds.batch(list(range(len(ds))))[0]
        total = 0.0
        student.eval()
        teacher.eval()
        ps = student.forward(x).tolist()
        pt = teacher.forward(x).tolist()
        for zs, zt in zip(ps, pt):
            es = [math.exp(v - max(zs)) for v in zs]
            et = [math.exp(v - max(zt)) for v in zt]
            qs = [v / sum(es) for v in es]
            qt = [v / sum(et) for v in et]
            total += sum(a * math.log(a / b) for a, b in zip(qt, qs))
        return total / len(ps)

    def test_stored_soft_labels(self):
        ds = dataset(False)
        rows = [[1 / 3, 1 / 3, 1 / 3]] * len(ds)
        ds.set_soft_labels(libdel.Tensor.from_list(rows))
        student = linear(1.3)
        t = libdel.Trainer.distill(student, None, transfer=ds, alpha=1.0, unlabeled_batch_size=12)
        t.fit(3)
        with self.assertRaises(libdel.InvalidArgument):
            t.set(teacher_training=True)

    def test_a_teacher_added_to_a_supervised_trainer_trains_as_distillation(self):
        """On labeled images alone the two spell the same loss."""
        runs = []
        for added in (True, False):
            student, teacher = linear(1.3), linear(0.7)
            if added:
                t = libdel.Trainer.supervised(student, dataset(), lr=0.5, schedule="constant")
                self.assertIs(t.add_teacher(teacher, temperature=3.0, alpha=0.6), t)
                t.set(teacher_training=False)
            else:
                t = libdel.Trainer.distill(student, teacher, dataset(), temperature=3.0, alpha=0.6,
                                           lr=0.5, schedule="constant")
            t.fit(4)
            runs.append(list(student.params))
        self.assertEqual(runs[0], runs[1])
        plain = linear(1.3)
        libdel.Trainer.supervised(plain, dataset(), lr=0.5, schedule="constant").fit(4)
        self.assertNotEqual(list(plain.params), runs[0])

    def test_add_teacher_errors(self):
        t = libdel.Trainer.supervised(linear(1.0), dataset())
        wide = libdel.Model.from_spec("input 1 2 2; flatten; linear 4")
        with self.assertRaisesRegex(libdel.InvalidArgument, "same classes"):
            t.add_teacher(wide)
        with self.assertRaisesRegex(libdel.InvalidArgument, "temperature"):
            t.add_teacher(linear(2.0), temperature=0.0)
        with self.assertRaisesRegex(libdel.InvalidArgument, "alpha"):
            t.add_teacher(linear(2.0), alpha=2.0)
        kd = libdel.Trainer.distill(linear(1.0), linear(2.0), dataset())
        with self.assertRaisesRegex(libdel.InvalidArgument, "del_trainer_new_distill"):
            kd.add_teacher(linear(3.0))

    def test_errors(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Trainer.distill(linear(1.0), linear(2.0))
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Trainer.distill(linear(1.0), linear(2.0), dataset(), temperature=-1.0)
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Trainer.supervised(linear(1.0), dataset(), alpha=0.5)


if __name__ == "__main__":
    unittest.main()
