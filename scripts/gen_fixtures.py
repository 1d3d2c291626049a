#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the d2l-tensor op tests.

Run once by developers whenever the case list changes; the output file
``crates/d2l-tensor/tests/fixtures/ops.json`` is committed to the repository.
CI and ``cargo test`` never need Python or PyTorch: they only read the JSON.

Usage (from the repository root)::

    python3 -m venv .venv && .venv/bin/pip install torch numpy
    .venv/bin/python scripts/gen_fixtures.py

How the numbers are made
------------------------
* ``torch.manual_seed(0)`` is set once, so the output is reproducible for a
  given PyTorch version.
* Every float input is drawn in float32 and rounded to 3 decimals (then
  rounded to float32 again), so it is stored as a short decimal that parses to
  exactly the same f32 on the Rust side.  The reference is computed in float64
  from those exact f32 values.
* Outputs and gradients are rounded to 8 significant digits.
* ``grad_output`` is a fixed random N(0, 1) tensor of the output's shape
  (stored exactly, like the inputs); ``grads[i]`` is the gradient of
  ``sum(output * grad_output)`` with respect to input ``i``.  It is ``null``
  for integer / mask inputs, and ``grad_output`` and all grads are ``null``
  for non-differentiable ops (comparisons, argmax/argmin).

JSON layout::

    {"generated_by": ..., "torch_version": ...,
     "cases": [{"name", "op", "params",
                "inputs": [{"shape", "dtype", "data"}],
                "output": {"shape", "dtype", "data"},
                "grad_output": {"shape", "data"} | null,
                "grads": [{"shape", "data"} | null, ...]}]}

``dtype`` is "f32" for floating tensors, "i64" for indices and "u8" (0/1)
for masks and comparison results.  ``data`` is flat, row-major; a 0-d tensor
has ``shape == []`` and one element.
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "d2l-tensor", "tests", "fixtures", "ops.json",
)

CASES = []


# ---------------------------------------------------------------------------
# Input generation and serialisation helpers
# ---------------------------------------------------------------------------

def _quantize(t):
    """Round to 3 decimals and make the result float32-representable."""
    return (torch.round(t.double() * 1000.0) / 1000.0).float()


def randn(*shape, avoid=(), distinct=False, min_abs=None):
    """N(0,1) float32 input, resampled until no value lies within 0.05 of a
    point in ``avoid`` (kinks), all values are distinct if asked, and
    |x| >= min_abs if given."""
    while True:
        t = _quantize(torch.randn(shape))
        if _acceptable(t, avoid, distinct, min_abs):
            return t


def uniform(lo, hi, *shape, distinct=False):
    """Uniform float32 input on [lo, hi)."""
    while True:
        t = _quantize(torch.rand(shape) * (hi - lo) + lo)
        if _acceptable(t, (), distinct, None):
            return t


def signed_uniform(lo, hi, *shape):
    """Magnitude uniform on [lo, hi) with a random sign (safe denominators)."""
    mag = torch.rand(shape) * (hi - lo) + lo
    sign = torch.where(torch.rand(shape) < 0.5, -1.0, 1.0)
    return _quantize(mag * sign)


def small_ints(lo, hi, *shape):
    """Float32 tensor of small integers, so comparisons hit equal values."""
    return torch.randint(lo, hi, shape).float()


def _acceptable(t, avoid, distinct, min_abs):
    for k in avoid:
        if ((t.double() - k).abs() < 0.05).any():
            return False
    if distinct and torch.unique(t).numel() != t.numel():
        return False
    if min_abs is not None and (t.abs() < min_abs).any():
        return False
    return True


def index(values, shape):
    return torch.tensor(values, dtype=torch.int64).reshape(shape)


def mask(values, shape):
    return torch.tensor(values, dtype=torch.bool).reshape(shape)


def f32_exact(v):
    """Shortest decimal that round-trips to the same float32."""
    return float(str(np.float32(v)))


def sig8(v):
    return float(f"{v:.8g}")


def dtype_name(t):
    if t.dtype.is_floating_point:
        return "f32"
    if t.dtype == torch.bool:
        return "u8"
    if t.dtype == torch.int64:
        return "i64"
    raise ValueError(f"unexpected dtype {t.dtype}")


def encode(t, exact_input=False, with_dtype=True):
    """Serialise a tensor.  Float inputs are stored exactly (f32), float
    results at 8 significant digits, integer and bool tensors as ints."""
    flat = t.detach().reshape(-1).tolist()
    if t.dtype.is_floating_point:
        data = [f32_exact(v) if exact_input else sig8(v) for v in flat]
    else:
        data = [int(v) for v in flat]
    d = {"shape": list(t.shape)}
    if with_dtype:
        d["dtype"] = dtype_name(t)
    d["data"] = data
    return d


