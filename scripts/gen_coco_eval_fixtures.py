#!/usr/bin/env python3
"""pycocotools reference values for d2l-vision's COCO-style mAP (tests/coco_eval.rs).

Writes crates/d2l-vision/tests/fixtures/coco_eval.txt: random ground truth and noisy
detections (boxes and 24x24 binary masks) over a few images and classes, and the AP
pycocotools' COCOeval reports for them (iouType "bbox" and "segm": AP@[.5:.95] = stats[0],
AP@.5 = stats[1], AP@.75 = stats[2], area range "all", maxDets 100).

Plain text, one record a line:
    case NAME
    gt IMAGE CLASS X1 Y1 X2 Y2 [MASK as 0/1 string, row by row]
    dt IMAGE CLASS SCORE X1 Y1 X2 Y2 [MASK]
    bbox AP AP50 AP75
    segm AP AP50 AP75
    end

Needs pycocotools: /work/venv/bin/pip install pycocotools
Usage: /work/venv/bin/python scripts/gen_coco_eval_fixtures.py
"""
import contextlib
import io
import os

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "d2l-vision", "tests", "fixtures", "coco_eval.txt"
)
S = 24


def box_mask(b, rng):
    m = np.zeros((S, S), dtype=np.uint8)
    x1, y1, x2, y2 = [int(round(v)) for v in b]
    m[y1:y2, x1:x2] = 1
    # knock out a few pixels so masks differ from boxes
    m[rng.random((S, S)) < 0.05] = 0
    return m


def case(rng, n_images, n_classes, with_masks):
    gts, dts = [], []
    for img in range(n_images):
        for _ in range(rng.integers(1, 4)):
            c = int(rng.integers(1, n_classes + 1))
            x1, y1 = rng.uniform(0, S - 10, 2)
            w, h = rng.uniform(6, max(6.5, S - max(x1, y1)), 2)
            b = [float(x1), float(y1), float(min(x1 + w, S)), float(min(y1 + h, S))]
            b = [round(v * 4) / 4 for v in b]
            gts.append((img, c, b, box_mask(b, rng) if with_masks else None))
    for img, c, b, _ in gts:
        for _ in range(rng.integers(0, 3)):
            jitter = rng.normal(0, 0.8, 4)
            nb = [min(max(v + j, 0.0), S) for v, j in zip(b, jitter)]
            if nb[2] - nb[0] < 1 or nb[3] - nb[1] < 1:
                continue
            nb = [round(v * 4) / 4 for v in nb]
            cc = c if rng.random() < 0.8 else int(rng.integers(1, n_classes + 1))
            dts.append((img, cc, round(float(rng.random()), 4), nb, box_mask(nb, rng) if with_masks else None))
    for img in range(n_images):  # pure false positives
        for _ in range(rng.integers(0, 2)):
            x1, y1 = rng.uniform(0, S - 6, 2)
            nb = [round(float(v) * 4) / 4 for v in (x1, y1, x1 + 5, y1 + 5)]
            dts.append((img, int(rng.integers(1, n_classes + 1)), round(float(rng.random()), 4), nb,
                        box_mask(nb, rng) if with_masks else None))
    return gts, dts


def coco_eval(gts, dts, iou_type):
    images = sorted({g[0] for g in gts} | {d[0] for d in dts})
    cats = sorted({g[1] for g in gts} | {d[1] for d in dts})
    ann = []
    for k, (img, c, b, m) in enumerate(gts):
        a = {"id": k + 1, "image_id": img, "category_id": c, "iscrowd": 0,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])}
        if iou_type == "segm":
            rle = mask_utils.encode(np.asfortranarray(m))
            a["segmentation"] = rle
            a["area"] = float(mask_utils.area(rle))
        ann.append(a)
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": S, "height": S} for i in images],
                  "annotations": ann, "categories": [{"id": c} for c in cats]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = []
        for img, c, s, b, m in dts:
            r = {"image_id": img, "category_id": c, "score": s,
                 "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            if iou_type == "segm":
                r["segmentation"] = mask_utils.encode(np.asfortranarray(m))
                del r["bbox"]
            res.append(r)
        dt = gt.loadRes(res)
        e = COCOeval(gt, dt, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[0], e.stats[1], e.stats[2]


def mask_str(m):
    return "".join(str(int(v)) for v in m.flatten())


def main():
    rng = np.random.default_rng(1327)
    lines = []
    for name, n_img, n_cls, masks in [("one-class", 4, 1, True), ("three-classes", 6, 3, True),
                                      ("many", 12, 2, False)]:
        gts, dts = case(rng, n_img, n_cls, masks)
        lines.append(f"case {name}")
        for img, c, b, m in gts:
            lines.append(f"gt {img} {c} " + " ".join(map(str, b)) + (f" {mask_str(m)}" if masks else ""))
        for img, c, s, b, m in dts:
            lines.append(f"dt {img} {c} {s} " + " ".join(map(str, b)) + (f" {mask_str(m)}" if masks else ""))
        lines.append("bbox " + " ".join(repr(float(v)) for v in coco_eval(gts, dts, "bbox")))
        if masks:
            lines.append("segm " + " ".join(repr(float(v)) for v in coco_eval(gts, dts, "segm")))
        lines.append("end")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
