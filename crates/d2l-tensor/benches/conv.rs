//! Criterion benches of conv2d: forward (under `no_grad`) and backward (input gradient +
//! weight gradient through `conv2d_backward`) for LeNet's two convs at batch 256,
//! ResNet-18's 3×3 convs at batch 32 for a 96×96 input (W3), a 1×1 conv, and W5's
//! `conv2d_64x64_3x3` (forward). Throughput is `Elements` = FLOPs (2 per multiply-add;
//! backward counts twice the forward), so criterion's "Gelem/s" reads as GFLOP/s.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench -p d2l-tensor --bench conv
//! ```
//!
//! For the ratio against PyTorch use the example `bench_conv` and
//! `scripts/bench_torch_conv.py`, which share one protocol and one set of names.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use d2l_tensor::{conv2d_backward, no_grad, Conv2dOptions, Tensor};

mod common;
use common::group;

/// (name, input, weight, padding, backward too)
const CASES: &[(&str, [usize; 4], [usize; 4], usize, bool)] = &[
    ("lenet_c1", [256, 1, 28, 28], [6, 1, 5, 5], 2, true),
    ("lenet_c2", [256, 6, 14, 14], [16, 6, 5, 5], 0, true),
    ("resnet_64_24", [32, 64, 24, 24], [64, 64, 3, 3], 1, true),
    (
        "resnet_128_12",
        [32, 128, 12, 12],
        [128, 128, 3, 3],
        1,
        true,
    ),
    ("resnet_256_6", [32, 256, 6, 6], [256, 256, 3, 3], 1, true),
    ("resnet_512_3", [32, 512, 3, 3], [512, 512, 3, 3], 1, true),
    (
        "conv1x1_64to128_24",
        [32, 64, 24, 24],
        [128, 64, 1, 1],
        0,
        true,
    ),
    (
        "conv2d_64x64_3x3",
        [32, 64, 28, 28],
        [64, 64, 3, 3],
        1,
        false,
    ),
];

fn conv(c: &mut Criterion) {
    let mut g = group(c, "conv2d", 700);
    for &(name, xs, ws, pad, bwd) in CASES {
        let x = Tensor::randn(&xs);
        let w = Tensor::randn(&ws);
        let o = Conv2dOptions::default().with_padding(pad);
        let y = no_grad(|| x.conv2d(&w, None, &o).unwrap());
        let flops = 2 * y.numel() as u64 * (ws[1] * ws[2] * ws[3]) as u64;
        g.throughput(Throughput::Elements(flops));
        g.bench_function(format!("{name}_fwd"), |b| {
            no_grad(|| b.iter(|| black_box(x.conv2d(&w, None, &o).unwrap())))
        });
        if bwd {
            let gy = Tensor::randn(y.shape());
            g.throughput(Throughput::Elements(2 * flops));
            g.bench_function(format!("{name}_bwd"), |b| {
                no_grad(|| {
                    b.iter(|| {
                        black_box(conv2d_backward(&x, &w, &gy, &o, [true, true, false]).unwrap())
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