def case(name, op, params, inputs, fn, differentiable=True):
    """Evaluate ``fn`` on float64 copies of ``inputs`` and record the case.

    Float inputs must be float32 tensors; int64 / bool inputs pass through
    unchanged and never get a gradient.
    """
    assert all(c["name"] != name for c in CASES), name
    args = []
    for x in inputs:
        if x.dtype == torch.float32:
            args.append(x.double().requires_grad_(differentiable))
        else:
            args.append(x)
    out = fn(*args)

    grad_output = None
    grads = [None] * len(inputs)
    if differentiable:
        assert out.dtype.is_floating_point, name
        go = randn(*out.shape)
        (out * go.double()).sum().backward()
        grad_output = encode(go, exact_input=True, with_dtype=False)
        for i, a in enumerate(args):
            if a.dtype.is_floating_point:
                g = a.grad if a.grad is not None else torch.zeros_like(a)
                grads[i] = encode(g, with_dtype=False)

    CASES.append({
        "name": name,
        "op": op,
        "params": params,
        "inputs": [encode(x, exact_input=True) for x in inputs],
        "output": encode(out),
        "grad_output": grad_output,
        "grads": grads,
    })


# ---------------------------------------------------------------------------
# Case families
# ---------------------------------------------------------------------------

# (suffix, lhs shape, rhs shape)
BROADCAST_SHAPES = [
    ("same", (2, 3), (2, 3)),
    ("bcast_row", (2, 3), (3,)),
    ("bcast_outer", (2, 1), (1, 3)),
    ("bcast_3d", (4, 1, 3), (2, 1)),
]


def binary_cases():
    ops = {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "pow": torch.pow,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
    }
    for op, fn in ops.items():
        for suffix, sa, sb in BROADCAST_SHAPES:
            if op == "div":
                a, b = randn(*sa), signed_uniform(0.5, 2.0, *sb)
            elif op == "pow":
                a, b = uniform(0.5, 2.0, *sa), uniform(-2.0, 2.0, *sb)
            elif op in ("maximum", "minimum"):
                # all values distinct across both inputs -> no ties
                while True:
                    a, b = randn(*sa), randn(*sb)
                    both = torch.cat([a.reshape(-1), b.reshape(-1)])
                    if torch.unique(both).numel() == both.numel():
                        break
            else:
                a, b = randn(*sa), randn(*sb)
            case(f"{op}_{suffix}", op, {}, [a, b], fn)


def scalar_cases():
    case("add_scalar", "add_scalar", {"value": 2.5}, [randn(2, 3)],
         lambda x: x + 2.5)
    case("mul_scalar", "mul_scalar", {"value": -1.5}, [randn(2, 3)],
         lambda x: x * -1.5)
    case("pow_scalar", "pow_scalar", {"value": 2.5},
         [uniform(0.2, 3.0, 2, 3)], lambda x: x ** 2.5)
    case("leaky_relu", "leaky_relu", {"negative_slope": 0.1},
         [randn(3, 4, avoid=(0.0,))],
         lambda x: F.leaky_relu(x, negative_slope=0.1))
    case("clamp", "clamp", {"min": -0.5, "max": 0.5},
         [randn(3, 4, avoid=(-0.5, 0.5))],
         lambda x: torch.clamp(x, min=-0.5, max=0.5))


def unary_cases():
    def r():
        return randn(3, 4)

    def pos():
        return uniform(0.2, 3.0, 3, 4)

    specs = [
        ("neg", {}, r(), torch.neg),
        ("abs", {}, randn(3, 4, avoid=(0.0,)), torch.abs),
        ("exp", {}, r(), torch.exp),
        ("log", {}, pos(), torch.log),
        ("log1p", {}, uniform(-0.7, 3.0, 3, 4), torch.log1p),
        ("sqrt", {}, pos(), torch.sqrt),
        ("rsqrt", {}, pos(), torch.rsqrt),
        ("sin", {}, uniform(-4.0, 4.0, 3, 4), torch.sin),
        ("cos", {}, uniform(-4.0, 4.0, 3, 4), torch.cos),
        ("tanh", {}, r(), torch.tanh),
        ("sigmoid", {}, r(), torch.sigmoid),
        ("relu", {}, randn(3, 4, avoid=(0.0,)), torch.relu),
        ("gelu", {"approximate": "none"}, r(), F.gelu),
        ("softplus", {"beta": 1.0, "threshold": 20.0},
         uniform(-4.0, 4.0, 3, 4), F.softplus),
    ]
    for op, params, x, fn in specs:
        case(op, op, params, [x], fn)
    # Extreme inputs: exercises softplus' linear branch (x > threshold) and
    # the saturation of sigmoid / tanh.
    big = torch.tensor([[-30.0, -5.0, 0.5], [19.5, 21.0, 30.0]])
    case("softplus_large", "softplus", {"beta": 1.0, "threshold": 20.0},
         [big], F.softplus)
    case("sigmoid_large", "sigmoid", {}, [big], torch.sigmoid)
    case("tanh_large", "tanh", {}, [big], torch.tanh)


