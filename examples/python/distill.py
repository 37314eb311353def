"""Knowledge-distillation tutorial (docs/tutorials/distill.md): SPEC §5 R6 on
Fashion-MNIST, as examples/distill.c.

A teacher, fmnist-cnn trained on all 60,000 training labels (or loaded with
--teacher), is distilled into a small student, the MLP 784-256-10, on
FMNIST-1k: its 1,000 labeled images L plus the 59,000 others as an unlabeled
transfer set U (T = 4, alpha = 0.9). For comparison the same MLP is trained
on L alone.

    PYTHONPATH=bindings/python python3 examples/python/distill.py --steps 50
"""

import argparse

import libdel

PER_CLASS = 100  # FMNIST-1k
REPORT_EVERY = 500


def progress(name):
    return lambda step, total, loss: print("  %s step %d/%d  loss %.3f" % (name, step, total, loss),
                                           flush=True)


def mlp():
    return libdel.Model.preset("mlp", channels=1, height=28, width=28, num_classes=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of each student")
    parser.add_argument("--teacher-steps", type=int,
                        help="steps of the teacher (default: 5/4 of --steps, 3750 = 4 epochs as R6)")
    parser.add_argument("--threads", type=int, help="compute threads (default: all CPUs)")
    parser.add_argument("--data", help="Fashion-MNIST directory (default %s)" % libdel.FASHION_MNIST_DIR)
    parser.add_argument("--teacher", help="load the teacher (a 10-class model) instead of training it")
    parser.add_argument("--save", help="save the teacher there")
    args = parser.parse_args()
    if args.threads:
        libdel.set_num_threads(args.threads)

    # L: the first 100 training images of each class; U: the other 59,000,
    # their labels set to -1.
    train = libdel.Dataset.fashion_mnist("train", args.data)
    test = libdel.Dataset.fashion_mnist("test", args.data)
    labeled, unlabeled = train.split_per_class(PER_CLASS)

    if args.teacher:
        teacher = libdel.Model.load(args.teacher)
        print("teacher:", args.teacher)
    else:
        steps = args.teacher_steps or args.steps + args.steps // 4
        print("training the teacher, fmnist-cnn, on all %d labels, %d steps" % (len(train), steps))
        teacher = libdel.Model.preset("fmnist-cnn", channels=1, height=28, width=28, num_classes=10)
        libdel.Trainer.supervised(teacher, train).fit(steps, progress("teacher"), REPORT_EVERY)
    if args.save:
        teacher.save(args.save)
    # Any trainer scores a model; this one is never fitted.
    print("teacher: %.2f%%" % (100 * libdel.Trainer.supervised(teacher, test).evaluate(test)))

    print("students: mlp, %d steps each" % args.steps)
    alone = libdel.Trainer.supervised(mlp(), labeled)
    alone.fit(args.steps, progress("alone"), REPORT_EVERY)
    print("student alone on L (%d labels): %.2f%%" % (len(labeled), 100 * alone.evaluate(test)))

    # alpha * T^2 KL(softmax_T(teacher) || softmax_T(student)) + (1 - alpha) * CE
    kd = libdel.Trainer.distill(mlp(), teacher, labeled, transfer=unlabeled, temperature=4.0,
                                alpha=0.9)
    kd.fit(args.steps, progress("distilled"), REPORT_EVERY)
    print("student distilled on L + U (T 4, alpha 0.9): %.2f%%" % (100 * kd.evaluate(test)))


if __name__ == "__main__":
    main()
