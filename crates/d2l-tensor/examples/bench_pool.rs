//! Pooling throughput of the d2l-rs engine, one JSON line per case, with the protocol of
//! `/work/shared/bench/WORKLOADS.md` (warm-up ≥ 3 steps and ≥ 1 s, one calibration step,
//! then 5 repetitions of n = ceil(1 s / t_step) steps; median throughput; wall clock).
//! `scripts/bench_torch_pool.py` prints the same lines for PyTorch (join on `name`).
//!
//! Cases (f32, inputs ~ N(0, 1)): `maxpool2x2_lenet` ([256, 6, 28, 28], kernel 2),
//! `avgpool2x2_lenet` (same shape), `maxpool3x3s2p1_resnet` ([32, 64, 48, 48], kernel 3,
//! stride 2, padding 1: ResNet-18's stem on 96×96 images), `gap_resnet` ([32, 512, 3, 3]
//! → 1×1, ResNet-18's head). Each runs as `_fwd` (no autograd) and `_fwdbwd` (forward
//! with autograd, then backward of a fixed output gradient). Metric: input elements per
//! second (Melem/s); compare `median_step_ms` for ratios.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p d2l-tensor --example bench_pool
//! cargo run --release -p d2l-tensor --example bench_pool -- --threads 2 --only maxpool2x2_lenet_fwd
//! ```
//!
//! Environment: `BENCH_REPS` (default 5), `BENCH_TARGET_S` (default 1.0).

use d2l_tensor::{manual_seed, no_grad, num_threads, set_num_threads, Pool2dOptions, Tensor};
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

    type PoolFn = Box<dyn Fn(&Tensor) -> Tensor>;
    let cases: Vec<(&str, Vec<usize>, PoolFn, serde_json::Value)> = vec![
        (
            "maxpool2x2_lenet",
            vec![256, 6, 28, 28],
            Box::new(|x: &Tensor| x.max_pool2d(&Pool2dOptions::new(2)).unwrap()),
            serde_json::json!({"op": "max_pool2d", "kernel": 2, "stride": 2, "padding": 0}),
        ),
        (
            "avgpool2x2_lenet",
            vec![256, 6, 28, 28],
            Box::new(|x: &Tensor| x.avg_pool2d(&Pool2dOptions::new(2)).unwrap()),
            serde_json::json!({"op": "avg_pool2d", "kernel": 2, "stride": 2, "padding": 0}),
        ),
        (
            "maxpool3x3s2p1_resnet",
            vec![32, 64, 48, 48],
            Box::new(|x: &Tensor| {
                x.max_pool2d(&Pool2dOptions::new(3).with_stride(2).with_padding(1))
                    .unwrap()
            }),
            serde_json::json!({"op": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1}),
        ),
        (
            "gap_resnet",
            vec![32, 512, 3, 3],
            Box::new(|x: &Tensor| x.adaptive_avg_pool2d((1, 1)).unwrap()),
            serde_json::json!({"op": "adaptive_avg_pool2d", "output_size": 1}),
        ),
    ];
    for (base, shape, f, extra) in &cases {
        let (fwd, fwdbwd) = (format!("{base}_fwd"), format!("{base}_fwdbwd"));
        if !want(&fwd) && !want(&fwdbwd) {
            continue;
        }
        let x = Tensor::randn(shape);
        let n = x.numel() as f64;
        let mut ex = extra.clone();
        ex["shape"] = serde_json::json!(shape);
        if want(&fwd) {
            let r = no_grad(|| p.measure(|| drop(f(&x)), n));
            emit("pool", &fwd, "melems", "Melem/s", 1e6, &r, ex.clone());
        }
        if want(&fwdbwd) {
            let xg = x.detach().requires_grad_(true).unwrap();
            let g = no_grad(|| Tensor::randn(f(&x).shape()));
            let r = p.measure(
                || {
                    xg.zero_grad();
                    let y = f(&xg);
                    y.backward_with(&g).unwrap();
                },
                n,
            );
            emit("pool", &fwdbwd, "melems", "Melem/s", 1e6, &r, ex);
        }
    }
}
