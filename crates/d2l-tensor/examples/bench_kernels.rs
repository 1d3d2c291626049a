//! Kernel throughput of the d2l-rs engine, printed as one JSON line per kernel, with the
//! protocol of `/work/shared/bench/WORKLOADS.md` (warm-up ≥ 3 steps and ≥ 1 s, one
//! calibration step, then 5 repetitions of n = ceil(1 s / t_step) steps; the median
//! throughput is reported; wall clock). `scripts/bench_torch_kernels.py` prints the same
//! lines for PyTorch, so the two can be joined on `name` and compared as ratios.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p d2l-tensor --example bench_kernels
//! cargo run --release -p d2l-tensor --example bench_kernels -- --threads 2 --only matmul_1024
//! ```
//!
//! Environment: `BENCH_REPS` (default 5), `BENCH_TARGET_S` (default 1.0), as in
//! `torch_bench.py`.

use d2l_tensor::{manual_seed, no_grad, num_threads, set_num_threads, Tensor};
use std::time::Instant;

const WARMUP_S: f64 = 1.0;
const WARMUP_MIN: usize = 3;

struct Protocol {
    reps: usize,
    target_s: f64,
}

struct Measured {
    rate: f64,
    rates: Vec<f64>,
    steps: usize,
    step_s: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

impl Protocol {
    fn measure(&self, mut step: impl FnMut(), work_per_step: f64) -> Measured {
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

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn emit(
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

fn main() {
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
    let want = |name: &str| only.as_ref().map_or(true, |o| o.iter().any(|x| x == name));
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let p = Protocol {
        reps: env("BENCH_REPS", 5.0) as usize,
        target_s: env("BENCH_TARGET_S", 1.0),
    };
    manual_seed(0);

    no_grad(|| {
        // GEMMs: GFLOP/s = 2·m·k·n / t; output freshly allocated each call (W5 allows it).
        for &(name, m, k, n, workload) in &[
            ("matmul_1024", 1024usize, 1024usize, 1024usize, "W5"),
            ("matmul_256x784x256", 256, 784, 256, "kernels"),
        ] {
            if !want(name) {
                continue;
            }
            let a = Tensor::randn(&[m, k]);
            let b = Tensor::randn(&[k, n]);
            let r = p.measure(|| drop(a.matmul(&b).unwrap()), 2.0 * (m * k * n) as f64);
            emit(
                workload,
                name,
                "gflops",
                "GFLOP/s",
                1e9,
                &r,
                serde_json::json!({"shape": [m, k, n]}),
            );
        }

        // Memory-bound kernels: GB/s (1e9 bytes) of bytes read + bytes written.
        let n = 1usize << 24;
        let need_ew = ["add_16m", "mul_16m", "relu_16m"].iter().any(|k| want(k));
        let (x, y) = if need_ew {
            (Tensor::randn(&[n]), Tensor::randn(&[n]))
        } else {
            (Tensor::zeros(&[1]), Tensor::zeros(&[1]))
        };
        let nb = n as f64 * 4.0;
        if want("add_16m") {
            let r = p.measure(|| drop(x.add(&y).unwrap()), 3.0 * nb);
            emit(
                "kernels",
                "add_16m",
                "gbps",
                "GB/s",
                1e9,
                &r,
                serde_json::json!({"shape": [n]}),
            );
        }
        if want("mul_16m") {
            let r = p.measure(|| drop(x.mul(&y).unwrap()), 3.0 * nb);
            emit(
                "kernels",
                "mul_16m",
                "gbps",
                "GB/s",
                1e9,
                &r,
                serde_json::json!({"shape": [n]}),
            );
        }
        if want("relu_16m") {
            let r = p.measure(|| drop(x.relu().unwrap()), 2.0 * nb);
            emit(
                "kernels",
                "relu_16m",
                "gbps",
                "GB/s",
                1e9,
                &r,
                serde_json::json!({"shape": [n]}),
            );
        }
        drop((x, y));
        if want("softmax_256x1000") {
            let l = Tensor::randn(&[256, 1000]);
            let r = p.measure(|| drop(l.softmax(-1).unwrap()), 2.0 * 256.0 * 1000.0 * 4.0);
            emit(
                "kernels",
                "softmax_256x1000",
                "gbps",
                "GB/s",
                1e9,
                &r,
                serde_json::json!({"shape": [256, 1000], "dim": -1}),
            );
        }
        if want("sum_4096x4096") {
            let s = Tensor::randn(&[4096, 4096]);
            let r = p.measure(|| drop(s.sum_all().unwrap()), 4096.0 * 4096.0 * 4.0 + 4.0);
            emit(
                "kernels",
                "sum_4096x4096",
                "gbps",
                "GB/s",
                1e9,
                &r,
                serde_json::json!({"shape": [4096, 4096]}),
            );
        }
    });
}
