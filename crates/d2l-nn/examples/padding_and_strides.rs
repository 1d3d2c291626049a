//! D2L 6.3 (Padding and Stride): how padding keeps the size and stride shrinks it.
//!
//! Run: `cargo run -p d2l-nn --example padding_and_strides`

use d2l_nn::conv::Conv2d;
use d2l_nn::Module;
use d2l_tensor::{manual_seed, Result, Tensor};

/// Runs `conv` on a single-channel image and returns the output's spatial shape.
fn comp_conv2d(conv: &Conv2d, x: &Tensor) -> Result<Vec<usize>> {
    // (1, 1) indicates that the batch size and the number of channels are both 1.
    let x = x.reshape([1, 1, x.shape()[0], x.shape()[1]])?;
    let y = conv.forward(&x)?;
    // Strip the first two dimensions: examples and channels.
    Ok(y.shape()[2..].to_vec())
}

fn main() -> Result<()> {
    manual_seed(0);
    let x = Tensor::rand(&[8, 8]);

    // 6.3.1 Padding: one row/column on each side keeps 8×8 with a 3×3 kernel.
    let conv2d = Conv2d::builder(1, 1, 3).padding(1).build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );
    // A 5×3 kernel with padding 2 and 1.
    let conv2d = Conv2d::builder(1, 1, (5, 3)).padding((2, 1)).build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );

    // 6.3.2 Stride: halve the height and width.
    let conv2d = Conv2d::builder(1, 1, 3).padding(1).stride(2).build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );
    // A slightly more complicated example.
    let conv2d = Conv2d::builder(1, 1, (3, 5))
        .padding((0, 1))
        .stride((3, 4))
        .build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );

    // Beyond the book: PyTorch's padding="same" and per-side padding.
    let conv2d = Conv2d::builder(1, 1, 4).padding_same().build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );
    let conv2d = Conv2d::builder(1, 1, 3).padding_sides(1, 1, 0, 2).build()?;
    println!(
        "{:<70} -> {:?}",
        conv2d.describe(),
        comp_conv2d(&conv2d, &x)?
    );

    // A kernel that does not fit is a clear error, not a panic.
    let too_big = Conv2d::new(1, 1, 9)?;
    if let Err(e) = comp_conv2d(&too_big, &x) {
        println!("error: {e}");
    }
    Ok(())
}
