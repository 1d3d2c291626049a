#!/usr/bin/env python3
"""torchvision reference values for d2l-vision's image transforms (tests/transforms.rs, D2L 13.1).

Writes crates/d2l-vision/tests/fixtures/transforms/cases.txt with the outputs of
torchvision.transforms.v2.functional on small fixed tensors (float32 in [0, 1] and uint8),
and statistics of RandomResizedCrop's parameter sampling (get_params drawn 10,000 times).

Tensor ops run on plain torch.Tensor inputs, which is what torchvision's tensor kernels
see; resize and resized_crop use torchvision's default bilinear with antialias=True.

Format, line by line (plain text so the test needs no JSON crate):
    input NAME DTYPE C H W          followed by one line with the values, row-major
    case NAME OP INPUT [ARG ...]    followed by
    out DTYPE C H W                 and one line with the values
    stat NAME VALUE                 a sampling statistic

Usage: .venv/bin/python scripts/gen_transform_fixtures.py
"""
import math
import os

import torch
import torchvision
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

OUT_DIR = os.path.join(
    os.path.dirname(__file__), "..", "crates", "d2l-vision", "tests", "fixtures", "transforms"
)

torch.manual_seed(0)
lines = [
    f"# image transform references: torch {torch.__version__}, torchvision {torchvision.__version__};"
    " written by scripts/gen_transform_fixtures.py"
]


def fmt(t):
    if t.dtype == torch.uint8:
        return " ".join(str(int(v)) for v in t.flatten().tolist())
    return " ".join(f"{v:.9g}" for v in t.flatten().tolist())


def dtype_name(t):
    return {torch.uint8: "u8", torch.float32: "f32"}[t.dtype]


inputs = {}


def add_input(name, t):
    inputs[name] = t
    lines.append(f"input {name} {dtype_name(t)} " + " ".join(str(d) for d in t.shape))
    lines.append(fmt(t))


def case(name, op, inp, *args):
    x = inputs[inp]
    fn = {
        "hflip": lambda x: F.horizontal_flip(x),
        "vflip": lambda x: F.vertical_flip(x),
        "crop": lambda x, t, l, h, w: F.crop(x, t, l, h, w),
        "center_crop": lambda x, h, w: F.center_crop(x, [h, w]),
        "resize": lambda x, h, w: F.resize(x, [h, w], antialias=True),
        "resize_short": lambda x, s: F.resize(x, s, antialias=True),
        "resized_crop": lambda x, t, l, h, w, oh, ow: F.resized_crop(x, t, l, h, w, [oh, ow], antialias=True),
        "brightness": lambda x, f: F.adjust_brightness(x, f),
        "contrast": lambda x, f: F.adjust_contrast(x, f),
        "saturation": lambda x, f: F.adjust_saturation(x, f),
        "hue": lambda x, f: F.adjust_hue(x, f),
        "normalize": lambda x: F.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        "to_tensor": lambda x: F.to_dtype(x, torch.float32, scale=True),
    }[op]
    y = fn(x, *args)
    lines.append(f"case {name} {op} {inp} " + " ".join(str(a) for a in args))
    lines.append(f"out {dtype_name(y)} " + " ".join(str(d) for d in y.shape))
    lines.append(fmt(y))


# A small float image with a few special pixels: grey (r = g = b, the hue code's eqc
# branch), pure black and white, and channel ties (max shared by two channels).
a = torch.rand(3, 9, 11)
a[:, 0, 0] = 0.5
a[:, 0, 1] = 0.0
a[:, 0, 2] = 1.0
a[0, 1, 0], a[1, 1, 0], a[2, 1, 0] = 0.8, 0.8, 0.2
a[0, 1, 1], a[1, 1, 1], a[2, 1, 1] = 0.3, 0.9, 0.9
a[0, 1, 2], a[1, 1, 2], a[2, 1, 2] = 0.7, 0.1, 0.7
add_input("a", a)
add_input("b", torch.randint(0, 256, (3, 9, 11), dtype=torch.uint8))
add_input("big", torch.rand(3, 20, 24))
add_input("bigu8", torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8))
add_input("grey", torch.rand(1, 6, 7))

