//! Criterion benches of the CPU kernels (peer workload W5 plus the elementwise and
//! reduction kernels), all under `no_grad`, inputs made once outside the timed closure.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench -p d2l-tensor --bench kernels
//! ```
//!
//! Throughput: GEMMs report `Elements` = FLOPs (2·m·n·k), so criterion's "Gelem/s" reads
//! as GFLOP/s; memory-bound kernels report `Bytes` = bytes read + bytes written, so
//! "GiB/s" is the effective bandwidth. For the ratio against PyTorch use the example
//! `bench_kernels` and `scripts/bench_torch_kernels.py`, which share one protocol.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use d2l_tensor::{no_grad, Tensor};

mod common;
use common::group;

const ELEMWISE_N: usize = 1 << 24; // 16,777,216 elements
const F32: u64 = 4;

fn gemm(c: &mut Criterion) {
    let mut g = group(c, "gemm", 700);
    for &(m, k, n) in &[(1024usize, 1024usize, 1024usize), (256, 784, 256)] {
        let a = Tensor::randn(&[m, k]);
        let b = Tensor::randn(&[k, n]);
        g.throughput(Throughput::Elements((2 * m * k * n) as u64)); // FLOPs → Gelem/s = GFLOP/s
        g.bench_function(format!("matmul_{m}x{k}x{n}"), |bch| {
            no_grad(|| bch.iter(|| black_box(a.matmul(&b).unwrap())))
        });
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut g = group(c, "elementwise_16m", 700);
    let x = Tensor::randn(&[ELEMWISE_N]);
    let y = Tensor::randn(&[ELEMWISE_N]);
    let n = ELEMWISE_N as u64;
    g.throughput(Throughput::Bytes(3 * n * F32)); // read 2, write 1
    g.bench_function("add", |b| {
        no_grad(|| b.iter(|| black_box(x.add(&y).unwrap())))
    });
    g.bench_function("mul", |b| {
        no_grad(|| b.iter(|| black_box(x.mul(&y).unwrap())))
    });
    g.throughput(Throughput::Bytes(2 * n * F32)); // read 1, write 1
    g.bench_function("relu", |b| {
        no_grad(|| b.iter(|| black_box(x.relu().unwrap())))
    });
    g.finish();
}

fn reductions(c: &mut Criterion) {
    let mut g = group(c, "reduce", 700);
    let logits = Tensor::randn(&[256, 1000]);
    g.throughput(Throughput::Bytes(2 * 256 * 1000 * F32)); // read + write
    g.bench_function("softmax_256x1000_dim-1", |b| {
        no_grad(|| b.iter(|| black_box(logits.softmax(-1).unwrap())))
    });
    let big = Tensor::randn(&[4096, 4096]);
    g.throughput(Throughput::Bytes(4096 * 4096 * F32 + F32)); // read all, write one
    g.bench_function("sum_all_4096x4096", |b| {
        no_grad(|| b.iter(|| black_box(big.sum_all().unwrap())))
    });
    g.finish();
}

criterion_group!(benches, gemm, elementwise, reductions);
criterion_main!(benches);
