//! D2L 13.3–13.5 detection toolkit against the book's printed values (C.4), properties and
//! error cases.

use d2l_tensor::{Error, Tensor};
use d2l_vision::detection::*;
use proptest::prelude::*;

mod common;
use common::{shifting_labels, ssd_anchors};

fn t2(rows: &[&[f32]]) -> Tensor {
    let cols = rows.first().map_or(0, |r| r.len());
    let data: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(data, &[rows.len(), cols]).unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (tol {tol})\n got {got:?}\nwant {want:?}"
        );
    }
}

fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

// ------------------------------------------------------------------- the book's values

const TOY_GT: [[f32; 5]; 2] = [[0.0, 0.1, 0.08, 0.52, 0.92], [1.0, 0.55, 0.2, 0.9, 0.88]];
const TOY_ANCHORS: [[f32; 4]; 5] = [
    [0.0, 0.1, 0.2, 0.3],
    [0.15, 0.2, 0.4, 0.4],
    [0.63, 0.05, 0.88, 0.98],
    [0.66, 0.45, 0.8, 0.8],
    [0.57, 0.3, 0.92, 0.9],
];

fn toy_anchors() -> Tensor {
    let d: Vec<f32> = TOY_ANCHORS.iter().flatten().copied().collect();
    Tensor::from_vec(d, &[1, 5, 4]).unwrap()
}

fn toy_labels() -> Tensor {
    let d: Vec<f32> = TOY_GT.iter().flatten().copied().collect();
    Tensor::from_vec(d, &[1, 2, 5]).unwrap()
}

#[test]
fn corner_center_round_trip_on_the_books_dog_and_cat() {
    // 13.3: dog_bbox and cat_bbox, box_center_to_corner(box_corner_to_center(b)) == b.
    let boxes = t2(&[&[60.0, 45.0, 378.0, 516.0], &[400.0, 112.0, 655.0, 493.0]]);
    let c = box_corner_to_center(&boxes).unwrap();
    assert_eq!(c.shape(), &[2, 4]);
    assert_eq!(
        c.to_vec::<f32>(),
        vec![219.0, 280.5, 318.0, 471.0, 527.5, 302.5, 255.0, 381.0]
    );
    let back = box_center_to_corner(&c).unwrap();
    assert_eq!(back.to_vec::<f32>(), boxes.to_vec::<f32>());
    // Any (..., 4) shape.
    let b3 = Tensor::from_vec(vec![0.0f32, 0.0, 2.0, 4.0], &[1, 1, 4]).unwrap();
    let c3 = box_corner_to_center(&b3).unwrap();
    assert_eq!(c3.shape(), &[1, 1, 4]);
    assert_eq!(c3.to_vec::<f32>(), vec![1.0, 2.0, 2.0, 4.0]);
}

#[test]
fn multibox_prior_matches_the_books_catdog_anchors() {
    // C.4 13.4: catdog.jpg is 561 x 728.
    let (h, w) = (561usize, 728usize);
    let y = multibox_prior(h, w, &[0.75, 0.5, 0.25], &[1.0, 2.0, 0.5]).unwrap();
    assert_eq!(y.shape(), &[1, 2_042_040, 4]);
    let v = y.to_vec::<f32>();
    // boxes = Y.reshape(h, w, 5, 4); boxes[250, 250, 0, :]
    let k = ((250 * w + 250) * 5) * 4;
    let got: Vec<f32> = v[k..k + 4].iter().copied().map(round2).collect();
    assert_eq!(got, vec![0.06, 0.07, 0.63, 0.82]);
    // Exact values of that box: centre (250.5/728, 250.5/561), w = 0.75*561/728, h = 0.75.
    let (cx, cy) = (250.5 / 728.0, 250.5 / 561.0);
    let (hw, hh) = (0.75 * 561.0 / 728.0 / 2.0, 0.75 / 2.0);
    assert_close(
        &v[k..k + 4],
        &[cx - hw, cy - hh, cx + hw, cy + hh],
        1e-6,
        "box (250,250,0)",
    );
    // Per-pixel order: sizes with ratios[0], then sizes[0] with ratios[1..].
    let expect_wh = [
        (0.75 * 561.0 / 728.0, 0.75),
        (0.5 * 561.0 / 728.0, 0.5),
        (0.25 * 561.0 / 728.0, 0.25),
        (0.75 * 2f32.sqrt() * 561.0 / 728.0, 0.75 / 2f32.sqrt()),
        (0.75 * 0.5f32.sqrt() * 561.0 / 728.0, 0.75 / 0.5f32.sqrt()),
    ];
    for (a, (ew, eh)) in expect_wh.iter().enumerate() {
        let b = &v[k + 4 * a..k + 4 * a + 4];
        assert!((b[2] - b[0] - ew).abs() < 1e-5, "anchor {a} width");
        assert!((b[3] - b[1] - eh).abs() < 1e-5, "anchor {a} height");
        assert!(((b[0] + b[2]) / 2.0 - cx).abs() < 1e-6);
        assert!(((b[1] + b[3]) / 2.0 - cy).abs() < 1e-6);
    }
}

