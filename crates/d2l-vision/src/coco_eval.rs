//! COCO-style mean average precision for detectors (the metric detection papers report,
//! and the one that compares TinySSD with Faster R-CNN, 13.7–13.8), for boxes and for
//! instance masks.
//!
//! As `pycocotools`' `COCOeval` with one area range ("all") and `maxDets = 100`: per class
//! and IoU threshold `t`, the detections of all images are taken by descending score (at
//! most 100 per image, the best); each is matched to the not yet matched ground truth of
//! its image and class with the highest IoU `>= t`, and counts as a true positive if one
//! exists, else a false positive. Precision is made non-increasing from the right, read
//! at the 101 recall points `0, 0.01, …, 1` (0 where the recall is never reached), and
//! averaged: that is the class's AP. mAP averages over the classes that have ground truth;
//! `AP@[.5:.95]` averages mAP over `t = 0.5, 0.55, …, 0.95`. The test suite compares the
//! numbers with `pycocotools` on fixed inputs. (Crowd regions and area ranges, which the
//! generated sets do not have, are not implemented.)

/// One detection of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalDetection {
    /// Index of the image.
    pub image: usize,
    /// Class id.
    pub class: usize,
    /// Confidence.
    pub score: f32,
    /// Corner box `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Binary mask (row by row, the image's size) for mask AP.
    pub mask: Option<Vec<bool>>,
}

/// One ground-truth object of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalTruth {
    /// Index of the image.
    pub image: usize,
    /// Class id.
    pub class: usize,
    /// Corner box `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Binary mask (row by row, the image's size) for mask AP.
    pub mask: Option<Vec<bool>>,
}

/// What to compare detections and ground truth by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IouKind {
    /// Box IoU.
    Box,
    /// Mask IoU (both sides need masks of one size).
    Mask,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct CocoMetrics {
    /// mAP at IoU 0.5.
    pub ap50: f64,
    /// mAP at IoU 0.75.
    pub ap75: f64,
    /// mAP averaged over IoU 0.5:0.95.
    pub ap: f64,
    /// Per class (those with ground truth), AP at 0.5 and over 0.5:0.95.
    pub per_class: Vec<(usize, f64, f64)>,
}

/// Mask IoU of two binary masks of one size.
pub fn mask_iou(a: &[bool], b: &[bool]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        inter += (x && y) as usize;
        union += (x || y) as usize;
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Box IoU as pycocotools computes it (`bbIou`: in f64, from `[x, y, w, h]`), so that
/// matches at an IoU threshold decide as theirs do.
fn box_iou_f64(d: &[f32; 4], g: &[f32; 4]) -> f64 {
    let xywh = |b: &[f32; 4]| {
        let b = b.map(f64::from);
        [b[0], b[1], b[2] - b[0], b[3] - b[1]]
    };
    let (d, g) = (xywh(d), xywh(g));
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    i / (d[2] * d[3] + g[2] * g[3] - i)
}

fn iou(kind: IouKind, d: &EvalDetection, g: &EvalTruth) -> f64 {
    match kind {
        IouKind::Box => box_iou_f64(&d.bbox, &g.bbox),
        IouKind::Mask => match (&d.mask, &g.mask) {
            (Some(a), Some(b)) => mask_iou(a, b),
            _ => 0.0,
        },
    }
}

/// The AP of one class at IoU threshold `t` (None when the class has no ground truth).
fn class_ap(dets: &[&EvalDetection], truths: &[&EvalTruth], t: f64, kind: IouKind) -> Option<f64> {
    if truths.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&i, &j| dets[j].score.total_cmp(&dets[i].score).then(i.cmp(&j)));
    let mut matched = vec![false; truths.len()];
    let mut tp = Vec::with_capacity(order.len());
    for &i in &order {
        let d = dets[i];
        let mut best = t.min(1.0 - 1e-10);
        let mut m = None;
        for (g, gt) in truths.iter().enumerate() {
            if gt.image != d.image || matched[g] {
                continue;
            }
            let v = iou(kind, d, gt);
            if v < best {
                continue;
            }
            best = v;
            m = Some(g);
        }
        if let Some(g) = m {
            matched[g] = true;
        }
        tp.push(m.is_some());
    }
    let npig = truths.len() as f64;
    let (mut ctp, mut cfp) = (0f64, 0f64);
    let mut rc = Vec::with_capacity(tp.len());
    let mut pr = Vec::with_capacity(tp.len());
    for &is_tp in &tp {
        if is_tp {
            ctp += 1.0;
        } else {
            cfp += 1.0;
        }
        rc.push(ctp / npig);
        pr.push(ctp / (ctp + cfp + f64::EPSILON));
    }
    for i in (1..pr.len()).rev() {
        if pr[i] > pr[i - 1] {
            pr[i - 1] = pr[i];
        }
    }
    let mut sum = 0.0;
    for k in 0..101 {
        // numpy's linspace(0, 1, 101) as pycocotools' recThrs: k·0.01, the last exactly 1.
        let r = if k == 100 { 1.0 } else { k as f64 * 0.01 };
        // searchsorted(rc, r, side="left")
        let idx = rc.partition_point(|&x| x < r);
        if idx < pr.len() {
            sum += pr[idx];
        }
    }
    Some(sum / 101.0)
}

