//! The `d2l` program. Until the training commands land it prints the engine's version
//! and runs D2L 3.2 (linear regression from scratch) on synthetic data, offline.

use d2l_tensor::{manual_seed, no_grad, num_threads, Result, Tensor, VERSION};
use std::process::ExitCode;

/// y = Xw + b + noise with noise N(0, 0.01²), as the book's `synthetic_data`.
fn synthetic_data(w: &Tensor, b: f64, n: usize) -> Result<(Tensor, Tensor)> {
    let x = Tensor::normal(&[n, w.numel()], 0.0, 1.0)?;
    let y = x.matmul(w)?.add_scalar(b)?;
    let y = y.add(&Tensor::normal(y.shape(), 0.0, 0.01)?)?;
    Ok((x, y.reshape([-1, 1])?))
}

fn demo() -> Result<()> {
    manual_seed(0);
    let true_w = Tensor::from_slice(&[2.0f32, -3.4], &[2])?;
    let true_b = 4.2;
    let (features, labels) = synthetic_data(&true_w, true_b, 1000)?;
    println!("features: {features:?}");
    println!(
        "first example: {} -> {}",
        features.select(0, 0)?,
        labels.select(0, 0)?
    );

    let w = Tensor::normal(&[2, 1], 0.0, 0.01)?.requires_grad_(true)?;
    let b = Tensor::zeros(&[1]).requires_grad_(true)?;
    let (lr, batch_size, epochs) = (0.03, 10, 3);
    for epoch in 0..epochs {
        let order = Tensor::randperm(features.shape()[0]);
        for idx in order.split(batch_size, 0)? {
            let (x, y) = (
                features.index_select(0, &idx)?,
                labels.index_select(0, &idx)?,
            );
            let y_hat = x.matmul(&w)?.add(&b)?;
            let loss = y_hat.sub(&y)?.square()?.mul_scalar(0.5)?.sum_all()?;
            loss.backward()?;
            no_grad(|| -> Result<()> {
                for p in [&w, &b] {
                    let g = p.grad().expect("backward filled the gradient");
                    p.sub_(&g.mul_scalar(lr / batch_size as f64)?)?;
                    p.zero_grad();
                }
                Ok(())
            })?;
        }
        let train_l = no_grad(|| {
            features
                .matmul(&w)?
                .add(&b)?
                .sub(&labels)?
                .square()?
                .mul_scalar(0.5)?
                .mean_all()
        })?;
        println!("epoch {}, loss {:.6}", epoch + 1, train_l.item()?);
    }
    let w_err = true_w.sub(&w.reshape([-1])?)?;
    println!("error in estimating w: {w_err}");
    println!("error in estimating b: {:.6}", true_b - b.item()? as f64);
    Ok(())
}

fn main() -> ExitCode {
    println!(
        "d2l-rs {VERSION} (engine d2l-tensor, {} threads)",
        num_threads()
    );
    println!("The training commands arrive with the CLI issue; running the D2L 3.2 demo.\n");
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
