//! Object-detection toolkit of D2L 13.3–13.5: box format conversions, IoU, anchor boxes
//! (`multibox_prior`), anchor labelling (`assign_anchor_to_bbox`, `offset_boxes`,
//! `multibox_target`), decoding (`offset_inverse`), non-maximum suppression (`nms`) and
//! `multibox_detection`, with the semantics of the book's `d2l.torch` code.
//!
//! Conventions:
//! - Boxes are `f32` in **corner format** `(x1, y1, x2, y2)` unless a name says *center*
//!   (`(cx, cy, w, h)`). Float inputs of dtype `f64` are accepted and read as `f32`; any
//!   other dtype is an error.
//! - Every function works on plain `Vec<f32>` loops (no per-element tensor ops), returns
//!   fresh tensors without an autograd graph, and reports bad input as an `Err` whose
//!   message names the function, what it expected and what it got. Nothing here panics on
//!   user input.
//! - A corner box must be finite with `x2 >= x1` and `y2 >= y1` (zero width or height is
//!   allowed) wherever the function measures areas or overlaps (`box_iou`, `nms`,
//!   `assign_anchor_to_bbox`, `offset_boxes`, `multibox_target`). The format conversions
//!   do not check ordering: they are plain bijections.
//! - The IoU of two boxes whose union has zero area (both degenerate) is defined as `0`;
//!   the book's formula would give `0/0 = NaN` there.
//!
//! ```
//! use d2l_tensor::Tensor;
//! use d2l_vision::detection::{box_iou, multibox_prior};
//! # fn main() -> d2l_tensor::Result<()> {
//! let anchors = multibox_prior(2, 2, &[0.5], &[1.0])?;
//! assert_eq!(anchors.shape(), &[1, 4, 4]);
//! let a = Tensor::from_vec(vec![0.0f32, 0.0, 1.0, 1.0], &[1, 4])?;
//! let b = Tensor::from_vec(vec![0.5f32, 0.0, 1.5, 1.0], &[1, 4])?;
//! assert!((box_iou(&a, &b)?.to_vec::<f32>()[0] - 1.0 / 3.0).abs() < 1e-6);
//! # Ok(()) }
//! ```

use d2l_nn::module::same_device;
use d2l_tensor::{DType, Error, Result, Tensor};
use std::cmp::Ordering;

/// The IoU threshold of the book's `assign_anchor_to_bbox` (and so of `multibox_target`).
pub const ASSIGN_IOU_THRESHOLD: f32 = 0.5;
/// The `eps` of the book's `offset_boxes`, added inside the log of the size ratio.
pub const OFFSET_EPS: f32 = 1e-6;
/// The book's default `nms_threshold` of `multibox_detection`.
pub const NMS_THRESHOLD: f32 = 0.5;
/// The book's default `pos_threshold` of `multibox_detection` (`0.009999999`, just under
/// 0.01).
pub const POS_THRESHOLD: f32 = 0.009_999_999;

// ---------------------------------------------------------------------------------------
// input checking
// ---------------------------------------------------------------------------------------

fn bad_shape(op: &'static str, msg: impl Into<String>) -> Error {
    Error::BadShape {
        op,
        msg: msg.into(),
    }
}

fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        msg: msg.into(),
    }
}

fn float_data(op: &'static str, name: &str, t: &Tensor) -> Result<Vec<f32>> {
    match t.dtype() {
        DType::F32 | DType::F64 => Ok(t.to_vec::<f32>()),
        got => Err(Error::DTypeMismatch {
            op,
            expected: format!("a float (f32) tensor for {name}"),
            got,
        }),
    }
}

/// A `(n, 4)` box tensor: returns `n` and the data.
fn boxes_n4(op: &'static str, name: &str, t: &Tensor) -> Result<(usize, Vec<f32>)> {
    let s = t.shape();
    if s.len() != 2 || s[1] != 4 {
        return Err(bad_shape(
            op,
            format!("expected {name} of shape (n, 4), got {s:?}"),
        ));
    }
    Ok((s[0], float_data(op, name, t)?))
}

/// Anchors of shape `(A, 4)` or `(1, A, 4)` (the book's `anchors.squeeze(0)`).
fn anchors_a4(op: &'static str, t: &Tensor) -> Result<(usize, Vec<f32>)> {
    let s = t.shape();
    let a = match s {
        [a, 4] => *a,
        [1, a, 4] => *a,
        _ => {
            return Err(bad_shape(
                op,
                format!("expected anchors of shape (1, A, 4) or (A, 4), got {s:?}"),
            ))
        }
    };
    Ok((a, float_data(op, "anchors", t)?))
}

