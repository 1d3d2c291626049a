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

use d2l_tensor::{no_grad, Tensor};
#[path = "common/protocol.rs"]
mod protocol;

use protocol::{emit, start};

fn main() {
    let (only, p) = start();
    let want = |name: &str| only.want(name);

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
        // Bytes moved per element: two reads and a write, or one read and a write.
        let elementwise: [(&str, f64, &dyn Fn() -> Tensor); 3] = [
            ("add_16m", 3.0, &|| x.add(&y).unwrap()),
            ("mul_16m", 3.0, &|| x.mul(&y).unwrap()),
            ("relu_16m", 2.0, &|| x.relu().unwrap()),
        ];
        for (name, passes, op) in elementwise {
            if want(name) {
                let r = p.measure(|| drop(op()), passes * nb);
                let shape = serde_json::json!({"shape": [n]});
                emit("kernels", name, "gbps", "GB/s", 1e9, &r, shape);
            }
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