#[test]
fn multibox_prior_for_reads_the_last_two_dims() {
    let x = Tensor::from_vec(vec![0f32; 3 * 3 * 4], &[1, 3, 3, 4]).unwrap();
    let a = multibox_prior_for(&x, &[0.75, 0.5, 0.25], &[1.0, 2.0, 0.5]).unwrap();
    let b = multibox_prior(3, 4, &[0.75, 0.5, 0.25], &[1.0, 2.0, 0.5]).unwrap();
    assert_eq!(a.shape(), &[1, 60, 4]);
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    // Row-major pixels: the second pixel's centre is ((1+0.5)/4, 0.5/3).
    let v = a.to_vec::<f32>();
    let p1 = &v[5 * 4..5 * 4 + 4];
    assert!(((p1[0] + p1[2]) / 2.0 - 1.5 / 4.0).abs() < 1e-6);
    assert!(((p1[1] + p1[3]) / 2.0 - 0.5 / 3.0).abs() < 1e-6);
}

#[test]
fn toy_labelling_matches_the_book() {
    // C.4 13.4 toy labelling example.
    let (offsets, mask, classes) = multibox_target(&toy_anchors(), &toy_labels()).unwrap();
    assert_eq!(classes.shape(), &[1, 5]);
    assert_eq!(classes.to_vec::<i64>(), vec![0, 1, 2, 0, 2]);
    assert_eq!(mask.shape(), &[1, 20]);
    let mut want_mask = vec![0f32; 4];
    want_mask.extend([1f32; 8]);
    want_mask.extend([0f32; 4]);
    want_mask.extend([1f32; 4]);
    assert_eq!(mask.to_vec::<f32>(), want_mask);
    assert_eq!(offsets.shape(), &[1, 20]);
    let want = [
        0.0,
        0.0,
        0.0,
        0.0, //
        1.40,
        10.0,
        2.593_972,
        7.175_424, //
        -1.20,
        0.268_817_2,
        1.682_365,
        -1.565_452, //
        0.0,
        0.0,
        0.0,
        0.0, //
        -0.5714286,
        -1.00,
        4.17e-06,
        0.6258201,
    ];
    assert_close(&offsets.to_vec::<f32>(), &want, 2e-5, "offsets");
    // The book's printed values, rounded as it prints them.
    let o = offsets.to_vec::<f32>();
    assert_eq!(round2(o[6]), 2.59);
    assert_eq!(round2(o[7]), 7.18);
    assert!((o[18] - 4.17e-6).abs() < 1.5e-6, "{}", o[18]);
}

#[test]
fn assign_anchor_to_bbox_toy() {
    let gt = t2(&[&[0.1, 0.08, 0.52, 0.92], &[0.55, 0.2, 0.9, 0.88]]);
    let map = assign_anchor_to_bbox(&gt, &toy_anchors(), ASSIGN_IOU_THRESHOLD).unwrap();
    assert_eq!(map, vec![-1, 0, 1, -1, 1]);
}

