"""Timing protocol shared by the ``bench_torch_*.py`` scripts (the PyTorch peers of the
d2l-rs ``bench_*`` examples, whose common part is crates/d2l-tensor/examples/common/protocol.rs).

As in /work/shared/bench/WORKLOADS.md: warm-up >= 3 steps and >= 1 s, one calibration
step, then REPS repetitions of n = ceil(TARGET_REP_S / t_step) steps each; the median
throughput is reported; wall clock (time.perf_counter).

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
    """Returns (median rate, per-rep rates, steps per rep, median seconds per step)."""
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
    """Prints one JSON line: the common fields, then ``extra`` in order."""
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


def parse_args(description=None, threads_help=None, only_help=None):
    """Parses ``--threads N`` (default 2) and ``--only a,b``; returns (args, only), where
    ``only`` is a set of names or None for all."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2, help=threads_help)
    ap.add_argument("--only", default=None, help=only_help)
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    return args, only
