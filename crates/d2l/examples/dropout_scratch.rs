//! D2L 4.6, *Dropout* from scratch: `dropout_layer` by hand (keep each unit when
//! `rand > p`, scale the kept ones by 1/(1−p)), and the book's `Net`: 784-256-256-10
//! with ReLU, three `nn.Linear` with their default init, dropout 0.2 after the first
//! hidden layer and 0.5 after the second, only while training;
//! `nn.CrossEntropyLoss(reduction='none')` averaged over the batch, `optim.SGD` with
//! lr 0.5, batch 256, 10 epochs on Fashion-MNIST, trained by `Trainer` (the book's
//! `train_ch3`, which evaluates in eval mode: no dropout at test time).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example dropout_scratch -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

#[path = "common/mod.rs"]
mod common;

use common::{load_fashion_mnist, train_ch3, Args};
use d2l::models::recipe::Recipe;
use d2l::nn::loss::CrossEntropyOptions;
use d2l::prelude::*;
use d2l::train::trainer::LossFn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `dropout_layer(X, dropout)`: zero each element with probability `dropout` and scale
/// the survivors by 1/(1 − dropout), so the expectation is unchanged.
fn dropout_layer(x: &Tensor, dropout: f64) -> Result<Tensor> {
    assert!((0.0..=1.0).contains(&dropout));
    if dropout == 1.0 {
        return Ok(x.zeros_like()); // every element is dropped
    }
    if dropout == 0.0 {
        return Ok(x.clone()); // every element is kept
    }
    let mask = Tensor::rand(x.shape())
        .gt_scalar(dropout)?
        .to_dtype(x.dtype())?;
    mask.mul(x)?.div_scalar(1.0 - dropout)
}

const DROPOUT1: f64 = 0.2;
const DROPOUT2: f64 = 0.5;

/// The book's `Net(nn.Module)`: three linear layers, dropout after the two hidden ones
/// while `training`.
struct Net {
    num_inputs: usize,
    training: AtomicBool,
    lin1: Arc<Linear>,
    lin2: Arc<Linear>,
    lin3: Arc<Linear>,
}

impl Net {
    fn new(
        num_inputs: usize,
        num_outputs: usize,
        num_hiddens1: usize,
        num_hiddens2: usize,
        is_training: bool,
    ) -> Result<Net> {
        Ok(Net {
            num_inputs,
            training: AtomicBool::new(is_training),
            lin1: Arc::new(Linear::new(num_inputs, num_hiddens1)?),
            lin2: Arc::new(Linear::new(num_hiddens1, num_hiddens2)?),
            lin3: Arc::new(Linear::new(num_hiddens2, num_outputs)?),
        })
    }

    fn training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.reshape([-1, self.num_inputs as isize])?;
        let mut h1 = self.lin1.forward(&x)?.relu()?;
        // Use dropout only when training the model.
        if self.training() {
            h1 = dropout_layer(&h1, DROPOUT1)?; // a dropout layer after the first hidden layer
        }
        let mut h2 = self.lin2.forward(&h1)?.relu()?;
        if self.training() {
            h2 = dropout_layer(&h2, DROPOUT2)?; // a dropout layer after the second hidden layer
        }
        self.lin3.forward(&h2)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("lin1".into(), self.lin1.clone() as Arc<dyn Module>),
            ("lin2".into(), self.lin2.clone() as Arc<dyn Module>),
            ("lin3".into(), self.lin3.clone() as Arc<dyn Module>),
        ]
    }

    /// `net.train()` / `net.eval()` set this module's `training` flag.
    fn set_training_local(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let recipe = Recipe::mlp_dropout_scratch(); // batch 256, lr 0.5, 10 epochs, 0.2 / 0.5
    let num_epochs = args.epochs.unwrap_or(recipe.epochs);
    manual_seed(0);

    // The book's check of `dropout_layer` with probabilities 0, 0.5 and 1.
    let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([2, 8])?;
    println!("{x}");
    for p in [0.0, 0.5, 1.0] {
        println!("dropout {p}: {}", dropout_layer(&x, p)?);
    }

    let (train_iter, test_iter) = load_fashion_mnist(&args, recipe.batch_size)?;
    let (num_inputs, num_outputs, num_hiddens1, num_hiddens2) = (784, 10, 256, 256);
    let net = Net::new(num_inputs, num_outputs, num_hiddens1, num_hiddens2, true)?;
    println!("{} parameters", net.num_parameters());

    // `nn.CrossEntropyLoss(reduction='none')`, averaged by `train_ch3` before `backward()`.
    let loss: LossFn = Box::new(|y_hat, y| {
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        cross_entropy_with(y_hat, y, &opts)?.mean_all()
    });
    let mut trainer = Sgd::new(net.parameters(), recipe.lr)?;
    println!("{recipe}");
    train_ch3(
        &net,
        &train_iter,
        &test_iter,
        loss,
        num_epochs,
        &mut trainer,
    )?;
    Ok(())
}