#[test]
fn assign_forces_a_match_even_at_zero_iou() {
    // The book's phase 2 gives each ground truth the global-max anchor even if IoU is 0;
    // on ties (all 0) the first anchor in row-major order wins.
    let gt = t2(&[&[0.8, 0.8, 0.9, 0.9]]);
    let anchors = t2(&[&[0.0, 0.0, 0.1, 0.1], &[0.2, 0.2, 0.3, 0.3]]);
    assert_eq!(
        assign_anchor_to_bbox(&gt, &anchors, 0.5).unwrap(),
        vec![0, -1]
    );
    // Fewer anchors than boxes: each anchor is used at most once in phase 2.
    let gt = t2(&[
        &[0.0, 0.0, 0.1, 0.1],
        &[0.2, 0.2, 0.3, 0.3],
        &[0.5, 0.5, 0.6, 0.6],
    ]);
    let anchors = t2(&[&[0.2, 0.2, 0.3, 0.3]]);
    assert_eq!(assign_anchor_to_bbox(&gt, &anchors, 0.5).unwrap(), vec![1]);
    // No ground truth: all background.
    let none = Tensor::from_vec(Vec::<f32>::new(), &[0, 4]).unwrap();
    assert_eq!(
        assign_anchor_to_bbox(&none, &anchors, 0.5).unwrap(),
        vec![-1]
    );
}

#[test]
fn padding_rows_are_ignored_and_empty_images_are_background() {
    // Image 0: the toy labels plus a padding row; image 1: only padding.
    let mut d: Vec<f32> = TOY_GT.iter().flatten().copied().collect();
    d.extend([-1.0, 0.0, 0.0, 0.0, 0.0]);
    d.extend([-1.0; 15]);
    let labels = Tensor::from_vec(d, &[2, 3, 5]).unwrap();
    let (off, mask, cls) = multibox_target(&toy_anchors(), &labels).unwrap();
    assert_eq!(cls.shape(), &[2, 5]);
    let (off0, mask0, cls0) = multibox_target(&toy_anchors(), &toy_labels()).unwrap();
    let c = cls.to_vec::<i64>();
    assert_eq!(&c[..5], &cls0.to_vec::<i64>()[..]);
    assert_eq!(&c[5..], &[0; 5]);
    let m = mask.to_vec::<f32>();
    assert_eq!(&m[..20], &mask0.to_vec::<f32>()[..]);
    assert!(m[20..].iter().all(|&v| v == 0.0));
    let o = off.to_vec::<f32>();
    assert_eq!(&o[..20], &off0.to_vec::<f32>()[..]);
    assert!(o[20..].iter().all(|&v| v == 0.0));
    // G = 0 also works.
    let empty = Tensor::from_vec(Vec::<f32>::new(), &[2, 0, 5]).unwrap();
    let (_, _, cls) = multibox_target(&toy_anchors(), &empty).unwrap();
    assert_eq!(cls.to_vec::<i64>(), vec![0; 10]);
    // Anchors as (A, 4) are accepted too.
    let flat = toy_anchors().reshape([5, 4]).unwrap();
    let (_, _, cls) = multibox_target(&flat, &toy_labels()).unwrap();
    assert_eq!(cls.to_vec::<i64>(), vec![0, 1, 2, 0, 2]);
}

fn nms_demo() -> (Tensor, Tensor, Tensor) {
    let anchors = Tensor::from_vec(
        vec![
            0.1f32, 0.08, 0.52, 0.92, 0.08, 0.2, 0.56, 0.95, 0.15, 0.3, 0.62, 0.91, 0.55, 0.2, 0.9,
            0.88,
        ],
        &[1, 4, 4],
    )
    .unwrap();
    let offset_preds = Tensor::from_vec(vec![0f32; 16], &[1, 16]).unwrap();
    let cls_probs = Tensor::from_vec(
        vec![
            0.0f32, 0.0, 0.0, 0.0, 0.9, 0.8, 0.7, 0.1, 0.1, 0.2, 0.3, 0.9,
        ],
        &[1, 3, 4],
    )
    .unwrap();
    (anchors, offset_preds, cls_probs)
}

