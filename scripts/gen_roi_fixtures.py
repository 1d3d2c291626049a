#!/usr/bin/env python3
"""torchvision reference values for d2l-vision's RoI pooling and RoI align (tests/roi.rs).

Writes crates/d2l-vision/tests/fixtures/roi.txt: one case per op and option set, each with
the input, the rois, the output (and, for roi_pool, the argmax), a fixed random upstream
gradient and the input gradient torchvision's backward kernel gives for it. Everything is
float32, like the kernels under test.

The kernels are called directly (torch.ops.torchvision.roi_pool / _roi_pool_backward,
roi_align / _roi_align_backward): these are what torchvision.ops.roi_pool and roi_align
dispatch to on CPU, and loading the extension alone avoids `import torchvision`, which
needs Pillow. Needs torchvision installed in the venv:
    .venv/bin/pip install torchvision==0.29.2 --no-deps
(0.29.2 is built against torch's stable ABI and loads with torch 2.15.)

Format, line by line (plain text so the test needs no JSON crate):
    case NAME
    op roi_pool | roi_align
    output_size PH PW
    spatial_scale S
    sampling_ratio R          (roi_align only)
    aligned 0|1               (roi_align only)
    tensor NAME D0 D1 ...     followed by one line with the values, row-major
    end

Usage: .venv/bin/python scripts/gen_roi_fixtures.py
"""
import glob
import importlib.metadata
import importlib.util
import os

import numpy as np
import torch

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "d2l-vision", "tests", "fixtures", "roi.txt"
)


def load_torchvision_ops():
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        raise SystemExit("torchvision is not installed: .venv/bin/pip install torchvision==0.29.2 --no-deps")
    (pkg,) = spec.submodule_search_locations
    libs = glob.glob(os.path.join(pkg, "_C*.so"))
    if not libs:
        raise SystemExit(f"no torchvision extension (_C*.so) under {pkg}")
    torch.ops.load_library(libs[0])
    version = importlib.metadata.version("torchvision")
    return torch.ops.torchvision, version


tv, TV_VERSION = load_torchvision_ops()
torch.manual_seed(0)

N, C, H, W = 2, 2, 7, 9
X = torch.randn(N, C, H, W, dtype=torch.float32)
# Image coordinates; with spatial_scale 0.5 the map covers an 18 x 14 image.
ROIS = torch.tensor(
    [
        [0, 1.0, 2.0, 9.0, 11.0],  # inside
        [1, -4.0, -3.0, 6.0, 5.0],  # partly off the top-left
        [1, 10.3, 7.7, 25.0, 19.2],  # fractional, partly off the bottom-right
        [0, 3.0, 5.0, 3.0, 7.4],  # zero width
        [0, 30.0, 30.0, 40.0, 36.0],  # entirely off the map
        [1, 0.6, 0.2, 2.1, 1.3],  # smaller than one cell
        [0, 0.0, 0.0, 17.9, 13.9],  # the whole map
        [1, 3.0, 1.0, 5.0, 7.0],  # scaled coordinates at .5: rounding halves away from 0
        [0, -1.5, -1.8, 1.0, 0.6],  # samples between -1 and 0 (clamped to the edge)
    ],
    dtype=torch.float32,
)
SCALE = 0.5
OUT_HW = (3, 2)  # non-square, to catch swapped axes
K = ROIS.shape[0]
G = torch.randn(K, C, *OUT_HW, dtype=torch.float32)


def fmt(t):
    t = t.detach().contiguous().flatten()
    if t.dtype.is_floating_point:
        return " ".join(str(np.float32(v)) for v in t.numpy())
    return " ".join(str(int(v)) for v in t.tolist())


def tensor(name, t):
    return f"tensor {name} {' '.join(str(d) for d in t.shape)}\n{fmt(t)}\n"


cases = []


def roi_pool_case(name, x, rois, scale, out_hw, g):
    out, argmax = tv.roi_pool(x, rois, scale, *out_hw)
    gi = tv._roi_pool_backward(g, rois, argmax, scale, *out_hw, *x.shape)
    cases.append(
        f"case {name}\nop roi_pool\noutput_size {out_hw[0]} {out_hw[1]}\nspatial_scale {scale!r}\n"
        + tensor("input", x)
        + tensor("rois", rois)
        + tensor("output", out)
        + tensor("argmax", argmax)
        + tensor("grad_output", g)
        + tensor("grad_input", gi)
        + "end\n"
    )


def roi_align_case(name, x, rois, scale, out_hw, sr, aligned, g):
    out = tv.roi_align(x, rois, scale, *out_hw, sr, aligned)
    gi = tv._roi_align_backward(g, rois, scale, *out_hw, *x.shape, sr, aligned)
    cases.append(
        f"case {name}\nop roi_align\noutput_size {out_hw[0]} {out_hw[1]}\nspatial_scale {scale!r}\n"
        f"sampling_ratio {sr}\naligned {int(aligned)}\n"
        + tensor("input", x)
        + tensor("rois", rois)
        + tensor("output", out)
        + tensor("grad_output", g)
        + tensor("grad_input", gi)
        + "end\n"
    )


roi_pool_case("roi_pool_scale0.5", X, ROIS, SCALE, OUT_HW, G)
# A second geometry: a finer scale and a wider output, on the first image only.
X2 = torch.randn(1, 3, 6, 8, dtype=torch.float32)
ROIS2 = torch.tensor(
    [[0, 2.0, 3.0, 21.0, 17.0], [0, -6.0, 5.0, 13.0, 30.0], [0, 10.0, 10.0, 11.0, 11.0]],
    dtype=torch.float32,
)
G2 = torch.randn(3, 3, 2, 4, dtype=torch.float32)
roi_pool_case("roi_pool_scale0.25", X2, ROIS2, 0.25, (2, 4), G2)
for sr in (2, -1):
    for aligned in (False, True):
        roi_align_case(f"roi_align_sr{sr}_aligned{int(aligned)}", X, ROIS, SCALE, OUT_HW, sr, aligned, G)
roi_align_case("roi_align_scale0.25_sr-1", X2, ROIS2, 0.25, (2, 4), -1, False, G2)

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    f.write(
        f"# RoI pooling / RoI align references: torch {torch.__version__}, torchvision {TV_VERSION};"
        " written by scripts/gen_roi_fixtures.py\n"
    )
    f.writelines(cases)
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
