//! The non-learned parts of Faster R-CNN and Mask R-CNN, as torchvision computes them:
//! box coding, anchors, anchor/proposal matching, positive/negative sampling, proposal
//! filtering and detection post-processing. They work on plain `f32` slices of boxes in
//! corner format `[x1, y1, x2, y2]` (pixels of the input image): none of them is
//! differentiable in torchvision either (proposals and targets are detached).

use d2l_tensor::{Generator, Tensor};
use d2l_vision::detection::box_iou_pair;

/// One box, corner format, pixels.
pub type Box4 = [f32; 4];

/// torchvision's `BoxCoder`: box deltas `(dx, dy, dw, dh)` relative to a reference box,
/// scaled by `weights` (`(1, 1, 1, 1)` for the RPN, `(10, 10, 5, 5)` for the RoI head).
/// Decoding clamps `dw`, `dh` at `log(1000 / 16)` so `exp` cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCoder {
    /// `(wx, wy, ww, wh)`.
    pub weights: [f32; 4],
    /// The largest `dw`, `dh` decoding uses (`log(1000/16)`).
    pub clip: f32,
}

/// The RPN's coder: weights (1, 1, 1, 1).
pub const RPN_CODER: BoxCoder = BoxCoder {
    weights: [1.0, 1.0, 1.0, 1.0],
    clip: 4.135_166_6,
};
/// The RoI head's coder: weights (10, 10, 5, 5).
pub const HEAD_CODER: BoxCoder = BoxCoder {
    weights: [10.0, 10.0, 5.0, 5.0],
    clip: 4.135_166_6,
};

impl BoxCoder {
    /// The deltas that take `reference` to `gt` (`encode_single(gt, reference)`).
    pub fn encode(&self, gt: &Box4, reference: &Box4) -> [f32; 4] {
        let [wx, wy, ww, wh] = self.weights;
        let ex_w = reference[2] - reference[0];
        let ex_h = reference[3] - reference[1];
        let ex_cx = reference[0] + 0.5 * ex_w;
        let ex_cy = reference[1] + 0.5 * ex_h;
        let gt_w = gt[2] - gt[0];
        let gt_h = gt[3] - gt[1];
        let gt_cx = gt[0] + 0.5 * gt_w;
        let gt_cy = gt[1] + 0.5 * gt_h;
        [
            wx * (gt_cx - ex_cx) / ex_w,
            wy * (gt_cy - ex_cy) / ex_h,
            ww * (gt_w / ex_w).ln(),
            wh * (gt_h / ex_h).ln(),
        ]
    }

    /// The box `deltas` give when applied to `reference` (`decode_single`).
    pub fn decode(&self, deltas: &[f32], reference: &Box4) -> Box4 {
        let [wx, wy, ww, wh] = self.weights;
        let w = reference[2] - reference[0];
        let h = reference[3] - reference[1];
        let cx = reference[0] + 0.5 * w;
        let cy = reference[1] + 0.5 * h;
        let dx = deltas[0] / wx;
        let dy = deltas[1] / wy;
        let dw = (deltas[2] / ww).min(self.clip);
        let dh = (deltas[3] / wh).min(self.clip);
        let pcx = dx * w + cx;
        let pcy = dy * h + cy;
        let pw = dw.exp() * w;
        let ph = dh.exp() * h;
        let (hw, hh) = (0.5 * pw, 0.5 * ph);
        [pcx - hw, pcy - hh, pcx + hw, pcy + hh]
    }
}

/// torchvision's `AnchorGenerator` for one feature map: the 13.4 idea (every pixel of the
/// map gets boxes of every size and aspect ratio) with torchvision's conventions: base
/// anchors `round([-w, -h, w, h] / 2)` with `h = size·√r`, `w = size/√r`, ratio-major
/// order, shifted by `stride · (x, y)` (the top-left corner of each cell, not its centre).
/// Returns `H·W·A` boxes, location-major, anchor-minor.
pub fn grid_anchors(
    sizes: &[f32],
    ratios: &[f32],
    feature: (usize, usize),
    image: (usize, usize),
) -> Vec<Box4> {
    let mut base = Vec::new();
    for &r in ratios {
        let hr = r.sqrt();
        let wr = 1.0 / hr;
        for &s in sizes {
            let (ws, hs) = (wr * s, hr * s);
            base.push([
                (-ws / 2.0).round_ties_even(),
                (-hs / 2.0).round_ties_even(),
                (ws / 2.0).round_ties_even(),
                (hs / 2.0).round_ties_even(),
            ]);
        }
    }
    let (fh, fw) = feature;
    let sy = (image.0 / fh.max(1)) as f32;
    let sx = (image.1 / fw.max(1)) as f32;
    let mut out = Vec::with_capacity(fh * fw * base.len());
    for y in 0..fh {
        for x in 0..fw {
            let (ox, oy) = (x as f32 * sx, y as f32 * sy);
            for b in &base {
                out.push([b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy]);
            }
        }
    }
    out
}

