#!/usr/bin/env python3
"""Generate the PyTorch forward-parity fixtures of the chapter 6-7 CNN zoo
(``crates/d2l-models/tests/cnn_zoo.rs``).

Run by developers whenever a model or the case list changes; the output files
``crates/d2l-models/tests/fixtures/cnn_zoo/<model>.safetensors`` are committed, and
``cargo test`` reads them without Python or PyTorch.

Usage (from the repository root)::

    .venv/bin/python scripts/gen_zoo_fixtures.py

What each file holds
--------------------
* The model's ``state_dict`` under the book's module names (= d2l-rs's names), built by
  ``scripts/zoo_torch.py`` with ``train_ch6``'s Xavier init, then with every batch-norm
  scale, shift and running statistic set to random values (so evaluation mode is not the
  identity). Saved before any forward pass.
* ``fixture.input``: the input batch, U(0, 1) like images.
* ``fixture.output_eval``: ``net.eval()`` output under ``torch.no_grad()``.
* For models with batch norm (no dropout): ``fixture.output_train``, the ``net.train()``
  output with gradients enabled (batch statistics; the from-scratch ``BatchNorm``
  switches on ``torch.is_grad_enabled()``), and ``fixture.after.<name>`` for every
  buffer after that one training forward (running / moving statistics, batch counts).

Sizes: the files stay small (about 2.2 MB in all), so the heavy models use a reduced
width (``width`` multiplies every hidden width, as d2l-rs's ``width_mult``) and a smaller
input than the book's; it is the same code path as the full model. LeNet and BN-LeNet
are at the book's size.
"""
import os

import torch
from safetensors.torch import save_file

import zoo_torch

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-models", "tests",
                   "fixtures", "cnn_zoo")

# (zoo name, width, input shape [N, C, H, W], training-mode check)
CASES = [
    ("lenet", 1.0, [2, 1, 28, 28], False),
    ("lenet-relu-max", 1.0, [2, 1, 28, 28], False),
    ("alexnet", 1 / 32, [2, 1, 99, 99], False),
    ("vgg11-full", 1 / 32, [2, 1, 64, 64], False),
    ("nin", 1 / 8, [2, 1, 99, 99], False),
    ("googlenet", 1 / 16, [2, 1, 64, 64], False),
    ("lenet-bn-scratch", 1.0, [4, 1, 28, 28], True),
    ("lenet-bn", 1.0, [4, 1, 28, 28], True),
    ("resnet18", 1 / 16, [4, 1, 64, 64], True),
    ("densenet", 1 / 4, [4, 1, 64, 64], True),
]


def randomise_batch_norm(net, g):
    """Random scale, shift and running statistics for every batch-norm layer."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                pairs = [(m.weight, m.bias, m.running_mean, m.running_var)]
            elif isinstance(m, zoo_torch.BatchNorm):
                pairs = [(m.gamma, m.beta, m.moving_mean, m.moving_var)]
            else:
                continue
            for gamma, beta, mean, var in pairs:
                gamma.copy_(0.5 + torch.rand(gamma.shape, generator=g))
                beta.copy_(0.1 * torch.randn(beta.shape, generator=g))
                mean.copy_(0.1 * torch.randn(mean.shape, generator=g))
                var.copy_(0.5 + torch.rand(var.shape, generator=g))


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for i, (name, width, shape, train_check) in enumerate(CASES):
        torch.manual_seed(100 + i)
        g = torch.Generator().manual_seed(200 + i)
        net = zoo_torch.build(name, shape[1:], 10, width)
        randomise_batch_norm(net, g)
        tensors = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        x = torch.rand(shape, generator=g)
        tensors["fixture.input"] = x
        net.eval()
        with torch.no_grad():
            tensors["fixture.output_eval"] = net(x).contiguous()
        if train_check:
            net.train()
            y = net(x)
            tensors["fixture.output_train"] = y.detach().contiguous()
            for k, v in net.named_buffers():
                tensors[f"fixture.after.{k}"] = v.detach().clone().contiguous()
        path = os.path.join(OUT, f"{name}.safetensors")
        save_file(tensors, path, metadata={
            "model": name, "width": repr(width), "torch": torch.__version__})
        size = os.path.getsize(path)
        total += size
        n_params = sum(p.numel() for p in net.parameters())
        print(f"{name}: width {width:g}, input {shape}, {n_params} params, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
