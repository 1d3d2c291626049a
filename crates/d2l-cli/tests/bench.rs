//! `d2l bench` end to end on a quick protocol (one short repetition): the JSON lines have
//! the fields of `torch_bench.py`, `--compare` joins them with a peer's lines, the
//! profiler prints per-op tables, and bad input is a one-line error.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .arg("bench")
        .args(args)
        .env("BENCH_REPS", "1")
        .env("BENCH_TARGET_S", "0.05")
        .output()
        .expect("the d2l binary runs")
}

fn lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn json_lines_match_the_peer_format_and_compare_joins_them() {
    let o = bench(&["W1,W5", "--json", "--threads", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = lines(&o);
    let names: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["metric"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("W1", "mlp", "train_images_per_s"),
            ("W5", "matmul_1024", "gflops"),
            ("W5", "conv2d_64x64_3x3", "gflops"),
        ]
    );
    for r in &recs {
        assert_eq!(r["peer"], "d2l-rs");
        assert_eq!(r["threads"], 1);
        assert!(r["value"].as_f64().unwrap() > 0.0);
        assert_eq!(r["reps"].as_array().unwrap().len(), 1);
        assert!(r["steps_per_rep"].as_u64().unwrap() >= 1);
        assert!(r["median_step_ms"].as_f64().unwrap() > 0.0);
        // The SIMD path of the kernels and the f32 GEMM that ran.
        assert!(matches!(
            r["cpu"].as_str(),
            Some("scalar" | "avx2" | "avx512")
        ));
        assert!(matches!(r["gemm"].as_str(), Some("d2l" | "gemm-crate")));
    }
    assert_eq!(recs[0]["batch"], 256);
    assert!(recs[0]["peak_rss_mb"].as_f64().unwrap() >= recs[0]["rss_before_mb"].as_f64().unwrap());

    // A peer file with the same keys: the table shows ours / theirs.
    let ours = recs[1]["value"].as_f64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peer = dir.path().join("torch.jsonl");
    let fake = ours / 2.0;
    std::fs::write(
        &peer,
        format!(
            "not json\n{{\"peer\": \"torch\", \"workload\": \"W5\", \"name\": \"matmul_1024\", \
             \"metric\": \"gflops\", \"value\": {fake}}}\n"
        ),
    )
    .unwrap();
    let o = bench(&["W5", "--compare", peer.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    // The plain table comes first, the comparison table (header naming the peer) last.
    assert!(
        out.contains("d2l-rs") && out.contains("torch") && out.contains("ratio"),
        "{out}"
    );
    let row = out
        .lines()
        .filter(|l| l.contains("matmul_1024"))
        .last()
        .unwrap_or_else(|| panic!("no comparison row in {out}"));
    let ratio: f64 = row.split_whitespace().nth(5).unwrap().parse().unwrap();
    // The ratio is ours (re-measured in this run) over the fake peer value: near 2.
    assert!(ratio > 0.5 && ratio < 8.0, "{row}");
}

#[test]
fn profile_prints_time_per_op_kind() {
    let o = bench(&["W2", "--profile", "--threads", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("profile: lenet train step"), "{err}");
    assert!(err.contains("conv2d") && err.contains("bwd:conv"), "{err}");
    assert!(err.contains("profile: lenet inference step"), "{err}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let o = bench(&["W9"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown workload `W9`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = bench(&["W1", "--compare", "/nonexistent/peer.jsonl"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read --compare file"));
    let o = bench(&["W1", "--threads", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threads must be at least 1"));
}
