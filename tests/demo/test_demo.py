"""make test-demo: the demo (examples/fmnist1k_demo.c) in its quick mode.

Runs the three stages for a few steps on one thread and checks what a user
gets: the final table (every stage, the labels used, accuracies equal to the
last evaluation of each stage's learning curve), and the two PNG files, read back
with zlib (signature, chunk CRCs, IHDR, the image data's size). Bad options
and an output directory that cannot be made fail with a message and write
nothing.

    python3 tests/demo/test_demo.py DEMO_BINARY [FASHION_MNIST_DIR]
"""

import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

BINARY = None
DATA = None


def read_png(path):
    """(width, height, channels) of an 8-bit greyscale or RGB PNG; fails on
    a bad signature, a chunk CRC that does not match, or image data of the
    wrong size."""
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "%s: not a PNG signature" % path
    pos, idat, header = 8, b"", None
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc, "%s: bad CRC in %r" % (path, kind)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "%s: no IHDR" % path
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (0, 2), "%s: depth %d colour type %d" % (path, depth, colour)
    channels = 1 if colour == 0 else 3
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * channels), "%s: %d bytes of image data" % (path, len(raw))
    return width, height, channels


class TestDemo(unittest.TestCase):
    def run_demo(self, *args):
        data = ["--data", DATA] if DATA else []
        return subprocess.run([BINARY, "--threads", "1"] + data + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=900)

    def test_quick_run_prints_the_table_and_writes_both_pictures(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")  # made by the demo
            proc = self.run_demo("--steps", "30", "--unlabeled-steps", "4", "--student-iterations", "1",
                                 "--student-steps", "3", "--eval-every", "10", "--out", out)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            evals = re.findall(r"test accuracy after (\d+) steps: (\d+\.\d\d)%", proc.stderr)
            # Stage 1 at 10, 20, 30; stage 2 at its end (4 steps).
            self.assertEqual([int(s) for s, _ in evals], [10, 20, 30, 4])
            base = re.search(r"^\| supervised baseline \(R0\) \| 1000 \| 0 \| 30 \| (\d+\.\d\d) % \| \d+ s \|$",
                             proc.stdout, re.M)
            fix = re.search(r"^\| \+ FixMatch from the baseline \(EMA\) \| 1000 \| 59000 \| 4 \| (\d+\.\d\d) % "
                            r"\(([+-]\d+\.\d\d)\) \| \d+ s \|$", proc.stdout, re.M)
            self.assertIsNotNone(base, proc.stdout)
            self.assertIsNotNone(fix, proc.stdout)
            self.assertEqual(base.group(1), evals[2][1])
            self.assertEqual(fix.group(1), evals[3][1])
            self.assertAlmostEqual(float(fix.group(2)), float(fix.group(1)) - float(base.group(1)), delta=0.011)
            students = re.findall(r"test accuracy of student (\d+): (\d+\.\d\d)% \((\d+) pseudo-labels kept, "
                                  r"pool (\d+)\)", proc.stderr)
            self.assertEqual([int(k) for k, _, _, _ in students], [1])
            # Threshold 0.3 keeps some of the 59,000; balancing every class to
            # the mean count (rounded) moves the pool by at most half a row
            # for each of the ten classes.
            kept, pool = int(students[0][2]), int(students[0][3])
            self.assertTrue(0 < kept <= 59000 and abs(pool - kept) <= 5, students)
            ns = re.search(r"^\| \+ Noisy Student, 1 iteration from the FixMatch model \| 1000 \| 59000 \| 1 x 3 \| "
                           r"(\d+\.\d\d) % \(([+-]\d+\.\d\d)\) \| \d+ s \|$", proc.stdout, re.M)
            self.assertIsNotNone(ns, proc.stdout)
            self.assertEqual(ns.group(1), students[0][1])
            self.assertAlmostEqual(float(ns.group(2)), float(ns.group(1)) - float(base.group(1)), delta=0.011)
            self.assertRegex(proc.stdout, r"pseudo-labels kept \(top probability >= 0\.95\): \d+\.\d %")
            self.assertEqual(read_png(os.path.join(out, "learning_curve.png")), (720, 420, 3))
            # Ten rows (one per class) of eight 84-pixel tiles, 4 pixels apart and around.
            self.assertEqual(read_png(os.path.join(out, "augmentations.png")), (8 * 88 + 4, 10 * 88 + 4, 1))

    def test_baseline_only_has_one_row(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = self.run_demo("--steps", "10", "--unlabeled-steps", "0", "--student-iterations", "0", "--out", tmp)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn("| supervised baseline (R0) | 1000 | 0 | 10 |", proc.stdout)
            self.assertNotIn("FixMatch", proc.stdout)
            self.assertNotIn("Noisy Student", proc.stdout)
            self.assertEqual(read_png(os.path.join(tmp, "learning_curve.png")), (720, 420, 3))

    def test_students_without_fixmatch_learn_from_the_baseline(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = self.run_demo("--steps", "10", "--unlabeled-steps", "0", "--student-iterations", "1",
                                 "--student-steps", "2", "--out", tmp)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertNotIn("FixMatch", proc.stdout + proc.stderr)
            self.assertRegex(proc.stderr, r"\[2/2 Noisy Student\] step 2/2 ")
            self.assertRegex(proc.stdout, re.compile(r"^\| \+ Noisy Student, 1 iteration from the baseline \| 1000 \| "
                                                     r"59000 \| 1 x 2 \| \d+\.\d\d % \([+-]\d+\.\d\d\) \| \d+ s \|$", re.M))

    def test_bad_options_fail_naming_them_and_write_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            for args in (["--steps", "0"], ["--unlabeled-steps", "-1"], ["--student-iterations", "101"],
                         ["--student-steps", "0"], ["--eval-every", "x"], ["--frobnicate"]):
                with self.subTest(args=args):
                    proc = self.run_demo(*args + ["--out", tmp])
                    self.assertEqual(proc.returncode, 2)
                    self.assertIn("bad option or value: %s" % args[0], proc.stderr)
            blocker = os.path.join(tmp, "a-file")
            with open(blocker, "w") as f:
                f.write("not a directory")
            proc = self.run_demo("--steps", "1", "--out", os.path.join(blocker, "out"))
            self.assertEqual(proc.returncode, 1)
            self.assertIn("cannot create %s" % os.path.join(blocker, "out"), proc.stderr)
            self.assertEqual(sorted(os.listdir(tmp)), ["a-file"])


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    if len(sys.argv) > 1:
        DATA = sys.argv.pop(1)
    unittest.main(verbosity=2)
