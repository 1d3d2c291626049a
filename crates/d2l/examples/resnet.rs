//! D2L 7.6, *Residual Networks (ResNet)*: the `Residual` block (3×3 conv, BN, ReLU, 3×3
//! conv, BN, plus the input — through a 1×1 conv with stride 2 when the shape changes —
//! then ReLU) with its two demo shapes, and ResNet-18: the 7×7 stem, four stages of two
//! residual blocks (64, 128, 256, 512 channels), global average pooling and
//! `Linear(512, 10)` (11,178,378 parameters). Prints the book's walk for 1×224×224, then
//! trains with `train_ch6`: SGD lr 0.05, batch 256, 10 epochs, Fashion-MNIST resized to 96
//! (the zoo's `resnet18`).
//!
//! The book's budget is several hours on 2 CPU cores; a reduced one:
//! `cargo run --release -p d2l --example resnet -- --data-dir ../shared/data --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::cnn::{self, Residual};
use d2l::models::zoo;
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&[], &[]);
    manual_seed(0);
    let x = Tensor::rand(&[4, 3, 6, 6]);
    let blk = Residual::new(3, 3, false, 1)?;
    println!("{} -> {:?}", blk.describe(), blk.forward(&x)?.shape());
    let blk = Residual::new(3, 6, true, 2)?;
    println!("{} -> {:?}", blk.describe(), blk.forward(&x)?.shape());
    let info = zoo::model("resnet18")?;
    let cfg = args.config(&info);
    let net = cnn::resnet18(&cfg)?;
    println!("\nThe book's walk at 224×224:");
    cnn_common::print_walk(&net, &[1, 224, 224])?;
    println!();
    cnn_common::run(&args, &info, &net)
}
