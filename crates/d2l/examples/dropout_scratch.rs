//! D2L 4.6, *Dropout* from scratch: `dropout_layer` by hand (keep each unit when
//! `rand > p`, scale the kept ones by 1/(1−p)), and the book's `Net`: 784-256-256-10
//! with ReLU, three `nn.Linear` with their default init, dropout 0.2 after the first
//! hidden layer and 0.5 after the second, only while training;
//! `nn.CrossEntropyLoss(reduction='none')` averaged over the batch, `optim.SGD` with
//! lr 0.5, batch 256, 10 epochs on Fashion-MNIST, trained by `Trainer` (the book's
//! `train_ch3`, which evaluates in eval mode: no dropout at test time).
//!
//! `dropout_layer` and the `Net` (`DropoutMlpScratch`, whose `net.train()` / `net.eval()`
//! switch its `training` flag) are the book's code as written in `d2l_models::scratch`
//! (`crates/d2l-models/src/scratch.rs`).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example dropout_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{cross_entropy_per_example_mean, load_fashion_mnist, train_ch3, Args};
use d2l::models::recipe::Recipe;
use d2l::models::scratch::{dropout_layer, DropoutMlpScratch};
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = Args::parse();
    // Batch 256, lr 0.5, 10 epochs, dropout 0.2 / 0.5.
    let recipe = args.apply(Recipe::mlp_dropout_scratch());
    let (dropout1, dropout2) = recipe.dropout.unwrap_or((0.2, 0.5));
    manual_seed(0);

    // The book's check of `dropout_layer` with probabilities 0, 0.5 and 1.
    let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([2, 8])?;
    println!("{x}");
    for p in [0.0, 0.5, 1.0] {
        println!("dropout {p}: {}", dropout_layer(&x, p)?);
    }

    let data = load_fashion_mnist(&args, recipe.batch_size)?;
    let (num_inputs, num_outputs, num_hiddens1, num_hiddens2) = (784, 10, 256, 256);
    let net = DropoutMlpScratch::new(
        num_inputs,
        num_outputs,
        num_hiddens1,
        num_hiddens2,
        dropout1,
        dropout2,
        true,
    )?;

    // `nn.CrossEntropyLoss(reduction='none')`, averaged by `train_ch3` before `backward()`.
    let loss = cross_entropy_per_example_mean();
    let mut trainer = Sgd::new(net.parameters(), recipe.lr)?;
    train_ch3(&net, &data, loss, &recipe, &mut trainer)?;
    Ok(())
}