/// Clips boxes to an image of `(height, width)` (`clip_boxes_to_image`).
pub fn clip_box(b: &Box4, size: (usize, usize)) -> Box4 {
    let (h, w) = (size.0 as f32, size.1 as f32);
    [
        b[0].clamp(0.0, w),
        b[1].clamp(0.0, h),
        b[2].clamp(0.0, w),
        b[3].clamp(0.0, h),
    ]
}

/// Whether a box is at least `min_size` wide and high (`remove_small_boxes` keeps these).
pub fn big_enough(b: &Box4, min_size: f32) -> bool {
    b[2] - b[0] >= min_size && b[3] - b[1] >= min_size
}

/// Greedy NMS within each group (`batched_nms`): a box is dropped when its IoU with a
/// higher-scoring kept box of the same group is above `threshold`. Returns the kept
/// indices by descending score (ties: lower index first).
pub fn batched_nms(boxes: &[Box4], scores: &[f32], groups: &[usize], threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    let mut keep: Vec<usize> = Vec::new();
    for &i in &order {
        let clash = keep
            .iter()
            .any(|&k| groups[k] == groups[i] && box_iou_pair(boxes[k], boxes[i]) > threshold);
        if !clash {
            keep.push(i);
        }
    }
    keep
}

/// The IoU matrix `(gt, boxes)` as rows.
pub fn iou_matrix(gt: &[Box4], boxes: &[Box4]) -> Vec<Vec<f32>> {
    gt.iter()
        .map(|g| boxes.iter().map(|b| box_iou_pair(*g, *b)).collect())
        .collect()
}

/// A box matched below the low threshold (background).
pub const BELOW_LOW: i64 = -1;
/// A box matched between the thresholds (ignored).
pub const BETWEEN: i64 = -2;

/// torchvision's `Matcher`: every box gets the index of its best ground-truth box, or
/// [`BELOW_LOW`] (best IoU below `low`) or [`BETWEEN`] (in `[low, high)`). With
/// `allow_low_quality`, every box that is some ground truth's best match (ties included)
/// keeps its match whatever its IoU. With no ground truth every box is background.
pub fn match_boxes(
    gt: &[Box4],
    boxes: &[Box4],
    high: f32,
    low: f32,
    allow_low_quality: bool,
) -> Vec<i64> {
    if gt.is_empty() {
        return vec![BELOW_LOW; boxes.len()];
    }
    let q = iou_matrix(gt, boxes);
    let mut matches = vec![0i64; boxes.len()];
    let mut vals = vec![0f32; boxes.len()];
    for j in 0..boxes.len() {
        let (mut best, mut bi) = (q[0][j], 0);
        for (i, row) in q.iter().enumerate().skip(1) {
            if row[j] > best {
                best = row[j];
                bi = i;
            }
        }
        vals[j] = best;
        matches[j] = bi as i64;
    }
    let original = matches.clone();
    for j in 0..boxes.len() {
        if vals[j] < low {
            matches[j] = BELOW_LOW;
        } else if vals[j] < high {
            matches[j] = BETWEEN;
        }
    }
    if allow_low_quality {
        for row in &q {
            let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for (j, &v) in row.iter().enumerate() {
                if v == best {
                    matches[j] = original[j];
                }
            }
        }
    }
    matches
}

/// How positives and negatives are picked for a loss (`BalancedPositiveNegativeSampler`).
#[derive(Debug)]
pub enum Sampling<'a> {
    /// torchvision's random choice: a random `min(#pos, batch·fraction)` positives and
    /// `min(#neg, batch − that)` negatives, drawn from `gen`.
    Random(&'a mut Generator),
    /// The same counts, but the first positives and negatives in index order: a fixed
    /// selection (used to compare with torchvision under the same choice).
    First,
}

/// Picks positives (`labels >= 1`) and negatives (`labels == 0`; `-1` is ignored) for one
/// image: `min(#pos, ⌊batch·fraction⌋)` positives and `min(#neg, batch − #pos taken)`
/// negatives. Returns (positive indices, negative indices), each ascending.
pub fn sample_pos_neg(
    labels: &[i64],
    batch: usize,
    fraction: f32,
    sampling: &mut Sampling<'_>,
) -> (Vec<usize>, Vec<usize>) {
    let mut pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 1).collect();
    let mut neg: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 0).collect();
    let npos = pos.len().min((batch as f32 * fraction) as usize);
    let nneg = neg.len().min(batch - npos);
    if let Sampling::Random(g) = sampling {
        partial_shuffle(&mut pos, npos, g);
        partial_shuffle(&mut neg, nneg, g);
    }
    pos.truncate(npos);
    neg.truncate(nneg);
    pos.sort_unstable();
    neg.sort_unstable();
    (pos, neg)
}

