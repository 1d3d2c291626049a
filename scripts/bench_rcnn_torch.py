#!/usr/bin/env python3
"""torchvision peer numbers for the Faster / Mask R-CNN training step and inference, on
the shapes of ``cargo bench -p d2l-models --bench rcnn_step``: a batch of 4 random
256x256 images with 2 random boxes (and box-shaped masks) each, a ResNet-18 body cut after
layer2 (stride 8, 128 channels), anchors 16/32/64/128 x ratios 0.5/1/2 on that one map,
RoI align 7x7 (14x14 for masks), TwoMLPHead(128*49, 256), mask head (128, 128), RPN
600/300 proposals in training (300/100 in testing), 128 anchors and 64 proposals sampled
per image, 3 classes. No resizing (min_size = max_size = 256). A training step is
zero_grad -> the model's losses summed -> backward -> SGD(lr 1e-3, momentum 0.9); inference
is eval mode under no_grad. Measurement protocol as the other bench_torch_*.py scripts
(``bench_protocol.measure``).

    /work/venv/bin/python scripts/bench_rcnn_torch.py --threads 2

Needs torchvision (0.29.2 with torch 2.15). Timings on a shared machine are indicative only.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
from bench_protocol import emit, measure, parse_args  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models import resnet18  # noqa: E402
from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402
from torchvision.models.detection import MaskRCNN  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, FasterRCNN, TwoMLPHead  # noqa: E402
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor  # noqa: E402
from torchvision.ops import MultiScaleRoIAlign  # noqa: E402


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = IntermediateLayerGetter(resnet18(), {"layer2": "0"})
        self.out_channels = 128

    def forward(self, x):
        return self.body(x)


def build(mask):
    common = dict(
        min_size=256, max_size=256,
        rpn_anchor_generator=AnchorGenerator(((16.0, 32.0, 64.0, 128.0),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(128 * 49, 256), box_predictor=FastRCNNPredictor(256, 3),
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128, box_batch_size_per_image=64,
    )
    if mask:
        return MaskRCNN(Backbone(), num_classes=None,
                        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
                        mask_head=MaskRCNNHeads(128, (128, 128), 1),
                        mask_predictor=MaskRCNNPredictor(128, 128, 3), **common)
    return FasterRCNN(Backbone(), num_classes=None, **common)


def main():
    args, only = parse_args(__doc__.split("\n")[0])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, s = 4, 256
    images = [torch.rand(3, s, s) for _ in range(b)]
    targets = []
    g = torch.Generator().manual_seed(0)
    for _ in range(b):
        xy = torch.floor(torch.rand(2, 2, generator=g) * 150)
        wh = 30 + torch.floor(torch.rand(2, 2, generator=g) * 70)
        boxes = torch.cat([xy, xy + wh], 1)
        masks = torch.zeros(2, s, s, dtype=torch.uint8)
        for k, bx in enumerate(boxes.int().tolist()):
            masks[k, bx[1]:bx[3], bx[0]:bx[2]] = 1
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks})
    for name, mask in [("faster-rcnn", False), ("mask-rcnn", True)]:
        if only and name not in only:
            continue
        m = build(mask)
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)

        def train_step():
            opt.zero_grad()
            loss = sum(m(images, targets).values())
            loss.backward()
            opt.step()

        r = measure(train_step, b)
        emit(args.threads, name, name, "train_images_per_s", "images/s", 1.0, r, batch=b, input=[3, s, s])
        m.eval()

        def infer_step():
            with torch.no_grad():
                m(images)

        r = measure(infer_step, b)
        emit(args.threads, name, name, "infer_images_per_s", "images/s", 1.0, r, batch=b, input=[3, s, s])


if __name__ == "__main__":
    main()
