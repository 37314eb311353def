"""Pseudo-labeling tutorial (docs/tutorials/pseudo_label.md): SPEC §5 R4 on
Fashion-MNIST, as examples/pseudo_label.c.

fmnist-cnn learns from FMNIST-1k's 1,000 labeled images L and the other
59,000 training images U, labeled at every step by the model's own
prediction (Lee 2013): 64 images of L and 256 of U a step, std aug (a pad-2
crop and a flip) on both, the weight of the pseudo-labels ramped from 0 at
20 % of the steps to 3 at 60 %. For comparison the same network learns from
L alone with std aug (R1). U's true labels are given to the trainer only to
count how many pseudo-labels were right: they never train.

    PYTHONPATH=bindings/python python3 examples/python/pseudo_label.py --steps 50
"""

import argparse
import math

import libdel

PER_CLASS = 100           # FMNIST-1k
UNLABELED_BATCH = 256     # R4: 64 labeled + 256 unlabeled images a step
ALPHA_F = 3.0             # the pseudo-label weight after the ramp
UNLABELED_SEED = 1000003  # U's pipeline seed: the benchmark's, so this is R4's seed-0 run
REPORT_EVERY = 500


def std_aug(seed):
    """SPEC §5's "std aug": a random 28x28 crop of the image zero-padded by 2,
    then a horizontal flip with p = 0.5."""
    return libdel.Augment(seed).add_random_crop(28, 28, pad=2).add_flip_h(0.5)


def unlabeled_truth(train):
    """The true labels of the images split_per_class(PER_CLASS) put in U, in
    U's order: train's, less the first PER_CLASS images of each class."""
    seen, truth = [0] * 10, []
    for y in train.labels:
        if 0 <= y < 10 and seen[y] < PER_CLASS:
            seen[y] += 1
        else:
            truth.append(y)
    return truth


def fmnist_cnn():
    return libdel.Model.preset("fmnist-cnn", channels=1, height=28, width=28, num_classes=10)


def train_pseudo_label(labeled, unlabeled, truth, test, steps):
    """R4: fmnist-cnn on L and U, U's pseudo-labels the argmax of the model's
    own output in each step. Returns the test accuracy and the (kept,
    correct) fractions of the pseudo-labels over the whole run."""
    t1 = steps // 5
    t2 = max(steps * 3 // 5, t1 + 1)  # 20 % and 60 %
    trainer = libdel.Trainer.pseudo_label(fmnist_cnn(), labeled, unlabeled, augment=std_aug(0),
                                          augment_unlabeled=std_aug(UNLABELED_SEED),
                                          unlabeled_batch_size=UNLABELED_BATCH,
                                          pl_ramp=(t1, t2, ALPHA_F),  # alpha 0 -> 3
                                          unlabeled_truth=truth)      # for the log

    def progress(step, total, loss):
        kept, correct, _ = trainer.pseudo_label_stats()
        line = "  pseudo-label step %d/%d  loss %.3f" % (step, total, loss)
        if not math.isnan(kept):  # NaN: none yet, alpha is still 0
            line += "  kept %.1f%%  correct %.2f%%" % (100 * kept, 100 * correct)
        print(line, flush=True)

    trainer.fit(steps, progress, REPORT_EVERY)
    kept, correct, _ = trainer.pseudo_label_stats()
    return trainer.evaluate(test), kept, correct


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="steps of the pseudo-label run (R4)")
    parser.add_argument("--baseline-steps", type=int,
                        help="steps of the supervised run on L (default: 3/4 of --steps, 3000 as R1)")
    parser.add_argument("--threads", type=int, help="compute threads (default: all CPUs)")
    parser.add_argument("--data", help="Fashion-MNIST directory (default %s)" % libdel.FASHION_MNIST_DIR)
    args = parser.parse_args()
    if args.threads:
        libdel.set_num_threads(args.threads)
    baseline_steps = args.baseline_steps or max(args.steps * 3 // 4, 1)

    # L: the first 100 training images of each class; U: the other 59,000,
    # their labels set to -1.
    train = libdel.Dataset.fashion_mnist("train", args.data)
    test = libdel.Dataset.fashion_mnist("test", args.data)
    labeled, unlabeled = train.split_per_class(PER_CLASS)
    truth = unlabeled_truth(train)
    print("FMNIST-1k: L %d labeled images, U %d unlabeled" % (len(labeled), len(unlabeled)))

    print("supervised on L with std aug (R1), %d steps" % baseline_steps)
    supervised = libdel.Trainer.supervised(fmnist_cnn(), labeled, augment=std_aug(0))
    supervised.fit(baseline_steps, lambda step, total, loss: print(
        "  supervised step %d/%d  loss %.3f" % (step, total, loss), flush=True), REPORT_EVERY)
    print("supervised on L: %.2f%%" % (100 * supervised.evaluate(test)))

    print("pseudo-label on L + U (R4), %d steps" % args.steps)
    accuracy, kept, correct = train_pseudo_label(labeled, unlabeled, truth, test, args.steps)
    print("pseudo-label on L + U: %.2f%%" % (100 * accuracy))
    print("pseudo-labels: %.1f%% kept, %.2f%% correct" % (100 * kept, 100 * correct))


if __name__ == "__main__":
    main()