/// Moves a uniform random `k`-subset of `v` to its front (Fisher–Yates, `k` steps).
fn partial_shuffle(v: &mut [usize], k: usize, g: &mut Generator) {
    for i in 0..k.min(v.len()) {
        let j = i + g.below((v.len() - i) as u64) as usize;
        v.swap(i, j);
    }
}

/// Proposal filtering of the RPN for one image (torchvision's `filter_proposals` with one
/// feature level): the `pre_nms_top_n` highest objectness logits, their decoded boxes
/// clipped to the image, boxes smaller than `min_size` removed, scores `sigmoid(logit)`
/// below `score_thresh` removed, NMS at `nms_thresh`, the first `post_nms_top_n` kept.
/// Returns (boxes, scores) by descending score.
#[allow(clippy::too_many_arguments)]
pub fn filter_proposals(
    boxes: &[Box4],
    logits: &[f32],
    image: (usize, usize),
    pre_nms_top_n: usize,
    post_nms_top_n: usize,
    nms_thresh: f32,
    score_thresh: f32,
    min_size: f32,
) -> (Vec<Box4>, Vec<f32>) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&i, &j| logits[j].total_cmp(&logits[i]).then(i.cmp(&j)));
    order.truncate(pre_nms_top_n);
    let mut b = Vec::new();
    let mut s = Vec::new();
    for &i in &order {
        let bx = clip_box(&boxes[i], image);
        let score = sigmoid(logits[i]);
        if big_enough(&bx, min_size) && score >= score_thresh {
            b.push(bx);
            s.push(score);
        }
    }
    let keep = batched_nms(&b, &s, &vec![0; b.len()], nms_thresh);
    let keep = &keep[..keep.len().min(post_nms_top_n)];
    (
        keep.iter().map(|&k| b[k]).collect(),
        keep.iter().map(|&k| s[k]).collect(),
    )
}

/// The logistic function, as torch computes it in f32.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One detection: box, score and class (1.. ; 0 is background).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Corner box in image pixels.
    pub bbox: Box4,
    /// Softmax probability of `label`.
    pub score: f32,
    /// The class, `1..num_classes`.
    pub label: usize,
    /// The proposal it came from (row of the RoI head's input).
    pub proposal: usize,
}

/// torchvision's `postprocess_detections` for one image: softmax over the class logits
/// `(K, C)`, class-specific boxes decoded from `regression` `(K, 4C)` against the
/// proposals with the head's coder and clipped, background dropped, scores `>
/// score_thresh` kept, boxes smaller than 0.01 removed, NMS per class at `nms_thresh`,
/// the `detections_per_img` best kept.
pub fn postprocess_detections(
    logits: &[f32],
    regression: &[f32],
    proposals: &[Box4],
    image: (usize, usize),
    score_thresh: f32,
    nms_thresh: f32,
    detections_per_img: usize,
) -> Vec<Detection> {
    let k = proposals.len();
    let c = logits.len().checked_div(k).unwrap_or(0);
    let mut cands = Vec::new();
    for (i, p) in proposals.iter().enumerate() {
        let row = &logits[i * c..(i + 1) * c];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|&v| (v - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        for cls in 1..c {
            let score = e[cls] / sum;
            let d = &regression[(i * c + cls) * 4..(i * c + cls + 1) * 4];
            let bx = clip_box(&HEAD_CODER.decode(d, p), image);
            if score > score_thresh && big_enough(&bx, 1e-2) {
                cands.push(Detection {
                    bbox: bx,
                    score,
                    label: cls,
                    proposal: i,
                });
            }
        }
    }
    let boxes: Vec<Box4> = cands.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    let groups: Vec<usize> = cands.iter().map(|d| d.label).collect();
    let keep = batched_nms(&boxes, &scores, &groups, nms_thresh);
    keep.iter()
        .take(detections_per_img)
        .map(|&i| cands[i])
        .collect()
}

/// Boxes as a `(K, 4)` tensor.
pub fn boxes_tensor(boxes: &[Box4]) -> d2l_tensor::Result<Tensor> {
    let v: Vec<f32> = boxes.iter().flatten().copied().collect();
    Tensor::from_vec(v, &[boxes.len(), 4])
}

/// A `(K, 4)` tensor as boxes.
pub fn tensor_boxes(t: &Tensor) -> Vec<Box4> {
    t.to_vec::<f32>()
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}
