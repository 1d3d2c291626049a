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

use d2l_tensor::{no_grad, Tensor};
#[path = "common/protocol.rs"]
mod protocol;

use protocol::{emit, start};

fn main() {
    let (only, p) = start();
    let want = |name: &str| only.want(name);

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
