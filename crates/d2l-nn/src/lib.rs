//! d2l-rs layers (D2L 3.3, 3.7, 4.5–4.8, 5.1–5.5): the `Module` trait with named
//! parameters, `Sequential`, initialisers, layers, losses, optimisers, learning-rate
//! schedules, gradient clipping, recurrent layers (RNN, GRU, LSTM) and safetensors
//! save/load.

pub mod clip;
pub mod conv;
pub mod finetune;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod pth;
pub mod rnn;
pub mod schedule;
pub mod serialize;

pub use d2l_tensor::{Error, Result, Tensor};
pub use module::{Module, Sequential};
