//! Run folders and resuming, end to end: a run killed with SIGKILL (or stopped with
//! Ctrl-C, exit status 130) in epoch 3 of 4 and resumed with `--resume` ends with the
//! same weights, bit for bit, and the same `metrics.csv` (timing columns aside) as an
//! uninterrupted run — for a classifier with dropout and momentum, a character language
//! model and TinySSD; a folder holding another run is refused unless `--overwrite` or
//! `--resume`; a second writer is refused by the folder's lock; bad checkpoints are
//! one-line errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

mod common;
use common::text;

fn cmd(args: &[&str], cache: &Path) -> Command {
    let mut c = common::isolated(args, cache);
    c.env_remove("D2L_TEST_STALL_AT");
    c
}

fn d2l(args: &[&str], cache: &Path) -> Output {
    common::output(&mut cmd(args, cache))
}

/// A run waiting at its stall point, with a thread draining its stderr (a closed pipe
/// would end the process with SIGPIPE at its next line).
struct Stalled {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Stalled {
    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn interrupt(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        (status.code(), self.stderr.join().unwrap())
    }
}

/// Starts `d2l ARGS` with the stall hook at `at` ("EPOCH:STEP") and returns once the
/// process has finished that step and is waiting.
fn start_stalled(args: &[&str], cache: &Path, at: &str) -> Stalled {
    let mut child = cmd(args, cache)
        .env("D2L_TEST_STALL_AT", at)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the d2l binary runs");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("D2L_TEST_STALL_AT: stalled") {
                let _ = tx.send(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    if rx.recv().is_err() {
        let status = child.wait().unwrap();
        let seen = stderr.join().unwrap();
        panic!("the run ended ({status}) before stalling at {at}:\n{seen}");
    }
    Stalled { child, stderr }
}

/// `metrics.csv` without its timing columns (speeds, seconds, the anchor-labelling share).
fn metrics_without_timings(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let keep: Vec<bool> = header
        .iter()
        .map(|h| !(h.ends_with("_per_sec") || *h == "seconds" || *h == "target_share"))
        .collect();
    csv.lines()
        .map(|l| {
            l.split(',')
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn same_run(a: &Path, b: &Path, what: &str) {
    let wa = std::fs::read(a.join("model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("model.safetensors")).unwrap();
    assert!(
        wa == wb,
        "{what}: the resumed run's weights differ from the uninterrupted run's"
    );
    assert_eq!(
        metrics_without_timings(a),
        metrics_without_timings(b),
        "{what}: metrics.csv differs"
    );
}

fn with_out<'a>(args: &[&'a str], out: &'a Path) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.push("--out");
    v.push(out.to_str().unwrap());
    v
}

/// Uninterrupted, killed with SIGKILL at `kill_at` and resumed, and (when `int_at` is
/// given) stopped with SIGINT there and resumed: all three end the same.
fn check_resume(name: &str, args: &[&str], kill_at: &str, int_at: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let full = c.join("full");
    let o = d2l(&with_out(args, &full), c);
    assert!(o.status.success(), "{name}: {}", text(&o));
    assert!(full.join("checkpoint.safetensors").is_file());

    let killed = c.join("killed");
    start_stalled(&with_out(args, &killed), c, kill_at).kill();
    let rows_before = metrics_without_timings(&killed).len();
    assert_eq!(
        rows_before, 3,
        "{name}: two epochs were complete when it was killed"
    );
    let o = d2l(
        &["train", "--resume", killed.to_str().unwrap(), "--quiet"],
        c,
    );
    assert!(o.status.success(), "{name}: {}", text(&o));
    same_run(&full, &killed, &format!("{name} after SIGKILL"));

    if let Some(at) = int_at {
        let stopped = c.join("stopped");
        let (code, err) = start_stalled(&with_out(args, &stopped), c, at).interrupt();
        assert_eq!(code, Some(130), "{name}: {err}");
        assert!(err.contains("--resume"), "{err}");
        let o = d2l(
            &["train", "--resume", stopped.to_str().unwrap(), "--quiet"],
            c,
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        same_run(&full, &stopped, &format!("{name} after Ctrl-C"));
    }
}

#[test]
fn a_classifier_with_dropout_and_momentum_resumes_bit_identically() {
    check_resume(
        "mlp-dropout",
        &[
            "train",
            "mlp-dropout",
            "--dataset",
            "shapes",
            "--epochs",
            "4",
            "--batch-size",
            "64",
            "--train-limit",
            "640",
            "--test-limit",
            "128",
            "--momentum",
            "0.9",
            "--threads",
            "2",
            "--quiet",
        ],
        "3:4",
        Some("3:6"),
    );
}

#[test]
fn tiny_ssd_resumes_bit_identically() {
    check_resume(
        "tiny-ssd",
        &[
            "train",
            "tiny-ssd",
            "--dataset",
            "generated",
            "--epochs",
            "4",
            "--batch-size",
            "4",
            "--train-limit",
            "12",
            "--threads",
            "2",
            "--quiet",
        ],
        "3:2",
        None,
    );
}

#[test]
fn a_language_model_resumes_bit_identically() {
    let Some(data) = common::shared_data("timemachine/timemachine.txt") else {
        eprintln!("skipping: ../shared/data/timemachine/timemachine.txt is not present");
        return;
    };
    let data = data.to_string_lossy().into_owned();
    check_resume(
        "char-gru",
        &[
            "train",
            "char-gru",
            "--epochs",
            "4",
            "--max-tokens",
            "3000",
            "--num-steps",
            "10",
            "--batch-size",
            "8",
            "--num-hiddens",
            "32",
            "--threads",
            "2",
            "--quiet",
            "--data-dir",
            &data,
        ],
        "3:5",
        Some("3:7"),
    );
}

#[test]
fn a_run_folder_belongs_to_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let out = c.join("run");
    // 256 training and 64 test images of the shapes set, batch 64.
    let small = [
        "--dataset",
        "shapes",
        "--train-limit",
        "256",
        "--test-limit",
        "64",
        "--batch-size",
        "64",
    ];
    let base = [&["train", "mlp"][..], &small, &["--quiet"]].concat();
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push("--out".into());
        v.push(out.to_string_lossy().into_owned());
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        d2l(&a, c)
    };
    let o = run(&["--epochs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(out.join("model.safetensors")).unwrap();

    // Reuse is refused, and nothing of the earlier run changes.
    let o = run(&["--epochs", "1"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("holds an earlier run") && t.contains("--overwrite"),
        "{t}"
    );
    assert_eq!(t.trim().lines().count(), 1, "{t}");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        before
    );
    assert_eq!(metrics_without_timings(&out).len(), 3);

    // --overwrite that then stops on a NaN leaves nothing of the old run behind.
    let o = run(&["--epochs", "1", "--overwrite", "--lr", "1e30"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("the loss became"), "{t}");
    assert!(
        !out.join("model.safetensors").exists(),
        "the old weights were left"
    );
    assert!(
        !out.join("metrics.csv").exists(),
        "the old metrics were left"
    );
    let cfg = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(cfg.contains("1e30") || cfg.contains("1e+30"), "{cfg}");

    // --overwrite for a good run: one epoch, one row.
    let o = run(&["--epochs", "1", "--overwrite"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics_without_timings(&out).len(), 2);

    // A second writer is refused while the first holds the folder's lock.
    let other = c.join("locked");
    let stall_args = with_out(
        &[
            &["train", "softmax"][..],
            &small,
            &["--epochs", "2", "--quiet"],
        ]
        .concat(),
        &other,
    );
    let first = start_stalled(&stall_args, c, "1:2");
    let mut second = stall_args.clone();
    second.push("--overwrite");
    let o = d2l(&second, c);
    let t = text(&o);
    first.kill();
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("another process is writing to") && t.contains("locked"),
        "{t}"
    );
    assert_eq!(t.trim().lines().count(), 1, "{t}");
}

#[test]
fn bad_resumes_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path();
    let one = |args: &[&str], want: &str| {
        let o = d2l(args, c);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(want), "{args:?}: expected `{want}` in: {t}");
        assert_eq!(t.trim().lines().count(), 1, "{t}");
        assert!(!t.contains("panicked"), "{t}");
    };
    let train = |model: &str, out: &Path| {
        let o = d2l(
            &[
                "train",
                model,
                "--dataset",
                "shapes",
                "--train-limit",
                "128",
                "--test-limit",
                "64",
                "--batch-size",
                "64",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                out.to_str().unwrap(),
            ],
            c,
        );
        assert!(o.status.success(), "{}", text(&o));
    };
    let (a, b) = (c.join("softmax"), c.join("mlp"));
    train("softmax", &a);
    train("mlp", &b);
    std::fs::create_dir(c.join("empty")).unwrap();
    one(
        &["train", "--resume", c.join("empty").to_str().unwrap()],
        "cannot read",
    );
    one(
        &["train", "mlp", "--resume", a.to_str().unwrap()],
        "it trains `softmax`, not `mlp`",
    );
    one(
        &["train", "--resume", a.to_str().unwrap(), "--lr", "0.5"],
        "--lr cannot change when resuming",
    );
    one(
        &["train", "--resume", a.to_str().unwrap(), "--overwrite"],
        "exclude each other",
    );
    // Another model's checkpoint.
    std::fs::copy(
        b.join("checkpoint.safetensors"),
        a.join("checkpoint.safetensors"),
    )
    .unwrap();
    one(
        &["train", "--resume", a.to_str().unwrap(), "--epochs", "2"],
        "a checkpoint of another model",
    );
    // A corrupt one.
    std::fs::write(a.join("checkpoint.safetensors"), b"not a checkpoint at all").unwrap();
    one(
        &["train", "--resume", a.to_str().unwrap(), "--epochs", "2"],
        "not a readable checkpoint",
    );
    // Weights only (model.safetensors is a safetensors file without the bookkeeping).
    std::fs::copy(
        b.join("model.safetensors"),
        b.join("checkpoint.safetensors"),
    )
    .unwrap();
    one(
        &["train", "--resume", b.to_str().unwrap(), "--epochs", "2"],
        "not a d2l training checkpoint",
    );
    one(&["train", "mlp", "--overwrite"], "--overwrite needs --out");
}
