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

use d2l_tensor::{no_grad, Pool2dOptions, Tensor};
#[path = "common/protocol.rs"]
mod protocol;

use protocol::{emit, start};

fn main() {
    let (only, p) = start();
    let want = |name: &str| only.want(name);

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
