//! Bad sizes never crash the program (issue 22): every request over the memory limit —
//! from a flag, a model's width or the engine — is one `error:` line with exit code 1
//! naming what asked, the size and the limit; `--threads` is bounded; outputs go to
//! regular files only; weights with NaN are reported.

mod common;

use d2l_nn::Module;

use common::book_image;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `d2l ARGS` offline with the given environment (`D2L_MAX_ALLOC`, ...).
fn d2l_env(args: &[&str], env: &[(&str, &str)], cache: &Path) -> Output {
    let mut c = common::isolated(args, cache);
    c.env_remove("D2L_MAX_ALLOC")
        .env_remove("RAYON_NUM_THREADS")
        .envs(env.iter().copied());
    common::output(&mut c)
}

/// Exit code 1 and exactly one `error: ` line, the last on stderr, holding every needle
/// (notices about a data set fallback may come before it); no panic.
fn one_error_line(o: &Output, needles: &[&str], what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{what}: {err}");
    let line = err.trim_end().lines().last().unwrap_or_default();
    assert!(line.starts_with("error: "), "{what}: {err}");
    for n in needles {
        assert!(line.contains(n), "{what}: expected `{n}` in: {err}");
    }
}

/// A 4032×3024 PNG: an ordinary 12-megapixel photo's size.
fn photo(dir: &Path) -> String {
    let p = dir.join("photo-4032x3024.png");
    let img = d2l_tensor::Tensor::zeros_dtype(&[3, 3024, 4032], d2l_tensor::DType::U8);
    d2l_vision::image::write_png(&img, &p, false).unwrap();
    p.to_str().unwrap().to_string()
}

/// The commands of the issue's "Why", each of which once died with exit code 134 (an
/// allocation abort) or 101 (a capacity-overflow panic).
#[test]
fn the_issues_examples_end_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    let img = book_image("catdog.jpg");
    let img = img.to_str().unwrap();
    let photo = photo(dir.path());
    let out = dir.path().join("out.png");
    let out = out.to_str().unwrap();
    // ×8 of a 12-megapixel photo asks for 47 GB (the transposed convolution's buffers):
    // over the limit of a 16 GB machine, and over most machines' available memory.
    let o = d2l_env(
        &["upsample", &photo, "--scale", "8", "--out", out],
        &[("D2L_MAX_ALLOC", "16G")],
        cache,
    );
    one_error_line(
        &o,
        &["--scale 8", "32256", "memory limit", "D2L_MAX_ALLOC"],
        "upsample",
    );
    assert!(!Path::new(out).exists());
    // The rest ask for terabytes or more: over any machine's memory, so the default limit
    // (the available memory) applies.
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &[
                "augment", img, "--rows", "100000", "--cols", "100000", "--out", out,
            ],
            &["--rows 100000 --cols 100000", "PB", "memory limit"],
        ),
        (
            &["anchors", img, "--fmap", "100000x100000", "--out", out],
            &["--fmap 100000x100000", "TB", "memory limit"],
        ),
        (
            &["train", "mlp", "--width-mult", "1e7", "--epochs", "1"],
            &["[2560000000, 784]", "TB", "memory limit"],
        ),
        (
            &["train", "mlp", "--resize", "100000", "--epochs", "1"],
            &["--resize 100000", "TB", "memory limit"],
        ),
        (
            &["summary", "mlp", "--input", "1x100000x100000"],
            &["--input 1x100000x100000", "memory limit"],
        ),
        (
            &["style", "--size", "100000x100000", "--epochs", "1"],
            &["--size 100000x100000", "TB", "memory limit"],
        ),
        (
            &["summary", "resnet18", "--input", "1x4000000000x4000000000"],
            &["--input 1x4000000000x4000000000", "EB", "memory limit"],
        ),
    ];
    for (args, needles) in cases {
        let o = d2l_env(args, &[], cache);
        one_error_line(&o, needles, &args.join(" "));
    }
}

