//! Helpers shared by the chapter-13 CLI tests: run the binary offline with its own cache
//! folder, read its output, check one-line failures and PNG sizes, find the book's images.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `d2l ARGS` offline with `cache` as its cache folder and no data dir.
pub fn d2l(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .env("D2L_OFFLINE", "1")
        .env("D2L_CACHE_DIR", cache)
        .env_remove("D2L_DATA_DIR")
        .output()
        .expect("the d2l binary runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The book's images, in the shared data folder beside the repository (CI has it).
pub fn book_image(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/d2l_images")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: ../shared/data must sit beside the repository",
        p.display()
    );
    p
}

pub fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

pub fn fails_with(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected a failure: {t}");
    assert!(t.contains(needle), "expected `{needle}` in: {t}");
    assert!(!t.contains("panicked"), "{t}");
}
