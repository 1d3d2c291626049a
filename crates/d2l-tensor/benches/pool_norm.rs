//! Criterion benches of max-pooling and batch-norm throughput (forward, and forward +
//! backward in training) on LeNet and ResNet-18 (W3) shapes. Throughput is the bytes of
//! the input read once, so "GiB/s" compares shapes; the side-by-side ratios against
//! PyTorch come from the examples `bench_pool` / `bench_norm` and their scripts.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench -p d2l-tensor --bench pool_norm
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use d2l_tensor::{no_grad, Pool2dOptions, Tensor};

mod common;
use common::group;

fn pool(c: &mut Criterion) {
    let mut g = group(c, "max_pool2d", 500);
    for (name, shape, opts) in [
        ("lenet_2x2", [256usize, 6, 28, 28], Pool2dOptions::new(2)),
        (
            "resnet_3x3s2p1",
            [32, 64, 48, 48],
            Pool2dOptions::new(3).with_stride(2).with_padding(1),
        ),
    ] {
        let x = Tensor::randn(&shape);
        g.throughput(Throughput::Bytes((x.numel() * 4) as u64));
        g.bench_function(format!("{name}_fwd"), |b| {
            b.iter(|| no_grad(|| black_box(x.max_pool2d(&opts).unwrap())))
        });
        let xr = x.clone().requires_grad_(true).unwrap();
        g.bench_function(format!("{name}_fwdbwd"), |b| {
            b.iter(|| {
                xr.max_pool2d(&opts)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                xr.zero_grad();
            })
        });
    }
    g.finish();
}

fn batch_norm(c: &mut Criterion) {
    let mut g = group(c, "batch_norm", 500);
    for (name, shape) in [
        ("lenet_6x28", [256usize, 6, 28, 28]),
        ("resnet_64x48", [32, 64, 48, 48]),
    ] {
        let ch = shape[1];
        let x = Tensor::randn(&shape);
        let (rm, rv) = (Tensor::zeros(&[ch]), Tensor::ones(&[ch]));
        let w = Tensor::ones(&[ch]).requires_grad_(true).unwrap();
        let bias = Tensor::zeros(&[ch]).requires_grad_(true).unwrap();
        g.throughput(Throughput::Bytes((x.numel() * 4) as u64));
        g.bench_function(format!("{name}_eval"), |b| {
            b.iter(|| {
                no_grad(|| {
                    black_box(
                        x.batch_norm(
                            Some(&rm),
                            Some(&rv),
                            Some(&w),
                            Some(&bias),
                            false,
                            0.1,
                            1e-5,
                        )
                        .unwrap(),
                    )
                })
            })
        });
        let xr = x.clone().requires_grad_(true).unwrap();
        g.bench_function(format!("{name}_train_fwdbwd"), |b| {
            b.iter(|| {
                let y = xr
                    .batch_norm(Some(&rm), Some(&rv), Some(&w), Some(&bias), true, 0.1, 1e-5)
                    .unwrap();
                y.sum_all().unwrap().backward().unwrap();
                xr.zero_grad();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pool, batch_norm);
criterion_main!(benches);
