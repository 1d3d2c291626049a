//! D2L 3.7, *Concise Implementation of Softmax Regression*: `Flatten, Linear(784, 10)`
//! with weights ~ N(0, 0.01²) (the bias keeps `nn.Linear`'s default init), softmax
//! cross-entropy on the logits (`nn.CrossEntropyLoss`, LogSumExp-stable), minibatch SGD
//! with lr 0.1, batch 256, 10 epochs on Fashion-MNIST, trained by `Trainer` (the book's
//! `train_ch3`). The same network is the zoo's `softmax` (`d2l train softmax`).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example softmax_regression_concise -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{setup, train_concise};
use d2l::models::recipe::Recipe;
use d2l::prelude::*;

fn main() -> Result<()> {
    // Batch 256, lr 0.1, 10 epochs; seed 0.
    let (recipe, data) = setup(Recipe::softmax())?;

    // PyTorch does not implicitly reshape the inputs: `Flatten` turns [B, 1, 28, 28]
    // into [B, 784] before the linear layer.
    let net = Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 10)?);

    // `net.apply(init_weights)` (weights ~ N(0, 0.01²)), `nn.CrossEntropyLoss()`,
    // `torch.optim.SGD(net.parameters(), lr)`, `train_ch3`.
    train_concise(&net, &data, &recipe)
}
