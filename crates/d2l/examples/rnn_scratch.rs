//! D2L 8.5, *Implementation of Recurrent Neural Networks from Scratch*: one-hot encoding,
//! the RNN's parameters and its time loop (`RNNModelScratch`), greedy prediction
//! (`predict_ch8`), gradient clipping, and training on the first 10,000 characters of
//! *The Time Machine* with 512 hidden units, lr 1 and 500 epochs — once with sequential
//! partitioning (the book reaches perplexity 1.0) and once with random sampling (1.5).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example rnn_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR`, `--epochs N` (default 500), `--threads N`.
//! `d2l train char-rnn-scratch [--random-iter]` runs the same from the command line.

#[path = "rnn_common/mod.rs"]
mod rnn_common;

use d2l::data::seq::{load_data_time_machine, DEFAULT_MAX_TOKENS};
use d2l::models::rnn_lm::{predict_ch8, LanguageModel, RnnLmScratch};
use d2l::nn::clip::clip_grad_norm_;
use d2l::nn::rnn::one_hot;
use d2l::prelude::*;
use d2l::train::tasks::language_model::{train_ch8, SeqTrainConfig};
use std::error::Error;

fn main() -> std::result::Result<(), Box<dyn Error>> {
    let args = rnn_common::Args::parse();
    let hub = args.hub();
    let (batch_size, num_steps) = (32, 35);

    // 8.5.1 One-hot encoding: F.one_hot(torch.tensor([0, 2]), len(vocab)).
    let (_, vocab) = load_data_time_machine(
        &hub,
        batch_size,
        num_steps,
        false,
        Some(DEFAULT_MAX_TOKENS),
        0,
    )?;
    let v = vocab.len();
    let oh = one_hot(&Tensor::from_vec(vec![0i64, 2], &[2])?, v)?;
    println!(
        "one_hot([0, 2], {v}) has shape {:?}; rows sum to 1: {:?}",
        oh.shape(),
        oh.sum(&[1], false)?.to_vec::<f32>()
    );
    // A mini-batch X of shape (2, 5) becomes (num_steps, batch, vocab) = (5, 2, 28).
    let x = Tensor::arange(0.0, 10.0, 1.0)?
        .to_dtype(DType::I64)?
        .reshape([2, 5])?;
    println!(
        "one_hot(X.T, 28).shape = {:?}",
        one_hot(&x.t()?, v)?.shape()
    );

    // 8.5.2–8.5.3 The model: W_xh, W_hh, b_h, W_hq, b_q ~ N(0, 0.01²) / 0, tanh.
    manual_seed(0);
    let num_hiddens = 512;
    let net = RnnLmScratch::new(v, num_hiddens)?;
    let state = net.begin_state(x.shape()[0])?;
    let (y, new_state) = net.forward_with_state(&x, Some(&state))?;
    println!(
        "Y.shape = {:?}, state = {:?} (book: torch.Size([10, 28]), 1, torch.Size([2, 512]))",
        y.shape(),
        new_state.h().shape()
    );
    println!(
        "{} parameters (the book's net: 291,356)",
        net.num_parameters()
    );

    // 8.5.4 Prediction before training: nonsense.
    println!(
        "untrained: {}",
        predict_ch8("time traveller ", 10, &net, &vocab)?
    );

    // 8.5.5 Gradient clipping: ‖g‖ > θ ⇒ g ← θ g / ‖g‖.
    net.forward(&x)?.sum_all()?.backward()?;
    let norm = clip_grad_norm_(&net.parameters(), 1.0)?;
    println!("a gradient of norm {norm:.4} clipped to 1");
    net.zero_grad();

    // 8.5.6 Training, sequential partitioning then random sampling.
    for random in [false, true] {
        manual_seed(0);
        let net = RnnLmScratch::new(v, num_hiddens)?;
        let (mut loader, vocab) = load_data_time_machine(
            &hub,
            batch_size,
            num_steps,
            random,
            Some(DEFAULT_MAX_TOKENS),
            0,
        )?;
        println!(
            "\ntraining from scratch with {}, {} epochs, lr 1",
            if random {
                "random sampling"
            } else {
                "sequential partitioning"
            },
            args.epochs
        );
        let cfg = SeqTrainConfig {
            epochs: args.epochs,
            lr: 1.0,
            use_random_iter: random,
            ..Default::default()
        };
        let s = train_ch8(&net, &mut loader, &vocab, &cfg)?;
        rnn_common::report(&s);
        println!(
            "(book: perplexity {} on a V100)",
            if random { "1.5" } else { "1.0" }
        );
    }
    Ok(())
}
