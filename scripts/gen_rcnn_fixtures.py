#!/usr/bin/env python3
"""torchvision reference values for d2l-models' Faster R-CNN and Mask R-CNN parts
(crates/d2l-models/tests/rcnn.rs, D2L 13.8).

Writes crates/d2l-models/tests/fixtures/rcnn/*.safetensors (float32 unless noted):

* parts.safetensors — the parts on small random inputs, each through torchvision's own
  code: box coding with weights (1,1,1,1) and (10,10,5,5) (`BoxCoder.encode/decode`), the
  anchors (`AnchorGenerator`), the RPN head (`RPNHead`), proposal filtering
  (`RegionProposalNetwork.filter_proposals`: top-k, decode, clip, small boxes, NMS,
  post-NMS top-k), anchor matching (`Matcher` with low-quality matches), the RPN loss, the
  RoI head (`MultiScaleRoIAlign` → `TwoMLPHead` → `FastRCNNPredictor`), the proposal
  matching of the RoI head, `fastrcnn_loss`, `postprocess_detections`, the mask head
  (`MultiScaleRoIAlign(14)` → `MaskRCNNHeads` → `MaskRCNNPredictor`) and `maskrcnn_loss`
  with `project_masks_on_boxes`.
  Sampling of positives and negatives is random in torchvision; here the sampler is
  replaced by a fixed selection (the first `k` positives and negatives in index order,
  `FirstK` below), which the Rust test reproduces; the random sampler is tested
  statistically in Rust.
* model.safetensors — a randomly initialised torchvision `MaskRCNN` (which holds a
  `FasterRCNN`) with a reduced configuration, its `state_dict` under torchvision's names,
  an input image and the model's eval outputs (boxes, scores, labels, mask probabilities),
  and its training losses with the fixed sampler. The reduced configuration keeps the
  fixture small: the ResNet-18 body is cut after `layer1` (stride 4, 64 channels) instead
  of `fasterrcnn_resnet50_fpn`'s ResNet-50 + FPN, representation size 16, mask head
  layers (16, 16), weights rounded to bfloat16 (the model computes with the rounded
  values). The parameter names of the RPN and RoI heads are those of
  `fasterrcnn_resnet50_fpn` / `maskrcnn_resnet50_fpn`.

Needs torchvision (0.29.2 loads with torch 2.15) and safetensors:
    /work/venv/bin/pip install torchvision==0.29.2 --no-deps pillow safetensors
Usage: /work/venv/bin/python scripts/gen_rcnn_fixtures.py
"""
import math
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet18
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_loss,
)
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "d2l-models", "tests", "fixtures", "rcnn"
)


class FirstK:
    """The fixed selection used in place of BalancedPositiveNegativeSampler: per image the
    first min(#pos, batch*frac) positives and the first min(#neg, batch - #pos taken)
    negatives, in index order."""

    def __init__(self, batch, frac):
        self.batch, self.frac = batch, frac

    def __call__(self, matched_idxs):
        pos_out, neg_out = [], []
        for m in matched_idxs:
            pos = torch.where(m >= 1)[0]
            neg = torch.where(m == 0)[0]
            npos = min(pos.numel(), int(self.batch * self.frac))
            nneg = min(neg.numel(), self.batch - npos)
            pm = torch.zeros_like(m, dtype=torch.uint8)
            nm = torch.zeros_like(m, dtype=torch.uint8)
            pm[pos[:npos]] = 1
            nm[neg[:nneg]] = 1
            pos_out.append(pm)
            neg_out.append(nm)
        return pos_out, neg_out


def rand_boxes(g, n, size, min_side=4.0):
    xy = torch.rand(n, 2, generator=g) * (size - min_side - 1)
    wh = min_side + torch.rand(n, 2, generator=g) * (size - xy - min_side)
    return torch.cat([xy, xy + wh], 1)