#[test]
fn nms_demo_matches_the_book() {
    // C.4 13.4 NMS demo.
    let (anchors, offset_preds, cls_probs) = nms_demo();
    let out = multibox_detection(&cls_probs, &offset_preds, &anchors, 0.5, POS_THRESHOLD).unwrap();
    assert_eq!(out.shape(), &[1, 4, 6]);
    let want = [
        0.0, 0.9, 0.1, 0.08, 0.52, 0.92, //
        1.0, 0.9, 0.55, 0.2, 0.9, 0.88, //
        -1.0, 0.8, 0.08, 0.2, 0.56, 0.95, //
        -1.0, 0.7, 0.15, 0.3, 0.62, 0.91,
    ];
    assert_close(&out.to_vec::<f32>(), &want, 1e-6, "multibox_detection");
    // nms alone on the same boxes and scores.
    let boxes = anchors.reshape([4, 4]).unwrap();
    let scores = Tensor::from_vec(vec![0.9f32, 0.8, 0.7, 0.9], &[4]).unwrap();
    assert_eq!(nms(&boxes, &scores, 0.5).unwrap(), vec![0, 3]);
    // (B, A, 4) offsets are accepted too.
    let off3 = offset_preds.reshape([1, 4, 4]).unwrap();
    let out3 =
        multibox_detection(&cls_probs, &off3, &anchors, NMS_THRESHOLD, POS_THRESHOLD).unwrap();
    assert_eq!(out3.to_vec::<f32>(), out.to_vec::<f32>());
}

#[test]
fn detection_pos_threshold_and_batches() {
    let (anchors, offset_preds, _) = nms_demo();
    // Two images; in the second, anchor 2 has a tiny confidence below pos_threshold.
    let probs = vec![
        0.0f32, 0.0, 0.0, 0.0, 0.9, 0.8, 0.7, 0.1, 0.1, 0.2, 0.3, 0.9, // image 0
        0.0, 0.0, 1.0, 0.0, 0.9, 0.0, 0.005, 0.0, 0.1, 0.0, 0.001, 0.6, // image 1
    ];
    let cls_probs = Tensor::from_vec(probs, &[2, 3, 4]).unwrap();
    let offs = Tensor::from_vec(vec![0f32; 32], &[2, 16]).unwrap();
    let _ = offset_preds;
    let out = multibox_detection(&cls_probs, &offs, &anchors, 0.5, POS_THRESHOLD).unwrap();
    assert_eq!(out.shape(), &[2, 4, 6]);
    let v = out.to_vec::<f32>();
    let img1: Vec<[f32; 2]> = v[24..].chunks_exact(6).map(|r| [r[0], r[1]]).collect();
    // Image 1 scores: [0.9 (c0), 0.0 (c0), 0.005 (c0), 0.6 (c1)].
    // Kept: anchor 0 (0.9), anchor 3 (0.6, IoU with 0 is 0); anchor 2 (0.005) overlaps
    // anchor 0 above 0.5? IoU(0,2) ~ 0.6 -> suppressed; anchor 1 too.
    assert_eq!(img1[0], [0.0, 0.9]);
    assert_eq!(img1[1], [1.0, 0.6]);
    // Non-kept rows in index order (1, then 2), conf < pos_threshold -> 1 - conf.
    assert_eq!(img1[2], [-1.0, 1.0]);
    assert!((img1[3][0] + 1.0).abs() < 1e-9 && (img1[3][1] - 0.995).abs() < 1e-6);
    // Image 0 is the book's demo.
    assert_eq!(v[0], 0.0);
    assert_eq!(v[6], 1.0);
}

#[test]
fn offsets_decode_through_offset_inverse() {
    let anchors = toy_anchors();
    let gt = t2(&[
        &[0.1, 0.08, 0.52, 0.92],
        &[0.1, 0.08, 0.52, 0.92],
        &[0.55, 0.2, 0.9, 0.88],
        &[0.55, 0.2, 0.9, 0.88],
        &[0.55, 0.2, 0.9, 0.88],
    ]);
    let off = offset_boxes(&anchors, &gt, OFFSET_EPS).unwrap();
    assert_eq!(off.shape(), &[5, 4]);
    let back = offset_inverse(&anchors, &off).unwrap();
    assert_close(
        &back.to_vec::<f32>(),
        &gt.to_vec::<f32>(),
        1e-5,
        "round trip",
    );
    // Zero offsets give the anchors back.
    let zero = Tensor::from_vec(vec![0f32; 20], &[5, 4]).unwrap();
    let same = offset_inverse(&anchors, &zero).unwrap();
    assert_close(
        &same.to_vec::<f32>(),
        &anchors.to_vec::<f32>(),
        1e-7,
        "zero offsets",
    );
}

