//! D2L 3.6, *Implementation of Softmax Regression from Scratch*: the parameters `W`
//! (784, 10) ~ N(0, 0.01²) and `b` = 0, `softmax` and `cross_entropy` by hand, the
//! book's `train_epoch_ch3` / `train_ch3` loop, and its `sgd` updater (lr 0.1) on the
//! summed loss; batch 256, 10 epochs on Fashion-MNIST.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example softmax_regression_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{print_epoch, print_final, setup};
use d2l::data::loader::DataLoader;
use d2l::models::recipe::Recipe;
use d2l::models::scratch::sgd;
use d2l::prelude::*;
use d2l::train::metrics::{accuracy, data_error, Accumulator};
use std::time::Instant;

/// `softmax(X)`: exponentiate, then divide each row by its sum (not stabilised, as in
/// the book).
fn softmax(x: &Tensor) -> Result<Tensor> {
    let x_exp = x.exp()?;
    let partition = x_exp.sum(&[1], true)?;
    x_exp.div(&partition) // broadcasting applies here
}

/// The model: `softmax(X.reshape((-1, 784)) @ W + b)`.
fn net(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let x = x.reshape([-1, w.shape()[0] as isize])?;
    softmax(&x.matmul(w)?.add(b)?)
}

/// `cross_entropy(y_hat, y)`: `-log(y_hat[range(len(y_hat)), y])`, one loss per example.
fn cross_entropy(y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
    y_hat.gather(1, &y.reshape([-1, 1])?)?.log()?.neg()
}

/// `evaluate_accuracy(net, data_iter)`: correct predictions / examples, without
/// gradients.
fn evaluate_accuracy(w: &Tensor, b: &Tensor, data_iter: &DataLoader) -> Result<f64> {
    no_grad(|| {
        let mut metric = Accumulator::new(2); // correct, examples
        for batch in data_iter {
            let batch = batch.map_err(data_error)?;
            metric.add(&[
                accuracy(&net(&batch.x, w, b)?, &batch.y)?,
                batch.len() as f64,
            ]);
        }
        Ok(metric[0] / metric[1])
    })
}

/// `train_epoch_ch3`: one pass over the training set; `loss.sum().backward()` then the
/// `sgd` updater. Returns (training loss, training accuracy).
fn train_epoch_ch3(w: &Tensor, b: &Tensor, train_iter: &DataLoader, lr: f64) -> Result<(f64, f64)> {
    let mut metric = Accumulator::new(3); // loss sum, correct, examples
    for batch in train_iter {
        let batch = batch.map_err(data_error)?;
        let y_hat = net(&batch.x, w, b)?;
        let l = cross_entropy(&y_hat, &batch.y)?;
        l.sum_all()?.backward()?;
        sgd(&[w.clone(), b.clone()], lr, batch.len())?; // the book's `updater`
        metric.add(&[
            l.sum_all()?.item_f64()?,
            accuracy(&y_hat, &batch.y)?,
            batch.len() as f64,
        ]);
    }
    Ok((metric[0] / metric[2], metric[1] / metric[2]))
}

fn main() -> Result<()> {
    // Batch 256, lr 0.1, 10 epochs; seed 0.
    let (recipe, (train_iter, test_iter)) = setup(Recipe::softmax_scratch())?;

    let (num_inputs, num_outputs) = (784, 10);
    let w = Tensor::normal(&[num_inputs, num_outputs], 0.0, 0.01)?.requires_grad_(true)?;
    let b = Tensor::zeros(&[num_outputs]).requires_grad_(true)?;

    // A sanity check from the book: every row of softmax's output sums to 1.
    let x = Tensor::normal(&[2, 5], 0.0, 1.0)?;
    println!("softmax rows sum to {}", softmax(&x)?.sum(&[1], false)?);
    println!(
        "untrained test acc {:.4}",
        evaluate_accuracy(&w, &b, &test_iter)?
    );

    // `train_ch3`.
    println!("{recipe}");
    let start = Instant::now();
    let (mut train_loss, mut train_acc, mut test_acc) = (f64::NAN, f64::NAN, f64::NAN);
    for epoch in 1..=recipe.epochs {
        (train_loss, train_acc) = train_epoch_ch3(&w, &b, &train_iter, recipe.lr)?;
        test_acc = evaluate_accuracy(&w, &b, &test_iter)?;
        print_epoch(epoch, train_loss, train_acc, test_acc);
    }
    let seconds = start.elapsed().as_secs_f64();
    print_final(train_loss, train_acc, test_acc, seconds);
    Ok(())
}
