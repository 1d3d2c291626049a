//! `d2l augment` end to end (D2L 13.1's figures): a PNG of the expected size for the
//! book's cat1.jpg, byte-identical output for the same seed, and one-line errors for a bad
//! transform name, a missing image and a corrupt image.

use std::path::{Path, PathBuf};

mod common;
use common::{d2l_offline as d2l, ok, stderr};

/// The book's cat1.jpg when the shared data is present, else a generated 400 × 500 JPEG
/// (the same size) so that the test runs anywhere.
fn cat1(dir: &Path) -> PathBuf {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2l_images/cat1.jpg");
    if shared.is_file() {
        return shared;
    }
    let p = dir.join("cat1.png");
    let (h, w) = (400usize, 500usize);
    let mut v = vec![0u8; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            v[y * w + x] = (x * 255 / w) as u8;
            v[h * w + y * w + x] = (y * 255 / h) as u8;
            v[2 * h * w + y * w + x] = ((x + y) % 256) as u8;
        }
    }
    let t = d2l_tensor::Tensor::from_vec(v, &[3, h, w]).unwrap();
    d2l_vision::image::write_png(&t, &p, false).unwrap();
    p
}

fn png_size(p: &Path) -> (usize, usize) {
    let img = d2l_vision::image::read_image(p).unwrap();
    (img.shape()[2], img.shape()[1])
}

#[test]
fn writes_the_book_grids_for_cat1() {
    let dir = tempfile::tempdir().unwrap();
    let img = cat1(dir.path());
    let img = img.to_str().unwrap();
    // `d2l augment IMG ARGS… --out NAME.png`: its standard output and the grid's size.
    let augment = |name: &str, args: &[&str]| {
        let out = dir.path().join(format!("{name}.png"));
        let stdout = ok(&[
            &["augment", img][..],
            args,
            &["--out", out.to_str().unwrap()],
        ]
        .concat());
        (stdout, png_size(&out))
    };
    // flip keeps 400 × 500: tiles of 200 × 250 at scale 0.5, 2 × 4 with 4-pixel margins.
    let (stdout, size) = augment("flip", &["--transform", "flip"]);
    assert!(stdout.contains("1020×412"), "{stdout}");
    assert_eq!(size, (4 * 250 + 5 * 4, 2 * 200 + 3 * 4));
    // crop gives 200 × 200 images: tiles of 100 × 100.
    let crop_grid = (4 * 100 + 5 * 4, 2 * 100 + 3 * 4);
    for (t, want) in [
        ("crop", crop_grid),
        ("all", crop_grid),
        ("vflip", (1020, 412)),
        ("color", (1020, 412)),
        ("hue", (1020, 412)),
        ("brightness", (1020, 412)),
    ] {
        assert_eq!(augment(t, &["--transform", t]).1, want, "{t}");
    }
    // Other layouts and titles.
    let titled = [
        "--transform",
        "crop",
        "--rows",
        "1",
        "--cols",
        "3",
        "--scale",
        "1",
        "--titles",
    ];
    let (_, size) = augment("titled", &titled);
    assert_eq!(size, (3 * 200 + 4 * 4, 200 + 20 + 2 * 4));
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let img = cat1(dir.path());
    let img = img.to_str().unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        ok(&[
            "augment",
            img,
            "--transform",
            "all",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        std::fs::read(out).unwrap()
    };
    let a = run("a.png", "3");
    assert_eq!(a, run("b.png", "3"));
    assert_ne!(a, run("c.png", "4"));
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = cat1(dir.path());
    let img = img.to_str().unwrap();
    let out = dir.path().join("x.png");
    let out = out.to_str().unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a JPEG").unwrap();
    let missing = dir.path().join("missing.jpg");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["augment", img, "--transform", "rotate", "--out", out],
            "unknown transform `rotate`",
        ),
        (
            vec!["augment", missing.to_str().unwrap(), "--out", out],
            "missing.jpg",
        ),
        (
            vec!["augment", corrupt.to_str().unwrap(), "--out", out],
            "corrupt.jpg",
        ),
        (vec!["augment", img, "--rows", "0", "--out", out], "--rows"),
        (
            vec!["augment", img, "--scale", "0", "--out", out],
            "--scale",
        ),
    ];
    for (args, want) in cases {
        let o = d2l(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(out).exists());
}
