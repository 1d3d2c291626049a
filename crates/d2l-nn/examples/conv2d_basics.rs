//! D2L 6.2 (Convolutions for Images): cross-correlation from scratch, a convolutional
//! layer built on it, the edge-detection example, and learning the kernel `[1, -1]`
//! from X and Y by gradient descent.
//!
//! Run: `cargo run -p d2l-nn --example conv2d_basics`

use d2l_nn::conv::{corr2d, Conv2d};
use d2l_nn::init;
use d2l_nn::Module;
use d2l_tensor::{manual_seed, no_grad, Result, Tensor};

/// The book's from-scratch `Conv2D` block (6.2.2): a kernel and a scalar bias around
/// `corr2d`.
struct Conv2D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv2D {
    fn new(kernel_size: (usize, usize)) -> Result<Self> {
        let weight = Tensor::zeros(&[kernel_size.0, kernel_size.1]).requires_grad_(true)?;
        init::uniform_(&weight, 0.0, 1.0)?; // torch.rand
        Ok(Conv2D {
            weight,
            bias: Tensor::zeros(&[1]).requires_grad_(true)?,
        })
    }
}

impl Module for Conv2D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        corr2d(x, &self.weight)?.add(&self.bias)
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

    // 6.2.1 The cross-correlation operation.
    let x = Tensor::arange(0.0, 9.0, 1.0)?.reshape([3, 3])?;
    let k = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0], &[2, 2])?;
    println!("corr2d(X, K) =\n{}", corr2d(&x, &k)?);

    // 6.2.3 Object edge detection: a 6×8 image, white with a black vertical band.
    let x = Tensor::ones(&[6, 8]);
    no_grad(|| x.narrow(1, 2, 4)?.fill_(0.0))?;
    println!("X =\n{x}");
    let k = Tensor::from_slice(&[1.0f32, -1.0], &[1, 2])?;
    let y = corr2d(&x, &k)?;
    println!("Y = corr2d(X, [[1, -1]]): 1 for white→black, -1 for black→white\n{y}");
    println!(
        "corr2d(X.t(), K): the kernel only sees vertical edges\n{}",
        corr2d(&x.t()?, &k)?
    );

    // 6.2.2 The from-scratch layer runs (and differentiates) through corr2d too.
    let scratch = Conv2D::new((1, 2))?;
    println!(
        "from-scratch Conv2D output shape: {:?}",
        scratch.forward(&x)?.shape()
    );

    // 6.2.4 Learning a kernel: a 1×2 Conv2d without bias, squared error, plain SGD.
    // (Where the kernel ends after 10 steps depends on its random start: along [1, 1]
    // the error only shrinks by 0.8 a step. The test suite uses this seed too.)
    manual_seed(0);
    let conv2d = Conv2d::builder(1, 1, (1, 2)).bias(false).build()?;
    println!("{}", conv2d.describe());
    // Batch, channel, height, width.
    let x = x.reshape([1, 1, 6, 8])?;
    let y = y.reshape([1, 1, 6, 7])?;
    let lr = 3e-2;
    for i in 0..10 {
        let y_hat = conv2d.forward(&x)?;
        let l = y_hat.sub(&y)?.square()?.sum_all()?;
        conv2d.zero_grad();
        l.backward()?;
        // Update the kernel.
        let g = conv2d.weight.grad().expect("backward filled it");
        no_grad(|| conv2d.weight.sub_(&g.mul_scalar(lr)?))?;
        if (i + 1) % 2 == 0 {
            println!("epoch {}, loss {:.3}", i + 1, l.item()?);
        }
    }
    println!(
        "learned kernel: {} (book: [[1.0010, -0.9739]])",
        conv2d.weight.detach().reshape([1, 2])?
    );
    Ok(())
}
