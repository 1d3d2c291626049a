//! D2L 6.5 (Pooling): max and average pooling from scratch, then the layers with
//! padding, stride and several channels.
//!
//! Run: `cargo run -p d2l-nn --example pooling`

use d2l_nn::pool::{pool2d, AvgPool2d, MaxPool2d, PoolMode};
use d2l_nn::Module;
use d2l_tensor::{Result, Tensor};

fn main() -> Result<()> {
    // 6.5.1 Maximum pooling and average pooling, from scratch.
    let x = Tensor::arange(0.0, 9.0, 1.0)?.reshape([3, 3])?;
    println!(
        "pool2d(X, (2, 2)) =\n{}",
        pool2d(&x, (2, 2), PoolMode::Max)?
    );
    println!(
        "pool2d(X, (2, 2), 'avg') =\n{}",
        pool2d(&x, (2, 2), PoolMode::Avg)?
    );

    // 6.5.2 Padding and stride; by default the stride equals the window.
    let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
    println!("X =\n{x}");
    let pool = MaxPool2d::new(3);
    println!("{} ->\n{}", pool.describe(), pool.forward(&x)?);
    let pool = MaxPool2d::new(3).padding(1).stride(2);
    println!("{} ->\n{}", pool.describe(), pool.forward(&x)?);
    let pool = MaxPool2d::new((2, 3)).stride((2, 3)).padding((0, 1));
    println!("{} ->\n{}", pool.describe(), pool.forward(&x)?);

    // 6.5.3 Multiple channels: each is pooled on its own.
    let x = Tensor::cat(&[&x, &x.add_scalar(1.0)?], 1)?;
    println!("X (2 channels) =\n{x}");
    let pool = MaxPool2d::new(3).padding(1).stride(2);
    println!("{} ->\n{}", pool.describe(), pool.forward(&x)?);

    // Average pooling (LeNet's choice in 6.6).
    let pool = AvgPool2d::new(2);
    println!("{} ->\n{}", pool.describe(), pool.forward(&x)?);
    Ok(())
}