def parts():
    g = torch.Generator().manual_seed(27)
    t = OrderedDict()
    img = 64
    # ---- box coding
    props = rand_boxes(g, 12, img)
    gts = rand_boxes(g, 12, img)
    rel = torch.randn(12, 8, generator=g) * 0.5
    rel[0, 2] = 7.0  # past the clip log(1000/16)
    t["coder.proposals"] = props
    t["coder.gt"] = gts
    t["coder.rel"] = rel
    for name, w in [("rpn", (1.0, 1.0, 1.0, 1.0)), ("head", (10.0, 10.0, 5.0, 5.0))]:
        c = det_utils.BoxCoder(w)
        t[f"coder.{name}.encoded"] = c.encode_single(gts, props)
        t[f"coder.{name}.decoded"] = c.decode(rel, [props]).reshape(12, 8)

    # ---- anchors and RPN head over one 8x8 feature map of a 64x64 image (stride 8)
    C, H, W = 16, 8, 8
    sizes, ratios = (16.0, 32.0), (0.5, 1.0, 2.0)
    ag = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
    feat = torch.randn(2, C, H, W, generator=g)
    images = ImageList(torch.zeros(2, 3, img, img), [(img, img), (60, 56)])
    anchors = ag(images, [feat])
    t["rpn.feature"] = feat
    t["rpn.anchors"] = anchors[0]
    head = RPNHead(C, ag.num_anchors_per_location()[0])
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    for k, v in head.state_dict().items():
        t[f"rpn.head.{k}"] = v
    obj, deltas = head([feat])
    t["rpn.objectness"] = obj[0].detach()
    t["rpn.deltas"] = deltas[0].detach()

    # ---- proposal filtering (eval settings: pre 100, post 20)
    rpn = RegionProposalNetwork(
        ag, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=32,
        positive_fraction=0.5, pre_nms_top_n=dict(training=100, testing=100),
        post_nms_top_n=dict(training=20, testing=20), nms_thresh=0.7, score_thresh=0.0,
    )
    rpn.eval()
    with torch.no_grad():
        props_out, _ = rpn(images, OrderedDict([("0", feat)]))
    for i, p in enumerate(props_out):
        t[f"rpn.proposals.{i}"] = p
    # the scores of those proposals (filter_proposals returns them)
    num_images = 2
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    o2, d2 = concat_box_prediction_layers(obj, deltas)
    proposals = rpn.box_coder.decode(d2.detach(), anchors).view(num_images, -1, 4)
    boxes, scores = rpn.filter_proposals(proposals, o2.detach(), images.image_sizes, [H * W * 6])
    for i, s in enumerate(scores):
        t[f"rpn.scores.{i}"] = s

    # ---- anchor matching and the RPN loss (fixed selection)
    tgts = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 34.0]])},
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0]])},
    ]
    for i, tg in enumerate(tgts):
        t[f"targets.{i}.boxes"] = tg["boxes"]
    labels, matched = rpn.assign_targets_to_anchors(anchors, tgts)
    for i, (l, m) in enumerate(zip(labels, matched)):
        t[f"rpn.match.labels.{i}"] = l
    reg = rpn.box_coder.encode(matched, anchors)
    rpn.fg_bg_sampler = FirstK(32, 0.5)
    lo, lb = rpn.compute_loss(o2, d2, labels, reg)
    t["rpn.loss.objectness"] = lo.detach().reshape(1)
    t["rpn.loss.box"] = lb.detach().reshape(1)

    # ---- the RoI head: pooling (7x7, sampling 2) -> TwoMLPHead -> predictor
    nc = 3  # background + 2
    rep = 24
    box_pool = MultiScaleRoIAlign(["0"], 7, 2)
    box_head = TwoMLPHead(C * 49, rep)
    box_pred = FastRCNNPredictor(rep, nc)
    mask_pool = MultiScaleRoIAlign(["0"], 14, 2)
    mask_head = MaskRCNNHeads(C, (8, 8), 1)
    mask_pred = MaskRCNNPredictor(8, 6, nc)
    roi = RoIHeads(
        box_pool, box_head, box_pred, 0.5, 0.5, 16, 0.25, (10.0, 10.0, 5.0, 5.0),
        0.05, 0.5, 10, mask_roi_pool=mask_pool, mask_head=mask_head, mask_predictor=mask_pred,
    )
    with torch.no_grad():
        for p in roi.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    for k, v in roi.state_dict().items():
        t[f"roi.{k}"] = v
    rois = [props_out[0][:10], props_out[1][:10]]
    for i, r in enumerate(rois):
        t[f"roi.proposals.{i}"] = r
    fmap = OrderedDict([("0", feat)])
    with torch.no_grad():
        pooled = box_pool(fmap, rois, images.image_sizes)
        hid = box_head(pooled)
        logits, regr = box_pred(hid)
    t["roi.pooled"] = pooled
    t["roi.class_logits"] = logits
    t["roi.box_regression"] = regr
    # eval: postprocess_detections
    with torch.no_grad():
        b, s, l = roi.postprocess_detections(logits, regr, rois, images.image_sizes)
    for i in range(2):
        t[f"roi.det.{i}.boxes"] = b[i]
        t[f"roi.det.{i}.scores"] = s[i]
        t[f"roi.det.{i}.labels"] = l[i]
    # training: matching with gt added, fixed selection, losses
    tgts_l = [
        {"boxes": tgts[0]["boxes"], "labels": torch.tensor([1, 2]),
         "masks": (torch.rand(2, img, img, generator=g) > 0.5).to(torch.uint8)},
        {"boxes": tgts[1]["boxes"], "labels": torch.tensor([2]),
         "masks": (torch.rand(1, img, img, generator=g) > 0.5).to(torch.uint8)},
    ]
    for i, tg in enumerate(tgts_l):
        t[f"targets.{i}.labels"] = tg["labels"]
        t[f"targets.{i}.masks"] = tg["masks"]
    roi.fg_bg_sampler = FirstK(16, 0.25)
    sp, smatched, slabels, sreg = roi.select_training_samples(
        [r.clone() for r in rois], tgts_l
    )
    for i in range(2):
        t[f"roi.train.{i}.proposals"] = sp[i]
        t[f"roi.train.{i}.labels"] = slabels[i]
        t[f"roi.train.{i}.matched"] = smatched[i]
        t[f"roi.train.{i}.regression_targets"] = sreg[i]
    tl, tr = box_pred(box_head(box_pool(fmap, sp, images.image_sizes)))
    cls_loss, box_loss = fastrcnn_loss(tl, tr, slabels, sreg)
    t["roi.loss.classifier"] = cls_loss.detach().reshape(1)
    t["roi.loss.box_reg"] = box_loss.detach().reshape(1)
    # masks on the positive samples
    pos_props, pos_matched = [], []
    for i in range(2):
        pos = torch.where(slabels[i] > 0)[0]
        pos_props.append(sp[i][pos])
        pos_matched.append(smatched[i][pos])
    mf = mask_head(mask_pool(fmap, pos_props, images.image_sizes))
    ml = mask_pred(mf)
    t["mask.logits"] = ml.detach()
    gt_masks = [tg["masks"] for tg in tgts_l]
    gt_labels = [tg["labels"] for tg in tgts_l]
    mloss = maskrcnn_loss(ml, pos_props, gt_masks, gt_labels, pos_matched)
    t["mask.loss"] = mloss.detach().reshape(1)
    from torchvision.models.detection.roi_heads import project_masks_on_boxes
    t["mask.targets.0"] = project_masks_on_boxes(gt_masks[0], pos_props[0], pos_matched[0], 28)
    return t


