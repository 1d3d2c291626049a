//! Batch-norm throughput of the d2l-rs engine, printed as one JSON line per case, with the
//! protocol of `/work/shared/bench/WORKLOADS.md` (warm-up >= 3 steps and >= 1 s, one
//! calibration step, then 5 repetitions of n = ceil(1 s / t_step) steps; the median
//! throughput is reported; wall clock). `scripts/bench_torch_norm.py` prints the same lines
//! for PyTorch, so the two can be joined on `name` and compared as ratios.
//!
//! Cases (f32, eps 1e-5, momentum 0.1, affine, running statistics given):
//! - `bn_train_<shape>`: training-mode forward (batch statistics, running-stat update)
//!   plus the backward of `sum(y * g)` into x, weight and bias;
//! - `bn_train_fwd_<shape>`: the training-mode forward alone, under `no_grad`;
//! - `bn_eval_<shape>`: eval-mode forward (running statistics) under `no_grad`;
//!
//! for shapes `[32, 64, 48, 48]` (a ResNet-18 stage-1 activation at 96×96 input, batch 32)
//! and `[256, 6, 28, 28]` (LeNet's first conv output at batch 256). Throughput is in
//! millions of input elements per second (`Melem/s`).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p d2l-tensor --example bench_norm
//! cargo run --release -p d2l-tensor --example bench_norm -- --threads 2 --only bn_train_32x64x48x48
//! ```
//!
//! Environment: `BENCH_REPS` (default 5), `BENCH_TARGET_S` (default 1.0).

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

    for shape in [[32usize, 64, 48, 48], [256, 6, 28, 28]] {
        let tag = format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3]);
        let c = shape[1];
        let elems: f64 = shape.iter().product::<usize>() as f64;
        let x = Tensor::randn(&shape).requires_grad_(true).unwrap();
        let g = Tensor::randn(&shape);
        let w = Tensor::ones(&[c]).requires_grad_(true).unwrap();
        let b = Tensor::zeros(&[c]).requires_grad_(true).unwrap();
        let rm = Tensor::zeros(&[c]);
        let rv = Tensor::ones(&[c]);
        let extra = serde_json::json!({"shape": shape, "dtype": "f32"});

        let name = format!("bn_train_{tag}");
        if want(&name) {
            let r = p.measure(
                || {
                    x.zero_grad();
                    w.zero_grad();
                    b.zero_grad();
                    let y = x
                        .batch_norm(Some(&rm), Some(&rv), Some(&w), Some(&b), true, 0.1, 1e-5)
                        .unwrap();
                    y.backward_with(&g).unwrap();
                },
                elems,
            );
            emit("norm", &name, "melems", "Melem/s", 1e6, &r, extra.clone());
        }
        no_grad(|| {
            let name = format!("bn_train_fwd_{tag}");
            if want(&name) {
                let r = p.measure(
                    || {
                        drop(
                            x.batch_norm(Some(&rm), Some(&rv), Some(&w), Some(&b), true, 0.1, 1e-5)
                                .unwrap(),
                        )
                    },
                    elems,
                );
                emit("norm", &name, "melems", "Melem/s", 1e6, &r, extra.clone());
            }
            let name = format!("bn_eval_{tag}");
            if want(&name) {
                let r = p.measure(
                    || {
                        drop(
                            x.batch_norm(
                                Some(&rm),
                                Some(&rv),
                                Some(&w),
                                Some(&b),
                                false,
                                0.1,
                                1e-5,
                            )
                            .unwrap(),
                        )
                    },
                    elems,
                );
                emit("norm", &name, "melems", "Melem/s", 1e6, &r, extra.clone());
            }
        });
    }
}