#[test]
fn nms_nan_scores_rank_last_and_do_not_panic() {
    let boxes = t2(&[
        &[0.0, 0.0, 1.0, 1.0],
        &[2.0, 2.0, 3.0, 3.0],
        &[4.0, 4.0, 5.0, 5.0],
    ]);
    let scores = Tensor::from_vec(vec![f32::NAN, 0.2, 0.5], &[3]).unwrap();
    assert_eq!(nms(&boxes, &scores, 0.5).unwrap(), vec![2, 1, 0]);
    // Empty input.
    let e = Tensor::from_vec(Vec::<f32>::new(), &[0, 4]).unwrap();
    let s = Tensor::from_vec(Vec::<f32>::new(), &[0]).unwrap();
    assert_eq!(nms(&e, &s, 0.5).unwrap(), Vec::<usize>::new());
    // NaN offsets in detection: no panic, shape kept.
    let (anchors, _, cls_probs) = nms_demo();
    let offs = Tensor::from_vec(vec![f32::NAN; 16], &[1, 16]).unwrap();
    let out = multibox_detection(&cls_probs, &offs, &anchors, 0.5, POS_THRESHOLD).unwrap();
    assert_eq!(out.shape(), &[1, 4, 6]);
}

#[test]
fn multibox_target_labels_every_image_on_tinyssd_anchors() {
    let anchors = ssd_anchors();
    assert_eq!(anchors.shape(), &[1, 5444, 4]);
    let labels = shifting_labels(32);
    // (Its speed is measured in `cargo bench -p d2l-vision --bench vision`.)
    let (off, mask, cls) = multibox_target(&anchors, &labels).unwrap();
    assert_eq!(off.shape(), &[32, 4 * 5444]);
    assert_eq!(mask.shape(), &[32, 4 * 5444]);
    assert_eq!(cls.shape(), &[32, 5444]);
    // Every image has every class present (each ground truth is forced onto an anchor).
    let c = cls.to_vec::<i64>();
    for img in c.chunks_exact(5444) {
        assert!(img.contains(&1) && img.contains(&2));
    }
}

// ------------------------------------------------------------------------- errors

fn msg(e: Error) -> String {
    e.to_string()
}

