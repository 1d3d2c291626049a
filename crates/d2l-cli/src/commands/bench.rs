//! `d2l bench`: the peer workloads W1–W5 of `../shared/bench/WORKLOADS.md` (and any zoo
//! CNN by name), timed with that page's protocol, one child process per workload so that
//! each peak RSS is its own; `--compare` joins the result with PyTorch's JSON lines.

use super::{CliResult, DeviceArgs};
use clap::Args;
use d2l_train::bench::{self, BenchConfig, Protocol};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Flags of `d2l bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Comma-separated workloads: W1..W5 and/or zoo model names (default: W1,W2,W3,W4,W5).
    pub workloads: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Intra-op threads (the protocol's 2 by default).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed repetitions (default 5, or BENCH_REPS).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Print the JSON lines (the same fields as torch_bench.py) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A file of the peer's JSON lines (or its --save document) to compare with: prints
    /// a table of both values and the ratio d2l-rs / peer.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Also time one step per step kind with the op profiler and print time per op kind
    /// (also on with D2L_PROFILE=1).
    #[arg(long)]
    pub profile: bool,
    /// Also write all records as one JSON document with the machine and date.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Run one workload in this process (used by the parent for per-workload peak RSS).
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

fn protocol(a: &BenchArgs) -> CliResult<Protocol> {
    let mut p = Protocol::from_env()?;
    if let Some(r) = a.reps {
        if r == 0 {
            return Err("--reps must be at least 1, got 0".into());
        }
        p.reps = r;
    }
    Ok(p)
}

fn profiling(a: &BenchArgs) -> bool {
    a.profile || std::env::var("D2L_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs `d2l bench`.
pub fn run(a: BenchArgs) -> CliResult<()> {
    super::sizes::check_threads("--threads", a.threads)?;
    let proto = protocol(&a)?;
    if let Some(w) = &a.child {
        d2l_tensor::set_num_threads(a.threads)?;
        // The parent resolved the device (and printed any notice): the child gets it fixed.
        let device = d2l_tensor::cuda::resolve(a.device.device)?.0;
        let cfg = BenchConfig {
            protocol: proto,
            threads: a.threads,
            profile: profiling(&a),
            device,
        };
        // The loop runs on a thread of the kernels' pool, as PyTorch's on its first
        // OpenMP thread (see `d2l_tensor::install`).
        let out = d2l_tensor::install(|| bench::run(w, &cfg).map_err(|e| e.to_string()))?;
        let mut stdout = std::io::stdout().lock();
        for r in &out.records {
            writeln!(stdout, "{}", r.to_json())?;
        }
        for (label, table) in &out.profiles {
            eprintln!("profile: {label}\n{table}");
        }
        return Ok(());
    }
    let wanted: Vec<String> = match &a.workloads {
        None => bench::WORKLOADS.iter().map(|s| s.to_string()).collect(),
        Some(s) => s
            .split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect(),
    };
    if wanted.is_empty() {
        return Err("no workload given: expected W1..W5 or zoo model names".into());
    }
    for w in &wanted {
        let up = w.to_ascii_uppercase();
        if !bench::WORKLOADS.contains(&up.as_str())
            && !bench::EXTRA_WORKLOADS.contains(&w.to_ascii_lowercase().as_str())
        {
            d2l_models::zoo::model(w).map_err(|_| {
                format!(
                    "unknown workload `{w}`: expected one of {}, {} or a zoo model ({})",
                    bench::WORKLOADS.join(", "),
                    bench::EXTRA_WORKLOADS.join(", "),
                    d2l_models::zoo::names().join(", ")
                )
            })?;
        }
    }
    let device = a.device.resolve()?;
    let peer = match &a.compare {
        Some(p) => Some(read_records(p)?),
        None => None,
    };
    let exe = std::env::current_exe()?;
    let mut records: Vec<Value> = Vec::new();
    let mut failed = Vec::new();
    for w in &wanted {
        if !a.json {
            eprintln!("bench: {w} …");
        }
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "--child", w, "--threads", &a.threads.to_string()]);
        cmd.args(["--device", &device.to_string()]);
        cmd.env("RAYON_NUM_THREADS", a.threads.to_string());
        if let Some(r) = a.reps {
            cmd.args(["--reps", &r.to_string()]);
        }
        if profiling(&a) {
            cmd.arg("--profile");
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()?;
        let text = String::from_utf8_lossy(&child.stdout);
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if a.json {
                    println!("{line}");
                }
                records.push(v);
            }
        }
        if !child.status.success() {
            failed.push(w.clone());
            let err = serde_json::json!({"peer": "d2l-rs", "workload": w, "error": format!("exit {}", child.status)});
            if a.json {
                println!("{err}");
            }
        }
    }
    if !a.json {
        print!("{}", table(&records, device.is_cuda()));
    }
    if let Some(peer) = &peer {
        print!("{}", compare_table(&records, peer));
    }
    if let Some(path) = &a.save {
        save(path, &records, a.threads, device)?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("workload(s) failed: {}", failed.join(", ")).into())
    }
}

/// Reads JSON lines, or a `--save` document with a `results` array.
fn read_records(path: &std::path::Path) -> CliResult<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --compare file {}: {e}", path.display()))?;
    if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&text) {
        if let Some(Value::Array(rs)) = doc.get("results") {
            return Ok(rs.clone());
        }
    }
    let rs: Vec<Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("metric").is_some())
        .collect();
    if rs.is_empty() {
        return Err(format!(
            "--compare file {} holds no benchmark records (expected torch_bench.py's JSON lines)",
            path.display()
        )
        .into());
    }
    Ok(rs)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn key(v: &Value) -> (String, String, String) {
    (
        s(v, "workload").to_string(),
        s(v, "name").to_string(),
        s(v, "metric").to_string(),
    )
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.1}"))
}

/// The records as a table; on a GPU with a column of the device's peak memory.
fn table(records: &[Value], gpu: bool) -> String {
    let mut out = format!(
        "{:<10} {:<18} {:<20} {:>12} {:<9} {:>9} {:>9}{}\n",
        "workload",
        "name",
        "metric",
        "value",
        "unit",
        "step ms",
        "peak MiB",
        if gpu {
            format!(" {:>12}", "GPU peak MiB")
        } else {
            String::new()
        }
    );
    for r in records {
        let gpu_col = if gpu {
            format!(" {:>12}", fmt_opt(f(r, "gpu_peak_mb")))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<10} {:<18} {:<20} {:>12.1} {:<9} {:>9.3} {:>9}{gpu_col}\n",
            s(r, "workload"),
            s(r, "name"),
            s(r, "metric"),
            f(r, "value").unwrap_or(f64::NAN),
            s(r, "unit"),
            f(r, "median_step_ms").unwrap_or(f64::NAN),
            fmt_opt(f(r, "peak_rss_mb")),
        ));
    }
    out
}

fn compare_table(ours: &[Value], peer: &[Value]) -> String {
    let by_key: HashMap<_, _> = peer.iter().map(|v| (key(v), v)).collect();
    let peer_name = peer.first().map_or("peer", |v| s(v, "peer"));
    let mut out = format!(
        "\n{:<10} {:<18} {:<20} {:>12} {:>12} {:>7} {:>10} {:>10}\n",
        "workload", "name", "metric", "d2l-rs", peer_name, "ratio", "RSS ours", "RSS peer"
    );
    for r in ours {
        let Some(p) = by_key.get(&key(r)) else {
            continue;
        };
        let (a, b) = (f(r, "value"), f(p, "value"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<10} {:<18} {:<20} {:>12.1} {:>12.1} {:>7} {:>10} {:>10}\n",
            s(r, "workload"),
            s(r, "name"),
            s(r, "metric"),
            a.unwrap_or(f64::NAN),
            b.unwrap_or(f64::NAN),
            ratio,
            fmt_opt(f(r, "peak_rss_mb")),
            fmt_opt(f(p, "peak_rss_mb")),
        ));
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn save(
    path: &std::path::Path,
    records: &[Value],
    threads: usize,
    device: d2l_tensor::Device,
) -> CliResult<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let doc = serde_json::json!({
        "peer": "d2l-rs",
        "version": env!("CARGO_PKG_VERSION"),
        "cpu_model": cpu_model(),
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "threads": threads,
        "device": device.to_string(),
        "unix_time": secs,
        "results": records,
    });
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    d2l_nn::serialize::write_atomic(path, text.as_bytes())?;
    Ok(())
}
