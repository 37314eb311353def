"""Consistency-training tutorial (docs/tutorials/consistency.md): SPEC §5 R8,
FixMatch (Sohn et al. 2020) on Fashion-MNIST, as examples/consistency.c.

fmnist-cnn learns from FMNIST-1k's 1,000 labeled images L and the other
59,000 training images U: each step 64 images of L (std aug: a pad-2 crop
and a flip) and 7 x 64 = 448 of U, each seen twice, weakly (std aug) and
strongly (std aug + RandAugment(2, 10) + cutout 14). The model's prediction
on the weak view, kept when its top probability is >= 0.95, is the label the
strong view learns. The moving average of the weights (EMA, decay 0.999) is
the model scored. --flexmatch uses FlexMatch's per-class thresholds (Zhang
et al. 2021) instead of 0.95 for every class.

    PYTHONPATH=bindings/python python3 examples/python/consistency.py --steps 50
"""

import argparse

import libdel

PER_CLASS = 100       # FMNIST-1k
MU = 7                # unlabeled images per labeled one
THRESHOLD = 0.95      # tau
EMA_DECAY = 0.999
WEAK_SEED = 1000003   # the benchmark's pipeline seeds, so this is R8's seed-0 run
STRONG_SEED = 2000003
REPORT_EVERY = 500


def std_aug(seed):
    """SPEC §5's "std aug": a random 28x28 crop of the image zero-padded by 2,
    then a horizontal flip with p = 0.5."""
    return libdel.Augment(seed).add_random_crop(28, 28, pad=2).add_flip_h(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="training steps (R8)")
    parser.add_argument("--threads", type=int, help="compute threads (default: all CPUs)")
    parser.add_argument("--data", help="Fashion-MNIST directory (default %s)" % libdel.FASHION_MNIST_DIR)
    parser.add_argument("--flexmatch", action="store_true",
                        help="FlexMatch's per-class thresholds instead of FixMatch's fixed one")
    parser.add_argument("--save", help="save the EMA model there")
    args = parser.parse_args()
    if args.threads:
        libdel.set_num_threads(args.threads)
    name = "FlexMatch" if args.flexmatch else "FixMatch"

    # L: the first 100 training images of each class; U: the other 59,000,
    # their labels set to -1.
    train = libdel.Dataset.fashion_mnist("train", args.data)
    test = libdel.Dataset.fashion_mnist("test", args.data)
    labeled, unlabeled = train.split_per_class(PER_CLASS)
    print("FMNIST-1k: L %d labeled images, U %d unlabeled" % (len(labeled), len(unlabeled)))
    print("%s on L + U (R8), %d steps of 64 labeled + %d unlabeled images, tau %.2f"
          % (name, args.steps, 64 * MU, THRESHOLD))

    model = libdel.Model.preset("fmnist-cnn", channels=1, height=28, width=28, num_classes=10)
    weak = std_aug(WEAK_SEED)
    strong = std_aug(STRONG_SEED).add_randaugment(2, 10).add_cutout(1.0, 14)  # 14x14 of 0, always
    trainer = libdel.Trainer.consistency(model, labeled, unlabeled, weak, strong,
                                         augment=std_aug(0), unlabeled_ratio=MU,
                                         consistency_threshold=THRESHOLD,
                                         flexmatch=args.flexmatch, ema=EMA_DECAY)

    def progress(step, total, loss):
        kept = trainer.consistency_stats()  # so far in the fit
        print("  step %d/%d  loss %.3f  kept %.1f%%" % (step, total, loss, 100 * kept), flush=True)

    trainer.fit(args.steps, progress, REPORT_EVERY)
    kept = trainer.consistency_stats()
    ema_acc = trainer.evaluate(test)  # the EMA's weights
    if args.save:
        trainer.ema_model().save(args.save)
    # Any trainer scores a model; this one, without an EMA, scores the model itself.
    model_acc = libdel.Trainer.supervised(model, test).evaluate(test)
    print("%s, EMA of the weights (decay %.3f): %.2f%%" % (name, EMA_DECAY, 100 * ema_acc))
    print("%s, the trained model itself: %.2f%%" % (name, 100 * model_acc))
    print("pseudo-labels kept: %.1f%%" % (100 * kept))
    if args.save:
        print("EMA model saved to", args.save)


if __name__ == "__main__":
    main()
