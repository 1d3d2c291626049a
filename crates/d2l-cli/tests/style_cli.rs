//! `d2l style` (D2L 13.12): a short run on the book's images with a random VGG-19 prints
//! the random-weights notice and writes the PNG (and the loss plot); a bad size or a
//! missing image is a one-line error with exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `d2l` from the repository root (where the book's images default to
/// `../shared/data/d2l_images`).
fn d2l(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .current_dir(repo_root())
        .env("D2L_OFFLINE", "1")
        .env_remove("D2L_DATA_DIR")
        .output()
        .expect("the d2l binary runs")
}

fn book_image(name: &str) -> PathBuf {
    let p = repo_root().join("../shared/data/d2l_images").join(name);
    assert!(p.exists(), "../shared/data must sit beside the repository");
    p
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&b[12..16], b"IHDR");
    let be = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    (be(&b[16..20]), be(&b[20..24]))
}

fn assert_one_line_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err}");
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
    for f in [
        "config.json",
        "metrics.csv",
        "curves.png",
        "curves.svg",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
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
        assert_one_line_failure(&o, "--size");
    }
}

#[test]
fn missing_image_is_one_line() {
    let o = d2l(&[
        "style",
        "--epochs",
        "1",
        "--size",
        "32x48",
        "--content",
        "/nonexistent/no.jpg",
    ]);
    assert_one_line_failure(&o, "no.jpg");
    let o = d2l(&[
        "style",
        "--epochs",
        "1",
        "--size",
        "32x48",
        "--style",
        "/nonexistent/style.jpg",
    ]);
    assert_one_line_failure(&o, "style.jpg");
    let o = d2l(&[
        "style",
        "--epochs",
        "1",
        "--size",
        "32x48",
        "--weights",
        "/nonexistent/vgg19.pth",
    ]);
    assert_one_line_failure(&o, "vgg19.pth");
}

#[test]
fn zero_epochs_is_one_line() {
    let o = d2l(&["style", "--epochs", "0", "--size", "32x48"]);
    assert_one_line_failure(&o, "--epochs");
}
