"""Fine-tuning tutorial (docs/tutorials/finetune.md): the transfer task of
SPEC §5 R7 on Fashion-MNIST, as examples/finetune.c.

A fmnist-cnn is pre-trained on classes 0-4 (all 30,000 of their training
images), or loaded with --pretrained, then transferred to classes 5-9 with
FMNIST-1k's 100 labels per class: once as a linear probe (only a new head
trains) and once fully fine-tuned (the backbone at 0.1x the head's learning
rate, after 200 steps of the head alone).

    PYTHONPATH=bindings/python python3 examples/python/finetune.py --steps 50
"""

import argparse

import libdel

PER_CLASS = 100    # FMNIST-1k
HEAD_WARMUP = 200  # R7: steps of the new head alone in full fine-tuning
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of each transfer")
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
    old_acc = libdel.Trainer.supervised(pretrained, old_test).evaluate(old_test)
    print("pre-trained, old task (classes 0-4): %.2f%%" % (100 * old_acc))

    # Each transfer starts from the same pre-trained weights: keep them as
    # the bytes of a model file.
    weights = pretrained.to_bytes()
    print("transfer to classes 5-9 (%d labels), %d steps each" % (len(new_train), args.steps))

    model = libdel.Model.from_bytes(weights)
    probe = libdel.Trainer.finetune(model, new_train, 5, mode="probe")
    probe.fit(args.steps, progress("probe"), REPORT_EVERY)
    print("linear probe, new task (classes 5-9): %.2f%%" % (100 * probe.evaluate(new_test)))

    model = libdel.Model.from_bytes(weights)
    full = libdel.Trainer.finetune(model, new_train, 5, mode="full", backbone_lr_mult=0.1,
                                   head_warmup=HEAD_WARMUP)
    full.fit(args.steps, progress("full"), REPORT_EVERY)
    print("full fine-tuning, new task (classes 5-9): %.2f%%" % (100 * full.evaluate(new_test)))


if __name__ == "__main__":
    main()
