#!/usr/bin/env python3
"""PyTorch peer numbers for the d2l-rs batch-norm benchmarks, one JSON line per case.

Same protocol and names as ``cargo run --release -p d2l-tensor --example bench_norm``
(and /work/shared/bench/WORKLOADS.md): warm-up >= 3 steps and >= 1 s, one calibration
step, then 5 repetitions of n = ceil(1 s / t_step) steps each; the median throughput is
reported; wall clock (time.perf_counter).

Cases (float32, eps 1e-5, momentum 0.1, affine, running statistics given), for shapes
[32, 64, 48, 48] and [256, 6, 28, 28]:
  bn_train_<shape>      F.batch_norm(training=True) forward + backward of sum(y * g)
                        into x, weight and bias (grads set to None before each step)
  bn_train_fwd_<shape>  the training-mode forward alone, under torch.no_grad
  bn_eval_<shape>       eval-mode forward (running statistics), under torch.no_grad
Throughput: millions of input elements per second (Melem/s).

Usage:
    .venv/bin/python scripts/bench_torch_norm.py                 # 2 threads
    .venv/bin/python scripts/bench_torch_norm.py --threads 1 --only bn_train_32x64x48x48

Environment: BENCH_REPS (default 5), BENCH_TARGET_S (default 1.0).
"""
import math

from bench_protocol import SEED, emit, measure, parse_args


def main():
    args, only = parse_args(__doc__.split("\n")[0], "torch.set_num_threads (default 2)",
                            "comma-separated case names")

    def want(name):
        return only is None or name in only

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    th = torch.get_num_threads()

    for shape in ([32, 64, 48, 48], [256, 6, 28, 28]):
        tag = "x".join(map(str, shape))
        c = shape[1]
        elems = float(math.prod(shape))
        x = torch.randn(*shape, generator=g).requires_grad_(True)
        gy = torch.randn(*shape, generator=g)
        w = torch.ones(c, requires_grad=True)
        b = torch.zeros(c, requires_grad=True)
        rm = torch.zeros(c)
        rv = torch.ones(c)
        extra = {"shape": shape, "dtype": "f32"}

        name = f"bn_train_{tag}"
        if want(name):
            def train():
                x.grad = None
                w.grad = None
                b.grad = None
                y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)
                y.backward(gy)
            emit(th, "norm", name, "melems", "Melem/s", 1e6, measure(train, elems), **extra)
        with torch.no_grad():
            name = f"bn_train_fwd_{tag}"
            if want(name):
                emit(th, "norm", name, "melems", "Melem/s", 1e6, measure(
                    lambda: F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5),
                    elems), **extra)
            name = f"bn_eval_{tag}"
            if want(name):
                emit(th, "norm", name, "melems", "Melem/s", 1e6, measure(
                    lambda: F.batch_norm(x, rm, rv, w, b, training=False, momentum=0.1, eps=1e-5),
                    elems), **extra)


if __name__ == "__main__":
    main()