def model():
    g = torch.Generator().manual_seed(1327)
    torch.manual_seed(1327)
    body = resnet18()
    body = IntermediateLayerGetter(body, {"layer1": "0"})
    backbone = nn.Module()
    backbone.body = body
    backbone.out_channels = 64

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body
            self.out_channels = 64

        def forward(self, x):
            return self.body(x)

    backbone = Backbone()
    ag = AnchorGenerator(sizes=((16.0, 32.0),), aspect_ratios=((0.5, 1.0, 2.0),))
    m = MaskRCNN(
        backbone, num_classes=None, min_size=64, max_size=64,
        rpn_anchor_generator=ag,
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        box_head=TwoMLPHead(64 * 49, 16), box_predictor=FastRCNNPredictor(16, 3),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
        mask_head=MaskRCNNHeads(64, (16, 16), 1), mask_predictor=MaskRCNNPredictor(16, 16, 3),
        rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50,
        rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=50,
        rpn_batch_size_per_image=64, box_batch_size_per_image=32,
        box_score_thresh=0.0, box_detections_per_img=20,
    )
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_((torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(max(1, p[0].numel())))))
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith(".weight") or name.endswith(".bias"):  # frozen BN
                b.copy_(torch.randn(b.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
        for p in list(m.parameters()) + list(m.buffers()):
            if p.dtype == torch.float32:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    t = OrderedDict()
    for k, v in m.state_dict().items():
        if v.dtype == torch.float32:
            t["state." + k] = v.to(torch.bfloat16)
        else:
            t["state." + k] = v
    x = torch.rand(3, 64, 64, generator=g)
    t["input"] = x
    m.eval()
    with torch.no_grad():
        out = m([x])[0]
        # the backbone feature (after GeneralizedRCNNTransform's normalisation)
        il, _ = m.transform([x])
        feat = m.backbone(il.tensors)["0"]
        props, _ = m.rpn(il, OrderedDict([("0", feat)]))
    t["out.feature"] = feat[:, :8]  # the first 8 of 64 channels keep the fixture small
    t["out.proposals"] = props[0]
    t["out.boxes"] = out["boxes"]
    t["out.scores"] = out["scores"]
    t["out.labels"] = out["labels"]
    t["out.masks"] = out["masks"][:4]
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    p = parts()
    save_file({k: v.detach().clone().contiguous() for k, v in p.items()}, os.path.join(OUT, "parts.safetensors"))
    mm = model()
    save_file({k: v.detach().clone().contiguous() for k, v in mm.items()}, os.path.join(OUT, "model.safetensors"))
    for name in ["parts", "model"]:
        path = os.path.join(OUT, f"{name}.safetensors")
        print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