#[test]
fn bad_input_is_an_error_naming_the_function() {
    let good = t2(&[&[0.0, 0.0, 1.0, 1.0]]);
    let three = t2(&[&[0.0, 0.0, 1.0]]);
    let flipped = t2(&[&[1.0, 0.0, 0.0, 1.0]]);
    let nan_box = t2(&[&[0.0, f32::NAN, 1.0, 1.0]]);

    let e = msg(box_corner_to_center(&three).unwrap_err());
    assert!(
        e.contains("box_corner_to_center") && e.contains("[1, 3]"),
        "{e}"
    );
    assert!(box_center_to_corner(&three).is_err());

    let e = msg(box_iou(&good, &three).unwrap_err());
    assert!(
        e.contains("box_iou") && e.contains("(n, 4)") && e.contains("[1, 3]"),
        "{e}"
    );
    let e = msg(box_iou(&flipped, &good).unwrap_err());
    assert!(e.contains("box_iou") && e.contains("x2 >= x1"), "{e}");
    assert!(box_iou(&good, &nan_box).is_err());
    let ints = Tensor::from_vec(vec![0i64, 0, 1, 1], &[1, 4]).unwrap();
    let e = msg(box_iou(&ints, &good).unwrap_err());
    assert!(e.contains("box_iou") && e.contains("i64"), "{e}");

    let e = msg(multibox_prior(4, 4, &[], &[1.0]).unwrap_err());
    assert!(e.contains("multibox_prior"), "{e}");
    assert!(multibox_prior(4, 4, &[0.5], &[]).is_err());
    assert!(multibox_prior(4, 4, &[0.5], &[-1.0]).is_err());
    assert!(multibox_prior(4, 4, &[f32::NAN], &[1.0]).is_err());
    let e = msg(multibox_prior(usize::MAX / 2, 3, &[0.5], &[1.0]).unwrap_err());
    assert!(e.contains("multibox_prior"), "{e}");
    let v = Tensor::from_vec(vec![0f32; 3], &[3]).unwrap();
    assert!(multibox_prior_for(&v, &[0.5], &[1.0]).is_err());

    let e = msg(assign_anchor_to_bbox(&flipped, &good, 0.5).unwrap_err());
    assert!(
        e.contains("assign_anchor_to_bbox") && e.contains("ground_truth"),
        "{e}"
    );
    assert!(assign_anchor_to_bbox(&good, &three, 0.5).is_err());
    assert!(assign_anchor_to_bbox(&good, &good, f32::NAN).is_err());

    let two = t2(&[&[0.0, 0.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0]]);
    let e = msg(offset_boxes(&good, &two, OFFSET_EPS).unwrap_err());
    assert!(e.contains("offset_boxes") && e.contains("[2, 4]"), "{e}");
    let zero_w = t2(&[&[0.5, 0.0, 0.5, 1.0]]);
    let e = msg(offset_boxes(&zero_w, &good, OFFSET_EPS).unwrap_err());
    assert!(e.contains("offset_boxes") && e.contains("x2 > x1"), "{e}");
    assert!(offset_boxes(&good, &flipped, OFFSET_EPS).is_err());
    let e = msg(offset_inverse(&good, &two).unwrap_err());
    assert!(e.contains("offset_inverse"), "{e}");

    // multibox_target
    let anchors = toy_anchors();
    let bad_labels = Tensor::from_vec(vec![0f32; 8], &[1, 2, 4]).unwrap();
    let e = msg(multibox_target(&anchors, &bad_labels).unwrap_err());
    assert!(
        e.contains("multibox_target") && e.contains("(B, G, 5)") && e.contains("[1, 2, 4]"),
        "{e}"
    );
    let flipped_label = Tensor::from_vec(vec![0.0f32, 0.5, 0.5, 0.2, 0.9], &[1, 1, 5]).unwrap();
    let e = msg(multibox_target(&anchors, &flipped_label).unwrap_err());
    assert!(
        e.contains("multibox_target") && e.contains("labels[0, 0, 1..5]"),
        "{e}"
    );
    let nan_class = Tensor::from_vec(vec![f32::NAN, 0.1, 0.1, 0.2, 0.9], &[1, 1, 5]).unwrap();
    assert!(multibox_target(&anchors, &nan_class).is_err());
    let inf_class = Tensor::from_vec(vec![f32::INFINITY, 0.1, 0.1, 0.2, 0.9], &[1, 1, 5]).unwrap();
    assert!(multibox_target(&anchors, &inf_class).is_err());
    let bad_anchors = Tensor::from_vec(vec![0f32; 8], &[2, 1, 4]).unwrap();
    let e = msg(multibox_target(&bad_anchors, &toy_labels()).unwrap_err());
    assert!(
        e.contains("multibox_target") && e.contains("(1, A, 4)") && e.contains("[2, 1, 4]"),
        "{e}"
    );

    // nms
    let scores2 = Tensor::from_vec(vec![0.5f32, 0.4], &[2]).unwrap();
    let e = msg(nms(&good, &scores2, 0.5).unwrap_err());
    assert!(e.contains("nms") && e.contains("[2]"), "{e}");
    let s1 = Tensor::from_vec(vec![0.5f32], &[1]).unwrap();
    assert!(nms(&flipped, &s1, 0.5).is_err());
    assert!(nms(&good, &s1, f32::NAN).is_err());

    // multibox_detection
    let (anchors, offs, probs) = nms_demo();
    let only_bg = Tensor::from_vec(vec![0f32; 4], &[1, 1, 4]).unwrap();
    let e = msg(multibox_detection(&only_bg, &offs, &anchors, 0.5, POS_THRESHOLD).unwrap_err());
    assert!(
        e.contains("multibox_detection") && e.contains("(B, C+1, A)"),
        "{e}"
    );
    let short = Tensor::from_vec(vec![0f32; 12], &[1, 12]).unwrap();
    let e = msg(multibox_detection(&probs, &short, &anchors, 0.5, POS_THRESHOLD).unwrap_err());
    assert!(
        e.contains("multibox_detection") && e.contains("[1, 12]"),
        "{e}"
    );
    let three_anchors = Tensor::from_vec([0f32, 0.0, 1.0, 1.0].repeat(3), &[1, 3, 4]).unwrap();
    assert!(multibox_detection(&probs, &offs, &three_anchors, 0.5, POS_THRESHOLD).is_err());
    assert!(multibox_detection(&probs, &offs, &anchors, f32::NAN, POS_THRESHOLD).is_err());
}

