#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the d2l-nn loss tests.

Run by developers whenever the case list changes; the output file
``crates/d2l-nn/tests/fixtures/loss.json`` is committed.  ``cargo test`` only
reads the JSON and never needs Python or PyTorch.

Usage (from the repository root)::

    .venv/bin/python scripts/gen_loss_fixtures.py

How the numbers are made
------------------------
* ``torch.manual_seed(0)``; every float input is drawn in float32 and rounded
  to 3 decimals (then to float32 again), so its short decimal parses to the
  same f32 on the Rust side.  Values and gradients are computed in float64
  from those exact values with ``torch.nn.functional``.
* ``grad_output`` is a fixed random tensor of the loss's shape (0-d for the
  mean/sum reductions); ``grads[name]`` is the gradient of
  ``sum(loss * grad_output)`` with respect to input ``name``.  Only float inputs
  for which PyTorch gives a gradient are listed.  Non-finite outputs are
  written as the strings "inf", "-inf", "nan" (PyTorch's target gradient of
  ``binary_cross_entropy`` is infinite where the probability is exactly 0 or 1).

JSON layout::

    {"generated_by", "torch_version",
     "cases": [{"name", "loss", "params": {...},
                "inputs": {name: {"shape", "dtype", "data"}},
                "output": {"shape", "data"},
                "grad_output": {"shape", "data"},
                "grads": {name: {"shape", "data"}}}]}

