#!/usr/bin/env python3
"""PyTorch side of D2L 13.7 TinySSD: the book's network, anchors, anchor labelling and
loss, written out so that d2l-rs can be compared with it.

    .venv/bin/python scripts/ssd_torch.py bench [--threads 2] [--batch 32]
    .venv/bin/python scripts/ssd_torch.py fixture OUT.safetensors

``bench`` times the book's training step (forward, ``multibox_target``, ``calc_loss``,
backward, SGD lr 0.2 with weight decay 5e-4) on one synthetic batch made once (pixels
uniform in 0..255, one random box per image, seed 0) with the WORKLOADS protocol of
``bench_protocol.py``, and prints one JSON line (``train_images_per_s``), and also the
share of the step taken by ``multibox_target``. ``d2l bench tiny-ssd`` is the d2l-rs side.

``fixture`` sets a TinySSD(2)'s weights by a formula the Rust test repeats
(``formula_init``), runs a 2×3×64×64 input in training mode and writes the input, the
forward outputs (anchors, cls_preds, bbox_preds), the targets and the per-example loss for
fixed labels, for crates/d2l-train/tests/ssd.rs.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
RATIOS = [[1, 2, 0.5]] * 5


def multibox_prior(h, w, sizes, ratios):
    n, m = len(sizes), len(ratios)
    sizes_t, ratios_t = torch.tensor(sizes), torch.tensor(ratios)
    cy = (torch.arange(h) + 0.5) / h
    cx = (torch.arange(w) + 0.5) / w
    sy, sx = torch.meshgrid(cy, cx, indexing="ij")
    sy, sx = sy.reshape(-1), sx.reshape(-1)
    ws = torch.cat((sizes_t * math.sqrt(ratios[0]), sizes[0] * torch.sqrt(ratios_t[1:]))) * h / w
    hs = torch.cat((sizes_t / math.sqrt(ratios[0]), sizes[0] / torch.sqrt(ratios_t[1:])))
    half = torch.stack((-ws, -hs, ws, hs)).T.repeat(h * w, 1) / 2
    centres = torch.stack([sx, sy, sx, sy], dim=1).repeat_interleave(n + m - 1, dim=0)
    return (centres + half).unsqueeze(0)


def box_iou(a, b):
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    ul = torch.max(a[:, None, :2], b[:, :2])
    lr = torch.min(a[:, None, 2:], b[:, 2:])
    inter = (lr - ul).clamp(min=0).prod(dim=2)
    return inter / (area(a)[:, None] + area(b) - inter)


def assign(gt, anchors, thr=0.5):
    na, ng = anchors.shape[0], gt.shape[0]
    iou = box_iou(anchors, gt)
    amap = torch.full((na,), -1, dtype=torch.long)
    best, idx = torch.max(iou, dim=1)
    keep = torch.nonzero(best >= thr).reshape(-1)
    amap[keep] = idx[keep]
    col, row = torch.full((na,), -1.0), torch.full((ng,), -1.0)
    for _ in range(ng):
        k = torch.argmax(iou)
        j, i = (k % ng).long(), (k // ng).long()
        amap[i] = j
        iou[:, j] = col
        iou[i, :] = row
    return amap


def to_center(b):
    return torch.stack(((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                        b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), dim=1)


def offsets(anchors, assigned, eps=1e-6):
    a, g = to_center(anchors), to_center(assigned)
    return torch.cat([10 * (g[:, :2] - a[:, :2]) / a[:, 2:], 5 * torch.log(eps + g[:, 2:] / a[:, 2:])], 1)


def multibox_target(anchors, labels):
    anchors = anchors.squeeze(0)
    out_off, out_mask, out_cls = [], [], []
    for lab in labels:
        amap = assign(lab[:, 1:], anchors)
        mask = (amap >= 0).float().unsqueeze(-1).repeat(1, 4)
        cls = torch.zeros(anchors.shape[0], dtype=torch.long)
        boxes = torch.zeros_like(anchors)
        pos = torch.nonzero(amap >= 0).reshape(-1)
        cls[pos] = lab[amap[pos], 0].long() + 1
        boxes[pos] = lab[amap[pos], 1:]
        out_off.append((offsets(anchors, boxes) * mask).reshape(-1))
        out_mask.append(mask.reshape(-1))
        out_cls.append(cls)
    return torch.stack(out_off), torch.stack(out_mask), torch.stack(out_cls)


def down_sample_blk(i, o):
    blk = []
    for _ in range(2):
        blk += [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        i = o
    return nn.Sequential(*blk, nn.MaxPool2d(2))


class TinySSD(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        chans = [64, 128, 128, 128, 128]
        for i in range(5):
            if i == 0:
                blk = nn.Sequential(down_sample_blk(3, 16), down_sample_blk(16, 32), down_sample_blk(32, 64))
            elif i == 1:
                blk = down_sample_blk(64, 128)
            elif i == 4:
                blk = nn.AdaptiveMaxPool2d((1, 1))
            else:
                blk = down_sample_blk(128, 128)
            setattr(self, f"blk_{i}", blk)
            setattr(self, f"cls_{i}", nn.Conv2d(chans[i], 4 * (num_classes + 1), 3, padding=1))
            setattr(self, f"bbox_{i}", nn.Conv2d(chans[i], 16, 3, padding=1))
        self._anchors = {}

    def forward(self, x):
        anchors, cls, bbox = [], [], []
        for i in range(5):
            x = getattr(self, f"blk_{i}")(x)
            anchors.append((x.shape[2], x.shape[3]))
            cls.append(getattr(self, f"cls_{i}")(x).permute(0, 2, 3, 1).flatten(1))
            bbox.append(getattr(self, f"bbox_{i}")(x).permute(0, 2, 3, 1).flatten(1))
        key = tuple(anchors)
        if key not in self._anchors:
            self._anchors[key] = torch.cat([multibox_prior(h, w, s, r) for (h, w), s, r
                                            in zip(anchors, SIZES, RATIOS)], dim=1)
        cls = torch.cat(cls, 1)
        return self._anchors[key], cls.reshape(cls.shape[0], -1, self.num_classes + 1), torch.cat(bbox, 1)


def calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks):
    b, c = cls_preds.shape[0], cls_preds.shape[2]
    cls = F.cross_entropy(cls_preds.reshape(-1, c), cls_labels.reshape(-1), reduction="none").reshape(b, -1).mean(1)
    box = F.l1_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none").mean(1)
    return cls + box


def synthetic_batch(batch, side, g):
    x = torch.rand(batch, 3, side, side, generator=g) * 255
    lo = torch.rand(batch, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(batch, 2, generator=g) * 0.3
    y = torch.cat([torch.zeros(batch, 1), lo, lo + wh], 1).unsqueeze(1)
    return x, y


def bench(args):
    from bench_protocol import emit, measure
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = TinySSD(1)
    g = torch.Generator().manual_seed(0)
    x, y = synthetic_batch(args.batch, 256, g)
    opt = torch.optim.SGD(net.parameters(), lr=0.2, weight_decay=5e-4)
    target_s = [0.0]

    def step():
        opt.zero_grad()
        anchors, cls, bbox = net(x)
        t = time.perf_counter()
        bl, bm, cl = multibox_target(anchors, y)
        target_s[0] += time.perf_counter() - t
        calc_loss(cls, cl, bbox, bl, bm).mean().backward()
        opt.step()

    net.train()
    t0 = time.perf_counter()
    r = measure(step, args.batch)
    total = time.perf_counter() - t0
    emit(torch.get_num_threads(), "tiny-ssd", "tiny-ssd", "train_images_per_s", "images/s", 1.0, r,
         batch=args.batch, input=[3, 256, 256], target_share=round(target_s[0] / total, 4))


# Parameters whose gradient of loss.mean() the fixture keeps: the first conv, a batch-norm
# scale deep in the net, and a class and a box predictor.
GRAD_CHECKED = ["blk_0.0.0.weight", "blk_1.4.weight", "cls_0.weight", "bbox_3.bias", "blk_3.0.bias"]


def formula_init(net):
    """Deterministic weights that the Rust test computes the same way (a committed
    fixture of a million weights would be 4 MB): for the parameter named ``name``, with
    ``salt`` = the sum of its bytes mod 97 and element index i, ``sin(0.7 i + salt)``
    scaled by 1/sqrt(fan_in) for weights of rank >= 2, ``1 + 0.1 sin(..)`` for batch-norm
    scales and ``0.1 sin(..)`` for every other vector."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            salt = sum(name.encode()) % 97
            i = torch.arange(p.numel(), dtype=torch.float64)
            v = torch.sin(0.7 * i + salt)
            if p.dim() >= 2:
                v = v / math.sqrt(p.numel() / p.shape[0])
            elif name.endswith(".weight"):
                v = 1 + 0.1 * v
            else:
                v = 0.1 * v
            p.copy_(v.to(torch.float32).reshape(p.shape))


