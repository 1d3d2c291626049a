//! Helpers shared by the d2l-nn tests of D2L chapter 5 (`modules.rs`, `serialize.rs`):
//! inputs and the book's small nets.
#![allow(dead_code)]

use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::module::{Module, Sequential};
use d2l_tensor::{Generator, Result, Tensor};
use std::sync::Arc;

/// Uniform [0, 1) values from a generator of its own (no global state).
pub fn input(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_with(&mut Generator::new(seed), shape)
}

/// The book's MLP as a user-written block: `Linear(20, 256)`, ReLU, `Linear(256, 10)`.
/// The first layer is `hidden`; the second is named `output_name` (5.1.2 calls it `out`,
/// 5.5.2 `output`).
pub struct Mlp {
    pub hidden: Arc<Linear>,
    pub output: Arc<Linear>,
    output_name: &'static str,
}

impl Mlp {
    pub fn new(output_name: &'static str) -> Result<Self> {
        Ok(Mlp {
            hidden: Arc::new(Linear::new(20, 256)?),
            output: Arc::new(Linear::new(256, 10)?),
            output_name,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.hidden.forward(x)?.relu()?)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("hidden".into(), self.hidden.clone()),
            (self.output_name.into(), self.output.clone()),
        ]
    }
}

/// `nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))`.
pub fn mlp(inputs: usize, hidden: usize, outputs: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(inputs, hidden)?)
        .add(ReLU)
        .add(Linear::new(hidden, outputs)?))
}

/// The net of 5.2.3: `Linear(4, 8)`, then the same `Linear(8, 8)` (returned too) twice,
/// then `Linear(8, 1)`, with ReLUs between.
pub fn shared_net() -> Result<(Sequential, Arc<dyn Module>)> {
    let shared: Arc<dyn Module> = Arc::new(Linear::new(8, 8)?);
    let net = Sequential::new()
        .add(Linear::new(4, 8)?)
        .add(ReLU)
        .add_shared(shared.clone())
        .add(ReLU)
        .add_shared(shared.clone())
        .add(ReLU)
        .add(Linear::new(8, 1)?);
    Ok((net, shared))
}