def comparison_cases():
    ops = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt,
           "le": torch.le, "gt": torch.gt, "ge": torch.ge}
    shapes = [("same", (2, 3), (2, 3)),
              ("bcast_row", (2, 3), (3,)),
              ("bcast_outer", (2, 1), (1, 3))]
    for op, fn in ops.items():
        for suffix, sa, sb in shapes:
            # small integers -> plenty of equal pairs
            a, b = small_ints(-1, 2, *sa), small_ints(-1, 2, *sb)
            case(f"{op}_{suffix}", op, {}, [a, b], fn, differentiable=False)


def reduction_cases():
    def x345():
        return randn(3, 4, 5, distinct=True)

    for op, fn in (("sum", torch.sum), ("mean", torch.mean)):
        case(f"{op}_all", op, {"dims": None, "keepdim": False},
             [x345()], lambda x, fn=fn: fn(x))
        case(f"{op}_dim1_keepdim", op, {"dims": [1], "keepdim": True},
             [x345()], lambda x, fn=fn: fn(x, dim=[1], keepdim=True))
        case(f"{op}_dims02", op, {"dims": [0, 2], "keepdim": False},
             [x345()], lambda x, fn=fn: fn(x, dim=[0, 2], keepdim=False))

    case("max_dim1", "max", {"dim": 1, "keepdim": False}, [x345()],
         lambda x: torch.max(x, dim=1, keepdim=False).values)
    case("max_dim1_keepdim", "max", {"dim": 1, "keepdim": True}, [x345()],
         lambda x: torch.max(x, dim=1, keepdim=True).values)
    case("argmax_dim1", "argmax", {"dim": 1, "keepdim": False}, [x345()],
         lambda x: torch.argmax(x, dim=1, keepdim=False),
         differentiable=False)
    case("min_dim2", "min", {"dim": 2, "keepdim": False}, [x345()],
         lambda x: torch.min(x, dim=2, keepdim=False).values)
    case("argmin_dim2", "argmin", {"dim": 2, "keepdim": False}, [x345()],
         lambda x: torch.argmin(x, dim=2, keepdim=False),
         differentiable=False)

    for op, fn in (("var", torch.var), ("std", torch.std)):
        for unbiased in (True, False):
            tag = "unbiased" if unbiased else "biased"
            case(f"{op}_dim1_{tag}", op,
                 {"dims": [1], "unbiased": unbiased, "keepdim": False},
                 [x345()],
                 lambda x, fn=fn, u=unbiased:
                     fn(x, dim=[1], correction=1 if u else 0, keepdim=False))

    case("logsumexp_dim1", "logsumexp", {"dims": [1], "keepdim": False},
         [x345()], lambda x: torch.logsumexp(x, dim=[1], keepdim=False))
    case("norm_l2_all", "norm", {"p": 2}, [x345()],
         lambda x: torch.linalg.vector_norm(x, ord=2))
    case("softmax_dim1", "softmax", {"dim": 1}, [x345()],
         lambda x: torch.softmax(x, dim=1))
    case("log_softmax_dim1", "log_softmax", {"dim": 1}, [x345()],
         lambda x: torch.log_softmax(x, dim=1))

    large = torch.tensor([[1000.0, 999.0, -1000.0],
                          [-1000.0, -998.0, -999.0]])
    case("softmax_large", "softmax", {"dim": 1}, [large],
         lambda x: torch.softmax(x, dim=1))
    case("log_softmax_large", "log_softmax", {"dim": 1}, [large],
         lambda x: torch.log_softmax(x, dim=1))


def matmul_cases():
    specs = [
        ("matmul_2d", (3, 4), (4, 5)),
        ("matmul_1d_2d", (4,), (4, 5)),
        ("matmul_2d_1d", (3, 4), (4,)),
        ("matmul_1d_1d", (4,), (4,)),
        ("matmul_batched", (2, 3, 4), (2, 4, 5)),
        ("matmul_bcast_batch", (2, 1, 3, 4), (3, 4, 2)),
    ]
    for name, sa, sb in specs:
        case(name, "matmul", {"transpose_lhs": False},
             [randn(*sa), randn(*sb)], torch.matmul)
    case("matmul_t", "matmul", {"transpose_lhs": True},
         [randn(4, 3), randn(4, 5)], lambda a, b: a.t() @ b)


