//! `d2l train --distributed` under `mpirun` (built with the `mpi` feature; `.ci/run`
//! installs Open MPI and runs these with `--features mpi`):
//!
//! - **equivalence:** MLP and LeNet on the built-in `shapes` set, SGD with momentum and
//!   Adam, 2 epochs: 2 ranks with global batch 64 and 3 ranks with global batch 66 (a short
//!   last batch of 58 rows) end with the weights of the 1-process run with the same
//!   global batch (rtol 1e-4, atol 1e-5), per-epoch losses within 1e-4, and every rank
//!   reports the same checksum of its parameters and buffers; BN-LeNet with `--sync-bn`
//!   matches too;
//! - **faults:** a rank killed with SIGKILL or failing with an error stops the whole job
//!   within seconds with a non-zero exit naming the rank, and `--resume` afterwards ends
//!   with the weights of an uninterrupted distributed run;
//! - ranks started with different flags are refused at start-up with one line.
//!
//! Kept small for CI's 2 cores: 256 training and 64 test images, one thread per rank,
//! `--oversubscribe` for 3 ranks, every launch under `timeout`.
#![cfg(feature = "mpi")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::text;

const D2L: &str = env!("CARGO_BIN_EXE_d2l");
/// Seconds any one launch may take before `timeout` ends it.
const LIMIT: &str = "240";

fn base_env(c: &mut Command) {
    c.env("D2L_OFFLINE", "1")
        .env_remove("D2L_DATA_DIR")
        .env_remove("D2L_TEST_STALL_AT")
        .env_remove("D2L_TEST_FAIL_AT")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Shared memory and TCP only: no probing for network cards a CI box lacks.
        .env("OMPI_MCA_btl", "self,vader,tcp")
        .env("OMPI_MCA_pml", "ob1");
}

/// `d2l ARGS` as one plain process.
fn d2l(args: &[&str]) -> Output {
    let mut c = Command::new("timeout");
    c.arg(LIMIT).arg(D2L).args(args);
    base_env(&mut c);
    c.output().expect("the d2l binary runs")
}

/// `mpirun --oversubscribe -np N d2l ARGS` (under `timeout`).
fn mpirun_cmd(np: usize, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.arg(LIMIT)
        .arg("mpirun")
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            &np.to_string(),
        ])
        .arg(D2L)
        .args(args);
    base_env(&mut c);
    c
}

fn mpirun(np: usize, args: &[&str]) -> Output {
    mpirun_cmd(np, args).output().expect("mpirun runs")
}

fn ok(o: &Output) -> String {
    let t = text(o);
    assert!(o.status.success(), "the run failed ({:?}):\n{t}", o.status);
    t
}

/// The summary's JSON line (`--json`).
fn json_line(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{}", text(o)));
    serde_json::from_str(line).unwrap()
}

/// Every rank's state checksum, checked equal; returns how many ranks reported.
fn same_checksums(o: &Output) -> usize {
    let j = json_line(o);
    let sums: Vec<String> = j["distributed"]["state_checksums"]
        .as_array()
        .unwrap_or_else(|| panic!("no checksums in {j}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        sums.iter().all(|s| s == &sums[0]),
        "ranks ended in different states: {sums:?}"
    );
    sums.len()
}

fn weights(dir: &Path) -> Vec<(String, Vec<f64>)> {
    d2l_nn::serialize::load(dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f64_vec()))
        .collect()
}

fn losses(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "train_loss").unwrap();
    lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect()
}

fn assert_same_weights(a: &Path, b: &Path, rtol: f64, atol: f64) {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            assert!(
                (x - y).abs() <= atol + rtol * y.abs(),
                "{na}[{i}]: {x} ({}) vs {y} ({})",
                a.display(),
                b.display()
            );
        }
    }
}

fn assert_same_losses(a: &Path, b: &Path) {
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(la.len(), 2);
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert!((x - y).abs() <= 1e-4, "losses {la:?} vs {lb:?}");
    }
}

/// The common flags of an equivalence run.
fn flags<'a>(model: &'a str, opt: &'a [&'a str], batch: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        model,
        "--dataset",
        "shapes",
        "--epochs",
        "2",
        "--batch-size",
        batch,
        "--train-limit",
        "256",
        "--test-limit",
        "64",
        "--threads",
        "1",
        "--quiet",
        "--json",
        "--out",
        out,
    ];
    v.extend_from_slice(opt);
    v
}

/// 1 process against 2 ranks (batch 64) and 3 ranks (batch 66).
fn equivalence(model: &str, opt: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    for (np, batch) in [(2usize, "64"), (3, "66")] {
        let one = tmp.path().join(format!("one-{batch}"));
        let many = tmp.path().join(format!("np{np}-{batch}"));
        let (one_s, many_s) = (one.to_str().unwrap(), many.to_str().unwrap());
        ok(&d2l(&flags(model, opt, batch, one_s)));
        let mut args = flags(model, opt, batch, many_s);
        args.push("--distributed");
        let o = mpirun(np, &args);
        let t = ok(&o);
        assert_eq!(same_checksums(&o), np, "{t}");
        assert_same_weights(&one, &many, 1e-4, 1e-5);
        assert_same_losses(&one, &many);
    }
}

const SGD: &[&str] = &["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9"];
const ADAM: &[&str] = &["--optimizer", "adam", "--lr", "0.001"];

#[test]
fn mlp_sgd_momentum_matches_one_process() {
    equivalence("mlp", SGD);
}

