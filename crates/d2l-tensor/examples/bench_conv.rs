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

use d2l_tensor::{conv2d_backward, no_grad, Conv2dOptions, Tensor};
#[path = "common/protocol.rs"]
mod protocol;

use protocol::{emit, start};

/// (name, input, weight, padding, stride, workload, backward too)
#[rustfmt::skip]
pub const CASES: &[(&str, [usize; 4], [usize; 4], usize, usize, &str, bool)] = &[
    ("lenet_c1", [256, 1, 28, 28], [6, 1, 5, 5], 2, 1, "W1", true),
    ("lenet_c2", [256, 6, 14, 14], [16, 6, 5, 5], 0, 1, "W1", true),
    ("resnet_64_24", [32, 64, 24, 24], [64, 64, 3, 3], 1, 1, "W3", true),
    ("resnet_128_12", [32, 128, 12, 12], [128, 128, 3, 3], 1, 1, "W3", true),
    ("resnet_256_6", [32, 256, 6, 6], [256, 256, 3, 3], 1, 1, "W3", true),
    ("resnet_512_3", [32, 512, 3, 3], [512, 512, 3, 3], 1, 1, "W3", true),
    ("conv1x1_64to128_24", [32, 64, 24, 24], [128, 64, 1, 1], 0, 1, "W3", true),
    ("conv2d_64x64_3x3", [32, 64, 28, 28], [64, 64, 3, 3], 1, 1, "W5", false),
];

fn main() {
    let (only, p) = start();
    let want = |n: &str| only.want(n);
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
                    p.measure(
                        || drop(conv2d_backward(&x, &w, &gy, &o, [true, true, false]).unwrap()),
                        work,
                    )
                } else {
                    p.measure(|| drop(x.conv2d(&w, None, &o).unwrap()), work)
                };
                emit(
                    workload,
                    &name,
                    "gflops",
                    "GFLOP/s",
                    1e9,
                    &m,
                    serde_json::json!({
                        "input": xs, "weight": ws, "padding": pad, "stride": stride,
                    }),
                );
            }
        }
    });
}
