//! The MPI back end under `mpirun`: this test binary starts itself as 3 ranks
//! (`mpirun --oversubscribe -np 3`), each rank checks every collective against the sums
//! it expects and prints one line, and the parent checks every rank's line and the exit
//! status. Built only with the `mpi` feature (it needs Open MPI; `.ci/run` installs it).
#![cfg(feature = "mpi")]

use d2l_dist::Comm;
use std::process::Command;
use std::time::Duration;

const CHILD: &str = "D2L_DIST_TEST_CHILD";

/// The rank's side: only runs when the parent started it under mpirun.
#[test]
fn child_collectives() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let comm = Comm::init().expect("MPI starts");
    let (r, n) = (comm.rank(), comm.size());
    assert_eq!(n, 3);
    assert!(comm.local_rank() < comm.local_size());
    // Blocking sum: rank r contributes r + 1 and r * i.
    let mut buf: Vec<f32> = (0..5).map(|i| (r * i) as f32 + 1.0).collect();
    comm.allreduce_sum(&mut buf).unwrap();
    let want: Vec<f32> = (0..5).map(|i| (3 * i) as f32 + 3.0).collect();
    assert_eq!(buf, want);
    // Two background sums in flight at once, waited for in reverse order.
    let a = comm.start_allreduce_sum(vec![r as f32; 1000]).unwrap();
    let b = comm.start_allreduce_sum(vec![1.0; 7]).unwrap();
    assert_eq!(b.wait().unwrap(), vec![3.0; 7]);
    assert_eq!(a.wait().unwrap(), vec![3.0; 1000]);
    let mut m = [0.25f64 * r as f64, 1e15];
    comm.allreduce_sum_f64(&mut m).unwrap();
    assert_eq!(m, [0.75, 3e15]);
    let mut p = vec![r as f32 + 10.0; 4];
    comm.broadcast(&mut p, 1).unwrap();
    assert_eq!(p, vec![11.0; 4]);
    let mut bytes = if r == 2 {
        b"from two".to_vec()
    } else {
        Vec::new()
    };
    comm.broadcast_bytes(&mut bytes, 2).unwrap();
    assert_eq!(bytes, b"from two");
    let all = comm.all_gather_u64(u64::MAX - r as u64).unwrap();
    assert_eq!(all, vec![u64::MAX, u64::MAX - 1, u64::MAX - 2]);
    comm.barrier().unwrap();
    println!("rank {r} of {n}: collectives ok");
    comm.shutdown();
    assert!(
        comm.barrier().is_err(),
        "a collective after shutdown is an error"
    );
}

fn mpirun(
    np: usize,
    args: &[&str],
    envs: &[(&str, &str)],
    limit: Duration,
) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.arg(limit.as_secs().to_string())
        .arg("mpirun")
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            &np.to_string(),
        ])
        .arg(exe)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader,tcp");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("mpirun runs (Open MPI installed?)")
}

#[test]
fn collectives_over_three_ranks() {
    let out = mpirun(
        3,
        &[
            "--exact",
            "child_collectives",
            "--nocapture",
            "--test-threads",
            "1",
        ],
        &[(CHILD, "1")],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpirun failed: {stdout}\n{stderr}");
    for r in 0..3 {
        assert!(
            stdout.contains(&format!("rank {r} of 3: collectives ok")),
            "rank {r} did not finish: {stdout}\n{stderr}"
        );
    }
}
