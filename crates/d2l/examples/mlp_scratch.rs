//! D2L 4.2, *Implementation of Multilayer Perceptrons from Scratch*: one hidden layer of
//! 256 units, parameters `W1`, `W2` = `randn · 0.01` and `b1`, `b2` = 0, `relu` by
//! hand, `nn.CrossEntropyLoss(reduction='none')` averaged over the batch, and
//! `optim.SGD(params, lr=0.1)`; batch 256, 10 epochs on Fashion-MNIST, trained by
//! `Trainer` (the book's `train_ch3` with a PyTorch optimiser).
//!
//! The network is the book's code as written in `d2l_models::scratch`
//! (`crates/d2l-models/src/scratch.rs`): [`relu_scratch`] (`max(X, 0)`) and
//! [`MlpScratch`], the bare parameters and `net(X) = relu(X @ W1 + b1) @ W2 + b2`,
//! implementing `Module` (forward and the parameter list) so the trainer can drive it,
//! like passing `net` to `train_ch3`.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example mlp_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{cross_entropy_per_example_mean, setup, train_ch3};
use d2l::models::recipe::Recipe;
use d2l::models::scratch::MlpScratch;
use d2l::prelude::*;

fn main() -> Result<()> {
    // Batch 256, lr 0.1, 10 epochs; seed 0.
    let (recipe, data) = setup(Recipe::mlp_scratch())?;

    let (num_inputs, num_outputs, num_hiddens) = (784, 10, 256);
    let net = MlpScratch::new(num_inputs, num_outputs, num_hiddens)?;

    // `nn.CrossEntropyLoss(reduction='none')`; `train_ch3` takes its mean before
    // `backward()` when the updater is a PyTorch optimiser.
    let loss = cross_entropy_per_example_mean();
    let mut updater = Sgd::new(net.parameters(), recipe.lr)?;
    train_ch3(&net, &data, loss, &recipe, &mut updater)?;
    Ok(())
}
