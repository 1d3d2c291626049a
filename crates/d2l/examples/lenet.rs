//! D2L 6.6, *Convolutional Neural Networks (LeNet)*: `Conv2d(1, 6, 5, padding=2), Sigmoid,
//! AvgPool2d(2, 2), Conv2d(6, 16, 5), Sigmoid, AvgPool2d(2, 2), Flatten, Linear(400, 120),
//! Sigmoid, Linear(120, 84), Sigmoid, Linear(84, 10)` (61,706 parameters). Prints the
//! book's layer walk for a 1×28×28 input, then trains with `train_ch6`: Xavier-uniform
//! weights, SGD lr 0.9, batch 256, 10 epochs on Fashion-MNIST (the zoo's `lenet`,
//! `d2l train lenet`). About a minute on 2 cores.
//!
//! `--relu-max` swaps in ReLU and max pooling (the section's exercise; the zoo's
//! `lenet-relu-max`, trained with lr 0.1).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example lenet -- --data-dir ../shared/data`
//!
//! Options: see `cnn_common/mod.rs` (`--epochs`, `--lr`, `--width-mult`, `--train-limit`, …).

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::{cnn, zoo};
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&["--relu-max"], &[]);
    manual_seed(0);
    let relu_max = args.has("--relu-max");
    let info = zoo::model(if relu_max { "lenet-relu-max" } else { "lenet" })?;
    let cfg = args.config(&info);
    let net = if relu_max {
        cnn::lenet_relu_max(&cfg)?
    } else {
        cnn::lenet(&cfg)?
    };
    cnn_common::run(&args, &info, &net)
}
