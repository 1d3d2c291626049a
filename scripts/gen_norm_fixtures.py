#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the d2l-tensor normalisation, upsampling and
padding ops (``crates/d2l-tensor/tests/norm.rs``).

Run by developers whenever the case list changes; the output file
``crates/d2l-tensor/tests/fixtures/norm.json`` is committed. ``cargo test`` only reads
the JSON and never needs Python or PyTorch.

Usage (from the repository root)::

    .venv/bin/python scripts/gen_norm_fixtures.py

How the numbers are made
------------------------
* ``torch.manual_seed(0)``; every float input is drawn in float32 and rounded to 3
  decimals, so its short decimal parses to the same value on the Rust side. Outputs and
  gradients are computed in float64 from those exact values with
  ``torch.nn.functional``.
* ``grad_output`` is a fixed random tensor of the output's shape; ``grads[name]`` is the
  gradient of ``sum(out * grad_output)`` with respect to input ``name`` (``x``,
  ``weight``, ``bias``).
* batch_norm cases also record ``running_mean`` / ``running_var`` after the call
  (``running_after``): PyTorch updates them in training mode.

JSON layout::

    {"generated_by", "torch_version",
     "cases": [{"name", "op", "params": {...},
                "inputs": {name: {"shape", "data"}},
                "output": {"shape", "data"},
                "grad_output": {"shape", "data"},
                "grads": {name: {"shape", "data"}},
                "running_after": {"running_mean": ..., "running_var": ...}}]}

``op`` is one of batch_norm (params training, momentum, eps), group_norm (groups, eps),
upsample_nearest2d (out_hw), upsample_bilinear2d (out_hw, align_corners),
pad2d (pads = [left, right, top, bottom], mode = constant | reflect | replicate, value).
"""

import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-tensor", "tests", "fixtures", "norm.json")

torch.manual_seed(0)


def q(t):
    """Rounds to 3 decimals (short in JSON), as float64."""
    return (torch.round(t.float() * 1000) / 1000).double()


def enc(t):
    """Shape and row-major data; 10 significant digits (inputs are exact at 3 decimals)."""
    return {"shape": list(t.shape), "data": [float(f"{v:.10g}") for v in t.detach().flatten().tolist()]}


def randn(*shape, scale=1.0, shift=0.0):
    return q(torch.randn(*shape) * scale + shift)


cases = []


def run(name, op, params, inputs, fn, running=None):
    """inputs: name -> tensor (float64); fn(**leaves) -> output."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves)
    g = randn(*out.shape)
    (out * g).sum().backward()
    case = {
        "name": name,
        "op": op,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "output": enc(out),
        "grad_output": enc(g),
        "grads": {k: enc(v.grad) for k, v in leaves.items()},
    }
    if running is not None:
        case["running_before"] = {k: enc(v) for k, v in running[0].items()}
        case["running_after"] = {k: enc(v) for k, v in running[1].items()}
    cases.append(case)


def bn_case(name, shape, affine, training, momentum=0.1, eps=1e-5, with_running=True, scale=1.0, shift=0.0):
    c = shape[1]
    inputs = {"x": randn(*shape, scale=scale, shift=shift)}
    if affine:
        inputs["weight"] = randn(c, scale=0.5, shift=1.0)
        inputs["bias"] = randn(c, scale=0.5)
    rm0 = randn(c, scale=0.3) if with_running else None
    rv0 = q(torch.rand(c) + 0.5) if with_running else None
    rm = rm0.clone() if with_running else None
    rv = rv0.clone() if with_running else None

    def fn(x, weight=None, bias=None):
        return F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=eps)

    running = ({"running_mean": rm0, "running_var": rv0}, {"running_mean": rm, "running_var": rv}) \
        if with_running else None
    run(name, "batch_norm", {"training": training, "momentum": momentum, "eps": eps}, inputs, fn, running)


