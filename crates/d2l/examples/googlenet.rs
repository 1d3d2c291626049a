//! D2L 7.4, *Networks with Parallel Concatenations (GoogLeNet)*: the `Inception` block
//! (1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max pool → 1×1; each path ends in ReLU, concatenated
//! on channels) and the five-stage network b1…b5 with nine Inception blocks and a
//! `Linear(1024, 10)` head (5,977,530 parameters). Prints the book's walk for 1×96×96,
//! then trains with `train_ch6`: SGD lr 0.1, batch 128, 10 epochs, Fashion-MNIST resized to
//! 96 (the zoo's `googlenet`).
//!
//! The book's budget is several hours on 2 CPU cores; a reduced one:
//! `cargo run --release -p d2l --example googlenet -- --data-dir ../shared/data --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::cnn::{self, Inception};
use d2l::models::zoo;
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&[], &[]);
    manual_seed(0);
    // One block on its own: Inception(192, 64, (96, 128), (16, 32), 32) gives 256 channels.
    let blk = Inception::new(192, 64, (96, 128), (16, 32), 32)?;
    let y = blk.forward(&Tensor::rand(&[1, 192, 12, 12]))?;
    println!("{} -> {:?}", blk.describe(), y.shape());
    let info = zoo::model("googlenet")?;
    let net = cnn::googlenet(&args.config(&info))?;
    cnn_common::run(&args, &info, &net)
}
