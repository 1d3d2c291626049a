//! Helpers shared by the trainer tests (`trainer.rs`, `device.rs`).
#![allow(dead_code)]

use d2l_data::loader::DataLoader;
use d2l_nn::optim::Optimizer;
use d2l_nn::Module;
use d2l_train::metrics::data_error;
use d2l_train::trainer::{LossFn, TrainConfig, Trainer};

/// The training and test loaders of the built-in shapes set (`load_data_shapes`, no
/// resize).
pub fn shapes(n_train: usize, n_test: usize, batch: usize, seed: u64) -> (DataLoader, DataLoader) {
    d2l_data::load_data_shapes(n_train, n_test, batch, None, seed)
        .map_err(data_error)
        .unwrap()
}

/// Trains `net` on `train` (no test set), which must fail; returns the error's message.
pub fn fit_error(
    net: &dyn Module,
    loss: LossFn,
    opt: &mut dyn Optimizer,
    config: TrainConfig,
    train: &DataLoader,
) -> String {
    Trainer::new(net, loss, opt, config)
        .fit(train, None)
        .unwrap_err()
        .to_string()
}
