//! D2L 4.2, *Implementation of Multilayer Perceptrons from Scratch*: one hidden layer of
//! 256 units, parameters `W1`, `W2` = `randn · 0.01` and `b1`, `b2` = 0, `relu` by
//! hand, `nn.CrossEntropyLoss(reduction='none')` averaged over the batch, and
//! `optim.SGD(params, lr=0.1)`; batch 256, 10 epochs on Fashion-MNIST, trained by
//! `Trainer` (the book's `train_ch3` with a PyTorch optimiser).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example mlp_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{load_fashion_mnist, train_ch3, Args};
use d2l::models::recipe::Recipe;
use d2l::nn::loss::CrossEntropyOptions;
use d2l::prelude::*;
use d2l::train::trainer::LossFn;

/// `relu(X)`: `max(X, 0)`.
fn relu(x: &Tensor) -> Result<Tensor> {
    x.maximum(&x.zeros_like())
}

/// The book's bare parameters and its `net(X)`; implementing `Module` (forward and the
/// parameter list) is what lets the trainer drive it, like passing `net` to `train_ch3`.
struct Net {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Net {
    fn new(num_inputs: usize, num_outputs: usize, num_hiddens: usize) -> Result<Net> {
        let param = |t: Tensor| t.requires_grad_(true);
        Ok(Net {
            w1: param(Tensor::randn(&[num_inputs, num_hiddens]).mul_scalar(0.01)?)?,
            b1: param(Tensor::zeros(&[num_hiddens]))?,
            w2: param(Tensor::randn(&[num_hiddens, num_outputs]).mul_scalar(0.01)?)?,
            b2: param(Tensor::zeros(&[num_outputs]))?,
        })
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.reshape([-1, self.w1.shape()[0] as isize])?;
        let h = relu(&x.matmul(&self.w1)?.add(&self.b1)?)?; // `@` is matmul
        h.matmul(&self.w2)?.add(&self.b2)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("W1".into(), self.w1.clone()),
            ("b1".into(), self.b1.clone()),
            ("W2".into(), self.w2.clone()),
            ("b2".into(), self.b2.clone()),
        ]
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let recipe = Recipe::mlp_scratch(); // batch 256, lr 0.1, 10 epochs
    let num_epochs = args.epochs.unwrap_or(recipe.epochs);
    manual_seed(0);
    let (train_iter, test_iter) = load_fashion_mnist(&args, recipe.batch_size)?;

    let (num_inputs, num_outputs, num_hiddens) = (784, 10, 256);
    let net = Net::new(num_inputs, num_outputs, num_hiddens)?;
    println!("{} parameters", net.num_parameters());

    // `nn.CrossEntropyLoss(reduction='none')`; `train_ch3` takes its mean before
    // `backward()` when the updater is a PyTorch optimiser.
    let loss: LossFn = Box::new(|y_hat, y| {
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        cross_entropy_with(y_hat, y, &opts)?.mean_all()
    });
    let mut updater = Sgd::new(net.parameters(), recipe.lr)?;
    println!("{recipe}");
    train_ch3(
        &net,
        &train_iter,
        &test_iter,
        loss,
        num_epochs,
        &mut updater,
    )?;
    Ok(())
}
