"""Learning-without-Forgetting tutorial (docs/tutorials/lwf.md): the
transfer task of SPEC §5 R7 on Fashion-MNIST, keeping the old task, as
examples/lwf.c.

A fmnist-cnn is pre-trained on classes 0-4 (all 30,000 of their training
images), or loaded with --pretrained (e.g. saved by finetune.py --save),
then learns classes 5-9 from FMNIST-1k's 100 labels per class on a new head
while its old head is held to its own recorded outputs: LwF with T = 2,
lambda = 1 and 200 steps of the new head alone, and for comparison
lambda = 0 (fine-tuning the whole model, which forgets).

    PYTHONPATH=bindings/python python3 examples/python/lwf.py --steps 50
"""

import argparse

import libdel

PER_CLASS = 100    # FMNIST-1k
HEAD_WARMUP = 200  # R7: steps of the new head alone first
REPORT_EVERY = 500


def class_range(ds, first, count):
    """The images of ds labelled first..first+count-1, relabelled 0..count-1."""
    indices = [i for i, y in enumerate(ds.labels) if first <= y < first + count]
    subset = ds.subset(indices)
    height, width, channels = subset.shape
    return libdel.Dataset.from_arrays(subset.images, [y - first for y in subset.labels],
                                      len(subset), height, width, channels)


def progress(name):
    return lambda step, total, loss: print("  %s step %d/%d  loss %.3f" % (name, step, total, loss),
                                           flush=True)


def learn_new_task(weights, new_train, new_test, old_test, lwf_lambda, steps):
    """One run from the pre-trained model's bytes (a fresh copy each time):
    the old classifier becomes head "old", a new 5-class head "new" learns
    the new task. Returns the (new task, old task) accuracies."""
    model = libdel.Model.from_bytes(weights)
    trainer = libdel.Trainer.lwf(model, new_train, 5, old_head="old", new_head="new",
                                 lwf_lambda=lwf_lambda, temperature=2.0, head_warmup=HEAD_WARMUP)
    trainer.fit(steps, progress("lwf" if lwf_lambda > 0 else "lambda 0"), REPORT_EVERY)
    return trainer.evaluate(new_test), trainer.evaluate_head(old_test, "old")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of each run on the new task")
    parser.add_argument("--pretrain-steps", type=int, help="steps of the pre-training (default: --steps)")
    parser.add_argument("--threads", type=int, help="compute threads (default: all CPUs)")
    parser.add_argument("--data", help="Fashion-MNIST directory (default %s)" % libdel.FASHION_MNIST_DIR)
    parser.add_argument("--pretrained", help="load the pre-trained 5-class model instead of training it")
    parser.add_argument("--save", help="save the pre-trained model there")
    args = parser.parse_args()
    if args.threads:
        libdel.set_num_threads(args.threads)

    train = libdel.Dataset.fashion_mnist("train", args.data)
    test = libdel.Dataset.fashion_mnist("test", args.data)
    labeled, _ = train.split_per_class(PER_CLASS)
    # Old task: classes 0-4, all their images. New task: classes 5-9 as
    # labels 0-4, FMNIST-1k's 100 labeled images of each.
    old_train, old_test = class_range(train, 0, 5), class_range(test, 0, 5)
    new_train, new_test = class_range(labeled, 5, 5), class_range(test, 5, 5)

    if args.pretrained:
        pretrained = libdel.Model.load(args.pretrained)
        print("pre-trained model:", args.pretrained)
    else:
        steps = args.pretrain_steps or args.steps
        print("pre-training fmnist-cnn on classes 0-4 (%d images), %d steps" % (len(old_train), steps))
        pretrained = libdel.Model.preset("fmnist-cnn", channels=1, height=28, width=28, num_classes=5)
        libdel.Trainer.supervised(pretrained, old_train).fit(steps, progress("pre-train"), REPORT_EVERY)
    if args.save:
        pretrained.save(args.save)
    # Any trainer scores a model; this one is never fitted.
    before = libdel.Trainer.supervised(pretrained, old_test).evaluate(old_test)
    print("pre-trained, old task (classes 0-4): %.2f%%" % (100 * before))

    weights = pretrained.to_bytes()
    print("new task: classes 5-9 (%d labels), %d steps each" % (len(new_train), args.steps))
    new_acc, old_acc = learn_new_task(weights, new_train, new_test, old_test, 1.0, args.steps)
    print("LwF (lambda 1):           new task %.2f%%, old task %.2f%%" % (100 * new_acc, 100 * old_acc))
    new_acc, old_acc = learn_new_task(weights, new_train, new_test, old_test, 0.0, args.steps)
    print("fine-tuning (lambda 0):   new task %.2f%%, old task %.2f%%" % (100 * new_acc, 100 * old_acc))


if __name__ == "__main__":
    main()
