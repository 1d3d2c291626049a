//! `d2l style` (D2L 13.12): a short run on the book's images with a random VGG-19 prints
//! the random-weights notice and writes the PNG (and the loss plot); a bad size or a
//! missing image is a one-line error with exit code 1.

use std::path::Path;
use std::process::Output;

mod common;
use common::{assert_run_files, book_image, one_line_failure, png_size, RUN_FILES};

/// Runs `d2l` from the repository root (where the book's images default to
/// `../shared/data/d2l_images`).
fn d2l(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    common::output(
        common::command(args)
            .current_dir(root)
            .env_remove("D2L_DATA_DIR"),
    )
}

#[test]
fn short_run_on_the_books_images_writes_the_png() {
    let _ = book_image("rainier.jpg");
    let _ = book_image("autumn-oak.jpg");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("styled.png");
    let o = d2l(&[
        "style",
        "--epochs",
        "2",
        "--size",
        "32x48",
        "--log-every",
        "1",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--run-dir",
        dir.path().join("run").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("randomly initialised"), "{stdout}");
    assert!(stdout.contains("texture-like"), "{stdout}");
    assert!(stdout.contains("rainier.jpg") && stdout.contains("autumn-oak.jpg"));
    assert!(stdout.contains("epoch    1"), "{stdout}");
    assert!(stdout.contains("epoch    2"), "{stdout}");
    assert!(stdout.contains("time per epoch"), "{stdout}");
    // (width, height) of the 32×48 (H×W) result.
    assert_eq!(png_size(&out), (48, 32));
    let plot = dir.path().join("styled-loss.png");
    assert!(plot.exists(), "{stdout}");
    // The run folder has the files every training run has.
    let run = dir.path().join("run");
    assert_run_files(&run, &RUN_FILES);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,content,style,tv,total,lr,images_per_sec,seconds\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn explicit_images_and_stated_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let c = book_image("rainier.jpg");
    let s = book_image("autumn-oak.jpg");
    let o = d2l(&[
        "style",
        "--content",
        c.to_str().unwrap(),
        "--style",
        s.to_str().unwrap(),
        "--epochs",
        "1",
        "--size",
        "20X30",
        "--stated-weights",
        "--out",
        out.to_str().unwrap(),
        "--run-dir",
        dir.path().join("run").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("as stated"), "{stdout}");
    assert_eq!(png_size(&out), (30, 20));
}

#[test]
fn bad_size_is_one_line() {
    for size in ["32", "0x48", "ax48", "32x1", ""] {
        let o = d2l(&["style", "--epochs", "1", "--size", size]);
        one_line_failure(&o, "--size");
    }
}

#[test]
fn missing_image_is_one_line() {
    for (flag, path, needle) in [
        ("--content", "/nonexistent/no.jpg", "no.jpg"),
        ("--style", "/nonexistent/style.jpg", "style.jpg"),
        ("--weights", "/nonexistent/vgg19.pth", "vgg19.pth"),
    ] {
        let o = d2l(&["style", "--epochs", "1", "--size", "32x48", flag, path]);
        one_line_failure(&o, needle);
    }
}

#[test]
fn zero_epochs_is_one_line() {
    let o = d2l(&["style", "--epochs", "0", "--size", "32x48"]);
    one_line_failure(&o, "--epochs");
}
