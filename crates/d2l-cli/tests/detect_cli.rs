//! The detection commands end to end: `d2l anchors` prints the book's 13.4 values and
//! writes the figures, `d2l train tiny-ssd` trains on the generated set, `d2l detect`
//! draws the trained model's boxes, and bad input gives a one-line error.

use std::process::Command;

mod common;
use common::*;

#[test]
fn anchors_reproduce_the_book_and_write_figures() {
    let dir = tempfile::tempdir().unwrap();
    let img = book_image("catdog.jpg");
    let img = img.to_str().unwrap();
    // `d2l anchors catdog.jpg OPTIONS… --out NAME`: its output and the figure's size.
    let anchors = |options: &[&str], name: &str| {
        let out = dir.path().join(name);
        let args = [
            &["anchors", img][..],
            options,
            &["--out", out.to_str().unwrap()],
        ];
        let o = d2l(&args.concat(), dir.path());
        (succeeded(&o), png_size(&out))
    };
    let (t, size) = anchors(&["--at", "250,250"], "a.png");
    // 13.4: (1, 2042040, 4) and the first anchor at (250, 250).
    assert!(t.contains("[1, 2042040, 4]"), "{t}");
    assert!(
        t.contains("s=0.75, r=1") && t.contains("[0.06, 0.07, 0.63, 0.82]"),
        "{t}"
    );
    assert_eq!(size, (728, 561));
    let (t, size) = anchors(&["--fmap", "4x4", "--sizes", "0.15"], "m.png");
    assert!(t.contains("48 anchors"), "{t}");
    assert_eq!(size, (728, 561));
}

#[test]
fn anchors_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let img = book_image("catdog.jpg");
    let img = img.to_str().unwrap();
    let c = dir.path();
    fails_with(&d2l(&["anchors", img], c), "exactly one of --at");
    fails_with(
        &d2l(&["anchors", img, "--at", "1,1", "--fmap", "2x2"], c),
        "exactly one of --at",
    );
    fails_with(
        &d2l(&["anchors", img, "--at", "561,0"], c),
        "outside the 561×728",
    );
    fails_with(
        &d2l(&["anchors", img, "--at", "a,b"], c),
        "two whole numbers",
    );
    fails_with(
        &d2l(&["anchors", img, "--at", "1,1", "--sizes", "0.5,-1"], c),
        "positive numbers",
    );
    fails_with(&d2l(&["anchors", img, "--fmap", "0x3"], c), "at least 1x1");
    let missing = c.join("nope.jpg");
    fails_with(
        &d2l(&["anchors", missing.to_str().unwrap(), "--at", "1,1"], c),
        "nope.jpg",
    );
    let corrupt = c.join("bad.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    fails_with(
        &d2l(&["anchors", corrupt.to_str().unwrap(), "--at", "1,1"], c),
        "bad.png",
    );
}

#[test]
fn train_tiny_ssd_then_detect() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let run = c.join("run");
    let args = [
        "tiny-ssd",
        "--dataset",
        "generated",
        "--epochs",
        "1",
        "--train-limit",
        "8",
        "--batch-size",
        "8",
    ];
    let (_, j) = train_json(&args, &run, c);
    let err = j["class_err"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&err), "{j}");
    assert!(j["val_bbox_mae"].as_f64().unwrap() >= 0.0, "{j}");
    assert_run_files(
        &run,
        &[
            "model.safetensors",
            "metrics.csv",
            "summary.json",
            "config.json",
            "curves.png",
        ],
    );
    let weights = run.join("model.safetensors");
    let banana = book_image("banana.jpg");
    let out = c.join("det.png");
    let (t, size) = draw(
        ["detect", "tiny-ssd"],
        &banana,
        &weights,
        &["--threshold", "0"],
        &out,
        c,
    );
    assert!(t.contains("detections above 0"), "{t}");
    assert_eq!(size, (256, 256));

    // Bad input.
    fail_cases(
        &[
            (
                &["train", "tiny-ssd", "--cls-loss", "hinge"],
                "--cls-loss expects ce, focal or focal:GAMMA",
            ),
            (
                &["train", "tiny-ssd", "--box-loss", "smooth-l1:-1"],
                "SIGMA > 0",
            ),
            (
                &["train", "tiny-ssd", "--dataset", "mnist"],
                "bananas` or `generated",
            ),
            (
                &["train", "tiny-ssd", "--width-mult", "0.5"],
                "does not apply to tiny-ssd",
            ),
            (
                &[
                    "train",
                    "tiny-ssd",
                    "--dataset",
                    "bananas",
                    "--num-classes",
                    "3",
                ],
                "--dataset generated",
            ),
            // Offline and without the banana zip: the error says where to put it.
            (
                &["train", "tiny-ssd", "--dataset", "bananas"],
                "banana-detection",
            ),
        ],
        c,
    );
    let not_ssd = c.join("other.safetensors");
    let lr = c.join("lr");
    let o = d2l(
        &[
            "train",
            "linreg",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            lr.to_str().unwrap(),
        ],
        c,
    );
    succeeded(&o);
    std::fs::copy(lr.join("model.safetensors"), &not_ssd).unwrap();
    fail_cases(
        &[
            (
                &draw_args("detect", "tiny-ssd", &banana, &not_ssd),
                "not TinySSD weights",
            ),
            (
                &draw_args("detect", "lenet", &banana, &weights),
                "not a detection model",
            ),
            (
                &[
                    &draw_args("detect", "tiny-ssd", &banana, &weights)[..],
                    &["--threshold", "2"],
                ]
                .concat(),
                "[0, 1]",
            ),
        ],
        c,
    );
}

#[test]
fn a_closed_stdout_pipe_ends_the_program_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let img = book_image("catdog.jpg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args([
            "anchors",
            img.to_str().unwrap(),
            "--fmap",
            "4x4",
            "--sizes",
            "0.15",
        ])
        .arg("--out")
        .arg(dir.path().join("f.png"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
