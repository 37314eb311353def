"""Noisy Student tutorial (docs/tutorials/noisy_student.md): SPEC §5 R5 on
Fashion-MNIST, as examples/noisy_student.c.

A teacher, fmnist-cnn trained on FMNIST-1k's 1,000 labeled images L with std
aug (R1), labels the other 59,000 training images U; the confident ones (top
probability >= 0.3), balanced per class, train a noised student (std aug +
RandAugment(2, 9), dropout) together with L; the student then teaches the
next one. With --checkpoint DIR the run can be stopped and started again
with the same arguments: it continues where it stopped.

    PYTHONPATH=bindings/python python3 examples/python/noisy_student.py --steps 50
"""

import argparse

import libdel

PER_CLASS = 100  # FMNIST-1k
REPORT_EVERY = 500


def progress(name):
    return lambda step, total, loss: print("  %s step %d/%d  loss %.3f" % (name, step, total, loss),
                                           flush=True)


def std_aug(seed, strong):
    """std aug (a 28x28 crop of the image padded by 2, a flip with p = 0.5),
    then RandAugment(2, 9) when strong: the student's noise."""
    aug = libdel.Augment(seed).add_random_crop(28, 28, pad=2).add_flip_h(0.5)
    return aug.add_randaugment(2, 9) if strong else aug


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000,
                        help="steps of each student (the teacher trains 3/4 of it, at least 100)")
    parser.add_argument("--iterations", type=int, default=2, help="students, each the next one's teacher")
    parser.add_argument("--threads", type=int, help="compute threads (default: all CPUs)")
    parser.add_argument("--data", help="Fashion-MNIST directory (default %s)" % libdel.FASHION_MNIST_DIR)
    parser.add_argument("--checkpoint", help="checkpoint every iteration (and every 500 steps) there")
    args = parser.parse_args()
    if args.threads:
        libdel.set_num_threads(args.threads)

    # L: the first 100 training images of each class; U: the other 59,000,
    # their labels set to -1.
    train = libdel.Dataset.fashion_mnist("train", args.data)
    test = libdel.Dataset.fashion_mnist("test", args.data)
    labeled, unlabeled = train.split_per_class(PER_CLASS)

    # At least 100 steps: a teacher of a few steps is too unsure to label
    # anything above the threshold.
    teacher_steps = max(args.steps * 3 // 4, 100)
    print("teacher: fmnist-cnn on L (%d labels) with std aug, %d steps" % (len(labeled), teacher_steps))
    teacher = libdel.Model.preset("fmnist-cnn", channels=1, height=28, width=28, num_classes=10)
    trainer = libdel.Trainer.supervised(teacher, labeled, augment=std_aug(0, False))
    trainer.fit(teacher_steps, progress("teacher"), REPORT_EVERY)
    print("teacher: %.2f%%" % (100 * trainer.evaluate(test)))

    # The student's noise: its own pipelines for L and for the pseudo-labeled
    # pool; dropout is fmnist-cnn's own. The teacher labels U without noise.
    # Scored on the test set only to print each iteration's accuracy; a real
    # run would hold out a validation split.
    ns = libdel.NoisyStudent(teacher, labeled, unlabeled, iterations=args.iterations, steps=args.steps,
                             batch_sizes=(64, 192), threshold=0.3, per_class="mean",
                             augment=(std_aug(1, True), std_aug(2, True)), validation=test,
                             checkpoint_dir=args.checkpoint, checkpoint_every=500)
    print("students: fmnist-cnn, %d iterations of %d steps, 64 labeled + 192 pseudo-labeled per step"
          % (args.iterations, args.steps))
    ns.run(progress("students"), REPORT_EVERY)
    for k in range(1, args.iterations + 1):
        accuracy, kept, pool = ns.stats(k)
        print("student %d: %.2f%% (%d of %d unlabeled images kept, %d after balancing)"
              % (k, 100 * accuracy, kept, len(unlabeled), pool))


if __name__ == "__main__":
    main()
