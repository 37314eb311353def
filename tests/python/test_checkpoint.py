"""Checkpoints: the trainer's (resume bit for bit, total steps) and the
low-level save_checkpoint / load_checkpoint for hand-written loops, and
their errors."""

import os
import shutil
import tempfile
import unittest

import _util  # noqa: F401
import libdel
from libdel.train import load_checkpoint, save_checkpoint


def dataset():
    """Twelve 4x4 images in three classes."""
    images = bytes((p * 37 + i * 11) % 256 for i in range(12) for p in range(16))
    return libdel.Dataset.from_arrays(images, [i % 3 for i in range(12)], 12, 4, 4, 1)


def model(seed):
    m = libdel.Model.from_spec("input 1 4 4; flatten; linear 8; relu; dropout 0.3; linear 3")
    m.init(seed)
    return m


def trainer(m, ds, **settings):
    settings.setdefault("batch_size", 5)
    return libdel.Trainer.supervised(m, ds, seed=3, **settings)


class TestTrainerCheckpoint(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="libdel_ckpt_")
        self.path = os.path.join(self.dir, "run.delc")
        self.ds = dataset()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_resumed_run_equals_the_straight_one(self):
        straight = model(1)
        trainer(straight, self.ds, optimizer="adamw", lr=0.01, warmup=2, total_steps=12).fit(12)
        first = model(1)
        t = trainer(first, self.ds, optimizer="adamw", lr=0.01, warmup=2, total_steps=12)
        t.fit(5)
        t.save_checkpoint(self.path)
        resumed = model(8)  # another init: everything must come from the file
        t2 = trainer(resumed, self.ds, batch_size=2)
        t2.load_checkpoint(self.path)
        t2.fit(7)
        self.assertEqual(resumed.to_bytes(), straight.to_bytes())
        self.assertNotEqual(resumed.to_bytes(), first.to_bytes())

    def test_split_fits_equal_one_fit_with_total_steps(self):
        a, b = model(1), model(1)
        trainer(a, self.ds, total_steps=10).fit(10)
        t = trainer(b, self.ds).set_total_steps(10)
        t.fit(4)
        t.fit(6)
        self.assertEqual(a.to_bytes(), b.to_bytes())

    def test_settings_after_a_load_must_be_given_whole(self):
        t = trainer(model(1), self.ds, total_steps=4)
        t.fit(2)
        t.save_checkpoint(self.path)
        t.load_checkpoint(self.path)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.set(lr=0.1)
        self.assertIn("checkpoint", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            t.set(optimizer="sgd", lr=0.1)
        t.set(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False)
        t.set(lr=0.2)  # known again
        with self.assertRaises(libdel.InvalidArgument):
            t.set(step_size=3)
        t.set(step_size=3, gamma=0.5)

    def test_errors(self):
        t = trainer(model(1), self.ds)
        with self.assertRaises(libdel.FileError) as cm:
            t.load_checkpoint(os.path.join(self.dir, "missing.delc"))
        self.assertIn("missing.delc", str(cm.exception))
        with self.assertRaises(libdel.FileError):
            t.save_checkpoint(os.path.join(self.dir, "no", "dir", "x.delc"))
        self.assertEqual(os.listdir(self.dir), [])
        with self.assertRaises(libdel.InvalidArgument):
            t.set_total_steps(-1)
        m = model(1)
        m.save(self.path)
        with self.assertRaises(libdel.FormatError) as cm:
            t.load_checkpoint(self.path)
        self.assertIn("is a libdel model file, not a checkpoint", str(cm.exception))
        save_checkpoint(self.path, m)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.load_checkpoint(self.path)
        self.assertIn("holds no trainer state", str(cm.exception))
        with self.assertRaises(libdel.FormatError):
            libdel.Model.load(self.path)
        with open(self.path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 1
            f.seek(0)
            f.write(data)
        with self.assertRaises(libdel.FormatError) as cm:
            load_checkpoint(self.path, m)
        self.assertIn("checksum", str(cm.exception))

    def test_saving_from_the_progress_callback(self):
        straight = model(1)
        t = trainer(straight, self.ds, total_steps=9)

        def progress(step, total, loss):
            if step == 3:
                t.save_checkpoint(self.path)

        t.fit(9, progress=progress, every=3)
        resumed = model(2)
        t2 = trainer(resumed, self.ds)
        t2.load_checkpoint(self.path)
        t2.fit(6)
        self.assertEqual(resumed.to_bytes(), straight.to_bytes())


class TestLowLevelCheckpoint(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="libdel_ckpt_")
        self.path = os.path.join(self.dir, "loop.delc")

    def tearDown(self):
        shutil.rmtree(self.dir)

    @staticmethod
    def step(m, opt, k):
        p = m.params
        g = m.grads
        for i in range(len(g)):
            g[i] = 0.01 * ((i * 7 + k) % 5 - 2) + 0.001 * p[i]
        opt.step()

    def test_save_and_load_continue_a_hand_written_loop(self):
        a = model(1)
        oa = libdel.Optimizer.sgd(a, lr=0.1).set_schedule("cosine", 8)
        for k in range(8):
            self.step(a, oa, k)
        b = model(1)
        ob = libdel.Optimizer.sgd(b, lr=0.1).set_schedule("cosine", 8)
        for k in range(3):
            self.step(b, ob, k)
        save_checkpoint(self.path, b, ob)
        c = model(5)
        oc = libdel.Optimizer.sgd(c, lr=0.5, momentum=0.0, nesterov=False)
        load_checkpoint(self.path, c, oc)
        self.assertEqual(oc.steps, 3)
        self.assertEqual(oc.lr, ob.lr)
        for k in range(3, 8):
            self.step(c, oc, k)
        self.assertEqual(bytes(c.params), bytes(a.params))
        self.assertEqual(oc.lr, oa.lr)

    def test_mismatches_are_refused_and_change_nothing(self):
        m = model(1)
        opt = libdel.Optimizer.sgd(m)
        save_checkpoint(self.path, m, opt)
        other = libdel.Model.from_spec("input 1 4 4; flatten; linear 9; relu; dropout 0.3; linear 3")
        before = other.to_bytes()
        with self.assertRaises(libdel.InvalidArgument) as cm:
            load_checkpoint(self.path, other)
        self.assertIn("layer 1 (linear) differs", str(cm.exception))
        self.assertEqual(other.to_bytes(), before)
        adam = libdel.Optimizer.adamw(m)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            load_checkpoint(self.path, m, adam)
        self.assertIn("'opt' is AdamW but", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            save_checkpoint(self.path, other, opt)
        with self.assertRaises(libdel.FileError):
            load_checkpoint(os.path.join(self.dir, "missing.delc"), m)

    def test_bytes_equal_the_file_and_load_as_it_does(self):
        from libdel.train import load_checkpoint_bytes, save_checkpoint_bytes
        m = model(1)
        opt = libdel.Optimizer.sgd(m, lr=0.1)
        self.step(m, opt, 0)
        data = save_checkpoint_bytes(m, opt)
        save_checkpoint(self.path, m, opt)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), data)
        c = model(5)
        oc = libdel.Optimizer.sgd(c, lr=0.5)
        load_checkpoint_bytes(bytearray(data), c, oc)
        self.assertEqual(oc.steps, 1)
        self.assertEqual(save_checkpoint_bytes(c, oc), data)
        before = c.to_bytes()
        for n in (0, 10, len(data) - 1):
            with self.assertRaises(libdel.FormatError) as cm:
                load_checkpoint_bytes(data[:n], c, oc)
            self.assertIn("del_checkpoint_load_buffer: '<buffer>'", str(cm.exception))
        self.assertEqual(c.to_bytes(), before)

    def test_a_diverged_model_is_refused_with_the_way_to_keep_it(self):
        m = model(1)
        m.params[3] = float("nan")
        with self.assertRaises(libdel.NumericError) as cm:
            save_checkpoint(self.path, m)
        self.assertEqual(cm.exception.status, libdel._ffi.DEL_ENUMERIC)
        self.assertIn("layer 1 (linear) has NaN in its parameters", str(cm.exception))
        self.assertIn("DEL_SAVE_ALLOW_NONFINITE", str(cm.exception))
        self.assertFalse(os.path.exists(self.path))
        with self.assertRaises(libdel.NumericError):
            libdel.train.save_checkpoint_bytes(m)


if __name__ == "__main__":
    unittest.main()
