//! D2L 6.4 (Multiple Input and Multiple Output Channels): summing over input channels,
//! one kernel per output channel, and the 1×1 convolution as a matrix product.
//!
//! Run: `cargo run -p d2l-nn --example channels`

use d2l_nn::conv::{corr2d_multi_in, corr2d_multi_in_out, corr2d_multi_in_out_1x1, Conv2d};
use d2l_nn::Module;
use d2l_tensor::{manual_seed, Conv2dOptions, Result, Tensor};

fn main() -> Result<()> {
    manual_seed(0);

    // 6.4.1 Multiple input channels: correlate each channel, then add up.
    let x = Tensor::from_slice(
        &[
            0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, //
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
        ],
        &[2, 3, 3],
    )?;
    let k = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0], &[2, 2, 2])?;
    println!("corr2d_multi_in(X, K) =\n{}", corr2d_multi_in(&x, &k)?);

    // 6.4.2 Multiple output channels: K, K + 1, K + 2 stacked.
    let k = Tensor::stack(&[&k, &k.add_scalar(1.0)?, &k.add_scalar(2.0)?], 0)?;
    println!("K.shape = {:?}", k.shape());
    println!(
        "corr2d_multi_in_out(X, K) =\n{}",
        corr2d_multi_in_out(&x, &k)?
    );

    // 6.4.3 A 1×1 convolutional layer is a fully connected layer applied per pixel.
    let x = Tensor::normal(&[3, 3, 3], 0.0, 1.0)?;
    let k = Tensor::normal(&[2, 3, 1, 1], 0.0, 1.0)?;
    let y1 = corr2d_multi_in_out_1x1(&x, &k)?;
    let y2 = corr2d_multi_in_out(&x, &k)?;
    let diff = y1.sub(&y2)?.abs()?.sum_all()?.item()?;
    println!("|Y1 - Y2| summed = {diff:e} (< 1e-6: {})", diff < 1e-6);

    // The same with the Conv2d layer (weights [C_out, C_in, 1, 1]).
    let layer = Conv2d::from_tensors(k, None, Conv2dOptions::default())?;
    let y3 = layer.forward(&x.unsqueeze(0)?)?.squeeze(0)?;
    println!(
        "{}: max |Y3 - Y1| = {:e}",
        layer.describe(),
        y3.sub(&y1)?.abs()?.max_all()?.item()?
    );
    Ok(())
}
