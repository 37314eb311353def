#!/usr/bin/python3
"""Writes tests/data/augment/golden.bin.gz: reference outputs of the
single-image augmentation ops, computed by the libraries libdel follows.

Run with Debian's python3 (numpy, torchvision 0.14, Pillow 9, python3-opencv):
    /usr/bin/python3 scripts/gen_augment_golden.py

Which library defines each op (and is therefore the reference here):
  torchvision.transforms.functional on PIL images (Pillow underneath):
      brightness, contrast, color (adjust_saturation), sharpness, posterize,
      solarize, autocontrast, equalize, rotate (F.rotate, expand=False);
  torchvision.transforms.autoaugment._apply_op (RandAugment's own calls):
      shear_x, shear_y, translate_x, translate_y;
  numpy: brightness_add (saturating add), flip_h / flip_v (np.flip),
      rotate90 (np.rot90), crop (slicing), pad_crop (np.pad + slicing, as
      torchvision's RandomCrop(padding=...) = F.pad + F.crop), cutout (the
      Cutout paper's box, extended to odd sizes);
  OpenCV: rotate270 = cv2.ROTATE_90_CLOCKWISE, rotate180 = cv2.ROTATE_180,
      affine (cv2.getAffineTransform + cv2.warpAffine), perspective
      (cv2.getPerspectiveTransform + cv2.warpPerspective), constant border.

File format (gzip-compressed, little-endian): the magic b"DELAUGG1", then
records until the end: u16 name length, the name (ASCII), one byte kind
('u' = uint8, 'f' = float32), three i32 dims, then the values in C order.
Images are [H, W, C]; parameter vectors are [1, 1, n].
Records: "img/<k>" the inputs; "<op>/<i>/p" the parameters of case i of op
(p[0] is always the input index k), "<op>/<i>/out" the reference output.
Parameters are rounded to float32 before use so that libdel, which takes
floats, sees exactly the values the reference saw.
"""
import gzip
import math
import os
import struct
import sys

import cv2
import numpy as np
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "augment", "golden.bin.gz")
INTERP = {0: InterpolationMode.NEAREST, 1: InterpolationMode.BILINEAR}
CV_INTERP = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR}

records = []


def put(name, arr):
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        kind = b"u"
    else:
        arr = arr.astype(np.float32)
        kind = b"f"
    if arr.ndim == 1:
        arr = arr.reshape(1, 1, -1)
    assert arr.ndim == 3, name
    nb = name.encode("ascii")
    records.append(struct.pack("<H", len(nb)) + nb + kind + struct.pack("<3i", *arr.shape) +
                   np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())


def f32(v):
    return float(np.float32(v))


