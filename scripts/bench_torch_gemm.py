#!/usr/bin/env python3
"""PyTorch peer numbers for ``cargo run --release -p d2l-tensor --example bench_gemm``:
GEMM GFLOP/s on the hot shapes of training steps, one JSON line per shape, same names
and protocol (see bench_protocol.py).

Usage:
    .venv/bin/python scripts/bench_torch_gemm.py --threads 2
    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 .venv/bin/python scripts/bench_torch_gemm.py

Names are gemm_<m>x<k>x<n>_<a><b>, n a row-major operand, t a transposed view; the
output is freshly allocated each call (torch.matmul), as in d2l-rs.
"""
import os

from bench_protocol import SEED, emit, measure, parse_args

SHAPES = [
    (256, 784, 256, False, True),
    (256, 256, 784, True, False),
    (784, 256, 256, True, False),
    (256, 256, 10, False, True),
    (10, 256, 256, True, False),
    (256, 256, 10, True, False),
    (256, 10, 256, False, False),
    (256, 784, 256, False, False),
    (64, 784, 256, False, True),
    (1024, 1024, 1024, False, False),
]


def main():
    args, only = parse_args(__doc__.split("\n")[0], "torch.set_num_threads (default 2)",
                            "comma-separated names")
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "native")
    with torch.inference_mode():
        for m, k, n, ta, tb in SHAPES:
            name = f"gemm_{m}x{k}x{n}_{'t' if ta else 'n'}{'t' if tb else 'n'}"
            if only is not None and name not in only:
                continue
            a = torch.randn(k, m, generator=g).t() if ta else torch.randn(m, k, generator=g)
            b = torch.randn(n, k, generator=g).t() if tb else torch.randn(k, n, generator=g)
            emit(torch.get_num_threads(), "gemm", name, "gflops", "GFLOP/s", 1e9,
                 measure(lambda: torch.matmul(a, b), 2.0 * m * k * n), shape=[m, k, n],
                 cpu=cap, mkl=os.environ.get("MKL_ENABLE_INSTRUCTIONS", "native"))


if __name__ == "__main__":
    main()
