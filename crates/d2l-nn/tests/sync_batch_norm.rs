//! Synchronised batch norm (`set_batch_norm_sync`, used by `d2l train --sync-bn`): its own
//! binary, since the setting is process-wide.
//!
//! With a one-process "sum" (the identity) the synchronised path must give the local
//! kernel's outputs, input and parameter gradients and running statistics; with a sum
//! that adds a second, identical process it sees every row twice, so its outputs are
//! unchanged. Every call of the sum is counted: forward and backward both go through it,
//! evaluation mode never does.

use d2l_nn::norm::{set_batch_norm_sync, BatchNorm1d, BatchNorm2d, BatchNormSync};
use d2l_nn::Module;
use d2l_tensor::{Generator, Result, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// Output, input gradient, weight and bias gradients, and the state after one training
/// forward and backward of `layer` on `x` with a weighted sum as the loss.
fn run(layer: &dyn Module, x: &Tensor, w: &Tensor) -> Result<Vec<Tensor>> {
    let x = x.detach().requires_grad_(true)?;
    let y = layer.forward(&x)?;
    y.mul(w)?.sum_all()?.backward()?;
    let mut out = vec![y.detach(), x.grad().unwrap()];
    for p in layer.parameters() {
        out.push(p.grad().unwrap());
    }
    for (_, b) in layer.named_buffers() {
        out.push(b.detach());
    }
    Ok(out)
}

#[test]
fn synchronised_batch_norm_matches_the_local_kernel() -> Result<()> {
    let mut g = Generator::new(7);
    let x4 = Tensor::randn_with(&mut g, &[6, 3, 4, 5])
        .mul_scalar(2.0)?
        .add_scalar(0.5)?;
    let w4 = Tensor::randn_with(&mut g, &[6, 3, 4, 5]);
    let x2 = Tensor::randn_with(&mut g, &[8, 4]);
    let w2 = Tensor::randn_with(&mut g, &[8, 4]);
    let make = || -> Result<(BatchNorm2d, BatchNorm1d)> {
        let a = BatchNorm2d::new(3)?;
        let b = BatchNorm1d::new(4)?;
        // Non-trivial affine parameters.
        a.parameters()[0]
            .detach()
            .copy_(&Tensor::from_vec(vec![0.5f32, 1.5, -1.0], &[3])?)?;
        b.parameters()[1]
            .detach()
            .copy_(&Tensor::from_vec(vec![0.1f32, 0.2, 0.3, 0.4], &[4])?)?;
        Ok((a, b))
    };
    let (a, b) = make()?;
    let local4 = run(&a, &x4, &w4)?;
    let local2 = run(&b, &x2, &w2)?;

    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let identity: BatchNormSync = Arc::new(move |_buf: &mut [f32]| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    set_batch_norm_sync(Some(identity));
    let (a, b) = make()?;
    let synced4 = run(&a, &x4, &w4)?;
    let synced2 = run(&b, &x2, &w2)?;
    // Per layer: the count, the sums, the centred squares forward; both sums backward.
    assert_eq!(calls.load(Ordering::SeqCst), 2 * 5);
    for (k, (l, s)) in local4.iter().zip(&synced4).enumerate() {
        close(s, l, 1e-5, &format!("BatchNorm2d item {k}"));
    }
    for (k, (l, s)) in local2.iter().zip(&synced2).enumerate() {
        close(s, l, 1e-5, &format!("BatchNorm1d item {k}"));
    }

    // A second, identical process: every sum doubles.
    let twice: BatchNormSync = Arc::new(|buf: &mut [f32]| {
        buf.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    });
    set_batch_norm_sync(Some(twice));
    let (a, _) = make()?;
    let doubled = run(&a, &x4, &w4)?;
    close(
        &doubled[0],
        &local4[0],
        1e-5,
        "output with two identical processes",
    );
    set_batch_norm_sync(None);
    // Eval mode never synchronises.
    let calls_before = calls.load(Ordering::SeqCst);
    a.eval();
    a.forward(&x4)?;
    assert_eq!(calls.load(Ordering::SeqCst), calls_before);
    Ok(())
}