/// Checks that every box in `data` (rows of 4) is finite with `x2 >= x1` and `y2 >= y1`
/// (`strict`: `x2 > x1` and `y2 > y1`).
fn check_corner(op: &'static str, name: &str, data: &[f32], strict: bool) -> Result<()> {
    for (i, b) in data.chunks_exact(4).enumerate() {
        let finite = b.iter().all(|v| v.is_finite());
        let ordered = if strict {
            b[2] > b[0] && b[3] > b[1]
        } else {
            b[2] >= b[0] && b[3] >= b[1]
        };
        if !finite || !ordered {
            let need = if strict {
                "finite corner boxes with x2 > x1 and y2 > y1"
            } else {
                "finite corner boxes with x2 >= x1 and y2 >= y1"
            };
            return Err(invalid(
                op,
                format!("expected {name} to be {need}, got box {i} = {b:?}"),
            ));
        }
    }
    Ok(())
}

fn check_threshold(op: &'static str, name: &str, v: f32) -> Result<()> {
    if v.is_nan() {
        return Err(invalid(
            op,
            format!("expected a number for {name}, got NaN"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// slice-level kernels
// ---------------------------------------------------------------------------------------

#[inline(always)]
fn area(b: &[f32]) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// IoU of two corner boxes with precomputed areas, in the book's operation order.
/// A zero (or NaN) union gives 0 instead of NaN.
#[inline(always)]
fn iou_with_areas(a: &[f32], area_a: f32, b: &[f32], area_b: f32) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area_a + area_b - inter;
    let r = inter / union;
    if r.is_nan() {
        0.0
    } else {
        r
    }
}

/// Corner `(x1,y1,x2,y2)` to center `(cx,cy,w,h)`, the book's operation order.
#[inline(always)]
fn corner_to_center(b: &[f32]) -> [f32; 4] {
    [
        (b[0] + b[2]) / 2.0,
        (b[1] + b[3]) / 2.0,
        b[2] - b[0],
        b[3] - b[1],
    ]
}

/// Center `(cx,cy,w,h)` to corner `(x1,y1,x2,y2)`, the book's operation order.
#[inline(always)]
fn center_to_corner(b: &[f32]) -> [f32; 4] {
    [
        b[0] - 0.5 * b[2],
        b[1] - 0.5 * b[3],
        b[0] + 0.5 * b[2],
        b[1] + 0.5 * b[3],
    ]
}

/// Anchors as structure-of-arrays (plus areas), built once per call and shared by every
/// image, so that the IoU loops over anchors vectorise.
struct AnchorSoa {
    x1: Vec<f32>,
    y1: Vec<f32>,
    x2: Vec<f32>,
    y2: Vec<f32>,
    area: Vec<f32>,
}

impl AnchorSoa {
    fn new(anchors: &[f32]) -> Self {
        let n = anchors.len() / 4;
        let mut s = AnchorSoa {
            x1: Vec::with_capacity(n),
            y1: Vec::with_capacity(n),
            x2: Vec::with_capacity(n),
            y2: Vec::with_capacity(n),
            area: Vec::with_capacity(n),
        };
        for b in anchors.chunks_exact(4) {
            s.x1.push(b[0]);
            s.y1.push(b[1]);
            s.x2.push(b[2]);
            s.y2.push(b[3]);
            s.area.push(area(b));
        }
        s
    }

    fn len(&self) -> usize {
        self.area.len()
    }
}

/// The largest value of a NaN-free slice (8 independent lanes so that it vectorises).
fn max_of(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in acc.iter().chain(rem) {
        if x > m {
            m = x;
        }
    }
    m
}

/// The book's two-phase anchor assignment on raw slices (finite, checked boxes only).
/// `jaccard` is scratch space holding the `(na, ng)` IoU matrix column by column.
fn assign_core(gt: &[f32], anc: &AnchorSoa, threshold: f32, jaccard: &mut Vec<f32>) -> Vec<i64> {
    let ng = gt.len() / 4;
    let na = anc.len();
    let mut map = vec![-1i64; na];
    if ng == 0 || na == 0 {
        return map;
    }
    jaccard.clear();
    jaccard.resize(na * ng, 0.0);
    // IoU(anchor i, gt j) at jaccard[j * na + i], in the book's operation order
    // (`box_iou(anchors, ground_truth)`), a zero union giving 0.
    let (ax1, ay1, ax2, ay2, aarea) = (
        &anc.x1[..na],
        &anc.y1[..na],
        &anc.x2[..na],
        &anc.y2[..na],
        &anc.area[..na],
    );
    for (g, col) in gt.chunks_exact(4).zip(jaccard.chunks_exact_mut(na)) {
        let (gx1, gy1, gx2, gy2) = (g[0], g[1], g[2], g[3]);
        let ga = area(g);
        let col = &mut col[..na];
        for i in 0..na {
            let lx = if ax1[i] > gx1 { ax1[i] } else { gx1 };
            let ly = if ay1[i] > gy1 { ay1[i] } else { gy1 };
            let rx = if ax2[i] < gx2 { ax2[i] } else { gx2 };
            let ry = if ay2[i] < gy2 { ay2[i] } else { gy2 };
            let iw = if rx - lx > 0.0 { rx - lx } else { 0.0 };
            let ih = if ry - ly > 0.0 { ry - ly } else { 0.0 };
            let inter = iw * ih;
            let union = aarea[i] + ga - inter;
            let r = inter / union;
            col[i] = if r.is_nan() { 0.0 } else { r };
        }
    }
    // Phase 1: every anchor takes its best ground truth (first on ties) if IoU >= threshold.
    let mut best = vec![f32::NEG_INFINITY; na];
    let mut best_j = vec![-1i64; na];
    for (j, col) in jaccard.chunks_exact(na).enumerate() {
        let col = &col[..na];
        let (best, best_j) = (&mut best[..na], &mut best_j[..na]);
        for i in 0..na {
            let better = col[i] > best[i];
            best[i] = if better { col[i] } else { best[i] };
            best_j[i] = if better { j as i64 } else { best_j[i] };
        }
    }
    for ((m, &b), &j) in map.iter_mut().zip(&best).zip(&best_j) {
        if b >= threshold {
            *m = j;
        }
    }
    // Phase 2: once per ground truth, force the global maximum of the IoU matrix (first in
    // row-major (anchor, gt) order on ties, as torch.argmax) and discard its row and
    // column. A discarded column is skipped; a discarded row is set to -1 in the columns
    // still alive. Every alive column keeps a value >= 0 while rounds < min(na, ng).
    let mut alive = vec![true; ng];
    for _ in 0..ng.min(na) {
        let mut pick: Option<(f32, usize, usize)> = None; // (value, anchor, gt)
        for (j, col) in jaccard.chunks_exact(na).enumerate() {
            if !alive[j] {
                continue;
            }
            let m = max_of(col);
            let i = col.iter().position(|&v| v == m).unwrap_or(0);
            let better = match pick {
                None => true,
                Some((pm, pi, _)) => m > pm || (m == pm && i < pi),
            };
            if better {
                pick = Some((m, i, j));
            }
        }
        let Some((_, i, j)) = pick else { break };
        map[i] = j as i64;
        alive[j] = false;
        for (c, col) in jaccard.chunks_exact_mut(na).enumerate() {
            if alive[c] {
                col[i] = -1.0;
            }
        }
    }
    map
}

/// Anchor offsets of one box, the book's `offset_boxes` formula.
#[inline(always)]
fn offset_one(anchor: &[f32], assigned: &[f32], eps: f32) -> [f32; 4] {
    let a = corner_to_center(anchor);
    let b = corner_to_center(assigned);
    [
        10.0 * (b[0] - a[0]) / a[2],
        10.0 * (b[1] - a[1]) / a[3],
        5.0 * (eps + b[2] / a[2]).ln(),
        5.0 * (eps + b[3] / a[3]).ln(),
    ]
}

/// Decoded corner box of one anchor, the book's `offset_inverse` formula.
#[inline(always)]
fn inverse_one(anchor: &[f32], off: &[f32]) -> [f32; 4] {
    let a = corner_to_center(anchor);
    let c = [
        off[0] * a[2] / 10.0 + a[0],
        off[1] * a[3] / 10.0 + a[1],
        (off[2] / 5.0).exp() * a[2],
        (off[3] / 5.0).exp() * a[3],
    ];
    center_to_corner(&c)
}

/// Greedy NMS on raw slices; boxes are rows of 4. NaN scores rank lowest; ties keep the
/// lower index first.
fn nms_core(boxes: &[f32], scores: &[f32], threshold: f32) -> Vec<usize> {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    let key = |v: f32| if v.is_nan() { None } else { Some(v) };
    order.sort_by(|&i, &j| {
        key(scores[j])
            .partial_cmp(&key(scores[i]))
            .unwrap_or(Ordering::Equal)
    });
    let areas: Vec<f32> = boxes.chunks_exact(4).map(area).collect();
    let mut keep = Vec::new();
    let mut rest = order;
    while let Some((&i, tail)) = rest.split_first() {
        keep.push(i);
        let bi = &boxes[4 * i..4 * i + 4];
        let next: Vec<usize> = tail
            .iter()
            .copied()
            .filter(|&j| {
                iou_with_areas(bi, areas[i], &boxes[4 * j..4 * j + 4], areas[j]) <= threshold
            })
            .collect();
        rest = next;
    }
    keep
}

// ---------------------------------------------------------------------------------------
// public API
// ---------------------------------------------------------------------------------------

fn convert_last4(op: &'static str, boxes: &Tensor, f: fn(&[f32]) -> [f32; 4]) -> Result<Tensor> {
    let s = boxes.shape();
    if s.last() != Some(&4) {
        return Err(bad_shape(
            op,
            format!("expected boxes of shape (..., 4), got {s:?}"),
        ));
    }
    let data = float_data(op, "boxes", boxes)?;
    let mut out = Vec::with_capacity(data.len());
    for b in data.chunks_exact(4) {
        out.extend_from_slice(&f(b));
    }
    Tensor::from_vec(out, s)?.to(boxes.device())
}

/// D2L 13.3 `box_corner_to_center`: `(x1, y1, x2, y2)` → `(cx, cy, w, h)` with
/// `cx = (x1 + x2) / 2` and `w = x2 - x1`.
///
/// Takes any shape `(..., 4)` (the book takes `(n, 4)`) and returns the same shape. The
/// corner order is not checked (a box with `x2 < x1` gives a negative width).
pub fn box_corner_to_center(boxes: &Tensor) -> Result<Tensor> {
    convert_last4("box_corner_to_center", boxes, corner_to_center)
}

/// D2L 13.3 `box_center_to_corner`: `(cx, cy, w, h)` → `(x1, y1, x2, y2)` with
/// `x1 = cx - 0.5 w` and `x2 = cx + 0.5 w`; the inverse of [`box_corner_to_center`].
///
/// Takes any shape `(..., 4)` and returns the same shape; signs are not checked.
pub fn box_center_to_corner(boxes: &Tensor) -> Result<Tensor> {
    convert_last4("box_center_to_corner", boxes, center_to_corner)
}

/// D2L 13.4 `box_iou`: the pairwise IoU (Jaccard) matrix `(n1, n2)` of corner boxes
/// `boxes1 (n1, 4)` and `boxes2 (n2, 4)`.
///
/// Computed as the book does: intersection sides clamped at 0,
/// `union = area1 + area2 - inter`, `iou = inter / union`. Quirk fixed: where the union is 0
/// (both boxes degenerate) the IoU is 0 instead of the book's NaN. Boxes must be finite
/// with `x2 >= x1` and `y2 >= y1`, else an error.
pub fn box_iou(boxes1: &Tensor, boxes2: &Tensor) -> Result<Tensor> {
    const OP: &str = "box_iou";
    let dev = same_device(OP, &[boxes1, boxes2])?;
    let (n1, b1) = boxes_n4(OP, "boxes1", boxes1)?;
    let (n2, b2) = boxes_n4(OP, "boxes2", boxes2)?;
    check_corner(OP, "boxes1", &b1, false)?;
    check_corner(OP, "boxes2", &b2, false)?;
    let a2: Vec<f32> = b2.chunks_exact(4).map(area).collect();
    let mut out = Vec::with_capacity(n1 * n2);
    for a in b1.chunks_exact(4) {
        let aa = area(a);
        for (b, &ab) in b2.chunks_exact(4).zip(&a2) {
            out.push(iou_with_areas(a, aa, b, ab));
        }
    }
    Tensor::from_vec(out, &[n1, n2])?.to(dev)
}

/// The IoU of two corner boxes `[x1, y1, x2, y2]`: the kernel of [`box_iou`] for one pair
/// (same operation order; a zero union gives 0). Boxes are not checked.
pub fn box_iou_pair(a: [f32; 4], b: [f32; 4]) -> f32 {
    iou_with_areas(&a, area(&a), &b, area(&b))
}

/// D2L 13.4 `multibox_prior` for a feature map of `height × width` pixels: anchor boxes of
/// shape `(1, H·W·(n+m−1), 4)`, normalised corner format (coordinates may fall outside
/// `[0, 1]` near the border, as in the book).
///
/// Anchors are ordered per pixel in row-major order; per pixel come all `sizes` with
/// `ratios[0]`, then `sizes[0]` with `ratios[1..]`. Centres are `((j+0.5)/W, (i+0.5)/H)`.
/// The book's quirk is kept: the width is `s·√r·H/W` (not `s·√r`) and the height `s/√r`,
/// so that in pixels a ratio-1 anchor is `s·H` square.
///
/// `sizes` and `ratios` must be non-empty with finite positive values. A zero `height` or
/// `width` gives `(1, 0, 4)`.
pub fn multibox_prior(
    height: usize,
    width: usize,
    sizes: &[f32],
    ratios: &[f32],
) -> Result<Tensor> {
    const OP: &str = "multibox_prior";
    if sizes.is_empty() || ratios.is_empty() {
        return Err(invalid(
            OP,
            format!(
                "expected at least one size and one ratio, got sizes {sizes:?} and ratios {ratios:?}"
            ),
        ));
    }
    for (name, vals) in [("sizes", sizes), ("ratios", ratios)] {
        if let Some(v) = vals.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(invalid(
                OP,
                format!("expected finite positive {name}, got {v} in {vals:?}"),
            ));
        }
    }
    let per_pixel = sizes.len() + ratios.len() - 1;
    // Half extents (w/2, h/2) per anchor kind, in the book's order.
    let sqrt_r0 = ratios[0].sqrt();
    let mut half = Vec::with_capacity(per_pixel);
    for &s in sizes {
        half.push((
            (s * sqrt_r0) * height as f32 / width as f32 / 2.0,
            s / sqrt_r0 / 2.0,
        ));
    }
    for &r in &ratios[1..] {
        let sr = r.sqrt();
        half.push((
            (sizes[0] * sr) * height as f32 / width as f32 / 2.0,
            sizes[0] / sr / 2.0,
        ));
    }
    let n = height
        .checked_mul(width)
        .and_then(|hw| hw.checked_mul(per_pixel))
        .filter(|n| n.checked_mul(4).is_some_and(|e| e <= isize::MAX as usize / 4))
        .ok_or_else(|| {
            invalid(
                OP,
                format!(
                    "expected a feature map small enough to hold its anchors, got {height} x {width} with {per_pixel} anchors per pixel"
                ),
            )
        })?;
    let mut out = Vec::with_capacity(n * 4);
    let step_h = 1.0 / height as f32;
    let step_w = 1.0 / width as f32;
    for i in 0..height {
        let cy = (i as f32 + 0.5) * step_h;
        for j in 0..width {
            let cx = (j as f32 + 0.5) * step_w;
            for &(hw, hh) in &half {
                out.extend_from_slice(&[cx + -hw, cy + -hh, cx + hw, cy + hh]);
            }
        }
    }
    Tensor::from_vec(out, &[1, n, 4])
}

/// D2L 13.4 `multibox_prior(data, sizes, ratios)` as the book calls it: the feature map's
/// `(H, W)` are the last two dimensions of `data` (rank ≥ 2). See [`multibox_prior`].
pub fn multibox_prior_for(data: &Tensor, sizes: &[f32], ratios: &[f32]) -> Result<Tensor> {
    let s = data.shape();
    if s.len() < 2 {
        return Err(bad_shape(
            "multibox_prior",
            format!("expected data with at least 2 dimensions (..., H, W), got {s:?}"),
        ));
    }
    multibox_prior(s[s.len() - 2], s[s.len() - 1], sizes, ratios)?.to(data.device())
}

/// D2L 13.4 `assign_anchor_to_bbox`: the ground-truth index assigned to each anchor, `-1`
/// for background. `ground_truth` is `(ng, 4)`, `anchors` `(na, 4)` (or `(1, na, 4)`).
///
/// The book's two phases: (1) each anchor takes its highest-IoU ground truth (first on
/// ties) if that IoU is `>= iou_threshold`; (2) `ng` times, the global maximum of the
/// `(na, ng)` IoU matrix (first in row-major order on ties) forces that anchor↔box pair,
/// overriding phase 1, and its row and column are discarded. As in the book, phase 2 pairs
/// every ground truth with some anchor even when their IoU is 0. Differences: the IoU of a
/// zero-area union is 0 (not NaN), and phase 2 stops after `min(na, ng)` rounds (the book
/// would, with fewer anchors than boxes, re-assign anchor 0 to box 0 from an all-discarded
/// matrix). Boxes must be finite corner boxes with `x2 >= x1`, `y2 >= y1`; the threshold
/// must not be NaN.
pub fn assign_anchor_to_bbox(
    ground_truth: &Tensor,
    anchors: &Tensor,
    iou_threshold: f32,
) -> Result<Vec<i64>> {
    const OP: &str = "assign_anchor_to_bbox";
    let (_, gt) = boxes_n4(OP, "ground_truth", ground_truth)?;
    let (_, anc) = anchors_a4(OP, anchors)?;
    check_corner(OP, "ground_truth", &gt, false)?;
    check_corner(OP, "anchors", &anc, false)?;
    check_threshold(OP, "iou_threshold", iou_threshold)?;
    Ok(assign_core(
        &gt,
        &AnchorSoa::new(&anc),
        iou_threshold,
        &mut Vec::new(),
    ))
}

/// D2L 13.4 `offset_boxes`: the regression targets `(n, 4)` of boxes `assigned_bb (n, 4)`
/// relative to `anchors (n, 4)` (or `(1, n, 4)`), both corner format:
/// `10·(c_gt − c_a)/wh_a` for the centre and `5·ln(eps + wh_gt/wh_a)` for the size (μ = 0,
/// σ_xy = 0.1, σ_wh = 0.2). The book's `eps` is [`OFFSET_EPS`].
///
/// Anchors must have positive width and height (they are divisors); assigned boxes must be
/// finite with `x2 >= x1`, `y2 >= y1`.
pub fn offset_boxes(anchors: &Tensor, assigned_bb: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "offset_boxes";
    let dev = same_device(OP, &[anchors, assigned_bb])?;
    let (na, anc) = anchors_a4(OP, anchors)?;
    let (nb, bb) = boxes_n4(OP, "assigned_bb", assigned_bb)?;
    if na != nb {
        return Err(bad_shape(
            OP,
            format!(
                "expected as many assigned boxes as anchors ({na}), got shape {:?}",
                assigned_bb.shape()
            ),
        ));
    }
    check_corner(OP, "anchors", &anc, true)?;
    check_corner(OP, "assigned_bb", &bb, false)?;
    let mut out = Vec::with_capacity(4 * na);
    for (a, b) in anc.chunks_exact(4).zip(bb.chunks_exact(4)) {
        out.extend_from_slice(&offset_one(a, b, eps));
    }
    Tensor::from_vec(out, &[na, 4])?.to(dev)
}

/// D2L 13.4 `offset_inverse`: applies predicted offsets `offset_preds (n, 4)` to
/// `anchors (n, 4)` (or `(1, n, 4)`) and returns corner boxes `(n, 4)`:
/// `c = off_xy·wh_a/10 + c_a`, `wh = exp(off_wh/5)·wh_a` (no eps, as in the book).
///
/// Anchors must be finite with `x2 >= x1`, `y2 >= y1`; offsets may be any value (huge ones
/// give infinite boxes, NaN ones NaN boxes).
pub fn offset_inverse(anchors: &Tensor, offset_preds: &Tensor) -> Result<Tensor> {
    const OP: &str = "offset_inverse";
    let dev = same_device(OP, &[anchors, offset_preds])?;
    let (na, anc) = anchors_a4(OP, anchors)?;
    let (np, off) = boxes_n4(OP, "offset_preds", offset_preds)?;
    if na != np {
        return Err(bad_shape(
            OP,
            format!(
                "expected offset_preds of shape ({na}, 4) to match the anchors, got {:?}",
                offset_preds.shape()
            ),
        ));
    }
    check_corner(OP, "anchors", &anc, false)?;
    let mut out = Vec::with_capacity(4 * na);
    for (a, o) in anc.chunks_exact(4).zip(off.chunks_exact(4)) {
        out.extend_from_slice(&inverse_one(a, o));
    }
    Tensor::from_vec(out, &[na, 4])?.to(dev)
}

/// D2L 13.4 `multibox_target` with the book's IoU threshold 0.5; see
/// [`multibox_target_with`].
pub fn multibox_target(anchors: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    multibox_target_with(anchors, labels, ASSIGN_IOU_THRESHOLD)
}

/// D2L 13.4 `multibox_target`: labels every anchor of every image.
///
/// `anchors` is `(1, A, 4)` (or `(A, 4)`), `labels` is `(B, G, 5)` with rows
/// `[class, x1, y1, x2, y2]`. Returns `(offsets (B, 4A) f32, mask (B, 4A) f32,
/// class_labels (B, A) i64)`: anchors are assigned with [`assign_anchor_to_bbox`], an
/// assigned anchor gets class `trunc(class) + 1`, its mask `1` four times and the offsets
/// of [`offset_boxes`] (eps [`OFFSET_EPS`]); a background anchor gets class 0, mask 0 and
/// offsets 0.
///
/// Difference from the book (which treats every row as an object): a label row whose
/// class is negative (e.g. `-1`) is padding and is ignored, so an image with only padding
/// rows (or `G = 0`) is all background. Real rows must be finite corner boxes with
/// `x2 >= x1`, `y2 >= y1`, anchors must have positive width and height, and a NaN or `+inf`
/// class is an error.
///
/// Runs on plain slices, one pass per image: IoU `A × G`, then `G` arg-max sweeps.
pub fn multibox_target_with(
    anchors: &Tensor,
    labels: &Tensor,
    iou_threshold: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "multibox_target";
    let dev = same_device(OP, &[anchors, labels])?;
    let (na, anc) = anchors_a4(OP, anchors)?;
    let ls = labels.shape();
    if ls.len() != 3 || ls[2] != 5 {
        return Err(bad_shape(
            OP,
            format!("expected labels of shape (B, G, 5) = [class, x1, y1, x2, y2], got {ls:?}"),
        ));
    }
    let (b, g) = (ls[0], ls[1]);
    check_threshold(OP, "iou_threshold", iou_threshold)?;
    let lab = float_data(OP, "labels", labels)?;
    check_corner(OP, "anchors", &anc, true)?;
    let soa = AnchorSoa::new(&anc);

    let mut offsets = vec![0f32; b * 4 * na];
    let mut mask = vec![0f32; b * 4 * na];
    let mut classes = vec![0i64; b * na];
    let mut gt = Vec::with_capacity(4 * g);
    let mut gt_cls = Vec::with_capacity(g);
    let mut scratch = Vec::new();
    for img in 0..b {
        gt.clear();
        gt_cls.clear();
        for (r, row) in lab[img * g * 5..(img + 1) * g * 5]
            .chunks_exact(5)
            .enumerate()
        {
            let c = row[0];
            if c.is_nan() || c == f32::INFINITY {
                return Err(invalid(
                    OP,
                    format!("expected a finite class number in labels[{img}, {r}, 0], got {c}"),
                ));
            }
            if c < 0.0 {
                continue; // padding row
            }
            let bx = &row[1..5];
            if !(bx.iter().all(|v| v.is_finite()) && bx[2] >= bx[0] && bx[3] >= bx[1]) {
                return Err(invalid(
                    OP,
                    format!(
                        "expected labels[{img}, {r}, 1..5] to be a finite corner box with x2 >= x1 and y2 >= y1, got {bx:?}"
                    ),
                ));
            }
            gt.extend_from_slice(bx);
            gt_cls.push((c.trunc() as i64).saturating_add(1));
        }
        let map = assign_core(&gt, &soa, iou_threshold, &mut scratch);
        let off_img = &mut offsets[img * 4 * na..(img + 1) * 4 * na];
        let mask_img = &mut mask[img * 4 * na..(img + 1) * 4 * na];
        let cls_img = &mut classes[img * na..(img + 1) * na];
        for (a, &m) in map.iter().enumerate() {
            if m < 0 {
                continue;
            }
            let m = m as usize;
            cls_img[a] = gt_cls[m];
            mask_img[4 * a..4 * a + 4].fill(1.0);
            off_img[4 * a..4 * a + 4].copy_from_slice(&offset_one(
                &anc[4 * a..4 * a + 4],
                &gt[4 * m..4 * m + 4],
                OFFSET_EPS,
            ));
        }
    }
    Ok((
        Tensor::from_vec(offsets, &[b, 4 * na])?.to(dev)?,
        Tensor::from_vec(mask, &[b, 4 * na])?.to(dev)?,
        Tensor::from_vec(classes, &[b, na])?.to(dev)?,
    ))
}

/// D2L 13.4 `nms`: greedy non-maximum suppression. Returns the kept indices into `boxes`
/// in descending score order.
///
/// `boxes` is `(n, 4)` corner format, `scores` `(n,)`. Boxes are visited by descending
/// score; each kept box removes every later box whose IoU with it is `> iou_threshold`
/// (the book keeps `iou <= threshold`). Ties in score keep the lower index first (a stable
/// sort; the book's `argsort` does not promise an order). NaN scores rank below every
/// number (the book's `argsort` would put them first) and are otherwise treated like any
/// score. Boxes must be finite with `x2 >= x1`, `y2 >= y1`; a NaN threshold is an error.
pub fn nms(boxes: &Tensor, scores: &Tensor, iou_threshold: f32) -> Result<Vec<usize>> {
    const OP: &str = "nms";
    let (n, b) = boxes_n4(OP, "boxes", boxes)?;
    if scores.shape() != [n] {
        return Err(bad_shape(
            OP,
            format!(
                "expected scores of shape ({n},) to match boxes {:?}, got {:?}",
                boxes.shape(),
                scores.shape()
            ),
        ));
    }
    let s = float_data(OP, "scores", scores)?;
    check_corner(OP, "boxes", &b, false)?;
    check_threshold(OP, "iou_threshold", iou_threshold)?;
    Ok(nms_core(&b, &s, iou_threshold))
}

/// D2L 13.4 `multibox_detection`: predicted boxes with NMS, `(B, A, 6)` rows
/// `[class_id, conf, x1, y1, x2, y2]`.
///
/// `cls_probs` is `(B, C+1, A)` (class 0 = background, C ≥ 1), `offset_preds` `(B, 4A)`
/// (or `(B, A, 4)`), `anchors` `(1, A, 4)` (or `(A, 4)`). Per image, as the book: each
/// anchor's confidence and class are the max over the non-background classes (first on
/// ties; a NaN probability wins, as `torch.max` propagates NaN), its box is
/// [`offset_inverse`] of its offsets, and class-agnostic [`nms`] with `nms_threshold` picks
/// the kept anchors. Rows are the kept anchors in score order, then the others in index
/// order with class `-1`. Finally every row whose conf is `< pos_threshold` gets class `-1`
/// and conf `1 − conf`. The book's defaults are [`NMS_THRESHOLD`] and [`POS_THRESHOLD`].
/// The decoded boxes are not checked (NMS treats the IoU of non-finite boxes as 0).
pub fn multibox_detection(
    cls_probs: &Tensor,
    offset_preds: &Tensor,
    anchors: &Tensor,
    nms_threshold: f32,
    pos_threshold: f32,
) -> Result<Tensor> {
    const OP: &str = "multibox_detection";
    let dev = same_device(OP, &[cls_probs, offset_preds, anchors])?;
    let cs = cls_probs.shape();
    if cs.len() != 3 || cs[1] < 2 {
        return Err(bad_shape(
            OP,
            format!(
                "expected cls_probs of shape (B, C+1, A) with at least one non-background class, got {cs:?}"
            ),
        ));
    }
    let (b, nc, a) = (cs[0], cs[1], cs[2]);
    let (na, anc) = anchors_a4(OP, anchors)?;
    if na != a {
        return Err(bad_shape(
            OP,
            format!(
                "expected anchors with A = {a} boxes to match cls_probs {cs:?}, got {:?}",
                anchors.shape()
            ),
        ));
    }
    let os = offset_preds.shape();
    if !(os == [b, 4 * a] || os == [b, a, 4]) {
        return Err(bad_shape(
            OP,
            format!(
                "expected offset_preds of shape ({b}, {}) to match cls_probs {cs:?}, got {os:?}",
                4 * a
            ),
        ));
    }
    check_threshold(OP, "nms_threshold", nms_threshold)?;
    check_threshold(OP, "pos_threshold", pos_threshold)?;
    check_corner(OP, "anchors", &anc, false)?;
    let probs = float_data(OP, "cls_probs", cls_probs)?;
    let offs = float_data(OP, "offset_preds", offset_preds)?;

    let mut out = Vec::with_capacity(b * a * 6);
    let mut conf = vec![0f32; a];
    let mut class_id = vec![0f32; a];
    let mut pred = vec![0f32; 4 * a];
    let mut in_keep = vec![false; a];
    for img in 0..b {
        let p = &probs[img * nc * a..(img + 1) * nc * a];
        for k in 0..a {
            let mut best = p[a + k];
            let mut best_c = 0usize;
            for c in 2..nc {
                let v = p[c * a + k];
                if !best.is_nan() && (v > best || v.is_nan()) {
                    best = v;
                    best_c = c - 1;
                }
            }
            conf[k] = best;
            class_id[k] = best_c as f32;
        }
        let o = &offs[img * 4 * a..(img + 1) * 4 * a];
        for (k, (an, off)) in anc.chunks_exact(4).zip(o.chunks_exact(4)).enumerate() {
            pred[4 * k..4 * k + 4].copy_from_slice(&inverse_one(an, off));
        }
        let keep = nms_core(&pred, &conf, nms_threshold);
        in_keep.fill(false);
        for &k in &keep {
            in_keep[k] = true;
        }
        let rest = (0..a).filter(|&k| !in_keep[k]);
        for k in keep.iter().copied().chain(rest) {
            let mut cid = if in_keep[k] { class_id[k] } else { -1.0 };
            let mut cf = conf[k];
            if cf < pos_threshold {
                cid = -1.0;
                cf = 1.0 - cf;
            }
            out.extend_from_slice(&[cid, cf]);
            out.extend_from_slice(&pred[4 * k..4 * k + 4]);
        }
    }
    Tensor::from_vec(out, &[b, a, 6])?.to(dev)
}