/// The detections kept for evaluation: at most 100 per image, the best, image by image.
fn top_per_image(detections: &[EvalDetection]) -> Vec<&EvalDetection> {
    let mut per_image: std::collections::BTreeMap<usize, Vec<&EvalDetection>> = Default::default();
    for d in detections {
        per_image.entry(d.image).or_default().push(d);
    }
    let mut kept: Vec<&EvalDetection> = Vec::new();
    for (_, mut v) in per_image {
        v.sort_by(|a, b| b.score.total_cmp(&a.score));
        v.truncate(100);
        kept.extend(v);
    }
    kept
}

/// COCO-style mAP of `detections` against `truths` (module docs).
pub fn evaluate(detections: &[EvalDetection], truths: &[EvalTruth], kind: IouKind) -> CocoMetrics {
    let kept = top_per_image(detections);
    let mut classes: Vec<usize> = truths.iter().map(|g| g.class).collect();
    classes.sort_unstable();
    classes.dedup();
    // numpy's linspace(0.5, 0.95, 10), as pycocotools: i·step + 0.5, the last exactly 0.95.
    let step = (0.95f64 - 0.5) / 9.0;
    let thresholds: Vec<f64> = (0..10)
        .map(|i| if i == 9 { 0.95 } else { i as f64 * step + 0.5 })
        .collect();
    let mut per_class = Vec::new();
    let mut at = vec![0f64; thresholds.len()];
    for &c in &classes {
        let d: Vec<&EvalDetection> = kept.iter().copied().filter(|d| d.class == c).collect();
        let g: Vec<&EvalTruth> = truths.iter().filter(|g| g.class == c).collect();
        let aps: Vec<f64> = thresholds
            .iter()
            .map(|&t| class_ap(&d, &g, t, kind).unwrap_or(0.0))
            .collect();
        for (a, v) in at.iter_mut().zip(&aps) {
            *a += v;
        }
        per_class.push((c, aps[0], aps.iter().sum::<f64>() / aps.len() as f64));
    }
    let n = classes.len().max(1) as f64;
    let at: Vec<f64> = at.iter().map(|v| v / n).collect();
    if classes.is_empty() {
        return CocoMetrics {
            ap50: f64::NAN,
            ap75: f64::NAN,
            ap: f64::NAN,
            per_class,
        };
    }
    CocoMetrics {
        ap50: at[0],
        ap75: at[5],
        ap: at.iter().sum::<f64>() / at.len() as f64,
        per_class,
    }
}

/// mAP at one IoU threshold `t` (the classes with ground truth averaged; NaN without
/// any), with the same matching as [`evaluate`].
pub fn map_at(detections: &[EvalDetection], truths: &[EvalTruth], kind: IouKind, t: f64) -> f64 {
    let mut classes: Vec<usize> = truths.iter().map(|g| g.class).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return f64::NAN;
    }
    let kept = top_per_image(detections);
    let sum: f64 = classes
        .iter()
        .map(|&c| {
            let d: Vec<&EvalDetection> = kept.iter().copied().filter(|d| d.class == c).collect();
            let g: Vec<&EvalTruth> = truths.iter().filter(|g| g.class == c).collect();
            class_ap(&d, &g, t, kind).unwrap_or(0.0)
        })
        .sum();
    sum / classes.len() as f64
}
