//! D2L 7.3, *Network in Network (NiN)*: `nin_block(in, out, k, s, p)` = a k×k conv and two
//! 1×1 convs, each with ReLU; four blocks (96 11×11 stride 4, 256 5×5, 384 3×3, 10 3×3)
//! with 3×3 stride-2 max pools and dropout 0.5, then global average pooling — no fully
//! connected layer (1,992,166 parameters). Prints the book's layer walk, then trains with
//! `train_ch6`: SGD lr 0.1, batch 128, 10 epochs, Fashion-MNIST resized to 224 (the zoo's
//! `nin`).
//!
//! The book's budget is most of a day on 2 CPU cores; a reduced one:
//! `cargo run --release -p d2l --example nin -- --data-dir ../shared/data --resize 96 --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::cnn;
use d2l::prelude::*;

fn main() -> Result<()> {
    cnn_common::run_zoo("nin", cnn::nin)
}
