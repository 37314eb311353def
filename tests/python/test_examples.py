"""The tutorials' programs (docs/tutorials/): every block of code a tutorial
quotes is the example program's own code, and each Python example runs to
its last line with --steps 5."""

import os
import re
import subprocess
import sys
import unittest

import _util

EXAMPLES = ("finetune", "distill", "lwf", "pseudo_label", "consistency", "noisy_student")
# A quoted block: an HTML comment naming the file, then a fenced block.
EXCERPT = re.compile(r"<!-- excerpt: (\S+) -->\n```[a-z]+\n(.*?)```", re.S)


def read(*path):
    with open(os.path.join(_util.ROOT, *path), encoding="utf-8") as f:
        return f.read()


class TestTutorialExcerpts(unittest.TestCase):
    def test_each_tutorial_quotes_its_c_and_python_programs(self):
        for name in EXAMPLES:
            with self.subTest(tutorial=name):
                quoted = {path for path, _ in EXCERPT.findall(read("docs", "tutorials", name + ".md"))}
                self.assertIn("examples/%s.c" % name, quoted)
                self.assertIn("examples/python/%s.py" % name, quoted)

    def test_every_quoted_block_is_verbatim_in_the_file_it_names(self):
        for name in EXAMPLES:
            for path, block in EXCERPT.findall(read("docs", "tutorials", name + ".md")):
                with self.subTest(tutorial=name, file=path):
                    self.assertTrue(block in read(*path.split("/")),
                                    "docs/tutorials/%s.md quotes code that is not in %s:\n%s"
                                    % (name, path, block))


@unittest.skipUnless(_util.HAVE_FMNIST, "Fashion-MNIST not installed (dataset-fashion-mnist)")
class TestPythonExamplesRun(unittest.TestCase):
    def run_example(self, name):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_util.BINDINGS, env.get("PYTHONPATH")) if p)
        script = os.path.join(_util.ROOT, "examples", "python", name + ".py")
        proc = subprocess.run([sys.executable, script, "--steps", "5", "--threads", "1",
                               "--data", _util.FMNIST_DIR],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env, timeout=600)
        self.assertEqual(proc.returncode, 0, "%s.py failed:\n%s%s" % (name, proc.stdout, proc.stderr))
        return proc.stdout

    def test_finetune_reports_the_old_task_and_both_transfers(self):
        out = self.run_example("finetune")
        self.assertRegex(out, r"pre-trained, old task \(classes 0-4\): \d+\.\d\d%")
        self.assertRegex(out, r"linear probe, new task \(classes 5-9\): \d+\.\d\d%")
        self.assertRegex(out, r"full fine-tuning, new task \(classes 5-9\): \d+\.\d\d%")

    def test_distill_reports_the_teacher_and_both_students(self):
        out = self.run_example("distill")
        self.assertRegex(out, r"teacher: \d+\.\d\d%")
        self.assertRegex(out, r"student alone on L \(1000 labels\): \d+\.\d\d%")
        self.assertRegex(out, r"student distilled on L \+ U \(T 4, alpha 0\.9\): \d+\.\d\d%")

    def test_lwf_reports_both_tasks_with_and_without_distillation(self):
        out = self.run_example("lwf")
        self.assertRegex(out, r"LwF \(lambda 1\): +new task \d+\.\d\d%, old task \d+\.\d\d%")
        self.assertRegex(out, r"fine-tuning \(lambda 0\): +new task \d+\.\d\d%, old task \d+\.\d\d%")

    def test_pseudo_label_reports_both_runs_and_the_pseudo_labels(self):
        out = self.run_example("pseudo_label")
        self.assertRegex(out, r"supervised on L: \d+\.\d\d%")
        self.assertRegex(out, r"pseudo-label on L \+ U: \d+\.\d\d%")
        # --steps 5: the ramp starts at step 1, so pseudo-labels were made and judged.
        self.assertRegex(out, r"pseudo-labels: \d+\.\d% kept, \d+\.\d\d% correct")

    def test_consistency_reports_the_ema_the_model_and_the_kept_rate(self):
        out = self.run_example("consistency")
        self.assertRegex(out, r"FixMatch, EMA of the weights \(decay 0\.999\): \d+\.\d\d%")
        self.assertRegex(out, r"FixMatch, the trained model itself: \d+\.\d\d%")
        self.assertRegex(out, r"pseudo-labels kept: \d+\.\d%")

    def test_noisy_student_reports_the_teacher_and_each_student(self):
        out = self.run_example("noisy_student")
        self.assertRegex(out, r"teacher: \d+\.\d\d%")
        for k in (1, 2):
            self.assertRegex(out, r"student %d: \d+\.\d\d%% \(\d+ of 59000 unlabeled images kept, \d+ after "
                             r"balancing\)" % k)


if __name__ == "__main__":
    unittest.main()