// --------------------------------------------------------------------- properties

fn arb_box() -> impl Strategy<Value = [f32; 4]> {
    (0.0f32..1.0, 0.0f32..1.0, 0.01f32..1.0, 0.01f32..1.0)
        .prop_map(|(x, y, w, h)| [x, y, x + w, y + h])
}

/// Boxes on a coarse grid, so that IoU ties are common.
fn arb_grid_box() -> impl Strategy<Value = [f32; 4]> {
    (0u8..4, 0u8..4, 1u8..3, 1u8..3).prop_map(|(x, y, w, h)| {
        let q = 0.25f32;
        let (x, y) = (x as f32 * q, y as f32 * q);
        [x, y, x + w as f32 * q, y + h as f32 * q]
    })
}

/// The book's `assign_anchor_to_bbox`, written naively on the row-major IoU matrix.
fn book_assign(gt: &[[f32; 4]], anchors: &[[f32; 4]], thr: f32) -> Vec<i64> {
    let (na, ng) = (anchors.len(), gt.len());
    let mut jac = box_iou(&boxes_tensor(anchors), &boxes_tensor(gt))
        .unwrap()
        .to_vec::<f32>();
    let mut map = vec![-1i64; na];
    for i in 0..na {
        let row = &jac[i * ng..(i + 1) * ng];
        let mut j = 0;
        for k in 1..ng {
            if row[k] > row[j] {
                j = k;
            }
        }
        if row[j] >= thr {
            map[i] = j as i64;
        }
    }
    for _ in 0..ng {
        let mut k = 0;
        for x in 1..jac.len() {
            if jac[x] > jac[k] {
                k = x;
            }
        }
        let (a, b) = (k / ng, k % ng);
        map[a] = b as i64;
        for r in 0..na {
            jac[r * ng + b] = -1.0;
        }
        for c in 0..ng {
            jac[a * ng + c] = -1.0;
        }
    }
    map
}

fn boxes_tensor(b: &[[f32; 4]]) -> Tensor {
    Tensor::from_vec(b.iter().flatten().copied().collect(), &[b.len(), 4]).unwrap()
}

