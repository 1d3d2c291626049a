//! Faster R-CNN and Mask R-CNN end to end: `d2l train faster-rcnn` and `mask-rcnn` train a
//! step on small generated sets and report their mAP, `d2l detect faster-rcnn` and
//! `d2l segment mask-rcnn` draw a trained model's boxes and masks, and bad input gives a
//! one-line error.

mod common;
use common::*;

/// Trains `model` for one epoch on a small generated set in a fresh temporary folder (also
/// the cache); returns the folder, the run folder in it and the JSON summary.
fn train(model: &str) -> (tempfile::TempDir, std::path::PathBuf, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = [
        model,
        "--dataset",
        "generated",
        "--resize",
        "64",
        "--num-classes",
        "2",
        "--max-objects",
        "2",
        "--epochs",
        "1",
        "--train-limit",
        "4",
        "--test-limit",
        "4",
        "--batch-size",
        "2",
    ];
    let (t, j) = train_json(&args, &run, dir.path());
    assert!(t.contains("box AP@0.5"), "{t}");
    (dir, run, j)
}

#[test]
fn train_faster_rcnn_then_detect() {
    let (dir, run, j) = train("faster-rcnn");
    let c = dir.path();
    assert!(j["train_loss"].as_f64().unwrap().is_finite(), "{j}");
    let ap = j["map"]["ap50"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ap), "{j}");
    assert!(j["map"]["mask_ap50"].is_null(), "{j}");
    assert_run_files(&run, &["model.safetensors", "metrics.csv", "map.json"]);
    let w = run.join("model.safetensors");
    let banana = book_image("banana.jpg");
    let out = c.join("det.png");
    let (t, size) = draw(
        ["detect", "faster-rcnn"],
        &banana,
        &w,
        &["--threshold", "0"],
        &out,
        c,
    );
    assert!(t.contains("detections above 0"), "{t}");
    assert_eq!(size, (256, 256));
    fail_cases(
        &[
            // Faster R-CNN weights have no mask head.
            (
                &draw_args("segment", "mask-rcnn", &banana, &w),
                "no mask head",
            ),
            (
                &["train", "faster-rcnn", "--dataset", "mnist"],
                "bananas` or `generated",
            ),
            (
                &["train", "faster-rcnn", "--optimizer", "adam"],
                "does not apply to faster-rcnn",
            ),
            (
                &["train", "mask-rcnn", "--dataset", "bananas"],
                "instance set",
            ),
            (
                &[
                    "train",
                    "faster-rcnn",
                    "--dataset",
                    "generated",
                    "--resize",
                    "8",
                ],
                "--resize",
            ),
        ],
        c,
    );
}

#[test]
fn train_mask_rcnn_then_segment() {
    let (dir, run, j) = train("mask-rcnn");
    let c = dir.path();
    let m = j["map"]["mask_ap50"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&m), "{j}");
    let w = run.join("model.safetensors");
    let banana = book_image("banana.jpg");
    let out = c.join("seg.png");
    let (t, size) = draw(["segment", "mask-rcnn"], &banana, &w, &[], &out, c);
    assert!(t.contains("instances scoring at least 0.5"), "{t}");
    assert_eq!(size, (256, 256));
    // Not R-CNN weights.
    let bad = c.join("bad.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let o = d2l(&draw_args("detect", "faster-rcnn", &banana, &bad), c);
    assert!(!o.status.success());
}
