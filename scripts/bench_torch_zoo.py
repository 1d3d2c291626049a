#!/usr/bin/env python3
"""PyTorch peer numbers for the chapter 6-7 CNN zoo: training and inference images/s of
each model at the book's batch size and input size (table B.2), one JSON line per
measurement, to set beside ``d2l bench MODEL``.

The models are ``scripts/zoo_torch.py``'s (the book's code, ``train_ch6``'s Xavier init).
Protocol (/work/shared/bench/WORKLOADS.md, via ``bench_protocol.py``): one synthetic batch
made once (inputs ~ N(0, 1), labels uniform over 10 classes, seed 0); a training step is
zero_grad -> forward -> mean cross-entropy -> backward -> SGD ``p -= 0.1 * grad``; an
inference step is a forward in eval mode under ``torch.no_grad``; warm-up >= 3 steps and
>= 1 s, one calibration step, 5 repetitions of n = ceil(1 s / t_step) steps, the median.
BENCH_REPS / BENCH_TARGET_S override the repetitions and the target seconds per
repetition (``BENCH_REPS=1 BENCH_TARGET_S=0.2`` for a quick run).

    /work/shared/bench/wait_idle.sh && .venv/bin/python scripts/bench_torch_zoo.py --threads 2
    .venv/bin/python scripts/bench_torch_zoo.py --only lenet,resnet18 [--batch 32]

Each line: {"peer": "torch", "workload": MODEL, "name": MODEL, "metric":
"train_images_per_s" | "infer_images_per_s", "value", "unit": "images/s",
"median_step_ms", "reps", "steps_per_rep", "threads", "device": "cpu", "batch",
"input", "width"}. ``peer`` is "torch", as in torch_bench.py and the other
bench_torch_*.py scripts.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from bench_protocol import emit, measure  # noqa: E402

import zoo_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated model names")
    ap.add_argument("--batch", type=int, default=None, help="override the book's batch size")
    ap.add_argument("--width", type=float, default=1.0, help="width multiplier (1: the book's)")
    ap.add_argument("--metrics", default="train,infer")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    names = a.only.split(",") if a.only else list(zoo_torch.BOOK)
    metrics = a.metrics.split(",")
    for name in names:
        if name not in zoo_torch.BOOK:
            sys.exit(f"unknown model {name!r}; expected one of {', '.join(zoo_torch.BOOK)}")
        batch, side, _lr = zoo_torch.BOOK[name]
        batch = a.batch or batch
        torch.manual_seed(0)
        net = zoo_torch.build(name, (1, side, side), 10, a.width)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 1, side, side, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        loss = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        extra = dict(batch=batch, input=[1, side, side], width=a.width)
        if "train" in metrics:
            net.train()

            def train_step():
                opt.zero_grad()
                loss(net(x), y).backward()
                opt.step()

            emit(torch.get_num_threads(), name, name, "train_images_per_s", "images/s", 1.0,
                 measure(train_step, batch), **extra)
        if "infer" in metrics:
            net.eval()

            def infer_step():
                with torch.no_grad():
                    net(x)

            emit(torch.get_num_threads(), name, name, "infer_images_per_s", "images/s", 1.0,
                 measure(infer_step, batch), **extra)


if __name__ == "__main__":
    main()
