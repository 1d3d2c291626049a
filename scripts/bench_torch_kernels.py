#!/usr/bin/env python3
"""PyTorch peer numbers for the d2l-rs kernel benchmarks, one JSON line per kernel.

Same protocol and names as ``cargo run --release -p d2l-tensor --example bench_kernels``
(and /work/shared/bench/WORKLOADS.md): warm-up >= 3 steps and >= 1 s, one calibration
step, then 5 repetitions of n = ceil(1 s / t_step) steps each; the median throughput is
reported; wall clock (time.perf_counter).

Usage:
    .venv/bin/python scripts/bench_torch_kernels.py                 # 2 threads
    .venv/bin/python scripts/bench_torch_kernels.py --threads 1 --only matmul_1024

Environment: BENCH_REPS (default 5), BENCH_TARGET_S (default 1.0).

Kernels: matmul_1024 (W5; torch.mm with out=, as torch_bench.py), matmul_256x784x256
(GFLOP/s = 2*m*k*n / t); add_16m, mul_16m, relu_16m over 16,777,216 f32 elements,
softmax_256x1000 (last dim), sum_4096x4096 (all) in GB/s = (bytes read + written) / t / 1e9.
The elementwise/reduction outputs are freshly allocated each call, as in d2l-rs.
"""
from bench_protocol import SEED, emit, measure, parse_args


def main():
    args, only = parse_args(__doc__.split("\n")[0], "torch.set_num_threads (default 2)",
                            "comma-separated kernel names")

    def want(name):
        return only is None or name in only

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    th = torch.get_num_threads()

    with torch.inference_mode():
        for name, m, k, n, wl in [("matmul_1024", 1024, 1024, 1024, "W5"),
                                  ("matmul_256x784x256", 256, 784, 256, "kernels")]:
            if not want(name):
                continue
            a = torch.randn(m, k, generator=g)
            b = torch.randn(k, n, generator=g)
            out = torch.empty(m, n)

            def mm():
                torch.mm(a, b, out=out)
            emit(th, wl, name, "gflops", "GFLOP/s", 1e9, measure(mm, 2.0 * m * k * n),
                 shape=[m, k, n])

        n = 1 << 24
        nb = 4.0 * n
        x = torch.randn(n, generator=g)
        y = torch.randn(n, generator=g)
        if want("add_16m"):
            emit(th, "kernels", "add_16m", "gbps", "GB/s", 1e9,
                 measure(lambda: torch.add(x, y), 3 * nb), shape=[n])
        if want("mul_16m"):
            emit(th, "kernels", "mul_16m", "gbps", "GB/s", 1e9,
                 measure(lambda: torch.mul(x, y), 3 * nb), shape=[n])
        if want("relu_16m"):
            emit(th, "kernels", "relu_16m", "gbps", "GB/s", 1e9,
                 measure(lambda: torch.relu(x), 2 * nb), shape=[n])
        del x, y
        if want("softmax_256x1000"):
            l = torch.randn(256, 1000, generator=g)
            emit(th, "kernels", "softmax_256x1000", "gbps", "GB/s", 1e9,
                 measure(lambda: torch.softmax(l, -1), 2 * 256 * 1000 * 4.0),
                 shape=[256, 1000], dim=-1)
        if want("sum_4096x4096"):
            s = torch.randn(4096, 4096, generator=g)
            emit(th, "kernels", "sum_4096x4096", "gbps", "GB/s", 1e9,
                 measure(lambda: s.sum(), 4096 * 4096 * 4.0 + 4.0), shape=[4096, 4096])


if __name__ == "__main__":
    main()
