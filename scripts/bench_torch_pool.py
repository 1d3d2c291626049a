#!/usr/bin/env python3
"""PyTorch peer numbers for the d2l-rs pooling benchmarks, one JSON line per case.

Same protocol and names as ``cargo run --release -p d2l-tensor --example bench_pool``
(and /work/shared/bench/WORKLOADS.md): warm-up >= 3 steps and >= 1 s, one calibration
step, then 5 repetitions of n = ceil(1 s / t_step) steps each; the median throughput is
reported; wall clock (time.perf_counter).

Cases (f32, inputs ~ N(0, 1)): maxpool2x2_lenet ([256, 6, 28, 28], kernel 2),
avgpool2x2_lenet (same), maxpool3x3s2p1_resnet ([32, 64, 48, 48], kernel 3, stride 2,
padding 1), gap_resnet ([32, 512, 3, 3] -> 1x1). ``_fwd`` runs under torch.no_grad;
``_fwdbwd`` runs the forward with autograd and backward of a fixed output gradient.
Metric: input elements per second (Melem/s).

Usage:
    .venv/bin/python scripts/bench_torch_pool.py                 # 2 threads
    .venv/bin/python scripts/bench_torch_pool.py --threads 1 --only maxpool2x2_lenet_fwd

Environment: BENCH_REPS (default 5), BENCH_TARGET_S (default 1.0).
"""
from bench_protocol import SEED, emit, measure, parse_args


def main():
    args, only = parse_args(__doc__.split("\n")[0], "torch.set_num_threads (default 2)",
                            "comma-separated case names")

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)

    def want(name):
        return only is None or name in only

    cases = [
        ("maxpool2x2_lenet", [256, 6, 28, 28], lambda x: F.max_pool2d(x, 2),
         {"op": "max_pool2d", "kernel": 2, "stride": 2, "padding": 0}),
        ("avgpool2x2_lenet", [256, 6, 28, 28], lambda x: F.avg_pool2d(x, 2),
         {"op": "avg_pool2d", "kernel": 2, "stride": 2, "padding": 0}),
        ("maxpool3x3s2p1_resnet", [32, 64, 48, 48], lambda x: F.max_pool2d(x, 3, 2, 1),
         {"op": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1}),
        ("gap_resnet", [32, 512, 3, 3], lambda x: F.adaptive_avg_pool2d(x, 1),
         {"op": "adaptive_avg_pool2d", "output_size": 1}),
    ]
    for base, shape, f, extra in cases:
        fwd, fwdbwd = base + "_fwd", base + "_fwdbwd"
        if not (want(fwd) or want(fwdbwd)):
            continue
        x = torch.randn(shape)
        n = float(x.numel())
        if want(fwd):
            def step_fwd():
                with torch.no_grad():
                    f(x)
            emit(args.threads, "pool", fwd, "melems", "Melem/s", 1e6, measure(step_fwd, n), shape=shape, **extra)
        if want(fwdbwd):
            xg = x.detach().clone().requires_grad_(True)
            with torch.no_grad():
                g = torch.randn(f(x).shape)

            def step_bwd():
                xg.grad = None
                f(xg).backward(g)
            emit(args.threads, "pool", fwdbwd, "melems", "Melem/s", 1e6, measure(step_bwd, n), shape=shape, **extra)


if __name__ == "__main__":
    main()
