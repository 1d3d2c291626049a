//! `d2l train fcn` on the generated segmentation set and `d2l segment fcn` on one of its
//! images; bad input gives one-line errors.

mod common;
use common::*;

#[test]
fn train_fcn_then_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let run = c.join("run");
    let o = d2l(
        &[
            "train",
            "fcn",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--train-limit",
            "8",
            "--test-limit",
            "4",
            "--quiet",
            "--json",
            "--out",
            run.to_str().unwrap(),
        ],
        c,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("generated segmentation set"), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let j: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let acc = j["test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{j}");
    // The run folder has every file a run writes, whatever the task.
    for f in [
        "config.json",
        "metrics.csv",
        "curves.png",
        "curves.svg",
        "summary.json",
        "model.safetensors",
        "checkpoint.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
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
    let o = d2l(
        &[
            "segment",
            "fcn",
            img.to_str().unwrap(),
            "--weights",
            run.join("model.safetensors").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        c,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("% of the pixels"), "{t}");
    let png = std::fs::read(&out).unwrap();
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (448, 160));

    fails_with(
        &d2l(&["train", "fcn", "--dataset", "mnist"], c),
        "`voc` or `generated`",
    );
    fails_with(
        &d2l(&["train", "fcn", "--dataset", "voc"], c),
        "VOCtrainval",
    );
    fails_with(
        &d2l(&["train", "lenet", "--weights", "x.pth"], c),
        "applies to fcn only",
    );
    fails_with(
        &d2l(
            &["segment", "lenet", img.to_str().unwrap(), "--weights", "x"],
            c,
        ),
        "not a segmentation model",
    );
    fails_with(
        &d2l(
            &[
                "segment",
                "fcn",
                img.to_str().unwrap(),
                "--weights",
                c.join("none.safetensors").to_str().unwrap(),
            ],
            c,
        ),
        "none.safetensors",
    );
}
