"""Trainer.finetune: a pre-trained model's classifier replaced, a probe
or a full fine-tune with the backbone at a smaller learning rate."""

import os
import tempfile
import unittest

import _util  # noqa: F401
import libdel


def dataset(classes, n=30):
    images = bytes((i * 97 + 13) % 256 for i in range(n * 16))
    return libdel.Dataset.from_arrays(images, [i % classes for i in range(n)], n, 4, 4, 1)


class TestFinetune(unittest.TestCase):
    def pretrained(self):
        m = libdel.Model.from_spec("input 1 4 4; flatten; linear 8; relu; linear 5")
        libdel.Trainer.supervised(m, dataset(5)).fit(3)
        path = os.path.join(self.tmp, "pre.delm")
        m.save(path)
        return libdel.Model.load(path)

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.tmp = self._dir.name

    def tearDown(self):
        self._dir.cleanup()

    def test_probe_keeps_the_backbone(self):
        m = self.pretrained()
        backbone = list(m.params)[:4 * 4 * 8 + 8]
        t = libdel.Trainer.finetune(m, dataset(3), 3, mode="probe")
        self.assertEqual(m.heads, ["head"])
        self.assertEqual(m.output_shape, (3,))
        t.fit(5)
        self.assertEqual(list(m.params)[:len(backbone)], backbone)
        self.assertGreaterEqual(t.evaluate(dataset(3)), 0.0)

    def test_full_with_warmup_and_multiplier(self):
        m = self.pretrained()
        t = libdel.Trainer.finetune(m, dataset(3), 3, mode="full", backbone_lr_mult=0.5,
                                    head_warmup=1, total_steps=3)
        backbone = list(m.params)[:136]
        t.fit(1)
        self.assertEqual(list(m.params)[:136], backbone)
        t.fit(1)
        self.assertNotEqual(list(m.params)[:136], backbone)
        self.assertAlmostEqual(m.layer_lr_mult(1), 0.5)
        self.assertAlmostEqual(m.layer_lr_mult(3), 1.0)  # the new head

    def test_errors(self):
        with self.assertRaises(libdel.InvalidArgument):
            libdel.Trainer.finetune(self.pretrained(), dataset(3), 3, mode="partial")
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Trainer.supervised(self.pretrained(), dataset(5), head_warmup=3)
        self.assertIn("does not apply", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