case("hflip", "hflip", "a")
case("vflip", "vflip", "a")
case("hflip_u8", "hflip", "b")
case("vflip_u8", "vflip", "b")
case("crop", "crop", "a", 2, 3, 5, 6)
case("crop_outside", "crop", "a", -2, 7, 6, 8)
case("crop_u8", "crop", "b", 1, 0, 8, 4)
case("center_crop_tie", "center_crop", "a", 4, 6)  # (9-4)/2 = 2.5 -> 2, (11-6)/2 = 2.5 -> 2
case("center_crop_tie2", "center_crop", "a", 2, 2)  # 3.5 -> 4, 4.5 -> 4
case("center_crop_pad", "center_crop", "a", 12, 16)
case("center_crop_mixed", "center_crop", "a", 5, 14)
case("resize_down", "resize", "big", 7, 9)
case("resize_down_odd", "resize", "big", 13, 5)
case("resize_up", "resize", "a", 20, 31)
case("resize_one_axis", "resize", "big", 20, 10)
case("resize_mixed", "resize", "big", 31, 8)
case("resize_short", "resize_short", "big", 10)
case("resize_short_u8", "resize_short", "bigu8", 10)
case("resized_crop_down", "resized_crop", "big", 3, 4, 15, 17, 6, 5)
case("resized_crop_up", "resized_crop", "big", 5, 2, 7, 9, 12, 16)
for f in (0.0, 0.3, 1.7):
    case(f"brightness_{f}", "brightness", "a", f)
for f in (0.0, 0.2, 1.8):
    case(f"contrast_{f}", "contrast", "a", f)
for f in (0.0, 0.5, 2.0):
    case(f"saturation_{f}", "saturation", "a", f)
for f in (-0.5, -0.3, 0.0, 0.1, 0.25, 0.5):
    case(f"hue_{f}", "hue", "a", f)
case("brightness_u8", "brightness", "b", 1.3)
case("contrast_u8", "contrast", "b", 0.6)
case("saturation_u8", "saturation", "b", 1.5)
case("hue_u8", "hue", "b", 0.2)
case("contrast_grey", "contrast", "grey", 0.4)
case("saturation_grey", "saturation", "grey", 0.4)
case("normalize", "normalize", "a")
case("to_tensor", "to_tensor", "b")


# RandomResizedCrop.get_params statistics (torch's RNG, 10,000 draws) on a cat1.jpg-sized
# image (H 400, W 500) and on a tall one, with the default and the book's 13.1 ranges.
def rrc_stats(name, h, w, scale, ratio, n=10000):
    t = v2.RandomResizedCrop((10, 10), scale=scale, ratio=ratio)
    img = torch.zeros(1, h, w)
    area, logr, fallback = [], [], 0
    for _ in range(n):
        p = t.make_params([img])
        ch, cw = p["height"], p["width"]
        area.append(ch * cw / (h * w))
        logr.append(math.log(cw / ch))
    m = sum(area) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in area) / n)
    lm = sum(logr) / n
    lines.append(f"stat {name}_area_mean {m:.6f}")
    lines.append(f"stat {name}_area_std {sd:.6f}")
    lines.append(f"stat {name}_logratio_mean {lm:.6f}")


torch.manual_seed(1)
rrc_stats("rrc_default_400x500", 400, 500, (0.08, 1.0), (3 / 4, 4 / 3))
rrc_stats("rrc_book_400x500", 400, 500, (0.1, 1.0), (0.5, 2.0))
rrc_stats("rrc_default_64x16", 64, 16, (0.08, 1.0), (3 / 4, 4 / 3))

os.makedirs(OUT_DIR, exist_ok=True)
path = os.path.join(OUT_DIR, "cases.txt")
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"wrote {path} ({os.path.getsize(path)} bytes)")
