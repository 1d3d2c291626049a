//! D2L 3.3 (Concise Implementation of Linear Regression): `Linear`, `mse_loss`, `Sgd`
//! and `load_array`-style mini-batches, recovering w = [2, -3.4], b = 4.2.
//!
//! Run: `cargo run -p d2l-nn --example linear_regression_concise`

use d2l_nn::init;
use d2l_nn::layers::Linear;
use d2l_nn::loss::{mse_loss_with, Reduction};
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{manual_seed, no_grad, Result, Tensor};

fn main() -> Result<()> {
    manual_seed(0);
    let true_w = Tensor::from_slice(&[2.0f32, -3.4], &[2, 1])?;
    let true_b = 4.2;
    let features = Tensor::normal(&[1000, 2], 0.0, 1.0)?;
    let labels = features.matmul(&true_w)?.add_scalar(true_b)?;
    let labels = labels.add(&Tensor::normal(labels.shape(), 0.0, 0.01)?)?;

    let net = Sequential::new().add(Linear::new(2, 1)?);
    let layer = net.get_as::<Linear>(0).expect("a Linear");
    init::normal_(&layer.weight, 0.0, 0.01)?;
    init::zeros_(layer.bias.as_ref().expect("a bias"))?;

    let mut trainer = Sgd::new(net.parameters(), 0.03)?;
    for epoch in 1..=3 {
        for idx in Tensor::randperm(1000).split(10, 0)? {
            let (x, y) = (
                features.index_select(0, &idx)?,
                labels.index_select(0, &idx)?,
            );
            let l = mse_loss_with(&net.forward(&x)?, &y, Reduction::Mean)?;
            trainer.zero_grad();
            l.backward()?;
            trainer.step()?;
        }
        let l = no_grad(|| mse_loss_with(&net.forward(&features)?, &labels, Reduction::Mean))?;
        println!("epoch {epoch}, loss {:.6}", l.item()?);
    }
    let w = layer.weight.reshape(true_w.shape())?;
    println!("error in estimating w: {}", true_w.sub(&w)?.reshape([-1])?);
    println!(
        "error in estimating b: {:.6}",
        true_b - layer.bias.as_ref().unwrap().item()? as f64
    );
    Ok(())
}
