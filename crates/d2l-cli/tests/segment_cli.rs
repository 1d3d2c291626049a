//! `d2l train fcn` on the generated segmentation set and `d2l segment fcn` on one of its
//! images; bad input gives one-line errors.

mod common;
use common::*;

#[test]
fn train_fcn_then_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let run = c.join("run");
    let args = [
        "fcn",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--train-limit",
        "8",
        "--test-limit",
        "4",
    ];
    let (t, j) = train_json(&args, &run, c);
    assert!(t.contains("generated segmentation set"), "{t}");
    let acc = j["test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{j}");
    // The run folder has every file a run writes, whatever the task.
    assert_run_files(&run, &RUN_FILES);
    assert_run_files(&run, &["checkpoint.safetensors"]);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,train_loss,train_acc,train_miou,test_loss,test_acc,test_miou,"),
        "{csv}"
    );
    let miou = j["test_miou"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&miou), "{j}");
    // Segment a generated validation image (160×240 → cropped to 160×224).
    let img = std::fs::read_dir(c.join("generated"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("segmentation"))
        .unwrap()
        .join("JPEGImages/val_00000.png");
    let out = c.join("seg.png");
    let weights = run.join("model.safetensors");
    let (t, size) = draw(["segment", "fcn"], &img, &weights, &[], &out, c);
    assert!(t.contains("% of the pixels"), "{t}");
    assert_eq!(size, (448, 160));

    fail_cases(
        &[
            (
                &["train", "fcn", "--dataset", "mnist"],
                "`voc` or `generated`",
            ),
            (&["train", "fcn", "--dataset", "voc"], "VOCtrainval"),
            (
                &["train", "lenet", "--weights", "x.pth"],
                "applies to fcn only",
            ),
            (
                &draw_args("segment", "lenet", &img, std::path::Path::new("x")),
                "not a segmentation model",
            ),
            (
                &draw_args("segment", "fcn", &img, &c.join("none.safetensors")),
                "none.safetensors",
            ),
        ],
        c,
    );
}