# batch norm: training on 2-D / 3-D / 4-D, with and without affine, eval mode.
bn_case("bn_train_2d_affine", [8, 5], True, True)
bn_case("bn_train_2d_plain", [6, 4], False, True, momentum=0.3)
bn_case("bn_train_3d_affine", [4, 3, 7], True, True)
bn_case("bn_train_4d_affine", [4, 3, 5, 6], True, True, scale=2.0, shift=3.0)
bn_case("bn_train_4d_plain", [2, 3, 4, 4], False, True, eps=1e-3)
bn_case("bn_train_4d_no_running", [3, 2, 3, 5], True, True, with_running=False)
bn_case("bn_train_4d_wide", [2, 4, 20, 21], True, True)  # long runs (the block sums)
bn_case("bn_eval_4d_affine", [3, 4, 5, 5], True, False)
bn_case("bn_eval_2d_plain", [5, 6], False, False)

# group norm.
for name, shape, groups, affine, eps in [
    ("gn_4d_g3_affine", [2, 6, 4, 5], 3, True, 1e-5),
    ("gn_4d_g1_affine", [2, 4, 3, 3], 1, True, 1e-5),
    ("gn_3d_gc_plain", [2, 6, 7], 6, False, 1e-3),
    ("gn_2d_g2_affine", [3, 8], 2, True, 1e-5),
]:
    c = shape[1]
    inputs = {"x": randn(*shape, scale=1.5, shift=0.5)}
    if affine:
        inputs["weight"] = randn(c, scale=0.5, shift=1.0)
        inputs["bias"] = randn(c, scale=0.5)

    def fn(x, weight=None, bias=None, groups=groups, eps=eps):
        return F.group_norm(x, groups, weight, bias, eps)

    run(name, "group_norm", {"groups": groups, "eps": eps}, inputs, fn)

# upsampling.
for name, shape, out_hw in [
    ("nearest_up", [2, 3, 4, 5], [7, 9]),
    ("nearest_double", [1, 2, 3, 4], [6, 8]),
    ("nearest_down", [1, 2, 7, 5], [3, 2]),
    ("nearest_odd", [1, 1, 3, 3], [5, 10]),
]:
    run(name, "upsample_nearest2d", {"out_hw": out_hw}, {"x": randn(*shape)},
        lambda x, out_hw=out_hw: F.interpolate(x, size=out_hw, mode="nearest"))
for ac in (False, True):
    for name, shape, out_hw in [
        ("bilinear_up", [2, 3, 4, 5], [7, 9]),
        ("bilinear_double", [1, 2, 3, 4], [6, 8]),
        ("bilinear_down", [1, 2, 7, 6], [3, 4]),
        ("bilinear_to_1", [1, 1, 4, 3], [1, 1]),
        ("bilinear_same_h", [1, 2, 4, 3], [4, 7]),
    ]:
        run(f"{name}_ac{int(ac)}", "upsample_bilinear2d", {"out_hw": out_hw, "align_corners": ac},
            {"x": randn(*shape)},
            lambda x, out_hw=out_hw, ac=ac: F.interpolate(x, size=out_hw, mode="bilinear", align_corners=ac))

# padding.
for name, shape, pads, mode, value in [
    ("pad_constant", [2, 3, 4, 5], [1, 2, 0, 3], "constant", 1.5),
    ("pad_reflect", [2, 3, 5, 4], [2, 3, 4, 1], "reflect", 0.0),
    ("pad_reflect_3d", [2, 4, 3], [1, 1, 2, 2], "reflect", 0.0),
    ("pad_replicate", [2, 3, 4, 5], [3, 2, 1, 4], "replicate", 0.0),
    ("pad_replicate_3d", [1, 2, 3], [0, 4, 3, 0], "replicate", 0.0),
]:
    kw = {"value": value} if mode == "constant" else {}
    run(name, "pad2d", {"pads": pads, "mode": mode, "value": value}, {"x": randn(*shape)},
        lambda x, pads=pads, mode=mode, kw=kw: F.pad(x, tuple(pads), mode=mode, **kw))

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generated_by": "scripts/gen_norm_fixtures.py", "torch_version": torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
