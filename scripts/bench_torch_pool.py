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
import argparse
import json
import math
import os
import statistics
import time

REPS = int(os.environ.get("BENCH_REPS", 5))
TARGET_REP_S = float(os.environ.get("BENCH_TARGET_S", 1.0))
WARMUP_S = 1.0
WARMUP_MIN = 3
SEED = 0


def measure(step, work_per_step):
    t0 = time.perf_counter()
    n = 0
    while n < WARMUP_MIN or time.perf_counter() - t0 < WARMUP_S:
        step()
        n += 1
    t1 = time.perf_counter()
    step()
    one = time.perf_counter() - t1
    steps = max(1, math.ceil(TARGET_REP_S / max(one, 1e-9)))
    rates, per_step = [], []
    for _ in range(REPS):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        dt = time.perf_counter() - t
        rates.append(work_per_step * steps / dt)
        per_step.append(dt / steps)
    return statistics.median(rates), rates, steps, statistics.median(per_step)


def emit(threads, workload, name, metric, unit, scale, r, **extra):
    rate, rates, steps, step_s = r
    rec = {
        "peer": "torch",
        "workload": workload,
        "name": name,
        "metric": metric,
        "value": round(rate / scale, 3),
        "unit": unit,
        "median_step_ms": round(step_s * 1e3, 4),
        "reps": [round(x / scale, 3) for x in rates],
        "steps_per_rep": steps,
        "threads": threads,
        "device": "cpu",
    }
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None

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