/// Every flag that sizes an allocation, asked for a few gigabytes under a 64 MB limit:
/// each is refused before the allocation with a line naming the flag.
#[test]
fn every_size_taking_flag_is_checked_against_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    let img = book_image("catdog.jpg");
    let img = img.to_str().unwrap();
    let out = dir.path().join("out.png");
    let out = out.to_str().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let data = data.to_str().unwrap();
    let limit = [("D2L_MAX_ALLOC", "64MiB")];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["upsample", img, "--scale", "8", "--out", out],
            &["--scale 8"],
        ),
        (
            vec!["augment", img, "--rows", "20", "--cols", "20", "--out", out],
            &["--rows 20 --cols 20"],
        ),
        (
            vec!["augment", img, "--scale", "100", "--out", out],
            &["--scale 100"],
        ),
        (
            vec!["anchors", img, "--fmap", "3000x3000", "--out", out],
            &["--fmap 3000x3000"],
        ),
        (
            vec![
                "anchors",
                img,
                "--at",
                "1,1",
                "--sizes",
                "0.1,0.2,0.3,0.4,0.5",
                "--out",
                out,
            ],
            &["--at 1,1", "7 anchors per pixel"],
        ),
        (
            vec!["summary", "resnet18", "--input", "3x5000x5000"],
            &["--input 3x5000x5000"],
        ),
        (
            vec!["summary", "mlp", "--width-mult", "1000"],
            &["--width-mult 1000", "[256000, 784]"],
        ),
        (
            vec!["style", "--size", "1000x1000", "--epochs", "1"],
            &["--size 1000x1000"],
        ),
        (
            vec!["train", "mlp", "--resize", "1000", "--epochs", "1"],
            &["--resize 1000"],
        ),
        (
            vec!["train", "mlp", "--width-mult", "1000", "--epochs", "1"],
            &["[256000, 784]"],
        ),
        (
            vec!["train", "lenet", "--width-mult", "2000", "--epochs", "1"],
            &["memory limit"],
        ),
        (
            vec!["augment-demo", "--width-mult", "1000", "--epochs", "1"],
            &["memory limit"],
        ),
    ];
    let mut cases = cases;
    for model in ["char-rnn", "char-rnn-scratch"] {
        cases.push((
            vec![
                "train",
                model,
                "--num-hiddens",
                "100000",
                "--epochs",
                "1",
                "--data-dir",
                data,
            ],
            &["[100000, 100000]"],
        ));
    }
    for (args, needles) in cases {
        let o = d2l_env(&args, &limit, cache);
        let mut all = vec!["memory limit of 67.1 MB (67108864 bytes) (set by D2L_MAX_ALLOC)"];
        all.extend_from_slice(needles);
        one_error_line(&o, &all, &args.join(" "));
    }
    // The same sizes pass the check under a limit they fit (the command then runs).
    let o = d2l_env(&["summary", "mlp", "--width-mult", "2"], &limit, cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_limit_and_thread_counts_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    let cores = std::thread::available_parallelism().unwrap().get();
    let bound = format!(
        "over the bound of {} threads (4 × the {cores} logical cores",
        4 * cores
    );
    let over = (4 * cores + 1).to_string();
    for args in [
        vec!["train", "mlp", "--threads", "100000"],
        vec!["train", "mlp", "--threads", over.as_str()],
        vec![
            "eval",
            "mlp",
            "--weights",
            "w.safetensors",
            "--threads",
            "3000",
        ],
        vec!["bench", "--threads", "3000"],
        vec!["style", "--threads", "3000"],
    ] {
        let o = d2l_env(&args, &[], cache);
        one_error_line(&o, &["--threads", &bound], &args.join(" "));
    }
    let o = d2l_env(&["models"], &[("RAYON_NUM_THREADS", "100000")], cache);
    one_error_line(
        &o,
        &["RAYON_NUM_THREADS 100000", &bound],
        "RAYON_NUM_THREADS",
    );
    for bad in ["lots", "0", "-5", "12Q"] {
        let o = d2l_env(&["models"], &[("D2L_MAX_ALLOC", bad)], cache);
        one_error_line(&o, &["D2L_MAX_ALLOC expects a positive size", bad], bad);
    }
    // In bounds, both run.
    let o = d2l_env(
        &["models"],
        &[("RAYON_NUM_THREADS", "2"), ("D2L_MAX_ALLOC", "8G")],
        cache,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = book_image("catdog.jpg");
    let img = img.to_str().unwrap();
    let fifo = d.join("fifo.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let sub = d.join("sub.png");
    std::fs::create_dir(&sub).unwrap();
    let to_null = d.join("null.png");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    for (out, kind) in [
        (&fifo, "is a FIFO, not a regular file"),
        (&sub, "is a directory, not a regular file"),
        (&to_null, "a character device, not a regular file"),
    ] {
        let out = out.to_str().unwrap();
        for args in [
            vec!["upsample", img, "--out", out],
            vec!["augment", img, "--out", out],
            vec!["anchors", img, "--at", "10,10", "--out", out],
        ] {
            let o = d2l_env(&args, &[], d);
            one_error_line(&o, &[out, kind], &args.join(" "));
        }
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A link to a regular file is written through; the link stays.
    let real = d.join("real.png");
    std::fs::write(&real, b"old").unwrap();
    let link = d.join("link.png");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = d2l_env(&["upsample", img, "--out", link.to_str().unwrap()], &[], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(common::png_size(&real), (1456, 1122));
}

#[test]
fn weights_with_nan_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    // The MLP's weights, one of them NaN.
    let model = d2l_models::zoo::model("mlp").unwrap();
    let net = model.build(&model.default_config()).unwrap();
    let w = dir.path().join("nan.safetensors");
    let sd: Vec<(String, d2l_tensor::Tensor)> = net
        .state_dict()
        .into_iter()
        .map(|(n, t)| {
            let mut v = t.to_vec::<f32>();
            if n.ends_with("weight") {
                v[0] = f32::NAN;
            }
            (n, d2l_tensor::Tensor::from_vec(v, t.shape()).unwrap())
        })
        .collect();
    d2l_nn::serialize::save(&w, &sd).unwrap();
    let o = d2l_env(
        &[
            "eval",
            "mlp",
            "--weights",
            w.to_str().unwrap(),
            "--test-limit",
            "50",
        ],
        &[],
        cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("2 NaN or infinite values in 2 tensor(s)"),
        "{err}"
    );
}
