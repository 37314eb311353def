#!/usr/bin/python3
"""Peak resident memory of training, libdel next to PyTorch.

Runs N training steps (batch 128, SGD momentum 0.9 Nesterov wd 5e-4, CE) of
a model once in a fresh libdel process (build/bench/throughput --mode
steps) and once in a fresh PyTorch process (bench/torch_throughput.py
--mode steps, contiguous NCHW), and reads each child's maximum resident set
size from wait4(). Both sides train on one seeded random batch of the same
size (the data would weigh the same on both sides; the speed and memory of
a step do not depend on the pixels). PyTorch's figure includes the
interpreter and libtorch, as a user running it pays them; the cost of
'import torch' alone is logged on stderr for scale.

stdout: one JSON line per run, {"bench": "peak_rss_train_<model>", "unit":
"MiB", "libdel": ..., "reference": ..., "lower_is_better": true, ...};
report.py turns it into ratio = reference / libdel (> 1: libdel uses less).
Only the standard library is used."""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print("peak_rss: " + msg, file=sys.stderr, flush=True)


def peak_mib(cmd):
    """Runs cmd (stdout discarded, stderr passed through) and returns its
    peak RSS in MiB; exits if it fails."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the
    # maximum over every child so far, hiding a smaller later one.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        log("%s failed (exit %d)" % (" ".join(cmd), proc.returncode))
        sys.exit(1)
    return usage.ru_maxrss / 1024.0  # Linux reports KiB


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", choices=("fmnist-cnn", "resnet20"), default="fmnist-cnn")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--throughput", default=os.path.join(ROOT, "build/bench/throughput"),
                   help="libdel's benchmark program")
    p.add_argument("--python", default=sys.executable, help="interpreter with PyTorch")
    p.add_argument("--no-torch", action="store_true", help="measure libdel alone")
    args = p.parse_args()
    if min(args.threads, args.steps, args.batch) < 1:
        p.error("--threads, --steps and --batch must be >= 1")

    common = ["--model", args.model, "--mode", "steps", "--steps", str(args.steps),
              "--train-batch", str(args.batch)]
    record = {"bench": "peak_rss_train_" + args.model.replace("-", "_"), "threads": args.threads,
              "unit": "MiB", "lower_is_better": True, "steps": args.steps, "batch": args.batch}
    record["libdel"] = round(peak_mib([args.throughput, "-t", str(args.threads)] + common), 1)
    log("libdel %s threads=%d: %.1f MiB" % (args.model, args.threads, record["libdel"]))
    if not args.no_torch:
        record["reference"] = round(peak_mib(
            [args.python, os.path.join(HERE, "torch_throughput.py"), "--threads", str(args.threads),
             "--formats", "contiguous"] + common), 1)
        baseline = peak_mib([args.python, "-c", "import torch; torch.set_num_threads(%d)" % args.threads])
        ver = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        record["reference_name"] = "pytorch " + ".".join(ver.split(".")[:2])
        log("torch %s threads=%d: %.1f MiB (import torch alone: %.1f MiB)" % (
            args.model, args.threads, record["reference"], baseline))
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
