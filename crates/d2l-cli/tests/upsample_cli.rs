//! `d2l upsample` (D2L 13.11's bilinear ×2 demo): catdog.jpg (561×728) becomes a
//! 1456×1122 PNG; a bad scale or a missing image is a one-line error with exit code 1.

mod common;
use common::{book_image, d2l_offline as d2l, one_line_failure, png_size, text};

#[test]
fn upsamples_catdog_twice_into_a_1456x1122_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("up.png");
    let img = book_image("catdog.jpg");
    let o = d2l(&[
        "upsample",
        img.to_str().unwrap(),
        "--scale",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = text(&o);
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
    let img = book_image("catdog.jpg");
    for bad in ["3", "0", "1", "16", "two", "-2"] {
        let o = d2l(&[
            "upsample",
            img.to_str().unwrap(),
            &format!("--scale={bad}"),
            "--out",
            out.to_str().unwrap(),
        ]);
        one_line_failure(&o, "--scale");
        assert!(!out.exists());
    }
    let missing = dir.path().join("no-such-image.jpg");
    let o = d2l(&[
        "upsample",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    one_line_failure(&o, "no-such-image.jpg");
    assert!(!out.exists());
}
