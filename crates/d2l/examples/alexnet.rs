//! D2L 7.1, *Deep Convolutional Neural Networks (AlexNet)*, for 1-channel 224×224 input:
//! five convs (96 11×11 stride 4, 256 5×5, 384, 384, 256 3×3) with ReLU and three 3×3
//! stride-2 max pools, then `Linear(6400, 4096)`, `Linear(4096, 4096)` with dropout 0.5 and
//! `Linear(4096, 10)` (46,764,746 parameters). Prints the book's layer walk, then trains
//! with `train_ch6`: SGD lr 0.01, batch 128, 10 epochs, Fashion-MNIST resized to 224 (the
//! zoo's `alexnet`).
//!
//! The book's budget is about a day on 2 CPU cores; a reduced one (half width, 96×96,
//! 10,000 training images, one epoch) takes minutes:
//! `cargo run --release -p d2l --example alexnet -- --data-dir ../shared/data --resize 96 --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::cnn;
use d2l::prelude::*;

fn main() -> Result<()> {
    cnn_common::run_zoo("alexnet", cnn::alexnet)
}
