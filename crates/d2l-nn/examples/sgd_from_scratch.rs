//! Linear regression from scratch (D2L 3.2): synthetic data, a hand-written model and
//! loss, and the book's `sgd(params, lr, batch_size)` as a few lines of user code on the
//! public tensor API (no `d2l_nn::optim` needed).
//!
//! Run with `cargo run -p d2l-nn --example sgd_from_scratch`.

use d2l_nn::{Result, Tensor};
use d2l_tensor::{manual_seed, no_grad};

/// The book's minibatch SGD: `param -= lr * param.grad / batch_size`, then clear the grad.
fn sgd(params: &[&Tensor], lr: f64, batch_size: usize) -> Result<()> {
    no_grad(|| {
        for p in params {
            let g = p.grad().expect("backward() ran first");
            p.sub_(&g.mul_scalar(lr / batch_size as f64)?)?;
            p.zero_grad();
        }
        Ok(())
    })
}

/// y = Xw + b + noise (D2L 3.3.1 `synthetic_data`).
fn synthetic_data(w: &Tensor, b: f64, num_examples: usize) -> Result<(Tensor, Tensor)> {
    let x = Tensor::normal(&[num_examples, w.numel()], 0.0, 1.0)?;
    let y = x.matmul(&w.reshape([w.numel(), 1])?)?.add_scalar(b)?;
    let y = y.add(&Tensor::normal(y.shape(), 0.0, 0.01)?)?;
    Ok((x, y))
}

/// The linear model Xw + b.
fn linreg(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(w)?.add(b)
}

/// Squared loss (ŷ - y)² / 2, per example.
fn squared_loss(y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
    y_hat.sub(y)?.square()?.mul_scalar(0.5)
}

fn main() -> Result<()> {
    manual_seed(42);
    let true_w = Tensor::from_vec(vec![2.0f32, -3.4], &[2])?;
    let true_b = 4.2;
    let (features, labels) = synthetic_data(&true_w, true_b, 1000)?;

    let w = Tensor::normal(&[2, 1], 0.0, 0.01)?.requires_grad_(true)?;
    let b = Tensor::zeros(&[1]).requires_grad_(true)?;
    let (lr, num_epochs, batch_size) = (0.03, 3, 10);
    let n = features.shape()[0];

    for epoch in 0..num_epochs {
        // Shuffled minibatches (D2L 3.2's data_iter).
        let order = Tensor::randperm(n);
        for start in (0..n).step_by(batch_size) {
            let idx = order.narrow(0, start, batch_size.min(n - start))?;
            let (x, y) = (
                features.index_select(0, &idx)?,
                labels.index_select(0, &idx)?,
            );
            let l = squared_loss(&linreg(&x, &w, &b)?, &y)?;
            l.sum_all()?.backward()?;
            sgd(&[&w, &b], lr, batch_size)?;
        }
        let train_l = no_grad(|| squared_loss(&linreg(&features, &w, &b)?, &labels)?.mean_all())?;
        println!("epoch {}, loss {:.6}", epoch + 1, train_l.item()?);
    }

    let w_hat = w.reshape([2])?.to_vec::<f32>();
    let b_hat = b.to_vec::<f32>()[0];
    println!(
        "error in estimating w: [{:.6}, {:.6}]",
        2.0 - w_hat[0],
        -3.4 - w_hat[1]
    );
    println!("error in estimating b: {:.6}", true_b as f32 - b_hat);
    Ok(())
}
