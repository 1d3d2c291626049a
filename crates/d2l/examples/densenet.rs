//! D2L 7.7, *Densely Connected Networks (DenseNet)*: `conv_block` (BN, ReLU, 3×3 conv),
//! `DenseBlock` (each conv block's output concatenated to its input) and
//! `transition_block` (BN, ReLU, 1×1 conv, 2×2 average pool) with their demo shapes, and
//! DenseNet: ResNet's stem, four dense blocks of four convs with growth rate 32 and
//! transitions halving the channels, BN, ReLU, global average pooling, `Linear(248, 10)`
//! (758,226 parameters). Trains with `train_ch6`: SGD lr 0.1, batch 256, 10 epochs,
//! Fashion-MNIST resized to 96 (the zoo's `densenet`).
//!
//! The book's budget is a few hours on 2 CPU cores; a reduced one:
//! `cargo run --release -p d2l --example densenet -- --data-dir ../shared/data --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::cnn::{self, transition_block, DenseBlock};
use d2l::models::zoo;
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&[], &[]);
    manual_seed(0);
    let blk = DenseBlock::new(2, 3, 10)?;
    let y = blk.forward(&Tensor::rand(&[4, 3, 8, 8]))?;
    println!("DenseBlock(2, 3, 10) on [4, 3, 8, 8] -> {:?}", y.shape());
    println!(
        "transition_block(23, 10) -> {:?}",
        transition_block(23, 10)?.forward(&y)?.shape()
    );
    let info = zoo::model("densenet")?;
    let net = cnn::densenet(&args.config(&info))?;
    cnn_common::run(&args, &info, &net)
}
