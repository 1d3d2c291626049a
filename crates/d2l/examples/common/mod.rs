//! Plumbing shared by the chapter 3–4 examples (softmax regression, MLP, dropout): the
//! command line (`--data-dir DIR`, `--epochs N`), Fashion-MNIST through the data hub
//! with the `shapes` fallback, and the book's `train_ch3` report on top of `Trainer`.
//! Each example includes it with `#[path = "common/mod.rs"] mod common;`; the model,
//! loss and updater each section teaches stay in the example itself.

use d2l::data::datasets::{load_image_classification, DatasetName};
use d2l::data::hub::DataHub;
use d2l::data::loader::DataLoader;
use d2l::prelude::*;
use d2l::train::metrics::data_error;
use d2l::train::trainer::{LossFn, TrainConfig, Trainer};

/// `--data-dir DIR` and `--epochs N`.
pub struct Args {
    pub data_dir: Option<String>,
    pub epochs: Option<usize>,
}

impl Args {
    pub fn parse() -> Args {
        let mut args = Args {
            data_dir: None,
            epochs: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next();
            match (flag.as_str(), value) {
                ("--data-dir", Some(v)) => args.data_dir = Some(v),
                ("--epochs", Some(v)) => match v.parse() {
                    Ok(n) => args.epochs = Some(n),
                    Err(_) => usage(&format!("--epochs expects a whole number, got `{v}`")),
                },
                (f, _) => usage(&format!("unknown or incomplete option `{f}`")),
            }
        }
        args
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: [--data-dir DIR] [--epochs N]");
    std::process::exit(2)
}

/// Fashion-MNIST through the data hub (`--data-dir` first), or the built-in `shapes` set
/// with a notice when its files are nowhere to be had.
pub fn load_fashion_mnist(args: &Args, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let mut hub = DataHub::from_env();
    if let Some(dir) = &args.data_dir {
        hub = hub.with_data_dir(dir);
    }
    let (train_iter, test_iter, notice) =
        load_image_classification(DatasetName::FashionMnist, &hub, batch_size, None, 0, true)
            .map_err(data_error)?;
    if notice.fell_back() {
        println!("note: {notice}");
    }
    Ok((train_iter, test_iter))
}

/// One `train_ch3` report line: `epoch N: train loss …, train acc …, test acc …`.
pub fn print_epoch(epoch: usize, train_loss: f64, train_acc: f64, test_acc: f64) {
    println!(
        "epoch {epoch}: train loss {train_loss:.3}, train acc {train_acc:.3}, test acc {test_acc:.3}"
    );
}

/// The closing `train_ch3` line: `final: train loss …, train acc …, test acc …, S s`.
pub fn print_final(train_loss: f64, train_acc: f64, test_acc: f64, seconds: f64) {
    println!(
        "final: train loss {train_loss:.3}, train acc {train_acc:.3}, test acc {test_acc:.3}, {seconds:.1} s"
    );
}

/// The book's `train_ch3(net, train_iter, test_iter, loss, num_epochs, updater)` with a
/// PyTorch-style optimiser: `Trainer` runs the epochs (quietly), and every epoch and the
/// end are reported as above.
#[allow(dead_code)] // softmax_regression_scratch writes its own loop
pub fn train_ch3(
    net: &dyn Module,
    train_iter: &DataLoader,
    test_iter: &DataLoader,
    loss: LossFn,
    num_epochs: usize,
    updater: &mut dyn Optimizer,
) -> Result<()> {
    let config = TrainConfig {
        epochs: num_epochs,
        quiet: true,
        ..Default::default()
    };
    let summary = Trainer::new(net, loss, updater, config)
        .on_epoch(|m| {
            print_epoch(
                m.epoch,
                m.train_loss,
                m.train_acc.unwrap_or(f64::NAN),
                m.test_acc.unwrap_or(f64::NAN),
            )
        })
        .fit(train_iter, Some(test_iter))?;
    print_final(
        summary.train_loss,
        summary.train_acc.unwrap_or(f64::NAN),
        summary.test_acc.unwrap_or(f64::NAN),
        summary.seconds,
    );
    Ok(())
}