def fixture(path):
    from safetensors.torch import save_file
    net = TinySSD(2)
    formula_init(net)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=g) * 255
    y = torch.tensor([[[0, 0.1, 0.1, 0.5, 0.6], [1, 0.55, 0.5, 0.95, 0.9]],
                      [[1, 0.2, 0.3, 0.7, 0.8], [-1, -1, -1, -1, -1]]])
    net.train()
    anchors, cls, bbox = net(x)
    # The padded row (class -1) is no object: drop it, as the Rust side does.
    bl, bm, cl = [], [], []
    for i in range(2):
        lab = y[i][y[i][:, 0] >= 0]
        o, m, c = multibox_target(anchors, lab.unsqueeze(0))
        bl.append(o), bm.append(m), cl.append(c)
    bl, bm, cl = torch.cat(bl), torch.cat(bm), torch.cat(cl)
    loss = calc_loss(cls, cl, bbox, bl, bm)
    loss.mean().backward()
    params = dict(net.named_parameters())
    grads = {f"grad.{n}": params[n].grad.contiguous() for n in GRAD_CHECKED}
    tensors = {**grads, "x": x, "labels": y, "anchors": anchors.contiguous(), "cls_preds": cls.detach().contiguous(),
               "bbox_preds": bbox.detach().contiguous(), "bbox_labels": bl, "bbox_masks": bm,
               "cls_labels": cl, "loss": loss.detach()}
    save_file(tensors, path)
    print(f"wrote {path}: {sum(v.numel() for v in tensors.values())} values; "
          f"TinySSD(1) has {sum(p.numel() for p in TinySSD(1).parameters())} parameters")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=32)
    f = sub.add_parser("fixture")
    f.add_argument("out")
    a = ap.parse_args()
    if a.cmd == "bench":
        bench(a)
    else:
        fixture(a.out)
