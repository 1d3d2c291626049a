//! The fused cross-entropy (one kernel for log-softmax and NLL, forward and backward)
//! against the composed `log_softmax` + `nll_loss`, on the book's classification shapes
//! (Fashion-MNIST's 10 classes, an ImageNet-sized 1000, a character model's 28).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench -p d2l-nn --bench loss
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use d2l_nn::loss::{cross_entropy, nll_loss, Reduction};
use d2l_tensor::{Generator, Tensor};
use std::time::Duration;

fn fused_vs_composed(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_entropy_fwdbwd");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (n, classes) in [(256usize, 10usize), (256, 1000), (4096, 28)] {
        let logits = Tensor::randn_with(&mut Generator::new(14), &[n, classes]);
        let t = Tensor::from_vec(
            (0..n as i64)
                .map(|i| i % classes as i64)
                .collect::<Vec<_>>(),
            &[n],
        )
        .unwrap();
        g.bench_function(format!("fused_{n}x{classes}"), |b| {
            b.iter(|| {
                let x = logits.clone().requires_grad_(true).unwrap();
                cross_entropy(&x, &t).unwrap().backward().unwrap();
                black_box(x.grad())
            })
        });
        g.bench_function(format!("composed_{n}x{classes}"), |b| {
            b.iter(|| {
                let x = logits.clone().requires_grad_(true).unwrap();
                let l = nll_loss(&x.log_softmax(1).unwrap(), &t, None, None, Reduction::Mean);
                l.unwrap().backward().unwrap();
                black_box(x.grad())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fused_vs_composed);
criterion_main!(benches);
