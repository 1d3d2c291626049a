//! `d2l upsample` (D2L 13.11's bilinear ×2 demo): catdog.jpg (561×728) becomes a
//! 1456×1122 PNG; a bad scale or a missing image is a one-line error with exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn d2l(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .env("D2L_OFFLINE", "1")
        .output()
        .expect("the d2l binary runs")
}

fn catdog() -> PathBuf {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2l_images/catdog.jpg");
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
fn upsamples_catdog_twice_into_a_1456x1122_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("up.png");
    let img = catdog();
    let o = d2l(&[
        "upsample",
        img.to_str().unwrap(),
        "--scale",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("561×728"), "{text}");
    assert!(text.contains("1122×1456"), "{text}");
    assert_eq!(png_size(&out), (1456, 1122));
    let back = d2l_vision::image::read_image(&out).unwrap();
    assert_eq!(back.shape(), &[3, 1122, 1456]);
    assert!(!dir.path().join("up.png.part").exists());
}

#[test]
fn bad_scale_and_missing_image_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("up.png");
    let img = catdog();
    for bad in ["3", "0", "1", "16", "two", "-2"] {
        let o = d2l(&[
            "upsample",
            img.to_str().unwrap(),
            &format!("--scale={bad}"),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_one_line_failure(&o, "--scale");
        assert!(!out.exists());
    }
    let missing = dir.path().join("no-such-image.jpg");
    let o = d2l(&[
        "upsample",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_line_failure(&o, "no-such-image.jpg");
    assert!(!out.exists());
}
