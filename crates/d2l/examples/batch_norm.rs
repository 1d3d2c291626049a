//! D2L 7.5, *Batch Normalization*: the from-scratch `batch_norm` function and `BatchNorm`
//! layer (biased batch variance, moving averages 0.9·old + 0.1·batch, eps 1e-5, batch
//! statistics in training and moving ones in evaluation), in LeNet after every conv and
//! hidden `Linear` — no padding on the first conv (44,878 parameters). Trains with
//! `train_ch6`: SGD lr 1.0, batch 256, 10 epochs on Fashion-MNIST (the zoo's
//! `lenet-bn-scratch`), then prints the first BN layer's learned γ and β as the book does
//! (`net[1].gamma.reshape((-1,))`). `--concise` uses `BatchNorm2d` / `BatchNorm1d` instead
//! (the zoo's `lenet-bn`). A couple of minutes on 2 cores.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example batch_norm -- --data-dir ../shared/data [--concise]`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::{cnn, zoo};
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&["--concise"], &[]);
    manual_seed(0);
    let concise = args.has("--concise");
    let info = zoo::model(if concise {
        "lenet-bn"
    } else {
        "lenet-bn-scratch"
    })?;
    let cfg = args.config(&info);
    let net = if concise {
        cnn::lenet_bn(&cfg)?
    } else {
        cnn::lenet_bn_scratch(&cfg)?
    };
    cnn_common::run(&args, &info, &net)?;
    if let Some((gamma, beta)) = cnn::first_bn_gamma_beta(&net) {
        println!("gamma: {gamma:.4?}\nbeta: {beta:.4?}");
    }
    Ok(())
}
