//! GEMM throughput on the hot shapes of training steps (W1's MLP: batch 256 × 784 → 256
//! → 10, forward and backward, plus W5's 1024³), one JSON line per shape, with the
//! protocol of `/work/shared/bench/WORKLOADS.md` (as `bench_kernels`).
//! `scripts/bench_torch_gemm.py` prints the same lines for PyTorch.
//!
//! Names are `gemm_<m>x<k>x<n>_<a><b>`: `n` a row-major operand, `t` a transposed view
//! (a strided operand handed to the GEMM without a copy), as the MLP's step has them:
//! forward `X·W1ᵀ` (nt) and `H·W2ᵀ` (nt), backward `Gᵀ·X` and `Gᵀ·H` (tn, the weights'
//! gradients, computed in the weights' own orientation), `G·W2` (nn).
//!
//! ```text
//! cargo run --release -p d2l-tensor --example bench_gemm -- --threads 2
//! D2L_CPU=avx2 cargo run --release -p d2l-tensor --example bench_gemm -- --threads 1
//! D2L_GEMM=gemm cargo run --release -p d2l-tensor --example bench_gemm   # the gemm crate
//! D2L_GEMM=d2l cargo run --release -p d2l-tensor --example bench_gemm    # ours
//! ```
//!
//! Each record carries `cpu` (the kernels' SIMD path) and `gemm` (which f32 GEMM ran).

use d2l_tensor::{cpu_path, no_grad, sgemm_name, Tensor};
#[path = "common/protocol.rs"]
mod protocol;

use protocol::{emit, start};

/// `(m, k, n, a transposed, b transposed)` of the shapes timed.
pub const SHAPES: &[(usize, usize, usize, bool, bool)] = &[
    (256, 784, 256, false, true),
    (256, 256, 784, true, false),
    (784, 256, 256, true, false),
    (256, 256, 10, false, true),
    (10, 256, 256, true, false),
    (256, 256, 10, true, false),
    (256, 10, 256, false, false),
    (256, 784, 256, false, false),
    (64, 784, 256, false, true),
    (1024, 1024, 1024, false, false),
];

fn main() {
    let (only, p) = start();
    // On a thread of the kernels' pool, as `d2l bench` runs its loops.
    d2l_tensor::install(|| {
        no_grad(|| {
            for &(m, k, n, ta, tb) in SHAPES {
                let name = format!(
                    "gemm_{m}x{k}x{n}_{}{}",
                    if ta { 't' } else { 'n' },
                    if tb { 't' } else { 'n' }
                );
                if !only.want(&name) {
                    continue;
                }
                let a = if ta {
                    Tensor::randn(&[k, m]).t().unwrap()
                } else {
                    Tensor::randn(&[m, k])
                };
                let b = if tb {
                    Tensor::randn(&[n, k]).t().unwrap()
                } else {
                    Tensor::randn(&[k, n])
                };
                let r = p.measure(|| drop(a.matmul(&b).unwrap()), 2.0 * (m * k * n) as f64);
                emit(
                    "gemm",
                    &name,
                    "gflops",
                    "GFLOP/s",
                    1e9,
                    &r,
                    serde_json::json!({"shape": [m, k, n], "cpu": cpu_path().name(), "gemm": sgemm_name()}),
                );
            }
        })
    });
}
