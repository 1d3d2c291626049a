//! D2L 5.1 (Layers and Blocks): Sequential, a block of our own, and blocks that run
//! arbitrary code in `forward`.
//!
//! Run: `cargo run -p d2l-nn --example layers_and_blocks`

use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{manual_seed, Result, Tensor};
use std::sync::Arc;

/// The MLP of 5.1.2 as a block: a hidden layer and an output layer.
struct Mlp {
    hidden: Arc<Linear>,
    out: Arc<Linear>,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.hidden.forward(x)?.relu()?)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("hidden".into(), self.hidden.clone()),
            ("out".into(), self.out.clone()),
        ]
    }
}

/// `MySequential` (5.1.3): a block that chains whatever blocks it is given.
struct MySequential(Vec<Arc<dyn Module>>);

impl Module for MySequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0
            .iter()
            .try_fold(x.clone(), |x, block| block.forward(&x))
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, b)| (i.to_string(), b.clone()))
            .collect()
    }
}

/// `FixedHiddenMLP` (5.1.4): a constant (untrained) weight, one layer used twice, and a loop.
struct FixedHiddenMlp {
    rand_weight: Tensor,
    linear: Arc<Linear>,
}

impl Module for FixedHiddenMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.linear.forward(x)?;
        x = x.matmul(&self.rand_weight)?.add_scalar(1.0)?.relu()?;
        x = self.linear.forward(&x)?;
        while x.abs()?.sum_all()?.item()? > 1.0 {
            x = x.div_scalar(2.0)?;
        }
        x.sum_all()
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![("linear".into(), self.linear.clone())]
    }
}

/// `NestMLP` (5.1.4): blocks inside blocks.
struct NestMlp {
    net: Arc<Sequential>,
    linear: Arc<Linear>,
}

impl Module for NestMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear.forward(&self.net.forward(x)?)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("net".into(), self.net.clone()),
            ("linear".into(), self.linear.clone()),
        ]
    }
}

fn main() -> Result<()> {
    manual_seed(0);
    let x = Tensor::rand(&[2, 20]);

    let net = Sequential::new()
        .add(Linear::new(20, 256)?)
        .add(ReLU)
        .add(Linear::new(256, 10)?);
    println!("Sequential output shape: {:?}", net.forward(&x)?.shape());

    let mlp = Mlp {
        hidden: Arc::new(Linear::new(20, 256)?),
        out: Arc::new(Linear::new(256, 10)?),
    };
    println!("MLP block output shape: {:?}", mlp.forward(&x)?.shape());

    let myseq = MySequential(vec![
        Arc::new(Linear::new(20, 256)?),
        Arc::new(ReLU),
        Arc::new(Linear::new(256, 10)?),
    ]);
    println!(
        "MySequential output shape: {:?}",
        myseq.forward(&x)?.shape()
    );

    let fixed = FixedHiddenMlp {
        rand_weight: Tensor::rand(&[20, 20]),
        linear: Arc::new(Linear::new(20, 20)?),
    };
    println!("FixedHiddenMLP: {}", fixed.forward(&x)?);

    let nest = NestMlp {
        net: Arc::new(
            Sequential::new()
                .add(Linear::new(20, 64)?)
                .add(ReLU)
                .add(Linear::new(64, 32)?)
                .add(ReLU),
        ),
        linear: Arc::new(Linear::new(32, 16)?),
    };
    let chimera = Sequential::new()
        .add(nest)
        .add(Linear::new(16, 20)?)
        .add(fixed);
    println!("chimera: {}", chimera.forward(&x)?);
    println!("{}", chimera.summary_tree());
    Ok(())
}
