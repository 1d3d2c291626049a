#!/usr/bin/env python3
"""PyTorch peer number for D2L 13.12 (neural style transfer): seconds per epoch of the
book's training loop, to set beside ``d2l style --epochs N`` (which prints its median).

The loop is the book's: VGG-19 ``features[:29]`` (torchvision layout, **random init**: no
weights are downloaded; the cost does not depend on the values), frozen; images 300x450
(random content/style images, already normalised; override with --size); the synthesised
image is the only parameter, Adam(lr 0.3) with StepLR(50, 0.8); per epoch: zero_grad,
extract_features (the book's loop over the children, torchvision's in-place ReLUs),
compute_loss (content MSE, Gram style MSE, TV, the book's ``10 * styles_l`` list
total), backward, step, scheduler step. ``--warmup`` epochs are run first, then
``--epochs`` epochs are timed one by one; the median is reported.

    /work/shared/bench/wait_idle.sh && .venv/bin/python scripts/bench_torch_style.py --threads 2

One JSON line: {"peer": "torch", "workload": "style_transfer", "metric":
"seconds_per_epoch", "value" (median), "unit": "s", "mean_s", "min_s", "epochs",
"warmup", "threads", "device": "cpu", "size": [H, W], "torch"}.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn
import torchvision

STYLE_LAYERS, CONTENT_LAYERS = [0, 5, 10, 19, 28], [25]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1, 1e3, 10


# ---- the book's code (D2L 13.12)
def extract_features(net, X, content_layers, style_layers):
    contents, styles = [], []
    for i in range(len(net)):
        X = net[i](X)
        if i in style_layers:
            styles.append(X)
        if i in content_layers:
            contents.append(X)
    return contents, styles


def content_loss(Y_hat, Y):
    return torch.square(Y_hat - Y.detach()).mean()


def gram(X):
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape((num_channels, n))
    return torch.matmul(X, X.T) / (num_channels * n)


def style_loss(Y_hat, gram_Y):
    return torch.square(gram(Y_hat) - gram_Y.detach()).mean()


def tv_loss(Y_hat):
    return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram):
    contents_l = [content_loss(Y_hat, Y) * CONTENT_WEIGHT for Y_hat, Y in zip(
        contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * STYLE_WEIGHT for Y_hat, Y in zip(
        styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * TV_WEIGHT
    l = sum(10 * styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


class SynthesizedImage(nn.Module):
    def __init__(self, img_shape):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(*img_shape))

    def forward(self):
        return self.weight


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="300x450", help="HxW")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    h, w = (int(v) for v in a.size.lower().split("x"))

    vgg = torchvision.models.vgg19(weights=None)
    net = nn.Sequential(*[vgg.features[i] for i in range(max(CONTENT_LAYERS + STYLE_LAYERS) + 1)])
    for p in net.parameters():
        p.requires_grad_(False)
    net.eval()

    content_X = torch.randn(1, 3, h, w)
    style_X = torch.randn(1, 3, h, w)
    contents_Y, _ = extract_features(net, content_X, CONTENT_LAYERS, STYLE_LAYERS)
    _, styles_Y = extract_features(net, style_X, CONTENT_LAYERS, STYLE_LAYERS)
    gen_img = SynthesizedImage(content_X.shape)
    gen_img.weight.data.copy_(content_X.data)
    trainer = torch.optim.Adam(gen_img.parameters(), lr=0.3)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, 50, 0.8)
    X = gen_img()

    def epoch():
        trainer.zero_grad()
        contents_Y_hat, styles_Y_hat = extract_features(net, X, CONTENT_LAYERS, STYLE_LAYERS)
        _, _, _, l = compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
        l.backward()
        trainer.step()
        scheduler.step()
        return l.item()

    for _ in range(a.warmup):
        epoch()
    times = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(
        peer="torch", workload="style_transfer", metric="seconds_per_epoch",
        value=round(statistics.median(times), 4), unit="s",
        mean_s=round(statistics.mean(times), 4), min_s=round(min(times), 4),
        epochs=a.epochs, warmup=a.warmup, threads=torch.get_num_threads(), device="cpu",
        size=[h, w], torch=torch.__version__)))


if __name__ == "__main__":
    main()
