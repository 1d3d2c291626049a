//! The timing protocol shared by the `bench_*` examples (included with
//! `#[path = "common/protocol.rs"] mod protocol;`), as in `/work/shared/bench/WORKLOADS.md`:
//! warm-up ≥ 3 steps and ≥ 1 s, one calibration step, then `reps` repetitions of
//! n = ceil(target_s / t_step) steps; the median throughput is reported; wall clock.
//! `scripts/bench_protocol.py` is the PyTorch side.
//!
//! Environment: `BENCH_REPS` (default 5), `BENCH_TARGET_S` (default 1.0).
//! Arguments: `--threads N` (sets the engine's thread count), `--only a,b` (case names).

use d2l_tensor::{manual_seed, num_threads, set_num_threads};
use std::time::Instant;

const WARMUP_S: f64 = 1.0;
const WARMUP_MIN: usize = 3;

pub struct Protocol {
    pub reps: usize,
    pub target_s: f64,
}

pub struct Measured {
    pub rate: f64,
    pub rates: Vec<f64>,
    pub steps: usize,
    pub step_s: f64,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn env_f64(k: &str, d: f64) -> f64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

impl Protocol {
    /// `BENCH_REPS` (default 5) and `BENCH_TARGET_S` (default 1.0).
    pub fn from_env() -> Self {
        Protocol {
            reps: env_f64("BENCH_REPS", 5.0) as usize,
            target_s: env_f64("BENCH_TARGET_S", 1.0),
        }
    }

    pub fn measure(&self, mut step: impl FnMut(), work_per_step: f64) -> Measured {
        let t0 = Instant::now();
        let mut n = 0;
        while n < WARMUP_MIN || t0.elapsed().as_secs_f64() < WARMUP_S {
            step();
            n += 1;
        }
        let t1 = Instant::now();
        step();
        let one = t1.elapsed().as_secs_f64();
        let steps = ((self.target_s / one.max(1e-9)).ceil() as usize).max(1);
        let (mut rates, mut per_step) = (Vec::new(), Vec::new());
        for _ in 0..self.reps {
            let t = Instant::now();
            for _ in 0..steps {
                step();
            }
            let dt = t.elapsed().as_secs_f64();
            rates.push(work_per_step * steps as f64 / dt);
            per_step.push(dt / steps as f64);
        }
        Measured {
            rate: median(&rates),
            rates,
            steps,
            step_s: median(&per_step),
        }
    }
}

pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Prints one JSON line: the common fields, then the keys of `extra`.
pub fn emit(
    workload: &str,
    name: &str,
    metric: &str,
    unit: &str,
    scale: f64,
    m: &Measured,
    extra: serde_json::Value,
) {
    let mut rec = serde_json::json!({
        "peer": "d2l-rs",
        "workload": workload,
        "name": name,
        "metric": metric,
        "value": round(m.rate / scale, 3),
        "unit": unit,
        "median_step_ms": round(m.step_s * 1e3, 4),
        "reps": m.rates.iter().map(|r| round(r / scale, 3)).collect::<Vec<_>>(),
        "steps_per_rep": m.steps,
        "threads": num_threads(),
        "device": "cpu",
    });
    if let (Some(r), Some(e)) = (rec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    println!("{rec}");
}

/// The `--only` selection; `None` selects every case.
pub struct Only(Option<Vec<String>>);

impl Only {
    pub fn want(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .map_or(true, |o| o.iter().any(|x| x == name))
    }
}

/// Parses `--threads N` (applied at once) and `--only a,b`; panics on anything else.
pub fn parse_args() -> Only {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only: Option<Vec<String>> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--threads" => {
                let n: usize = args[i + 1].parse().expect("--threads N");
                set_num_threads(n).expect("set_num_threads");
                i += 2;
            }
            "--only" => {
                only = Some(args[i + 1].split(',').map(str::to_string).collect());
                i += 2;
            }
            a => panic!("unknown argument {a} (expected --threads N, --only a,b)"),
        }
    }
    Only(only)
}

/// The start of every benchmark: the arguments parsed ([`parse_args`]), the protocol read
/// from the environment ([`Protocol::from_env`]), the global generator seeded with 0, and
/// the allocator tuned as `d2l` tunes it ([`d2l_tensor::alloc::tune`]), so that a kernel
/// is timed without the page faults of a fresh output buffer per call.
pub fn start() -> (Only, Protocol) {
    d2l_tensor::alloc::tune();
    let only = parse_args();
    let p = Protocol::from_env();
    manual_seed(0);
    (only, p)
}
