//! Helpers shared by the CLI tests: run the binary offline (with its own cache folder or
//! with the caller's environment), read its output and last JSON line, check one-line
//! failures, run folders and PNG sizes, find the book's images and the shared data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `d2l ARGS` offline (`D2L_OFFLINE=1`), not started yet: the caller adds what else its
/// test needs (environment, working folder) and runs it with [`output`].
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d2l"));
    c.args(args).env("D2L_OFFLINE", "1");
    c
}

/// `d2l ARGS` offline with `cache` as its cache folder and no data dir, not started yet.
pub fn isolated(args: &[&str], cache: &Path) -> Command {
    let mut c = command(args);
    c.env("D2L_CACHE_DIR", cache).env_remove("D2L_DATA_DIR");
    c
}

/// Runs a command built by [`command`] or [`isolated`] to its end.
pub fn output(c: &mut Command) -> Output {
    c.output().expect("the d2l binary runs")
}

/// Runs `d2l ARGS` offline with `cache` as its cache folder and no data dir.
pub fn d2l(args: &[&str], cache: &Path) -> Output {
    output(&mut isolated(args, cache))
}

/// Runs `d2l ARGS` offline, with the rest of the caller's environment.
pub fn d2l_offline(args: &[&str]) -> Output {
    output(&mut command(args))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output and standard error, in that order.
pub fn out_err(o: &Output) -> (String, String) {
    (stdout(o), stderr(o))
}

/// Standard output followed by standard error.
pub fn text(o: &Output) -> String {
    stdout(o) + &stderr(o)
}

/// Runs `d2l ARGS` offline ([`d2l_offline`]), asserts that it succeeded and returns its
/// standard output.
pub fn ok(args: &[&str]) -> String {
    let o = d2l_offline(args);
    let out = stdout(&o);
    assert!(o.status.success(), "{args:?}: {}\n{out}", stderr(&o));
    out
}

/// Asserts that the run succeeded (showing its output otherwise); returns its output.
pub fn succeeded(o: &Output) -> String {
    let t = text(o);
    assert!(o.status.success(), "{t}");
    t
}

/// The last line of standard output, read as JSON (the `--json` summary).
pub fn last_json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).lines().last().expect("output")).expect("the last line is JSON")
}

/// Trains with `d2l train ARGS… --quiet --json --out RUN` ([`d2l`] with `cache`), asserts
/// that it succeeded and returns its output and its JSON summary.
pub fn train_json(args: &[&str], run: &Path, cache: &Path) -> (String, serde_json::Value) {
    let mut all = vec!["train"];
    all.extend_from_slice(args);
    all.extend(["--quiet", "--json", "--out", run.to_str().unwrap()]);
    let o = d2l(&all, cache);
    (succeeded(&o), last_json(&o))
}

/// `COMMAND MODEL IMAGE --weights WEIGHTS`: the drawing commands (`detect`, `segment`)
/// before their options.
pub fn draw_args<'a>(
    command: &'a str,
    model: &'a str,
    image: &'a Path,
    weights: &'a Path,
) -> Vec<&'a str> {
    vec![
        command,
        model,
        image.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
    ]
}

/// Runs `d2l COMMAND MODEL IMAGE --weights WEIGHTS OPTIONS… --out OUT` ([`draw_args`],
/// [`d2l`] with `cache`), asserts that it succeeded; returns its output and the size of
/// the PNG it wrote.
pub fn draw(
    [command, model]: [&str; 2],
    image: &Path,
    weights: &Path,
    options: &[&str],
    out: &Path,
    cache: &Path,
) -> (String, (u32, u32)) {
    let args = draw_args(command, model, image, weights);
    let o = d2l(
        &[&args[..], options, &["--out", out.to_str().unwrap()]].concat(),
        cache,
    );
    (succeeded(&o), png_size(out))
}

/// Runs each `(arguments, needle)` case with [`d2l`] and checks that it fails with
/// `needle` in its output ([`fails_with`]).
pub fn fail_cases(cases: &[(&[&str], &str)], cache: &Path) {
    for (args, needle) in cases {
        fails_with(&d2l(args, cache), needle);
    }
}

/// The files every training run writes in its run folder, whatever the task.
pub const RUN_FILES: [&str; 6] = [
    "config.json",
    "metrics.csv",
    "curves.png",
    "curves.svg",
    "summary.json",
    "model.safetensors",
];

/// Asserts that every one of `files` is in the run folder `run`.
pub fn assert_run_files(run: &Path, files: &[&str]) {
    for f in files {
        assert!(run.join(f).is_file(), "{f} missing in {}", run.display());
    }
}

/// The shared data folder beside the repository when `probe` (a path inside it) is
/// there; `None` otherwise, and the caller prints its skip line.
pub fn shared_data(probe: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.join(probe).exists().then_some(p)
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

/// A test fixture of another crate, e.g. `fixture("d2l-nn/tests/fixtures/pth/tiny_zip.pth")`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A failure whose output holds `needle`, without a panic.
pub fn fails_with(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected a failure: {t}");
    assert!(t.contains(needle), "expected `{needle}` in: {t}");
    assert!(!t.contains("panicked"), "{t}");
}

/// Exit code 1 and one line on stderr, `error: …` holding `needle`; no panic.
pub fn one_line_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err}");
}
