//! Convolution throughput of the d2l-rs engine, one JSON line per case and pass, with the
//! protocol of `/work/shared/bench/WORKLOADS.md` (warm-up ≥ 3 steps and ≥ 1 s, one
//! calibration step, then 5 repetitions of n = ceil(1 s / t_step) steps; median
//! throughput; wall clock). `scripts/bench_torch_conv.py` prints the same lines for
//! PyTorch (`F.conv2d` and `aten.convolution_backward`), to be joined on `name`.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p d2l-tensor --example bench_conv
//! cargo run --release -p d2l-tensor --example bench_conv -- --threads 2 --only resnet_64_24_fwd
//! ```
//!
//! Cases (no bias; f32; GFLOP/s counts 2 FLOPs per multiply-add): LeNet's two convs at
//! batch 256, ResNet-18's 3×3 convs at batch 32 for a 96×96 input (W3), a 1×1 conv and
//! W5's `conv2d_64x64_3x3`. `_fwd` is the forward under `no_grad` (2·N·C_out·P·K FLOPs);
//! `_bwd` is the input gradient plus the weight gradient (twice the forward's FLOPs).

use d2l_tensor::{
    conv2d_backward, manual_seed, no_grad, num_threads, set_num_threads, Conv2dOptions, Tensor,
};
use std::time::Instant;

const WARMUP_S: f64 = 1.0;
const WARMUP_MIN: usize = 3;

/// (name, input, weight, padding, stride, workload, backward too)
pub const CASES: &[(&str, [usize; 4], [usize; 4], usize, usize, &str, bool)] = &[
    ("lenet_c1", [256, 1, 28, 28], [6, 1, 5, 5], 2, 1, "W1", true),
    (
        "lenet_c2",
        [256, 6, 14, 14],
        [16, 6, 5, 5],
        0,
        1,
        "W1",
        true,
    ),
    (
        "resnet_64_24",
        [32, 64, 24, 24],
        [64, 64, 3, 3],
        1,
        1,
        "W3",
        true,
    ),
    (
        "resnet_128_12",
        [32, 128, 12, 12],
        [128, 128, 3, 3],
        1,
        1,
        "W3",
        true,
    ),
    (
        "resnet_256_6",
        [32, 256, 6, 6],
        [256, 256, 3, 3],
        1,
        1,
        "W3",
        true,
    ),
    (
        "resnet_512_3",
        [32, 512, 3, 3],
        [512, 512, 3, 3],
        1,
        1,
        "W3",
        true,
    ),
    (
        "conv1x1_64to128_24",
        [32, 64, 24, 24],
        [128, 64, 1, 1],
        0,
        1,
        "W3",
        true,
    ),
    (
        "conv2d_64x64_3x3",
        [32, 64, 28, 28],
        [64, 64, 3, 3],
        1,
        1,
        "W5",
        false,
    ),
];

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

fn measure(reps: usize, target_s: f64, mut step: impl FnMut(), work: f64) -> Measured {
    let t0 = Instant::now();
    let mut n = 0;
    while n < WARMUP_MIN || t0.elapsed().as_secs_f64() < WARMUP_S {
        step();
        n += 1;
    }
    let t1 = Instant::now();
    step();
    let one = t1.elapsed().as_secs_f64();
    let steps = ((target_s / one.max(1e-9)).ceil() as usize).max(1);
    let (mut rates, mut per) = (vec![], vec![]);
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..steps {
            step();
        }
        let dt = t.elapsed().as_secs_f64();
        rates.push(work * steps as f64 / dt);
        per.push(dt / steps as f64);
    }
    Measured {
        rate: median(&rates),
        rates,
        steps,
        step_s: median(&per),
    }
}

fn round(x: f64, d: i32) -> f64 {
    let p = 10f64.powi(d);
    (x * p).round() / p
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only: Option<Vec<String>> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--threads" => {
                set_num_threads(args[i + 1].parse().expect("--threads N")).unwrap();
                i += 2;
            }
            "--only" => {
                only = Some(args[i + 1].split(',').map(str::to_string).collect());
                i += 2;
            }
            a => panic!("unknown argument {a} (expected --threads N, --only a,b)"),
        }
    }
    let want = |n: &str| only.as_ref().map_or(true, |o| o.iter().any(|x| x == n));
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (reps, target) = (env("BENCH_REPS", 5.0) as usize, env("BENCH_TARGET_S", 1.0));
    manual_seed(0);
    no_grad(|| {
        for &(case, xs, ws, pad, stride, workload, bwd) in CASES {
            let x = Tensor::randn(&xs);
            let w = Tensor::randn(&ws);
            let o = Conv2dOptions::stride(stride).with_padding(pad);
            let y = x.conv2d(&w, None, &o).unwrap();
            let k = (ws[1] * ws[2] * ws[3]) as f64;
            let flops = 2.0 * y.numel() as f64 * k;
            let mut passes: Vec<(String, f64)> = vec![];
            let fwd_name = if workload == "W5" {
                case.to_string()
            } else {
                format!("{case}_fwd")
            };
            passes.push((fwd_name, flops));
            if bwd {
                passes.push((format!("{case}_bwd"), 2.0 * flops));
            }
            let gy = Tensor::randn(y.shape());
            for (name, work) in passes {
                if !want(&name) && !want(case) {
                    continue;
                }
                let m = if name.ends_with("_bwd") {
                    measure(
                        reps,
                        target,
                        || drop(conv2d_backward(&x, &w, &gy, &o, [true, true, false]).unwrap()),
                        work,
                    )
                } else {
                    measure(reps, target, || drop(x.conv2d(&w, None, &o).unwrap()), work)
                };
                let rec = serde_json::json!({
                    "peer": "d2l-rs", "workload": workload, "name": name, "metric": "gflops",
                    "value": round(m.rate / 1e9, 3), "unit": "GFLOP/s",
                    "median_step_ms": round(m.step_s * 1e3, 4),
                    "reps": m.rates.iter().map(|r| round(r / 1e9, 3)).collect::<Vec<_>>(),
                    "steps_per_rep": m.steps, "threads": num_threads(), "device": "cpu",
                    "input": xs, "weight": ws, "padding": pad, "stride": stride,
                });
                println!("{rec}");
            }
        }
    });
}