``loss`` is one of mse, l1, smooth_l1, huber, cross_entropy, nll,
bce, bce_with_logits.  Input names: ``input`` and ``target`` always, and
``weight`` / ``pos_weight`` when used.  ``params`` holds ``reduction``
("none" | "mean" | "sum") and, per loss, ``beta``, ``delta``,
``ignore_index`` (an int, PyTorch's default -100) and ``label_smoothing``.
"""

import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-nn", "tests", "fixtures", "loss.json")
REDUCTIONS = ["none", "mean", "sum"]

torch.manual_seed(0)


def q(t):
    """Rounds to 3 decimals in float32 (exactly representable, short in JSON)."""
    return torch.round(t.float() * 1000) / 1000


def enc(t):
    if t.dtype in (torch.int64,):
        return {"shape": list(t.shape), "dtype": "i64", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "f32", "data": [float(v) for v in t.float().flatten().tolist()]}


def num(v):
    """A JSON number, or "inf" / "-inf" / "nan" (JSON has no literal for these)."""
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return float("%.10g" % v)


def enc_out(t):
    return {"shape": list(t.shape), "data": [num(v) for v in t.double().flatten().tolist()]}


CASES = []


def add(name, loss, fn, inputs, params):
    """fn(**inputs64, **params) -> loss; inputs: name -> f32/i64 tensor."""
    x64 = {}
    for k, v in inputs.items():
        if v.is_floating_point():
            x64[k] = v.double().clone().requires_grad_(k in ("input", "target"))
        else:
            x64[k] = v.clone()
    out = fn(**x64)
    g = q(torch.randn(out.shape)).double()
    (out * g).sum().backward()
    grads = {}
    for k, v in x64.items():
        if v.is_floating_point() and v.grad is not None:
            grads[k] = enc_out(v.grad)
    assert torch.isfinite(out).all(), name
    CASES.append({
        "name": name,
        "loss": loss,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "output": enc_out(out.detach()),
        "grad_output": enc_out(g),
        "grads": grads,
    })


# --- regression losses -------------------------------------------------------
x = q(torch.randn(3, 4) * 2)
y = q(torch.randn(3, 4))
# Differences straddling the smooth-L1 / Huber thresholds, and one exact tie at 0.
y[0, 0] = x[0, 0]
y[0, 1] = q(x[0, 1] - 0.3)
y[0, 2] = q(x[0, 2] + 0.7)
y[0, 3] = q(x[0, 3] - 1.6)
for r in REDUCTIONS:
    add(f"mse_{r}", "mse", lambda input, target, r=r: F.mse_loss(input, target, reduction=r),
        {"input": x, "target": y}, {"reduction": r})
    add(f"l1_{r}", "l1", lambda input, target, r=r: F.l1_loss(input, target, reduction=r),
        {"input": x, "target": y}, {"reduction": r})
    for beta in (1.0, 0.5, 0.0):
        add(f"smooth_l1_beta{beta}_{r}", "smooth_l1",
            lambda input, target, r=r, beta=beta: F.smooth_l1_loss(input, target, beta=beta, reduction=r),
            {"input": x, "target": y}, {"reduction": r, "beta": beta})
    for delta in (1.0, 2.5):
        add(f"huber_delta{delta}_{r}", "huber",
            lambda input, target, r=r, delta=delta: F.huber_loss(input, target, delta=delta, reduction=r),
            {"input": x, "target": y}, {"reduction": r, "delta": delta})

# --- cross-entropy -----------------------------------------------------------
C = 5
logits = q(torch.randn(6, C) * 2)
w = q(torch.rand(C) + 0.5)
t_plain = torch.tensor([0, 4, 2, 1, 3, 2])
t_ign = torch.tensor([0, 4, -100, 1, 3, -100])  # ignored by the default ignore_index
big = q(torch.sign(torch.randn(6, C)) * 1000 + torch.randn(6, C))


def ce(input, target, weight=None, r="mean", ii=-100, ls=0.0):
    return F.cross_entropy(input, target, weight=weight, ignore_index=ii, reduction=r, label_smoothing=ls)


def ce_cases(prefix, lg, combos):
    for tag, tgt, use_w, ii, ls in combos:
        for r in REDUCTIONS:
            inputs = {"input": lg, "target": tgt}
            if use_w:
                inputs["weight"] = w
            add(f"{prefix}_{tag}_{r}", "cross_entropy",
                lambda input, target, weight=None, r=r, ii=ii, ls=ls: ce(input, target, weight, r, ii, ls),
                inputs, {"reduction": r, "ignore_index": ii, "label_smoothing": ls})


COMBOS = [
    ("plain", t_plain, False, -100, 0.0),
    ("weight", t_plain, True, -100, 0.0),
    ("ignore", t_ign, False, -100, 0.0),
    ("ignore_in_range", t_plain, False, 2, 0.0),
    ("smooth", t_plain, False, -100, 0.1),
    ("weight_smooth", t_plain, True, -100, 0.1),
    ("weight_ignore", t_ign, True, -100, 0.0),
    ("all", t_ign, True, -100, 0.1),
    ("all_in_range", t_plain, True, 2, 0.1),
]
ce_cases("ce", logits, COMBOS)
ce_cases("ce_big", big, [c for c in COMBOS if c[0] in ("plain", "all", "weight_ignore")])

# [N, C, d] inputs with [N, d] targets.
lg3 = q(torch.randn(2, C, 3) * 2)
t3 = torch.tensor([[0, 4, -100], [2, 2, 1]])
ce_cases("ce_3d", lg3, [("plain", t3, False, -100, 0.0), ("all", t3, True, -100, 0.1)])

# Unbatched [C] input with a 0-d target.
ce_cases("ce_1d", logits[0], [("plain", torch.tensor(3), False, -100, 0.0),
                              ("all", torch.tensor(3), True, -100, 0.1)])

# Probability targets.
probs = q(torch.softmax(torch.randn(4, C), 1))
ce_cases("ce_prob", logits[:4], [("plain", probs, False, -100, 0.0),
                                  ("smooth", probs, False, -100, 0.1),
                                  ("weight_smooth", probs, True, -100, 0.1)])

# --- nll ---------------------------------------------------------------------
logp = q(torch.log_softmax(torch.randn(6, C), 1))
for tag, tgt, use_w, ii in [("plain", t_plain, False, -100), ("weight", t_plain, True, -100),
                            ("weight_ignore", t_ign, True, -100), ("ignore_in_range", t_plain, True, 2)]:
    for r in REDUCTIONS:
        inputs = {"input": logp, "target": tgt}
        if use_w:
            inputs["weight"] = w
        add(f"nll_{tag}_{r}", "nll",
            lambda input, target, weight=None, r=r, ii=ii: F.nll_loss(input, target, weight=weight, ignore_index=ii, reduction=r),
            inputs, {"reduction": r, "ignore_index": ii})

# --- binary cross-entropy ----------------------------------------------------
p = q(torch.sigmoid(torch.randn(3, 4) * 2))
yb = q(torch.rand(3, 4))
yb[0] = torch.tensor([0.0, 1.0, 1.0, 0.0])
wb = q(torch.rand(4) + 0.5)
p_ext = p.clone()
p_ext[0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # log clamps at -100; gradient eps 1e-12
for r in REDUCTIONS:
    add(f"bce_{r}", "bce", lambda input, target, r=r: F.binary_cross_entropy(input, target, reduction=r),
        {"input": p, "target": yb}, {"reduction": r})
    add(f"bce_weight_{r}", "bce",
        lambda input, target, weight, r=r: F.binary_cross_entropy(input, target, weight=weight, reduction=r),
        {"input": p, "target": yb, "weight": wb}, {"reduction": r})
    add(f"bce_extremes_{r}", "bce", lambda input, target, r=r: F.binary_cross_entropy(input, target, reduction=r),
        {"input": p_ext, "target": yb}, {"reduction": r})

zl = q(torch.randn(3, 4) * 3)
zl_big = q(torch.sign(torch.randn(3, 4)) * 1000 + torch.randn(3, 4))
pw = q(torch.rand(4) * 3 + 0.2)
for r in REDUCTIONS:
    for tag, z in (("", zl), ("big_", zl_big)):
        add(f"bcel_{tag}{r}", "bce_with_logits",
            lambda input, target, r=r: F.binary_cross_entropy_with_logits(input, target, reduction=r),
            {"input": z, "target": yb}, {"reduction": r})
        add(f"bcel_{tag}pos_weight_{r}", "bce_with_logits",
            lambda input, target, pos_weight, r=r: F.binary_cross_entropy_with_logits(
                input, target, pos_weight=pos_weight, reduction=r),
            {"input": z, "target": yb, "pos_weight": pw}, {"reduction": r})

doc = {"generated_by": "scripts/gen_loss_fixtures.py", "torch_version": torch.__version__, "cases": CASES}
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"), allow_nan=False)
    f.write("\n")
print(f"wrote {len(CASES)} cases, {os.path.getsize(OUT)} bytes to {os.path.normpath(OUT)}")
