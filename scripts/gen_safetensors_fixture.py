"""Writes the PyTorch fixtures for d2l-nn's save/load tests (D2L 5.5).

Run from the repository root with the project's virtual environment:

    .venv/bin/pip install safetensors
    .venv/bin/python scripts/gen_safetensors_fixture.py

It writes, under crates/d2l-nn/tests/fixtures/:

* mlp.safetensors: `safetensors.torch.save_file(model.state_dict(), ...)` of
  nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) built after torch.manual_seed(0);
* mlp_io.json: a fixed input of shape [2, 4] and the model's output for it;
* dtypes.safetensors: one small tensor per dtype d2l-rs reads (f32, f64, i64, u8, and a
  0-d scalar);
* bf16.safetensors: a bfloat16 tensor, which d2l-rs loads as float32.

Pass --check FILE to load a safetensors file written by d2l-rs and print its tensors.
"""

import json
import os
import sys

import torch
from torch import nn
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-nn", "tests", "fixtures")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        for name, t in load_file(sys.argv[2]).items():
            print(name, t.dtype, list(t.shape), t.flatten().tolist()[:8])
        return

    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    save_file(model.state_dict(), os.path.join(OUT, "mlp.safetensors"))

    x = torch.tensor([[0.5, -1.0, 2.0, 0.25], [-0.75, 0.3, -0.2, 1.5]], dtype=torch.float32)
    with torch.no_grad():
        y = model(x)
    io = {
        "architecture": "nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.manual_seed(0)",
        "torch_version": torch.__version__,
        "input": x.tolist(),
        "output": y.tolist(),
    }
    with open(os.path.join(OUT, "mlp_io.json"), "w") as f:
        json.dump(io, f)
        f.write("\n")

    dtypes = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
        "f64": torch.tensor([1.0 / 3.0, -2.5, 1e-300], dtype=torch.float64),
        "i64": torch.tensor([[-(2**40), 0], [7, 2**62]], dtype=torch.int64),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
    }
    save_file(dtypes, os.path.join(OUT, "dtypes.safetensors"))
    bf16 = {"half": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
    save_file(bf16, os.path.join(OUT, "bf16.safetensors"))
    for name in ("mlp.safetensors", "dtypes.safetensors", "bf16.safetensors"):
        os.chmod(os.path.join(OUT, name), 0o644)


if __name__ == "__main__":
    main()
