//! D2L 4.3, *Concise Implementation of Multilayer Perceptrons*: `Flatten,
//! Linear(784, 256), ReLU, Linear(256, 10)` with weights ~ N(0, 0.01²) (biases keep
//! `nn.Linear`'s default init), `nn.CrossEntropyLoss`, minibatch SGD with lr 0.1,
//! batch 256, 10 epochs on Fashion-MNIST, trained by `Trainer` (the book's `train_ch3`).
//! The same network is the zoo's `mlp` (`d2l train mlp`).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example mlp_concise -- --data-dir ../shared/data`
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
    let (recipe, data) = setup(Recipe::mlp())?;

    let net = Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 256)?)
        .add(ReLU)
        .add(Linear::new(256, 10)?);

    // `net.apply(init_weights)` (weights ~ N(0, 0.01²)), `nn.CrossEntropyLoss()`,
    // `torch.optim.SGD(net.parameters(), lr)`, `train_ch3`.
    train_concise(&net, &data, &recipe)
}
