//! `--device` and `d2l devices` end to end. Without `D2L_SIMULATE_CUDA` this machine has
//! no usable GPU (no driver, or a build without the `cuda` feature): `cuda` is an error
//! that says why and `auto` falls back to the CPU with a notice. With
//! `D2L_SIMULATE_CUDA=1` in the child's environment there is one *simulated* GPU (CPU
//! kernels behind every device rule), which must give the CPU's numbers.

mod common;

use common::{last_json, stderr, text};
use std::path::Path;
use std::process::Output;

/// Runs `d2l ARGS` offline with `cache` as its cache folder; `simulate` puts
/// `D2L_SIMULATE_CUDA=1` in its environment (and it is removed otherwise).
fn d2l(args: &[&str], cache: &Path, simulate: bool) -> Output {
    let mut c = common::isolated(args, cache);
    c.env("BENCH_TARGET_S", "0.02");
    if simulate {
        c.env("D2L_SIMULATE_CUDA", "1");
    } else {
        c.env_remove("D2L_SIMULATE_CUDA");
    }
    common::output(&mut c)
}

/// A small, fast `d2l train softmax` on the built-in shapes set.
fn train_args<'a>(device: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "softmax",
        "--dataset",
        "shapes",
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--seed",
        "5",
        "--quiet",
        "--json",
        "--device",
        device,
        "--out",
        out,
    ]
}

/// Runs the training of [`train_args`] on `device` into the run folder `run`, with the
/// folder above it as the cache.
fn train(device: &str, run: &Path, simulate: bool) -> Output {
    let cache = run.parent().unwrap();
    d2l(&train_args(device, run.to_str().unwrap()), cache, simulate)
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train("cuda", &run, false);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err.starts_with("error: cuda:0 is not available: "), "{err}");
    // The reason follows the colon: not empty, one line, no panic.
    let why = err
        .trim_end()
        .trim_start_matches("error: cuda:0 is not available: ");
    assert!(why.len() > 10 && !why.contains('\n'), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Other computing commands refuse the same way, before any work.
    let o = d2l(&["bench", "W1", "--device", "cuda:1"], dir.path(), false);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("cuda:1 is not available: "),
        "{}",
        text(&o)
    );
    // `d2l devices` says why there is no GPU, and succeeds.
    let o = d2l(&["devices"], dir.path(), false);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.starts_with("cpu"), "{out}");
    assert!(out.contains("no CUDA GPU: "), "{out}");
}

#[test]
fn auto_without_a_gpu_runs_on_the_cpu_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train("auto", &run, false);
    let err = stderr(&o);
    assert!(o.status.success(), "{}", text(&o));
    let notice: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("--device auto"))
        .collect();
    assert_eq!(notice.len(), 1, "{err}");
    assert!(notice[0].starts_with("device: cpu") && notice[0].contains("no usable GPU"));
    assert_eq!(last_json(&o)["device"], "cpu");
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"device\": \"cpu\""), "{summary}");
}

#[test]
fn bad_device_names_list_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["train", "softmax", "--device", "tpu"][..],
        &[
            "eval",
            "softmax",
            "--weights",
            "w.safetensors",
            "--device",
            "cuda:x",
        ],
        &["bench", "W1", "--device", "gpu1"],
    ] {
        let o = d2l(args, dir.path(), false);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            err.contains("expected cpu, cuda, cuda:N (N = 0, 1, ...) or auto"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn simulated_gpu_trains_like_the_cpu_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let cpu_run = dir.path().join("cpu");
    let gpu_run = dir.path().join("gpu");
    let o = train("cpu", &cpu_run, true);
    assert!(o.status.success(), "{}", text(&o));
    let cpu = last_json(&o);
    let o = train("cuda", &gpu_run, true);
    assert!(o.status.success(), "{}", text(&o));
    let gpu = last_json(&o);
    assert_eq!(cpu["device"], "cpu");
    assert_eq!(gpu["device"], "cuda:0");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gpu_run.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["device"], "cuda:0");
    let (a, b) = (
        cpu["train_loss"].as_f64().unwrap(),
        gpu["train_loss"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() <= 1e-5 * a.abs(),
        "cpu {a} vs simulated cuda {b}"
    );
    assert_eq!(cpu["test_acc"], gpu["test_acc"]);

    // The weights saved from the device load and evaluate on either device alike.
    let weights = gpu_run.join("model.safetensors");
    let mut accs = Vec::new();
    for device in ["cpu", "cuda:0"] {
        let o = d2l(
            &[
                "eval",
                "softmax",
                "--weights",
                weights.to_str().unwrap(),
                "--dataset",
                "shapes",
                "--test-limit",
                "128",
                "--json",
                "--device",
                device,
            ],
            dir.path(),
            true,
        );
        assert!(o.status.success(), "{}", text(&o));
        let j = last_json(&o);
        assert_eq!(j["device"], device);
        accs.push(j["test_acc"].clone());
    }
    assert_eq!(accs[0], accs[1]);

    let o = d2l(&["devices"], dir.path(), true);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("cuda:0: ") && out.contains("simulated"),
        "{out}"
    );
    assert!(!out.contains("no CUDA GPU"), "{out}");
    // auto picks the simulated GPU and says so.
    let auto_run = dir.path().join("auto");
    let o = train("auto", &auto_run, true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("device: cuda:0"), "{}", text(&o));
    assert_eq!(last_json(&o)["device"], "cuda:0");
}

#[test]
fn bench_on_the_simulated_gpu_reports_peak_device_memory() {
    let dir = tempfile::tempdir().unwrap();
    let o = d2l(
        &["bench", "W1", "--device", "cuda", "--reps", "1", "--json"],
        dir.path(),
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    let j = last_json(&o);
    assert_eq!(j["device"], "cuda:0");
    assert!(j["gpu_peak_mb"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["peak_device_bytes"].as_u64().unwrap() > 0, "{j}");
    // The table has the GPU column.
    let o = d2l(
        &["bench", "W1", "--device", "cuda", "--reps", "1"],
        dir.path(),
        true,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("GPU peak MiB"), "{out}");
    let row = out.lines().find(|l| l.starts_with("W1")).expect("a W1 row");
    let peak: f64 = row.split_whitespace().last().unwrap().parse().unwrap();
    assert!(peak > 0.0, "{out}");
}