def movement_cases():
    case("reshape", "reshape", {"shape": [4, 6]}, [randn(2, 3, 4)],
         lambda x: x.reshape(4, 6))
    case("permute", "permute", {"dims": [2, 0, 1]}, [randn(2, 3, 4)],
         lambda x: x.permute(2, 0, 1))
    case("transpose", "transpose", {"dim0": 0, "dim1": 2}, [randn(2, 3, 4)],
         lambda x: x.transpose(0, 2))
    case("narrow", "narrow", {"dim": 1, "start": 1, "length": 3},
         [randn(4, 5)], lambda x: x.narrow(1, 1, 3))
    case("expand", "expand", {"shape": [2, 3, 4]}, [randn(3, 1)],
         lambda x: x.expand(2, 3, 4))

    case("cat_dim1", "cat", {"dim": 1},
         [randn(2, 3), randn(2, 2), randn(2, 1)],
         lambda *xs: torch.cat(xs, dim=1))
    case("cat_dim0", "cat", {"dim": 0}, [randn(1, 3), randn(2, 3)],
         lambda *xs: torch.cat(xs, dim=0))
    case("stack_dim0", "stack", {"dim": 0}, [randn(2, 3), randn(2, 3)],
         lambda *xs: torch.stack(xs, dim=0))
    case("stack_dim2", "stack", {"dim": 2},
         [randn(2, 3), randn(2, 3), randn(2, 3)],
         lambda *xs: torch.stack(xs, dim=2))

    case("index_select", "index_select", {"dim": 0},
         [randn(4, 3), index([2, 0, 2, 3, 0], (5,))],
         lambda x, i: torch.index_select(x, 0, i))
    case("gather", "gather", {"dim": 1},
         [randn(3, 4), index([0, 3, 3, 1, 1, 2, 2, 0, 1], (3, 3))],
         lambda x, i: torch.gather(x, 1, i))
    case("scatter_add", "scatter_add", {"dim": 0},
         [randn(4, 3), index([0, 1, 3, 2, 1, 3], (2, 3)), randn(2, 3)],
         lambda x, i, s: x.scatter_add(0, i, s))

    case("where", "where", {},
         [mask([1, 0, 1, 0, 0, 1], (2, 3)), randn(2, 3), randn(2, 3)],
         torch.where)
    case("where_bcast", "where", {},
         [mask([1, 0, 0, 1, 1, 0], (2, 3)), randn(3), randn(2, 1)],
         torch.where)
    case("masked_fill", "masked_fill", {"value": -1.0},
         [randn(3, 4), mask([1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1], (3, 4))],
         lambda x, m: x.masked_fill(m, -1.0))
    case("masked_fill_bcast", "masked_fill", {"value": -1.0},
         [randn(3, 4), mask([0, 1, 1, 0], (1, 4))],
         lambda x, m: x.masked_fill(m, -1.0))

    case("pad", "pad", {"pad": [1, 2, 0, 1], "value": 0.5}, [randn(2, 3)],
         lambda x: F.pad(x, [1, 2, 0, 1], mode="constant", value=0.5))
    case("repeat", "repeat", {"repeats": [2, 1, 3]}, [randn(1, 2, 3)],
         lambda x: x.repeat(2, 1, 3))
    case("repeat_extra_dims", "repeat", {"repeats": [2, 1, 3]},
         [randn(2, 3)], lambda x: x.repeat(2, 1, 3))
    case("kron", "kron", {}, [randn(2, 2), randn(2, 3)], torch.kron)


def main():
    torch.manual_seed(0)
    binary_cases()
    scalar_cases()
    unary_cases()
    comparison_cases()
    reduction_cases()
    matmul_cases()
    movement_cases()

    # One case per line keeps the committed file diffable and small.
    header = {"generated_by": "scripts/gen_fixtures.py",
              "torch_version": torch.__version__}
    lines = [json.dumps(c, separators=(",", ":"), allow_nan=False)
             for c in CASES]
    text = (json.dumps(header)[:-1] + ', "cases": [\n'
            + ",\n".join(lines) + "\n]}\n")
    json.loads(text)  # sanity check
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        f.write(text)
    print(f"wrote {len(CASES)} cases, {len(text)} bytes to "
          f"{os.path.normpath(OUT_PATH)}")


if __name__ == "__main__":
    main()
