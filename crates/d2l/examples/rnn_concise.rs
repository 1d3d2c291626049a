//! D2L 8.6, *Concise Implementation of Recurrent Neural Networks*: `nn.RNN(28, 256)` as a
//! layer with its state of shape (1, 32, 256), the `RNNModel` that adds
//! `Linear(256, 28)` on the reshaped output, an untrained prediction, and training on the
//! first 10,000 characters of *The Time Machine* with lr 1 for 500 epochs (the book
//! reaches perplexity 1.3).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example rnn_concise -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR`, `--epochs N` (default 500), `--threads N`.
//! `d2l train char-rnn` runs the same from the command line (and `char-gru`, `char-lstm`).

#[path = "rnn_common/mod.rs"]
mod rnn_common;

use d2l::data::seq::{load_data_time_machine, DEFAULT_MAX_TOKENS};
use d2l::models::rnn_lm::{predict_ch8, RnnLm};
use d2l::nn::rnn::{Recurrent, RNN};
use d2l::prelude::*;
use d2l::train::tasks::language_model::{train_ch8, SeqTrainConfig};
use std::error::Error;
use std::sync::Arc;

fn main() -> std::result::Result<(), Box<dyn Error>> {
    let args = rnn_common::Args::parse();
    let (batch_size, num_steps) = (32, 35);
    let (mut train_iter, vocab) = load_data_time_machine(
        &args.hub(),
        batch_size,
        num_steps,
        false,
        Some(DEFAULT_MAX_TOKENS),
        0,
    )?;

    // 8.6.1 The layer and its state.
    manual_seed(0);
    let num_hiddens = 256;
    let rnn_layer = RNN::new(vocab.len(), num_hiddens)?;
    let state = rnn_layer.begin_state(batch_size)?;
    println!(
        "state.shape = {:?} (book: torch.Size([1, 32, 256]))",
        state.h().shape()
    );
    let x = Tensor::rand(&[num_steps, batch_size, vocab.len()]);
    let (y, state_new) = rnn_layer.forward_with_state(&x, Some(&state))?;
    println!(
        "Y.shape = {:?}, state_new.shape = {:?} (book: [35, 32, 256], [1, 32, 256])",
        y.shape(),
        state_new.h().shape()
    );

    // 8.6.2 The model and an untrained prediction.
    let net = RnnLm::new(Arc::new(rnn_layer), vocab.len())?;
    println!("{}", net.summary_tree());
    println!(
        "{} parameters (the book's net: 80,412)",
        net.num_parameters()
    );
    println!(
        "untrained: {}",
        predict_ch8("time traveller", 10, &net, &vocab)?
    );

    // 8.6.3 Training.
    let cfg = SeqTrainConfig {
        epochs: args.epochs,
        lr: 1.0,
        ..Default::default()
    };
    let s = train_ch8(&net, &mut train_iter, &vocab, &cfg)?;
    rnn_common::report(&s);
    println!("(book: perplexity 1.3 on a V100)");
    Ok(())
}
