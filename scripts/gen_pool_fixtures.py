#!/usr/bin/env python3
"""PyTorch reference values for the d2l-rs pooling ops (tests/pool.rs).

Writes crates/d2l-tensor/tests/fixtures/pool.json: one case per op and option set, with
the input, the output, the argmax indices (max pooling) and the input gradient of
sum(out * g) for a fixed random g. Inputs are float32-representable; PyTorch computes
in float64 so the references are exact to f64 rounding.

Usage: .venv/bin/python scripts/gen_pool_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-tensor", "tests", "fixtures", "pool.json")


def f32(t):
    return t.to(torch.float32).to(torch.float64)


def distinct(shape):
    """Distinct values (no ties within any window), in random order."""
    n = 1
    for s in shape:
        n *= s
    return f32((torch.randperm(n).to(torch.float64) / n * 4.0 - 2.0).reshape(shape))


def ties(shape):
    """Few distinct values: windows with several equal maxima."""
    n = 1
    for s in shape:
        n *= s
    return (torch.arange(n) % 3).to(torch.float64).reshape(shape)


def tensor(t):
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


cases = []


def pool_case(name, op, x, **p):
    x = x.clone().requires_grad_(True)
    k = tuple(p["kernel"])
    s = tuple(p.get("stride", k))
    pad = tuple(p.get("padding", (0, 0)))
    dil = tuple(p.get("dilation", (1, 1)))
    ceil = p.get("ceil_mode", False)
    cip = p.get("count_include_pad", True)
    idx = None
    if op == "max":
        out, idx = F.max_pool2d(x, k, s, pad, dil, ceil_mode=ceil, return_indices=True)
    else:
        out = F.avg_pool2d(x, k, s, pad, ceil_mode=ceil, count_include_pad=cip)
    g = f32(torch.randn(out.shape, dtype=torch.float64))
    (out * g).sum().backward()
    case = {
        "name": name,
        "op": op,
        "params": {"kernel": list(k), "stride": list(s), "padding": list(pad), "dilation": list(dil),
                   "ceil_mode": ceil, "count_include_pad": cip},
        "input": tensor(x.detach()),
        "output": tensor(out.detach()),
        "grad_output": tensor(g),
        "grad_input": tensor(x.grad),
    }
    if idx is not None:
        case["indices"] = tensor(idx)
    cases.append(case)


def adaptive_case(name, op, x, out_hw):
    x = x.clone().requires_grad_(True)
    idx = None
    if op == "adaptive_max":
        out, idx = F.adaptive_max_pool2d(x, out_hw, return_indices=True)
    else:
        out = F.adaptive_avg_pool2d(x, out_hw)
    g = f32(torch.randn(out.shape, dtype=torch.float64))
    (out * g).sum().backward()
    case = {
        "name": name,
        "op": op,
        "params": {"output_size": list(out_hw)},
        "input": tensor(x.detach()),
        "output": tensor(out.detach()),
        "grad_output": tensor(g),
        "grad_input": tensor(x.grad),
    }
    if idx is not None:
        case["indices"] = tensor(idx)
    cases.append(case)


# ---- max pooling ----
pool_case("max_k2", "max", distinct((2, 3, 6, 6)), kernel=(2, 2))
pool_case("max_k2_odd_floor", "max", distinct((1, 2, 7, 7)), kernel=(2, 2))
pool_case("max_k2_odd_ceil", "max", distinct((1, 2, 7, 7)), kernel=(2, 2), ceil_mode=True)
pool_case("max_k3_s2_p1", "max", distinct((2, 2, 7, 9)), kernel=(3, 3), stride=(2, 2), padding=(1, 1))
pool_case("max_k3_s2_p1_even", "max", distinct((2, 2, 8, 8)), kernel=(3, 3), stride=(2, 2), padding=(1, 1))
pool_case("max_k3_s1_p1_d2", "max", distinct((1, 2, 8, 7)), kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(2, 2))
pool_case("max_k3_d2_hw", "max", distinct((1, 2, 9, 10)), kernel=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 3))
pool_case("max_k23_s21_p11_ceil", "max", distinct((2, 2, 7, 8)), kernel=(2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=True)
pool_case("max_k3_s2_ceil", "max", distinct((1, 2, 8, 8)), kernel=(3, 3), stride=(2, 2), ceil_mode=True)
pool_case("max_k3_s2_p1_ceil", "max", distinct((1, 2, 8, 6)), kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)
pool_case("max_k4_s3_p2_ceil_d1", "max", distinct((1, 1, 10, 11)), kernel=(4, 4), stride=(3, 3), padding=(2, 2), ceil_mode=True)
pool_case("max_3d_k2_s1", "max", distinct((3, 5, 5)), kernel=(2, 2), stride=(1, 1))
pool_case("max_ties_k3_s2_p1", "max", ties((1, 2, 6, 6)), kernel=(3, 3), stride=(2, 2), padding=(1, 1))
pool_case("max_ties_k2", "max", ties((1, 1, 6, 6)), kernel=(2, 2))
pool_case("max_global", "max", distinct((2, 3, 5, 4)), kernel=(5, 4))

# ---- average pooling ----
pool_case("avg_k2", "avg", distinct((2, 3, 6, 6)), kernel=(2, 2))
pool_case("avg_k2_odd_ceil", "avg", distinct((1, 2, 7, 7)), kernel=(2, 2), ceil_mode=True)
pool_case("avg_k3_s2_p1", "avg", distinct((2, 2, 7, 9)), kernel=(3, 3), stride=(2, 2), padding=(1, 1))
pool_case("avg_k3_s2_p1_nopad", "avg", distinct((2, 2, 7, 9)), kernel=(3, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False)
pool_case("avg_k3_s2_p1_ceil", "avg", distinct((1, 2, 8, 8)), kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)
pool_case("avg_k3_s2_p1_ceil_nopad", "avg", distinct((1, 2, 8, 8)), kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True, count_include_pad=False)
pool_case("avg_k3_s2_ceil", "avg", distinct((1, 2, 8, 8)), kernel=(3, 3), stride=(2, 2), ceil_mode=True)
pool_case("avg_k23_s12_p11_ceil_nopad", "avg", distinct((2, 1, 5, 7)), kernel=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True, count_include_pad=False)
pool_case("avg_k23_s12_p11_ceil", "avg", distinct((2, 1, 5, 7)), kernel=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True)
pool_case("avg_k4_s3_p2_ceil", "avg", distinct((1, 1, 10, 11)), kernel=(4, 4), stride=(3, 3), padding=(2, 2), ceil_mode=True)
pool_case("avg_3d_k2_s1", "avg", distinct((3, 5, 5)), kernel=(2, 2), stride=(1, 1))
pool_case("avg_global", "avg", distinct((2, 3, 5, 4)), kernel=(5, 4))

# ---- adaptive ----
for op in ("adaptive_avg", "adaptive_max"):
    adaptive_case(f"{op}_3x2", op, distinct((2, 2, 7, 5)), (3, 2))
    adaptive_case(f"{op}_1x1", op, distinct((2, 3, 5, 5)), (1, 1))
    adaptive_case(f"{op}_4x4_from_3x3", op, distinct((1, 2, 3, 3)), (4, 4))
    adaptive_case(f"{op}_5x3", op, distinct((1, 1, 10, 9)), (5, 3))
    adaptive_case(f"{op}_same", op, distinct((1, 2, 4, 6)), (4, 6))
    adaptive_case(f"{op}_3d_2x3", op, distinct((3, 6, 7)), (2, 3))
adaptive_case("adaptive_max_ties_2x2", "adaptive_max", ties((1, 2, 5, 5)), (2, 2))

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"torch_version": torch.__version__, "cases": cases}, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