#[test]
fn mlp_adam_matches_one_process() {
    equivalence("mlp", ADAM);
}

#[test]
fn lenet_sgd_momentum_matches_one_process() {
    equivalence("lenet", SGD);
}

#[test]
fn lenet_adam_matches_one_process() {
    equivalence("lenet", ADAM);
}

#[test]
fn bn_lenet_with_sync_bn_matches_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let synced = tmp.path().join("sync");
    let own = tmp.path().join("own");
    let opt = &["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9"];
    ok(&d2l(&flags("lenet-bn", opt, "64", one.to_str().unwrap())));
    let mut args = flags("lenet-bn", opt, "64", synced.to_str().unwrap());
    args.extend(["--distributed", "--sync-bn"]);
    let o = mpirun(2, &args);
    ok(&o);
    assert_eq!(same_checksums(&o), 2);
    // Running statistics included: they are part of model.safetensors.
    assert_same_weights(&one, &synced, 1e-4, 1e-5);
    assert_same_losses(&one, &synced);
    // Without --sync-bn each rank normalises its own 32 rows: not the 1-process run.
    let mut args = flags("lenet-bn", opt, "64", own.to_str().unwrap());
    args.push("--distributed");
    ok(&mpirun(2, &args));
    let (lo, ls) = (losses(&one), losses(&own));
    assert!(
        lo.iter().zip(&ls).any(|(a, b)| (a - b).abs() > 1e-4),
        "per-rank batch norm should differ from the global batch's: {lo:?} vs {ls:?}"
    );
}

/// mpirun with its later standard error.
type StalledJob = (
    std::process::Child,
    Vec<(usize, u32)>,
    std::thread::JoinHandle<String>,
);

/// A stalled 2-rank run: returns mpirun, every rank's pid once both wait, and a thread
/// collecting the rest of mpirun's standard error.
fn start_stalled(args: &[&str], at: &str) -> StalledJob {
    let mut child = mpirun_cmd(2, args)
        .env("D2L_TEST_STALL_AT", at)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let line = lines
            .next()
            .expect("the ranks reach the stall point")
            .unwrap();
        // "D2L_TEST_STALL_AT: rank R of N (pid P) stalled after ..."
        if let Some(rest) = line.strip_prefix("D2L_TEST_STALL_AT: rank ") {
            let rank: usize = rest.split(' ').next().unwrap().parse().unwrap();
            let pid: u32 = rest
                .split("(pid ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            pids.push((rank, pid));
        }
    }
    // Keep draining stderr so no rank blocks on a full pipe.
    let rest =
        std::thread::spawn(move || lines.map_while(|l| l.ok()).collect::<Vec<_>>().join("\n"));
    (child, pids, rest)
}

#[test]
fn killed_rank_stops_the_job_and_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let mut args = flags("mlp", SGD, "64", full.to_str().unwrap());
    args.push("--distributed");
    ok(&mpirun(2, &args));
    let mut args = flags("mlp", SGD, "64", cut.to_str().unwrap());
    args.push("--distributed");
    let (mut child, pids, rest) = start_stalled(&args, "2:2");
    let victim = pids.iter().find(|(r, _)| *r == 1).unwrap().1;
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    let said = rest.join().unwrap();
    assert!(!status.success(), "mpirun must fail when a rank is killed");
    assert!(
        said.contains("rank 1") && said.contains("signal 9"),
        "the job's end should name the killed rank: {said}"
    );
    assert!(
        took < Duration::from_secs(30),
        "the job took {took:?} to stop after rank 1 was killed"
    );
    // Epoch 1's checkpoint is there; epoch 2 was not finished.
    assert_eq!(losses(&cut).len(), 1);
    let o = mpirun(
        2,
        &[
            "train",
            "--resume",
            cut.to_str().unwrap(),
            "--distributed",
            "--quiet",
            "--json",
            "--threads",
            "1",
        ],
    );
    let t = ok(&o);
    assert_eq!(same_checksums(&o), 2, "{t}");
    assert_same_weights(&full, &cut, 1e-6, 1e-7);
    assert_same_losses(&full, &cut);
}

#[test]
fn a_failing_rank_stops_the_job_naming_the_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fail");
    let mut args = flags("mlp", SGD, "64", out.to_str().unwrap());
    args.push("--distributed");
    let t0 = Instant::now();
    let o = mpirun_cmd(2, &args)
        .env("D2L_TEST_FAIL_AT", "1:1:2")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("error: rank 1 of 2 failed") && t.contains("failing on purpose"),
        "{t}"
    );
    assert!(t0.elapsed() < Duration::from_secs(120), "{t}");
    // No checkpoint was half written: there is none (epoch 1 did not end).
    assert!(!out.join("checkpoint.safetensors").exists());
}

#[test]
fn ranks_with_different_flags_are_refused_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mismatch");
    let a = flags("mlp", SGD, "64", out.to_str().unwrap());
    let mut c = Command::new("timeout");
    c.arg(LIMIT)
        .arg("mpirun")
        .args(["--oversubscribe", "--bind-to", "none", "-np", "1", D2L])
        .args(&a)
        .arg("--distributed")
        .args([":", "-np", "1", D2L])
        .args(&a)
        .args(["--distributed", "--weight-decay", "0.01"]);
    base_env(&mut c);
    let o = c.output().unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    let refusals: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("refusing to start"))
        .collect();
    assert_eq!(refusals.len(), 1, "{t}");
    assert!(refusals[0].contains("rank 1 runs another model, parameter shapes or flags"));
}
