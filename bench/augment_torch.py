#!/usr/bin/python3
"""torchvision reference for bench/augment.c: single-image augmentation
speed on RGB uint8 images, in img/s, on torchvision's PIL path (the path
whose pixels libdel reproduces).

  randaugment_32/_224   T.RandAugment(2, 9) on a PIL image
  cropflip_32/_224      T.RandomCrop(size, padding=size // 8) then
                        T.RandomHorizontalFlip() on a PIL image

The images are the same seeded pixels as augment.c's (splitmix64 of a
counter), made into PIL images before timing; the transforms return PIL
images, as libdel writes u8 tensors, so neither side pays a conversion.
Blocks, warm-up and the median are as in augment.c."""

import argparse
import statistics
import sys
import time

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

from torch_common import emit, log, set_threads

REFERENCE_NAME = "torchvision " + ".".join(torchvision.__version__.split(".")[:2])

BENCHES = {
    "randaugment_32": (32, lambda size: T.RandAugment(2, 9)),
    "randaugment_224": (224, lambda size: T.RandAugment(2, 9)),
    "cropflip_32": (32, lambda size: T.Compose([T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()])),
    "cropflip_224": (224, lambda size: T.Compose([T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()])),
}

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def seeded_pixels(seed, start, count):
    """Bytes start.. of the image set: byte i is the top byte of splitmix64
    at counter i (augment.c's pixel_at)."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        z = (np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(56)).astype(np.uint8)


def measure(name, args):
    size, make = BENCHES[name]
    n = size * size * 3
    images = [Image.fromarray(seeded_pixels(args.seed, k * n, n).reshape(size, size, 3), mode="RGB")
              for k in range(args.images)]
    transform = make(size)
    torch.manual_seed(args.seed)

    def one_pass():
        for img in images:
            transform(img)

    t0 = time.perf_counter()
    one_pass()
    pass_s = time.perf_counter() - t0
    passes = 1 if pass_s >= args.block_seconds else int(args.block_seconds / max(pass_s, 1e-6)) + 1
    rates = []
    start = time.perf_counter()
    while len(rates) < args.blocks and (len(rates) < 3 or time.perf_counter() - start < args.max_seconds):
        t0 = time.perf_counter()
        for _ in range(passes):
            one_pass()
        rates.append(args.images * passes / (time.perf_counter() - t0))
    med = statistics.median(rates)
    log("torchvision %s threads=%d images=%d passes/block=%d: median %.1f img/s, blocks %s" % (
        name, args.threads, args.images, passes, med, " ".join("%.1f" % r for r in rates)))
    emit({"bench": name, "threads": args.threads, "unit": "img/s", "reference": round(med, 1),
          "reference_name": REFERENCE_NAME, "size": size, "images": args.images})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("benches", nargs="*", help="default: all of " + ", ".join(BENCHES))
    p.add_argument("--list", action="store_true")
    p.add_argument("-t", "--threads", type=int, default=1)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--block-seconds", type=float, default=0.25)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.list:
        print("\n".join(BENCHES))
        return 0
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown:
        log("augment_torch: unknown bench '%s'; known: %s" % (unknown[0], ", ".join(BENCHES)))
        return 2
    if args.threads < 1 or args.images < 1 or args.blocks < 1 or args.block_seconds <= 0 or args.seed < 0:
        log("augment_torch: --threads, --images, --blocks must be >= 1, --block-seconds > 0, --seed >= 0")
        return 2
    set_threads(args.threads)
    log("augment_torch: %s, Pillow %s, %d thread(s)" % (REFERENCE_NAME, Image.__version__, torch.get_num_threads()))
    for name in args.benches or list(BENCHES):
        measure(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