proptest! {
    #[test]
    fn iou_is_symmetric_bounded_and_one_on_itself(
        b1 in prop::collection::vec(arb_box(), 1..8),
        b2 in prop::collection::vec(arb_box(), 1..8),
    ) {
        let (t1, t2) = (boxes_tensor(&b1), boxes_tensor(&b2));
        let m12 = box_iou(&t1, &t2).unwrap().to_vec::<f32>();
        let m21 = box_iou(&t2, &t1).unwrap().to_vec::<f32>();
        let (n1, n2) = (b1.len(), b2.len());
        for i in 0..n1 {
            for j in 0..n2 {
                let v = m12[i * n2 + j];
                prop_assert_eq!(v, m21[j * n1 + i]);
                prop_assert!((0.0..=1.0).contains(&v), "iou {}", v);
            }
        }
        let self_iou = box_iou(&t1, &t1).unwrap().to_vec::<f32>();
        for i in 0..n1 {
            prop_assert!((self_iou[i * n1 + i] - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn assign_matches_the_books_algorithm(
        anc in prop::collection::vec(prop_oneof![arb_box(), arb_grid_box()], 3..40),
        gt in prop::collection::vec(prop_oneof![arb_box(), arb_grid_box()], 1..4),
        thr in prop_oneof![Just(0.5f32), 0.0f32..1.0],
    ) {
        let got = assign_anchor_to_bbox(&boxes_tensor(&gt), &boxes_tensor(&anc), thr).unwrap();
        prop_assert_eq!(got, book_assign(&gt, &anc, thr));
    }

    #[test]
    fn offset_inverse_undoes_offset_boxes(
        pairs in prop::collection::vec((arb_box(), arb_box()), 1..10),
    ) {
        let anchors: Vec<[f32; 4]> = pairs.iter().map(|p| p.0).collect();
        let targets: Vec<[f32; 4]> = pairs.iter().map(|p| p.1).collect();
        let (a, x) = (boxes_tensor(&anchors), boxes_tensor(&targets));
        let off = offset_boxes(&a, &x, OFFSET_EPS).unwrap();
        let back = offset_inverse(&a, &off).unwrap().to_vec::<f32>();
        for (g, w) in back.iter().zip(x.to_vec::<f32>()) {
            prop_assert!((g - w).abs() < 1e-4, "{} vs {}", g, w);
        }
    }

    #[test]
    fn nms_keeps_no_overlapping_pair_in_score_order(
        items in prop::collection::vec((arb_box(), 0.0f32..1.0), 0..30),
        thr in 0.1f32..0.9,
    ) {
        let boxes: Vec<[f32; 4]> = items.iter().map(|p| p.0).collect();
        let scores: Vec<f32> = items.iter().map(|p| p.1).collect();
        let bt = if boxes.is_empty() {
            Tensor::from_vec(Vec::<f32>::new(), &[0, 4]).unwrap()
        } else {
            boxes_tensor(&boxes)
        };
        let st = Tensor::from_vec(scores.clone(), &[scores.len()]).unwrap();
        let keep = nms(&bt, &st, thr).unwrap();
        prop_assert!(!keep.is_empty() || boxes.is_empty());
        for w in keep.windows(2) {
            prop_assert!(scores[w[0]] >= scores[w[1]]);
        }
        let iou = box_iou(&bt, &bt).unwrap().to_vec::<f32>();
        let n = boxes.len();
        for (x, &i) in keep.iter().enumerate() {
            for &j in &keep[x + 1..] {
                prop_assert!(iou[i * n + j] <= thr, "kept {} and {} with IoU {}", i, j, iou[i * n + j]);
            }
        }
        // Every dropped box overlaps some kept box with a score at least its own.
        for d in (0..n).filter(|d| !keep.contains(d)) {
            prop_assert!(keep.iter().any(|&k| iou[k * n + d] > thr && scores[k] >= scores[d]));
        }
    }

    #[test]
    fn multibox_target_agrees_with_assign_and_offset_boxes(
        anc in prop::collection::vec(arb_box(), 1..20),
        gts in prop::collection::vec((arb_box(), 0u8..3), 1..4),
    ) {
        let at = boxes_tensor(&anc);
        let gt_boxes: Vec<[f32; 4]> = gts.iter().map(|g| g.0).collect();
        let mut lab = Vec::new();
        for (b, c) in &gts {
            lab.push(*c as f32);
            lab.extend_from_slice(b);
        }
        let labels = Tensor::from_vec(lab, &[1, gts.len(), 5]).unwrap();
        let (off, mask, cls) = multibox_target(&at, &labels).unwrap();
        let map = assign_anchor_to_bbox(&boxes_tensor(&gt_boxes), &at, 0.5).unwrap();
        let (off, mask, cls) = (off.to_vec::<f32>(), mask.to_vec::<f32>(), cls.to_vec::<i64>());
        for (a, &m) in map.iter().enumerate() {
            if m < 0 {
                prop_assert_eq!(cls[a], 0);
                prop_assert!(mask[4 * a..4 * a + 4].iter().all(|&v| v == 0.0));
                prop_assert!(off[4 * a..4 * a + 4].iter().all(|&v| v == 0.0));
            } else {
                let m = m as usize;
                prop_assert_eq!(cls[a], gts[m].1 as i64 + 1);
                prop_assert!(mask[4 * a..4 * a + 4].iter().all(|&v| v == 1.0));
                let one = offset_boxes(&boxes_tensor(&[anc[a]]), &boxes_tensor(&[gt_boxes[m]]), OFFSET_EPS)
                    .unwrap()
                    .to_vec::<f32>();
                prop_assert_eq!(&off[4 * a..4 * a + 4], &one[..]);
            }
        }
        // Each ground truth has at least one anchor when there are enough anchors.
        if anc.len() >= gts.len() {
            for g in 0..gts.len() as i64 {
                prop_assert!(map.contains(&g));
            }
        }
    }
}
