//! D2L 7.2, *Networks Using Blocks (VGG)*: `vgg_block(num_convs, in, out)` = that many
//! 3×3 convs with ReLU and a 2×2 max pool; VGG-11 = blocks (1, 64), (1, 128), (2, 256),
//! (2, 512), (2, 512), then `Linear(c·7·7, 4096)`, `Linear(4096, 4096)` with dropout 0.5 and
//! `Linear(4096, 10)`. Prints the book's walk of the full network (128,806,154
//! parameters), then trains the book's `small_conv_arch` — channels divided by
//! `--ratio` (default 4, the book's; 43,093,322 parameters) — with `train_ch6`: SGD
//! lr 0.05, batch 128, 10 epochs, Fashion-MNIST resized to 224 (the zoo's `vgg11`).
//!
//! The book's budget is about a day on 2 CPU cores; a reduced one:
//! `cargo run --release -p d2l --example vgg -- --data-dir ../shared/data --resize 96 --width-mult 0.5 --train-limit 10000 --test-limit 2000 --epochs 1`

#[path = "cnn_common/mod.rs"]
mod cnn_common;

use d2l::models::{cnn, zoo};
use d2l::prelude::*;

fn main() -> Result<()> {
    let args = cnn_common::Args::parse(&[], &["--ratio"]);
    manual_seed(0);
    let ratio: usize = match args.value("--ratio").map(str::parse) {
        None => 4,
        Some(Ok(r)) => r,
        Some(Err(_)) => {
            eprintln!("error: --ratio expects a whole number");
            std::process::exit(2)
        }
    };
    let info = zoo::model("vgg11")?;
    let cfg = args.config(&info);
    // The book first walks the full VGG-11 (`net = vgg(conv_arch)`).
    let full = cnn::vgg(&cnn::VGG11_ARCH, &cfg)?;
    println!("VGG-11, full width:");
    cnn_common::print_walk(&full, &cfg.in_shape)?;
    drop(full);
    // Then trains `vgg(small_conv_arch)`.
    println!(
        "\nsmall_conv_arch = {:?} (ratio {ratio})",
        cnn::small_conv_arch(ratio)?
    );
    let net = cnn::vgg11(ratio, &cfg)?;
    cnn_common::run(&args, &info, &net)
}
