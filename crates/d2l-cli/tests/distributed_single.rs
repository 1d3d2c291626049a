//! `d2l train --distributed` without a launcher (any build): one rank, said in one line,
//! the same training as without the flag; flag errors. The MPI runs are in
//! `distributed.rs` (feature `mpi`).

use std::process::Output;

mod common;
use common::text;

fn d2l(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = common::command(args);
    c.env_remove("D2L_DATA_DIR")
        .env_remove("OMPI_COMM_WORLD_SIZE")
        .env_remove("PMI_SIZE")
        .env_remove("PMIX_RANK")
        .env_remove("SLURM_STEP_ID")
        .envs(envs.iter().copied());
    common::output(&mut c)
}

const RUN: &[&str] = &[
    "train",
    "mlp",
    "--dataset",
    "shapes",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--train-limit",
    "96",
    "--test-limit",
    "32",
    "--threads",
    "1",
    "--quiet",
    "--json",
];

#[test]
fn without_a_launcher_it_runs_as_one_rank_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let dist = tmp.path().join("dist");
    let mut a = RUN.to_vec();
    a.extend(["--out", plain.to_str().unwrap()]);
    let o = d2l(&a, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut a = RUN.to_vec();
    a.extend(["--out", dist.to_str().unwrap(), "--distributed"]);
    let o = d2l(&a, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("no MPI launcher found") && t.contains("running as one rank"),
        "{t}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let j: serde_json::Value =
        serde_json::from_str(out.lines().rev().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(j["distributed"]["ranks"], 1);
    // One rank trains exactly like no flag at all.
    let w = |d: &std::path::Path| {
        d2l_nn::serialize::load(d.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.to_vec::<f32>()))
            .collect::<Vec<_>>()
    };
    assert_eq!(w(&plain), w(&dist));
}

#[test]
fn sync_bn_needs_distributed() {
    let mut a = RUN.to_vec();
    a.push("--sync-bn");
    let o = d2l(&a, &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--sync-bn needs --distributed"),
        "{}",
        text(&o)
    );
}

/// A build without MPI started by a launcher with several processes refuses (the
/// processes would train alone and write the same folder).
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_a_multi_process_launch() {
    let mut a = RUN.to_vec();
    a.push("--distributed");
    let o = d2l(&a, &[("OMPI_COMM_WORLD_SIZE", "2")]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("built without MPI") && t.contains("--features mpi"),
        "{t}"
    );
}