def pattern(h, w, c, seed, lo=0, hi=255):
    """Gradient + stripes + noise, so that every op has something to do."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        v = 0.55 * x / max(w - 1, 1) + 0.35 * y / max(h - 1, 1) + 0.1 * ((x + 2 * y + k) % 3)
        v = (v + 0.37 * k) % 1.0
        v = v * 0.8 + 0.2 * rng.rand(h, w)
        chans.append(lo + np.floor(v * (hi - lo + 1)).clip(0, hi - lo))
    return np.stack(chans, -1).astype(np.uint8)


def big_pattern():
    y, x = np.mgrid[0:256, 0:256]
    v = ((x // 16 + y // 16) % 2) * 110 + (x + 2 * y) // 4 + ((x * 7 + y * 13) % 17)
    return (v % 256).astype(np.uint8)[:, :, None]


IMAGES = [
    pattern(13, 17, 3, 1),          # 0: RGB
    pattern(13, 17, 1, 2),          # 1: grey
    pattern(13, 17, 3, 3, 40, 190),  # 2: RGB, narrow range (autocontrast, equalize)
    big_pattern(),                  # 3: 256 x 256 grey (the seed affine example)
    pattern(16, 16, 3, 4),          # 4: square RGB (90-degree rotate shortcut)
]


def pil(k):
    a = IMAGES[k]
    return Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


def from_pil(im):
    a = np.asarray(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


cases = {}


def case(op, params, out):
    i = cases.get(op, 0)
    cases[op] = i + 1
    put("%s/%d/p" % (op, i), np.array(params, dtype=np.float32))
    put("%s/%d/out" % (op, i), np.asarray(out, dtype=np.uint8))


def main():
    for k, img in enumerate(IMAGES):
        put("img/%d" % k, img)

    for k in (0, 1):
        for delta in (100, -60):  # +100 with clipping: a seed example
            case("brightness_add", [k, delta], np.clip(IMAGES[k].astype(int) + delta, 0, 255))
        for f in (0.3, 1.7):
            f = f32(f)
            case("brightness", [k, f], from_pil(F.adjust_brightness(pil(k), f)))
        for f in (0.4, 1.9, 0.0):
            f = f32(f)
            case("contrast", [k, f], from_pil(F.adjust_contrast(pil(k), f)))
        for f in (0.2, 1.8):
            f = f32(f)
            case("color", [k, f], from_pil(F.adjust_saturation(pil(k), f)))
        for f in (0.1, 1.9, 0.0):
            f = f32(f)
            case("sharpness", [k, f], from_pil(F.adjust_sharpness(pil(k), f)))
        for bits in (1, 4, 7, 8):
            case("posterize", [k, bits], from_pil(F.posterize(pil(k), bits)))
        for thr in (128.0, 200.5, 0.0):
            case("solarize", [k, thr], from_pil(F.solarize(pil(k), thr)))
    for k in (0, 1, 2):
        case("autocontrast", [k], from_pil(F.autocontrast(pil(k))))
        case("equalize", [k], from_pil(F.equalize(pil(k))))

    for k in (0, 1):
        a = IMAGES[k]
        case("flip_h", [k], np.flip(a, 1))
        case("flip_v", [k], np.flip(a, 0))
        case("rotate90", [k], np.rot90(a, 1))
        case("rotate180", [k], cv2.rotate(a, cv2.ROTATE_180).reshape(a.shape))  # seed example
        case("rotate270", [k], cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE).reshape(a.shape[1], a.shape[0], -1))
        case("crop", [k, 2, 3, 7, 9], a[2:9, 3:12])  # the crop window seed example
        for pad, y, x, h, w, fill in ((4, 0, 0, 13, 17, 0), (4, 8, 8, 13, 17, 0), (2, 3, 1, 10, 12, 77)):
            padded = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)
            case("pad_crop", [k, pad, y, x, h, w, fill], padded[y:y + h, x:x + w])
        for cy, cx, size, fill in ((6, 8, 4, 0), (1, 15, 6, 0), (12, 0, 5, 128), (-3, 4, 4, 9)):
            out = a.copy()
            y0, x0 = cy - size // 2, cx - size // 2
            out[max(y0, 0):max(min(y0 + size, a.shape[0]), 0), max(x0, 0):max(min(x0 + size, a.shape[1]), 0)] = fill
            case("cutout", [k, cy, cx, size, fill], out)

    for k in (0, 1, 4):
        for deg, interp, fill in ((30.0, 0, 0), (30.0, 1, 0), (-17.5, 0, 50), (-17.5, 1, 50), (90.0, 0, 0),
                                  (90.0, 1, 7), (200.0, 1, 0), (180.0, 0, 0), (-270.0, 1, 0)):
            deg = f32(deg)
            case("rotate", [k, deg, interp, fill],
                 from_pil(F.rotate(pil(k), deg, interpolation=INTERP[interp], fill=fill)))
        for op, name in (("ShearX", "shear_x"), ("ShearY", "shear_y")):
            for m, interp, fill in ((0.3, 0, 0), (0.3, 1, 0), (-0.21, 0, 90), (-0.21, 1, 90), (0.05, 1, 0)):
                m = f32(m)
                case(name, [k, m, interp, fill], from_pil(_apply_op(pil(k), op, m, INTERP[interp], [fill] * (
                    3 if IMAGES[k].shape[2] == 3 else 1))))
        for op, name in (("TranslateX", "translate_x"), ("TranslateY", "translate_y")):
            for t, fill in ((5, 0), (-3, 11), (40, 0)):
                case(name, [k, t, fill], from_pil(_apply_op(pil(k), op, float(t), InterpolationMode.NEAREST, [fill] * (
                    3 if IMAGES[k].shape[2] == 3 else 1))))

    # The seed example: the affine map from 3 point pairs, on a 256 x 256 image.
    src_pts = np.float32([[50, 50], [200, 50], [50, 200]])
    dst_pts = np.float32([[10, 100], [200, 50], [100, 250]])
    M = cv2.getAffineTransform(src_pts, dst_pts)
    put("affine_points/0/src", src_pts.reshape(-1))
    put("affine_points/0/dst", dst_pts.reshape(-1))
    put("affine_points/0/m", M.reshape(-1))
    src_pts = np.float32([[1.5, 2], [11, 3.25], [4, 12]])
    dst_pts = np.float32([[0, 0], [16, 1], [2.5, 12.75]])
    put("affine_points/1/src", src_pts.reshape(-1))
    put("affine_points/1/dst", dst_pts.reshape(-1))
    put("affine_points/1/m", cv2.getAffineTransform(src_pts, dst_pts).reshape(-1))

    def affine_case(k, m, h, w, interp, fill):
        m32 = np.float32(m).astype(np.float64)
        a = IMAGES[k]
        out = cv2.warpAffine(a, m32, (w, h), flags=CV_INTERP[interp], borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(fill, fill, fill, 0))
        case("affine", [k, h, w, interp, fill] + list(m32.reshape(-1)), out.reshape(h, w, -1))

    for interp in (0, 1):
        affine_case(3, M, 256, 256, interp, 0)
    m_small = cv2.getRotationMatrix2D((8.0, 6.0), 25.0, 0.9)
    m_small[0, 1] += 0.15
    m_small[1, 2] += 1.3
    for k in (0, 1):
        for interp, fill in ((0, 0), (1, 0), (1, 200)):
            affine_case(k, m_small, 11, 15, interp, fill)
            affine_case(k, m_small, 13, 17, interp, fill)

    quads = [
        (np.float32([[0, 0], [16, 0], [16, 12], [0, 12]]), np.float32([[1, 2], [15, 0], [14, 11], [2.5, 12]])),
        (np.float32([[2, 1], [14, 2], [15, 11], [1, 10]]), np.float32([[0, 0], [16, 0], [16, 12], [0, 12]])),
    ]
    for i, (s, d) in enumerate(quads):
        put("perspective_points/%d/src" % i, s.reshape(-1))
        put("perspective_points/%d/dst" % i, d.reshape(-1))
        put("perspective_points/%d/m" % i, cv2.getPerspectiveTransform(s, d).reshape(-1))
    for s, d in quads:
        m32 = np.float32(cv2.getPerspectiveTransform(s, d)).astype(np.float64)
        for k in (0, 1):
            for interp, fill in ((0, 0), (1, 0), (1, 60)):
                a = IMAGES[k]
                out = cv2.warpPerspective(a, m32, (17, 13), flags=CV_INTERP[interp],
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=(fill, fill, fill, 0))
                case("perspective", [k, 13, 17, interp, fill] + list(m32.reshape(-1)), out.reshape(13, 17, -1))

    # RandAugment end to end for fixed (op, sign) lists: torchvision's own
    # magnitude table and _apply_op, so the library's bins, signs, value
    # conversions and op wiring are all checked. p = [k, m, (op, negate)*].
    from torchvision.transforms import RandAugment
    names = list(RandAugment()._augmentation_space(31, (1, 1)).keys())
    seqs = [[(1, 0), (5, 1)], [(3, 1), (6, 0)], [(4, 0), (7, 1)], [(2, 1), (8, 0)], [(9, 1), (10, 0)],
            [(11, 0), (12, 0)], [(13, 0), (0, 0)], [(6, 1), (9, 0)], [(3, 0), (4, 1)], [(5, 0), (11, 0)]]
    for k in (0, 1):
        h, w = IMAGES[k].shape[:2]
        for m in (9, 30, 4):
            space = RandAugment()._augmentation_space(31, (h, w))
            for seq in seqs:
                img = pil(k)
                params = [k, m]
                for op, neg in seq:
                    mags, signed = space[names[op]]
                    mag = float(mags[m].item()) if mags.ndim > 0 else 0.0
                    if signed and neg:
                        mag *= -1.0
                    img = _apply_op(img, names[op], mag, InterpolationMode.NEAREST, None)
                    params += [op, neg]
                case("randaugment", params, from_pil(img))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    payload = b"DELAUGG1" + b"".join(records)
    with open(OUT, "wb") as f:
        # mtime=0 keeps the file byte-identical across regenerations.
        f.write(gzip.compress(payload, compresslevel=9, mtime=0))
    print("%s: %d records, %d bytes (%d uncompressed)" % (os.path.normpath(OUT), len(records),
                                                         os.path.getsize(OUT), len(payload)), file=sys.stderr)


if __name__ == "__main__":
    main()
