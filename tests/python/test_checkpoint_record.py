"""libdel.Checkpoint, the checkpoint record: named models with their
optimizers, named tensors, a trainer name and fields; written and read
whole, format-1 files included."""

import os
import shutil
import tempfile
import unittest

import _util
import libdel
from libdel import Checkpoint, Model, Optimizer, Tensor

SPEC = "input 1 2 2; flatten; dropout 0.5; linear 3"
DATA = os.environ.get("DEL_TEST_DATA", os.path.join(_util.ROOT, "tests", "data"))


def trained(seed):
    """A model with parameters off their initial values, a frozen layer and
    an lr multiplier, and an SGD optimizer after one step."""
    m = Model.from_spec(SPEC)
    m.init(seed)
    p = m.params
    for i in range(len(p)):
        p[i] = 0.125 * (i + seed) - 1.0
    opt = Optimizer.sgd(m, lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False)
    g = m.grads
    for i in range(len(g)):
        g[i] = 0.25 * (i + 1)
    opt.step()
    m.freeze(0, 0)
    m.set_lr_mult(0.5, 2, 2)
    return m, opt


def fresh():
    m = Model.from_spec(SPEC)
    m.init(99)
    return m


class TestCheckpointRecord(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="libdel_ckrec_")
        self.path = os.path.join(self.dir, "run.delc")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_models_optimizer_tensors_and_fields_round_trip(self):
        student, opt = trained(1)
        teacher, _ = trained(2)
        ck = Checkpoint()
        ck.add_model("student", student, opt).add_model("teacher", teacher)
        ck.add_tensor("y_old", Tensor.from_list([[0.5, -1.0, 2.0], [3.0, 4.0, -5.5]]))
        ck.add_tensor("pool", Tensor.from_list([7, -1, 3], dtype="int32"))
        ck.trainer = "distill"
        for k in range(100):
            ck.fields["i%d" % k] = k * 1000 - 7
            ck.fields["f.%d" % k] = k / 8.0
        ck.write(self.path)
        with open(self.path, "rb") as f:
            self.assertEqual(ck.to_bytes(), f.read())
        for r in (Checkpoint.read(self.path), Checkpoint.from_bytes(ck.to_bytes())):
            self.assertEqual(r.models, ["student", "teacher"])
            self.assertEqual(r.tensors, ["y_old", "pool"])
            self.assertEqual(r.trainer, "distill")
            self.assertEqual(r.optimizer_type("student"), "sgd")
            self.assertIsNone(r.optimizer_type("teacher"))
            self.assertEqual(len(r.fields), 200)
            self.assertEqual(r.fields["i42"], 41993)
            self.assertIsInstance(r.fields["i42"], int)
            self.assertEqual(r.fields["f.12"], 1.5)
            self.assertIsInstance(r.fields["f.12"], float)
            self.assertEqual(r.fields.keys()[:2], ["i0", "f.0"])
            self.assertEqual(r.get_tensor("y_old").tolist(), [[0.5, -1.0, 2.0], [3.0, 4.0, -5.5]])
            self.assertEqual(r.get_tensor("pool").tolist(), [7, -1, 3])
            self.assertEqual(r.get_tensor("pool").dtype, "int32")
            s2, t2 = fresh(), fresh()
            o2 = Optimizer.sgd(s2, lr=0.5, momentum=0.5)
            r.check_model("student", s2, o2)
            r.restore_model("student", s2, o2)
            r.restore_model("teacher", t2)
            self.assertEqual(s2.to_bytes(), student.to_bytes())
            self.assertEqual(t2.to_bytes(), teacher.to_bytes())
            self.assertEqual(o2.steps, 1)
            self.assertTrue(s2.layer_frozen(0))
            self.assertEqual(s2.layer_lr_mult(2), 0.5)
            copy = r.get_model("teacher")
            self.assertEqual(copy.to_bytes(), teacher.to_bytes())
            self.assertTrue(copy.layer_frozen(0))

    def test_fields_are_a_mapping(self):
        ck = Checkpoint()
        ck.fields["steps"] = 3
        ck.fields["lr"] = 0.25
        ck.fields["flag"] = True
        self.assertIn("steps", ck.fields)
        self.assertNotIn("nope", ck.fields)
        self.assertEqual(ck.fields.get("nope", 5), 5)
        self.assertEqual(dict(ck.fields.items()), {"steps": 3, "lr": 0.25, "flag": 1})
        with self.assertRaises(KeyError):
            ck.fields["nope"]
        ck.fields["steps"] = 1.5  # replaced, type included
        self.assertEqual(ck.fields["steps"], 1.5)
        with self.assertRaises(libdel.InvalidArgument):
            ck.fields["x"] = "text"
        with self.assertRaises(libdel.InvalidArgument):
            ck.fields["bad key"] = 1
        # fields need a trainer name to be written
        with self.assertRaises(libdel.StateError):
            ck.to_bytes()
        ck.trainer = "mine"
        self.assertEqual(Checkpoint.from_bytes(ck.to_bytes()).fields["lr"], 0.25)
        ck.trainer = None
        self.assertIsNone(ck.trainer)

    def test_format_1_files_still_read(self):
        r = Checkpoint.read(os.path.join(DATA, "io", "v1_trainer.delc"))
        self.assertEqual(r.models, ["model"])
        self.assertEqual(r.trainer, "supervised")
        self.assertEqual(r.fields["batch"], 4)
        self.assertEqual(r.fields["steps_done"], 2)
        self.assertEqual(r.optimizer_type("model"), "sgd")
        # and a record that fits format 1 is written as format 1
        m, opt = trained(1)
        ck = Checkpoint().add_model("model", m, opt)
        self.assertEqual(ck.to_bytes(), libdel.save_checkpoint_bytes(m, opt))
        self.assertEqual(ck.to_bytes()[4], 1)
        self.assertEqual(Checkpoint().add_model("other", m).to_bytes()[4], 2)

    def test_errors_and_all_or_nothing(self):
        m, opt = trained(1)
        ck = Checkpoint().add_model("a", m, opt)
        with self.assertRaises(libdel.InvalidArgument):
            ck.add_model("a", m)
        with self.assertRaises(libdel.InvalidArgument):
            ck.add_model("no spaces", m)
        with self.assertRaises(libdel.StateError):
            ck.add_optimizer("b", opt)
        with self.assertRaises(libdel.StateError):
            ck.get_tensor("t")
        with self.assertRaises(libdel.StateError):
            ck.restore_model("b", fresh())
        self.assertTrue(ck.has_model("a"))
        self.assertFalse(ck.has_model("b"))
        wide = Model.from_spec("input 1 2 2; flatten; dropout 0.5; linear 4")
        before = wide.to_bytes()
        with self.assertRaises(libdel.InvalidArgument) as cm:
            ck.check_model("a", wide)
        self.assertIn("out 3 in the checkpoint '", str(cm.exception))
        target = fresh()
        adam = Optimizer.adamw(target)
        before = target.to_bytes()
        with self.assertRaises(libdel.InvalidArgument):
            ck.restore_model("a", target, adam)
        self.assertEqual(target.to_bytes(), before)
        self.assertFalse(target.layer_frozen(0))
        self.assertEqual(adam.steps, 0)
        with self.assertRaises(libdel.FormatError):
            Checkpoint.from_bytes(b"DELC not really")
        with self.assertRaises(libdel.FileError):
            Checkpoint.read(os.path.join(self.dir, "missing.delc"))
        m.params[0] = float("nan")
        with self.assertRaises(libdel.NumericError):
            Checkpoint().add_model("a", m).write(self.path)
        self.assertFalse(os.path.exists(self.path))


if __name__ == "__main__":
    unittest.main()
