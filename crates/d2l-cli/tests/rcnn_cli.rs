//! Faster R-CNN and Mask R-CNN end to end: `d2l train faster-rcnn` and `mask-rcnn` train a
//! step on small generated sets and report their mAP, `d2l detect faster-rcnn` and
//! `d2l segment mask-rcnn` draw a trained model's boxes and masks, and bad input gives a
//! one-line error.

mod common;
use common::*;

fn train(model: &str, run: &std::path::Path, c: &std::path::Path) -> serde_json::Value {
    let o = d2l(
        &[
            "train",
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
            "--quiet",
            "--json",
            "--out",
            run.to_str().unwrap(),
        ],
        c,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("box AP@0.5"), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn train_faster_rcnn_then_detect() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let run = c.join("run");
    let j = train("faster-rcnn", &run, c);
    assert!(j["train_loss"].as_f64().unwrap().is_finite(), "{j}");
    let ap = j["map"]["ap50"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ap), "{j}");
    assert!(j["map"]["mask_ap50"].is_null(), "{j}");
    for f in ["model.safetensors", "metrics.csv", "map.json"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let w = run.join("model.safetensors");
    let out = c.join("det.png");
    let banana = book_image("banana.jpg");
    let o = d2l(
        &[
            "detect",
            "faster-rcnn",
            banana.to_str().unwrap(),
            "--weights",
            w.to_str().unwrap(),
            "--threshold",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
        c,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("detections above 0"), "{t}");
    assert_eq!(png_size(&out), (256, 256));
    // Faster R-CNN weights have no mask head.
    fails_with(
        &d2l(
            &[
                "segment",
                "mask-rcnn",
                banana.to_str().unwrap(),
                "--weights",
                w.to_str().unwrap(),
            ],
            c,
        ),
        "no mask head",
    );
    fails_with(
        &d2l(&["train", "faster-rcnn", "--dataset", "mnist"], c),
        "bananas` or `generated",
    );
    fails_with(
        &d2l(&["train", "faster-rcnn", "--optimizer", "adam"], c),
        "does not apply to faster-rcnn",
    );
    fails_with(
        &d2l(&["train", "mask-rcnn", "--dataset", "bananas"], c),
        "instance set",
    );
    fails_with(
        &d2l(
            &[
                "train",
                "faster-rcnn",
                "--dataset",
                "generated",
                "--resize",
                "8",
            ],
            c,
        ),
        "--resize",
    );
}

#[test]
fn train_mask_rcnn_then_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let run = c.join("run");
    let j = train("mask-rcnn", &run, c);
    let m = j["map"]["mask_ap50"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&m), "{j}");
    let w = run.join("model.safetensors");
    let out = c.join("seg.png");
    let banana = book_image("banana.jpg");
    let o = d2l(
        &[
            "segment",
            "mask-rcnn",
            banana.to_str().unwrap(),
            "--weights",
            w.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        c,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("instances scoring at least 0.5"), "{t}");
    assert_eq!(png_size(&out), (256, 256));
    // Not R-CNN weights.
    let bad = c.join("bad.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let o = d2l(
        &[
            "detect",
            "faster-rcnn",
            banana.to_str().unwrap(),
            "--weights",
            bad.to_str().unwrap(),
        ],
        c,
    );
    assert!(!o.status.success());
}
