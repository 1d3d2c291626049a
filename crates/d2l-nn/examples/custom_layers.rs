//! D2L 5.4 (Custom Layers): a layer without parameters and one with its own.
//!
//! Run: `cargo run -p d2l-nn --example custom_layers`

use d2l_nn::layers::Linear;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{manual_seed, Result, Tensor};

/// Subtracts the mean (5.4.1).
struct CenteredLayer;

impl Module for CenteredLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.sub(&x.mean_all()?)
    }
}

/// A fully connected layer with ReLU, written by hand (5.4.2).
struct MyLinear {
    weight: Tensor,
    bias: Tensor,
}

impl MyLinear {
    fn new(in_units: usize, units: usize) -> Result<Self> {
        Ok(MyLinear {
            weight: Tensor::randn(&[in_units, units]).requires_grad_(true)?,
            bias: Tensor::randn(&[units]).requires_grad_(true)?,
        })
    }
}

impl Module for MyLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight)?.add(&self.bias)?.relu()
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let layer = CenteredLayer;
    println!(
        "{}",
        layer.forward(&Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &[5])?)?
    );
    let net = Sequential::new()
        .add(Linear::new(8, 128)?)
        .add(CenteredLayer);
    let y = net.forward(&Tensor::rand(&[4, 8]))?;
    println!("mean of the output: {:.3e}", y.mean_all()?.item()?);

    let linear = MyLinear::new(5, 3)?;
    println!("MyLinear weight: {}", linear.weight);
    println!("forward: {}", linear.forward(&Tensor::rand(&[2, 5]))?);
    let net = Sequential::new()
        .add(MyLinear::new(64, 8)?)
        .add(MyLinear::new(8, 1)?);
    println!("stacked: {}", net.forward(&Tensor::rand(&[2, 64]))?);
    Ok(())
}
