#!/usr/bin/env python3
"""The same training run in PyTorch, to set a d2l-rs reduced-budget result beside the
book's framework at the identical budget: ``train_ch6`` (Xavier-uniform weights, plain
SGD, mean cross-entropy) on Fashion-MNIST for a zoo model of ``scripts/zoo_torch.py``,
with d2l-rs's ``d2l train`` flags ``--resize``, ``--width-mult``, ``--train-limit``,
``--test-limit``, ``--epochs``, ``--lr``, ``--batch-size``.

Data: the IDX files of ``--data-dir``/fashion_mnist, ``ToTensor`` scaling (u8 / 255) and
a bilinear resize (``align_corners=False``, no antialias, as d2l-rs); the training set is
reshuffled every epoch (seed 0), the test set is in order.

    .venv/bin/python scripts/train_torch_zoo.py alexnet --data-dir ../shared/data \\
        --resize 96 --width-mult 0.25 --epochs 1

Prints one line per epoch and a final JSON line like ``d2l train --json``.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import zoo_torch  # noqa: E402


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, train):
    d = os.path.join(data_dir, "fashion_mnist")
    pre = "train" if train else "t10k"
    x = torch.from_numpy(idx(os.path.join(d, f"{pre}-images-idx3-ubyte.gz")).copy())
    y = torch.from_numpy(idx(os.path.join(d, f"{pre}-labels-idx1-ubyte.gz")).astype(np.int64))
    return x.float().div(255).unsqueeze(1), y


def batches(x, y, batch, resize, order=None):
    n = x.shape[0]
    order = torch.arange(n) if order is None else order
    for i in range(0, n, batch):
        idx_ = order[i:i + batch]
        xb = x[idx_]
        if resize != xb.shape[-1]:
            xb = F.interpolate(xb, size=(resize, resize), mode="bilinear", align_corners=False)
        yield xb, y[idx_]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--resize", type=int, default=None)
    ap.add_argument("--width-mult", type=float, default=1.0)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    batch, side, lr = zoo_torch.BOOK[a.model]
    batch = a.batch_size or batch
    side = a.resize or side
    lr = a.lr or lr
    torch.manual_seed(a.seed)
    net = zoo_torch.build(a.model, (1, side, side), 10, a.width_mult)
    xtr, ytr = load(a.data_dir, True)
    xte, yte = load(a.data_dir, False)
    if a.train_limit:
        xtr, ytr = xtr[:a.train_limit], ytr[:a.train_limit]
    if a.test_limit:
        xte, yte = xte[:a.test_limit], yte[:a.test_limit]
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    t_train = 0.0
    for epoch in range(1, a.epochs + 1):
        net.train()
        ls, acc, n = 0.0, 0.0, 0
        for xb, yb in batches(xtr, ytr, batch, side, torch.randperm(xtr.shape[0], generator=g)):
            t = time.perf_counter()
            opt.zero_grad()
            y_hat = net(xb)
            lv = loss(y_hat, yb)
            lv.backward()
            opt.step()
            t_train += time.perf_counter() - t
            ls += lv.item() * yb.numel()
            acc += (y_hat.argmax(1) == yb).sum().item()
            n += yb.numel()
        net.eval()
        correct, m = 0, 0
        with torch.no_grad():
            for xb, yb in batches(xte, yte, batch, side):
                correct += (net(xb).argmax(1) == yb).sum().item()
                m += yb.numel()
        print(f"epoch {epoch}: loss {ls / n:.4f}, train acc {acc / n:.3f}, "
              f"test acc {correct / m:.3f}", flush=True)
    print(json.dumps({"peer": "torch", "model": a.model, "resize": side, "width": a.width_mult,
                      "epochs": a.epochs, "train_loss": ls / n, "train_acc": acc / n,
                      "test_acc": correct / m,
                      "examples_per_sec": n * a.epochs / t_train}))


if __name__ == "__main__":
    main()
