#!/usr/bin/env python3
"""PyTorch reference values for d2l-rs's conv2d and conv_transpose2d.

Writes ``crates/d2l-tensor/tests/fixtures/conv.json`` (committed; CI needs no Python):

    .venv/bin/python scripts/gen_conv_fixtures.py

Each case holds the op (``conv2d`` or ``conv_transpose2d``), its options, the inputs
``x``, ``w`` and optionally ``b`` (float32, drawn from N(0, 1) and rounded to 3 decimals),
a fixed output weighting ``g`` and PyTorch's (float64-computed) output ``out`` and the
gradients ``gx``, ``gw``, ``gb`` of ``sum(out * g)``. Conv2d padding is given per side
``[top, bottom, left, right]``; asymmetric padding is applied with ``F.pad`` first.
Values are rounded to 8 significant digits.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-tensor", "tests",
                   "fixtures", "conv.json")


def draw(g, *shape):
    return torch.round(torch.randn(*shape, generator=g) * 1000) / 1000


def enc(t):
    return {"shape": list(t.shape), "data": [float(f"{v:.8g}") for v in t.flatten().tolist()]}


def case(g, name, op, x_shape, w_shape, bias, **o):
    x = draw(g, *x_shape).double().requires_grad_(True)
    w = draw(g, *w_shape).double().requires_grad_(True)
    b = None
    if bias:
        c_out = w_shape[0] if op == "conv2d" else w_shape[1] * o.get("groups", 1)
        b = draw(g, c_out).double().requires_grad_(True)
    if op == "conv2d":
        t, bo, l, r = o["padding"]
        xp = F.pad(x, (l, r, t, bo))
        out = F.conv2d(xp, w, b, stride=o["stride"], dilation=o["dilation"], groups=o["groups"])
    else:
        out = F.conv_transpose2d(x, w, b, stride=o["stride"], padding=o["padding"],
                                 output_padding=o["output_padding"], dilation=o["dilation"],
                                 groups=o["groups"])
    gout = draw(g, *out.shape).double()
    (out * gout).sum().backward()
    rec = {"name": name, "op": op, "opts": o, "x": enc(x.detach()), "w": enc(w.detach()),
           "g": enc(gout), "out": enc(out.detach()), "gx": enc(x.grad), "gw": enc(w.grad)}
    if b is not None:
        rec["b"] = enc(b.detach())
        rec["gb"] = enc(b.grad)
    return rec


def main():
    g = torch.Generator().manual_seed(0)
    C = lambda s=(1, 1), p=(0, 0, 0, 0), d=(1, 1), gr=1: dict(stride=list(s), padding=list(p),
                                                               dilation=list(d), groups=gr)
    T = lambda s=(1, 1), p=(0, 0), op=(0, 0), d=(1, 1), gr=1: dict(
        stride=list(s), padding=list(p), output_padding=list(op), dilation=list(d), groups=gr)
    cases = [
        case(g, "basic", "conv2d", [2, 3, 6, 5], [4, 3, 3, 3], True, **C()),
        case(g, "lenet1", "conv2d", [2, 1, 8, 8], [6, 1, 5, 5], True, **C(p=(2, 2, 2, 2))),
        case(g, "stride_pad", "conv2d", [2, 3, 7, 8], [4, 3, 3, 2], True,
             **C(s=(2, 3), p=(1, 1, 2, 2))),
        case(g, "asym_pad", "conv2d", [1, 2, 5, 6], [3, 2, 2, 3], False,
             **C(p=(0, 2, 1, 0))),
        case(g, "dilation", "conv2d", [2, 2, 9, 7], [3, 2, 3, 2], True,
             **C(d=(2, 3), p=(1, 1, 1, 1))),
        case(g, "groups2", "conv2d", [2, 4, 6, 6], [6, 2, 3, 3], True, **C(gr=2, p=(1, 1, 1, 1))),
        case(g, "depthwise", "conv2d", [2, 3, 7, 6], [3, 1, 3, 3], True,
             **C(gr=3, s=(2, 1), p=(1, 1, 1, 1))),
        case(g, "depthwise_mult", "conv2d", [1, 2, 5, 5], [4, 1, 3, 3], False, **C(gr=2)),
        case(g, "pointwise", "conv2d", [2, 5, 4, 3], [7, 5, 1, 1], True, **C()),
        case(g, "pointwise_stride", "conv2d", [2, 3, 5, 5], [4, 3, 1, 1], False, **C(s=(2, 2))),
        case(g, "small_map_batched", "conv2d", [9, 4, 3, 3], [5, 4, 3, 3], True,
             **C(p=(1, 1, 1, 1))),
        case(g, "t_basic", "conv_transpose2d", [2, 3, 4, 5], [3, 2, 3, 3], True, **T()),
        case(g, "t_stride_pad", "conv_transpose2d", [2, 3, 4, 3], [3, 4, 3, 2], True,
             **T(s=(2, 3), p=(1, 0), op=(1, 2))),
        case(g, "t_dilation", "conv_transpose2d", [1, 2, 3, 4], [2, 3, 2, 3], False,
             **T(d=(2, 2), p=(1, 1))),
        case(g, "t_groups", "conv_transpose2d", [2, 4, 3, 3], [4, 3, 3, 3], True,
             **T(gr=2, s=(2, 2), p=(1, 1), op=(1, 0))),
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/gen_conv_fixtures.py", "torch": torch.__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
